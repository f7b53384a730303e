r"""Lesson 07 (Gaussian teleportation): its sliders, plots and checkers.

The maths lives in the core: :mod:`diffedu.gaussian_approx` (the explained variance, with its
Monte Carlo error and in closed form for Gaussians, the noise scale ``sqrt(lambda_max)``,
:func:`~diffedu.gaussian_approx.teleport` and :func:`~diffedu.gaussian_approx.teleport_sweep`),
:mod:`diffedu.gaussian` (the exact flow :meth:`~diffedu.Gaussian.flow`, :func:`~diffedu.fit_gaussian`),
:func:`diffedu.fit_gaussian_mixture` (a Gaussian mixture fitted to the digits by EM),
:mod:`diffedu.samplers` and :mod:`diffedu.metrics`. The trained digit network is
:mod:`diffedu.teach.models`' cache. This module computes the explained-variance history of the
network's checkpoints, draws it with a slider over training, draws teleported against fully sampled
points and the cost of teleporting, and checks the exercises.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._core import check_process
from ..gaussian import Gaussian
from ..gaussian_approx import explained_variance_se, gaussian_explained_variance, teleport, teleport_sweep
from ..processes import Process
from . import plots
from .checks import Feedback, check_close, check_implementation
from .widgets import int_slider, interactive, selection_slider

__all__ = ["teleport_widget", "plot_teleport", "ev_history", "plot_ev_history", "ev_widget", "plot_teleport_cost",
           "check_gaussian_flow", "check_explained_variance", "check_close"]


# --- the explained variance of a network as it trains ---------------------------------------------
def ev_history(nets: dict, references: dict, dist, process: Process, noise_levels, *, n: int = 150,
               repeats: int = 3, seed: int = 0) -> dict:
    r"""``{step: {name: ExplainedVariance}}``: for each network ``nets[step]`` (a checkpoint), the
    explained variance of its score by each reference score field ``references[name]`` at the noise
    levels ``sigma/alpha`` (:func:`~diffedu.gaussian_approx.explained_variance_se`, draws of
    ``dist``'s p_t; the same draws, from ``seed``, for every network and reference)."""
    check_process(process)
    ts = [float(process.t_of_lam(-math.log(r))) for r in noise_levels]
    out = {}
    for step, net in nets.items():
        out[step] = {name: explained_variance_se(net.score, ref, dist, process, ts, n=n, repeats=repeats,
                                                 generator=torch.Generator().manual_seed(seed))
                     for name, ref in references.items()}
    return out


def plot_ev_history(step, *, history, noise_levels, scale, ax=None, ylim=(-1.0, 1.05)):
    r"""EV of the network's score at training step ``step`` by each reference (one curve each, error
    bars of two standard errors), against the noise level ``sigma/alpha`` (log axis); grey: the
    Gaussian reference at the earlier steps. Dashed vertical line: ``sqrt(lambda_max)`` =
    ``scale``. Values below ``ylim[0]`` are drawn at the bottom edge. Returns the Axes."""
    ax = plots._ax(ax)
    steps = sorted(history)
    names = list(history[step])
    lo = ylim[0] + 0.02
    for s in steps:
        if s < step:
            ax.plot(noise_levels, np.maximum(history[s][names[0]].ev.numpy(), lo), color="0.8", lw=1)
    for i, name in enumerate(names):
        r = history[step][name]
        ax.errorbar(noise_levels, np.maximum(r.ev.numpy(), lo), yerr=2 * r.se.numpy(), fmt="o-", ms=4, capsize=2,
                    color=f"C{i}", label=f"network vs {name}")
    ax.axvline(scale, color="k", ls="--", lw=0.8, label="sqrt(lambda_max)")
    ax.axhline(1.0, color="k", ls=":", lw=0.6)
    ax.set_xscale("log")
    ax.set_ylim(*ylim)
    ax.set_xlabel("noise level sigma_t / alpha_t")
    ax.set_ylabel("explained variance of its score")
    ax.set_title(f"after {step} training steps (grey: Gaussian, earlier steps)", fontsize="medium")
    ax.legend(fontsize="small", loc="lower right")
    return ax


def _draw_ev(step, *, history, noise_levels, scale):
    ax = plots.new_axes(figsize=(6.4, 4.2))
    return plot_ev_history(step, history=history, noise_levels=noise_levels, scale=scale, ax=ax).figure


def ev_widget(history: dict, noise_levels, scale: float):
    """Slider over the training checkpoints of :func:`ev_history`: :func:`plot_ev_history` at each."""
    steps = sorted(history)
    return interactive(_draw_ev, step=selection_slider(steps, steps[-1], "training step"), history=history,
                       noise_levels=list(noise_levels), scale=float(scale))


# --- what teleporting costs ------------------------------------------------------------------------
def plot_teleport_cost(landing, costs: dict, scale: float, ax=None):
    r"""Distance of teleported samples from a converged solve against the noise level
    ``sigma/alpha`` they are teleported to (log axis, decreasing: more calls saved to the right).

    landing: (K,) noise levels; costs: ``{name: (values (K,), errors (K,))}`` (drawn with error bars
    of two standard errors). Dashed: ``sqrt(lambda_max)`` = ``scale``; shaded: below
    ``3 sqrt(lambda_max)``, where the rule no longer promises a free jump. Returns the Axes."""
    ax = plots._ax(ax)
    landing = np.asarray(landing, dtype=float)
    for i, (name, (v, e)) in enumerate(costs.items()):
        ax.errorbar(landing, v, yerr=2 * np.asarray(e), fmt="o-", ms=4, capsize=2, color=f"C{i}", label=name)
    ax.axvline(scale, color="k", ls="--", lw=0.8, label="sqrt(lambda_max)")
    ax.axvspan(min(landing.min(), scale) / 1.5, 3 * scale, color="0.85", zorder=0, label="below 3 sqrt(lambda_max)")
    ax.set_xscale("log")
    ax.set_xlim(landing.max() * 1.5, landing.min() / 1.5)
    ax.set_xlabel("teleported down to sigma/alpha  (more calls saved to the right)")
    ax.set_ylabel("RMS distance to the converged solve")
    ax.legend(fontsize="small", loc="upper left")
    return ax


# --- teleported against full samples, in the plane ---------------------------------------------
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
def _flow_inputs(generator, dtype, shape):
    from ..processes import VP

    B, D = shape
    A = torch.randn(D, D, generator=generator, dtype=torch.float64)
    t_from = float(0.3 + 0.7 * torch.rand((), generator=generator))
    return {"x": torch.randn(B, D, generator=generator, dtype=dtype),
            "mean": torch.randn(D, generator=generator, dtype=torch.float64),
            "cov": A @ A.T / D + 0.1 * torch.eye(D, dtype=torch.float64),
            "t_from": t_from, "t_to": float(t_from * torch.rand((), generator=generator)) + 1e-3, "process": VP()}


def _flow_reference(x, mean, cov, t_from, t_to, process):
    return Gaussian(mean, cov).flow(x, t_from, t_to, process)


def check_gaussian_flow(answer) -> Feedback:
    r"""``answer(x, mean, cov, t_from, t_to, process)`` = the exact probability-flow map of the
    Gaussian ``N(mean, cov)`` carrying x (B, D) from ``t_from`` to ``t_to``, in x's dtype (mean and
    cov are float64). Checked on fresh inputs against :meth:`diffedu.Gaussian.flow`."""
    return check_implementation(answer, _flow_reference, _flow_inputs, name="Gaussian flow map")


def check_explained_variance(answer, data_var: float, model_var: float, t: float, process, *,
                             rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = EV(t) of the 1-D score of ``N(0, model_var)`` for data ``N(0, data_var)``.
    Expected: :func:`diffedu.gaussian_approx.gaussian_explained_variance`."""
    check_process(process)
    for name, v in (("data_var", data_var), ("model_var", model_var)):
        if not v > 0:
            raise ValueError(f"{name} must be a positive variance; got {v!r}")
    expected = gaussian_explained_variance(Gaussian([0.0], [float(data_var)]), Gaussian([0.0], [float(model_var)]),
                                           process, [float(t)])[0]
    return check_close(answer, expected, name=f"explained variance at t={t:g}", rtol=rtol)
