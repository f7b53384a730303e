"""Lesson 10 plots, sliders and exercise checkers: sliders redraw, checkers grade (the lesson 08 and 09
parts moved to tests/teach/test_masked_diffusion.py and test_stochastic_interpolants.py)."""

import matplotlib
import torch

from diffedu import Gaussian, GaussianMixture
from diffedu import exercises_discrete as ex
from diffedu import widgets_discrete as dw

matplotlib.use("Agg")


def test_checkers_grade_and_accept_unanswered(capsys):
    g = Gaussian([0.0, 0.0], [[0.5, 0.1], [0.1, 0.3]])
    from diffedu import VP
    from diffedu.calculus import divergence
    from diffedu.flows import pf_ode_velocity
    xg = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    div = divergence(lambda z: pf_ode_velocity(g.bind(VP()).denoiser, VP(), z, 0.4), xg)
    assert torch.allclose(div, div[0].expand(3))  # constant in x for Gaussian data
    assert ex.check_pf_divergence(float(div[0]), g, VP(), 0.4)
    assert ex.check_hutchinson_term(1 - 2 - 3 + 4, [[1, 2], [3, 4]], [1, -1])
    assert not ex.check_hutchinson_term(5, [[1, 2], [3, 4]], [1, -1])
    assert ex.check_hutchinson_term(None, [[1, 2], [3, 4]], [1, -1]).status == "unanswered"
    assert "not answered yet" in capsys.readouterr().out


def test_likelihood_widget_error_shrinks_with_tolerance():
    from diffedu import VP
    mix = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [[0.3, 0.2], [0.2, 0.3]])
    pts = torch.stack([torch.linspace(-2, 2, 5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)], 1)
    w = dw.likelihood_widget(mix, VP(), pts, log10_rtol=-2.0)
    assert w.auto_display
    gap = lambda f: abs(f.axes[0].lines[1].get_ydata() - f.axes[0].lines[0].get_ydata()).max()
    coarse = gap(w.result)
    w.children[0].value = -6.0
    assert gap(w.result) < coarse / 100 and gap(w.result) < 1e-4
    w.children[1].value = 1  # one Hutchinson probe: noisy
    assert gap(w.result) > 1e-3
