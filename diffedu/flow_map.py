r"""The probability-flow map, solved to high precision: the ideal few-step generator and its copies.

The PF-ODE ``dx/dt = v(x, t)`` carries p_{t_from} to p_{t_to} deterministically; its solution map
``Phi_{t_from -> t_to}`` is what every deterministic sampler approximates, and ``Phi_{T -> 0}`` is
the ideal one-step generator (the map a consistency model learns). :meth:`diffedu.Gaussian.flow`
is it in closed form; here it is solved numerically for any denoiser (the mixtures' ``flow``).

**The variables.** With ``y = x / alpha_t`` and ``u = log(sigma_t / alpha_t) = -lambda_t`` the
PF-ODE becomes, for every process,

    dy/du = y - D(alpha_t y, t),            t = t(u) = process.t_of_lam(-u),

(substitute ``x = alpha y`` into ``v = alpha' D + (sigma'/sigma)(x - alpha D)``: ``dy/dt =
(sigma'/sigma - alpha'/alpha)(y - D) = du/dt (y - D)``; Karras et al. 2022, eq. 4, in ``log sigma``).
It is smooth and non-stiff in u (D changes on the scale of lambda, lesson 03), where in t it is
stiff near t = 0 for VP, so an adaptive Runge-Kutta solver (:func:`scipy.integrate.solve_ivp`,
DOP853 by default) reaches tolerances near 1e-10 in a few hundred denoiser calls.

**Reaching t = 0.** ``u -> -inf`` there, so a map to ``t = 0`` is solved down to the noise level
``sigma/alpha = sigma_end`` (default 1e-5) and finished with the denoiser, ``x_0 = D(x, t_end)``:
for data with a density the rest of the flow moves x by ``O(sigma_end^2)`` (for a Gaussian mode of
variance v the exact step is ``sqrt(v / (v + s^2))``, the denoiser's ``v / (v + s^2)``: they differ
by ``s^2 / (2 v)``), and onto a subspace (a low-rank mixture) the denoiser's projection is exact.

:func:`consistency_sampler` runs a learned flow map the way consistency models are sampled (Song
et al. 2023, Alg. 1); the distillation loss that trains one is
:func:`diffedu.training.flow_map_loss`. Lesson 17 (few-step sampling).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._core import (as_times, check_batch, check_callable, check_choice, check_generator, check_output,
                    check_positive, check_process, check_real, shape_checked)

__all__ = ["pf_ode_path", "pf_ode_flow", "flow_jacobian", "flow_map_terms", "consistency_sampler", "SIGMA_END"]

#: Noise level ``sigma/alpha`` where a flow to t = 0 stops integrating and takes the denoiser.
SIGMA_END = 1e-5

_METHODS = ("DOP853", "RK45", "Radau", "LSODA", "BDF", "RK23")


def _check_solver(rtol, atol, method, sigma_end):
    return (check_positive(rtol, "rtol"), check_positive(atol, "atol"), check_choice(method, "method", _METHODS),
            check_positive(sigma_end, "sigma_end"))


def pf_ode_path(D, process, x, ts, *, rtol: float = 1e-9, atol: float = 1e-9, method: str = "DOP853",
                sigma_end: float = SIGMA_END) -> torch.Tensor:
    r"""The PF-ODE path of each row of x through the times ``ts``, solved to tolerance: (T, B, D).

    D: a denoiser ``D(x, t) -> (B, D)`` (the exact one of a mixture, or a network); x: (B, D) at
    ``ts[0]``; ts: (T,) strictly monotone times (decreasing to sample, increasing to noise), each
    in ``[0, t_max]``, with ``sigma > 0`` at ``ts[0]``; 0 may only be the last. Solves
    ``dy/du = y - D(alpha y, t)`` in ``y = x/alpha``, ``u = log(sigma/alpha)`` (module docstring)
    with :func:`scipy.integrate.solve_ivp` (``method``, ``rtol``, ``atol``); the state is float64
    and D is called in x's dtype and device, so pass float64 for tight tolerances. A final time 0
    is reached through ``sigma/alpha = sigma_end`` and the denoiser there. The solver's error norm
    is the RMS over the whole batch (scipy's), so one row can exceed ``rtol`` by up to
    ``sqrt(B D)``; the tests bound every row against :meth:`diffedu.Gaussian.flow`. Returns the
    path in the samplers' layout (index 0 is x itself).
    """
    from scipy.integrate import solve_ivp

    D = shape_checked(check_callable(D, "D", "a denoiser D(x, t) -> (B, D)"), "D")
    process = check_process(process)
    x = check_batch(x)
    rtol, atol, method, sigma_end = _check_solver(rtol, atol, method, sigma_end)
    ts = as_times(ts)
    process.check_t(ts, "ts")
    if ts.numel() < 2:
        raise ValueError(f"ts must hold at least two times (from, to); got {ts.numel()}")
    steps = ts[1:] - ts[:-1]
    if not ((steps < 0).all() or (steps > 0).all()):
        raise ValueError(f"ts must be strictly monotone (all decreasing or all increasing); got {ts.tolist()}")
    if bool((ts[:-1] <= process.t_min).any()):
        raise ValueError(f"only the last time in ts may be t_min = {process.t_min} (where sigma = 0, reached "
                         f"through sigma/alpha = sigma_end and the denoiser); got ts = {ts.tolist()}")
    to_zero = float(ts[-1]) <= process.t_min
    lam = process.lam(ts[:-1] if to_zero else ts)
    u = (-lam).tolist()
    if to_zero:
        u_end = math.log(sigma_end)
        if not u_end < u[-1]:
            raise ValueError(f"sigma_end = {sigma_end} must lie below the noise level sigma/alpha = "
                             f"{math.exp(u[-1]):.3g} of ts[-2]")
        u.append(u_end)
    B, Dm = x.shape
    t_lo, t_hi = process.t_min, float(process.t_max)

    def t_of(ui):
        t = float(process.t_of_lam(torch.tensor(-ui, dtype=torch.float64)))
        return min(max(t, t_lo), t_hi)

    def rhs(ui, y):
        t = t_of(ui)
        yt = torch.as_tensor(y.reshape(B, Dm), dtype=x.dtype, device=x.device)
        d = D(float(process.alpha(t)) * yt, t)
        return (yt - d).detach().to("cpu", torch.float64).reshape(-1).numpy()

    a0 = float(process.alpha(float(ts[0])))
    y0 = (x.detach().to("cpu", torch.float64) / a0).reshape(-1).numpy()
    sol = solve_ivp(rhs, (u[0], u[-1]), y0, method=method, rtol=rtol, atol=atol, t_eval=np.array(u))
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    out = []
    for k, tk in enumerate(ts.tolist()):
        if to_zero and k == len(u) - 1:
            t_end = t_of(u[-1])
            xe = torch.as_tensor(sol.y[:, k].reshape(B, Dm) * float(process.alpha(t_end)), dtype=x.dtype,
                                 device=x.device)
            out.append(D(xe, t_end))                    # the final jump from sigma/alpha = sigma_end
        else:
            y = torch.as_tensor(sol.y[:, k].reshape(B, Dm), dtype=x.dtype, device=x.device)
            out.append(float(process.alpha(tk)) * y)
    out[0] = x.detach().clone()
    return torch.stack(out)


def pf_ode_flow(D, process, x, t_from, t_to, *, rtol: float = 1e-9, atol: float = 1e-9, method: str = "DOP853",
                sigma_end: float = SIGMA_END) -> torch.Tensor:
    r"""The PF-ODE map ``Phi_{t_from -> t_to}(x)`` solved to tolerance: (B, D).

    The last point of :func:`pf_ode_path` on ``[t_from, t_to]`` (its docstring has the method and
    the arguments); t_from and t_to are single times, ``t_from > 0``. With ``t_to = 0`` this is the
    ideal one-step generator of lesson 17; for a Gaussian it agrees with
    :meth:`diffedu.Gaussian.flow` to the tolerance (``tests/test_flow_map.py``).
    """
    t_from, t_to = check_real(t_from, "t_from"), check_real(t_to, "t_to")
    if t_from == t_to:
        raise ValueError(f"t_from and t_to must differ; got both {t_from}")
    return pf_ode_path(D, process, x, [t_from, t_to], rtol=rtol, atol=atol, method=method, sigma_end=sigma_end)[-1]


def flow_jacobian(D, process, x, t_from, t_to, *, delta: float = 1e-4, rtol: float = 1e-10, atol: float = 1e-10,
                  method: str = "DOP853") -> torch.Tensor:
    r"""Jacobian of the PF-ODE map ``d Phi_{t_from -> t_to}(x) / dx`` by central differences: (B, D, D).

    ``J[b, :, j] = (Phi(x_b + delta e_j) - Phi(x_b - delta e_j)) / (2 delta)`` with every
    perturbed start solved by :func:`pf_ode_flow` (2 D solves of the whole batch; pass float64).
    The truncation error is ``O(delta^2)`` times the map's third derivative and the solver's
    error is divided by ``delta``, hence the tighter default tolerances. Where the map is steep
    (starts near the boundary between the basins of two modes) its singular values are large:
    what a one-step network must learn. For a Gaussian the exact Jacobian is
    ``U diag(gains) U^T`` (:meth:`diffedu.Gaussian.flow_gains`).
    """
    x = check_batch(x)
    delta = check_positive(delta, "delta")
    B, Dm = x.shape
    cols = []
    for j in range(Dm):
        e = torch.zeros_like(x)
        e[:, j] = delta
        both = torch.cat([x + e, x - e])
        end = pf_ode_flow(D, process, both, t_from, t_to, rtol=rtol, atol=atol, method=method)
        cols.append((end[:B] - end[B:]) / (2 * delta))
    return torch.stack(cols, dim=2)


def flow_map_terms(F, x0, paths, times, k) -> torch.Tensor:
    r"""Per-row distillation error ``|F(paths[b, k_b], times[k_b]) - x0_b|^2``: (B,).

    F: a model of the map to data, ``F(x, t) -> (B, D)`` with t a (B,) tensor of times; x0: (B, D),
    the end of each exact path; paths: (B, T, D), the exact path of each row at ``times`` (T,);
    k: (B,) integer indices into times, one point per row. The mean of these terms is
    :func:`diffedu.training.flow_map_loss` (which draws k); their minimiser over all F is the
    flow map ``Phi_{t -> 0}`` itself.
    """
    check_callable(F, "F", "a model F(x, t) -> (B, D) of the map to data")
    x0 = check_batch(x0, name="x0")
    B, Dm = x0.shape
    if not isinstance(paths, torch.Tensor) or not isinstance(times, torch.Tensor) or not isinstance(k, torch.Tensor):
        bad = next(n for n, v in (("paths", paths), ("times", times), ("k", k)) if not isinstance(v, torch.Tensor))
        raise TypeError(f"{bad} must be a torch.Tensor")
    if times.dim() != 1 or paths.shape != (B, times.numel(), Dm):
        raise ValueError(f"paths must have shape (B, T, D) = ({B}, {times.numel()}, {Dm}) with times (T,); got "
                         f"paths {tuple(paths.shape)}, times {tuple(times.shape)}")
    if k.shape != (B,) or k.dtype.is_floating_point or k.dtype == torch.bool:
        raise ValueError(f"k must be a ({B},) integer tensor of time indices; got {tuple(k.shape)} {k.dtype}")
    if bool(((k < 0) | (k >= times.numel())).any()):
        raise ValueError(f"k must index times (0..{times.numel() - 1}); got values in [{int(k.min())}, {int(k.max())}]")
    if paths.device.type == "cpu" and not bool(torch.isfinite(paths).all()):
        raise ValueError("paths must be finite (no NaN or inf)")
    xt = paths[torch.arange(B, device=paths.device), k].to(x0.dtype)
    t = times.to(device=x0.device, dtype=x0.dtype)[k]
    return ((check_output(F(xt, t), xt, "F") - x0) ** 2).sum(1)


def consistency_sampler(F, process, x, ts, *, generator=None, callback=None, progress=False):
    r"""Multistep sampling with a flow map ``F(x, t) ~ Phi_{t -> 0}(x)`` (Song et al. 2023, Alg. 1).

    F: a model of the map to data (the exact :func:`pf_ode_flow`, or a network distilled by
    :func:`diffedu.training.flow_map_loss`; a denoiser has the same signature); x: (B, D) at
    ``ts[0]``; ts: (N+1,) strictly decreasing, ``ts[-1] = 0``. Step 0 maps to data,
    ``x_0 = F(x, ts[0])``; each later step noises that estimate afresh to ``ts[i]``,
    ``x = alpha_i x_0 + sigma_i z`` (z ~ N(0, I) from ``generator``), and maps again: N calls of F.
    With the exact map every ``x_0`` is an exact sample of p_0 (the noising keeps the marginal
    ``p_{ts[i]}``), though no longer the end of the ODE path of the start x: exact in distribution,
    not per trajectory. ``callback(i, t, x)`` as for the samplers (the noised states, then the
    final ``x_0``). Returns (B, D).
    """
    from .samplers import _check, _noise, _steps

    x, g, F = _check(F, process, x, ts, generator, callback)
    if not g.jump:
        raise ValueError(f"ts must end at t = 0 (a consistency sampler returns data); got ts[-1] = {g.t[-1]}")
    if callback is not None:
        callback(0, g.t[0], x)
    x0 = None
    for i in _steps(g.n, progress):
        if i > 0:                                      # noise the estimate afresh to t_i
            x = torch.add(_noise(x0, generator).mul_(g.s[i]), x0, alpha=g.a[i])
            if callback is not None:
                callback(i, g.t[i], x)
        x0 = F(x, g.t[i])                              # map to data in one call
    if callback is not None:
        callback(g.n, g.t[-1], x0)
    return x0
