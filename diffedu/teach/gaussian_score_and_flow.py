r"""Lesson 02 (the Gaussian score and the exact flow): the mode-decision plot, the flow slider and
the exercise checkers.

The maths is in the core, :mod:`diffedu.gaussian`: the score, the Tweedie denoiser and the exact
PF-ODE map (``Gaussian.score``, ``denoiser``, ``flow``, ``flow_path``), the share of each mode's
variance that comes from the data (``Gaussian.signal_fraction``), the time a mode is half
decided (``decision_time``) and the rotated 2-D Gaussian (``rotated_2d``); the time grids are
:func:`diffedu.processes.time_grid`.
"""

from __future__ import annotations

import torch

from .._core import check_process
from ..gaussian import Gaussian, decision_time, rotated_2d
from ..processes import Process, time_grid
from . import plots
from . import widgets as _w
from .checks import Feedback, check_close, check_denoiser

__all__ = ["plot_mode_decisions", "gaussian_flow_widget", "check_gaussian_score", "check_denoiser",
           "check_decision_time"]


# --- plots ------------------------------------------------------------------------------------
def _eigvals(eigvals) -> torch.Tensor:
    ev = torch.as_tensor(eigvals, dtype=torch.float64).reshape(-1)
    if ev.numel() == 0 or not torch.isfinite(ev).all() or (ev <= 0).any():
        raise ValueError(f"eigvals must be a non-empty sequence of positive numbers; got {eigvals!r}")
    return ev


def plot_mode_decisions(eigvals, process: Process, ax=None, *, n: int = 400, mark=None):
    r"""How far each Gaussian eigen-mode has been decided, against the noise level.

    Along the exact PF-ODE of ``N(mu, U diag(lambda_k) U^T)`` mode k carries the share
    :meth:`~diffedu.gaussian.Gaussian.signal_fraction` of its variance from the data; it crosses
    1/2 at :func:`~diffedu.gaussian.decision_time`, where ``(sigma_t / alpha_t)^2 = lambda_k``
    (dotted lines). High-variance modes are decided first (at larger noise).

    eigvals: (K,) positive eigenvalues. x axis: ``sigma_t / alpha_t = exp(-lambda_t)`` on a log
    scale, decreasing to the right as sampling proceeds. mark: a noise level ``sigma/alpha`` to
    mark (black line). Returns the Axes.
    """
    ev = _eigvals(eigvals)
    check_process(process)
    ax = plots._ax(ax)
    gauss = Gaussian(torch.zeros_like(ev), ev)  # diagonal: signal_fraction keeps the order of eigvals
    t = plots._fractions(process, n, endpoint_eps=1e-3)
    ratio = torch.exp(-process.lam(t))
    frac = torch.stack([gauss.signal_fraction(float(tk), process) for tk in t])  # (n, K)
    t_half = decision_time(ev, process)
    for k, lam_k in enumerate(ev.tolist()):
        color = f"C{k % 10}"
        ax.plot(plots._np(ratio), plots._np(frac[:, k]), color=color, label=f"lambda = {lam_k:.3g}")
        if 0 < float(t_half[k]) <= process.t_max:
            ax.axvline(float(torch.exp(-process.lam(t_half[k]))), color=color, ls=":", lw=0.8)
    if mark is not None:
        ax.axvline(mark, color="k", lw=1.2)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("noise level sigma_t / alpha_t (sampling runs left to right)")
    ax.set_ylabel("fraction decided")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize="small")
    return ax


# --- widget -----------------------------------------------------------------------------------
def _path_times(process: Process, t: float, n: int = 60) -> torch.Tensor:
    """``n + 1`` times from t_max down to t, uniform in lambda (one time when t is t_max)."""
    if t >= process.t_max:
        return torch.tensor([float(process.t_max)], dtype=torch.float64)
    return time_grid(process, n + 1, "lambda", t_eps=t)[:-1]


def _draw_flow(t_frac, log10_lam1, log10_lam2, *, process, angle, n_paths, seed, lim):
    lam1, lam2 = 10.0**log10_lam1, 10.0**log10_lam2
    gauss = rotated_2d(lam1, lam2, angle)
    t = max(t_frac * process.t_max, 1e-4 * process.t_max)
    gen = torch.Generator().manual_seed(seed)
    x_T = gauss.sample_marginal(n_paths, process.t_max, process, generator=gen, dtype=torch.float64)
    axs = plots.new_axes(2, figsize=(9.6, 4.0))
    plots.plot_density_2d(gauss, process, t, axs[0], lim=lim, n=90)
    plots.plot_trajectories(gauss.flow_path(x_T, _path_times(process, t), process), axs[0], color="w", alpha=0.8)
    axs[0].set_title(f"p_t and exact PF-ODE paths down to t = {t:.3g}", fontsize="small")
    ratio = float(torch.exp(-process.lam(t)))
    plot_mode_decisions([lam1, lam2], process, axs[1], mark=ratio)
    axs[1].set_title(f"sigma/alpha = {ratio:.3g}", fontsize="small")
    return axs[0].figure


def gaussian_flow_widget(process: Process, *, angle: float = 30.0, n_paths: int = 40, seed: int = 0,
                         lim=(-4.0, 4.0)):
    r"""A 2-D Gaussian's marginal and exact flow, with sliders for time and the covariance spectrum.

    Sliders: ``t / t_max`` and the base-10 logs of the two eigenvalues (the first eigenvector
    at ``angle`` degrees). Left: p_t with the exact PF-ODE paths of ``n_paths`` seeded starts
    from ``t_max`` down to t; right: how far each mode is decided (:func:`plot_mode_decisions`).
    """
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process; got {type(process).__name__}")
    return _w.interactive(
        _draw_flow,
        t_frac=_w.float_slider(0.5, 0.0, 1.0, 0.01, "t / t_max"),
        log10_lam1=_w.float_slider(0.5, -2.0, 1.0, 0.1, "log10 lambda_1"),
        log10_lam2=_w.float_slider(-1.5, -2.0, 1.0, 0.1, "log10 lambda_2"),
        process=process, angle=angle, n_paths=n_paths, seed=seed, lim=tuple(lim),
    )


# --- exercise checkers ------------------------------------------------------------------------
def check_gaussian_score(answer, gaussian, x, t, process, *, rtol: float = 1e-5) -> Feedback:
    """``answer`` (B, D) = the score of the Gaussian's marginal p_t at x."""
    return check_close(answer, gaussian.score(x, t, process), name=f"score at t={float(t):g}", rtol=rtol,
                       atol=1e-8)


def check_decision_time(answer, eigval: float, process, *, rtol: float = 1e-3) -> Feedback:
    r"""``answer`` = the time at which a mode of variance ``eigval`` is half decided.

    That is where ``sigma_t^2 / alpha_t^2 = eigval``, i.e. ``lambda_t = -1/2 log(eigval)``
    (:func:`diffedu.gaussian.decision_time`).
    """
    expected = decision_time(eigval, check_process(process))
    return check_close(answer, expected, name=f"decision time of a mode with variance {eigval:g}",
                       rtol=rtol)
