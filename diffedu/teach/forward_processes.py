r"""Lesson 01 (forward processes): the marginal-density slider and the exercise checkers.

The maths is in the core: the processes, ``alpha_t``, ``sigma_t``, ``lambda_t``, ``g(t)^2`` and
``t_of_lam`` in :mod:`diffedu.processes`, the mixture marginals in :mod:`diffedu.mixtures`, the
SymPy derivations in :mod:`diffedu.symbolic`. The lesson's plain plots are the shared ones
(:mod:`diffedu.teach.plots`).
"""

from __future__ import annotations

import torch

from .._core import check_process
from ..processes import EDM, VE, VP, Linear, Process, VPCosine
from . import plots
from . import widgets as _w
from .checks import Feedback, check_close, check_implementation

__all__ = ["marginal_density_widget", "check_forward_noise", "check_alpha_sigma", "check_g2", "check_time_of_lam"]


# --- widget -----------------------------------------------------------------------------------
def _draw_marginal(process_name, t_frac, *, dist, processes, lim):
    process = processes[process_name]
    t = t_frac * process.t_max
    ax = plots.new_axes()
    if dist.dim == 1:
        plots.plot_density_1d(dist, process, 0.0, ax, lim=lim, color="0.6", ls="--", label="p_0")
        plots.plot_density_1d(dist, process, t, ax, lim=lim, color="C0", label="p_t")
        ax.legend(fontsize="small")
    else:
        plots.plot_density_2d(dist, process, t, ax, lim=lim)
    a, s = float(process.alpha(t)), float(process.sigma(t))
    ax.set_title(f"{process_name}: t = {t:.3g}, alpha = {a:.3f}, sigma = {s:.3f}", fontsize="small")
    return ax.figure


def marginal_density_widget(dist, processes, *, lim=(-4.0, 4.0), t_frac: float = 0.3):
    r"""The marginal density p_t of a 1-D or 2-D distribution, with a process menu and a time slider.

    dist: a diffedu distribution with ``dim`` 1 or 2 (and a density at t = 0 when 1-D).
    processes: a dict ``{name: Process}``. The slider is ``t / t_max`` of the chosen process;
    a 1-D plot also shows p_0 (dashed).
    """
    if dist.dim not in (1, 2):
        raise ValueError(f"dist must have dim 1 or 2; got {dist.dim}")
    if not isinstance(processes, dict) or not processes or not all(isinstance(p, Process) for p in processes.values()):
        raise TypeError("processes must be a non-empty dict {name: Process}")
    names = list(processes)
    return _w.interactive(
        _draw_marginal,
        process_name=_w.dropdown(names, names[0], "process"),
        t_frac=_w.float_slider(t_frac, 0.0, 1.0, 0.01, "t / t_max"),
        dist=dist, processes=dict(processes), lim=tuple(lim),
    )


# --- exercise checkers ------------------------------------------------------------------------
_PROCESSES = (VP(), VE(), EDM(), Linear(), VPCosine())


def _noise_inputs(generator, dtype, shape):
    """One case: a process drawn from the five, x0 and eps of ``shape``, one time per row in
    x0's dtype (as a training batch draws them), up to 98% of t_max."""
    B, _ = shape
    process = _PROCESSES[int(torch.randint(len(_PROCESSES), (), generator=generator))]
    u = 0.98 * torch.rand(B, generator=generator, dtype=torch.float64)
    return {"process": process, "x0": torch.randn(shape, generator=generator, dtype=dtype),
            "t": (u * process.t_max).to(dtype), "eps": torch.randn(shape, generator=generator, dtype=dtype)}


def _forward_noise(process, x0, t, eps):
    """``alpha_t x0 + sigma_t eps`` with the noise given: :meth:`Process.noise` without the draw."""
    a, s = process.coefs(t, x0)
    return a * x0 + s * eps


def check_forward_noise(answer) -> Feedback:
    r"""``answer(process, x0, t, eps)`` = ``x_t = alpha_t x0 + sigma_t eps``: (B, D) in x0's dtype.

    x0, eps: (B, D); t: (B,) times, one per row, in x0's dtype. Checked on fresh inputs (five
    processes, several shapes, float32 and float64) against the library's coefficients
    (:meth:`diffedu.processes.Process.coefs`, as in :meth:`~diffedu.processes.Process.noise`)."""
    return check_implementation(answer, _forward_noise, _noise_inputs, name="forward noising")


def check_alpha_sigma(answer, process, t, *, rtol: float = 1e-4) -> Feedback:
    """``answer = (alpha_t, sigma_t)`` for ``process`` at time ``t``."""
    check_process(process)
    expected = torch.stack([process.alpha(float(t)), process.sigma(float(t))])
    return check_close(answer, expected, name=f"(alpha, sigma) of {type(process).__name__} at t={t:g}",
                       rtol=rtol)


def check_g2(answer, process, t, *, rtol: float = 1e-4) -> Feedback:
    """``answer = g(t)^2``, the squared diffusion coefficient of ``process``."""
    check_process(process)
    return check_close(answer, process.g2(float(t)), name=f"g^2 of {type(process).__name__} at t={t:g}",
                       rtol=rtol)


def check_time_of_lam(answer, process, lam, *, rtol: float = 1e-4) -> Feedback:
    """``answer`` = the time at which the half log-SNR of ``process`` equals ``lam``."""
    check_process(process)
    return check_close(answer, process.t_of_lam(float(lam)),
                       name=f"t with lambda_t = {lam:g} for {type(process).__name__}", rtol=rtol)
