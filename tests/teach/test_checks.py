"""diffedu.teach.checks: what a learner is told for each kind of wrong answer (issue: scalar
answers, shapes, zeros), and that right answers, unanswered ones and non-numbers are handled."""

import math

import pytest
import torch

from diffedu.teach.checks import Feedback, check_close, check_implementation, recognisable_factor

E = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]], dtype=torch.float64)


def said(capsys, answer, expected, **kw):
    fb = check_close(answer, expected, name="answer", **kw)
    out = capsys.readouterr().out.strip()
    assert isinstance(fb, Feedback) and out == fb.message
    return fb, out


def test_right_unanswered_and_not_numbers(capsys):
    fb, out = said(capsys, E.clone(), E)
    assert fb and out == "Correct (answer): matches the closed form within rtol=0.001"
    for nothing in (None, ...):
        fb, out = said(capsys, nothing, E)
        assert fb.status == "unanswered" and out == "answer: not answered yet"
    fb, out = said(capsys, "3.1", 3.1)
    assert fb.status == "wrong" and "expected numbers, got a str" in out
    fb, out = said(capsys, [0.25], 0.25)  # a number in a list is still that number
    assert fb


@pytest.mark.parametrize("answer, expected, message", [
    (0.9577, 1.0, "Not yet (answer): relative error 0.042 (tolerance 0.001)"),
    (-0.00372, 0.25, "Not yet (answer): the sign is wrong (expected positive, of order 1e-1); "
                     "relative error 1 (tolerance 0.001)"),
    (12.5, 0.0123, "Not yet (answer): the size is wrong: expected positive, of order 1e-2, yours is of "
                   "order 1e1; relative error 1e+03 (tolerance 0.001)"),
    (0.0, 0.731, "Not yet (answer): your answer is zero; expected positive, of order 1e-1"),
    (0.5, 0.25, "Not yet (answer): your answer is 2 times the expected value"),
    (0.125, 0.25, "Not yet (answer): your answer is 1/2 times the expected value"),
    (math.pi * 0.3, 0.3, "Not yet (answer): your answer is pi times the expected value"),
    (math.sqrt(2) * -0.3, 0.3, "Not yet (answer): your answer is -sqrt 2 times the expected value"),
    (-0.3, 0.3, "Not yet (answer): the sign is flipped"),
    # an answer of 0: no sign, size or distance (it said "the sign is wrong (expected zero)")
    (10.0, 0.0, "Not yet (answer): not the expected value; recompute it step by step"),
    (-2.0, 0.0, "Not yet (answer): not the expected value; recompute it step by step"),
])
def test_a_wrong_number_is_described_usefully(capsys, answer, expected, message):
    """No "off by a constant factor 0.9577" for a single number: a factor is named only when it
    is recognisable; otherwise the sign, the order of magnitude and the relative error."""
    fb, out = said(capsys, answer, expected)
    assert fb.status == "wrong" and out == message


def test_a_wrong_shape_is_a_wrong_shape_and_a_transpose_is_named(capsys):
    _, out = said(capsys, E.T, E)
    assert out.endswith("your answer is transposed: shape (3, 2), expected (2, 3); its transpose is right")
    _, out = said(capsys, E.reshape(3, 2), E)   # same size, not the transpose: never reshaped
    assert "shape (3, 2) is the transpose of the expected (2, 3)" in out
    fb, out = said(capsys, E.reshape(-1), E)
    assert not fb and "shape (6,), expected (2, 3): the same number of entries in another shape" in out
    _, out = said(capsys, torch.zeros(4), E)
    assert out.endswith("shape (4,), expected (2, 3)")


def test_zero_nan_and_constant_factors_of_tensors(capsys):
    _, out = said(capsys, torch.zeros(2, 3), E)
    assert out.endswith("your answer is zero everywhere; expected entries up to 6.5 in size")
    _, out = said(capsys, 0.5 * E, E)
    assert out.endswith("every entry is off by the same factor 1/2")
    _, out = said(capsys, 0.9577 * E, E)
    assert out.endswith("every entry is off by the same factor 0.9577 (a coefficient in your formula?)")
    bad = E.clone()
    bad[1, 1] += 0.3
    _, out = said(capsys, bad, E)
    assert out.endswith("relative error 0.06 at entry (1, 1) (tolerance 0.001)")
    bad[0, 0] = float("nan")
    _, out = said(capsys, bad, E)
    assert out.endswith("contains NaN or inf")


def test_recognisable_factor():
    assert recognisable_factor(2.0) == "2" and recognisable_factor(-0.5) == "-1/2"
    assert recognisable_factor(1 / math.sqrt(2 * math.pi)) == "1/sqrt(2 pi)"
    assert recognisable_factor(0.9577) is None and recognisable_factor(1.0) is None


# --- the implementation checker ------------------------------------------------------------------
def _inputs(generator, dtype, shape):
    return {"x": torch.randn(shape, generator=generator, dtype=dtype),
            "h": float(torch.rand((), generator=generator, dtype=torch.float64)) + 0.1}


def _reference(x, h):
    return x + h * torch.tanh(x)


def test_implementation_checker_accepts_a_right_method_written_differently(capsys):
    fb = check_implementation(lambda x, h: x + h * (torch.exp(2 * x) - 1) / (torch.exp(2 * x) + 1),
                              _reference, _inputs, name="step")
    out = capsys.readouterr().out
    assert fb and "agrees with the library on 18 fresh cases (3 shapes, float64, float32)" in out


@pytest.mark.parametrize("answer, expect", [
    (lambda x, h: 2 * (x + h * torch.tanh(x)), "every entry is off by the same factor 2"),
    (lambda x, h: x + 2 * h * torch.tanh(x), "relative error"),
    (lambda x, h: (x + h * torch.tanh(x)).reshape(-1), "shape (8,), expected (4, 2)"),
    (lambda x, h: (x + h * torch.tanh(x)).double(), "returned float64, expected float32 (keep the input's dtype)"),
    (lambda x, h: float(h), "returned a float, expected a tensor"),
    (lambda x, h: x.foo(), "raised AttributeError"),
    (lambda x, h: x + h * torch.tanh(x) + 1e-6 * (x.shape[0] > 5), "relative error"),
])
def test_implementation_checker_reports_the_first_failing_case(capsys, answer, expect):
    fb = check_implementation(answer, _reference, _inputs, name="step")
    out = capsys.readouterr().out
    assert fb.status == "wrong" and expect in out and "on the inputs x: (" in out and "(seed " in out


def test_implementation_checker_takes_tolerances_by_dtype(capsys):
    """A looser float32 tolerance is accepted (a dict keyed by dtype) and used."""
    off = lambda x, h: x + h * torch.tanh(x) * (1 + 5e-4)  # noqa: E731  (a 5e-4 relative error)
    assert check_implementation(off, _reference, _inputs, name="step").status == "wrong"
    fb = check_implementation(off, _reference, _inputs, name="step", dtypes=(torch.float32,),
                              tolerances={torch.float32: (1e-3, 1e-6)})
    assert fb


def test_implementation_checker_unanswered_and_not_a_function(capsys):
    assert check_implementation(None, _reference, _inputs, name="step").status == "unanswered"
    assert "expected a function, got a int" in check_implementation(3, _reference, _inputs, name="step").message


def test_show_expected_names_the_closed_form(capsys):
    """(moved from tests/test_exercises.py) show_expected appends the expected value to a wrong answer."""
    _, out = said(capsys, [1.0, 2.5, 3.0], [1.0, 2.0, 3.0], show_expected=True)
    assert "at entry (1,)" in out and out.endswith("expected [1, 2, 3]")
    _, out = said(capsys, 2.5, 2.0, show_expected=True)
    assert out.endswith("expected 2")
    _, out = said(capsys, 2.5, 2.0)
    assert "expected 2" not in out
