"""diffedu.teach.fokker_planck (lesson 05): plots draw the data they are given, sliders redraw
with new data, the checkers accept right answers, reject wrong ones and say "not answered yet",
and the cached gap runs of data/fp_gap.pt load and match a retraining."""

import numpy as np
import pytest
import torch

from diffedu import VP, GaussianMixture
from diffedu import fokker_planck as fp
from diffedu.datasets import two_gaussians
from diffedu.flows import denoiser_from_score
from diffedu.teach import fokker_planck as lesson


def _images(fig):
    return [im.get_array().copy() for ax in fig.axes for im in ax.get_images()]


def _offsets(fig):
    return [c.get_offsets().copy() for ax in fig.axes for c in ax.collections]


def _gap(fig):
    return float(fig._suptitle.get_text().split("W2(ODE, SDE) = ")[1].split(",")[0])


def _report(size, n=100):
    score = fp.perturb_score(two_gaussians().bind(VP()).score, "scale", size)
    return fp.ode_sde_gap(denoiser_from_score(score, VP()), VP(), two_gaussians().sample, n,
                          ode_steps=10, sde_steps=20, generator=torch.Generator().manual_seed(0))


# --- plots ---------------------------------------------------------------------------------
def test_plot_fp_grid_1d_draws_both_curves():
    g = np.linspace(-3, 3, 61)
    mix = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.1], [0.1]])
    ts = [0.0, 0.3]
    P = fp.solve_fp_grid(fp.density_on_grid(mix, VP(), g, 0.0), g, VP(), ts)
    ex = np.stack([fp.density_on_grid(mix, VP(), g, t) for t in ts])
    ax = lesson.plot_fp_grid_1d(g, P, ex, ts)
    assert len(ax.lines) == 4
    np.testing.assert_allclose(ax.lines[1].get_ydata(), ex[0])


def test_two_panel_plots_return_their_axes_and_draw_into_given_ones():
    g = np.linspace(-2, 2, 5)
    a, b = np.ones((5, 5)), 2 * np.ones((5, 5))
    axs = lesson.plot_density_pair_2d(g, a, b)
    assert len(axs) == 2
    np.testing.assert_allclose(axs[1].get_images()[0].get_array(), b.T)
    rep = _report(0.0, n=50)
    given = lesson.plots.new_axes(2)
    axs = lesson.plot_gap_samples(rep, given, title="x: ")
    assert axs is given
    np.testing.assert_allclose(axs[0].collections[1].get_offsets(), rep.x_ode.numpy())
    np.testing.assert_allclose(axs[1].collections[1].get_offsets(), rep.x_sde.numpy())
    assert axs[0].figure._suptitle.get_text().startswith("x: W2(ODE, SDE) = ")
    with pytest.raises(TypeError, match="report"):
        lesson.plot_gap_samples("not a report")


def test_gap_vs_residual_and_hutchinson_plots():
    ax = lesson.plot_gap_vs_residual({"scale": [(0.0, 0.1), (0.2, 0.5)]}, 0.15)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.1, 0.5])
    ax = lesson.plot_hutchinson({"rademacher": torch.tensor([1.0, 3.0]), "gaussian": torch.randn(50)}, 2.0)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [1.0, 3.0])       # an empirical distribution function
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.5, 1.0])
    assert ax.lines[-1].get_xdata()[0] == 2.0                                # the exact divergence


# --- widgets -------------------------------------------------------------------------------
def test_fp_grid_widget_redraws():
    w = lesson.fp_grid_widget(two_gaussians(), VP(), n=31, n_times=4)
    assert w.auto_display, "interactive shows a returned (non-pyplot) figure only with auto_display"
    first = _images(w.result)
    w.children[0].value = 3
    second = _images(w.result)
    assert len(first) == len(second) == 2
    assert not np.allclose(first[0], second[0])
    with pytest.raises(TypeError, match="process"):
        lesson.fp_grid_widget(two_gaussians(), "VP")


def test_perturbation_widget_redraws_and_gap_grows():
    w = lesson.perturbation_widget(two_gaussians(), VP(), n=200, ode_steps=20, sde_steps=40)
    assert w.auto_display
    assert [c.description for c in w.children[:2]] == ["perturbation", "size"]
    w.children[1].value = 1.0
    big, gap_big = _offsets(w.result), _gap(w.result)
    w.children[1].value = 0.0
    small, gap_small = _offsets(w.result), _gap(w.result)
    assert not np.allclose(big[1], small[1])  # the ODE samples moved
    assert gap_big > 2 * gap_small
    w.children[0].value = "rotation"
    assert w.result._suptitle.get_text().startswith("rotation 0.00")
    with pytest.raises(TypeError, match="process"):
        lesson.perturbation_widget(two_gaussians(), None)


# --- checkers ------------------------------------------------------------------------------
def test_check_dt_log_p(capsys):
    mix, proc = two_gaussians(), VP()
    x = mix.sample_marginal(5, 0.3, proc, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.full((5,), 0.3, dtype=torch.float64, requires_grad=True)
    (right,) = torch.autograd.grad(mix.log_prob(x, t, proc).sum(), t)
    assert lesson.check_dt_log_p(right, mix, x, 0.3, proc)
    assert not lesson.check_dt_log_p(-right, mix, x, 0.3, proc)
    assert not lesson.check_dt_log_p(None, mix, x, 0.3, proc)
    out = capsys.readouterr().out
    assert "Correct" in out and "sign is flipped" in out and "not answered yet" in out
    with pytest.raises(TypeError, match="process"):
        lesson.check_dt_log_p(right, mix, x, 0.3, "VP")


def test_check_hutchinson_variance():
    A = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    # S = [[1, 1], [1, 3]]: 2|S|_F^2 = 24; minus 2 (1 + 9) for Rademacher probes
    assert lesson.check_hutchinson_variance(4.0, A, "rademacher")
    assert lesson.check_hutchinson_variance(24.0, A, "gaussian")
    assert not lesson.check_hutchinson_variance(24.0, A, "rademacher")
    assert lesson.check_hutchinson_variance(None, A).status == "unanswered"
    with pytest.raises(ValueError, match="probe"):
        lesson.check_hutchinson_variance(4.0, A, "uniform")


# --- the ODE-SDE gap on a grid (data/fp_gap.pt) ----------------------------------------------
def _residual_solution(log_p, process, x, t):
    B, D = x.shape
    x = x.detach().requires_grad_(True)
    tt = torch.full((B,), t, dtype=x.dtype, requires_grad=True)
    dt, grad = torch.autograd.grad(log_p(x, tt).sum(), (tt, x), create_graph=True)
    lap = sum(torch.autograd.grad(grad[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(D))
    f, g2 = float(process.f(t)), float(process.g2(t))
    return (dt + D * f + f * (x * grad).sum(1) - 0.5 * g2 * (lap + (grad**2).sum(1))).detach()


def test_check_log_density_residual(capsys):
    assert lesson.check_log_density_residual(_residual_solution)

    def no_square(log_p, process, x, t):          # forgets |grad log p|^2 (writes Delta p / p as Delta log p)
        x = x.detach().requires_grad_(True)
        grad = torch.autograd.grad(log_p(x, torch.full((x.shape[0],), t, dtype=x.dtype)).sum(), x)[0]
        return _residual_solution(log_p, process, x, t) + 0.5 * float(process.g2(t)) * (grad**2).sum(1).detach()

    assert not lesson.check_log_density_residual(no_square)
    assert lesson.check_log_density_residual(None).status == "unanswered"
    assert "not answered yet" in capsys.readouterr().out


def test_gap_densities_plot_shares_one_colour_scale():
    g = np.linspace(-4.5, 4.5, 8)
    a, b = np.ones((8, 8)), 3 * np.ones((8, 8))
    axs = lesson.plot_gap_densities(g, {"a": a, "b": b})
    assert len(axs) == 2 and [ax.get_title() for ax in axs] == ["a", "b"]
    assert all(ax.get_images()[0].get_clim() == (0, 3.0) for ax in axs)
    np.testing.assert_allclose(axs[1].get_images()[0].get_array(), b.T)


def test_cached_gap_runs_are_complete_and_the_widget_shows_each():
    gap = lesson.load_gap_runs()
    c = lesson.GAP_CONFIG
    assert sorted(gap["runs"]) == sorted((k, float(w), s) for k in c["kinds"] for w in c["weights"] for s in c["seeds"])
    for key, r in gap["runs"].items():
        assert 0 <= r["tv_ode_sde"] <= 1 and r["bound"] > 0 and len(r["score_error"]) == 3
        assert ("ode" in r) == (key[2] == 0)                       # densities kept for seed 0 only
    w = lesson.gap_widget(gap)
    assert w.auto_display and w.children[0].description == "network"
    first = _images(w.result)
    w.children[0].value = w.children[0].options[-1]
    second = _images(w.result)
    assert len(first) == len(second) == 3
    assert not np.allclose(first[0], second[0]) and np.allclose(first[2], second[2])   # p_t stays
    with pytest.raises(TypeError, match="load_gap_runs"):
        lesson.gap_widget({"free": 1})


def test_gap_runs_save_and_load_round_trip(tmp_path):
    n = lesson.GAP_CONFIG["n_grid"]
    res = {"tv_ode_sde": 0.1, "bound": 1.0, "score_error": [0.5], "ode": np.ones((n, n)), "sde": np.zeros((n, n)),
           "bound_ts": np.linspace(0.1, 1, 3)}
    results = {"config": dict(lesson.GAP_CONFIG), "exact": res, "runs": {("free", 0.0, 0): res, ("free", 0.0, 1): res}}
    path = lesson.save_gap_runs(results, tmp_path / "gap.pt")
    back = lesson.load_gap_runs(path)
    np.testing.assert_allclose(back["runs"]["free", 0.0, 0]["ode"], 1.0)
    assert "ode" not in back["runs"]["free", 0.0, 1]
    np.testing.assert_allclose(back["exact"]["bound_ts"], res["bound_ts"])
    torch.save({**torch.load(path, weights_only=True), "config": {"steps": 1}}, path)
    with pytest.raises(ValueError, match="GAP_CONFIG"):
        lesson.load_gap_runs(path)


def test_gap_solve_with_the_exact_score_on_a_coarse_grid():
    data, proc = lesson.gap_data()
    r = lesson.gap_solve(data.bind(proc).score, n_grid=24)
    assert r["ode"].shape == r["sde"].shape == (24, 24)
    h2 = (9.0 / 23) ** 2
    assert abs(r["ode"].sum() * h2 - 1) < 1e-3 and abs(r["sde"].sum() * h2 - 1) < 1e-3
    assert r["tv_ode_sde"] < r["tv_ode_p"] < 0.5                   # the two agree better than either meets p_t
    assert np.isfinite(r["bound"]) and r["bound"] > r["w2_ode_sde"]


@pytest.mark.slow
def test_regenerating_two_gap_runs_gives_the_cached_gaps():
    """Retrains the free network of seed 0 with and without the penalty (the full 1,000 steps; about
    two minutes on one core with the two grid solves, no bound) and compares with data/fp_gap.pt:
    the gap, the samplers' distances to p_t and the score error, within what differs across CPUs."""
    cached = lesson.load_gap_runs()["runs"]
    data, proc = lesson.gap_data()
    for w in (0.0, 10.0):
        model, losses = lesson.train_gap_model("free", w, 0)
        assert torch.isfinite(losses).all()
        r = lesson.gap_solve(lambda x, t: model.score(x.float(), t).double(), bound=False)
        old = cached["free", w, 0]
        for key in ("tv_ode_sde", "tv_ode_p", "tv_sde_p"):
            assert abs(r[key] - old[key]) < 0.02 + 0.2 * old[key], (w, key, r[key], old[key])
    assert cached["free", 10.0, 0]["tv_ode_sde"] < 0.3 * cached["free", 0.0, 0]["tv_ode_sde"]
