"""diffedu.teach.learning_the_score (lesson 04): the sample distances against a direct computation,
the DSM-constant plot against its closed form, the error history of a (tiny) training run, the
error map and its slider, the image grid, and the three checkers (right answers, the usual wrong
ones, "not answered yet")."""

import math

import numpy as np
import pytest
import torch

from diffedu import VP, Gaussian, score_matching
from diffedu.datasets import two_gaussians
from diffedu.metrics import relative_score_error, w2
from diffedu.nets import ScoreMLP
from diffedu.teach import learning_the_score as lesson
from diffedu.teach.plots import new_axes
from diffedu.training import dsm_loss, train

NOISE = [0.1, 1.0, 10.0]   # sigma_t / alpha_t


# --- sample_distances ----------------------------------------------------------------------
def test_sample_distances_is_w2_and_the_mean_log_density_gap():
    mix, vp = two_gaussians(), VP()
    data = mix.sample(40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    xs = mix.sample(30, generator=torch.Generator().manual_seed(1), dtype=torch.float32)
    d, gap, se = lesson.sample_distances(xs, data, mix, vp, vp.t_eps)
    assert d == pytest.approx(w2(xs, data), rel=1e-12)
    direct = float(mix.log_prob(xs.double(), vp.t_eps, vp).mean() - mix.log_prob(data, vp.t_eps, vp).mean())
    assert gap == pytest.approx(direct, rel=1e-9, abs=1e-12)
    assert d > 0 and gap != 0


def test_sample_distances_of_identical_and_shifted_sets():
    mix, vp = two_gaussians(), VP()
    data = mix.sample(40, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    d, gap, se = lesson.sample_distances(data.clone(), data, mix, vp, 0.01)
    assert d == pytest.approx(0.0, abs=1e-6) and gap == 0.0 and se == 0.0
    shift = torch.tensor([3.0, 4.0], dtype=torch.float64)         # a translation by 5: W2 is exactly 5
    d, gap, se = lesson.sample_distances(data + shift, data, mix, vp, 0.01)
    assert d == pytest.approx(5.0, rel=1e-6)
    assert gap < -1.0                                                 # off the data: less mass there


def test_sample_distances_standard_error_is_the_spread_of_the_gap():
    """Over 300 seeded pairs of independent sets (a shifted law against the law), the gap's standard
    deviation matches the mean standard error within 10% (its sampling error at 300 pairs is ~4%)."""
    mix, vp = two_gaussians(), VP()
    shift = torch.tensor([0.3, 0.0], dtype=torch.float64)
    gaps, ses = [], []
    for k in range(300):
        xs = mix.sample(200, generator=torch.Generator().manual_seed(1000 + k), dtype=torch.float64) + shift
        data = mix.sample(200, generator=torch.Generator().manual_seed(5000 + k), dtype=torch.float64)
        r = lesson.sample_distances(xs, data, mix, vp, 0.01)
        gaps.append(r.log_density)
        ses.append(r.log_density_se)
    assert float(np.std(gaps, ddof=1)) == pytest.approx(float(np.mean(ses)), rel=0.10)


# --- plot_constant --------------------------------------------------------------------------
def test_plot_constant_matches_the_gaussian_closed_form():
    """For N(0, diag v) the posterior variance is constant, so C(t) sigma^2 / D = mean_i v_i / (v_i + r^2)
    exactly (r = sigma / alpha): no Monte Carlo error, and it tends to 1 as r -> 0."""
    v = torch.tensor([0.5, 2.0], dtype=torch.float64)
    levels = [0.01, 0.1, 1.0, 10.0]
    given = new_axes()
    ax = lesson.plot_constant(Gaussian(torch.zeros(2), v), VP(), levels, given, n=20)
    assert ax is given and ax.get_xscale() == "log"
    data_line = ax.containers[0][0]
    np.testing.assert_allclose(np.asarray(data_line.get_xdata(), dtype=float), levels)
    expected = [float((v / (v + r**2)).mean()) for r in levels]
    np.testing.assert_allclose(np.asarray(data_line.get_ydata(), dtype=float), expected, rtol=1e-6)
    assert abs(expected[0] - 1) < 1e-3 and expected[-1] < 0.05
    assert [ln for ln in ax.lines if list(ln.get_ydata()) == [1.0, 1.0]], "the small-noise limit 1 is drawn"


def test_plot_constant_of_a_mixture_is_dsm_constant_with_its_error_bars():
    mix, vp = two_gaussians(), VP()
    ax = lesson.plot_constant(mix, vp, NOISE, n=50, seed=3)
    gen = torch.Generator().manual_seed(3)                            # the same draws, level after level
    vals, errs = [], []
    for r in NOISE:
        t = float(vp.t_of_lam(-math.log(r)))
        c, se = score_matching.dsm_constant(mix, vp, t, n=50, generator=gen)
        s2 = float(vp.sigma(t)) ** 2
        vals.append(c * s2 / 2)
        errs.append(2 * se * s2 / 2)
    line, _, (bars,) = ax.containers[0]
    np.testing.assert_allclose(np.asarray(line.get_ydata(), dtype=float), vals, rtol=1e-9)
    half = [abs(seg[1, 1] - seg[0, 1]) / 2 for seg in bars.get_segments()]
    np.testing.assert_allclose(half, errs, rtol=1e-9)
    assert all(e > 0 for e in errs) and all(np.isfinite(vals))


# --- error_history --------------------------------------------------------------------------
def _tiny_run(steps=4):
    vp = VP()
    net = ScoreMLP(vp, 2, hidden=8, depth=2, param="denoiser", generator=torch.Generator().manual_seed(0))
    run = train(net, dsm_loss(vp), two_gaussians().sample, steps=steps, batch_size=16, lr=0.05,
                checkpoints=[0, steps // 2, steps], generator=torch.Generator().manual_seed(1))
    return net, run, vp


def test_error_history_scores_every_checkpoint_on_the_same_draws_and_keeps_the_final_weights():
    net, run, vp = _tiny_run()
    final = {k: v.clone() for k, v in net.state_dict().items()}
    hist = lesson.error_history(net, run.checkpoints, two_gaussians(), vp, NOISE, n=50, seed=4)
    assert sorted(hist) == [0, 2, 4]
    for step, err in hist.items():
        assert err.shape == (3,) and torch.isfinite(err).all() and (err > 0).all()
        other = ScoreMLP(vp, 2, hidden=8, depth=2, param="denoiser")
        other.load_state_dict(run.checkpoints[step])
        ts = [float(vp.t_of_lam(-math.log(r))) for r in NOISE]
        direct = relative_score_error(other.score, two_gaussians(), vp, ts, n=50,
                                      generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(err, direct)
    assert not torch.allclose(hist[0], hist[4])                       # training changed the errors
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, final[k])


def test_error_history_restores_the_final_weights_after_a_bad_checkpoint():
    net, run, vp = _tiny_run()
    final = {k: v.clone() for k, v in net.state_dict().items()}
    bad = {**run.checkpoints, 3: {"not": torch.zeros(1)}}
    with pytest.raises(RuntimeError):
        lesson.error_history(net, bad, two_gaussians(), vp, NOISE, n=10)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, final[k])


# --- plot_error_map and its slider ----------------------------------------------------------
HISTORY = {0: torch.tensor([0.9, 0.8, 0.5], dtype=torch.float64),
           5: torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
           10: torch.tensor([0.2, 0.1, 0.05], dtype=torch.float64)}
LOSSES = 2.0 + 1.0 / (1.0 + np.arange(300))                          # window 3 (len // 100)


def test_plot_error_map_panels():
    given = new_axes(2)
    axs = lesson.plot_error_map(5, history=HISTORY, noise_levels=NOISE, losses=LOSSES, floor=1.9, axs=given)
    assert axs is given and len(axs) == 2
    left, right = axs
    assert len(left.lines) == 2                                       # step 0 in grey, then step 5
    np.testing.assert_allclose(left.lines[-1].get_ydata(), HISTORY[5].numpy())
    np.testing.assert_allclose(left.lines[0].get_ydata(), HISTORY[0].numpy())
    assert left.get_xscale() == left.get_yscale() == "log" and "after 5 steps" in left.get_title()
    curve, floor = right.lines
    assert float(curve.get_xdata()[-1]) == 5                          # the loss so far, up to step 5
    assert float(curve.get_ydata()[-1]) == pytest.approx(LOSSES[2:5].mean())   # a running mean
    assert list(floor.get_ydata()) == [1.9, 1.9]
    assert right.get_xlim() == (0, 300) and right.get_ylim()[0] <= 1.9 <= right.get_ylim()[1]
    axs = lesson.plot_error_map(10, history=HISTORY, noise_levels=NOISE, losses=LOSSES, floor=1.9)
    assert len(axs) == 2 and len(axs[0].lines) == 3


@pytest.mark.parametrize("step", [0, 5])
def test_plot_error_map_loss_curve_stops_at_the_step_before_the_window_fills(step):
    """2,000 losses smooth over 20 steps: an early checkpoint's curve still ends at its own step."""
    losses = 2.0 + 1.0 / (1.0 + np.arange(2000))
    axs = lesson.plot_error_map(step, history=HISTORY, noise_levels=NOISE, losses=losses, floor=1.9,
                                axs=new_axes(2))
    x = axs[1].lines[0].get_xdata()
    assert 1 <= float(x[0]) and float(x[-1]) == max(step, 1)
    assert np.all(np.isfinite(axs[1].lines[0].get_ydata()))


def test_error_map_widget_redraws_at_the_chosen_step():
    w = lesson.error_map_widget(HISTORY, NOISE, LOSSES, 1.9)
    assert w.auto_display, "interactive shows a returned (non-pyplot) figure only with auto_display"
    slider = w.children[0]
    assert slider.description == "training step" and list(slider.options) == [0, 5, 10] and slider.value == 10
    left = w.result.axes[0]
    np.testing.assert_allclose(left.lines[-1].get_ydata(), HISTORY[10].numpy())
    slider.value = 0
    left = w.result.axes[0]
    assert len(left.lines) == 1 and "after 0 steps" in left.get_title()
    np.testing.assert_allclose(left.lines[-1].get_ydata(), HISTORY[0].numpy())


# --- plot_images ----------------------------------------------------------------------------
def test_plot_images_draws_each_image_in_a_grid():
    imgs = torch.rand(5, 64, generator=torch.Generator().manual_seed(0))
    axs = lesson.plot_images(imgs, ncols=3, titles=list("abcde"))
    assert axs.shape == (2, 3)
    flat = axs.reshape(-1)
    for i in range(5):
        np.testing.assert_allclose(flat[i].get_images()[0].get_array(), imgs[i].reshape(8, 8).numpy())
        assert flat[i].get_title() == "abcde"[i]
    assert not flat[5].get_images() and not flat[5].axison
    axs = lesson.plot_images(imgs[:2])                                # one row by default
    assert axs.shape == (1, 2)


# --- checkers -------------------------------------------------------------------------------
def _dsm(score, process, x0, t, eps, *, noise=lambda eps, s: eps / s, sign=1.0, alpha=True, reduce="sum"):
    a, s = process.alpha(t).to(x0.dtype), process.sigma(t).to(x0.dtype)
    xt = (a if alpha else 1.0) * x0 + s * eps
    sq = (score(xt, t) + sign * noise(eps, s)) ** 2
    return {"sum": lambda: sq.sum(1).mean(), "all": lambda: sq.mean(), "rows": lambda: sq.sum(1)}[reduce]()


def test_check_dsm_loss_accepts_the_lesson_solution(capsys):
    fb = lesson.check_dsm_loss(_dsm)
    assert fb and "18 fresh cases" in fb.message
    assert capsys.readouterr().out.startswith("Correct (DSM loss)")


@pytest.mark.parametrize("kw, says", [
    ({"reduce": "all"}, "your answer is 1/2 times the expected value"),         # mean over coordinates too
    ({"sign": -1.0}, "relative error"),                                          # s - eps / sigma
    ({"noise": lambda eps, s: eps * s}, "relative error"),                       # eps sigma, not eps / sigma
    ({"alpha": False}, "relative error"),                                        # x_t = x0 + sigma eps
    ({"reduce": "rows"}, "shape (4,), expected ()"),                             # no mean over the batch
])
def test_check_dsm_loss_says_what_is_wrong(kw, says, capsys):
    fb = lesson.check_dsm_loss(lambda **a: _dsm(**a, **kw))
    assert fb.status == "wrong" and says in fb.message, fb.message
    assert "on the inputs" in fb.message and "x0: (4, 2)" in fb.message


def _langevin(score, x, t, step, noise):
    return x + step * score(x, t) + math.sqrt(2 * step) * noise


def test_check_langevin_step_accepts_right_implementations(capsys):
    assert lesson.check_langevin_step(_langevin)

    def written_differently(score, x, t, step, noise):
        return x + step * (score(x, t) + (2 / step) ** 0.5 * noise)

    assert lesson.check_langevin_step(written_differently)
    assert capsys.readouterr().out.count("Correct (Langevin step)") == 2


@pytest.mark.parametrize("answer, says", [
    (lambda score, x, t, step, noise: x + step * score(x, t) + math.sqrt(step) * noise, "relative error"),  # sqrt h
    (lambda score, x, t, step, noise: x - step * score(x, t) + math.sqrt(2 * step) * noise, "relative error"),
    (lambda score, x, t, step, noise: x + step / 2 * score(x, t) + math.sqrt(2 * step) * noise, "relative error"),
    (lambda score, x, t, step, noise: x + step * score(x, t), "relative error"),                            # no noise
    (lambda score, x, t, step, noise: _langevin(score, x, t, step, noise).T, "your answer is transposed"),
    (lambda score, x, t, step, noise: _langevin(score, x, t, step, noise).sum(1), "shape (4,), expected (4, 2)"),
    (lambda score, x, t, step, noise: _langevin(score, x.double(), t, step, noise.double()), "keep the input's dtype"),
])
def test_check_langevin_step_says_what_is_wrong(answer, says, capsys):
    fb = lesson.check_langevin_step(answer)
    assert fb.status == "wrong" and says in fb.message, fb.message


def _c_gauss(v, t, process):
    a, s = float(process.alpha(t)), float(process.sigma(t))
    return a**2 / s**4 * (v * s**2 / (a**2 * v + s**2))


@pytest.mark.parametrize("v, t", [(2.0, 0.3), (0.5, 0.05), (1.0, 0.9)])
def test_check_dsm_constant_accepts_the_closed_form_and_dsm_constant(v, t, capsys):
    vp = VP()
    assert lesson.check_dsm_constant(_c_gauss(v, t, vp), v, t, vp)
    c, _ = score_matching.dsm_constant(Gaussian([0.0], [v]), vp, t, n=10)   # the library's C(t)
    assert lesson.check_dsm_constant(c, v, t, vp)
    assert f"Correct (C(t) for N(0, {v:g}) at t = {t:g})" in capsys.readouterr().out


def test_check_dsm_constant_says_what_is_wrong(capsys):
    vp = VP()
    a, s = float(vp.alpha(0.3)), float(vp.sigma(0.3))
    right = _c_gauss(2.0, 0.3, vp)
    fb = lesson.check_dsm_constant(2 * right, 2.0, 0.3, vp)
    assert fb.status == "wrong" and "2 times the expected value" in fb.message
    assert "sign is flipped" in lesson.check_dsm_constant(-right, 2.0, 0.3, vp).message
    fb = lesson.check_dsm_constant(right / a**2, 2.0, 0.3, vp)                # forgot alpha^2
    assert fb.status == "wrong" and "relative error" in fb.message
    fb = lesson.check_dsm_constant(1 / s**2, 2.0, 0.3, vp)                   # the small-noise limit D / sigma^2
    assert fb.status == "wrong" and "relative error" in fb.message
    assert "N(0, 2) at t = 0.3" in fb.message


@pytest.mark.parametrize("missing", [None, ...])
def test_unanswered_prints_and_does_not_raise(missing, capsys):
    for check in (lesson.check_dsm_loss, lesson.check_langevin_step,
                  lambda a: lesson.check_dsm_constant(a, 2.0, 0.3, VP())):
        fb = check(missing)
        assert fb.status == "unanswered" and not fb
        assert capsys.readouterr().out.strip().endswith("not answered yet")


def test_the_lesson_calls_what_all_lists():
    for name in lesson.__all__:
        assert callable(getattr(lesson, name))
    assert not [n for n in lesson.__all__ if n.startswith("_")]
