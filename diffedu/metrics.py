r"""Sample-based distances and model errors.

* :func:`w2` - the exact 2-Wasserstein distance between two equal-weight point clouds, by the
  network-simplex optimal transport solver of POT (``ot.emd2``; Flamary et al. 2021);
* :func:`w2_noise_floor` - W2 between independent sample sets of *one* distribution, the value a
  distance between two samplers cannot beat at that sample size (W2 between empirical measures
  of n points shrinks only like ``n^(-1/D)`` for D > 2, and like ``sqrt(log n / n)``-ish in 2-D);
* :func:`relative_score_error` - the ``p_t``-weighted relative error of a score model against an
  exact score, ``sqrt( E_{p_t} |s_theta - s|^2 / E_{p_t} |s|^2 )``, per time.
"""

from __future__ import annotations

import numpy as np
import torch

from ._core import check_batch, check_n, check_process

__all__ = ["w2", "w2_noise_floor", "relative_score_error"]


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
