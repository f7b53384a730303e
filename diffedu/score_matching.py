r"""Explicit and denoising score matching, and the constant that separates them.

A network ``s_theta(x, t)`` should be the score ``grad log p_t``. At one noise level t (weight it
by ``lambda(t)`` and average over t for the full objective):

    ESM(theta) = E_{x ~ p_t} |s_theta(x, t) - grad log p_t(x)|^2         (cannot be computed: p_t unknown)
    DSM(theta) = E_{x_0, eps} |s_theta(x_t, t) + eps / sigma_t|^2,   x_t = alpha_t x_0 + sigma_t eps

(Vincent 2011). ``-eps / sigma_t = grad log p(x_t | x_0)`` is the score of the noising kernel,
and its average given x_t is the score itself (Tweedie), so expanding both squares the terms
with theta agree and

    DSM(theta) - ESM(theta) = E |eps / sigma_t|^2 - E_{p_t} |grad log p_t|^2
                            = D / sigma_t^2 - E_{p_t} |grad log p_t|^2 = C(t),

a constant that does not depend on theta: both objectives have the same minimiser. With
Tweedie's second-order formula ``Cov[x_0 | x_t = x] = (sigma_t^2 / alpha_t^2) (I + sigma_t^2 J_s(x))``
(J_s the Jacobian of the score) and ``E_{p_t} div s = -E_{p_t} |s|^2`` (integration by parts),

    C(t) = (alpha_t^2 / sigma_t^4) E_{x ~ p_t} tr Cov[x_0 | x_t = x],

the posterior spread of x_0 that no model can remove: the exact score's DSM loss is exactly
C(t), the floor of the training loss. As t -> 0, ``tr Cov[x_0 | x_t] ~ D sigma_t^2 / alpha_t^2``
for data with a density, so C(t) grows like ``D / sigma_t^2``; under a weighting lambda(t) the
constant is the lambda-average of C(t). Lesson 04 ("Learning the score").
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ._core import Distribution, check_batch, check_callable, check_int, check_output, check_process, coefs
from .calculus import divergence

__all__ = ["esm_terms", "dsm_terms", "posterior_cov_trace", "dsm_constant", "ScoreMatchingGap",
           "score_matching_gap", "dsm_floor"]

_WHY = "the score matching losses divide by sigma_t, which is 0 at t = 0"


def esm_terms(score, exact, x, t) -> torch.Tensor:
    r"""``|s(x, t) - s*(x, t)|^2`` per row of x: (B,). score, exact: fields ``f(x, t) -> (B, D)``."""
    check_callable(score, "score")
    check_callable(exact, "exact", "the exact score, a callable f(x, t) -> (B, D)")
    x = check_batch(x)
    return ((check_output(score(x, t), x, "score") - check_output(exact(x, t), x, "exact")) ** 2).sum(1)


def dsm_terms(score, process, x0, t, eps) -> torch.Tensor:
    r"""``|s(x_t, t) + eps / sigma_t|^2`` per row, with ``x_t = alpha_t x0 + sigma_t eps``: (B,).

    x0, eps: (B, D); t: a float or (B,) times > 0. The noise is an argument, so two models can be
    compared on the same draws (common random numbers).
    """
    check_callable(score, "score")
    x0 = check_batch(x0, name="x0")
    eps = check_batch(eps, x0.shape[1], name="eps")
    if eps.shape != x0.shape:
        raise ValueError(f"eps must have x0's shape {tuple(x0.shape)}; got {tuple(eps.shape)}")
    a, s = coefs(process, t, x0, positive=_WHY)
    xt = a * x0 + s * eps
    return ((check_output(score(xt, t), xt, "score") + eps / s) ** 2).sum(1)


def posterior_cov_trace(score, process, x, t) -> torch.Tensor:
    r"""``tr Cov[x_0 | x_t = x]`` from the score, by Tweedie's second-order formula: (B,).

    ``Cov[x_0 | x_t = x] = (sigma_t^2 / alpha_t^2) (I + sigma_t^2 J_s(x))``, so the trace is
    ``(sigma_t^2 / alpha_t^2) (D + sigma_t^2 div s(x, t))``; the divergence is exact (autograd,
    D backward passes). With an exact score (a Gaussian, a mixture) this is the closed form.
    """
    check_callable(score, "score")
    x = check_batch(x)
    a, s = coefs(process, t, x, positive=_WHY)
    div = divergence(lambda y: check_output(score(y, t), y, "score"), x).detach()
    return (s**2 / a**2).reshape(-1) * (x.shape[1] + s.reshape(-1) ** 2 * div)


def dsm_constant(dist: Distribution, process, t, *, n: int = 4000, generator=None,
                 dtype=torch.float64) -> tuple[float, float]:
    r"""``C(t) = (alpha_t^2 / sigma_t^4) E_{x ~ p_t} tr Cov[x_0 | x_t = x]`` by Monte Carlo over x.

    dist: a distribution with an exact score (its ``sample_marginal`` draws x ~ p_t, its score
    gives the posterior covariance in closed form through :func:`posterior_cov_trace`). t: one
    time > 0. Returns ``(mean, standard error)`` over n draws: the DSM loss of the exact score,
    the floor no model goes below.
    """
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a diffedu distribution with an exact score; got {type(dist).__name__}")
    n = check_int(n, "n", minimum=2)
    x = dist.sample_marginal(n, t, process, generator=generator, dtype=dtype)
    a, s = coefs(process, t, x, positive=_WHY)
    vals = (a**2 / s**4).reshape(-1) * posterior_cov_trace(dist.bind(process).score, process, x, t)
    return float(vals.mean()), float(vals.std() / math.sqrt(n))


class ScoreMatchingGap(NamedTuple):
    """Result of :func:`score_matching_gap`: the two losses and their difference, each a mean over
    the same draws, with the difference's standard error (the draws are shared, so it is small)."""

    dsm: float
    esm: float
    gap: float
    gap_se: float


def score_matching_gap(score, dist: Distribution, process, t, *, n: int = 4000, generator=None,
                       dtype=torch.float64) -> ScoreMatchingGap:
    r"""DSM and ESM of a model at one time t, on the same draws, and their difference.

    x_0 ~ p_0 and eps are drawn once; ``x_t = alpha_t x_0 + sigma_t eps`` is a draw from p_t, so
    both losses are averaged over the same points. Point by point the difference is
    ``|eps / sigma|^2 - |s*|^2 + 2 s . (eps / sigma + s*)``, whose last term has mean 0 for every
    model s (``E[eps / sigma | x_t] = -s*``): the difference estimates ``C(t)``
    (:func:`dsm_constant`) whatever the model. Pass the same ``generator`` seed for several
    models to compare them on the same draws (common random numbers).
    """
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a diffedu distribution with an exact score; got {type(dist).__name__}")
    n = check_int(n, "n", minimum=2)
    process = check_process(process)
    x0 = dist.sample(n, generator=generator, dtype=dtype)
    eps = torch.randn(x0.shape, generator=generator, dtype=dtype, device=x0.device)
    a, s = coefs(process, t, x0, positive=_WHY)
    xt = a * x0 + s * eps
    with torch.no_grad():
        d = dsm_terms(score, process, x0, t, eps)
        e = esm_terms(score, dist.bind(process).score, xt, t)
    diff = d - e
    return ScoreMatchingGap(float(d.mean()), float(e.mean()), float(diff.mean()),
                            float(diff.std() / math.sqrt(n)))


class _Exact:
    """A "model" whose score is the exact one (for the floor of a training loss)."""

    def __init__(self, score):
        self.score = score


def dsm_floor(dist: Distribution, process, *, weighting: str = "eps", t_min: float | None = None,
              n: int = 20000, generator=None, dtype=torch.float64) -> tuple[float, float]:
    r"""The training loss of the exact score: the floor of :func:`diffedu.training.dsm_loss`.

    The same loss (same weighting, same range of t, the same draws of t, x_0 and eps as a
    training step) evaluated on the exact score of ``dist``, by Monte Carlo over n draws in
    batches: ``E_t lambda(t) C(t)`` with t uniform on ``[t_min, t_max]``. Returns
    ``(mean, standard error)``. A network trained with that loss stays above it, by its ESM.
    """
    from .training import dsm_loss

    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a diffedu distribution with an exact score; got {type(dist).__name__}")
    n = check_int(n, "n", minimum=20)
    loss = dsm_loss(process, weighting=weighting, t_min=t_min)
    model = _Exact(dist.bind(process).score)
    vals = torch.stack([loss(model, dist.sample(n // 20, generator=generator, dtype=dtype), generator=generator)
                        for _ in range(20)])
    return float(vals.mean()), float(vals.std() / math.sqrt(len(vals)))
