r"""Exact log-likelihood of a diffusion model through its probability-flow ODE.

The PF-ODE ``dx/dt = v(x, t)`` is a deterministic flow, so the instantaneous change of variables
(Chen et al. 2018, "Neural ordinary differential equations", Thm. 1) carries densities along it:

    d/dt log p_t(x_t) = -div v(x_t, t),

and integrating from a start time to ``T`` gives

    log p_{t_start}(x) = log p_T(x_T) + int_{t_start}^{T} div v(x_t, t) dt

(Song et al. 2021, "Score-based generative modeling through SDEs", eq. 39). Lesson 11 derives
it and measures what the solver tolerance and Hutchinson's estimator of the divergence cost.

The same sum along paths of the forward *SDE* (:func:`sde_path_log_likelihood`) is not the
likelihood. Ito's formula for ``l = log p_t`` along ``dx = f x dt + g dW`` and the log-density
Fokker-Planck equation (lesson 05, eq. 2) give

    log p_T(x_T) + int div v dt = log p_{t_0}(x) + int 1/2 g^2 (Laplacian log p + |grad log p|^2)(x_t, t) dt
                                  + int g grad log p . dW,

so per point its mean is off by the bias (:func:`sde_path_bias`)

    b(x) = int_{t_0}^{T} 1/2 g(t)^2 E[ (Laplacian p_t / p_t)(x_t) | x_{t_0} = x ] dt,

and averaged over the data it vanishes, since ``E_{p_t}[Laplacian p_t / p_t] = int Laplacian p_t = 0``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._core import (Distribution, as_real_tensor, as_times, check_batch, check_callable, check_choice, check_generator, check_int,
                    check_positive, check_process, check_real, shape_checked)
from .calculus import divergence as _divergence, hutchinson_probes
from .flows import pf_ode_velocity

__all__ = ["log_likelihood", "sde_path_log_likelihood", "sde_path_bias", "dequantise", "bits_per_dim"]


def log_likelihood(D, process, x, *, t_start: float | None = None, prior=None,
                   divergence: str = "exact", n_probes: int = 1, generator=None,
                   rtol: float = 1e-6, atol: float = 1e-8, method: str = "RK45"):
    r"""``log p_{t_start}(x)`` by the PF-ODE and the instantaneous change of variables: (B,).

    D: a denoiser ``D(x, t) -> (B, D)`` (:mod:`diffedu.flows` converts eps-, score- and
    velocity-models); process: a :class:`~diffedu.processes.Process`; x: (B, D).
    Solves ``dx/dt = v(x, t)``, ``dl/dt = div v(x, t)`` from t_start to t_max with
    :func:`scipy.integrate.solve_ivp` (``method``, ``rtol``, ``atol``), then
    ``log p_{t_start}(x) = log p_T(x_T) + int_{t_start}^{T} div v dt``. t_start defaults to
    ``process.t_eps`` (sigma/alpha = 0.002), where v is finite; the result is the density of the
    marginal there (close to p_0 for smooth data). ``prior(x_T) -> (B,)`` is log p_T; by default
    ``N(0, (alpha_T^2 + sigma_T^2) I)`` (unit-variance data). ``divergence``: "exact" (D backward
    passes) or "hutchinson" (``n_probes`` Rademacher probes drawn once with ``generator``, fixed
    through the solve, as in FFJORD). Computes in x's dtype and device; the solver state is
    float64 NumPy.
    """
    from scipy.integrate import solve_ivp

    D = shape_checked(check_callable(D, "D", "a denoiser D(x, t) -> (B, D)"), "D")
    process = check_process(process)
    x = check_batch(x)
    check_choice(divergence, "divergence", ("exact", "hutchinson"))
    n_probes = check_int(n_probes, "n_probes", minimum=1)
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    check_generator(generator, x.device)
    if prior is not None:
        check_callable(prior, "prior", "a callable prior(x_T) -> log p_T (B,)")
    T = float(process.t_max)
    t_start = process.t_eps if t_start is None else check_real(t_start, "t_start")
    if not (process.t_min < t_start < T):
        raise ValueError(f"t_start must lie in ({process.t_min}, {T}) where sigma > 0; got {t_start}")
    B, Dm = x.shape
    probes = None
    if divergence == "hutchinson":
        probes = hutchinson_probes(x.shape, x, n_probes=n_probes, generator=generator)

    def rhs(t, y):
        xt = torch.as_tensor(y[:B * Dm].reshape(B, Dm), dtype=x.dtype, device=x.device)
        with torch.no_grad():
            v = pf_ode_velocity(D, process, xt, t)
        div = _divergence(lambda z: pf_ode_velocity(D, process, z, t), xt, method=divergence, probes=probes)
        return torch.cat([v.reshape(-1), div.detach()]).to("cpu", torch.float64).numpy()

    y0 = np.concatenate([x.detach().to("cpu", torch.float64).reshape(-1).numpy(), np.zeros(B)])
    sol = solve_ivp(rhs, (t_start, T), y0, method=method, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    yT = sol.y[:, -1]
    xT = torch.as_tensor(yT[:B * Dm].reshape(B, Dm), dtype=x.dtype, device=x.device)
    integral = torch.as_tensor(yT[B * Dm:], dtype=x.dtype, device=x.device)
    if prior is None:
        a, s = float(process.alpha(T)), float(process.sigma(T))
        var = a * a + s * s
        log_pT = -0.5 * (xT**2).sum(1) / var - 0.5 * Dm * math.log(2 * math.pi * var)
    else:
        log_pT = prior(xT)
        if not isinstance(log_pT, torch.Tensor) or log_pT.shape != (B,):
            got = tuple(log_pT.shape) if isinstance(log_pT, torch.Tensor) else type(log_pT).__name__
            raise ValueError(f"prior must map x_T (B, D) to log p_T (B,) = ({B},); got {got}")
    return log_pT + integral


def sde_path_log_likelihood(D, process, x, ts, *, prior=None, generator=None) -> torch.Tensor:
    r"""The change-of-variables sum evaluated along forward-SDE paths instead of the PF-ODE: (B,).

    Each row of x (B, D) starts one Euler-Maruyama path of ``dx = f x dt + g dW`` on the
    increasing grid ``ts`` (K+1,) from ``ts[0]`` to ``ts[-1]``; returns
    ``log p_T(x_T) + sum_k div v(x_{t_k}, t_k) (t_{k+1} - t_k)`` with v the PF-ODE velocity of the
    denoiser D (exact divergence) and ``prior`` as in :func:`log_likelihood`. Not an estimate of
    ``log p``: its mean is off by :func:`sde_path_bias` (lesson 11). Repeat a point's row to draw
    several paths from it.
    """
    D = shape_checked(check_callable(D, "D", "a denoiser D(x, t) -> (B, D)"), "D")
    process = check_process(process)
    x = check_batch(x)
    check_generator(generator, x.device)
    ts = as_times(ts)
    if ts.dim() != 1 or ts.numel() < 2 or not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError("ts must be an increasing 1-D grid of at least 2 times")
    if not (process.t_min < float(ts[0]) and float(ts[-1]) <= float(process.t_max)):
        raise ValueError(f"ts must lie in ({process.t_min}, {float(process.t_max)}]; got [{float(ts[0])}, {float(ts[-1])}]")
    if prior is not None:
        check_callable(prior, "prior", "a callable prior(x_T) -> log p_T (B,)")
    xx, total = x.detach().clone(), torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for k in range(ts.numel() - 1):
        t, h = float(ts[k]), float(ts[k + 1] - ts[k])
        total = total + _divergence(lambda z: pf_ode_velocity(D, process, z, t), xx).detach() * h
        noise = torch.randn(xx.shape, generator=generator, dtype=x.dtype, device=x.device)
        xx = xx + float(process.f(t)) * xx * h + math.sqrt(float(process.g2(t)) * h) * noise
    return _log_prior(prior, xx, process) + total


def _log_prior(prior, xT, process):
    B, Dm = xT.shape
    T = float(process.t_max)
    if prior is None:
        a, s = float(process.alpha(T)), float(process.sigma(T))
        var = a * a + s * s
        return -0.5 * (xT**2).sum(1) / var - 0.5 * Dm * math.log(2 * math.pi * var)
    log_pT = prior(xT)
    if not isinstance(log_pT, torch.Tensor) or log_pT.shape != (B,):
        got = tuple(log_pT.shape) if isinstance(log_pT, torch.Tensor) else type(log_pT).__name__
        raise ValueError(f"prior must map x_T (B, D) to log p_T (B,) = ({B},); got {got}")
    return log_pT


def sde_path_bias(dist, process, x, t_start: float, *, n_time: int = 48, n_hermite: int = 16) -> torch.Tensor:
    r"""The exact bias of :func:`sde_path_log_likelihood` at each point, by Ito's formula: (B,).

    dist: a distribution with exact marginals (``score(x, t, process)``, low dimension D, since the
    expectation uses ``n_hermite^D`` nodes); x: (B, D). Computes

        b(x) = int_{t_start}^{T} 1/2 g(t)^2 E[(div s + |s|^2)(x_t, t) | x_{t_start} = x] dt

    (``div s + |s|^2 = Laplacian p_t / p_t``; the module docstring derives it) with
    ``x_t = alpha_{t|t0} x + sigma_{t|t0} z``, ``alpha_{t|t0} = alpha_t / alpha_{t0}``,
    ``sigma_{t|t0}^2 = sigma_t^2 - alpha_{t|t0}^2 sigma_{t0}^2``: the expectation over z ~ N(0, I) by a
    Gauss-Hermite product rule (``n_hermite`` nodes per axis), the time integral by Gauss-Legendre
    in ``log t`` (``n_time`` nodes), the divergence by autograd. Exact up to quadrature error.
    """
    process = check_process(process)
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a diffedu distribution with exact marginals; got {type(dist).__name__}")
    x = check_batch(x, dist.dim).to(torch.float64)
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one point; got shape (0, D)")
    B, Dm = x.shape
    n_time, n_hermite = check_int(n_time, "n_time", minimum=2), check_int(n_hermite, "n_hermite", minimum=2)
    if n_hermite**Dm > 200_000:
        raise ValueError(f"n_hermite^D = {n_hermite}^{Dm} nodes is too many: this quadrature is for low dimension")
    t0, T = check_real(t_start, "t_start"), float(process.t_max)
    if not (process.t_min < t0 < T):
        raise ValueError(f"t_start must lie in ({process.t_min}, {T}); got {t0}")
    gh, gw = np.polynomial.hermite_e.hermegauss(n_hermite)          # probabilists': weight exp(-z^2 / 2)
    gw = gw / gw.sum()
    mesh = np.stack(np.meshgrid(*([gh] * Dm), indexing="ij"), -1).reshape(-1, Dm)
    wz = np.prod(np.stack(np.meshgrid(*([gw] * Dm), indexing="ij"), -1).reshape(-1, Dm), 1)
    Z, WZ = torch.as_tensor(mesh), torch.as_tensor(wz)
    u, wu = np.polynomial.legendre.leggauss(n_time)
    lo, hi = math.log(t0), math.log(T)
    logt = 0.5 * (hi - lo) * u + 0.5 * (hi + lo)
    a0, s0 = float(process.alpha(t0)), float(process.sigma(t0))
    out = torch.zeros(B, dtype=torch.float64)
    for lt, w in zip(logt, wu):
        t = math.exp(lt)
        tt = torch.tensor(t, dtype=torch.float64)
        a = float(process.alpha(tt)) / a0
        s = math.sqrt(max(float(process.sigma(tt)) ** 2 - a * a * s0 * s0, 0.0))
        pts = (a * x[:, None, :] + s * Z[None]).reshape(-1, Dm)
        score = lambda y: dist.score(y, t, process)  # noqa: E731
        lap = _divergence(score, pts).detach() + (score(pts) ** 2).sum(1)
        expect = (lap.reshape(B, -1) * WZ).sum(1)
        out += 0.5 * (hi - lo) * w * t * 0.5 * float(process.g2(tt)) * expect
    return out


def dequantise(x, bin_width: float, *, generator=None) -> torch.Tensor:
    r"""Uniform dequantisation: ``x + (u - 1/2) bin_width`` with u ~ U[0, 1)^D, so each quantised value
    is spread over the bin of width ``bin_width`` centred on it: (B, D), x's dtype.

    For data on a lattice (the digits take the values k/16, k = 0..16: ``bin_width = 1/16``) a
    density p on R^D gives the lattice point the probability ``P(k) = int_bin p >= bin_width^D
    exp(E_u log p(x + (u - 1/2) bin_width))`` (Jensen), so :func:`bits_per_dim` of the dequantised
    points bounds the discrete model's code length (Theis et al. 2016, "A note on the evaluation of
    generative models", Sec. 3.1)."""
    x = check_batch(x)
    bin_width = check_positive(bin_width, "bin_width")
    check_generator(generator, x.device)
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + (u - 0.5) * bin_width


def bits_per_dim(log_p, dim: int, *, bin_width: float = 1.0) -> torch.Tensor:
    r"""``-(log p + D log(bin_width)) / (D ln 2)``: a continuous log-density (nats, any shape) of
    dequantised points as the code length in bits per dimension of the lattice values (see
    :func:`dequantise`). A uniform law over L levels per dimension gives ``log2 L``."""
    dim = check_int(dim, "dim", minimum=1)
    bin_width = check_positive(bin_width, "bin_width")
    lp = as_real_tensor(log_p, "log_p", "a log-density (a number or a tensor)")
    if not bool(torch.isfinite(lp).all()):
        raise ValueError("log_p must be finite (no NaN or inf)")
    return -(lp + dim * math.log(bin_width)) / (dim * math.log(2.0))
