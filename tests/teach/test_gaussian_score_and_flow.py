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
                  lambda a: lesson.check_gaussian_score(a, g, x, 0.3, de.VP()),
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


def test_gaussian_score_and_denoiser():
    g = de.Gaussian(torch.tensor([1.0, -1.0]), torch.tensor([[2.0, 0.5], [0.5, 1.0]]))
    p = de.VP()
    x = torch.tensor([[0.5, 0.2], [-1.0, 2.0]], dtype=torch.float64)
    a, s = p.alpha(0.4), p.sigma(0.4)
    C = a**2 * g.cov + s**2 * torch.eye(2, dtype=torch.float64)
    score = -torch.linalg.solve(C, (x - a * g.mean).T).T
    assert lesson.check_gaussian_score(score, g, x, 0.4, p)
    assert lesson.check_denoiser((x + s**2 * score) / a, g, x, 0.4, p)
    assert not lesson.check_gaussian_score(score.T, g, x, 0.4, p)
    assert not lesson.check_denoiser(x, g, x, 0.4, p)


def test_the_lesson_calls_what_all_lists():
    for name in lesson.__all__:
        assert callable(getattr(lesson, name))
