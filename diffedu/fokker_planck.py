r"""The Fokker-Planck equation of the forward process, for densities and for scores.

The forward SDE ``dx = f(t) x dt + g(t) dW`` moves its density by

    d_t p = - div( f(t) x p ) + 1/2 g(t)^2 Laplacian p,

so, with ``div(f x) = D f(t)`` (D the data dimension), the log-density obeys

    R_log(x, t) = d_t log p + D f + f x . grad log p - 1/2 g^2 (Laplacian log p + |grad log p|^2) = 0,

and its gradient, the score ``s = grad log p``, obeys the *score Fokker-Planck equation*
(Lai et al. 2023, "FP-Diffusion", eq. 6; Deveney et al. 2023)

    R_score(x, t) = d_t s - grad[ 1/2 g^2 div s + 1/2 g^2 |s|^2 - f x . s - D f ] = 0.

The exact marginals of :mod:`diffedu.gaussian` and :mod:`diffedu.mixtures` make both residuals
vanish up to rounding for every process; a learned or perturbed score does not. Divergences
and Laplacians come from :mod:`diffedu.calculus` (exact: D backward passes; Hutchinson: one per
probe), time derivatives from autograd. An *unnormalised* log-density ``log p~ = log p + log Z_t``
(an energy model) has ``R_log[p~] = R_log[p] + d_t log Z_t``: the residual is then constant in x
rather than zero, and only its x-variation (or the score residual) is meaningful.

:func:`solve_fp_grid` integrates the density equation on a 1-D or 2-D grid (finite volumes,
Crank-Nicolson in 1-D, Peaceman-Rachford ADI in 2-D), so the PDE can be watched moving a
density next to the closed-form marginal. Lesson 05 derives all of this.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch
from scipy.linalg import solve_banded

from . import calculus
from ._core import (Distribution, as_real_tensor, as_times, check_batch, check_callable, check_choice, check_dtype,
                    check_generator, check_int, check_positive, check_process, check_real)

_METHODS, _PROBES = ("exact", "hutchinson"), ("rademacher", "gaussian")

__all__ = ["div", "laplacian", "log_density_residual", "score_residual", "time_derivative",
           "solve_fp_grid", "density_on_grid", "grid_mesh", "perturb_score", "residual_rms",
           "GapReport", "ode_sde_gap", "PERTURBATIONS", "log_density_penalty"]


# --- operators on (x, t) fields, from diffedu.calculus ------------------------------------------
def div(field, x, t, *, method: str = "exact", n_probes: int = 1, probe: str = "rademacher",
        generator=None, create_graph: bool = False) -> torch.Tensor:
    r"""Divergence ``sum_i d field_i / d x_i`` of a field ``field(x, t)`` at fixed t: (B,).

    x: (B, D). ``method="exact"`` (D backward passes) or ``"hutchinson"`` (unbiased,
    ``n_probes`` Rademacher or Gaussian probes drawn with ``generator``); see
    :func:`diffedu.calculus.divergence`, which this wraps.
    """
    check_callable(field, "field", "a field f(x, t) -> (B, D)")
    return calculus.divergence(lambda y: field(y, t), x, method=method, n_probes=n_probes,
                               probe=probe, generator=generator, create_graph=create_graph)


def laplacian(scalar_field, x, t, *, method: str = "exact", n_probes: int = 1,
              probe: str = "rademacher", generator=None, create_graph: bool = False) -> torch.Tensor:
    r"""Laplacian of a scalar field ``scalar_field(x, t) -> (B,)`` at fixed t: (B,).

    Wraps :func:`diffedu.calculus.laplacian` (divergence of the autograd gradient)."""
    check_callable(scalar_field, "scalar_field", "a scalar field f(x, t) -> (B,)")
    return calculus.laplacian(lambda y: scalar_field(y, t), x, method=method, n_probes=n_probes,
                              probe=probe, generator=generator, create_graph=create_graph)


# --- helpers -------------------------------------------------------------------------------
def _t_leaf(t, x, process):
    """t as a (B,) leaf in x's dtype that requires grad, checked against the process range (t > 0:
    the residuals differentiate in t, and d sigma_t / dt is infinite at t = 0 for VP and VE)."""
    process.coefs(t, x, positive="the residual differentiates in t, and d sigma_t / dt is infinite at t = 0 "
                                 "for VP and VE")
    if isinstance(t, torch.Tensor):
        if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != x.shape[0]):
            raise ValueError(f"t must be a float, a 0-d tensor or a ({x.shape[0]},) tensor; "
                             f"got shape {tuple(t.shape)}")
        tt = t.detach().to(device=x.device, dtype=x.dtype)
        tt = tt.expand(x.shape[0]).clone() if tt.dim() == 0 else tt.clone()
    else:
        tt = x.new_full((x.shape[0],), float(t))
    return tt.requires_grad_(True)


def _check_residual_args(fn, name, process, method, n_probes, probe, generator):
    """The arguments of a residual operator, checked when it is built (not at its first call)."""
    check_callable(fn, name, "a callable of (x (B, D), t (B,))")
    check_process(process)
    check_choice(method, "method", _METHODS)
    check_int(n_probes, "n_probes", minimum=1)
    check_choice(probe, "probe", _PROBES)
    check_generator(generator)


def _grid_nodes(grid, name="grid", least=1):
    """A 1-D finite float64 NumPy array of at least ``least`` nodes."""
    g = as_real_tensor(grid, name, "a 1-D array of grid nodes").numpy()
    if g.ndim != 1 or g.size < least:
        raise ValueError(f"{name} must be a 1-D array of at least {least} nodes; got shape {g.shape}")
    if not np.isfinite(g).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return g


def _fg(process, tt, x):
    """f(t) and g(t)^2 as (B,) tensors in x's dtype (no graph: t is data, not a parameter)."""
    td = tt.detach().to(torch.float64)
    return process.f(td).to(x.dtype), process.g2(td).to(x.dtype)


def time_derivative(y, t, *, create_graph: bool = False) -> torch.Tensor:
    r"""``d y_b / d t_b`` for y (B, ...) computed from a (B,) time t that requires grad: y's shape.

    Row b of y must depend on t_b only. Two backward passes whatever y's width (the
    double-backward trick for a Jacobian-vector product)."""
    if not isinstance(y, torch.Tensor) or not y.is_floating_point():
        raise TypeError(f"y must be a floating torch.Tensor (B, ...); got {type(y).__name__}")
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"t must be a floating torch.Tensor (B,) that requires grad; got {type(t).__name__}")
    if t.dim() != 1 or not t.requires_grad:
        raise ValueError(f"t must be a (B,) tensor that requires grad (y computed from it); got shape "
                         f"{tuple(t.shape)}, requires_grad={t.requires_grad}")
    if y.dim() == 0 or y.shape[0] != t.shape[0]:
        raise ValueError(f"y must have one row per time, ({t.shape[0]}, ...); got shape {tuple(y.shape)}")
    u = torch.zeros_like(y, requires_grad=True)
    (gt,) = torch.autograd.grad(y, t, grad_outputs=u, create_graph=True, allow_unused=True)
    if gt is None:  # y does not depend on t
        return torch.zeros_like(y)
    (dy,) = torch.autograd.grad(gt, u, grad_outputs=torch.ones_like(gt), create_graph=create_graph,
                                allow_unused=True)
    return torch.zeros_like(y) if dy is None else dy


def _check_out(val, want, name):
    if not isinstance(val, torch.Tensor) or tuple(val.shape) != tuple(want):
        got = tuple(val.shape) if isinstance(val, torch.Tensor) else type(val).__name__
        raise ValueError(f"{name} must return a tensor of shape {tuple(want)}; got {got}")
    return val


# --- residuals -----------------------------------------------------------------------------
def log_density_residual(log_p: Callable, process, *, method: str = "exact", n_probes: int = 1,
                         probe: str = "rademacher", generator=None,
                         create_graph: bool = False) -> Callable:
    r"""The log-density Fokker-Planck residual as a function ``R(x, t) -> (B,)``.

    log_p: ``(x (B, D), t (B,)) -> (B,)``, differentiable in x and t and *normalised* (an energy
    model adds ``d_t log Z_t``, constant in x). ``R`` is

        d_t log p + D f(t) + f(t) x . grad log p - 1/2 g(t)^2 (Laplacian log p + |grad log p|^2),

    zero for an exact marginal. The Laplacian is exact or Hutchinson (``method``, ``n_probes``,
    ``probe``, ``generator``); ``create_graph=True`` keeps the graph to the model's parameters.
    """
    _check_residual_args(log_p, "log_p", process, method, n_probes, probe, generator)

    def R(x, t):
        x = check_batch(x)
        B, D = x.shape
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            tt = _t_leaf(t, xr, process)
            lp = _check_out(log_p(xr, tt), (B,), "log_p")
            dt_lp, g = torch.autograd.grad(lp.sum(), (tt, xr), create_graph=create_graph)
            lap = calculus.laplacian(lambda y: log_p(y, tt), xr, method=method, n_probes=n_probes,
                                     probe=probe, generator=generator, create_graph=create_graph)
        f, g2 = _fg(process, tt, x)
        return dt_lp + D * f + f * (xr.detach() * g).sum(1) - 0.5 * g2 * (lap + (g * g).sum(1))

    return R


def score_residual(score: Callable, process, *, method: str = "exact", n_probes: int = 1,
                   probe: str = "rademacher", generator=None, create_graph: bool = False) -> Callable:
    r"""The score Fokker-Planck residual as a function ``R(x, t) -> (B, D)``.

    score: ``(x (B, D), t (B,)) -> (B, D)``. ``R`` is

        d_t s - grad[ 1/2 g^2 div s + 1/2 g^2 |s|^2 - f x . s - D f ],

    zero for the exact score of a marginal (FP-Diffusion, Lai et al. 2023, eq. 6). ``d_t s`` by
    autograd in t, ``div s`` by :func:`diffedu.calculus.divergence` (exact or Hutchinson), and
    the outer gradient by autograd through it (third derivatives of a net when training).
    """
    _check_residual_args(score, "score", process, method, n_probes, probe, generator)

    def R(x, t):
        x = check_batch(x)
        B, D = x.shape
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            tt = _t_leaf(t, xr, process)
            s = _check_out(score(xr, tt), (B, D), "score")
            dt_s = time_derivative(s, tt, create_graph=create_graph)
            # calculus differentiates at a detached copy y of x; re-attaching x through
            # x + (y - y.detach()) keeps div s a function of x, so its gradient can follow
            divs = calculus.divergence(lambda y: score(xr + (y - y.detach()), tt), xr, method=method,
                                       n_probes=n_probes, probe=probe, generator=generator,
                                       create_graph=True)
            f, g2 = _fg(process, tt, x)
            phi = 0.5 * g2 * (divs + (s * s).sum(1)) - f * (xr * s).sum(1)
            (grad_phi,) = torch.autograd.grad(phi.sum(), xr, create_graph=create_graph)
        return dt_s - grad_phi

    return R


# --- grid solver ---------------------------------------------------------------------------
def grid_mesh(grid) -> np.ndarray:
    """2-D cell centres ``(n*n, 2)`` for a 1-D grid, in ``indexing="ij"`` order (row = first axis)."""
    g = _grid_nodes(grid)
    X, Y = np.meshgrid(g, g, indexing="ij")
    return np.stack([X.ravel(), Y.ravel()], 1)


def density_on_grid(dist, process, grid, t) -> np.ndarray:
    """The closed-form marginal ``p_t`` of a 1-D or 2-D distribution on a grid: (n,) or (n, n).

    dist: a :class:`diffedu.gaussian.Gaussian` or a mixture (anything with ``log_prob(x, t, process)``
    and ``dim`` 1 or 2); grid: (n,) cell centres, the same on both axes."""
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a diffedu distribution (Gaussian, GaussianMixture, ...); got {type(dist).__name__}")
    check_process(process)
    g = _grid_nodes(grid)
    if dist.dim == 1:
        pts = g[:, None]
    elif dist.dim == 2:
        pts = grid_mesh(g)
    else:
        raise ValueError(f"dist must be 1-D or 2-D for a grid; got dim {dist.dim}")
    lp = dist.log_prob(torch.as_tensor(pts), t, process)
    return torch.exp(lp).numpy().reshape((g.size,) * dist.dim)


def _operators(grid):
    """1-D finite-volume drift and diffusion matrices A, B (n, n) on uniform cell centres.

    Fluxes at interior faces x_{j+1/2}: drift ``x (p_j + p_{j+1}) / 2``, diffusion
    ``-(p_{j+1} - p_j) / h``; no flux through the two outer faces, so mass is conserved."""
    g = _grid_nodes(grid, least=3)
    h = np.diff(g)
    if not np.allclose(h, h[0], rtol=1e-8, atol=0) or h[0] <= 0:
        raise ValueError("grid must be uniform and increasing")
    h, n = h[0], g.size
    xf = 0.5 * (g[:-1] + g[1:])  # interior faces
    A = np.zeros((n, n))
    B = np.zeros((n, n))
    for j, xj in enumerate(xf):  # flux through face j+1/2 leaves cell j and enters cell j+1
        drift = np.zeros(n)
        drift[j] = drift[j + 1] = xj / 2
        diff = np.zeros(n)
        diff[j], diff[j + 1] = 1 / h, -1 / h
        for row, sign in ((j, -1 / h), (j + 1, 1 / h)):
            A[row] += sign * drift
            B[row] += sign * diff
    return A, B


def _banded_solve(band, rhs):
    """Solve the tridiagonal system in scipy's (3, n) banded storage for one or many right sides."""
    return solve_banded((1, 1), band, rhs, check_finite=False)


#: The most time steps :func:`solve_fp_grid` takes (a bound on its run time).
MAX_GRID_STEPS = 1_000_000


def solve_fp_grid(p0, grid, process, ts, *, max_dt: float | None = None) -> np.ndarray:
    r"""Evolve a density under the forward Fokker-Planck equation on a 1-D or 2-D grid.

    p0: (n,) or (n, n) density at time ``ts[0]`` on cell centres ``grid`` (n,) (both axes alike,
    ``indexing="ij"``); ts: increasing times (T,). Solves ``d_t p = f(t) A p + 1/2 g^2(t) B p`` with
    finite-volume fluxes (:func:`_operators`, zero flux at the edges, mass conserved) by the
    implicit midpoint rule (Crank-Nicolson) in 1-D and Peaceman-Rachford ADI in 2-D, both second
    order, with steps of at most ``max_dt`` (default ``(ts[-1] - ts[0]) / 200``).
    Returns the densities at every ``ts``: (T, n) or (T, n, n), float64.
    """
    check_process(process)
    p = as_real_tensor(p0, "p0", "an array of densities on the grid").numpy().copy()
    ts = as_times(ts).numpy()
    A, B = _operators(grid)
    n = A.shape[0]
    if p.ndim not in (1, 2) or any(s != n for s in p.shape):
        raise ValueError(f"p0 must have shape ({n},) or ({n}, {n}) to match grid; got {p.shape}")
    if not (np.isfinite(p).all() and (p >= 0).all()):
        raise ValueError("p0 must be a finite, non-negative density on the grid")
    if ts.size < 1 or np.any(np.diff(ts) <= 0):
        raise ValueError("ts must be a non-empty increasing sequence of times")
    process.check_t(torch.as_tensor(ts), "ts")
    if max_dt is None:
        max_dt = max((ts[-1] - ts[0]) / 200, 1e-12)
    else:
        max_dt = check_positive(max_dt, "max_dt")
    n_steps = float(np.ceil(np.diff(ts) / max_dt - 1e-9).sum())
    if n_steps > MAX_GRID_STEPS:
        raise ValueError(f"max_dt = {max_dt:g} needs {n_steps:.3g} time steps; at most {MAX_GRID_STEPS:,} are "
                         "taken: choose a larger max_dt")
    out = [p.copy()]
    for t0, t1 in zip(ts[:-1], ts[1:]):
        k = int(np.ceil((t1 - t0) / max_dt - 1e-9))
        dt = (t1 - t0) / k
        for i in range(k):
            tm = torch.tensor(t0 + (i + 0.5) * dt, dtype=torch.float64)
            L = float(process.f(tm)) * A + 0.5 * float(process.g2(tm)) * B  # tridiagonal
            M_plus = 0.5 * dt * L
            M_plus[np.diag_indices(n)] += 1
            band = -0.5 * dt * np.stack([np.r_[0, np.diag(L, 1)], np.diag(L), np.r_[np.diag(L, -1), 0]])
            band[1] += 1  # (I - dt/2 L) in scipy's banded storage
            if p.ndim == 1:
                p = _banded_solve(band, M_plus @ p)
            else:  # x-implicit / y-explicit, then y-implicit / x-explicit
                q = _banded_solve(band, p @ M_plus.T)
                p = _banded_solve(band, (M_plus @ q).T).T
        out.append(p.copy())
    return np.stack(out)


# --- perturbed scores and the ODE-SDE gap ---------------------------------------------------
#: The kinds of :func:`perturb_score`.
PERTURBATIONS = ("scale", "gradient", "rotation")


def perturb_score(score: Callable, kind: str, size: float) -> Callable:
    r"""A perturbed score ``s~(x, t)`` from an exact one, for the lesson's gap experiments.

    kind ``"scale"``: ``(1 + size) s``; ``"gradient"``: ``s + size grad(sum_i cos x_i) =
    s - size sin(x)`` (a conservative error, the same at every t); ``"rotation"``:
    ``s + size J s`` with J the rotation by +90 degrees in the first two coordinates. The
    rotation keeps ``div(p_t J s) = div(J grad p_t) = 0``, so the PF-ODE and the reverse SDE
    still produce the exact marginals, although the score residual is far from zero.
    """
    check_callable(score, "score", "a score s(x, t) -> (B, D)")
    check_choice(kind, "kind", PERTURBATIONS)
    size = check_real(size, "size")

    def perturbed(x, t):
        s = score(x, t)
        if kind == "scale":
            return (1 + size) * s
        if kind == "gradient":
            return s - size * torch.sin(x)
        rot = torch.zeros_like(s)
        rot[:, 0], rot[:, 1] = -s[:, 1], s[:, 0]
        return s + size * rot
    return perturbed


def _positive_times(ts, process, name="ts"):
    """Times (T,) in (t_min, t_max] as a float64 tensor."""
    ts = as_times(ts, name)
    process.check_t(ts, name)
    if bool((ts <= process.t_min).any()):
        raise ValueError(f"{name} must be > {process.t_min} (the residual differentiates in t and d sigma_t / dt is "
                         f"infinite at t = 0 for VP and VE); got {ts.tolist()}")
    return ts


def _marginal_sampler(data, process, t, n, generator, dtype):
    """n draws of x_t = alpha_t x_0 + sigma_t eps with x_0 from the sampler ``data``: (n, D)."""
    x0 = data(n, generator=generator).to(dtype)
    return process.noise(x0, float(t), generator=generator)[0]


def residual_rms(score: Callable, process, data, ts, *, n: int = 256, method: str = "exact",
                 generator=None, dtype=torch.float64) -> torch.Tensor:
    r"""Size of the score FP residual at each time, ``sqrt(E_{p_t} |sigma_t^3 R(x, t) / g_t^2|^2)``: (len(ts),).

    data: a sampler ``data(n, generator=...) -> (n, D)`` of p_0 (a data set's sampler, a
    mixture's ``.sample``); x ~ p_t is drawn as ``alpha_t x_0 + sigma_t eps``. The weight
    ``sigma^3 / g^2`` makes the residual of a score error of fixed relative size O(1) at every t
    (the same weight as the training penalty of :func:`diffedu.nets.train_dsm`)."""
    check_process(process)
    check_callable(data, "data", "a sampler data(n, generator=...) -> (n, D)")
    n = check_int(n, "n", minimum=1)
    dtype = check_dtype(dtype)
    R = score_residual(score, process, method=method, generator=generator)
    ts = _positive_times(ts, process)
    out = []
    for t in ts.tolist():
        x = _marginal_sampler(data, process, t, n, generator, dtype)
        tt = torch.tensor(t, dtype=torch.float64)
        w = float(process.sigma(tt) ** 3 / process.g2(tt))
        out.append(float(torch.sqrt(((w * R(x, t).detach()) ** 2).sum(1).mean())))
    return torch.tensor(out, dtype=torch.float64)


class GapReport(NamedTuple):
    """Result of :func:`ode_sde_gap`: three W2 distances, the noise floor, and the samples."""

    w2_ode_sde: float
    w2_ode_data: float
    w2_sde_data: float
    w2_floor: float
    x_ode: torch.Tensor
    x_sde: torch.Tensor
    x_data: torch.Tensor


def ode_sde_gap(denoiser: Callable, process, data, n: int = 1000, *, ode_steps: int = 100,
                sde_steps: int = 400, floor: bool = True, generator=None, dtype=torch.float64) -> GapReport:
    r"""Sample the PF-ODE (Heun, ``ode_steps``, Karras grid) and the reverse SDE (Euler-Maruyama,
    ``sde_steps``, uniform grid) from independent draws of the exact ``p_T``, and compare.

    denoiser: ``D(x, t)`` (use :func:`diffedu.flows.denoiser_from_score` for a score);
    data: a sampler of p_0, ``data(n, generator=...) -> (n, D)``. Returns the exact-OT
    distances :func:`diffedu.metrics.w2` between the n ODE samples, the n SDE samples and n data
    samples, and the noise floor W2 between two further independent n-point data sets (NaN when
    ``floor=False``; :func:`diffedu.metrics.w2_noise_floor` averages several).
    """
    from .metrics import w2
    from .processes import time_grid
    from .samplers import euler_maruyama, heun

    check_callable(denoiser, "denoiser", "a denoiser D(x, t) -> (B, D)")
    check_process(process)
    check_callable(data, "data", "a sampler data(n, generator=...) -> (n, D)")
    n = check_int(n, "n", minimum=1)
    ode_steps, sde_steps = check_int(ode_steps, "ode_steps", minimum=1), check_int(sde_steps, "sde_steps", minimum=1)
    check_generator(generator)
    dtype = check_dtype(dtype)
    x_T1 = _marginal_sampler(data, process, process.t_max, n, generator, dtype)
    x_T2 = _marginal_sampler(data, process, process.t_max, n, generator, dtype)
    with torch.no_grad():
        x_ode = heun(denoiser, process, x_T1, time_grid(process, ode_steps))
        x_sde = euler_maruyama(denoiser, process, x_T2, time_grid(process, sde_steps, "uniform"),
                               generator=generator)
    x_data = data(n, generator=generator).to(dtype)
    w_floor = w2(data(n, generator=generator), data(n, generator=generator)) if floor else float("nan")
    return GapReport(w2(x_ode, x_sde), w2(x_ode, x_data), w2(x_sde, x_data), w_floor, x_ode, x_sde, x_data)


# --- the log-density penalty of Deveney et al. -------------------------------------------------
def log_density_penalty(log_p: Callable, process, x0, *, n: int = 64, t_min: float | None = None,
                        method: str = "exact", generator=None) -> torch.Tensor:
    r"""The Fokker-Planck penalty of a log-density model at one random time: a 0-d tensor with a graph.

    log_p: an *unnormalised* model ``log p~(x (B, D), t (B,)) -> (B,)`` (an
    :class:`~diffedu.nets.EnergyMLP`'s ``log_prob``); x0: (B, D) data. Draws one time t uniform
    on ``[t_min, t_max]`` (default t_min where sigma/alpha = 0.1) and ``x_t = alpha_t x0 + sigma_t eps``
    for the first ``n`` rows, and returns the variance over the points of
    ``w R_log(x_t, t)`` (:func:`log_density_residual`, ``w = sigma_t^2 / g(t)^2``, which makes
    its terms O(1) at every t): an unnormalised model adds ``d_t log Z_t`` to ``R_log``, the same
    at every x, so only the residual's variation in x can be asked to vanish. Deveney et al.
    (2023) regularise a scalar log-density network with this residual; add
    ``weight * log_density_penalty(...)`` to a DSM loss (:func:`diffedu.training.dsm_loss`).
    """
    check_process(process)
    x0 = check_batch(x0, name="x0")
    n = check_int(n, "n", minimum=2)
    check_generator(generator, x0.device)
    R = log_density_residual(log_p, process, method=method, generator=generator, create_graph=True)
    lo = float(process.t_of_lam(math.log(10.0))) if t_min is None else check_real(t_min, "t_min")
    if not (process.t_min < lo < float(process.t_max)):
        raise ValueError(f"t_min must lie in ({process.t_min}, {float(process.t_max)}); got {lo}")
    x0 = x0[:n]
    u = float(torch.rand((), generator=generator, dtype=torch.float64, device=x0.device))
    t = lo + (float(process.t_max) - lo) * u
    xt, _ = process.noise(x0, t, generator=generator)
    tt = torch.tensor(t, dtype=torch.float64)
    w = float(process.sigma(tt) ** 2 / process.g2(tt))
    r = w * R(xt, t)
    return ((r - r.mean()) ** 2).mean()
