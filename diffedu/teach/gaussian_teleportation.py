r"""Lesson 07 (Gaussian teleportation): its slider and checkers.

The maths lives in the core: :mod:`diffedu.gaussian_approx` (the explained variance, Monte Carlo
and in closed form for Gaussians, :func:`~diffedu.gaussian_approx.teleport` and
:func:`~diffedu.gaussian_approx.teleport_sweep`), :mod:`diffedu.gaussian` (the exact flow
:meth:`~diffedu.Gaussian.flow`, :func:`~diffedu.fit_gaussian`) and :mod:`diffedu.samplers`. This
module draws teleported against fully sampled points, holds the slider over the number of
skipped steps and checks the exercises.
"""

from __future__ import annotations

import torch

from .._core import check_process
from ..gaussian import Gaussian
from ..gaussian_approx import gaussian_explained_variance, teleport, teleport_sweep
from ..processes import Process
from . import plots
from .checks import Feedback, check_close
from .widgets import int_slider, interactive

__all__ = ["teleport_widget", "check_flow_scale", "check_explained_variance"]


# --- teleported against full samples ----------------------------------------------------------
def plot_teleport(sampler, D, process: Process, x, ts, target, skip: int, ax=None, *, lim=(-3.5, 3.5)):
    r"""2-D samples of the full sampler (grey) and with the first ``skip`` steps replaced by the
    exact Gaussian flow (orange, :func:`~diffedu.gaussian_approx.teleport`), joined by a segment
    per pair; the title gives the RMS move (:func:`~diffedu.gaussian_approx.teleport_sweep`).

    sampler: a sampler of :mod:`diffedu.samplers`; D: its denoiser; x: (B, 2) at
    ``ts[0] = t_max``; ts: (N+1,) decreasing grid; target: the :class:`~diffedu.Gaussian`
    teleported with. Returns the Axes.
    """
    check_process(process)
    ts = torch.as_tensor(ts, dtype=torch.float64)
    full = sampler(D, process, x, ts)
    tel = full if skip == 0 else teleport(sampler, D, process, x, ts[skip:], target, t_from=float(ts[0]))
    rms = float(teleport_sweep(sampler, D, process, x, ts, target, [skip])[0])
    ax = plots._ax(ax)
    for pair in torch.stack([full, tel], 1).numpy():
        ax.plot(pair[:, 0], pair[:, 1], color="C1", lw=0.5, alpha=0.6)
    ax.scatter(*full.T.numpy(), s=6, color="0.5", label="full sampler")
    ax.scatter(*tel.T.numpy(), s=6, color="C1", label="teleported")
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    ax.legend(fontsize="x-small", loc="lower right")
    noise = float(torch.exp(-process.lam(float(ts[skip]))))  # sigma / alpha at the landing time
    ax.set_title(f"{skip} of {ts.numel() - 1} steps skipped (to sigma/alpha = {noise:.3g}): "
                 f"RMS move {rms:.3g}", fontsize="x-small")
    return ax


def _draw_teleport(skip, *, sampler, D, process, x, ts, target, lim):
    ax = plots.new_axes(figsize=(4.8, 4.4))
    return plot_teleport(sampler, D, process, x, ts, target, skip, ax, lim=lim).figure


def teleport_widget(sampler, D, process: Process, x, ts, target):
    """Slider: number of sampler steps skipped by teleportation; draws :func:`plot_teleport`."""
    check_process(process)
    n = torch.as_tensor(ts).numel() - 1
    return interactive(_draw_teleport, skip=int_slider(n // 4, 0, n - 1, "steps skipped"), sampler=sampler,
                       D=D, process=process, x=x, ts=ts, target=target, lim=(-3.5, 3.5))


# --- exercise checkers ---------------------------------------------------------------------
def check_flow_scale(answer, eigval: float, t_from: float, t_to: float, process, *,
                     rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = the factor by which the exact Gaussian flow scales a mode of variance
    ``eigval`` from ``t_from`` to ``t_to`` (exercise 1). Expected: the unit vector carried by
    :meth:`diffedu.Gaussian.flow` of ``N(0, eigval)``."""
    check_process(process)
    if not eigval >= 0:
        raise ValueError(f"eigval must be non-negative; got {eigval!r}")
    G = Gaussian([0.0], [float(eigval)])
    expected = G.flow(torch.ones(1, 1, dtype=torch.float64), t_from, t_to, process)[0, 0]
    return check_close(answer, expected, name=f"flow scale of a mode with variance {eigval:g}", rtol=rtol)


def check_explained_variance(answer, data_var: float, model_var: float, t: float, process, *,
                             rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = EV(t) of the 1-D score of ``N(0, model_var)`` for data ``N(0, data_var)``
    (exercise 2). Expected: :func:`diffedu.gaussian_approx.gaussian_explained_variance`."""
    check_process(process)
    for name, v in (("data_var", data_var), ("model_var", model_var)):
        if not v > 0:
            raise ValueError(f"{name} must be a positive variance; got {v!r}")
    expected = gaussian_explained_variance(Gaussian([0.0], [float(data_var)]), Gaussian([0.0], [float(model_var)]),
                                           process, [float(t)])[0]
    return check_close(answer, expected, name=f"explained variance at t={t:g}", rtol=rtol)
