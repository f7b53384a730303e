r"""Plots, sliders and checkers of the lesson "Learning the score" (lessons/04_learning_the_score.ipynb).

The maths lives in the core: :mod:`diffedu.score_matching` (explicit and denoising score
matching, the constant between them), :mod:`diffedu.training` (the training loop and the DSM
loss), :mod:`diffedu.nets` (the score network), :mod:`diffedu.metrics` (the score error against
the exact score), :mod:`diffedu.langevin` (annealed Langevin dynamics), :mod:`diffedu.samplers`
(the reverse SDE) and :mod:`diffedu.diagnostics` (the report card). The cached digit network is
:mod:`diffedu.teach.models`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from .. import langevin, score_matching
from ..metrics import relative_score_error, w2
from ..nets import ScoreMLP
from .checks import check_close, check_implementation
from .plots import _ax, new_axes, plot_images
from .widgets import interactive, selection_slider

__all__ = ["plot_constant", "error_history", "plot_error_map", "error_map_widget", "plot_images",
           "sample_distances", "SampleDistances", "check_dsm_loss", "check_langevin_step", "check_dsm_constant"]


# --- judging samples -----------------------------------------------------------------------------
class SampleDistances(NamedTuple):
    """What :func:`sample_distances` returns: W2, the mean log-density gap and its standard error."""

    w2: float
    log_density: float
    log_density_se: float


def sample_distances(xs, data, dist, process, t) -> SampleDistances:
    r"""How far samples xs are from data (both (n, D)): ``(W2, mean log p - mean log p of data, its
    standard error)``, W2 by :func:`diffedu.metrics.w2` and the exact log-density ``dist.log_prob``
    at time t (nats; negative: the samples sit where the law has less mass). The two sets are
    independent, so the standard error is ``sqrt(var(log p(xs)) / n_xs + var(log p(data)) / n_data)``
    (0 when xs is data itself). Section 4 compares samplers with it."""
    lx, ld = (dist.log_prob(z.double(), t, process) for z in (xs, data))
    se = 0.0 if xs is data or (xs.shape == data.shape and torch.equal(xs.double(), data.double())) else \
        math.sqrt(float(lx.var()) / lx.numel() + float(ld.var()) / ld.numel())
    return SampleDistances(w2(xs, data), float(lx.mean()) - float(ld.mean()), se)


# --- the constant between DSM and ESM ------------------------------------------------------------
def plot_constant(dist, process, noise_levels, ax=None, *, n: int = 2000, seed: int = 0):
    r"""``C(t) sigma_t^2 / D`` against the noise level sigma/alpha (log axis): the DSM loss of the
    exact score (:func:`diffedu.score_matching.dsm_constant`) in units of its small-noise growth
    ``D / sigma^2``, with its Monte Carlo error bars. It tends to 1 as the noise goes to 0."""
    ax = _ax(ax)
    gen = torch.Generator().manual_seed(seed)
    vals, errs = [], []
    for r in noise_levels:
        t = float(process.t_of_lam(-math.log(r)))
        c, se = score_matching.dsm_constant(dist, process, t, n=n, generator=gen)
        s2 = float(process.sigma(t)) ** 2
        vals.append(c * s2 / dist.dim)
        errs.append(2 * se * s2 / dist.dim)
    ax.errorbar(noise_levels, vals, yerr=errs, fmt="o-", ms=4, capsize=2, label="C(t) sigma_t^2 / D")
    ax.axhline(1.0, color="k", lw=0.8, ls=":", label="small-noise limit")
    ax.set_xscale("log")
    ax.set_xlabel("noise level sigma_t / alpha_t")
    ax.set_ylabel("DSM floor x sigma_t^2 / D")
    ax.legend(fontsize="small")
    return ax


# --- where a network is wrong, as it trains ------------------------------------------------------
def error_history(model: ScoreMLP, checkpoints: dict, dist, process, noise_levels, *, n: int = 1000,
                  seed: int = 0) -> dict:
    r"""The relative score error (:func:`diffedu.metrics.relative_score_error`) at each noise level
    for every checkpoint ``{step: state_dict}`` of ``model``'s training: ``{step: (L,) errors}``.
    The same draws (``seed``) for every checkpoint. The model is left with its final weights."""
    final = {k: v.clone() for k, v in model.state_dict().items()}
    ts = [float(process.t_of_lam(-math.log(r))) for r in noise_levels]
    out = {}
    try:
        for step in sorted(checkpoints):
            model.load_state_dict(checkpoints[step])
            out[step] = relative_score_error(model.score, dist, process, ts, n=n,
                                             generator=torch.Generator().manual_seed(seed))
    finally:
        model.load_state_dict(final)
    return out


def plot_error_map(step, *, history, noise_levels, losses, floor, axs=None):
    r"""Two panels at one training step: the relative score error at every noise level (left,
    against the exact score; the loss cannot show this), and the loss curve so far with its floor,
    the exact score's loss (right). Returns the two Axes."""
    if axs is None:
        axs = new_axes(2, figsize=(9.2, 3.6), pyplot=True)
    ax = axs[0]
    for s in sorted(history):
        if s < step:
            ax.plot(noise_levels, history[s].numpy(), color="0.8", lw=1)
    ax.plot(noise_levels, history[step].numpy(), "o-", color="C0", ms=4, label=f"step {step}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("noise level sigma_t / alpha_t")
    ax.set_ylabel("relative score error")
    ax.set_title(f"after {step} steps (grey: earlier)", fontsize="medium")
    ax.legend(fontsize="small")
    ax = axs[1]
    lo = np.asarray(losses, dtype=float)
    k = max(step, 1)
    window = max(1, len(lo) // 100)
    smooth = np.convolve(lo[:k], np.ones(window) / window, mode="valid") if k >= window else lo[:k]
    ax.plot(np.arange(k - len(smooth), k) + 1, smooth, color="C1", lw=1,  # each point at the step of its last loss
            label="DSM loss (running mean)")
    ax.axhline(floor, color="k", ls=":", label=f"floor (exact score) {floor:.3f}")
    ax.set_xlim(0, len(lo))
    ax.set_ylim(floor * 0.9, max(float(lo.max()), floor * 1.2))
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.legend(fontsize="small")
    return axs


def _draw_error_map(step, *, history, noise_levels, losses, floor):
    axs = new_axes(2, figsize=(9.2, 3.6))
    plot_error_map(step, history=history, noise_levels=noise_levels, losses=losses, floor=floor, axs=axs)
    return axs[0].figure


def error_map_widget(history: dict, noise_levels, losses, floor: float):
    """Slider over the training checkpoints: :func:`plot_error_map` at each."""
    steps = sorted(history)
    return interactive(_draw_error_map, step=selection_slider(steps, steps[-1], "training step"),
                       history=history, noise_levels=list(noise_levels), losses=losses, floor=float(floor))


# --- exercises --------------------------------------------------------------------------------
def _dsm_inputs(generator, dtype, shape):
    from ..processes import VP

    B, D = shape
    p = VP()
    A = torch.randn(D, D, generator=generator, dtype=dtype) / math.sqrt(D)
    return {"score": lambda x, t: -x @ (A @ A.T + torch.eye(D, dtype=dtype)).T,  # a linear "model"
            "process": p, "x0": torch.randn(shape, generator=generator, dtype=dtype),
            "t": float(0.05 + 0.9 * torch.rand((), generator=generator)),
            "eps": torch.randn(shape, generator=generator, dtype=dtype)}


def _dsm_reference(score, process, x0, t, eps):
    return score_matching.dsm_terms(score, process, x0, t, eps).mean()


def check_dsm_loss(answer):
    r"""``answer(score, process, x0, t, eps)`` = the DSM loss ``mean_b |s(x_t, t) + eps / sigma_t|^2``
    with ``x_t = alpha_t x0 + sigma_t eps``: a 0-d tensor. Checked on fresh inputs against
    :func:`diffedu.score_matching.dsm_terms`."""
    return check_implementation(answer, _dsm_reference, _dsm_inputs, name="DSM loss")


def _langevin_inputs(generator, dtype, shape):
    B, D = shape
    mu = torch.randn(D, generator=generator, dtype=dtype)
    return {"score": lambda x, t: -(x - mu) / (1 + t), "x": torch.randn(shape, generator=generator, dtype=dtype),
            "t": float(torch.rand((), generator=generator)), "step": float(0.01 + 0.2 * torch.rand((), generator=generator)),
            "noise": torch.randn(shape, generator=generator, dtype=dtype)}


def check_langevin_step(answer):
    r"""``answer(score, x, t, step, noise)`` = one Langevin step ``x + step s(x, t) + sqrt(2 step) noise``.
    Checked on fresh inputs against :func:`diffedu.langevin.langevin_step`."""
    return check_implementation(answer, langevin.langevin_step, _langevin_inputs, name="Langevin step")


def check_dsm_constant(answer, v: float, t: float, process):
    r"""``answer`` = C(t) for 1-D data N(0, v): the DSM loss of the exact score at time t. The expected
    value comes from Tweedie's posterior variance (:func:`diffedu.score_matching.posterior_cov_trace`)."""
    from ..gaussian import Gaussian

    g = Gaussian([0.0], [float(v)])
    x = torch.zeros(1, 1, dtype=torch.float64)
    a, s = float(process.alpha(t)), float(process.sigma(t))
    expected = a**2 / s**4 * score_matching.posterior_cov_trace(g.bind(process).score, process, x, t)[0]
    return check_close(answer, expected, name=f"C(t) for N(0, {v:g}) at t = {t:g}", rtol=1e-4)
