"""diffedu.exercises: right answers pass, wrong ones say what is off, missing ones do not raise."""

import math

import pytest
import torch

import diffedu as de
from diffedu import exercises as ex


@pytest.mark.parametrize("missing", [None, ...])
def test_unanswered_prints_and_does_not_raise(missing, capsys):
    checks = [
        lambda a: ex.check_alpha_sigma(a, de.VP(), 0.3),
        lambda a: ex.check_g2(a, de.Linear(), 0.5),
        lambda a: ex.check_time_of_lam(a, de.VE(), 0.0),
        lambda a: ex.check_decision_time(a, 0.25, de.VP()),
        lambda a: ex.check_order(a, 2),
    ]
    for check in checks:
        fb = check(missing)
        assert fb.status == "unanswered" and not fb
        assert capsys.readouterr().out.strip().endswith("not answered yet")


def test_correct_answers(capsys):
    p = de.VP()
    a = math.exp(-0.5 * (0.1 * 0.3 + 0.5 * 19.9 * 0.09))
    assert ex.check_alpha_sigma((a, math.sqrt(1 - a * a)), p, 0.3)
    assert ex.check_g2(2.0, de.Linear(), 0.5)
    assert ex.check_time_of_lam(math.log(1 + 1e4) / (2 * math.log(5000)), de.VE(), 0.0)
    assert ex.check_decision_time(float(de.EDM().t_of_lam(-0.5 * math.log(0.25))), 0.25, de.EDM())
    assert ex.check_order(1.93, 2)
    out = capsys.readouterr().out
    assert out.count("Correct") == 5


def test_wrong_answers_say_what_is_off(capsys):
    assert not ex.check_g2(-2.0, de.Linear(), 0.5)
    assert "sign" in capsys.readouterr().out
    assert not ex.check_g2(4.0, de.Linear(), 0.5)
    assert "factor 2" in capsys.readouterr().out
    assert not ex.check_alpha_sigma((1.0, 2.0, 3.0), de.VP(), 0.3)
    assert "shape" in capsys.readouterr().out
    assert not ex.check_order(1.0, 2)
    assert "too low" in capsys.readouterr().out
    assert not ex.check_close("abc", 1.0)
    assert "numbers" in capsys.readouterr().out
    assert not ex.check_close([1.0, float("nan")], [1.0, 2.0])
    assert "NaN" in capsys.readouterr().out
    fb = ex.check_close([1.0, 2.5, 3.0], [1.0, 2.0, 3.0], show_expected=True)
    assert not fb and "entry (1,)" in fb.message and "expected [1, 2, 3]" in fb.message


def test_gaussian_score_and_denoiser():
    g = de.Gaussian(torch.tensor([1.0, -1.0]), torch.tensor([[2.0, 0.5], [0.5, 1.0]]))
    p = de.VP()
    x = torch.tensor([[0.5, 0.2], [-1.0, 2.0]], dtype=torch.float64)
    a, s = p.alpha(0.4), p.sigma(0.4)
    C = a**2 * g.cov + s**2 * torch.eye(2, dtype=torch.float64)
    score = -torch.linalg.solve(C, (x - a * g.mean).T).T
    assert ex.check_gaussian_score(score, g, x, 0.4, p)
    assert ex.check_denoiser((x + s**2 * score) / a, g, x, 0.4, p)
    assert not ex.check_gaussian_score(score.T, g, x, 0.4, p)
    with pytest.raises(ValueError, match="eigval"):
        ex.check_decision_time(1.0, -1.0, p)


def test_feedback_has_no_second_display(capsys):
    fb = ex.check_g2(2.0, de.Linear(), 0.5)
    assert fb._ipython_display_() is None
    assert "Correct" in fb.message and "Feedback('correct'" in repr(fb)


def test_euler_step():
    g = de.Gaussian(torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.3]))
    p = de.VP()
    x = torch.tensor([[0.1, 0.4], [1.0, -2.0]], dtype=torch.float64)
    t0, t1 = 0.8, 0.7
    v = p.f(t0) * x - 0.5 * p.g2(t0) * g.score(x, t0, p)
    D = g.bind(p).denoiser
    assert ex.check_euler_step(x + (t1 - t0) * v, D, p, x, t0, t1)
    assert not ex.check_euler_step(x + (t0 - t1) * v, D, p, x, t0, t1)
    assert ex.check_euler_step(None, D, p, x, t0, t1).status == "unanswered"
    with pytest.raises(ValueError, match="t_from > t_to"):
        ex.check_euler_step(x, D, p, x, 0.5, 0.0)
