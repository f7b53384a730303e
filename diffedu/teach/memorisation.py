r"""Lesson 06 (memorisation): its slider, plots, checkers and cached runs.

The maths lives in the core: :mod:`diffedu.memorisation` (nearest-neighbour distances, the 1/3
rule, memorised fractions, the baseline of a model that generalises, the effective model
memorisation), :class:`diffedu.Empirical` (the exact denoiser of a training set),
:class:`diffedu.nets.ScoreMLP` with :func:`diffedu.training.train` (networks, conditional ones with
labels), :mod:`diffedu.samplers` and :func:`diffedu.metrics.w2`. This module draws the memorising
denoiser and the cached runs, holds the slider, checks the exercises, and loads the four caches
that are too slow for a lesson:

* ``data/emm_ring.npz`` (:func:`load_emm_ring`): networks of three widths trained on M ring points;
* ``data/memorisation_ring.npz`` (:func:`load_ring_sweep`): networks of two widths trained on M ring
  points, three runs each, with W2 to the ring. Remade by ``python3 -m diffedu.teach.memorisation
  ring [--workers N]``; a slow test re-runs two of them;
* ``data/memorisation_digits.npz`` (:func:`load_digit_sweep`): the digit network's architecture
  at widths 64 and 512 trained on M digits. Remade by ``python3 -m diffedu.teach.memorisation
  digits [--workers N]``; a slow test re-runs two of them;
* ``data/memorisation_labels.npz`` (:func:`load_label_runs`): conditional networks trained on 64
  ring points with no, true, random or unique labels, five seeds each (memorised fraction, W2 to
  the ring, samples). Remade by ``python3 -m diffedu.teach.memorisation labels [--workers N]``; a
  slow test re-runs two of them and compares.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .._core import check_process
from .._paths import data_path, writable_data_path
from ..memorisation import memorised_fraction, nn_ratio
from ..mixtures import Empirical
from ..processes import Process
from . import plots
from .checks import Feedback, check_close, check_implementation
from .models import load_npz_cache
from .widgets import float_slider, int_slider, interactive

__all__ = ["memorisation_widget", "plot_memorising_denoiser", "plot_memorisation_curves", "plot_label_samples",
           "load_emm_ring", "load_ring_sweep", "load_label_runs", "load_digit_sweep", "LABEL_CONFIG",
           "DIGIT_SWEEP_CONFIG", "RING_CONFIG", "check_nn_ratio", "check_baseline", "check_close"]

LABEL_FILE, DIGIT_FILE, RING_FILE = "memorisation_labels.npz", "memorisation_digits.npz", "memorisation_ring.npz"

#: Settings of the label cache: the first ``label_M`` of a seeded permutation (one per seed) of
#: ``n_data`` seeded ring points; a ScoreMLP (with ``n_labels`` when labelled) trained by
#: :func:`diffedu.training.train` and sampled with DPM-Solver++(2M) in ``n_steps`` steps, each
#: sample's label drawn from the training labels; W2 against a fresh ring sample of ``n_samples``.
LABEL_CONFIG = dict(n_data=1024, data_seed=0, reference_seed=1, label_M=64, label_width=128, depth=3, steps=3000,
                    batch_size=128, lr=3e-3, n_steps=30, n_samples=400, label_seeds=[0, 1, 2, 3, 4],
                    label_conditions=["none", "class", "random", "unique"], n_random_labels=8)


#: Settings of the digits cache: the digit network's architecture (teach.models.DIGIT_CONFIG) at
#: two widths, trained on the first M digits of a seeded permutation of the 1,500 training digits.
DIGIT_SWEEP_CONFIG = dict(sizes=[2, 5, 10, 20, 50, 100], widths=[64, 512], depth=3, n_freq=4, weighting="x0",
                          steps=2000, batch_size=256, lr=2e-3, n_samples=300, sampler_steps=40, seed=0)


#: Settings of the ring cache: networks of two widths trained on the first M points of each seed's
#: permutation of the same ``n_data`` ring points as the label cache, three seeds (training set,
#: initialisation and sampling noise); W2 against the same fresh ring sample.
RING_CONFIG = dict(n_data=1024, data_seed=0, reference_seed=1, sizes=[2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128],
                   widths=[32, 256], seeds=[0, 1, 2], depth=3, steps=3000, batch_size=128, lr=3e-3, n_steps=30,
                   n_samples=400)


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


# --- the cached runs, drawn ------------------------------------------------------------------
def plot_memorisation_curves(sizes, fractions, labels, ax=None, *, errors=None, baseline=None, baseline_se=None,
                             level=0.9):
    r"""Memorised fraction against training-set size M (log axis), one curve per row of
    ``fractions`` (R, len(sizes)) labelled ``labels[r]``, with error bars ``errors`` (same shape:
    one standard error) when given. ``baseline`` (len(sizes),), with ``baseline_se``: the level of
    a model that generalises perfectly (dashed grey, band of two standard errors); ``level``: the
    EMM level (dotted). Returns the Axes."""
    ax = plots._ax(ax)
    fr = np.asarray(fractions, dtype=float)
    for r, lab in enumerate(labels):
        ax.errorbar(sizes, fr[r], yerr=None if errors is None else np.asarray(errors, dtype=float)[r], fmt="o-",
                    ms=4, capsize=2, label=lab)
    if baseline is not None:
        b = np.asarray(baseline, dtype=float)
        ax.plot(sizes, b, color="0.4", ls="--", lw=1, label="fresh data (a perfect model)")
        if baseline_se is not None:
            s = np.asarray(baseline_se, dtype=float)
            ax.fill_between(sizes, b - 2 * s, b + 2 * s, color="0.6", alpha=0.3, lw=0)
    ax.axhline(level, color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("training-set size M")
    ax.set_ylabel("memorised fraction of samples")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize="small")
    return ax


def plot_label_samples(runs, axs=None, *, lim=(-3.0, 3.0)):
    """One panel per label condition of the cached conditional runs (seed 0): samples and the
    training points; titles give the memorised fraction. Returns the Axes."""
    conds = runs.conditions
    if axs is None:
        axs = plots.new_axes(len(conds), figsize=(2.6 * len(conds), 2.9), pyplot=True)
    train = runs.train(0)
    for ax, c, xs, f in zip(axs, conds, runs.samples, runs.fractions[:, 0]):
        ax.scatter(*xs.T, s=3, color="C1", alpha=0.5)
        ax.scatter(*train.T.numpy(), marker="x", color="k", s=12)
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{_LABEL_NAMES[c]}: {f:.0%}", fontsize="small")
    return axs


_LABEL_NAMES = {"none": "no labels", "class": "true classes", "random": "8 random labels", "unique": "unique labels"}




# --- exercise checkers ---------------------------------------------------------------------
def _ratio_inputs(generator, dtype, shape):
    B, D = shape
    M = 3 + int(torch.randint(5, (), generator=generator))
    return {"samples": torch.randn(B, D, generator=generator, dtype=dtype),
            "train": torch.randn(M, D, generator=generator, dtype=dtype)}


def check_nn_ratio(answer) -> Feedback:
    r"""``answer(samples, train)`` = ``|x - x_(1)| / |x - x_(2)|`` for each row of samples (B, D)
    against train (M, D): a (B,) tensor. Checked on fresh inputs against
    :func:`diffedu.memorisation.nn_ratio`."""
    return check_implementation(answer, nn_ratio, _ratio_inputs, name="nearest-neighbour ratio")


def _baseline_reference(train_sets, fresh):
    f = torch.tensor([memorised_fraction(x, tr) for tr, x in zip(train_sets, fresh)], dtype=train_sets.dtype)
    return torch.stack([f.mean(), f.std() / math.sqrt(len(f))])


def _baseline_inputs(generator, dtype, shape):
    B, D = shape
    S, M = 4 + int(torch.randint(4, (), generator=generator)), 2 + int(torch.randint(4, (), generator=generator))
    centres = 3 * torch.randn(3, D, generator=generator, dtype=dtype)   # clustered data: many are memorised

    def draw(*size):
        return centres[torch.randint(3, size[:-1], generator=generator)] + 0.2 * torch.randn(size, generator=generator,
                                                                                               dtype=dtype)
    return {"train_sets": draw(S, M, D), "fresh": draw(S, 10 * B, D)}


def check_baseline(answer) -> Feedback:
    r"""``answer(train_sets, fresh)`` = the mean and standard error, over the S repeats, of the
    memorised fraction of ``fresh[s]`` (n, D) against ``train_sets[s]`` (M, D): a tensor ``[mean,
    stderr]`` (what :func:`diffedu.memorisation.memorisation_baseline` computes from its own draws).
    Checked on fresh inputs."""
    return check_implementation(answer, _baseline_reference, _baseline_inputs, name="memorisation baseline")


# --- the label runs (cached) -------------------------------------------------------------------
def ring_data(config=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n_data`` seeded ring points (float32) the training sets are drawn from, and their
    components (the true class labels)."""
    from ..datasets import ring

    c = LABEL_CONFIG if config is None else config
    x, y = ring().sample_with_labels(c["n_data"], generator=torch.Generator().manual_seed(c["data_seed"]),
                                     dtype=torch.float32)
    return x, y


def _order(seed, n):
    return torch.randperm(n, generator=torch.Generator().manual_seed(1000 + seed))


def ring_reference(config=None) -> torch.Tensor:
    """The fresh ring sample (``n_samples`` points, float64) every run's W2 is measured against."""
    from ..datasets import ring

    c = LABEL_CONFIG if config is None else config
    return ring().sample(c["n_samples"], generator=torch.Generator().manual_seed(c["reference_seed"]),
                         dtype=torch.float64)


def run_labels(condition: str, M: int, seed: int, config=None):
    """Training points and labels of a conditional run: the first M ring points of the seed's
    permutation with no labels (``"none"``), their components (``"class"``), ``n_random_labels``
    labels drawn at random (``"random"``) or one label per point (``"unique"``). Returns
    ``(x (M, 2), y (M,) long or None, number of labels)``."""
    c = LABEL_CONFIG if config is None else config
    x, comp = ring_data(c)
    idx = _order(seed, len(x))[:M]
    if condition == "none":
        return x[idx], None, 0
    if condition == "class":
        return x[idx], comp[idx], 8
    if condition == "random":
        n = c["n_random_labels"]
        return x[idx], torch.randint(n, (M,), generator=torch.Generator().manual_seed(2000 + seed)), n
    if condition == "unique":
        return x[idx], torch.arange(M), M
    raise ValueError(f"condition must be one of 'none', 'class', 'random', 'unique'; got {condition!r}")


def label_run(condition: str, seed: int, config=None) -> dict:
    r"""One conditional run: a ScoreMLP with ``n_labels`` (none for ``"none"``) trained by
    :func:`diffedu.training.train` with ``labels=`` on ``label_M`` ring points labelled as
    :func:`run_labels` says, then sampled with each sample's label drawn from the training labels.
    Returns ``{"fraction", "w2", "samples"}`` (judged against all the training points)."""
    from ..metrics import w2
    from ..nets import ScoreMLP
    from ..processes import VP, time_grid
    from ..samplers import dpmpp_2m
    from ..training import dsm_loss, train

    torch.set_num_threads(1)
    c = LABEL_CONFIG if config is None else config
    vp = VP()
    x, y, n_labels = run_labels(condition, c["label_M"], seed, c)
    g = torch.Generator().manual_seed(seed)
    net = ScoreMLP(vp, 2, hidden=c["label_width"], depth=c["depth"], param="denoiser", generator=g,
                   n_labels=n_labels or None)
    train(net, dsm_loss(vp), x, labels=y, steps=c["steps"], batch_size=c["batch_size"], lr=c["lr"], generator=g)
    n = c["n_samples"]
    x_T = torch.randn(n, 2, generator=g) * float(vp.sigma(vp.t_max))
    ys = None if y is None else y[torch.randint(len(y), (n,), generator=g)]
    with torch.no_grad():
        s = dpmpp_2m(lambda z, t: net.denoiser(z, t, ys), vp, x_T, time_grid(vp, c["n_steps"])).double()
    return {"fraction": memorised_fraction(s, x.double()), "w2": w2(s, ring_reference(c)), "samples": s}


def _pool_map(fn, jobs, workers):
    if workers <= 1:
        return [fn(*j) for j in jobs]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, *zip(*jobs)))


# --- the ring sweep (cached) ---------------------------------------------------------------------
def ring_run(width: int, M: int, seed: int, config=None) -> dict:
    r"""One run of the ring sweep: a ScoreMLP of hidden ``width`` trained on the first M points of
    seed ``seed``'s permutation (:func:`diffedu.memorisation.mlp_fit_and_sample`, initialised and
    sampled from ``seed``). Returns ``{"fraction", "w2", "samples" (n, 2)}``."""
    from ..memorisation import mlp_fit_and_sample
    from ..metrics import w2
    from ..processes import VP

    torch.set_num_threads(1)
    c = RING_CONFIG if config is None else config
    x, _ = ring_data(c)
    train = x[_order(seed, len(x))[:M]]
    fit = mlp_fit_and_sample(VP(), hidden=width, depth=c["depth"], steps=c["steps"], batch_size=c["batch_size"],
                             lr=c["lr"], n_steps=c["n_steps"], seed=seed)
    s = fit(train, c["n_samples"]).double()
    return {"fraction": memorised_fraction(s, train.double()), "w2": w2(s, ring_reference(c)), "samples": s}


class RingSweep(NamedTuple):
    """The ring cache: ``fractions``, ``w2`` (len(widths), len(seeds), len(sizes)): memorised fraction
    (1/3 rule) and W2 to a fresh ring sample of each run; ``config``: every setting."""

    sizes: list
    widths: list
    seeds: list
    fractions: np.ndarray
    w2: np.ndarray
    config: dict

    def train(self, M: int, seed: int) -> torch.Tensor:
        """The training set of M points of seed ``seed`` (float32, (M, 2))."""
        x, _ = ring_data(self.config)
        return x[_order(seed, len(x))[:M]]


def make_ring_sweep(*, workers: int = 1, save: bool = False, config=None) -> RingSweep:
    """Every run of :data:`RING_CONFIG` (widths x seeds x sizes, one process each with
    ``workers > 1``); ``save=True`` writes ``data/memorisation_ring.npz``."""
    c = dict(RING_CONFIG if config is None else config)
    W, S, Z = c["widths"], c["seeds"], c["sizes"]
    runs = _pool_map(ring_run, [(w, m, s, c) for w in W for s in S for m in Z], workers)
    fr = np.array([r["fraction"] for r in runs]).reshape(len(W), len(S), len(Z))
    w2 = np.array([r["w2"] for r in runs]).reshape(len(W), len(S), len(Z))
    if save:
        np.savez_compressed(writable_data_path(RING_FILE), fractions=fr, w2=w2, config=json.dumps(c))
    return RingSweep(Z, W, S, fr, w2, c)


def load_ring_sweep(path=None) -> RingSweep:
    """The ring cache of lesson 06 (default ``data/memorisation_ring.npz``; FileNotFoundError names it
    when missing). Made by ``python3 -m diffedu.teach.memorisation ring``."""
    path = data_path(RING_FILE) if path is None else Path(path)
    with np.load(path) as z:
        c = json.loads(str(z["config"]))
        return RingSweep(c["sizes"], c["widths"], c["seeds"], np.array(z["fractions"]), np.array(z["w2"]), c)


class LabelRuns(NamedTuple):
    """The label cache: ``fractions``, ``w2`` (len(conditions), len(seeds)): memorised fraction
    (1/3 rule, against all training points) and W2 to a fresh ring sample; ``samples``
    (len(conditions), n, 2): seed 0's samples; ``config``: every setting."""

    conditions: list
    seeds: list
    fractions: np.ndarray
    w2: np.ndarray
    samples: np.ndarray
    config: dict

    def train(self, seed: int) -> torch.Tensor:
        """The training points of seed ``seed`` (float32, (label_M, 2))."""
        return run_labels("none", self.config["label_M"], seed, self.config)[0]


def make_label_runs(*, workers: int = 1, save: bool = False, config=None) -> LabelRuns:
    """Every conditional run of :data:`LABEL_CONFIG` (conditions x seeds, one process each with
    ``workers > 1``); ``save=True`` writes ``data/memorisation_labels.npz``."""
    c = dict(LABEL_CONFIG if config is None else config)
    C, S = c["label_conditions"], c["label_seeds"]
    runs = _pool_map(label_run, [(cond, s, c) for cond in C for s in S], workers)
    fr = np.array([r["fraction"] for r in runs]).reshape(len(C), len(S))
    w2 = np.array([r["w2"] for r in runs]).reshape(len(C), len(S))
    samples = np.stack([runs[i * len(S)]["samples"].numpy() for i in range(len(C))]).astype(np.float16)
    out = LabelRuns(C, S, fr, w2, samples.astype(np.float64), c)
    if save:
        np.savez_compressed(writable_data_path(LABEL_FILE), fractions=fr, w2=w2, samples=samples,
                            config=json.dumps(c))
    return out


def load_label_runs(path=None) -> LabelRuns:
    """The label cache of lesson 06, from ``path`` (default ``data/memorisation_labels.npz``;
    FileNotFoundError names it when missing). Made by ``python3 -m diffedu.teach.memorisation
    labels``; the default file must have been made with :data:`LABEL_CONFIG` (ValueError otherwise)."""
    z, c = load_npz_cache(LABEL_FILE, path, LABEL_CONFIG, "LABEL_CONFIG", "python3 -m diffedu.teach.memorisation labels")
    return LabelRuns(c["label_conditions"], c["label_seeds"], z["fractions"], z["w2"],
                     z["samples"].astype(np.float64), c)


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


# --- the digits cache ---------------------------------------------------------------------------
def digit_order(config=None) -> torch.Tensor:
    """The seeded order of the 1,500 training digits; a training set of M digits is its first M."""
    c = DIGIT_SWEEP_CONFIG if config is None else config
    from .models import N_TRAIN

    return torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(c["seed"]))


def digit_run(width: int, M: int, config=None) -> dict:
    r"""One run of the digits sweep: the digit network's architecture with hidden ``width``,
    trained by DSM (x0 weighting) on the first M training digits of :func:`digit_order`, sampled
    with Heun from seeded noise. Returns ``{"fraction", "ratio_median", "samples" (n, 64)}``."""
    from ..nets import ScoreMLP
    from ..processes import VP, time_grid
    from ..samplers import heun
    from ..training import dsm_loss, train
    from .models import digit_split

    torch.set_num_threads(1)
    c = DIGIT_SWEEP_CONFIG if config is None else config
    X = digit_split()[0][digit_order(c)[:M]]
    vp = VP()
    g = torch.Generator().manual_seed(c["seed"])
    net = ScoreMLP(vp, 64, hidden=width, depth=c["depth"], n_freq=c["n_freq"], param="denoiser",
                   sigma_data=float(X.std()), generator=g)
    train(net, dsm_loss(vp, weighting=c["weighting"]), X, steps=c["steps"], batch_size=c["batch_size"], lr=c["lr"],
          generator=g)
    x_T = torch.randn(c["n_samples"], 64, generator=torch.Generator().manual_seed(c["seed"] + 1))
    with torch.no_grad():
        s = heun(net.denoiser, vp, x_T, time_grid(vp, c["sampler_steps"])).double()
    return {"fraction": memorised_fraction(s, X.double()), "ratio_median": float(nn_ratio(s, X.double()).median()),
            "samples": s}


class DigitSweep(NamedTuple):
    """The digits cache: ``fractions``, ``ratio_median`` (len(widths), len(sizes)); ``samples``
    (len(widths), len(sizes), 16, 64): the first 16 samples of each run; ``config``."""

    sizes: list
    widths: list
    fractions: np.ndarray
    ratio_median: np.ndarray
    samples: np.ndarray
    config: dict

    def train(self, M: int) -> torch.Tensor:
        """The training set of M digits (float32, (M, 64))."""
        from .models import digit_split

        return digit_split()[0][digit_order(self.config)[:M]]


def make_digit_sweep(*, workers: int = 1, save: bool = False, config=None) -> DigitSweep:
    """Run the digits sweep (one training per width and size); ``save=True`` writes
    ``data/memorisation_digits.npz``."""
    c = dict(DIGIT_SWEEP_CONFIG if config is None else config)
    W, Z = c["widths"], c["sizes"]
    runs = _pool_map(digit_run, [(w, m) for w in W for m in Z], workers)
    fr = np.array([r["fraction"] for r in runs]).reshape(len(W), len(Z))
    med = np.array([r["ratio_median"] for r in runs]).reshape(len(W), len(Z))
    samples = np.stack([r["samples"][:16].numpy() for r in runs]).reshape(len(W), len(Z), 16, 64).astype(np.float16)
    out = DigitSweep(Z, W, fr, med, samples, c)
    if save:
        np.savez_compressed(writable_data_path(DIGIT_FILE), fractions=fr, ratio_median=med, samples=samples,
                            config=json.dumps(c))
    return out


def load_digit_sweep(path=None) -> DigitSweep:
    """The digits cache of lesson 06, from ``path`` (default ``data/memorisation_digits.npz``). Made by
    ``python3 -m diffedu.teach.memorisation digits``; the settings must be :data:`DIGIT_SWEEP_CONFIG`."""
    z, c = load_npz_cache(DIGIT_FILE, path, DIGIT_SWEEP_CONFIG, "DIGIT_SWEEP_CONFIG",
                          "python3 -m diffedu.teach.memorisation digits")
    return DigitSweep(c["sizes"], c["widths"], z["fractions"], z["ratio_median"], z["samples"].astype(np.float64), c)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    usage = ("usage: python3 -m diffedu.teach.memorisation labels|digits|ring [--workers N]\n"
             "  ring:   remakes data/memorisation_ring.npz (66 trainings, about 8 CPU-minutes)\n"
             "  labels: remakes data/memorisation_labels.npz (20 trainings, about 4 CPU-minutes)\n"
             "  digits: remakes data/memorisation_digits.npz (12 trainings, about 5 CPU-minutes)")
    if not argv or argv[0] not in ("labels", "digits", "ring") or len(argv) not in (1, 3) \
            or (len(argv) == 3 and argv[1] != "--workers"):
        print(usage)
        return 2
    workers = int(argv[2]) if len(argv) == 3 else 1
    if argv[0] == "ring":
        out = make_ring_sweep(workers=workers, save=True)
        print(np.round(out.fractions.mean(1), 3), np.round(out.w2.mean(1), 3))
        return 0
    if argv[0] == "digits":
        print(np.round(make_digit_sweep(workers=workers, save=True).fractions, 3))
        return 0
    out = make_label_runs(workers=workers, save=True)
    for c, f, w in zip(out.conditions, out.fractions, out.w2):
        print(f"{c:8s} memorised {f.mean():.3f} +- {f.std(ddof=1) / math.sqrt(len(f)):.3f}, "
              f"W2 {w.mean():.3f} +- {w.std(ddof=1) / math.sqrt(len(w)):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
