"""diffedu.teach.samplers_and_errors (lesson 03): the error-vs-cost slider, the order checker and the
implementation checkers of an Euler and a Heun step."""

import ipywidgets as W
import numpy as np
import pytest
import torch

import diffedu as de
from diffedu.teach import samplers_and_errors as lesson


def controls(w):
    assert w.auto_display, "interactive shows a returned (non-pyplot) figure only with auto_display"
    return {c.description: c for c in w.children if isinstance(c, W.ValueWidget)}


def test_error_vs_steps_widget():
    steps = [4, 8, 16, 32]
    errs = {"euler": [1 / s for s in steps], "heun": [1 / s**2 for s in steps]}
    w = lesson.error_vs_steps_widget(steps, errs)
    assert set(controls(w)) == {"steps N"}
    assert controls(w)["steps N"].value == 16
    controls(w)["steps N"].value = 32
    ax = w.result.axes[0]
    assert "N = 32" in ax.get_title() and "heun: 0.00098" in ax.get_title()
    np.testing.assert_allclose(ax.lines[1].get_ydata(), errs["heun"])
    assert ax.lines[-1].get_xdata()[0] == 32  # the marker line at the chosen N
    with pytest.raises(TypeError, match="errors"):
        lesson.error_vs_steps_widget(steps, [])


def test_error_vs_calls_widget():
    steps = [4, 8, 16, 32]
    errs = {"euler": [1 / s for s in steps], "heun": [1 / s**2 for s in steps]}
    calls = {"euler": steps, "heun": [2 * s for s in steps]}
    w = lesson.error_vs_steps_widget(steps, errs, calls=calls)
    controls(w)["steps N"].value = 8
    ax = w.result.axes[0]
    assert ax.get_xlabel() == "denoiser calls"
    np.testing.assert_allclose(ax.lines[1].get_xdata(), calls["heun"])  # heun drawn at its calls
    assert "heun: 0.016 (16 calls)" in ax.get_title() and "N = 8 steps" in ax.get_title()
    circled = [ln for ln in ax.lines if ln.get_marker() == "o" and len(ln.get_xdata()) == 1]
    assert sorted((float(c.get_xdata()[0]), float(c.get_ydata()[0])) for c in circled) == [(8.0, 1 / 8), (16.0, 1 / 64)]
    with pytest.raises(TypeError, match="calls"):
        lesson.error_vs_steps_widget(steps, errs, calls={"euler": steps})


@pytest.mark.parametrize("missing", [None, ...])
def test_unanswered_prints_and_does_not_raise(missing, capsys):
    g = de.Gaussian(torch.zeros(2), torch.ones(2))
    x = torch.zeros(1, 2, dtype=torch.float64)
    for check in (lambda a: lesson.check_order(a, 2), lesson.check_euler_step, lesson.check_heun_step):
        fb = check(missing)
        assert fb.status == "unanswered" and not fb
        assert capsys.readouterr().out.strip().endswith("not answered yet")


def test_order(capsys):
    assert lesson.check_order(1.93, 2)
    assert "Correct" in capsys.readouterr().out
    assert not lesson.check_order(1.0, 2)
    assert "too low" in capsys.readouterr().out
    assert not lesson.check_order(3.0, 2)
    assert "too high" in capsys.readouterr().out
    assert not lesson.check_order("two", 2)
    assert "expected a number" in capsys.readouterr().out


def _velocity(D, process, x, t):
    score = (process.alpha(t) * D(x, t) - x) / process.sigma(t) ** 2
    return process.f(t) * x - 0.5 * process.g2(t) * score


def _euler(D, process, x, t, t_next):
    return x + (t_next - t) * _velocity(D, process, x, t)


def _euler_in_denoiser_form(D, process, x, t, t_next):  # v = alpha' D + (sigma'/sigma)(x - alpha D)
    d = D(x, t)
    v = process.d_alpha(t) * d + process.d_sigma(t) / process.sigma(t) * (x - process.alpha(t) * d)
    return x + (t_next - t) * v


def _heun(D, process, x, t, t_next, *, second_time=None):
    h = t_next - t
    v0 = _velocity(D, process, x, t)
    x1 = x + h * v0
    return x + h / 2 * (v0 + _velocity(D, process, x1, t_next if second_time is None else second_time(t, t_next)))


@pytest.mark.parametrize("answer", [_euler, _euler_in_denoiser_form], ids=["score_form", "denoiser_form"])
def test_euler_step_accepts_right_implementations(answer, capsys):
    fb = lesson.check_euler_step(answer)
    assert fb and "18 fresh cases" in fb.message, fb.message


def test_heun_step_accepts_a_right_implementation(capsys):
    fb = lesson.check_heun_step(_heun)
    assert fb and "18 fresh cases" in fb.message, fb.message


@pytest.mark.parametrize("check, answer, says", [
    (lesson.check_euler_step, lambda D, process, x, t, t_next: x + (t - t_next) * _velocity(D, process, x, t), "relative error"),
    (lesson.check_euler_step, lambda D, process, x, t, t_next: x + (t_next - t) * (
        process.f(t) * x - process.g2(t) * (process.alpha(t) * D(x, t) - x) / process.sigma(t) ** 2), "relative error"),  # the SDE's g^2
    (lesson.check_euler_step, lambda D, process, x, t, t_next: x + (t_next - t) * (
        process.f(t) * x - 0.5 * process.g2(t) * (process.alpha(t) * D(x, t) - x) / process.sigma(t)), "relative error"),  # sigma, not sigma^2
    (lesson.check_euler_step, lambda D, process, x, t, t_next: _euler(D, process, x.double(), t, t_next), "keep the input's dtype"),
    (lesson.check_heun_step, _euler, "relative error"),                                        # no correction
    (lesson.check_heun_step, lambda D, process, x, t, t_next: _heun(D, process, x, t, t_next, second_time=lambda a, b: a),
     "relative error"),                                                                        # v at the old time
])
def test_steps_wrong_implementations_say_what_is_off(check, answer, says, capsys):
    fb = check(answer)
    assert fb.status == "wrong" and says in fb.message, fb.message
    assert "process = " in fb.message and "t_next = " in fb.message


def test_step_checker_draws_valid_one_step_grids():
    for seed in range(20):
        kw = lesson._step_inputs(torch.Generator().manual_seed(seed), torch.float32, (3, 2))
        p = kw["process"]
        assert 0 < kw["t_next"] < kw["t"] < p.t_max and kw["x"].dtype == torch.float32
        torch.testing.assert_close(lesson._one_step(de.euler)(**kw), _euler(**kw), rtol=2e-4, atol=1e-6)


def test_the_lesson_calls_what_all_lists():
    for name in lesson.__all__:
        assert callable(getattr(lesson, name))
