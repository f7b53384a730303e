r"""Lesson 08 (subspace clustering): its plots, slider, checkers and cached sweeps.

The maths lives in the core: :mod:`diffedu.subspace` (line bases, sampling with exact counts,
principal angles and the subspace error, PCA fits, K-subspaces and its two steps, its objective,
the low-rank denoiser and its DSM training, the phase transition, the subspace error of a model's
samples), :class:`diffedu.LowRankMixture` (the closed-form denoiser of a mixture of low-rank
Gaussians), :mod:`diffedu.memorisation` (the 1/3 rule), :class:`diffedu.nets.ScoreMLP` with
:func:`diffedu.training.train` and :mod:`diffedu.samplers`. This module draws, holds the slider,
checks the exercises, and makes and loads the two sweeps too slow for a lesson:

* ``data/subspace_transition.npz`` (:func:`load_transition_sweep`): recovery of planted subspaces
  against samples per subspace over 100 seeded trials, with labels (with and without noise) and
  without (K-subspaces), each trial's objective next to the true grouping's;
* ``data/subspace_generation.npz`` (:func:`load_generation_sweep`): a free network trained on
  N_k samples per subspace for a sweep of N_k, its samples' memorised fraction and subspace error,
  next to the low-rank denoiser and the exact training-set score (:func:`generation_run` is one
  run).

Make them with ``python3 -m diffedu.teach.subspace_clustering transition`` and
``python3 -m diffedu.teach.subspace_clustering generation [--workers N]``.
"""

from __future__ import annotations

import json
import math
import sys
from typing import NamedTuple

import numpy as np
import torch

from .._paths import writable_data_path
from ..mixtures import LowRankMixture
from ..subspace import (SubspaceClustering, assign_subspaces, fit_subspace, k_subspaces_step, line_bases,
                        match_subspaces, phase_transition, refit_subspaces, sample_subspaces, subspace_error)
from . import plots
from .checks import Feedback, check_close, check_denoiser, check_implementation
from .models import load_npz_cache
from .widgets import float_slider, int_slider, interactive

__all__ = ["plot_line_denoiser", "subspace_widget", "plot_subspace_fit", "load_transition_sweep",
           "load_generation_sweep", "plot_transition", "plot_generation", "TRANSITION_CONFIG", "GENERATION_CONFIG",
           "check_k_subspaces_step", "check_denoiser", "check_close"]

_HALF = 3.0  # half-width of the plotted square; lines are drawn from -_HALF to _HALF
TRANSITION_FILE, GENERATION_FILE = "subspace_transition.npz", "subspace_generation.npz"


def _draw_line(ax, direction, **kw):
    """The line through 0 along the unit (2,) ``direction``, across the plotted square."""
    ends = torch.tensor([-_HALF, _HALF], dtype=torch.float64)[:, None] * direction
    ax.plot(*ends.T.numpy(), **kw)


# --- the closed-form denoiser in the plane -----------------------------------------------------------
def plot_line_denoiser(mixture: LowRankMixture, process, t: float, ax=None, *, n: int = 300, seed: int = 0):
    r"""Noisy points of a mixture of lines (grey, ``x_t / alpha_t``), their closed-form denoised values
    (orange, :meth:`LowRankMixture.denoiser`) and the true lines (dashed), each noisy point joined
    to its denoised value. The title gives ``sigma/alpha`` and the median distance of the denoised
    points from the nearest line. Returns the Axes."""
    from ..subspace import distance_to_subspaces

    g = torch.Generator().manual_seed(seed)
    xt = mixture.sample_marginal(n, t, process, generator=g, dtype=torch.float64)
    den = mixture.denoiser(xt, t, process)
    a = float(process.alpha(t))
    ax = plots._ax(ax)
    for k in range(mixture.K):
        _draw_line(ax, mixture.bases[k, :, 0], ls="--", color="0.3", lw=1)
    for p, q in zip((xt / a).numpy(), den.numpy()):
        ax.plot([p[0], q[0]], [p[1], q[1]], color="C1", lw=0.3, alpha=0.4)
    ax.scatter(*(xt / a).T.numpy(), s=5, color="0.6", label="x_t / alpha_t")
    ax.scatter(*den.T.numpy(), s=7, color="C1", label="D(x_t, t)")
    ax.set_xlim(-_HALF, _HALF)
    ax.set_ylim(-_HALF, _HALF)
    ax.set_aspect("equal")
    ax.legend(fontsize="x-small", loc="lower right")
    r = float(torch.exp(-process.lam(t)))
    off = float((distance_to_subspaces(den, mixture.bases) * den.norm(dim=1)).median())
    ax.set_title(f"sigma/alpha = {r:.2f}: D(x_t) lies within {off:.3f} (median) of a line", fontsize="small")
    return ax


# --- K-subspaces in the plane ---------------------------------------------------------------------
def plot_subspace_fit(n_per_subspace: int, noise: float, ax=None, *, angles=(10.0, 70.0, 135.0), seed: int = 0,
                      n_init: int = 10):
    r"""K lines in the plane at ``angles`` (degrees), ``n_per_subspace`` seeded points on each
    (plus noise of variance ``noise`` off the line); the lines found by K-subspaces without labels
    (coloured, :class:`~diffedu.subspace.SubspaceClustering`) against the truth (dashed). The title
    gives the largest subspace error with labels (PCA of each group) and without (K-subspaces).
    Returns the Axes.
    """
    U = line_bases(angles)
    K = U.shape[0]
    X, y = sample_subspaces(LowRankMixture(U, noise=float(noise)), int(n_per_subspace),
                            generator=torch.Generator().manual_seed(seed))
    ax = plots._ax(ax)
    for k in range(K):
        _draw_line(ax, U[k, :, 0], ls="--", color="0.5", lw=1)
    ax.set_xlim(-_HALF, _HALF)
    ax.set_ylim(-_HALF, _HALF)
    ax.set_aspect("equal")
    if X.shape[0] == 0:
        ax.set_title("no samples", fontsize="small")
        return ax
    est = SubspaceClustering(K, 1, n_init=n_init, seed=seed).fit(X)
    perm, err_u = match_subspaces(est.bases_, U)
    err_l = subspace_error(torch.stack([fit_subspace(X[y == k], 1) for k in range(K)]), U)
    for k in range(K):
        j = int(perm[k])
        _draw_line(ax, est.bases_[j, :, 0], color=f"C{k}", lw=2)
        ax.scatter(*X[est.labels_ == j].T.numpy(), s=10, color=f"C{k}")
    ax.set_title(f"n = {n_per_subspace}, noise = {noise:.3g}: max error with labels "
                 f"{float(err_l.max()):.2f}, K-subspaces {float(err_u.max()):.2f}", fontsize="x-small")
    return ax


def _draw_subspace_fit(n_per_subspace, noise, *, angles, seed, n_init):
    ax = plots.new_axes(figsize=(4.8, 4.4))
    return plot_subspace_fit(n_per_subspace, noise, ax, angles=angles, seed=seed, n_init=n_init).figure


def subspace_widget(*, angles=(10.0, 70.0, 135.0), seed: int = 0):
    """Sliders: samples per subspace and noise variance; draws :func:`plot_subspace_fit`."""
    return interactive(_draw_subspace_fit, n_per_subspace=int_slider(5, 1, 60, "samples per subspace"),
                       noise=float_slider(0.01, 0.0, 0.3, 0.01, "noise variance"), angles=tuple(angles),
                       seed=seed, n_init=10)


# --- the recovery transition (cached) ---------------------------------------------------------------
#: Settings of ``data/subspace_transition.npz``: :func:`diffedu.subspace.phase_transition` for each
#: named setting, trial j seeded with ``seed + j``.
TRANSITION_CONFIG = dict(ns=[2, 3, 4, 5, 6, 8, 12, 16, 24, 32], dim=30, n_subspaces=3, rank=4, n_trials=100,
                         n_init=10, seed=0,
                         settings={"labels, no noise": dict(labels=True, noise=0.0),
                                   "labels, noise 0.01": dict(labels=True, noise=0.01),
                                   "no labels (K-subspaces), no noise": dict(labels=False, noise=0.0)})


class TransitionSweep(NamedTuple):
    """``errors``, ``objective``, ``true_objective``: {setting: (len(ns), n_trials)}; ``config``."""

    ns: list
    errors: dict
    objective: dict
    true_objective: dict
    config: dict

    def success(self, name: str) -> np.ndarray:
        """Fraction of trials recovered (every subspace's error under the threshold): (len(ns),)."""
        from ..subspace import SUCCESS_THRESHOLD

        return (self.errors[name] < SUCCESS_THRESHOLD).mean(1)


def transition_setting(name: str, *, trials=None, ns=None, config=None):
    """:func:`~diffedu.subspace.phase_transition` of one named setting of the config (optionally
    fewer trials or sizes: trial j is seeded the same way whatever the count)."""
    c = TRANSITION_CONFIG if config is None else config
    s = c["settings"][name]
    return phase_transition(c["ns"] if ns is None else ns, dim=c["dim"], n_subspaces=c["n_subspaces"], rank=c["rank"],
                            noise=s["noise"], labels=s["labels"], n_trials=c["n_trials"] if trials is None else trials,
                            n_init=c["n_init"], seed=c["seed"])


def make_transition_sweep(*, save: bool = False, config=None) -> TransitionSweep:
    """Run every setting of :data:`TRANSITION_CONFIG`; ``save=True`` writes ``data/subspace_transition.npz``."""
    c = dict(TRANSITION_CONFIG if config is None else config)
    out = {name: transition_setting(name, config=c) for name in c["settings"]}
    sweep = TransitionSweep(c["ns"], {k: v.errors.numpy() for k, v in out.items()},
                            {k: v.objective.numpy() for k, v in out.items()},
                            {k: v.true_objective.numpy() for k, v in out.items()}, c)
    if save:
        arrays = {}
        for i, name in enumerate(c["settings"]):
            arrays[f"errors_{i}"], arrays[f"objective_{i}"] = sweep.errors[name], sweep.objective[name]
            arrays[f"true_objective_{i}"] = sweep.true_objective[name]
        np.savez_compressed(writable_data_path(TRANSITION_FILE), config=json.dumps(c), **arrays)
    return sweep


def load_transition_sweep(path=None) -> TransitionSweep:
    """The recovery sweep of lesson 08 (default ``data/subspace_transition.npz``; made by
    ``python3 -m diffedu.teach.subspace_clustering transition``, about 3 CPU-minutes)."""
    z, c = load_npz_cache(TRANSITION_FILE, path, TRANSITION_CONFIG, "TRANSITION_CONFIG",
                          "python3 -m diffedu.teach.subspace_clustering transition")
    names = list(c["settings"])
    return TransitionSweep(c["ns"], *({n: z[f"{key}_{i}"] for i, n in enumerate(names)}
                                      for key in ("errors", "objective", "true_objective")), c)


def plot_transition(sweep: TransitionSweep, ax=None):
    """Success against samples per subspace for each setting, with error bars of two binomial
    standard errors; dotted: n = d and n = d + 1. Returns the Axes."""
    ax = plots._ax(ax)
    T = sweep.config["n_trials"]
    for name in sweep.errors:
        p = sweep.success(name)
        ax.errorbar(sweep.ns, p, yerr=2 * np.sqrt(p * (1 - p) / T), fmt="o-", ms=4, capsize=2, label=name)
    d = sweep.config["rank"]
    for x in (d, d + 1):
        ax.axvline(x, color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel(f"samples per subspace n (d = {d}, D = {sweep.config['dim']}, K = {sweep.config['n_subspaces']})")
    ax.set_ylabel(f"fraction of {T} trials recovered")
    ax.legend(fontsize="small")
    return ax


# --- generation: a free network trained on N_k samples per subspace (cached) ---------------------
#: Settings of ``data/subspace_generation.npz``: K subspaces of dimension ``rank`` in R^dim (seeded),
#: N_k training samples each; a ScoreMLP trained by DSM, the low-rank denoiser trained by DSM and the
#: exact score of the training set, each sampled with Heun from seeded noise.
GENERATION_CONFIG = dict(n_per_subspace=[1, 2, 3, 4, 5, 6, 8, 12, 16, 32], seeds=[0, 1, 2, 3], dim=16, n_subspaces=2,
                         rank=4, hidden=256, depth=3, weighting="eps", steps=4000, batch_size=256, lr=2e-3,
                         n_samples=300, sampler_steps=40, basis_seed=0, low_rank_steps=500)


def generation_problem(n_k: int, seed: int, config=None):
    """``(bases (K, D, d), training points (K n_k, D) float32, labels)``: the planted subspaces (one
    draw for the whole sweep) and seed ``seed``'s training set."""
    from ..subspace import random_bases

    c = GENERATION_CONFIG if config is None else config
    U = random_bases(c["n_subspaces"], c["dim"], c["rank"], generator=torch.Generator().manual_seed(c["basis_seed"]))
    X, y = sample_subspaces(LowRankMixture(U), n_k, generator=torch.Generator().manual_seed(100 + seed))
    return U, X.float(), y


def _measure(samples, U, X):
    from ..memorisation import memorised_fraction
    from ..subspace import distance_to_subspaces, sample_subspace_error

    s = samples.double()
    return {"memorised": memorised_fraction(s, X.double()),
            "sample_error": float(sample_subspace_error(s, U).max()),
            "distance": float(distance_to_subspaces(s, U).median())}


def generation_run(model: str, n_k: int, seed: int, config=None) -> dict:
    r"""One run of the generation sweep. ``model``: ``"network"`` (a ScoreMLP trained by
    :func:`~diffedu.training.train` with :func:`~diffedu.training.dsm_loss`), ``"low-rank"``
    (:func:`~diffedu.subspace.train_low_rank_denoiser`, K subspaces of dimension d) or ``"training
    set"`` (the exact score of the training points, :class:`~diffedu.Empirical`). Samples from
    seeded noise with Heun; returns ``{"memorised": 1/3-rule fraction, "sample_error": the worst
    subspace's :func:`~diffedu.subspace.sample_subspace_error`, "distance": the median
    :func:`~diffedu.subspace.distance_to_subspaces`, "samples"}``."""
    from ..mixtures import Empirical
    from ..nets import ScoreMLP
    from ..processes import VP, time_grid
    from ..samplers import heun
    from ..subspace import train_low_rank_denoiser
    from ..training import dsm_loss, train

    torch.set_num_threads(1)
    c = GENERATION_CONFIG if config is None else config
    U, X, _ = generation_problem(n_k, seed, c)
    vp = VP()
    x_T = torch.randn(c["n_samples"], c["dim"], generator=torch.Generator().manual_seed(200 + seed))
    grid = time_grid(vp, c["sampler_steps"])
    with torch.no_grad():
        if model == "network":
            g = torch.Generator().manual_seed(seed)
            net = ScoreMLP(vp, c["dim"], hidden=c["hidden"], depth=c["depth"], param="denoiser",
                           sigma_data=float(X.std()), generator=g)
            with torch.enable_grad():
                train(net, dsm_loss(vp, weighting=c["weighting"]), X, steps=c["steps"], batch_size=c["batch_size"],
                      lr=c["lr"], generator=g)
            s = heun(net.denoiser, vp, x_T, grid)
        elif model == "low-rank":
            with torch.enable_grad():
                lr_model = train_low_rank_denoiser(X, c["n_subspaces"], c["rank"], vp, steps=c["low_rank_steps"],
                                                   n_init=3, seed=seed)
            s = heun(lr_model, vp, x_T, grid)
        elif model == "training set":
            s = heun(Empirical(X.double()).bind(vp).denoiser, vp, x_T.double(), grid)
        else:
            raise ValueError(f"model must be 'network', 'low-rank' or 'training set'; got {model!r}")
    out = _measure(s, U, X)
    out["samples"] = s.detach().double()
    return out


GENERATION_MODELS = ("network", "low-rank", "training set")


class GenerationSweep(NamedTuple):
    """``memorised``, ``sample_error``, ``distance``: {model: (len(seeds), len(n_per_subspace))};
    ``samples``: {model: (len(n_per_subspace), 16, D)}, seed 0's first 16; ``config``."""

    n_per_subspace: list
    memorised: dict
    sample_error: dict
    distance: dict
    samples: dict
    config: dict


def _pool_map(fn, jobs, workers):
    if workers <= 1:
        return [fn(*j) for j in jobs]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, *zip(*jobs)))


def make_generation_sweep(*, workers: int = 1, save: bool = False, config=None) -> GenerationSweep:
    """Every run of :data:`GENERATION_CONFIG` (three models x seeds x N_k); ``save=True`` writes
    ``data/subspace_generation.npz``."""
    c = dict(GENERATION_CONFIG if config is None else config)
    S, N = c["seeds"], c["n_per_subspace"]
    jobs = [(m, n, s, c) for m in GENERATION_MODELS for s in S for n in N]
    runs = _pool_map(generation_run, jobs, workers)
    out = {key: {} for key in ("memorised", "sample_error", "distance")}
    samples = {}
    for i, m in enumerate(GENERATION_MODELS):
        block = runs[i * len(S) * len(N):(i + 1) * len(S) * len(N)]
        for key in out:
            out[key][m] = np.array([r[key] for r in block]).reshape(len(S), len(N))
        samples[m] = np.stack([r["samples"][:16].numpy() for r in block[:len(N)]]).astype(np.float16)
    sweep = GenerationSweep(N, out["memorised"], out["sample_error"], out["distance"], samples, c)
    if save:
        arrays = {f"{key}_{i}": out[key][m] for key in out for i, m in enumerate(GENERATION_MODELS)}
        arrays.update({f"samples_{i}": samples[m] for i, m in enumerate(GENERATION_MODELS)})
        np.savez_compressed(writable_data_path(GENERATION_FILE), config=json.dumps(c), **arrays)
    return sweep


def load_generation_sweep(path=None) -> GenerationSweep:
    """The generation sweep of lesson 08 (default ``data/subspace_generation.npz``; made by
    ``python3 -m diffedu.teach.subspace_clustering generation``)."""
    z, c = load_npz_cache(GENERATION_FILE, path, GENERATION_CONFIG, "GENERATION_CONFIG",
                          "python3 -m diffedu.teach.subspace_clustering generation")
    get = {key: {m: z[f"{key}_{i}"] for i, m in enumerate(GENERATION_MODELS)}
           for key in ("memorised", "sample_error", "distance", "samples")}
    samples = {m: v.astype(np.float64) for m, v in get["samples"].items()}
    return GenerationSweep(c["n_per_subspace"], get["memorised"], get["sample_error"], get["distance"], samples, c)


def plot_generation(sweep: GenerationSweep, axs=None):
    """Two panels against N_k (log axis): the memorised fraction of the samples and their subspace
    error (worst subspace), one curve per model (mean over seeds, error bars: the seeds' spread
    over sqrt(seeds)); dotted: N_k = d. Returns the two Axes."""
    if axs is None:
        axs = plots.new_axes(2, figsize=(9.2, 3.6), pyplot=True)
    N, S = sweep.n_per_subspace, len(sweep.config["seeds"])
    for ax, key, label in ((axs[0], "memorised", "memorised fraction (1/3 rule)"),
                           (axs[1], "sample_error", "subspace error of the samples")):
        for i, m in enumerate(GENERATION_MODELS):
            v = getattr(sweep, key)[m]
            ax.errorbar(N, v.mean(0), yerr=v.std(0, ddof=1) / math.sqrt(S) if S > 1 else None, fmt="o-", ms=4,
                        capsize=2, color=f"C{i}", label=m)
        ax.axvline(sweep.config["rank"], color="k", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel(f"training samples per subspace N_k (d = {sweep.config['rank']})")
        ax.set_ylabel(label)
    axs[0].legend(fontsize="small")
    return axs


# --- exercise checkers ---------------------------------------------------------------------
def _projectors(bases):
    return bases @ bases.transpose(-1, -2)


def _step_reference(X, bases):
    return _projectors(k_subspaces_step(X, bases)[1]).to(X.dtype)


def _step_inputs(generator, dtype, shape):
    from ..subspace import random_bases

    n, D = shape
    D = max(D, 3)
    r = 1 if D < 4 else 2
    U = random_bases(2, D, r, generator=generator)
    X, _ = sample_subspaces(LowRankMixture(U, noise=0.01), 4 * n, generator=generator)
    start = torch.linalg.qr(U + 0.3 * torch.randn(U.shape, generator=generator, dtype=torch.float64))[0]
    return {"X": X.to(dtype), "bases": start}


def check_k_subspaces_step(answer) -> Feedback:
    r"""``answer(X, bases)``: one K-subspaces iteration on X (n, D) from bases (K, D, r) (float64):
    assign each row to its nearest subspace, refit each subspace by uncentred PCA of its rows, and
    return the K new projection matrices ``U_k U_k^T`` (K, D, D) in X's dtype (projections, not
    bases: a basis is defined only up to rotation). Checked on fresh inputs against
    :func:`diffedu.subspace.k_subspaces_step`."""
    return check_implementation(answer, _step_reference, _step_inputs, name="K-subspaces step",
                                tolerances={torch.float32: (1e-3, 1e-5)})


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    usage = ("usage: python3 -m diffedu.teach.subspace_clustering transition|generation [--workers N]\n"
             "  transition: remakes data/subspace_transition.npz (about 3 CPU-minutes)\n"
             "  generation: remakes data/subspace_generation.npz (about 25 CPU-minutes)")
    if not argv or argv[0] not in ("transition", "generation") or len(argv) not in (1, 3) \
            or (len(argv) == 3 and argv[1] != "--workers"):
        print(usage)
        return 2
    workers = int(argv[2]) if len(argv) == 3 else 1
    if argv[0] == "transition":
        sweep = make_transition_sweep(save=True)
        for name in sweep.errors:
            print(name, np.round(sweep.success(name), 2))
    else:
        sweep = make_generation_sweep(workers=workers, save=True)
        for m in GENERATION_MODELS:
            print(m, np.round(sweep.memorised[m].mean(0), 2), np.round(sweep.sample_error[m].mean(0), 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
