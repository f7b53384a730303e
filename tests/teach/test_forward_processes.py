"""diffedu.teach.forward_processes (lesson 01): the marginal-density slider redraws the closed-form
density, and the checkers grade right, wrong and missing answers."""

import math

import ipywidgets as W
import matplotlib.figure
import numpy as np
import pytest
import torch

import diffedu as de
from diffedu.teach import forward_processes as lesson

PROCS = {"VP": de.VP(), "VE": de.VE(), "EDM": de.EDM(), "Linear": de.Linear()}


def controls(w):
    assert w.auto_display, "interactive shows a returned (non-pyplot) figure only with auto_display"
    return {c.description: c for c in w.children if isinstance(c, W.ValueWidget)}


def line_data(fig, i=1):
    return fig.axes[0].lines[i].get_ydata().copy()


def test_marginal_density_1d_controls_and_redraw():
    m = de.GaussianMixture([0.3, 0.7], [[-2.0], [1.5]], [[0.2], [0.5]])
    w = lesson.marginal_density_widget(m, PROCS)
    assert set(controls(w)) == {"process", "t / t_max"}
    fig = w.result
    assert isinstance(fig, matplotlib.figure.Figure)
    before = line_data(fig)
    controls(w)["t / t_max"].value = 0.8
    assert w.result is not fig
    after = line_data(w.result)
    assert not np.allclose(before, after)
    # the plotted curve is the closed-form density at the slider's time
    x = torch.as_tensor(w.result.axes[0].lines[1].get_xdata())[:, None]
    np.testing.assert_allclose(after, torch.exp(m.log_prob(x, 0.8, PROCS["VP"])).numpy(), rtol=1e-10)
    controls(w)["process"].value = "EDM"
    np.testing.assert_allclose(line_data(w.result),
                               torch.exp(m.log_prob(x, 0.8 * 80.0, PROCS["EDM"])).numpy(), rtol=1e-10)
    assert "EDM: t = 64" in w.result.axes[0].get_title()


def test_marginal_density_2d_redraws_image():
    m = de.GaussianMixture([0.5, 0.5], [[-1.5, 0.0], [1.5, 1.0]], [[0.3, 0.3], [0.2, 0.6]])
    w = lesson.marginal_density_widget(m, {"VP": de.VP()})
    img0 = w.result.axes[0].images[0].get_array().copy()
    controls(w)["t / t_max"].value = 0.9
    assert not np.allclose(img0, w.result.axes[0].images[0].get_array())


def test_marginal_density_bad_input():
    with pytest.raises(ValueError, match="dim"):
        lesson.marginal_density_widget(de.Gaussian(torch.zeros(3), torch.ones(3)), PROCS)
    with pytest.raises(TypeError, match="processes"):
        lesson.marginal_density_widget(de.Gaussian(torch.zeros(1), torch.ones(1)), {"bad": 1})
    with pytest.raises(TypeError, match="processes"):
        lesson.marginal_density_widget(de.Gaussian(torch.zeros(1), torch.ones(1)), [de.VP()])


@pytest.mark.parametrize("missing", [None, ...])
def test_unanswered_prints_and_does_not_raise(missing, capsys):
    checks = [
        lambda a: lesson.check_alpha_sigma(a, de.VP(), 0.3),
        lambda a: lesson.check_g2(a, de.Linear(), 0.5),
        lambda a: lesson.check_time_of_lam(a, de.VE(), 0.0),
    ]
    for check in checks:
        fb = check(missing)
        assert fb.status == "unanswered" and not fb
        assert capsys.readouterr().out.strip().endswith("not answered yet")


def test_correct_answers(capsys):
    a = math.exp(-0.5 * (0.1 * 0.3 + 0.5 * 19.9 * 0.09))
    assert lesson.check_alpha_sigma((a, math.sqrt(1 - a * a)), de.VP(), 0.3)
    assert lesson.check_g2(2.0, de.Linear(), 0.5)
    assert lesson.check_time_of_lam(math.log(1 + 1e4) / (2 * math.log(5000)), de.VE(), 0.0)
    assert capsys.readouterr().out.count("Correct") == 3


def test_wrong_answers_say_what_is_off(capsys):
    assert not lesson.check_g2(-2.0, de.Linear(), 0.5)
    assert "sign" in capsys.readouterr().out
    assert not lesson.check_g2(4.0, de.Linear(), 0.5)
    assert "2 times the expected value" in capsys.readouterr().out
    assert not lesson.check_alpha_sigma((1.0, 2.0, 3.0), de.VP(), 0.3)
    assert "shape" in capsys.readouterr().out
    assert not lesson.check_time_of_lam(0.5, de.VE(), 0.0)
    assert "relative error" in capsys.readouterr().out
    with pytest.raises(TypeError, match="process"):
        lesson.check_g2(1.0, "VP", 0.5)


# --- the implementation exercise: the learner writes the forward noising --------------------------
def _right(process, x0, t, eps):
    return process.alpha(t)[:, None] * x0 + process.sigma(t)[:, None] * eps


def _right_other_way(process, x0, t, eps):  # through lambda: x_t = alpha (x0 + e^{-lambda} eps)
    return process.alpha(t)[:, None] * (x0 + torch.exp(-process.lam(t))[:, None] * eps)


@pytest.mark.parametrize("answer", [_right, _right_other_way], ids=["direct", "via_lambda"])
def test_forward_noise_accepts_right_implementations(answer, capsys):
    fb = lesson.check_forward_noise(answer)
    assert fb, fb.message
    assert "18 fresh cases" in fb.message and "float32" in fb.message


@pytest.mark.parametrize("answer, says", [
    (lambda process, x0, t, eps: process.alpha(t)[:, None] * x0 + process.sigma(t)[:, None] ** 2 * eps,
     "relative error"),                                               # sigma^2 instead of sigma
    (lambda process, x0, t, eps: x0 + process.sigma(t)[:, None] * eps, "relative error"),   # no alpha
    (lambda process, x0, t, eps: process.alpha(t) * x0 + process.sigma(t) * eps, "raised RuntimeError"),  # no [:, None]
    (lambda process, x0, t, eps: process.alpha(t.double())[:, None] * x0 + process.sigma(t.double())[:, None] * eps,
     "keep the input's dtype"),
    (lambda process, x0, t, eps: (process.alpha(t)[:, None] * x0 + process.sigma(t)[:, None] * eps).sum(1),
     "shape"),
])
def test_forward_noise_wrong_implementations_say_what_is_off(answer, says, capsys):
    fb = lesson.check_forward_noise(answer)
    assert not fb and fb.status == "wrong"
    assert says in fb.message and "on the inputs process = " in fb.message, fb.message


def test_forward_noise_unanswered(capsys):
    assert lesson.check_forward_noise(None).status == "unanswered"
    assert capsys.readouterr().out.strip().endswith("not answered yet")


def test_feedback_has_no_second_display(capsys):
    fb = lesson.check_g2(2.0, de.Linear(), 0.5)
    assert fb._ipython_display_() is None
    assert "Correct" in fb.message and "Feedback('correct'" in repr(fb)


def test_the_lesson_calls_what_all_lists():
    for name in lesson.__all__:
        assert callable(getattr(lesson, name))
