r"""The densities that the PF-ODE and the reverse SDE produce with a given score, on a 2-D grid.

A sampler run from ``p_T`` with a score model ``s`` (learned, perturbed, not a gradient: any
field) has marginals ``q_t`` that solve a PDE, whatever ``s`` is. In reverse time ``tau = T - t``
the family of samplers ``dx = [f x - (1 + c)/2 g^2 s] dt + sqrt(c) g dW_bar`` (c = 0: the PF-ODE,
c = 1: the reverse SDE; Song et al. 2021, eq. 13 and Karras et al. 2022, eq. 6) moves its
density by

    d_tau q = -div( b q ) + c/2 g^2 Laplacian q,    b(x, t) = -(f(t) x - (1 + c)/2 g(t)^2 s(x, t)),

a continuity equation for the ODE and a Fokker-Planck equation for the SDE (Deveney et al. 2023,
Sec. 3). With the exact score both have the solution ``q_t = p_t``; with any other field their
solutions differ, and that difference is the ODE-SDE gap, measured here without sampling noise.

:func:`sampler_density` solves it by finite volumes on a uniform ``n x n`` grid of cells:

* drift: fluxes ``b q`` through every cell face, ``b`` evaluated at the face centres, with the
  upwind value of ``q`` on each face (``limiter="upwind"``, first order) or a MUSCL reconstruction
  with a slope limiter (``"minmod"`` or ``"vanleer"``, second order where q is smooth; LeVeque
  2002, "Finite volume methods for hyperbolic problems", ch. 6); zero flux through the outer
  faces, so mass is conserved; two-stage SSP Runge-Kutta in time (Shu and Osher 1988), with steps
  chosen from the CFL condition ``dt (max |b_x| + max |b_y|) / h <= cfl`` at every step, so they
  shrink where the score is large (near small t);
* diffusion (c > 0): the heat semigroup of the discrete Neumann Laplacian applied exactly by a
  type-II discrete cosine transform, which diagonalises it (Strang splitting: half a diffusion
  step, a drift step, half a diffusion step); unconditionally stable and positivity preserving.

The upwind scheme adds numerical diffusion of size ``~ h |b| / 2``, which acts on the ODE's
density like a little noise: the very effect being measured. :func:`grid_tv` and
:func:`grid_hellinger` compare densities on the grid; calibrate with the exact score (both
solutions must match ``p_t``) and refine the grid until that floor lies well below the gap
(lesson 05).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch
from scipy.fft import dctn, idctn

from ._core import (as_real_tensor, check_callable, check_choice, check_dtype, check_positive,
                    check_process, check_real)

__all__ = ["GridSolve", "sampler_density", "face_centres", "grid_tv", "grid_hellinger", "grid_w2", "LIMITERS",
           "gronwall_terms", "gronwall_bound"]

#: Slope limiters of :func:`sampler_density`.
LIMITERS = ("upwind", "minmod", "vanleer")


class GridSolve(NamedTuple):
    """Result of :func:`sampler_density`: the density (n, n) at ``t_end`` (``indexing="ij"``), the
    times (K,) where snapshots were kept and the snapshots (K, n, n), and the number of steps."""

    density: np.ndarray
    times: np.ndarray
    snapshots: np.ndarray
    steps: int


def _uniform(grid):
    g = as_real_tensor(grid, "grid", "a 1-D array of cell centres").numpy()
    if g.ndim != 1 or g.size < 4 or not np.isfinite(g).all():
        raise ValueError(f"grid must be a finite 1-D array of at least 4 cell centres; got shape {g.shape}")
    h = np.diff(g)
    if h[0] <= 0 or not np.allclose(h, h[0], rtol=1e-8, atol=0):
        raise ValueError("grid must be uniform and increasing")
    return g, float(h[0])


def face_centres(grid) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the interior faces of the ``n x n`` cells on ``grid`` (n,): ``(x_faces, y_faces)``,
    shapes ``((n-1) n, 2)`` and ``(n (n-1), 2)``: faces normal to the first axis, at
    ``(x_{i+1/2}, y_j)``, and normal to the second, at ``(x_i, y_{j+1/2})`` (``indexing="ij"``)."""
    g, _ = _uniform(grid)
    mid = 0.5 * (g[:-1] + g[1:])
    X, Y = np.meshgrid(mid, g, indexing="ij")
    xf = np.stack([X.ravel(), Y.ravel()], 1)
    X, Y = np.meshgrid(g, mid, indexing="ij")
    yf = np.stack([X.ravel(), Y.ravel()], 1)
    return xf, yf


def _limited_slope(q, axis, limiter):
    """Limited cell slopes (times h) along ``axis``; 0 in the first and last cell."""
    d = np.diff(q, axis=axis)
    sl = np.zeros_like(q)
    a = np.take(d, range(0, d.shape[axis] - 1), axis=axis)   # backward differences of interior cells
    b = np.take(d, range(1, d.shape[axis]), axis=axis)       # forward differences
    if limiter == "minmod":
        s = np.where(a * b > 0, np.sign(a) * np.minimum(np.abs(a), np.abs(b)), 0.0)
    else:  # van Leer: the harmonic mean of the two differences
        s = np.where(a * b > 0, 2 * a * b / np.where(a + b == 0, 1.0, a + b), 0.0)
    idx = [slice(None)] * q.ndim
    idx[axis] = slice(1, -1)
    sl[tuple(idx)] = s
    return sl


def _face_values(q, axis, limiter):
    """Values of q just left and right of every interior face along ``axis``."""
    n = q.shape[axis]
    left = np.take(q, range(0, n - 1), axis=axis)
    right = np.take(q, range(1, n), axis=axis)
    if limiter == "upwind":
        return left, right
    sl = _limited_slope(q, axis, limiter)
    return left + 0.5 * np.take(sl, range(0, n - 1), axis=axis), right - 0.5 * np.take(sl, range(1, n), axis=axis)


def _drift_rate(q, bx, by, h, limiter):
    """``-div(b q)`` by finite volumes: upwind face fluxes, zero flux through the outer faces."""
    out = np.zeros_like(q)
    for axis, b in ((0, bx), (1, by)):
        lo, hi = _face_values(q, axis, limiter)
        flux = np.where(b > 0, b * lo, b * hi)                      # (n-1, n) or (n, n-1)
        zero = np.zeros_like(np.take(flux, [0], axis=axis))
        F = np.concatenate([zero, flux, zero], axis=axis)           # all n+1 faces
        out -= np.diff(F, axis=axis) / h
    return out


def _heat(q, k2, amount):
    """The exact discrete-Neumann heat semigroup ``exp(amount * Laplacian_h) q`` (DCT-II diagonalises it)."""
    if amount <= 0:
        return q
    return np.maximum(idctn(dctn(q, type=2, norm="ortho") * np.exp(-amount * k2), type=2, norm="ortho"), 0.0)


#: The most steps :func:`sampler_density` takes (a bound on its run time).
MAX_STEPS = 200_000


def sampler_density(score: Callable, process, grid, p_start, t_start: float, t_end: float, *,
                    churn: float = 0.0, limiter: str = "vanleer", cfl: float = 0.4,
                    max_dt: float | None = None, keep=(), dtype=torch.float64) -> GridSolve:
    r"""The density of a sampler run with ``score`` from ``p_start`` at ``t_start`` down to ``t_end``.

    score: any field ``s(x (B, 2), t) -> (B, 2)`` (evaluated at the cell faces with x in
    ``dtype`` and a float t); process: a :class:`~diffedu.processes.Process`; grid: (n,) uniform
    cell centres, the same on both axes; p_start: (n, n) density at ``t_start`` (``indexing="ij"``,
    e.g. :func:`diffedu.fokker_planck.density_on_grid`). ``churn`` c: 0 for the PF-ODE, 1 for the
    reverse SDE (any c >= 0 gives a sampler with the same marginals for the exact score). Solves
    the module docstring's PDE from ``t_start`` down to ``t_end`` (``0 < t_end < t_start``) with
    CFL-limited steps (``cfl``, at most ``max_dt``, default ``(t_start - t_end) / 50``) and the
    given ``limiter`` (:data:`LIMITERS`). ``keep``: times (in ``(t_end, t_start]``) at which to keep
    a snapshot. Returns a :class:`GridSolve`.
    """
    check_callable(score, "score", "a field s(x, t) -> (B, 2)")
    check_process(process)
    g, h = _uniform(grid)
    n = g.size
    q = as_real_tensor(p_start, "p_start", "an (n, n) array of densities").numpy().astype(np.float64).copy()
    if q.shape != (n, n) or not np.isfinite(q).all() or (q < 0).any():
        raise ValueError(f"p_start must be a finite non-negative ({n}, {n}) density matching grid; got shape {q.shape}")
    t_start, t_end = check_real(t_start, "t_start"), check_real(t_end, "t_end")
    if not (process.t_min < t_end < t_start <= float(process.t_max)):
        raise ValueError(f"need {process.t_min} < t_end < t_start <= t_max = {float(process.t_max)}; "
                         f"got t_start = {t_start}, t_end = {t_end}")
    churn = check_real(churn, "churn", minimum=0.0)
    check_choice(limiter, "limiter", LIMITERS)
    cfl = check_positive(cfl, "cfl")
    if cfl > 1:
        raise ValueError(f"cfl must be at most 1 (the upwind scheme is unstable above); got {cfl}")
    max_dt = (t_start - t_end) / 50 if max_dt is None else check_positive(max_dt, "max_dt")
    if isinstance(keep, (str, bytes)) or not hasattr(keep, "__iter__"):
        raise TypeError(f"keep must be a sequence of times; got {type(keep).__name__} {keep!r}")
    keep = sorted({check_real(k, "keep (each a time)") for k in keep}, reverse=True)
    if any(not (t_end < k <= t_start) for k in keep):
        raise ValueError(f"keep must hold times in ({t_end}, {t_start}]; got {keep}")
    xf, yf = (torch.as_tensor(f, dtype=dtype) for f in face_centres(g))
    k = np.arange(n)
    lam = (2 * np.sin(np.pi * k / (2 * n)) / h) ** 2                # eigenvalues of -Laplacian_h (Neumann)
    k2 = lam[:, None] + lam[None, :]

    def drift(t):
        """Face normal components of b = -(f x - (1 + c)/2 g^2 s) at time t: (n-1, n), (n, n-1)."""
        tt = torch.tensor(t, dtype=torch.float64)
        f, g2 = float(process.f(tt)), float(process.g2(tt))
        out = []
        for pts, comp, shape in ((xf, 0, (n - 1, n)), (yf, 1, (n, n - 1))):
            with torch.no_grad():
                s = score(pts, t)
            if not isinstance(s, torch.Tensor) or s.shape != pts.shape:
                got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                raise ValueError(f"score must return a tensor of shape {tuple(pts.shape)}; got {got}")
            b = -(f * pts[:, comp] - 0.5 * (1 + churn) * g2 * s[:, comp])
            out.append(b.detach().to("cpu", torch.float64).numpy().reshape(shape))
        if not all(np.isfinite(b).all() for b in out):
            raise ValueError(f"score returned NaN or inf at t = {t:g}")
        return out

    def g2_integral(t0, t1):                                        # int g^2 over [t1, t0], midpoint rule
        return float(process.g2(torch.tensor(0.5 * (t0 + t1), dtype=torch.float64))) * (t0 - t1)

    snaps, times, t, steps = [], [], t_start, 0
    if keep and keep[0] == t_start:
        snaps.append(q.copy())
        times.append(t)
        keep.pop(0)
    bx, by = drift(t)
    while t > t_end:
        speed = float(np.abs(bx).max() + np.abs(by).max())
        dt = min(max_dt, cfl * h / speed if speed > 0 else max_dt, t - t_end)
        if keep:
            dt = min(dt, t - keep[0])
        t1 = t - dt
        if churn:
            q = _heat(q, k2, 0.25 * churn * g2_integral(t, t1))     # c/2 g^2 over half the step
        q1 = q + dt * _drift_rate(q, bx, by, h, limiter)            # SSP-RK2 (Heun) in tau
        bx1, by1 = drift(t1)
        q = 0.5 * q + 0.5 * (q1 + dt * _drift_rate(q1, bx1, by1, h, limiter))
        q = np.maximum(q, 0.0)                                      # rounding only, under the CFL limit
        if churn:
            q = _heat(q, k2, 0.25 * churn * g2_integral(t, t1))
        t, bx, by = t1, bx1, by1
        steps += 1
        if steps > MAX_STEPS:
            raise RuntimeError(f"more than {MAX_STEPS} steps between t = {t_start} and {t_end}: is the score "
                               "exploding? (the CFL condition makes the steps follow its size)")
        if keep and abs(t - keep[0]) < 1e-12:
            snaps.append(q.copy())
            times.append(t)
            keep.pop(0)
    return GridSolve(q, np.array(times), np.array(snaps).reshape(len(snaps), n, n), steps)


def _pair(p, q, name_p="p", name_q="q"):
    a = as_real_tensor(p, name_p, "an array of densities on a grid").numpy().astype(np.float64)
    b = as_real_tensor(q, name_q, "an array of densities on a grid").numpy().astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{name_p} and {name_q} must have the same shape; got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"{name_p} and {name_q} must be finite")
    return a, b


def grid_tv(p, q, cell_area: float) -> float:
    r"""Total variation distance ``1/2 sum |p - q| h^2`` between two densities on the same grid
    (any shape; ``cell_area`` = h^2 in 2-D). In [0, 1] for normalised densities."""
    a, b = _pair(p, q)
    return 0.5 * float(np.abs(a - b).sum()) * check_positive(cell_area, "cell_area")


def grid_hellinger(p, q, cell_area: float) -> float:
    r"""Hellinger distance ``sqrt(1/2 sum (sqrt p - sqrt q)^2 h^2)`` between two non-negative
    densities on the same grid. In [0, 1]; ``H^2 <= TV <= sqrt(2) H``."""
    a, b = _pair(p, q)
    if (a < 0).any() or (b < 0).any():
        raise ValueError("p and q must be non-negative")
    return math.sqrt(0.5 * float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum()) * check_positive(cell_area, "cell_area"))


def grid_w2(p, q, grid, *, threshold: float = 1e-9) -> float:
    r"""Exact 2-Wasserstein distance between two densities on the same 2-D grid (n, n), as discrete
    laws on the cell centres (cells whose mass is below ``threshold`` dropped, the rest
    renormalised), by POT's network simplex. Resolution-limited: ~h/sqrt(6) from the cells."""
    import ot

    a, b = _pair(p, q)
    g, h = _uniform(grid)
    threshold = check_real(threshold, "threshold", minimum=0.0)
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    wa, wb = a.reshape(-1) * h * h, b.reshape(-1) * h * h
    ia, ib = wa > threshold, wb > threshold
    wa, wb = wa[ia] / wa[ia].sum(), wb[ib] / wb[ib].sum()
    M = ot.dist(pts[ia], pts[ib])
    return math.sqrt(max(float(ot.emd2(wa, wb, M, numItermax=10_000_000)), 0.0))


def gronwall_terms(score: Callable, process, grid, q, t: float, *, mass_floor: float = 1e-3,
                   dtype=torch.float64) -> tuple[float, float]:
    r"""The two ingredients of :func:`gronwall_bound` at one time t, from the SDE's density q (n, n).

    Returns ``(eps, Lambda)``: ``eps = ||s - grad log q||_{L^2(q)}``, the distance between the
    model's score and the score of the density its reverse SDE actually carries (``grad log q`` by
    centred differences of ``log q``), and ``Lambda``, the one-sided Lipschitz constant of the
    reverse-time ODE velocity ``-(f x - g^2 s / 2)``, i.e. ``-f + g^2/2 max lambda_max(sym grad s)``,
    the maximum taken over the cells that hold ``q > mass_floor max q`` (where the coupled paths
    are; the global maximum over R^2 is what the theorem asks for, and is not computable)."""
    check_callable(score, "score")
    check_process(process)
    g, h = _uniform(grid)
    q = as_real_tensor(q, "q", "an (n, n) density").numpy().astype(np.float64)
    n = g.size
    if q.shape != (n, n) or not np.isfinite(q).all() or (q < 0).any() or not q.max() > 0:
        raise ValueError(f"q must be a finite non-negative ({n}, {n}) density with some mass, matching grid; "
                         f"got shape {q.shape}")
    t = check_real(t, "t")
    process.check_t(t)
    mass_floor = check_real(mass_floor, "mass_floor", minimum=0.0, maximum=1.0)
    dtype = check_dtype(dtype)
    pts = torch.as_tensor(np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2), dtype=dtype)
    mask = (q > mass_floor * q.max()).reshape(-1)
    x = pts[torch.as_tensor(mask)].clone().requires_grad_(True)
    with torch.enable_grad():
        s = score(x, t)
        if not isinstance(s, torch.Tensor) or s.shape != x.shape:
            got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise ValueError(f"score must return a tensor of x's shape {tuple(x.shape)}; got {got}")
        rows = [torch.autograd.grad(s[:, i].sum(), x, retain_graph=i == 0)[0] for i in range(2)]
    J = torch.stack(rows, 1).detach().double()                      # (m, 2, 2): J[b, i, j] = d s_i / d x_j
    lam = torch.linalg.eigvalsh(0.5 * (J + J.transpose(1, 2)))[:, -1]
    tt = torch.tensor(t, dtype=torch.float64)
    f, g2 = float(process.f(tt)), float(process.g2(tt))
    Lambda = -f + 0.5 * g2 * float(lam.max())
    with torch.no_grad():
        s_all = score(pts, t).double().numpy().reshape(n, n, 2)
    logq = np.log(np.maximum(q, 1e-300))
    gx, gy = np.gradient(logq, h, h)
    w = q * h * h
    inner = np.zeros_like(q, dtype=bool)
    inner[1:-1, 1:-1] = True
    inner &= q > 1e-12 * q.max()                                     # where log q is defined
    err2 = ((s_all[..., 0] - gx) ** 2 + (s_all[..., 1] - gy) ** 2) * w
    eps = math.sqrt(float(err2[inner].sum() / w[inner].sum()))
    return eps, Lambda


def gronwall_bound(ts, eps, Lambda, g2) -> float:
    r"""``int_{t_end}^{T} exp( int_{t_end}^{t} Lambda ) 1/2 g^2(t) eps(t) dt`` by the trapezoid rule.

    ts (K,) increasing from t_end to T; eps, Lambda, g2 (K,) at those times. It bounds
    ``W2(q_ODE, q_SDE)`` at t_end when both samplers start from the same law at T: couple the
    PF-ODE of the model's score with the PF-ODE of the SDE's own density q (whose marginals are
    q_t), subtract, and apply Gronwall's inequality to ``E|X - Y|^2`` (the stability estimate
    behind Deveney et al. 2023's W2 bound in terms of the score mismatch; lesson 05 derives it)."""
    ts, e, L, g = (as_real_tensor(a, name, "a 1-D array of numbers").numpy()
                   for a, name in ((ts, "ts"), (eps, "eps"), (Lambda, "Lambda"), (g2, "g2")))
    for a, name in ((ts, "ts"), (e, "eps"), (L, "Lambda"), (g, "g2")):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} must be finite (no NaN or inf)")
    if ts.ndim != 1 or ts.size < 2 or e.shape != ts.shape or L.shape != ts.shape or g.shape != ts.shape:
        raise ValueError("ts, eps, Lambda and g2 must be 1-D arrays of one common length >= 2")
    if np.any(np.diff(ts) <= 0):
        raise ValueError("ts must increase (from t_end to T)")
    cumL = np.concatenate([[0.0], np.cumsum(0.5 * (L[1:] + L[:-1]) * np.diff(ts))])
    integrand = np.exp(cumL) * 0.5 * g * e
    return float(np.sum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(ts)))
