"""diffedu.teach.gaussian_teleportation (lesson 07): the slider moves the teleported samples,
and the checkers accept right answers, reject wrong ones and say "not answered yet"."""

import numpy as np
import pytest
import torch

import diffedu as de
from diffedu import VP, Gaussian, GaussianMixture
from diffedu.gaussian_approx import explained_variance
from diffedu.teach import gaussian_teleportation as lesson


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _setup(n=50):
    P = VP()
    mix = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [[0.1, 0.1], [0.1, 0.1]])
    x = mix.sample_marginal(n, P.t_max, P, generator=gen(), dtype=torch.float64)
    return P, mix, x, de.time_grid(P, 12), Gaussian(mix.mean, mix.cov)


def test_flow_and_explained_variance_checkers():
    P = VP()
    a0, s0, a1, s1 = (float(v) for v in (P.alpha(0.8), P.sigma(0.8), P.alpha(0.2), P.sigma(0.2)))
    assert lesson.check_flow_scale(((a1**2 * 3 + s1**2) / (a0**2 * 3 + s0**2)) ** 0.5, 3.0, 0.8, 0.2, P)
    assert not lesson.check_flow_scale(1.0, 3.0, 0.8, 0.2, P)
    assert lesson.check_flow_scale(None, 3.0, 0.8, 0.2, P).status == "unanswered"
    G_d, G_m = Gaussian([0.0], [2.0]), Gaussian([0.0], [0.5])
    ev = explained_variance(G_d.bind(P).score, G_m.bind(P).score, G_d, P, [0.3], n=200_000, generator=gen())
    assert lesson.check_explained_variance(float(ev[0]), 2.0, 0.5, 0.3, P, rtol=0.02)
    assert not lesson.check_explained_variance(1.0, 2.0, 0.5, 0.3, P)
    assert lesson.check_explained_variance(None, 2.0, 0.5, 0.3, P).status == "unanswered"
    with pytest.raises(ValueError, match="eigval"):
        lesson.check_flow_scale(1.0, -1.0, 0.8, 0.2, P)
    with pytest.raises(ValueError, match="model_var"):
        lesson.check_explained_variance(1.0, 2.0, 0.0, 0.3, P)
    with pytest.raises(TypeError, match="process"):
        lesson.check_explained_variance(1.0, 2.0, 0.5, 0.3, "VP")


def test_teleport_widget_moves_with_its_slider():
    P, mix, x, ts, G = _setup()
    w = lesson.teleport_widget(de.dpmpp_2m, mix.bind(P).denoiser, P, x, ts, G)
    assert w.auto_display
    assert w.children[0].description == "steps skipped" and w.children[0].value == 3
    t0 = w.result.axes[0].get_title()
    tel0 = w.result.axes[0].collections[1].get_offsets().copy()
    w.children[0].value = 10
    assert w.result.axes[0].get_title() != t0 and "10 of 12 steps skipped" in w.result.axes[0].get_title()
    assert not np.allclose(w.result.axes[0].collections[1].get_offsets(), tel0)
    with pytest.raises(TypeError, match="process"):
        lesson.teleport_widget(de.dpmpp_2m, mix.bind(P).denoiser, "VP", x, ts, G)


def test_plot_teleport_with_no_skip_draws_the_full_run_twice():
    P, mix, x, ts, G = _setup(20)
    ax = lesson.plots.new_axes()
    assert lesson.plot_teleport(de.dpmpp_2m, mix.bind(P).denoiser, P, x, ts, G, 0, ax) is ax
    full = de.dpmpp_2m(mix.bind(P).denoiser, P, x, ts).numpy()
    np.testing.assert_allclose(ax.collections[0].get_offsets(), full)
    np.testing.assert_allclose(ax.collections[1].get_offsets(), full)
    assert ax.get_title().endswith("RMS move 0")
