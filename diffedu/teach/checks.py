r"""What every lesson's exercise checkers share: :class:`Feedback` and :func:`check_close`.

A learner writes an answer into a variable and calls a checker. Each checker prints one line
and returns a :class:`Feedback` (truthy when correct):

* unanswered (``None`` or ``...``): prints ``not answered yet`` and does not raise, so a
  student copy of a lesson, whose solution cells are removed, still runs top to bottom;
* right: says so, with the tolerance used;
* wrong: says what is off (shape, sign, a constant factor, the relative error, which entry).

The expected value always comes from the library's closed forms, never from a stored string.
Each lesson's own checkers live in its module (``diffedu.teach.<topic>``) and are built on these.
"""

from __future__ import annotations

import math

import torch


__all__ = ["Feedback", "check_close", "check_denoiser", "check_implementation", "say", "unanswered",
           "recognisable_factor", "RECOGNISABLE_FACTORS", "TOLERANCES", "NOT_ANSWERED"]

NOT_ANSWERED = "not answered yet"


class Feedback:
    """Result of a checker: ``status`` is "correct", "wrong" or "unanswered"; truthy if correct.

    The checker has already printed ``message``, so in a notebook this object displays nothing.
    """

    def __init__(self, status: str, message: str):
        self.status, self.message = status, message

    def __bool__(self):
        return self.status == "correct"

    def __repr__(self):
        return f"Feedback({self.status!r}, {self.message!r})"

    def _ipython_display_(self):  # the message was printed once already
        pass


def say(status: str, name: str, text: str) -> Feedback:
    prefix = {"correct": "Correct", "wrong": "Not yet", "unanswered": name}[status]
    msg = f"{name}: {NOT_ANSWERED}" if status == "unanswered" else f"{prefix} ({name}): {text}"
    print(msg)
    return Feedback(status, msg)


def unanswered(answer) -> bool:
    return answer is None or answer is Ellipsis


def _fmt(v: torch.Tensor) -> str:
    return f"{float(v):.4g}" if v.numel() == 1 else "[" + ", ".join(f"{float(a):.4g}" for a in v.reshape(-1)[:4]) + (", ...]" if v.numel() > 4 else "]")


#: Factors a student's answer is plausibly off by (a forgotten 2, pi, square root, ...), by name.
RECOGNISABLE_FACTORS = {
    "2": 2.0, "1/2": 0.5, "3": 3.0, "1/3": 1 / 3, "4": 4.0, "1/4": 0.25, "10": 10.0, "1/10": 0.1,
    "pi": math.pi, "1/pi": 1 / math.pi, "2 pi": 2 * math.pi, "1/(2 pi)": 1 / (2 * math.pi),
    "sqrt 2": math.sqrt(2), "1/sqrt 2": 1 / math.sqrt(2), "sqrt(2 pi)": math.sqrt(2 * math.pi),
    "1/sqrt(2 pi)": 1 / math.sqrt(2 * math.pi), "e": math.e, "1/e": 1 / math.e,
}


def recognisable_factor(ratio: float, rtol: float = 1e-3) -> str | None:
    """The name of a :data:`RECOGNISABLE_FACTORS` entry (or minus one) within ``rtol`` of ``ratio``."""
    for name, f in RECOGNISABLE_FACTORS.items():
        for sign, prefix in ((1.0, ""), (-1.0, "-")):
            if abs(ratio - sign * f) <= rtol * f:
                return prefix + name
    return None


def _magnitude(v: float) -> str:
    """``v``'s sign and order of magnitude in words: "positive, of order 1e-3"."""
    if v == 0:
        return "zero"
    sign = "positive" if v > 0 else "negative"
    return f"{sign}, of order 1e{math.floor(math.log10(abs(v))):d}"


def _shape_message(a: torch.Tensor, e: torch.Tensor, rtol: float, atol: float) -> str:
    """What a wrong shape is: transposed, the same entries in another shape, or just wrong."""
    got, want = tuple(a.shape), tuple(e.shape)
    if a.dim() == 2 and e.dim() == 2 and got == want[::-1] and got != want:
        if torch.allclose(a.T, e, rtol=rtol, atol=atol):
            return f"your answer is transposed: shape {got}, expected {want}; its transpose is right"
        return f"shape {got} is the transpose of the expected {want}: check which index is which"
    if a.numel() == e.numel():
        return (f"shape {got}, expected {want}: the same number of entries in another shape; "
                "check the order of the dimensions rather than reshaping")
    return f"shape {got}, expected {want}"


def check_close(answer, expected, *, name: str = "answer", rtol: float = 1e-3, atol: float = 1e-8,
                show_expected: bool = False) -> Feedback:
    r"""Compare ``answer`` with ``expected`` entrywise: ``|a - e| <= atol + rtol |e|``.

    answer: a number, sequence or tensor (or None / ... when not answered). expected: the
    closed-form value. When wrong, the message says what is off: a wrong shape (a transposed
    matrix is named as such; nothing is reshaped), NaN or inf, an answer that is zero, a flipped
    sign; for a single number its expected sign and order of magnitude and the relative error,
    and a factor only when it is a recognisable one (2, 1/2, pi, sqrt 2, ...); for a tensor a
    constant factor across all entries, or the worst entry and its relative error.
    """
    status, text = _verdict(answer, expected, rtol, atol, show_expected)
    return say(status, name, text)


def _verdict(answer, expected, rtol, atol, show_expected=False):
    """``(status, text)`` of :func:`check_close`, without printing."""
    if unanswered(answer):
        return "unanswered", ""
    try:
        a = torch.as_tensor(answer, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        return ("wrong", f"expected numbers, got a {type(answer).__name__}")
    e = torch.as_tensor(expected, dtype=torch.float64).detach().cpu()
    if a.shape != e.shape:
        if not (a.numel() == 1 and e.numel() == 1):
            return ("wrong", _shape_message(a, e, rtol, atol))
        a = a.reshape(e.shape)  # a number given as [x] or a 0-d tensor: the same number
    if not torch.isfinite(a).all():
        return ("wrong", "contains NaN or inf")
    tol = atol + rtol * e.abs()
    err = (a - e).abs()
    if (err <= tol).all():
        return ("correct", f"matches the closed form within rtol={rtol:g}")
    if (a == 0).all():
        return ("wrong", "your answer is zero" + ("" if e.numel() == 1 else " everywhere")
                + (f"; expected {_magnitude(float(e))}" if e.numel() == 1 else
                   f"; expected entries up to {float(e.abs().max()):.2g} in size"))
    if ((a + e).abs() <= tol).all():
        return ("wrong", "the sign is flipped")
    if e.numel() == 1:
        return ("wrong", _scalar_message(float(a), float(e), rtol, show_expected))
    ratio = (a / e)[e.abs() > tol]
    if ratio.numel() and (ratio - ratio.mean()).abs().max() <= rtol * ratio.mean().abs():
        r = float(ratio.mean())
        known = recognisable_factor(r, rtol)
        return ("wrong", f"every entry is off by the same factor {known or f'{r:.4g}'}"
                + ("" if known else " (a coefficient in your formula?)"))
    k = int(torch.argmax(err / tol))
    rel = float(err.reshape(-1)[k] / e.abs().reshape(-1)[k].clamp_min(atol))
    where = f" at entry {tuple(int(i) for i in torch.unravel_index(torch.tensor(k), e.shape))}"
    text = f"relative error {rel:.2g}{where} (tolerance {rtol:g})"
    if show_expected:
        text += f"; expected {_fmt(e)}"
    return ("wrong", text)


def _scalar_message(a: float, e: float, rtol: float, show_expected: bool) -> str:
    """What is off about a single number: a recognisable factor, else its sign, its order of
    magnitude and its relative error; nothing of these when the answer is 0 (each would give it
    away, as "the sign is wrong (expected zero)" did)."""
    if e == 0:  # its sign, its size or its distance from 0 would each give the answer away
        return "not the expected value; recompute it step by step" + ("; expected 0" if show_expected else "")
    known = recognisable_factor(a / e, rtol)
    if known:
        return f"your answer is {known} times the expected value"
    rel = abs(a - e) / abs(e)
    parts = []
    if (a > 0) != (e > 0):
        parts.append(f"the sign is wrong (expected {_magnitude(e)})")
    elif abs(math.log10(abs(a) / abs(e))) >= 1:
        parts.append(f"the size is wrong: expected {_magnitude(e)}, yours is of order "
                     f"1e{math.floor(math.log10(abs(a))):d}")
    parts.append(f"relative error {rel:.2g} (tolerance {rtol:g})")
    text = "; ".join(parts)
    if show_expected:
        text += f"; expected {e:.4g}"
    return text


def check_denoiser(answer, dist, x, t, process, *, rtol: float = 1e-5) -> Feedback:
    """``answer`` (B, D) = the Tweedie denoiser ``E[x_0 | x_t = x]`` (lesson 02)."""
    return check_close(answer, dist.denoiser(x, t, process), name=f"denoiser at t={float(t):g}", rtol=rtol,
                       atol=1e-8)


#: Default tolerances of :func:`check_implementation` by dtype: (rtol, atol).
TOLERANCES = {torch.float64: (1e-9, 1e-12), torch.float32: (2e-4, 1e-6)}


def _describe(kw: dict) -> str:
    """The drawn inputs of one case, briefly: shapes and dtypes of tensors, values of the rest."""
    parts = []
    for k, v in kw.items():
        if isinstance(v, torch.Tensor):
            parts.append(f"{k}: {tuple(v.shape)} {str(v.dtype).replace('torch.', '')}")
        elif callable(v):
            continue
        else:
            parts.append(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v!r}")
    return ", ".join(parts)


def check_implementation(answer, reference, make_inputs, *, name: str = "your function",
                         shapes=((4, 2), (1, 3), (6, 5)), dtypes=(torch.float64, torch.float32),
                         seeds=(0, 1, 2), tolerances=None) -> Feedback:
    r"""Check a function the learner wrote against the library's on fresh inputs the checker draws.

    answer: the learner's function (None / ``...`` when not written yet). reference: the
    library's function with the same signature. ``make_inputs(generator, dtype, shape) -> dict``
    draws the keyword arguments of one case (x of ``shape``, times, a model, the noise a
    stochastic method takes as an argument, ...) from ``generator``. Every combination of
    ``shapes``, ``dtypes`` and ``seeds`` is tried, in that order; both functions get their own
    copy of the inputs. The first case where the answer raises, returns the wrong type, shape or
    dtype, or differs beyond the dtype's tolerance (:data:`TOLERANCES`: rtol, atol) is reported
    with its inputs and what is off (as :func:`check_close` says it). Methods that draw noise
    must take it as an argument (then both see the same draws); the checker never relies on the
    order in which a generator is used.
    """
    if unanswered(answer):
        return say("unanswered", name, "")
    if not callable(answer):
        return say("wrong", name, f"expected a function, got a {type(answer).__name__}")
    tolerances = {**TOLERANCES, **(tolerances or {})}  # keyed by dtype: dict(..., **kw) needs str keys
    n_cases = 0
    for shape in shapes:
        for dtype in dtypes:
            for seed in seeds:
                kw = make_inputs(torch.Generator().manual_seed(seed), dtype, shape)
                where = f"on the inputs {_describe(kw)} (seed {seed})"
                expected = reference(**{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()})
                try:
                    got = answer(**{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()})
                except Exception as exc:  # the learner's code: report any error, with the case
                    return say("wrong", name, f"raised {type(exc).__name__}: {exc} {where}")
                n_cases += 1
                if not isinstance(got, torch.Tensor):
                    return say("wrong", name, f"returned a {type(got).__name__}, expected a tensor {where}")
                if got.shape != expected.shape:
                    return say("wrong", name, _shape_message(got.detach().double().cpu(),
                                                             expected.detach().double().cpu(), 1e-6, 1e-9) + f" {where}")
                if got.dtype != expected.dtype:
                    return say("wrong", name, f"returned {str(got.dtype).replace('torch.', '')}, expected "
                                              f"{str(expected.dtype).replace('torch.', '')} (keep the input's "
                                              f"dtype) {where}")
                rtol, atol = tolerances[dtype]
                g, e = got.detach().double().cpu(), expected.detach().double().cpu()
                if not ((g - e).abs() <= atol + rtol * e.abs()).all():
                    return say("wrong", name, f"{_verdict(g, e, rtol, atol)[1]} {where}")
    return say("correct", name, f"agrees with the library on {n_cases} fresh cases "
                                f"({len(shapes)} shapes, {', '.join(str(d).replace('torch.', '') for d in dtypes)})")
