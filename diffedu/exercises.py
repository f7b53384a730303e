r"""Checkers for the lesson exercises: tolerance checks against the closed forms.

A learner writes an answer into a variable and calls a checker. Each checker prints one line
and returns a :class:`Feedback` (truthy when correct):

* unanswered (``None`` or ``...``): prints ``not answered yet`` and does not raise, so a
  student copy of a lesson, whose solution cells are removed, still runs top to bottom;
* right: says so, with the tolerance used;
* wrong: says what is off (shape, sign, a constant factor, the relative error, which entry).

The expected value always comes from the library's closed forms, never from a stored string.
"""

from __future__ import annotations

import math

import torch

from ._core import check_process

__all__ = [
    "Feedback", "check_close", "check_alpha_sigma", "check_g2", "check_time_of_lam",
    "check_gaussian_score", "check_denoiser", "check_decision_time", "check_order", "check_euler_step",
    "NOT_ANSWERED",
]

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


def _say(status: str, name: str, text: str) -> Feedback:
    prefix = {"correct": "Correct", "wrong": "Not yet", "unanswered": name}[status]
    msg = f"{name}: {NOT_ANSWERED}" if status == "unanswered" else f"{prefix} ({name}): {text}"
    print(msg)
    return Feedback(status, msg)


def _unanswered(answer) -> bool:
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
    if _unanswered(answer):
        return _say("unanswered", name, "")
    try:
        a = torch.as_tensor(answer, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        return _say("wrong", name, f"expected numbers, got a {type(answer).__name__}")
    e = torch.as_tensor(expected, dtype=torch.float64).detach().cpu()
    if a.shape != e.shape:
        if a.numel() == e.numel():
            a = a.reshape(e.shape)
        else:
            return _say("wrong", name, f"shape {tuple(a.shape)}, expected {tuple(e.shape)}")
    if not torch.isfinite(a).all():
        return _say("wrong", name, "contains NaN or inf")
    tol = atol + rtol * e.abs()
    err = (a - e).abs()
    if (err <= tol).all():
        return _say("correct", name, f"matches the closed form within rtol={rtol:g}")
    if ((a + e).abs() <= tol).all():
        return _say("wrong", name, "the sign is flipped")
    ratio = (a / e)[e.abs() > tol]
    if ratio.numel() and (ratio - ratio.mean()).abs().max() <= rtol * ratio.mean().abs():
        return _say("wrong", name, f"off by a constant factor {float(ratio.mean()):.4g}")
    k = int(torch.argmax(err / tol))
    rel = float(err.reshape(-1)[k] / e.abs().reshape(-1)[k].clamp_min(atol))
    where = "" if e.numel() == 1 else f" at entry {tuple(int(i) for i in torch.unravel_index(torch.tensor(k), e.shape))}"
    text = f"relative error {rel:.2g}{where} (tolerance {rtol:g})"
    if show_expected:
        text += f"; expected {_fmt(e)}"
    return _say("wrong", name, text)


# --- lesson 01: forward processes -------------------------------------------------------------
def check_alpha_sigma(answer, process, t, *, rtol: float = 1e-4) -> Feedback:
    """``answer = (alpha_t, sigma_t)`` for ``process`` at time ``t`` (lesson 01)."""
    check_process(process)
    expected = torch.stack([process.alpha(float(t)), process.sigma(float(t))])
    return check_close(answer, expected, name=f"(alpha, sigma) of {type(process).__name__} at t={t:g}",
                       rtol=rtol)


def check_g2(answer, process, t, *, rtol: float = 1e-4) -> Feedback:
    """``answer = g(t)^2``, the squared diffusion coefficient of ``process`` (lesson 01)."""
    check_process(process)
    return check_close(answer, process.g2(float(t)), name=f"g^2 of {type(process).__name__} at t={t:g}",
                       rtol=rtol)


def check_time_of_lam(answer, process, lam, *, rtol: float = 1e-4) -> Feedback:
    """``answer`` = the time at which the half log-SNR of ``process`` equals ``lam`` (lesson 01)."""
    check_process(process)
    return check_close(answer, process.t_of_lam(float(lam)),
                       name=f"t with lambda_t = {lam:g} for {type(process).__name__}", rtol=rtol)


# --- lesson 02: the Gaussian score and flow ---------------------------------------------------
def check_gaussian_score(answer, gaussian, x, t, process, *, rtol: float = 1e-5) -> Feedback:
    """``answer`` (B, D) = the score of the Gaussian's marginal p_t at x (lesson 02)."""
    return check_close(answer, gaussian.score(x, t, process), name=f"score at t={float(t):g}", rtol=rtol,
                       atol=1e-8)


def check_denoiser(answer, dist, x, t, process, *, rtol: float = 1e-5) -> Feedback:
    """``answer`` (B, D) = the Tweedie denoiser ``E[x_0 | x_t = x]`` (lesson 02)."""
    return check_close(answer, dist.denoiser(x, t, process), name=f"denoiser at t={float(t):g}", rtol=rtol,
                       atol=1e-8)


def check_decision_time(answer, eigval: float, process, *, rtol: float = 1e-3) -> Feedback:
    r"""``answer`` = the time at which a mode of variance ``eigval`` is half decided (lesson 02).

    That is where ``sigma_t^2 / alpha_t^2 = eigval``, i.e. ``lambda_t = -1/2 log(eigval)``.
    """
    check_process(process)
    if not eigval > 0:
        raise ValueError(f"eigval must be positive; got {eigval!r}")
    expected = process.t_of_lam(-0.5 * math.log(eigval))
    return check_close(answer, expected, name=f"decision time of a mode with variance {eigval:g}",
                       rtol=rtol)


# --- lesson 03: samplers ----------------------------------------------------------------------
def check_order(answer, expected_order: float, *, name: str = "convergence order",
                tol: float = 0.3) -> Feedback:
    """``answer`` = a measured convergence order; right when within ``tol`` of the theory."""
    if _unanswered(answer):
        return _say("unanswered", name, "")
    try:
        a = float(answer)
    except (TypeError, ValueError):
        return _say("wrong", name, f"expected a number, got a {type(answer).__name__}")
    if abs(a - expected_order) <= tol:
        return _say("correct", name, f"{a:.2f} is within {tol:g} of the theoretical order")
    side = "too low" if a < expected_order else "too high"
    return _say("wrong", name, f"{a:.2f} is {side}: fit log(error) against log(N) and take minus the slope")


def check_euler_step(answer, denoiser, process, x, t_from: float, t_to: float, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` (B, D) = one Euler step of the PF-ODE from ``t_from`` to ``t_to`` (lesson 03).

    ``x + (t_to - t_from) v(x, t_from)`` with ``v = f x - 1/2 g^2 s`` and the score from the
    denoiser by Tweedie; the expected value is :func:`diffedu.samplers.euler` on ``[t_from, t_to]``.
    """
    from .samplers import euler

    if not t_from > t_to > 0:
        raise ValueError(f"need t_from > t_to > 0 (one step, no final jump); got {t_from}, {t_to}")
    ts = torch.tensor([float(t_from), float(t_to)], dtype=torch.float64)
    return check_close(answer, euler(denoiser, process, x, ts), name=f"Euler step {t_from:g} -> {t_to:g}",
                       rtol=rtol, atol=1e-10)
