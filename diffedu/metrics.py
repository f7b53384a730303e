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
* :func:`moment_errors` - relative errors of the mean and the covariance of a sample.
"""

from __future__ import annotations

import numpy as np
import torch

from ._core import check_batch, check_n, check_process

__all__ = ["w2", "w2_noise_floor", "relative_score_error", "mmd2", "median_bandwidth", "moment_errors"]


def w2(x, y) -> float:
    r"""Exact ``W2(mu_x, mu_y)`` between the uniform measures on the rows of x (n, D) and y (m, D).

    ``W2^2 = min_P sum_ij P_ij |x_i - y_j|^2`` over couplings P with uniform marginals,
    solved exactly by ``ot.emd2`` in float64 (O(n^3); fine up to a few thousand points)."""
    import ot  # POT, imported here so the score metrics work without it
    x = check_batch(torch.as_tensor(x), name="x")
    y = check_batch(torch.as_tensor(y), x.shape[1], name="y")
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
    n = check_n(n, "n")
    if n < 1:
        raise ValueError("n must be at least 1")
    check_n(repeats, "repeats")
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
    ts = torch.as_tensor(ts, dtype=torch.float64).reshape(-1)
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
            s_model = score(x.to(model_dtype), t).to(dtype)
        if s_model.shape != s_true.shape:
            raise ValueError(f"score must return shape {tuple(s_true.shape)}; got {tuple(s_model.shape)}")
        out.append(torch.sqrt(((s_model - s_true) ** 2).sum() / (s_true**2).sum()))
    return torch.stack(out)


def median_bandwidth(x, y=None) -> float:
    r"""The median heuristic: the median distance between distinct rows of x (and y), a kernel
    bandwidth of the data's own scale (Gretton et al. 2012, Sec. 8). At most 1,000 rows are used."""
    x = check_batch(torch.as_tensor(x), name="x").detach().double()[:1000]
    z = x if y is None else torch.cat([x, check_batch(torch.as_tensor(y), x.shape[1], name="y").detach().double()[:1000]])
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
    x = check_batch(torch.as_tensor(x), name="x").detach().double()
    y = check_batch(torch.as_tensor(y), x.shape[1], name="y").detach().double()
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"x and y need at least 2 rows each; got {x.shape[0]} and {y.shape[0]}")
    h = median_bandwidth(x, y) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError(f"bandwidth must be positive; got {h!r}")

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
    x = check_batch(torch.as_tensor(x), name="x").detach().double()
    mean = torch.as_tensor(mean, dtype=torch.float64)
    cov = torch.as_tensor(cov, dtype=torch.float64)
    if mean.shape != (x.shape[1],) or cov.shape != (x.shape[1], x.shape[1]):
        raise ValueError(f"mean must be ({x.shape[1]},) and cov ({x.shape[1]}, {x.shape[1]}); got "
                         f"{tuple(mean.shape)} and {tuple(cov.shape)}")
    e_mean = float((x.mean(0) - mean).norm() / cov.trace().clamp_min(1e-300).sqrt())
    e_cov = float((torch.cov(x.T).reshape(cov.shape) - cov).norm() / cov.norm().clamp_min(1e-300))
    return e_mean, e_cov
