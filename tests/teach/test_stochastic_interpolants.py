"""diffedu.teach.stochastic_interpolants (lesson 10): the slider redraws, the plot draws the core's
density, checkers grade."""

import numpy as np
import pytest
import torch
from scipy.integrate import trapezoid  # numpy.trapezoid needs numpy 2; the pyproject allows 1.24

from diffedu import Gaussian, GaussianMixture
from diffedu import interpolants as di
from diffedu.teach import stochastic_interpolants as lesson


@pytest.fixture(scope="module")
def ends():
    r0 = GaussianMixture([0.5, 0.5], [[-1.5, 0.0], [1.5, 0.0]], [[0.2, 0.2], [0.2, 0.2]])
    return r0, Gaussian([0.0, 0.0], [1.0, 1.0])


def test_interpolant_widget_redraws_with_eps_and_gamma(ends):
    w = lesson.interpolant_widget(*ends, eps=0.0, a=0.0)
    assert w.auto_display
    p0 = w.result.axes[0].lines[0].get_xydata().copy()
    w.children[0].value = 1.5
    p1 = w.result.axes[0].lines[0].get_xydata().copy()
    assert abs(p0 - p1).max() > 0.05
    w.children[1].value = 1.0
    p2 = w.result.axes[0].lines[0].get_xydata().copy()
    assert abs(p2 - p1).max() > 0.05
    with pytest.raises(TypeError, match="rho0 must be"):
        lesson.interpolant_widget(ends[1], ends[1])


def test_paths_plot_draws_the_exact_first_coordinate_law(ends):
    r0, r1 = ends
    axs = lesson.plot_interpolant_paths(0.5, 0.5, rho0=r0, rho1=r1, n_paths=3, n_hist=200, steps=20)
    assert len(axs) == 2 and len(axs[0].lines) == 2 * 3
    x, y = axs[1].lines[0].get_xdata(), axs[1].lines[0].get_ydata()
    comp = [np.exp(-0.5 * (x - m) ** 2 / 0.2) / np.sqrt(2 * np.pi * 0.2) for m in (-1.5, 1.5)]
    assert np.allclose(y, 0.5 * comp[0] + 0.5 * comp[1], rtol=1e-12)
    assert trapezoid(y, x) == pytest.approx(1.0, abs=1e-6)


def test_checkers_grade_and_accept_unanswered(capsys):
    br = di.GaussianMixtureInterpolant(di.LinearInterpolant(0.5), Gaussian([1.0], [0.5]), Gaussian([0.0], [1.0]))
    assert lesson.check_interpolant_variance(0.25 * 0.5 + 0.25 + 0.5 * 0.25, br, 0.5)
    assert not lesson.check_interpolant_variance(0.25 * 0.5 + 0.25, br, 0.5)
    assert lesson.check_interpolant_variance(None, br, 0.5).status == "unanswered"
    xv = torch.tensor([[0.3]], dtype=torch.float64)
    assert lesson.check_interpolant_velocity(br.velocity(xv, 0.3), br, xv, 0.3)
    assert not lesson.check_interpolant_velocity(-br.velocity(xv, 0.3), br, xv, 0.3)
    assert lesson.check_interpolant_velocity(..., br, xv, 0.3).status == "unanswered"
    assert "not answered yet" in capsys.readouterr().out
    two_d = di.GaussianMixtureInterpolant(di.LinearInterpolant(0.5), Gaussian([1.0, 0.0], [0.5, 0.5]),
                                          Gaussian([0.0, 0.0], [1.0, 1.0]))
    with pytest.raises(ValueError, match="one-dimensional Gaussian ends"):
        lesson.check_interpolant_variance(1.0, two_d, 0.5)


def test_sde_step_checker():
    """Issue 18: the write-the-method exercise of section 6 accepts the step and rejects the forward-SDE
    sign and a missing |h| in the noise."""
    import math

    from diffedu.teach import stochastic_interpolants as lesson

    def right(velocity, score, x, t, h, eps, noise):
        return x + (velocity(x, t) - eps * score(x, t)) * h + math.sqrt(2 * eps * abs(h)) * noise

    def forward_sign(velocity, score, x, t, h, eps, noise):
        return x + (velocity(x, t) + eps * score(x, t)) * h + math.sqrt(2 * eps * abs(h)) * noise

    def noise_unscaled(velocity, score, x, t, h, eps, noise):
        return x + (velocity(x, t) - eps * score(x, t)) * h + math.sqrt(2 * eps) * noise

    assert lesson.check_sde_step(right)
    assert not lesson.check_sde_step(forward_sign)
    assert not lesson.check_sde_step(noise_unscaled)
