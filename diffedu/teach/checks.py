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

import torch


__all__ = ["Feedback", "check_close", "check_denoiser", "say", "unanswered", "NOT_ANSWERED"]

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


def check_close(answer, expected, *, name: str = "answer", rtol: float = 1e-3, atol: float = 1e-8,
                show_expected: bool = False) -> Feedback:
    r"""Compare ``answer`` with ``expected`` entrywise: ``|a - e| <= atol + rtol |e|``.

    answer: a number, sequence or tensor (or None / ... when not answered). expected: the
    closed-form value. When wrong, the message names the shape mismatch, a flipped sign,
    a constant factor, or the worst entry and its relative error.
    """
    if unanswered(answer):
        return say("unanswered", name, "")
    try:
        a = torch.as_tensor(answer, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        return say("wrong", name, f"expected numbers, got a {type(answer).__name__}")
    e = torch.as_tensor(expected, dtype=torch.float64).detach().cpu()
    if a.shape != e.shape:
        if a.numel() == e.numel():
            a = a.reshape(e.shape)
        else:
            return say("wrong", name, f"shape {tuple(a.shape)}, expected {tuple(e.shape)}")
    if not torch.isfinite(a).all():
        return say("wrong", name, "contains NaN or inf")
    tol = atol + rtol * e.abs()
    err = (a - e).abs()
    if (err <= tol).all():
        return say("correct", name, f"matches the closed form within rtol={rtol:g}")
    if ((a + e).abs() <= tol).all():
        return say("wrong", name, "the sign is flipped")
    ratio = (a / e)[e.abs() > tol]
    if ratio.numel() and (ratio - ratio.mean()).abs().max() <= rtol * ratio.mean().abs():
        return say("wrong", name, f"off by a constant factor {float(ratio.mean()):.4g}")
    k = int(torch.argmax(err / tol))
    rel = float(err.reshape(-1)[k] / e.abs().reshape(-1)[k].clamp_min(atol))
    where = "" if e.numel() == 1 else f" at entry {tuple(int(i) for i in torch.unravel_index(torch.tensor(k), e.shape))}"
    text = f"relative error {rel:.2g}{where} (tolerance {rtol:g})"
    if show_expected:
        text += f"; expected {_fmt(e)}"
    return say("wrong", name, text)


def check_denoiser(answer, dist, x, t, process, *, rtol: float = 1e-5) -> Feedback:
    """``answer`` (B, D) = the Tweedie denoiser ``E[x_0 | x_t = x]`` (lesson 02)."""
    return check_close(answer, dist.denoiser(x, t, process), name=f"denoiser at t={float(t):g}", rtol=rtol,
                       atol=1e-8)
