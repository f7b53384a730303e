r"""Lesson 03 (samplers and their errors): the error-vs-cost slider and the exercise checkers.

The maths is in the core: the samplers (Euler, Heun, DDIM, DPM-Solver++, the corrected third-order
multistep, Euler-Maruyama, DDPM ancestral, predictor-corrector) in :mod:`diffedu.samplers`, the
exact laws of the linear stochastic samplers on Gaussian data in :mod:`diffedu.linear_gaussian`,
the time grids in :func:`diffedu.processes.time_grid`, the exact Gaussian flow the samplers are
measured against in :mod:`diffedu.gaussian`. The lesson's plain plots are the shared ones
(:mod:`diffedu.teach.plots`).
"""

from __future__ import annotations

import torch

from ..gaussian import Gaussian
from ..processes import EDM, VE, VP, Linear
from ..samplers import euler, heun
from . import plots
from . import widgets as _w
from .checks import Feedback, check_implementation, say, unanswered

__all__ = ["error_vs_steps_widget", "check_order", "check_euler_step", "check_heun_step"]


# --- widget -----------------------------------------------------------------------------------
def _draw_errors(n_steps, *, steps, errors, orders, calls):
    ax = plots.new_axes(figsize=(5.6, 4.0))
    idx = min(range(len(steps)), key=lambda i: abs(steps[i] - n_steps))
    if calls is None:
        plots.plot_error_vs_steps(steps, errors, ax, orders=orders)
        ax.axvline(steps[idx], color="k", lw=1.0)
        parts = [f"{name}: {float(err[idx]):.2g}" for name, err in errors.items()]
    else:
        plots.plot_error_vs_steps(calls, errors, ax, orders=orders, xlabel="denoiser calls")
        for i, (name, err) in enumerate(errors.items()):  # each method's point at this N
            ax.plot([calls[name][idx]], [float(err[idx])], "o", ms=9, mfc="none", mec="k", mew=1.2)
        parts = [f"{name}: {float(err[idx]):.2g} ({int(calls[name][idx])} calls)" for name, err in errors.items()]
    ax.set_title(f"N = {steps[idx]} steps\n" + ", ".join(parts), fontsize="x-small")
    return ax.figure


def error_vs_steps_widget(steps, errors: dict, *, calls: dict | None = None, orders=(1, 2)):
    r"""Error plot (log-log) with a slider picking the number of steps N; the title lists each
    method's error at N.

    steps: increasing step counts (S,); errors: ``{method: (S,) errors}`` computed beforehand;
    calls: ``{method: (S,) denoiser calls}`` (optional): then the x axis is the cost in denoiser
    calls (Heun makes two per step) and each method's point at N is circled; without it, the x
    axis is N and a vertical line marks it. orders: the reference slopes to draw.
    """
    steps = [int(s) for s in steps]
    if not steps:
        raise ValueError("steps must hold at least one step count")
    if not isinstance(errors, dict) or not errors:
        raise TypeError("errors must be a non-empty dict {method: (S,) errors}")
    if calls is not None:
        if not isinstance(calls, dict) or set(calls) != set(errors):
            raise TypeError("calls must be a dict {method: (S,) denoiser calls} with the methods of errors")
        calls = {name: [int(c) for c in calls[name]] for name in errors}
    return _w.interactive(
        _draw_errors,
        n_steps=_w.selection_slider(steps, steps[len(steps) // 2], "steps N"),
        steps=steps, errors=dict(errors), orders=tuple(orders), calls=calls,
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


_PROCESSES = (VP(), VE(), EDM(), Linear())


def _step_inputs(generator, dtype, shape):
    """One case: a process drawn from the four, Gaussian data N(mean, cov) of x's dimension and its
    exact denoiser D, x drawn from the exact marginal at t in (0.1, 0.9) t_max, and
    t_next in (0.5, 0.95) t (one step towards the data, sigma > 0 at both ends)."""
    B, dim = shape
    process = _PROCESSES[int(torch.randint(len(_PROCESSES), (), generator=generator))]
    A = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    gauss = Gaussian(torch.randn(dim, generator=generator, dtype=torch.float64),
                     A @ A.T / dim + 0.05 * torch.eye(dim, dtype=torch.float64))
    t = float(0.1 + 0.8 * torch.rand((), generator=generator, dtype=torch.float64)) * process.t_max
    t_next = t * float(0.5 + 0.45 * torch.rand((), generator=generator, dtype=torch.float64))
    x = gauss.sample_marginal(B, t, process, generator=generator, dtype=dtype)
    return {"D": gauss.bind(process).denoiser, "process": process, "x": x, "t": t, "t_next": t_next}


def _one_step(sampler):
    def step(D, process, x, t, t_next):
        return sampler(D, process, x, torch.tensor([t, t_next], dtype=torch.float64))
    return step


def check_euler_step(answer) -> Feedback:
    r"""``answer(D, process, x, t, t_next)`` = one Euler step of the PF-ODE from t to t_next < t:
    ``x + (t_next - t) v(x, t)`` with ``v = f x - 1/2 g^2 s`` and the score from the denoiser by
    Tweedie, ``s = (alpha_t D(x, t) - x) / sigma_t^2``; (B, D) in x's dtype.

    Checked on fresh inputs (four processes, Gaussian data with their exact denoiser, several
    shapes, float32 and float64) against :func:`diffedu.samplers.euler` on the grid ``[t, t_next]``
    (t_next > 0: no final jump)."""
    return check_implementation(answer, _one_step(euler), _step_inputs, name="Euler step")


def check_heun_step(answer) -> Feedback:
    r"""``answer(D, process, x, t, t_next)`` = one Heun step of the PF-ODE from t to t_next < t:
    the Euler step to ``x~``, then ``x + (t_next - t)/2 [v(x, t) + v(x~, t_next)]``; (B, D).

    Checked like :func:`check_euler_step`, against :func:`diffedu.samplers.heun` on ``[t, t_next]``."""
    return check_implementation(answer, _one_step(heun), _step_inputs, name="Heun step")
