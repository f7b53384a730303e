"""diffedu.teach.fokker_planck (lesson 05): plots draw the data they are given, sliders redraw
with new data, the checkers accept right answers, reject wrong ones and say "not answered yet",
and the cached runs of data/fp_runs.pt load and still give their stored metrics."""

import numpy as np
import pytest
import torch

from diffedu import VP, GaussianMixture
from diffedu import fokker_planck as fp
from diffedu.datasets import two_gaussians
from diffedu.flows import denoiser_from_score
from diffedu.metrics import relative_score_error
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
    assert ax.lines[0].get_xdata()[0] == 2.0


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


def test_penalty_widget_shows_the_chosen_report():
    reps = {size: _report(size) for size in (0.0, 0.5)}
    w = lesson.penalty_widget(reps)
    assert w.auto_display
    np.testing.assert_allclose(_offsets(w.result)[1], reps[0.0].x_ode.numpy())
    w.children[0].value = 0.5
    np.testing.assert_allclose(_offsets(w.result)[1], reps[0.5].x_ode.numpy())
    with pytest.raises(TypeError, match="reports"):
        lesson.penalty_widget({0.0: "not a report"})
    with pytest.raises(TypeError, match="reports"):
        lesson.penalty_widget({})


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


# --- the cached runs -------------------------------------------------------------------------
def test_cached_runs_load_and_reproduce_their_stored_metrics():
    """data/fp_runs.pt: the lesson-04 models (trained once, see fp_run) still give the score
    errors stored with them, and the stored residuals fall as the penalty weight grows."""
    runs, stored = lesson.load_fp_runs(), lesson.load_fp_run_metrics()
    assert sorted(runs) == sorted(stored) == sorted(lesson.FP_RUN_WEIGHTS)
    assert all(not m.training and next(m.parameters()).dtype == torch.float32 for m in runs.values())
    for w in (min(runs), max(runs)):
        m = runs[w].double()
        err = relative_score_error(m.score, two_gaussians(), m.process, [0.1, 0.3, 0.6, 1.0], n=2000,
                                   generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(err, torch.tensor(stored[w]["score_error"], dtype=torch.float64),
                                   rtol=1e-5, atol=1e-7)
    res = [stored[w]["residual"][1] for w in sorted(stored)]
    assert all(a > b for a, b in zip(res, res[1:]))


def test_save_and_load_round_trip(tmp_path):
    """save_fp_runs writes what load_fp_runs / load_fp_run_metrics read back (a short run)."""
    model, losses = lesson.fp_run(1.0, steps=3, seed=5)
    assert losses.shape == (3,) and torch.isfinite(losses).all()
    path = lesson.save_fp_runs({1.0: model}, tmp_path / "runs.pt")
    back = lesson.load_fp_runs(path)[1.0]
    x = torch.randn(7, 2)
    torch.testing.assert_close(back.denoiser(x, 0.4), model.eval().denoiser(x, 0.4))
    assert lesson.load_fp_run_metrics(path)[1.0] == lesson.fp_run_metrics(model)
    with pytest.raises(FileNotFoundError):
        lesson.load_fp_runs(tmp_path / "missing.pt")


@pytest.mark.slow
@pytest.mark.parametrize("weight", [0.0, 100.0])
def test_regenerating_a_cached_run_gives_an_equivalent_model(weight):
    """Retrains a cached run (minutes on one core; the cache was made on another machine, so
    weights need not agree bit for bit) and checks the new model against the stored metrics."""
    model, losses = lesson.fp_run(weight)
    new, old = lesson.fp_run_metrics(model), lesson.load_fp_run_metrics()[weight]
    assert torch.isfinite(losses).all()
    for a, b in zip(new["score_error"], old["score_error"]):
        assert abs(a - b) < 0.05 + 0.3 * b
    for a, b in zip(new["residual"], old["residual"]):
        assert 0.5 * b < a < 2 * b
