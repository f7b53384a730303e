r"""The continuous-time ELBO of masked diffusion, exactly and as a training loop estimates it.

    log p(x_0) >= int_0^1 (-alpha'_t) / (1 - alpha_t) E_{x_t ~ q(.|x_0)} [ sum_{i masked} log D(x_t)[i, x_0^i] ] dt

depends on the schedule only through ``d alpha / (1 - alpha)`` and is the same for every
schedule (substitute alpha for t; Shi et al. 2024, "Simplified and generalized masked
diffusion", eq. 5; Sahoo et al. 2024, MDLM, eq. 10). For the exact denoiser it equals
``log p(x_0)``. Lesson 09.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._core import check_callable
from ._checks import check_cpu_generator, check_denoised, check_int, check_tokens
from .schedules import MaskSchedule, check_schedule, mask_tokens

__all__ = ["elbo_integrand", "elbo", "elbo_mc"]

_F64 = torch.float64


def _mask_costs(denoiser, x0, V):
    """For every mask pattern M (2^L of them): ``sum_{i in M} -log D(x0 masked by M)[i, x0_i]``."""
    B, L = x0.shape
    M = (torch.arange(2**L)[:, None] >> torch.arange(L)[None]) & 1  # (2^L, L) 1 = masked
    xt = torch.where(M[None].bool(), torch.full((B, 2**L, L), V, dtype=torch.long), x0[:, None, :])
    probs = check_denoised(denoiser(xt.reshape(-1, L), None), B * 2**L, L, V).reshape(B, 2**L, L, V)
    p_true = probs.gather(-1, x0[:, None, :, None].expand(B, 2**L, L, 1))[..., 0]
    nll = -torch.log(p_true.clamp(min=1e-300)) * M[None]
    return nll.sum(-1), M.sum(1)  # (B, 2^L), (2^L,)


def _check_elbo_args(denoiser, x0, schedule, vocab_size):
    check_callable(denoiser, "denoiser", "a callable denoiser(x, t) -> (B, L, V)")
    schedule = check_schedule(schedule)
    V = check_int(vocab_size, "vocab_size", minimum=2)
    x0 = check_tokens(x0, V, "x0", allow_mask=False).cpu()
    if x0.shape[1] > 12:
        raise ValueError(f"x0 must have length L <= 12 (2^L mask patterns); got {x0.shape[1]}")
    return schedule, V, x0


def _rate_per_alpha(cost, m, a, L):
    r"""``sum_M P_t(M) / (1 - alpha_t) sum_{i in M} log D[i, x0^i]`` at each alpha: (T, B).

    ``P_t(M) = (1 - alpha)^|M| alpha^(L - |M|)``; |M| = 0 costs nothing, so the division by
    ``1 - alpha`` is written as a power ``|M| - 1`` (no 0 / 0 at alpha = 1)."""
    mm = m.clamp(min=1).to(_F64)
    P = (1 - a[:, None]) ** (mm[None] - 1) * a[:, None] ** (L - m[None].to(_F64))  # (T, 2^L)
    return -(P @ cost.T)


def elbo_integrand(denoiser, x0, schedule: MaskSchedule, vocab_size: int, t, *, per: str = "t") -> torch.Tensor:
    r"""The integrand of the continuous-time ELBO of each sequence at the times t: (T, B) float64.

    ``per="t"``: the ELBO per unit of time,
    ``(-alpha'_t) sum_M P_t(M) / (1 - alpha_t) sum_{i in M} log D(x0 masked by M)[i, x0^i]``,
    which differs from schedule to schedule; ``per="alpha"``: the same per unit of ``alpha_t``
    (divided by ``-alpha'_t``), a function of ``alpha_t`` alone, the same curve for every
    schedule: the reason the ELBO is schedule-free. The expectation over x_t is exact: a sum
    over all 2^L mask patterns (L <= 12). ``denoiser(x, None)``: time-agnostic denoisers only.
    t: (T,) times in [0, 1]. Lesson 09.
    """
    schedule, V, x0 = _check_elbo_args(denoiser, x0, schedule, vocab_size)
    if per not in ("t", "alpha"):
        raise ValueError(f"per must be 't' or 'alpha'; got {per!r}")
    t = schedule.check_t(t).reshape(-1)
    cost, m = _mask_costs(denoiser, x0, V)
    rate = _rate_per_alpha(cost, m, schedule.alpha(t), x0.shape[1])
    return rate if per == "alpha" else (-schedule.d_alpha(t))[:, None] * rate


def elbo(denoiser, x0, schedule: MaskSchedule, vocab_size: int, *, n_t: int = 64) -> torch.Tensor:
    r"""Continuous-time ELBO ``<= log p(x0)`` per sequence, by exact expectation over masks: (B,).

    ``ELBO = int_0^1 (-alpha'_t) / (1 - alpha_t) sum_M P_t(M) sum_{i in M} log D(x0 masked by M)[i, x0^i] dt``
    with ``P_t(M) = (1 - alpha_t)^|M| alpha_t^(L - |M|)`` over all 2^L mask patterns (L <= 12)
    (:func:`elbo_integrand`), and Gauss-Legendre quadrature with ``n_t`` nodes in t. The denoiser
    is called as ``denoiser(x, None)``: time-agnostic denoisers only (then the value does not
    depend on the schedule; for the exact denoiser it equals ``log p(x0)``). Gauss-Legendre is
    exact for :class:`LinearMask` once ``n_t >= L / 2`` and fast for smooth schedules; a schedule
    whose ``alpha'`` is singular at an end (``PowerMask(p)`` with p < 1) converges slowly in ``n_t``.
    """
    schedule, V, x0 = _check_elbo_args(denoiser, x0, schedule, vocab_size)
    n_t = check_int(n_t, "n_t", minimum=1)
    cost, m = _mask_costs(denoiser, x0, V)
    nodes, wts = np.polynomial.legendre.leggauss(n_t)
    t = torch.as_tensor(0.5 * (nodes + 1), dtype=_F64)
    w = torch.as_tensor(0.5 * wts, dtype=_F64)
    integrand = (-schedule.d_alpha(t))[:, None] * _rate_per_alpha(cost, m, schedule.alpha(t), x0.shape[1])
    return w @ integrand


def elbo_mc(denoiser, x0, schedule: MaskSchedule, vocab_size: int, n: int, *, generator=None):
    r"""Monte Carlo ELBO as a training loop estimates it: t ~ U(0, 1), x_t ~ q(. | x0).

    Returns ``(mean, stderr)``, each (B,), over n draws per sequence of
    ``(-alpha'_t) / (1 - alpha_t) sum_{i masked} log D(x_t)[i, x0^i]``; denoiser(x, t) -> (B, L, V).
    """
    check_callable(denoiser, "denoiser", "a callable denoiser(x, t) -> (B, L, V)")
    check_cpu_generator(generator)
    schedule = check_schedule(schedule)
    V = check_int(vocab_size, "vocab_size", minimum=2)
    x0 = check_tokens(x0, V, "x0", allow_mask=False).cpu()
    n = check_int(n, "n", minimum=2)
    B, L = x0.shape
    xr = x0.repeat_interleave(n, 0)
    t = torch.rand(B * n, generator=generator, dtype=_F64).clamp(min=1e-12)
    xt = mask_tokens(xr, t, schedule, V, generator=generator)
    probs = check_denoised(denoiser(xt, t), B * n, L, V)
    logp = torch.log(probs.gather(-1, xr[..., None])[..., 0].clamp(min=1e-300)) * (xt == V)
    val = (-schedule.d_alpha(t) / (1 - schedule.alpha(t)) * logp.sum(1)).reshape(B, n)
    return val.mean(1), val.std(1) / math.sqrt(n)
