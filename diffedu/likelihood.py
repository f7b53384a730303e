r"""Exact log-likelihood of a diffusion model through its probability-flow ODE.

The PF-ODE ``dx/dt = v(x, t)`` is a deterministic flow, so the instantaneous change of variables
(Chen et al. 2018, "Neural ordinary differential equations", Thm. 1) carries densities along it:

    d/dt log p_t(x_t) = -div v(x_t, t),

and integrating from a start time to ``T`` gives

    log p_{t_start}(x) = log p_T(x_T) + int_{t_start}^{T} div v(x_t, t) dt

(Song et al. 2021, "Score-based generative modeling through SDEs", eq. 39). Lesson 11 derives
it and measures what the solver tolerance and Hutchinson's estimator of the divergence cost.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._core import (check_batch, check_callable, check_choice, check_generator, check_int, check_positive,
                    check_process, check_real, shape_checked)
from .calculus import divergence as _divergence, hutchinson_probes
from .flows import pf_ode_velocity

__all__ = ["log_likelihood"]


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
