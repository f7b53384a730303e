r"""Lesson 03 (samplers and their errors): the error-vs-steps slider and the exercise checkers.

The maths is in the core: the samplers (Euler, Heun, DDIM, DPM-Solver++, Euler-Maruyama,
predictor-corrector) in :mod:`diffedu.samplers`, the time grids in
:func:`diffedu.processes.time_grid`, the exact Gaussian flow they are measured against in
:mod:`diffedu.gaussian`, the PF-ODE velocity and the reverse-SDE drift in :mod:`diffedu.flows`.
The lesson's plain plots are the shared ones (:mod:`diffedu.teach.plots`).
"""

from __future__ import annotations

import torch

from ..samplers import euler
from . import plots
from . import widgets as _w
from .checks import Feedback, check_close, say, unanswered

__all__ = ["error_vs_steps_widget", "check_order", "check_euler_step"]


# --- widget -----------------------------------------------------------------------------------
def _draw_errors(n_steps, *, steps, errors, orders):
    ax = plots.new_axes(figsize=(5.6, 4.0))
    plots.plot_error_vs_steps(steps, errors, ax, orders=orders)
    ax.axvline(n_steps, color="k", lw=1.0)
    idx = min(range(len(steps)), key=lambda i: abs(steps[i] - n_steps))
    parts = [f"{name}: {float(err[idx]):.2g}" for name, err in errors.items()]
    ax.set_title(f"N = {steps[idx]}  " + ", ".join(parts), fontsize="x-small")
    return ax.figure


def error_vs_steps_widget(steps, errors: dict, *, orders=(1, 2)):
    r"""Error-vs-steps plot (log-log) with a slider picking N; the title lists each method's error.

    steps: increasing step counts (S,); errors: ``{method: (S,) errors}`` computed beforehand;
    orders: the reference slopes ``N^-p`` to draw.
    """
    steps = [int(s) for s in steps]
    if not steps:
        raise ValueError("steps must hold at least one step count")
    if not isinstance(errors, dict) or not errors:
        raise TypeError("errors must be a non-empty dict {method: (S,) errors}")
    return _w.interactive(
        _draw_errors,
        n_steps=_w.selection_slider(steps, steps[len(steps) // 2], "steps N"),
        steps=steps, errors=dict(errors), orders=tuple(orders),
    )


# --- exercise checkers ------------------------------------------------------------------------
def check_order(answer, expected_order: float, *, name: str = "convergence order",
                tol: float = 0.3) -> Feedback:
    """``answer`` = a measured convergence order; right when within ``tol`` of the theory."""
    if unanswered(answer):
        return say("unanswered", name, "")
    try:
        a = float(answer)
    except (TypeError, ValueError):
        return say("wrong", name, f"expected a number, got a {type(answer).__name__}")
    if abs(a - expected_order) <= tol:
        return say("correct", name, f"{a:.2f} is within {tol:g} of the theoretical order")
    side = "too low" if a < expected_order else "too high"
    return say("wrong", name, f"{a:.2f} is {side}: fit log(error) against log(N) and take minus the slope")


def check_euler_step(answer, denoiser, process, x, t_from: float, t_to: float, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` (B, D) = one Euler step of the PF-ODE from ``t_from`` to ``t_to``.

    ``x + (t_to - t_from) v(x, t_from)`` with ``v = f x - 1/2 g^2 s`` and the score from the
    denoiser by Tweedie; the expected value is :func:`diffedu.samplers.euler` on ``[t_from, t_to]``.
    """
    if not t_from > t_to > 0:
        raise ValueError(f"need t_from > t_to > 0 (one step, no final jump); got {t_from}, {t_to}")
    ts = torch.tensor([float(t_from), float(t_to)], dtype=torch.float64)
    return check_close(answer, euler(denoiser, process, x, ts), name=f"Euler step {t_from:g} -> {t_to:g}",
                       rtol=rtol, atol=1e-10)
