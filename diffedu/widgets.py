r"""Thin ipywidgets wrappers over :mod:`diffedu.plotting`.

Each function builds an ``ipywidgets.interactive`` around a plain drawing function and returns it
without displaying it; everything that is not a control is pinned with ``ipywidgets.fixed``, so
only the intended sliders appear. Each callback returns a fresh :class:`matplotlib.figure.Figure`,
which ``interactive`` keeps in ``.result``; tests move a slider and check that the figure's data
changed. In a lesson, end the cell with the widget and mark it ``# NBVAL_IGNORE_OUTPUT``.

The figures are bare ``Figure`` objects that pyplot never holds (no figure piles up while a slider
moves), so each ``interactive`` is built with ``auto_display=True``: unlike ``interact``, it
would otherwise show only pyplot's figures and not the returned one.
"""

from __future__ import annotations

import math

import ipywidgets as W
import torch

from . import plotting as P
from .gaussian import Gaussian
from .processes import Process

__all__ = ["marginal_density_widget", "gaussian_flow_widget", "rotated_gaussian", "gaussian_flow_paths",
           "error_vs_steps_widget"]

_SHOW = {"auto_display": True}  # interactive's options: display the returned figure
_SLIDER = dict(continuous_update=False, style={"description_width": "initial"},
               layout=W.Layout(width="420px"))


def _time_slider(description="t / t_max", value=0.3):
    return W.FloatSlider(value=value, min=0.0, max=1.0, step=0.01, description=description, **_SLIDER)


def _draw_marginal(process_name, t_frac, *, dist, processes, lim):
    process = processes[process_name]
    t = t_frac * process.t_max
    ax = P.new_axes()
    if dist.dim == 1:
        P.plot_density_1d(dist, process, 0.0, ax, lim=lim, color="0.6", ls="--", label="p_0")
        P.plot_density_1d(dist, process, t, ax, lim=lim, color="C0", label="p_t")
        ax.legend(fontsize="small")
    else:
        P.plot_density_2d(dist, process, t, ax, lim=lim)
    a, s = float(process.alpha(t)), float(process.sigma(t))
    ax.set_title(f"{process_name}: t = {t:.3g}, alpha = {a:.3f}, sigma = {s:.3f}", fontsize="small")
    return ax.figure


def marginal_density_widget(dist, processes, *, lim=(-4.0, 4.0), t_frac: float = 0.3):
    r"""The marginal density p_t of a 1-D or 2-D distribution, with a process menu and a time slider.

    dist: a diffedu distribution with ``dim`` 1 or 2 (and a density at t = 0 when 1-D).
    processes: a dict ``{name: Process}``. The slider is ``t / t_max`` of the chosen process.
    """
    if dist.dim not in (1, 2):
        raise ValueError(f"dist must have dim 1 or 2; got {dist.dim}")
    if not processes or not all(isinstance(p, Process) for p in processes.values()):
        raise TypeError("processes must be a non-empty dict {name: Process}")
    names = list(processes)
    return W.interactive(
        _draw_marginal, _SHOW,
        process_name=W.Dropdown(options=names, value=names[0], description="process"),
        t_frac=_time_slider(value=t_frac),
        dist=W.fixed(dist), processes=W.fixed(dict(processes)), lim=W.fixed(tuple(lim)),
    )


def rotated_gaussian(lam1: float, lam2: float, angle_deg: float = 30.0, mean=(0.0, 0.0)) -> Gaussian:
    r"""The 2-D Gaussian with eigenvalues ``lam1, lam2`` whose first eigenvector is at ``angle_deg``."""
    th = math.radians(angle_deg)
    U = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]], dtype=torch.float64)
    cov = U @ torch.diag(torch.tensor([lam1, lam2], dtype=torch.float64)) @ U.T
    return Gaussian(torch.tensor(mean, dtype=torch.float64), 0.5 * (cov + cov.T))


def gaussian_flow_paths(gaussian: Gaussian, process: Process, x_T, t_end: float, n: int = 60):
    r"""Exact PF-ODE paths ``(n+1, B, D)`` from ``x_T`` at ``t_max`` down to ``t_end``.

    Each point is :meth:`Gaussian.flow` applied to ``x_T`` (exact, no time stepping); the times are
    uniform in ``lambda`` so the late, fast part of the path is resolved.
    """
    t_hi = process.t_max
    if t_end <= 0:
        t_end = float(process.t_of_lam(math.log(500.0)))
    lam = torch.linspace(float(process.lam(t_hi)), float(process.lam(t_end)), n + 1, dtype=torch.float64)
    ts = process.t_of_lam(lam).clamp(0.0, t_hi)
    ts[0] = t_hi
    return torch.stack([gaussian.flow(x_T, t_hi, float(tk), process) for tk in ts])


def _draw_flow(t_frac, log10_lam1, log10_lam2, *, process, angle, n_paths, seed, lim):
    lam1, lam2 = 10.0**log10_lam1, 10.0**log10_lam2
    g = rotated_gaussian(lam1, lam2, angle)
    t = max(t_frac * process.t_max, 1e-4 * process.t_max)
    gen = torch.Generator().manual_seed(seed)
    x_T = g.sample_marginal(n_paths, process.t_max, process, generator=gen, dtype=torch.float64)
    axs = P.new_axes(2, figsize=(9.6, 4.0))
    P.plot_density_2d(g, process, t, axs[0], lim=lim, n=90)
    P.plot_trajectories(gaussian_flow_paths(g, process, x_T, t), axs[0], color="w", alpha=0.8)
    axs[0].set_title(f"p_t and exact PF-ODE paths down to t = {t:.3g}", fontsize="small")
    ratio = float(torch.exp(-process.lam(t)))
    P.plot_mode_decisions([lam1, lam2], process, axs[1], mark=ratio)
    axs[1].set_title(f"sigma/alpha = {ratio:.3g}", fontsize="small")
    return axs[0].figure


def gaussian_flow_widget(process: Process, *, angle: float = 30.0, n_paths: int = 40, seed: int = 0,
                         lim=(-4.0, 4.0)):
    r"""A 2-D Gaussian's marginal and exact flow, with sliders for time and the covariance spectrum.

    Sliders: ``t / t_max`` and the base-10 logs of the two eigenvalues. Left: p_t with the exact
    PF-ODE paths from ``t_max`` to t; right: how far each mode is decided (lesson 02).
    """
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process; got {type(process).__name__}")
    ev = dict(min=-2.0, max=1.0, step=0.1, **_SLIDER)
    return W.interactive(
        _draw_flow, _SHOW,
        t_frac=_time_slider(value=0.5),
        log10_lam1=W.FloatSlider(value=0.5, description="log10 lambda_1", **ev),
        log10_lam2=W.FloatSlider(value=-1.5, description="log10 lambda_2", **ev),
        process=W.fixed(process), angle=W.fixed(angle), n_paths=W.fixed(n_paths), seed=W.fixed(seed),
        lim=W.fixed(tuple(lim)),
    )


def _draw_errors(n_steps, *, steps, errors, orders):
    ax = P.new_axes(figsize=(5.6, 4.0))
    P.plot_error_vs_steps(steps, errors, ax, orders=orders)
    ax.axvline(n_steps, color="k", lw=1.0)
    idx = min(range(len(steps)), key=lambda i: abs(steps[i] - n_steps))
    parts = [f"{name}: {float(err[idx]):.2g}" for name, err in errors.items()]
    ax.set_title(f"N = {steps[idx]}  " + ", ".join(parts), fontsize="x-small")
    return ax.figure


def error_vs_steps_widget(steps, errors: dict, *, orders=(1, 2)):
    r"""Error-vs-steps plot (log-log) with a slider picking N; the title lists each method's error.

    steps: increasing step counts (S,); errors: ``{method: (S,) errors}`` computed beforehand.
    """
    steps = [int(s) for s in steps]
    return W.interactive(
        _draw_errors, _SHOW,
        n_steps=W.SelectionSlider(options=steps, value=steps[len(steps) // 2], description="steps N",
                                  **_SLIDER),
        steps=W.fixed(steps), errors=W.fixed(dict(errors)), orders=W.fixed(tuple(orders)),
    )


# Static fallbacks (issue 9): with DIFFEDU_STATIC_FALLBACKS=1, which `diffedu regenerate` sets,
# every displayed interactive also stores an image grid of its figure for readers without a kernel.
from .teach import fallbacks as _fallbacks  # noqa: E402

_fallbacks.register()
