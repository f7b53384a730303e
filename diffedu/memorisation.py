r"""Memorisation: does a generated sample copy a training point?

Gu, Du, Pang, Li, Lin and Wang (2023), "On Memorization in Diffusion Models": a sample x counts
as memorised when its nearest training point is much nearer than the second nearest,

    ||x - x_(1)|| < (1/3) ||x - x_(2)||,

the "1/3 rule" (their eq. 5, after Yoon et al. 2023). The memorised fraction of a model's
samples falls as the training set grows; the *effective model memorisation* (EMM) is the
largest training-set size at which it is still at least 0.9 (their Sec. 3). Lesson 06.

The rule counts some samples of a model that generalises perfectly too: a fresh draw from the
data law lands near one training point and far from the rest more often when the training set is
small or clustered. :func:`memorisation_baseline` measures that level for each training-set size,
the baseline a model's memorised fraction is judged against (for a dense training set in D
dimensions it tends to ``3^-D``: 1/9 in the plane).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ._core import check_batch, check_callable, check_generator, check_int, check_positive, check_process, check_real

__all__ = ["mlp_fit_and_sample", "empirical_fit_and_sample", "MEMORISATION_RATIO", "nn_distances", "nn_ratio", "is_memorised", "memorised_fraction",
           "memorisation_sweep", "effective_model_memorisation", "MemorisationSweep", "memorisation_baseline",
           "MemorisationBaseline"]

#: The 1/3 rule: memorised when (distance to nearest) / (distance to second nearest) < 1/3.
MEMORISATION_RATIO = 1.0 / 3.0


def _check_pair(samples, train):
    samples = check_batch(samples, name="samples")
    train = check_batch(train, samples.shape[1], name="train")
    if samples.shape[0] == 0:
        raise ValueError("samples is empty: need at least one row")
    if train.shape[0] < 2:
        raise ValueError(f"train must have at least 2 rows (the rule needs a second nearest point); "
                         f"got {train.shape[0]}")
    return samples, train.to(samples.dtype)


def nn_distances(samples, train, *, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distances from each sample to its nearest and second-nearest training points.

    samples: (B, D), train: (M, D), M >= 2. Returns (B, 2), ascending per row. Computed in
    chunks of ``chunk`` samples with exact differences (no ``|a|^2 - 2ab + |b|^2`` cancellation).
    """
    samples, train = _check_pair(samples, train)
    chunk = check_int(chunk, "chunk", minimum=1)
    out = samples.new_empty(samples.shape[0], 2)
    for i in range(0, samples.shape[0], chunk):
        d = torch.cdist(samples[i:i + chunk], train, compute_mode="donot_use_mm_for_euclid_dist")
        out[i:i + chunk] = torch.topk(d, 2, dim=1, largest=False).values
    return out


def nn_ratio(samples, train) -> torch.Tensor:
    r"""``||x - x_(1)|| / ||x - x_(2)||`` for each sample: (B,), in [0, 1].

    0 means an exact copy of a training point; two equidistant nearest points give 1. When both
    distances are 0 (a duplicated training point copied exactly) the ratio is 0."""
    d = nn_distances(samples, train)
    return torch.where(d[:, 1] > 0, d[:, 0] / d[:, 1].clamp_min(torch.finfo(d.dtype).tiny), 0.0)


def is_memorised(samples, train, *, ratio: float = MEMORISATION_RATIO) -> torch.Tensor:
    """Boolean (B,): True where :func:`nn_ratio` is below ``ratio`` (default 1/3)."""
    ratio = check_real(ratio, "ratio", minimum=0.0, maximum=1.0)
    if ratio == 0:
        raise ValueError("ratio must lie in (0, 1]; got 0.0")
    return nn_ratio(samples, train) < ratio


def memorised_fraction(samples, train, *, ratio: float = MEMORISATION_RATIO) -> float:
    """Fraction of samples (B, D) memorised from train (M, D) under the 1/3 rule: a float in [0, 1]."""
    return float(is_memorised(samples, train, ratio=ratio).to(torch.float64).mean())


def _sequence(value, name):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence; got {type(value).__name__} {value!r}")
    return list(value)


def _sizes(sizes, least=1):
    """Training-set sizes: a non-empty, strictly increasing list of integers >= least."""
    sizes = [check_int(m, "sizes (each a training-set size)", minimum=least) for m in _sequence(sizes, "sizes")]
    if not sizes:
        raise ValueError("sizes must not be empty")
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f"sizes must be strictly increasing; got {sizes}")
    return sizes


def _level(level):
    level = check_real(level, "level", minimum=0.0, maximum=1.0)
    if level == 0:
        raise ValueError("level must lie in (0, 1]; got 0.0")
    return level


def effective_model_memorisation(sizes, fractions, *, level: float = 0.9) -> int:
    r"""EMM: the largest training-set size whose memorised fraction is still >= ``level``.

    sizes: increasing training-set sizes; fractions: their memorised fractions. Returns 0 when
    no size reaches ``level`` (Gu et al. 2023, Sec. 3, at level 0.9)."""
    sizes = _sizes(sizes)
    fractions = [check_real(f, "fractions (each)", minimum=0.0, maximum=1.0) for f in _sequence(fractions, "fractions")]
    if len(sizes) != len(fractions):
        raise ValueError(f"sizes and fractions must have equal lengths; got {len(sizes)} and {len(fractions)}")
    level = _level(level)
    hits = [int(m) for m, f in zip(sizes, fractions) if f >= level]
    return max(hits) if hits else 0


@dataclass(frozen=True)
class MemorisationBaseline:
    """sizes (list of M); fractions (len(sizes),) float64, the mean memorised fraction of fresh data
    over the training sets drawn; stderr (len(sizes),), its standard error over those sets."""

    sizes: list
    fractions: torch.Tensor
    stderr: torch.Tensor


def memorisation_baseline(sample: Callable, sizes, *, n_samples: int = 400, n_sets: int = 20,
                          ratio: float = MEMORISATION_RATIO,
                          generator: torch.Generator | None = None) -> MemorisationBaseline:
    r"""The memorised fraction of a model that generalises perfectly, for each training-set size M.

    A perfect model samples the data law itself. For each M in ``sizes`` and each of ``n_sets``
    repeats, M training points and ``n_samples`` fresh points are drawn independently from
    ``sample(n, generator=...) -> (n, D)`` and :func:`memorised_fraction` of the fresh points
    against the training points is taken; the result is the mean over repeats and its standard
    error (sd / sqrt(n_sets)):

        b(M) = P( ||x - x_(1)|| < ratio ||x - x_(2)|| ),  x, x_1, ..., x_M iid ~ p_data .

    For M points uniform on a circle of circumference 1 (arc distance) b(M) = ratio exactly for
    every M >= 2 (the ratio of the two smallest of M uniform distances is uniform); for a dense
    training set in D dimensions b tends to ``ratio^D``; for few points of a clustered law
    (the ring of lesson 06) it is much higher. Judge a model's memorised fraction against b(M),
    not against 0 or one number.
    """
    check_callable(sample, "sample", "a sampler sample(n, generator=...) -> (n, D)")
    sizes = _sizes(sizes, least=2)
    n_samples, n_sets = check_int(n_samples, "n_samples", minimum=1), check_int(n_sets, "n_sets", minimum=2)
    ratio = check_real(ratio, "ratio", minimum=0.0, maximum=1.0)
    if ratio == 0:
        raise ValueError("ratio must lie in (0, 1]; got 0.0")
    check_generator(generator, "cpu")
    fr = torch.empty(len(sizes), n_sets, dtype=torch.float64)
    for i, m in enumerate(sizes):
        for j in range(n_sets):
            train = check_batch(sample(m, generator=generator), name="sample(M) (the training points)")
            fresh = check_batch(sample(n_samples, generator=generator), train.shape[1], name="sample(n) (fresh points)")
            fr[i, j] = memorised_fraction(fresh.double(), train.double(), ratio=ratio)
    return MemorisationBaseline(sizes, fr.mean(1), fr.std(1) / math.sqrt(n_sets))


@dataclass(frozen=True)
class MemorisationSweep:
    """sizes (list of M), fractions (memorised fraction of the samples for each M), emm (int)."""

    sizes: list
    fractions: list
    emm: int


def memorisation_sweep(fit_and_sample: Callable, data, sizes, *, n_samples: int = 200,
                       generator: torch.Generator | None = None, level: float = 0.9) -> MemorisationSweep:
    r"""Memorised fraction of a model's samples against training-set size M, and the EMM.

    For each M in ``sizes`` (increasing), the training set is the first M rows of one seeded
    permutation of ``data`` (N, D), so the sets are nested; ``fit_and_sample(train, n, generator)``
    must train a model on ``train`` (M, D) and return n samples (n, D) from it. The fraction is
    :func:`memorised_fraction` against that training set.
    """
    data = check_batch(data, name="data")
    sizes = _sizes(sizes, least=2)
    if max(sizes) > data.shape[0]:
        raise ValueError(f"sizes must lie in [2, {data.shape[0]}] (the number of data rows); got {sizes}")
    if not callable(fit_and_sample):
        raise TypeError(f"fit_and_sample must be callable (train, n, generator) -> samples; "
                        f"got {type(fit_and_sample).__name__}")
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    level = _level(level)
    check_generator(generator, "cpu")
    perm = torch.randperm(data.shape[0], generator=generator)
    fractions = []
    for m in sizes:
        train = data[perm[:m]]
        fractions.append(memorised_fraction(fit_and_sample(train, n_samples, generator), train))
    return MemorisationSweep(sizes, fractions, effective_model_memorisation(sizes, fractions, level=level))


def mlp_fit_and_sample(process, *, hidden: int = 128, depth: int = 3, steps: int = 3000,
                       batch_size: int = 128, lr: float = 3e-3, n_steps: int = 30, seed: int = 0) -> Callable:
    r"""A ``fit_and_sample(train, n, generator)`` for :func:`memorisation_sweep`: a small network.

    It trains a :class:`diffedu.nets.ScoreMLP` (denoiser parameterisation, ``hidden`` units,
    ``depth`` layers) on ``train`` (M, D) by :func:`diffedu.nets.train_dsm` for ``steps`` Adam
    steps, then draws n samples with DPM-Solver++(2M) on ``time_grid(process, n_steps)``. Each
    call uses its own generator seeded with ``seed`` (the sweep's generator only chooses the
    training sets), so the result for one M does not depend on which other sizes were run.
    """
    from .nets import ScoreMLP, train_dsm
    from .processes import time_grid
    from .samplers import dpmpp_2m

    check_process(process)
    hidden, depth = check_int(hidden, "hidden", minimum=1), check_int(depth, "depth", minimum=1)
    steps, batch_size = check_int(steps, "steps", minimum=1), check_int(batch_size, "batch_size", minimum=1)
    lr, n_steps = check_positive(lr, "lr"), check_int(n_steps, "n_steps", minimum=1)
    seed = check_int(seed, "seed", minimum=0)

    def fit_and_sample(train, n, generator=None):
        g = torch.Generator().manual_seed(seed)
        net = ScoreMLP(process, train.shape[1], hidden=hidden, depth=depth, param="denoiser", generator=g)
        train_dsm(net, train.to(torch.float32), steps=steps, batch_size=batch_size, lr=lr, generator=g)
        x_T = torch.randn(n, train.shape[1], generator=g) * float(process.sigma(process.t_max))
        with torch.no_grad():
            return dpmpp_2m(net.denoiser, process, x_T, time_grid(process, n_steps))

    return fit_and_sample


def empirical_fit_and_sample(process, *, n_steps: int = 30) -> Callable:
    r"""A ``fit_and_sample(train, n, generator)`` whose "model" is the exact score of the training
    set (:class:`diffedu.Empirical`, the memorising optimal denoiser), sampled with
    DPM-Solver++(2M) on ``time_grid(process, n_steps)`` from ``N(0, sigma_T^2 I)`` noise."""
    from .mixtures import Empirical
    from .processes import time_grid
    from .samplers import dpmpp_2m

    check_process(process)
    n_steps = check_int(n_steps, "n_steps", minimum=1)

    def fit_and_sample(train, n, generator=None):
        x_T = torch.randn(n, train.shape[1], generator=generator, dtype=train.dtype) * float(process.sigma(process.t_max))
        return dpmpp_2m(Empirical(train).bind(process).denoiser, process, x_T, time_grid(process, n_steps))

    return fit_and_sample
