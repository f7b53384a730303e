r"""The Gaussian approximation of a data set's score, and how much of the score it explains.

Wang and Vastola (2024), "The Unreasonable Effectiveness of Gaussian Score Approximation for
Diffusion Models and its Applications": at high noise the score of any data set is close to
the score of the Gaussian with the data's mean and covariance, whose probability-flow map is
exact (:meth:`diffedu.Gaussian.flow`); skipping the early sampler steps with it is *Gaussian
teleportation* (:func:`teleport`). Lesson 07.

The fraction of a score ``s`` explained by an approximation ``a`` at time t, under p_t:

    EV(t) = 1 - E_{x ~ p_t} |s(x, t) - a(x, t)|^2 / E_{x ~ p_t} |s(x, t)|^2 .

For Gaussian data and a Gaussian model it has a closed form (:func:`gaussian_explained_variance`).

**When is the Gaussian part enough?** ``x_t / alpha_t`` is the data blurred by noise of standard
deviation ``sigma_t / alpha_t``. Once that noise is wider than the data in every direction, the
data's higher cumulants reach the score only through powers of ``lambda_max / (sigma/alpha)^2``
(``lambda_max`` the largest eigenvalue of the data covariance), so the score is the Gaussian one
up to small corrections and teleporting down to such a noise level costs little: the rule is
``sigma/alpha >> sqrt(lambda_max)`` (:func:`noise_scale`). Lesson 07 measures it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ._core import (Distribution, as_times, check_batch, check_callable, check_int, check_output,
                    check_process, check_real)
from .gaussian import Gaussian, fit_gaussian

__all__ = ["explained_variance", "explained_variance_se", "ExplainedVariance", "gaussian_explained_variance", "teleport",
           "teleport_sweep", "noise_scale", "rms_distance", "RMSDistance"]


def explained_variance(score, approx, dist: Distribution, process, ts, *, n: int = 1000,
                       generator: torch.Generator | None = None, dtype=torch.float64) -> torch.Tensor:
    r"""``EV(t) = 1 - E|s - a|^2 / E|s|^2`` under ``x ~ p_t``, for each t in ``ts``.

    score, approx: fields ``f(x, t) -> (B, D)`` (for example ``dist.bind(process).score`` and
    ``fit_gaussian(data).bind(process).score``). dist: the distribution whose marginal p_t the
    expectation is taken under (its ``sample_marginal``), n draws per time. ts: (T,) times in
    (0, t_max]. Returns (T,) float64. EV = 1 means a equals s; EV can be negative. A field that
    is a network (an ``nn.Module`` or its bound method) is evaluated in the network's dtype.
    """
    check_process(process)
    check_callable(score, "score", "a score s(x, t) -> (B, D)")
    check_callable(approx, "approx", "an approximate score a(x, t) -> (B, D)")
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a diffedu distribution (with sample_marginal); got {type(dist).__name__}")
    n = check_int(n, "n", minimum=1)
    ts = _positive_times(ts, process)
    out = torch.empty(ts.numel(), dtype=torch.float64)
    for i, t in enumerate(ts.tolist()):
        x = dist.sample_marginal(n, t, process, generator=generator, dtype=dtype)
        s, a = _in_own_dtype(score, x, t, "score"), _in_own_dtype(approx, x, t, "approx")
        out[i] = 1 - float(((s - a) ** 2).sum()) / float((s**2).sum())
    return out


class ExplainedVariance(NamedTuple):
    """ev (T,): the mean of ``repeats`` independent estimates; se (T,): its standard error."""

    ev: torch.Tensor
    se: torch.Tensor


def explained_variance_se(score, approx, dist: Distribution, process, ts, *, n: int = 500, repeats: int = 4,
                          generator: torch.Generator | None = None, dtype=torch.float64) -> ExplainedVariance:
    r""":func:`explained_variance` with its Monte Carlo error: ``repeats`` independent estimates of n
    draws each (one generator, drawn in turn), their mean and standard error ``sd / sqrt(repeats)``.

    The estimate is a ratio of two means, slightly biased at small n (the bias falls like 1/n,
    faster than the error); the spread of independent estimates measures the error without a
    formula for the ratio's variance. Returns :class:`ExplainedVariance` of (T,) float64 tensors.
    """
    repeats = check_int(repeats, "repeats", minimum=2)
    runs = torch.stack([explained_variance(score, approx, dist, process, ts, n=n, generator=generator, dtype=dtype)
                        for _ in range(repeats)])
    return ExplainedVariance(runs.mean(0), runs.std(0) / math.sqrt(repeats))


def _in_own_dtype(f, x, t, name):
    """``f(x, t)`` in x's dtype, x cast to the parameters' dtype when f is a network or its method."""
    owner = f if isinstance(f, torch.nn.Module) else getattr(f, "__self__", None)
    p = next(owner.parameters(), None) if isinstance(owner, torch.nn.Module) else None
    with torch.no_grad():
        if p is None or p.dtype == x.dtype:
            return check_output(f(x, t), x, name).detach()
        return check_output(f(x.to(p.dtype), t), x.to(p.dtype), name).detach().to(x.dtype)


def noise_scale(target) -> float:
    r"""``sqrt(lambda_max)``: the largest standard deviation of the data along any direction, the
    noise level ``sigma/alpha`` above which a data set's score is close to its Gaussian one
    (module docstring; Wang and Vastola 2024, Sec. 3). target: a :class:`Gaussian` or data (M, D)
    (its fitted covariance). Lesson 07: the 8-Gaussian ring has 1.42, the 8x8 digits about 0.84.
    """
    G = _target(target)
    return float(torch.linalg.eigvalsh(G.cov.double()).max().clamp_min(0).sqrt())


def _positive_times(ts, process):
    """Times (T,) in (t_min, t_max], as a float64 tensor."""
    ts = as_times(ts)
    process.check_t(ts, "ts")
    if bool((ts <= process.t_min).any()):
        raise ValueError(f"ts must be > {process.t_min} (the score is undefined at t = 0); got {ts.tolist()}")
    return ts


def _target(target):
    """A Gaussian, or the Gaussian fitted to data (M, D); errors name ``target``."""
    if isinstance(target, Gaussian):
        return target
    try:
        return fit_gaussian(target)
    except (TypeError, ValueError) as e:
        raise type(e)(f"target must be a Gaussian or data (M, D) to fit one: {e}") from e


def gaussian_explained_variance(data: Gaussian, model: Gaussian, process, ts) -> torch.Tensor:
    r"""EV(t) of the score of a Gaussian ``model`` for Gaussian ``data``, in closed form: (T,) float64.

    Both scores are linear: with ``V(t) = alpha_t^2 Sigma + sigma_t^2 I`` (each one's
    :meth:`~diffedu.Gaussian.marginal_cov`) and ``y = x - alpha_t mu_d ~ N(0, V_d)``,
    ``s - a = M y + alpha_t V_m^{-1} (mu_d - mu_m)`` with ``M = V_m^{-1} - V_d^{-1}``, so

        EV(t) = 1 - [tr(M V_d M) + alpha_t^2 |V_m^{-1} (mu_d - mu_m)|^2] / tr(V_d^{-1}).

    In 1-D with equal means, ``EV = 1 - (1 - v_d / v_m)^2`` (lesson 07, exercise 2). ts: (T,)
    times in (0, t_max]. The Monte Carlo :func:`explained_variance` estimates the same number.
    """
    check_process(process)
    for name, g in (("data", data), ("model", model)):
        if not isinstance(g, Gaussian):
            raise TypeError(f"{name} must be a Gaussian; got {type(g).__name__}")
    if data.dim != model.dim:
        raise ValueError(f"data and model must have the same dimension; got {data.dim} and {model.dim}")
    ts = _positive_times(ts, process)
    out = torch.empty(ts.numel(), dtype=torch.float64)
    for i, t in enumerate(ts.tolist()):
        Vd, Vm = data.marginal_cov(t, process), model.marginal_cov(t, process)
        Pd, Pm = torch.linalg.inv(Vd), torch.linalg.inv(Vm)
        M = Pm - Pd
        shift = float(process.alpha(t)) * (Pm @ (data.mean - model.mean))
        out[i] = 1 - float(torch.trace(M @ Vd @ M) + (shift**2).sum()) / float(torch.trace(Pd))
    return out


def teleport(sampler, D, process, x, ts, target, *, t_from: float | None = None, **kw):
    r"""Gaussian teleportation: skip the early steps with the exact flow of a matching Gaussian.

    Wang and Vastola (2024): early in sampling the true score is close to that of the Gaussian
    with the data's mean and covariance, whose PF-ODE map is exact (:meth:`Gaussian.flow`).
    x (B, D) at ``t_from`` (default ``process.t_max``) is carried to ``ts[0]`` by that map, then
    ``sampler`` (any of :mod:`diffedu.samplers`) runs on ``ts`` with the denoiser D; ``kw`` go to
    the sampler. ``target``: a :class:`Gaussian`, or data (M, D) to fit one
    (:func:`~diffedu.gaussian.fit_gaussian`). Returns (B, D) at ``ts[-1]``.
    """
    check_callable(sampler, "sampler", "a sampler function sampler(D, process, x, ts)")
    process = check_process(process)
    G = _target(target)
    t_from = process.t_max if t_from is None else check_real(t_from, "t_from")
    ts = as_times(ts)
    process.check_t(ts, "ts")
    x = G.flow(check_batch(x), t_from, float(ts[0]), process)
    return sampler(D, process, x, ts, **kw)


class RMSDistance(NamedTuple):
    """rms: ``sqrt(mean_b |x_b - y_b|^2)``; se: its standard error (delta method)."""

    rms: float
    se: float


def rms_distance(x, reference) -> RMSDistance:
    r"""Root-mean-square distance between paired rows, ``sqrt(mean_b |x_b - y_b|^2)``, with its
    standard error: with ``m`` the mean of the squared distances and ``s`` their standard
    deviation, ``se(m) = s / sqrt(B)`` and, by the delta method, ``se(sqrt m) = se(m) / (2 sqrt m)``
    (0 when m = 0). x, reference: (B, D), B >= 2, row b of x paired with row b of reference (the
    end points of one starting noise under two samplers). Float64.
    """
    x = check_batch(x, name="x")
    y = check_batch(reference, x.shape[1], name="reference")
    if y.shape != x.shape or x.shape[0] < 2:
        raise ValueError(f"x and reference must have the same shape (B, D) with B >= 2; got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    sq = ((x.detach().double() - y.detach().double()) ** 2).sum(1)
    m = float(sq.mean())
    se_m = float(sq.std()) / math.sqrt(len(sq))
    return RMSDistance(math.sqrt(m), se_m / (2 * math.sqrt(m)) if m > 0 else 0.0)


def teleport_sweep(sampler, D, process, x, ts, target, skips, *, reference=None) -> torch.Tensor:
    r"""How far teleported samples land from the full sampler's, for each number of skipped steps.

    x: (B, D) at ``ts[0] = t_max``; ts: (N+1,) decreasing grid; target: a :class:`Gaussian` (or
    data to fit one). For each k in ``skips`` (0 <= k < N) the first k steps are replaced by the
    exact flow of the target from ``ts[0]`` to ``ts[k]`` (:func:`teleport`) and
    the sampler runs on ``ts[k:]``. Returns (len(skips),) float64: the root-mean-square distance
    ``sqrt(mean_b |x_ref - x_k|^2)`` to ``reference`` (B, D), the end points of the same x under
    a converged solve, or by default the samples of the full run of this sampler (then skip 0 is
    0 and the sampler's own error is not counted). Lesson 07.
    """
    check_callable(sampler, "sampler", "a sampler function sampler(D, process, x, ts)")
    process = check_process(process)
    ts = as_times(ts)
    if ts.numel() < 2:
        raise ValueError(f"ts must be a grid (N+1,) with N >= 1 steps; got {ts.numel()} time")
    x = check_batch(x)
    N = ts.numel() - 1
    if isinstance(skips, (str, bytes)) or not hasattr(skips, "__iter__"):
        raise TypeError(f"skips must be a sequence of step counts; got {type(skips).__name__} {skips!r}")
    ks = [check_int(k, "skips (each a number of steps)") for k in skips]
    if any(k < 0 or k >= N for k in ks):
        raise ValueError(f"skips must lie in [0, {N - 1}] (the grid has N = {N} steps); got {ks}")
    target = _target(target)  # fitted once, and checked even when every skip is 0
    if float(ts[0]) != float(process.t_max):
        raise ValueError(f"ts must start at t_max = {process.t_max}; got ts[0] = {float(ts[0])}")
    full = sampler(D, process, x, ts)
    ref = full if reference is None else check_batch(reference, x.shape[1], name="reference")
    if ref.shape != x.shape:
        raise ValueError(f"reference must have x's shape {tuple(x.shape)} (one end point per row); got {tuple(ref.shape)}")
    out = torch.empty(len(ks), dtype=torch.float64)
    for i, k in enumerate(ks):
        xk = full if k == 0 else teleport(sampler, D, process, x, ts[k:], target, t_from=float(ts[0]))
        out[i] = float(((xk.double() - ref.double()) ** 2).sum(1).mean().sqrt())  # rms_distance's rms (B = 1 too)
    return out
