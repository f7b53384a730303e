"""diffedu.teach.samplers_and_errors (lesson 03): the error-vs-steps slider and the order and
Euler-step checkers."""

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


@pytest.mark.parametrize("missing", [None, ...])
def test_unanswered_prints_and_does_not_raise(missing, capsys):
    g = de.Gaussian(torch.zeros(2), torch.ones(2))
    x = torch.zeros(1, 2, dtype=torch.float64)
    for check in (lambda a: lesson.check_order(a, 2),
                  lambda a: lesson.check_euler_step(a, g.bind(de.VP()).denoiser, de.VP(), x, 0.8, 0.7)):
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


def test_euler_step():
    g = de.Gaussian(torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.3]))
    p = de.VP()
    x = torch.tensor([[0.1, 0.4], [1.0, -2.0]], dtype=torch.float64)
    t0, t1 = 0.8, 0.7
    v = p.f(t0) * x - 0.5 * p.g2(t0) * g.score(x, t0, p)
    D = g.bind(p).denoiser
    assert lesson.check_euler_step(x + (t1 - t0) * v, D, p, x, t0, t1)
    assert not lesson.check_euler_step(x + (t0 - t1) * v, D, p, x, t0, t1)
    assert lesson.check_euler_step(None, D, p, x, t0, t1).status == "unanswered"
    with pytest.raises(ValueError, match="t_from > t_to"):
        lesson.check_euler_step(x, D, p, x, 0.5, 0.0)


def test_the_lesson_calls_what_all_lists():
    for name in lesson.__all__:
        assert callable(getattr(lesson, name))
