"""diffedu.teach.likelihood (lesson 11): the likelihood slider's error follows the solver tolerance
and the estimator, and the divergence and Hutchinson checkers grade."""

import matplotlib.figure
import numpy as np
import pytest
import torch

from diffedu import VP, Gaussian, GaussianMixture
from diffedu.calculus import divergence
from diffedu.flows import pf_ode_velocity
from diffedu.teach import likelihood as lesson

MIX = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [[0.3, 0.2], [0.2, 0.3]])
PTS = torch.stack([torch.linspace(-2, 2, 5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)], 1)


def gap(ax):
    return abs(ax.lines[1].get_ydata() - ax.lines[0].get_ydata()).max()


def test_likelihood_widget_error_shrinks_with_tolerance():
    w = lesson.likelihood_widget(MIX, VP(), PTS, log10_rtol=-2.0)
    assert w.auto_display
    assert [c.description for c in w.children[:2]] == ["log10 rtol", "probes (0 = exact)"]
    coarse = gap(w.result.axes[0])
    w.children[0].value = -6.0
    assert gap(w.result.axes[0]) < coarse / 100 and gap(w.result.axes[0]) < 1e-4
    w.children[1].value = 1  # one Hutchinson probe: noisy
    assert gap(w.result.axes[0]) > 1e-3
    assert "Hutchinson, 1 probe(s)" in w.result.axes[0].get_title()


def test_plot_draws_the_exact_density_at_t_eps_into_the_given_axes():
    ax = matplotlib.figure.Figure().subplots()
    p = VP()
    assert lesson.plot_ode_likelihood(MIX, p, PTS, ax, log10_rtol=-6.0) is ax
    np.testing.assert_allclose(ax.lines[0].get_ydata(), MIX.log_prob(PTS, p.t_eps, p).numpy())
    assert "exact divergence" in ax.get_title()
    with pytest.raises(ValueError, match="n_probes"):
        lesson.plot_ode_likelihood(MIX, p, PTS, ax, n_probes=-1)


def test_pf_divergence(capsys):
    g = Gaussian([0.0, 0.0], [[0.5, 0.1], [0.1, 0.3]])
    xg = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    div = divergence(lambda z: pf_ode_velocity(g.bind(VP()).denoiser, VP(), z, 0.4), xg)
    assert torch.allclose(div, div[0].expand(3))  # constant in x for Gaussian data
    assert lesson.check_pf_divergence(float(div[0]), g, VP(), 0.4)
    assert not lesson.check_pf_divergence(-float(div[0]), g, VP(), 0.4)
    assert lesson.check_pf_divergence(None, g, VP(), 0.4).status == "unanswered"
    assert "not answered yet" in capsys.readouterr().out


def test_hutchinson_term(capsys):
    assert lesson.check_hutchinson_term(1 - 2 - 3 + 4, [[1, 2], [3, 4]], [1, -1])
    assert lesson.check_hutchinson_term(1 + 2 + 3 + 4, [[1, 2], [3, 4]], [1, 1])
    assert not lesson.check_hutchinson_term(5, [[1, 2], [3, 4]], [1, -1])
    assert lesson.check_hutchinson_term(..., [[1, 2], [3, 4]], [1, -1]).status == "unanswered"
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(ValueError, match="jacobian"):
        lesson.check_hutchinson_term(1.0, [1, 2], [1, -1])
    with pytest.raises(ValueError, match="probe"):
        lesson.check_hutchinson_term(1.0, [[1, 2], [3, 4]], [1, -1, 1])


def test_the_lesson_calls_what_all_lists():
    for name in lesson.__all__:
        assert callable(getattr(lesson, name))
