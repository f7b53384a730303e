"""diffedu.teach.gaussian_teleportation (lesson 07): the sliders move what they draw (teleported
samples, the explained variance along training), the teleport-cost plot draws its rule, and the
checkers accept right answers, reject wrong ones and say "not answered yet"."""

import numpy as np
import pytest
import torch

import diffedu as de
from diffedu import VP, Gaussian, GaussianMixture
from diffedu.gaussian_approx import explained_variance
from diffedu.nets import ScoreMLP
from diffedu.teach import gaussian_teleportation as lesson


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _setup(n=50):
    P = VP()
    mix = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [[0.1, 0.1], [0.1, 0.1]])
    x = mix.sample_marginal(n, P.t_max, P, generator=gen(), dtype=torch.float64)
    return P, mix, x, de.time_grid(P, 12), Gaussian(mix.mean, mix.cov)


def _my_flow(x, mean, cov, t_from, t_to, process):
    lam, U = torch.linalg.eigh(cov)
    a0, s0 = float(process.alpha(t_from)), float(process.sigma(t_from))
    a1, s1 = float(process.alpha(t_to)), float(process.sigma(t_to))
    z = (x.double() - a0 * mean) @ U
    return (a1 * mean + (z * torch.sqrt((a1**2 * lam + s1**2) / (a0**2 * lam + s0**2))) @ U.T).to(x.dtype)


def test_flow_and_explained_variance_checkers():
    assert lesson.check_gaussian_flow(_my_flow)
    wrong = lambda x, mean, cov, t_from, t_to, process: _my_flow(x, mean, cov, t_to, t_from, process)  # noqa: E731
    assert not lesson.check_gaussian_flow(wrong)
    assert lesson.check_gaussian_flow(None).status == "unanswered"
    P = VP()
    G_d, G_m = Gaussian([0.0], [2.0]), Gaussian([0.0], [0.5])
    ev = explained_variance(G_d.bind(P).score, G_m.bind(P).score, G_d, P, [0.3], n=200_000, generator=gen())
    assert lesson.check_explained_variance(float(ev[0]), 2.0, 0.5, 0.3, P, rtol=0.02)
    assert not lesson.check_explained_variance(1.0, 2.0, 0.5, 0.3, P)
    assert lesson.check_explained_variance(None, 2.0, 0.5, 0.3, P).status == "unanswered"
    with pytest.raises(ValueError, match="model_var"):
        lesson.check_explained_variance(1.0, 2.0, 0.0, 0.3, P)
    with pytest.raises(TypeError, match="process"):
        lesson.check_explained_variance(1.0, 2.0, 0.5, 0.3, "VP")


def test_ev_history_and_its_slider():
    """Two untrained networks stand in for checkpoints: the history has an ExplainedVariance per
    reference and step, equal to a direct call on the same draws, and the slider redraws."""
    P, mix, _, _, G = _setup()
    nets = {0: ScoreMLP(P, 2, hidden=8, generator=gen(0)), 10: ScoreMLP(P, 2, hidden=8, generator=gen(1))}
    refs = {"Gaussian": G.bind(P).score, "mixture": mix.bind(P).score}
    levels = [0.1, 1.0, 3.0]
    h = lesson.ev_history(nets, refs, mix, P, levels, n=40, repeats=2, seed=3)
    assert sorted(h) == [0, 10] and list(h[0]) == ["Gaussian", "mixture"]
    assert h[10]["mixture"].ev.shape == h[10]["mixture"].se.shape == (3,)
    ts = [float(P.t_of_lam(-np.log(r))) for r in levels]
    g = gen(3)
    first = explained_variance(nets[10].score, refs["Gaussian"], mix, P, ts, n=40, generator=g)
    second = explained_variance(nets[10].score, refs["Gaussian"], mix, P, ts, n=40, generator=g)
    torch.testing.assert_close(h[10]["Gaussian"].ev, (first + second) / 2)
    w = lesson.ev_widget(h, levels, 2.0)
    assert w.children[0].description == "training step" and w.children[0].value == 10
    title = w.result.axes[0].get_title()
    w.children[0].value = 0
    assert w.result.axes[0].get_title() != title and "after 0 training steps" in w.result.axes[0].get_title()


def test_plot_teleport_cost_draws_the_rule():
    ax = lesson.plots.new_axes()
    costs = {"a": ([0.1, 0.1, 0.5], [0.01, 0.01, 0.05]), "b": ([0.2, 0.2, 0.6], [0.02, 0.02, 0.02])}
    assert lesson.plot_teleport_cost([10.0, 3.0, 0.3], costs, 0.8, ax) is ax
    assert [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [0.8]
    assert ax.get_xlim()[0] > ax.get_xlim()[1]          # decreasing noise to the right
    assert len(ax.patches) == 1                          # the band below 3 sqrt(lambda_max)


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
