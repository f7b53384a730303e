r"""Lesson 06 (memorisation): its slider, checker and the cached network sweep.

The maths lives in the core: :mod:`diffedu.memorisation` (nearest-neighbour distances, the 1/3
rule, memorised fractions, the effective model memorisation, the sweep over training-set sizes)
and :class:`diffedu.Empirical` (the exact denoiser of a training set). This module draws the
memorising denoiser, holds its slider, checks the exercises and loads ``data/emm_ring.npz``, the
sweep of small networks over training-set sizes that is too slow to run in a lesson
(:func:`load_emm_ring`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .._core import check_process
from .._paths import data_path
from ..memorisation import memorised_fraction, nn_ratio
from ..mixtures import Empirical
from ..processes import Process
from . import plots
from .checks import Feedback, check_close
from .widgets import float_slider, int_slider, interactive

__all__ = ["memorisation_widget", "load_emm_ring", "check_nn_ratio", "check_close"]


# --- the memorising denoiser ------------------------------------------------------------------
def plot_memorising_denoiser(train, process: Process, log10_sigma: float, ax=None, *, seed: int = 0,
                             n: int = 400, lim=(-3.0, 3.0)):
    r"""The exact denoiser of the training points ``train`` (M, 2) at noise
    ``sigma/alpha = 10^log10_sigma``.

    Grey: n noisy points x_t of the training set (seeded), scaled by ``1/alpha_t``; orange:
    ``D(x_t)`` (:meth:`diffedu.Empirical.denoiser`); black crosses: the training points. The
    title gives the memorised fraction (1/3 rule) of the denoised points. Returns the Axes.
    """
    check_process(process)
    train = torch.as_tensor(train).to(torch.float64)
    E = Empirical(train)
    t = float(process.t_of_lam(-log10_sigma * math.log(10.0)))
    xt = E.sample_marginal(n, t, process, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    den = E.denoiser(xt, t, process)
    a = float(process.alpha(t))
    ax = plots._ax(ax)
    ax.scatter(*(xt / a).T.numpy(), s=4, color="0.7", label="x_t / alpha_t")
    ax.scatter(*den.T.numpy(), s=8, color="C1", label="D(x_t, t)")
    ax.scatter(*train.T.numpy(), marker="x", color="k", s=30, label="training points")
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    ax.legend(fontsize="x-small", loc="lower right")
    M = train.shape[0]
    frac = memorised_fraction(den, train) if M >= 2 else 1.0
    ax.set_title(f"M = {M}, sigma/alpha = {10**log10_sigma:.3g}: memorised {frac:.0%}", fontsize="small")
    return ax


def _draw_memorisation(M, log10_sigma, *, process, data, seed, n, lim):
    ax = plots.new_axes(figsize=(4.8, 4.4))
    return plot_memorising_denoiser(data[:M], process, log10_sigma, ax, seed=seed, n=n, lim=lim).figure


def memorisation_widget(data, process: Process, *, max_M: int | None = None, seed: int = 0):
    """Sliders: training-set size M (the first M rows of ``data`` (N, 2)) and log10 of the noise
    level; draws :func:`plot_memorising_denoiser`."""
    check_process(process)
    max_M = max_M or data.shape[0]
    return interactive(_draw_memorisation, M=int_slider(min(8, max_M), 2, max_M, "M (training points)"),
                       log10_sigma=float_slider(-0.5, -2.0, 1.0, 0.1, "log10 sigma"),
                       process=process, data=data, seed=seed, n=400, lim=(-3.0, 3.0))


# --- exercise checkers ---------------------------------------------------------------------
def check_nn_ratio(answer, samples, train, *, rtol: float = 1e-6) -> Feedback:
    """``answer`` (B,) = nearest / second-nearest training distance of each sample (exercise 1);
    the expected value is :func:`diffedu.memorisation.nn_ratio`."""
    return check_close(answer, nn_ratio(samples, train), name="nearest-neighbour ratio", rtol=rtol)


# --- the cached sweep ------------------------------------------------------------------------
class EMMSweep(NamedTuple):
    """The cached sweep: memorised fraction ``fractions[i, j]`` (1/3 rule, 400 samples) of a
    ``ScoreMLP`` of hidden width ``widths[i]`` trained on ``sizes[j]`` ring points; ``config``:
    every setting of the run."""

    sizes: list
    widths: list
    fractions: np.ndarray
    config: dict


def load_emm_ring(path=None) -> EMMSweep:
    """The network memorisation sweep of lesson 06, from ``path`` (default ``data/emm_ring.npz``;
    FileNotFoundError names it when missing).

    Made by ``OMP_NUM_THREADS=1 python3 benchmarks/emm_sweep.py data/emm_ring.npz --workers 16``
    (one process per width and M, about 9 CPU-minutes in all); the slow test
    ``tests/teach/test_memorisation.py::test_cached_emm_sweep_regenerates`` re-runs two entries.
    """
    path = data_path("emm_ring.npz") if path is None else Path(path)
    with np.load(path) as z:
        return EMMSweep(z["sizes"].tolist(), z["widths"].tolist(), np.array(z["fractions"]),
                        json.loads(str(z["config"])))
