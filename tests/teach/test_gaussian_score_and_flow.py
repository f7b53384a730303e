"""diffedu.teach.gaussian_score_and_flow (lesson 02): the mode-decision plot, the flow slider and
the score, denoiser and decision-time checkers."""

import math

import ipywidgets as W
import matplotlib.figure
import numpy as np
import pytest
import torch

import diffedu as de
from diffedu.gaussian import rotated_2d
from diffedu.teach import gaussian_score_and_flow as lesson


@pytest.fixture
def ax():
    return matplotlib.figure.Figure().subplots()


def controls(w):
    assert w.auto_display, "interactive shows a returned (non-pyplot) figure only with auto_display"
    return {c.description: c for c in w.children if isinstance(c, W.ValueWidget)}


@pytest.mark.parametrize("process", [de.VP(), de.EDM()], ids=["VP", "EDM"])
def test_mode_decisions_half_at_eigenvalue(ax, process):
    ev = [4.0, 0.01]
    assert lesson.plot_mode_decisions(ev, process, ax, mark=0.1) is ax
    for line, vline, lam in zip(ax.lines[0:4:2], ax.lines[1:4:2], ev):
        r, frac = line.get_data()
        k = np.argmin(np.abs(frac - 0.5))
        assert r[k] == pytest.approx(math.sqrt(lam), rel=0.05 if isinstance(process, de.VP) else 0.25)
        assert vline.get_xdata()[0] == pytest.approx(math.sqrt(lam), rel=1e-9)  # dotted: exact crossing
    # the curve is the data share alpha^2 lambda / (alpha^2 lambda + sigma^2) of the mode's variance
    r, frac = ax.lines[0].get_data()
    np.testing.assert_allclose(frac, 4.0 / (4.0 + r**2), rtol=1e-10)
    assert ax.lines[-1].get_xdata()[0] == 0.1
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="eigvals"):
        lesson.plot_mode_decisions([1.0, -1.0], process, ax)


def test_mode_decisions_skips_a_mode_decided_before_t_max(ax):
    lesson.plot_mode_decisions([1e6, 1.0], de.VE(), ax)  # VE's sigma/alpha ends at 50 < 1000
    assert len(ax.lines) == 3 and ax.lines[2].get_xdata()[0] == pytest.approx(1.0)


def test_gaussian_flow_widget_time_and_spectrum():
    w = lesson.gaussian_flow_widget(de.VP(), n_paths=5)
    assert set(controls(w)) == {"t / t_max", "log10 lambda_1", "log10 lambda_2"}
    paths0 = w.result.axes[0].lines[0].get_xydata().copy()
    controls(w)["t / t_max"].value = 0.05
    paths1 = w.result.axes[0].lines[0].get_xydata()
    # same start (seeded), path continued further towards the data
    np.testing.assert_allclose(paths0[0], paths1[0])
    assert not np.allclose(paths0[-1], paths1[-1])
    dec0 = w.result.axes[1].lines[0].get_ydata().copy()
    controls(w)["log10 lambda_1"].value = -1.0
    assert not np.allclose(dec0, w.result.axes[1].lines[0].get_ydata())
    with pytest.raises(TypeError, match="process"):
        lesson.gaussian_flow_widget("VP")


@pytest.mark.parametrize("process", [de.VP(), de.VE(), de.EDM(), de.Linear()], ids=["VP", "VE", "EDM", "Linear"])
def test_flow_widget_paths_end_at_the_exact_flow(process):
    w = lesson.gaussian_flow_widget(process, n_paths=3, angle=45.0)
    controls(w)["t / t_max"].value = 0.2
    g = rotated_2d(10**0.5, 10**-1.5, 45.0)
    x_T = g.sample_marginal(3, process.t_max, process, generator=torch.Generator().manual_seed(0),
                            dtype=torch.float64)
    end = g.flow(x_T, process.t_max, 0.2 * process.t_max, process)
    for k in range(3):  # plot_trajectories draws one line per path
        path = w.result.axes[0].lines[k].get_xydata()
        assert len(path) == 61  # 61 times uniform in lambda, from t_max down to the slider's t
        np.testing.assert_allclose(path[0], x_T[k].numpy(), rtol=1e-10)
        np.testing.assert_allclose(path[-1], end[k].numpy(), rtol=1e-8, atol=1e-10)
    controls(w)["t / t_max"].value = 1.0  # no path left to draw: the starts only
    assert len(w.result.axes[0].lines[0].get_xydata()) == 1


@pytest.mark.parametrize("missing", [None, ...])
def test_unanswered_prints_and_does_not_raise(missing, capsys):
    g = de.Gaussian(torch.zeros(2), torch.ones(2))
    x = torch.zeros(1, 2, dtype=torch.float64)
    for check in (lambda a: lesson.check_decision_time(a, 0.25, de.VP()),
                  lesson.check_gaussian_score,
                  lambda a: lesson.check_denoiser(a, g, x, 0.3, de.VP())):
        fb = check(missing)
        assert fb.status == "unanswered" and not fb
        assert capsys.readouterr().out.strip().endswith("not answered yet")


def test_decision_time(capsys):
    assert lesson.check_decision_time(float(de.EDM().t_of_lam(-0.5 * math.log(0.25))), 0.25, de.EDM())
    assert lesson.check_decision_time(0.5, 0.25, de.EDM())  # EDM's time is sigma/alpha = sqrt(0.25)
    assert not lesson.check_decision_time(0.25, 0.25, de.EDM())
    assert "1/2 times the expected value" in capsys.readouterr().out
    with pytest.raises(ValueError, match="eigval"):
        lesson.check_decision_time(1.0, -1.0, de.VP())


def _score(x, t, process, mean, cov):  # eq. (1), the way the lesson's solution writes it
    a, s = process.alpha(t), process.sigma(t)
    C = a**2 * cov + s**2 * torch.eye(len(mean), dtype=x.dtype)
    return -torch.linalg.solve(C, (x - a * mean).T).T


def _score_by_inverse(x, t, process, mean, cov):  # another right way: x C^{-1} (C symmetric)
    a, s = process.alpha(t).to(x.dtype), process.sigma(t).to(x.dtype)
    return -(x - a * mean) @ torch.linalg.inv(a**2 * cov + s**2 * torch.eye(x.shape[1], dtype=x.dtype))


@pytest.mark.parametrize("answer", [_score, _score_by_inverse], ids=["solve", "inverse"])
def test_gaussian_score_accepts_right_implementations(answer, capsys):
    fb = lesson.check_gaussian_score(answer)
    assert fb, fb.message
    assert "18 fresh cases" in fb.message


def _with(**change):
    """The score with one typical slip: sigma instead of sigma^2, no alpha on the mean, ..."""
    def score(x, t, process, mean, cov):
        a, s = process.alpha(t), process.sigma(t)
        a2 = change.get("a2", lambda a: a**2)(a)
        s2 = change.get("s2", lambda s: s**2)(s)
        m = change.get("m", lambda a, mean: a * mean)(a, mean)
        C = a2 * cov + s2 * torch.eye(len(mean), dtype=x.dtype)
        return change.get("sign", 1) * -torch.linalg.solve(C, (x - m).T).T
    return score


@pytest.mark.parametrize("answer, says", [
    (_with(s2=lambda s: s), "relative error"),
    (_with(a2=lambda a: a), "relative error"),
    (_with(m=lambda a, mean: mean), "relative error"),
    (_with(sign=-1), "the sign is flipped"),
    (lambda x, t, process, mean, cov: _score(x.double(), t, process, mean.double(), cov.double()),
     "keep the input's dtype"),
    (lambda x, t, process, mean, cov: _score(x, t, process, mean, cov).T, "transpose"),
])
def test_gaussian_score_wrong_implementations_say_what_is_off(answer, says, capsys):
    fb = lesson.check_gaussian_score(answer)
    assert fb.status == "wrong" and says in fb.message, fb.message
    assert "on the inputs x: " in fb.message and "process = " in fb.message


def test_denoiser_from_the_score_by_tweedie():
    g = de.Gaussian(torch.tensor([1.0, -1.0]), torch.tensor([[2.0, 0.5], [0.5, 1.0]]))
    p = de.VP()
    x = torch.tensor([[0.5, 0.2], [-1.0, 2.0]], dtype=torch.float64)
    a, s = p.alpha(0.4), p.sigma(0.4)
    score = _score(x, 0.4, p, g.mean, g.cov)
    assert lesson.check_denoiser((x + s**2 * score) / a, g, x, 0.4, p)
    assert not lesson.check_denoiser(x, g, x, 0.4, p)


def test_mode_predictions_plot(capsys):
    p = de.VP()
    ev = torch.tensor([4.0, 1.0, 0.1, 0.01], dtype=torch.float64)
    g = de.Gaussian(torch.zeros(4, dtype=torch.float64), ev)
    x_T = g.sample_marginal(5, p.t_max, p, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ts = de.time_grid(p, 31, "lambda")[:-1]
    paths = g.flow_path(x_T, ts, p)
    pred = torch.stack([g.denoiser(paths[i], float(ts[i]), p) for i in range(len(ts))])
    final = g.flow(x_T, p.t_max, 0.0, p)
    fig = matplotlib.figure.Figure()
    axs = fig.subplots(1, 2)
    lesson.plot_mode_predictions(torch.exp(-p.lam(ts)), pred, final, ev, modes=(0, 1, 3), path_modes=(0, 3),
                                 n_paths=3, axs=axs)
    left, right = axs
    # left: 3 paths per mode in units of sqrt(lambda_k), then their final values as dots
    np.testing.assert_allclose(left.lines[0].get_ydata(), (pred[:, 0, 0] / 2.0).numpy())
    np.testing.assert_allclose(left.lines[3].get_ydata(), (final[:3, 0] / 2.0).numpy())
    assert len({ln.get_color() for ln in left.lines}) == 2
    # right: the ratio on path 0 is sqrt of the signal fraction; every mode has its own colour
    d = torch.stack([g.signal_fraction(float(t), p) for t in ts])
    np.testing.assert_allclose(right.lines[0].get_ydata(), d[:, 0].sqrt().numpy(), rtol=1e-8)
    colours = [ln.get_color() for ln in right.lines[0:6:2]]
    assert len(set(colours)) == 3
    with pytest.raises(ValueError, match="pred"):
        lesson.plot_mode_predictions(torch.exp(-p.lam(ts)), pred[0], final, ev, axs=axs)
    with pytest.raises(ValueError, match="at most"):
        lesson.plot_mode_predictions(torch.exp(-p.lam(ts)), pred, final, ev, modes=tuple(range(7)), axs=axs)


def test_the_lesson_calls_what_all_lists():
    for name in lesson.__all__:
        assert callable(getattr(lesson, name))
