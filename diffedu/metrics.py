r"""Sample-based distances and model errors.

* :func:`w2` - the exact 2-Wasserstein distance between two equal-weight point clouds, by the
  network-simplex optimal transport solver of POT (``ot.emd2``; Flamary et al. 2021);
* :func:`w2_noise_floor` - W2 between independent sample sets of *one* distribution, the value a
  distance between two samplers cannot beat at that sample size (W2 between empirical measures
  of n points shrinks only like ``n^(-1/D)`` for D > 2, and like ``sqrt(log n / n)``-ish in 2-D);
* :func:`relative_score_error` - the ``p_t``-weighted relative error of a score model against an
  exact score, ``sqrt( E_{p_t} |s_theta - s|^2 / E_{p_t} |s|^2 )``, per time;
* :func:`mmd2` - the unbiased squared maximum mean discrepancy with a Gaussian kernel (Gretton et
  al. 2012, eq. 3): a distance between samples whose estimate has mean 0 for two samples of one
  law in any dimension, so it does not suffer W2's noise floor in 64-D;
* :func:`moment_errors` - relative errors of the mean and the covariance of a sample;
* :func:`paired_log_ratio` and :func:`mean_gap` - the two comparisons with an uncertainty that
  lesson 17 states: the geometric mean of paired ratios (two methods on the same starts) and
  the difference of two sample means in standard errors.
"""

from __future__ import annotations

import numpy as np
import torch

from ._core import (Distribution, as_param, as_real_tensor, as_times, check_batch, check_callable, check_dtype,
                    check_int, check_output, check_positive, check_process)
from .gaussian import _eigh_psd


def _samples(x, name, dim=None):
    """A (n, D) float tensor from a tensor or an array of numbers (lists, NumPy arrays)."""
    if not isinstance(x, torch.Tensor):
        x = as_real_tensor(x, name, "a (n, D) tensor or array of numbers")
    return check_batch(x, dim, name=name)

__all__ = ["w2", "w2_noise_floor", "relative_score_error", "mmd2", "median_bandwidth", "moment_errors",
           "paired_log_ratio", "mean_gap"]


def w2(x, y) -> float:
    r"""Exact ``W2(mu_x, mu_y)`` between the uniform measures on the rows of x (n, D) and y (m, D).

    ``W2^2 = min_P sum_ij P_ij |x_i - y_j|^2`` over couplings P with uniform marginals,
    solved exactly by ``ot.emd2`` in float64 (O(n^3); fine up to a few thousand points)."""
    import ot  # POT, imported here so the score metrics work without it
    x = _samples(x, "x")
    y = _samples(y, "y", x.shape[1])
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError(f"x and y need at least one row each; got {x.shape[0]} and {y.shape[0]}")
    xa = x.detach().cpu().double().numpy()
    ya = y.detach().cpu().double().numpy()
    M = ot.dist(xa, ya, metric="sqeuclidean")
    a = np.full(xa.shape[0], 1.0 / xa.shape[0])
    b = np.full(ya.shape[0], 1.0 / ya.shape[0])
    cost = ot.emd2(a, b, M, numItermax=10_000_000)
    return float(np.sqrt(max(cost, 0.0)))


def w2_noise_floor(sample, n: int, *, repeats: int = 3, generator=None) -> torch.Tensor:
    r"""W2 between two independent n-point sample sets of one distribution, ``repeats`` times: (repeats,).

    sample: ``sample(n, generator=...) -> (n, D)`` (a data set's sampler, a distribution's
    ``.sample``). Any W2 between two n-point samplers of the same law fluctuates at this level,
    so a gap is only meaningful well above ``w2_noise_floor(...).mean()``."""
    check_callable(sample, "sample", "a sampler sample(n, generator=...) -> (n, D)")
    n = check_int(n, "n", minimum=1)
    repeats = check_int(repeats, "repeats", minimum=1)
    out = [w2(sample(n, generator=generator), sample(n, generator=generator)) for _ in range(repeats)]
    return torch.tensor(out, dtype=torch.float64)


def relative_score_error(score, exact, process, ts, *, n: int = 2000, generator=None,
                         dtype=torch.float64) -> torch.Tensor:
    r"""p_t-weighted relative score error at each time: (len(ts),).

    score: the model ``score(x, t) -> (B, D)``; exact: a distribution with closed-form marginals
    (a :class:`~diffedu.mixtures.GaussianMixture`, ...). For each t, n points ``x ~ p_t`` (exact
    marginal samples) give

        err(t) = sqrt( sum_b |s_theta(x_b, t) - s(x_b, t)|^2 / sum_b |s(x_b, t)|^2 ).

    The model is evaluated in its own parameter dtype when it is an ``nn.Module``."""
    check_process(process)
    check_callable(score, "score", "a score model score(x, t) -> (B, D)")
    if not isinstance(exact, Distribution):
        raise TypeError(f"exact must be a diffedu distribution with closed-form marginals; got {type(exact).__name__}")
    n, dtype = check_int(n, "n", minimum=1), check_dtype(dtype)
    ts = as_times(ts)
    process.check_t(ts, "ts")
    if bool((ts <= process.t_min).any()):
        raise ValueError(f"ts must be > {process.t_min} (the score is undefined at t = 0); got {ts.tolist()}")
    model_dtype = dtype
    if isinstance(score, torch.nn.Module):
        model_dtype = next(score.parameters()).dtype
    elif hasattr(score, "__self__") and isinstance(score.__self__, torch.nn.Module):
        model_dtype = next(score.__self__.parameters()).dtype
    out = []
    for t in ts.tolist():
        x = exact.sample_marginal(n, t, process, generator=generator, dtype=dtype)
        s_true = exact.score(x, t, process)
        with torch.no_grad():
            s_model = check_output(score(x.to(model_dtype), t), s_true, "score").to(dtype)
        out.append(torch.sqrt(((s_model - s_true) ** 2).sum() / (s_true**2).sum()))
    return torch.stack(out)


def median_bandwidth(x, y=None) -> float:
    r"""The median heuristic: the median distance between distinct rows of x (and y), a kernel
    bandwidth of the data's own scale (Gretton et al. 2012, Sec. 8). At most 1,000 rows are used."""
    x = _samples(x, "x").detach().double()[:1000]
    z = x if y is None else torch.cat([x, _samples(y, "y", x.shape[1]).detach().double()[:1000]])
    if len(z) < 2:
        raise ValueError(f"x (and y) need at least 2 rows in all for a distance between rows; got {len(z)}")
    d = torch.cdist(z, z)
    return float(d[torch.triu_indices(len(z), len(z), 1).unbind()].median())


def mmd2(x, y, *, bandwidth: float | None = None) -> float:
    r"""Unbiased squared MMD between the laws of x (n, D) and y (m, D), Gaussian kernel.

    ``k(a, b) = exp(-|a - b|^2 / (2 h^2))``, h = ``bandwidth`` (default: :func:`median_bandwidth`
    of the pooled sample, which the caller should fix when comparing several samples):

        MMD_u^2 = mean_{i != i'} k(x_i, x_i') + mean_{j != j'} k(y_j, y_j') - 2 mean_{i, j} k(x_i, y_j)

    (Gretton et al. 2012, eq. 3). Its expectation is the population MMD^2, 0 exactly when the
    laws agree; the estimate can be slightly negative. Float64; n, m >= 2.
    """
    x = _samples(x, "x").detach().double()
    y = _samples(y, "y", x.shape[1]).detach().double()
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"x and y need at least 2 rows each; got {x.shape[0]} and {y.shape[0]}")
    h = median_bandwidth(x, y) if bandwidth is None else check_positive(bandwidth, "bandwidth")
    if not h > 0:
        raise ValueError(f"bandwidth must be positive; got {h!r} (the median distance: are the rows all equal?)")

    def k(a, b):
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * h * h))

    n, m = x.shape[0], y.shape[0]
    kxx, kyy = k(x, x), k(y, y)
    within = ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
              + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)))
    return float(within - 2 * k(x, y).mean())


def moment_errors(x, mean, cov) -> tuple[float, float]:
    r"""Relative errors of a sample's mean and covariance against the true ones: ``(e_mean, e_cov)``.

    ``e_mean = |mean_hat - mean| / sqrt(tr cov)`` (in units of the data's spread) and
    ``e_cov = ||cov_hat - cov||_F / ||cov||_F``. x: (n, D); mean (D,); cov (D, D)."""
    x = _samples(x, "x").detach().double()
    if x.shape[0] < 2:
        raise ValueError(f"x needs at least 2 rows for a sample covariance; got {x.shape[0]}")
    mean, cov = as_param(mean, "mean"), as_param(cov, "cov")
    if cov.shape == (x.shape[1], x.shape[1]):
        _eigh_psd(cov, "cov")
    if mean.shape != (x.shape[1],) or cov.shape != (x.shape[1], x.shape[1]):
        raise ValueError(f"mean must be ({x.shape[1]},) and cov ({x.shape[1]}, {x.shape[1]}); got "
                         f"{tuple(mean.shape)} and {tuple(cov.shape)}")
    e_mean = float((x.mean(0) - mean).norm() / cov.trace().clamp_min(1e-300).sqrt())
    e_cov = float((torch.cov(x.T).reshape(cov.shape) - cov).norm() / cov.norm().clamp_min(1e-300))
    return e_mean, e_cov


def _values(v, name, minimum=1):
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a 1-D tensor of values; got {type(v).__name__}")
    if v.dim() != 1 or v.numel() < minimum or not (v.is_floating_point() or v.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name} must be a 1-D real tensor of at least {minimum} values; got shape "
                         f"{tuple(v.shape)}, {v.dtype}")
    v = v.detach().double()
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return v


def paired_log_ratio(a, b) -> tuple[float, float]:
    r"""Paired comparison of two positive per-item values (errors of two methods on the same
    starts): ``(ratio, se)``.

    ``ratio = exp(mean_i log(a_i / b_i))``, the geometric mean of the paired ratios, and ``se``
    the standard error of its logarithm, ``sd_i log(a_i / b_i) / sqrt(n)`` (sample standard
    deviation). Pairing removes the spread between items that both methods share (hard starts are
    hard for both), so ``|log ratio| > 4 se`` says that a is smaller (or larger) than b beyond
    chance on such items. a, b: (n,) positive, n >= 2. Lesson 17.
    """
    a, b = _values(a, "a", 2), _values(b, "b", 2)
    if a.shape != b.shape:
        raise ValueError(f"a and b must pair up: same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    if not bool((a > 0).all() and (b > 0).all()):
        raise ValueError("a and b must be positive (their ratio's logarithm is taken)")
    d = torch.log(a) - torch.log(b)
    return float(d.mean().exp()), float(d.std() / d.numel() ** 0.5)


def mean_gap(a, b) -> float:
    r"""The difference of two sample means in standard errors (Welch's statistic):
    ``(mean(a) - mean(b)) / sqrt(var(a)/n_a + var(b)/n_b)`` (sample variances). Two independent
    samples of one law give about N(0, 1); ``|gap| > 3`` is a difference beyond chance. a, b: 1-D,
    at least 2 values each, not both constant. Lesson 17 (mean log-densities of samples and data).
    """
    a, b = _values(a, "a", 2), _values(b, "b", 2)
    se = (a.var() / a.numel() + b.var() / b.numel()).sqrt()
    if not float(se) > 0:
        raise ValueError("a and b are both constant: their gap has no standard error")
    return float((a.mean() - b.mean()) / se)
