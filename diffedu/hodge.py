r"""Helmholtz-Hodge and weighted (gauge) decompositions of 2-D fields on a grid.

:func:`decompose` splits a field on a box into ``s = grad(phi) + r`` with ``div(p r) = 0``: the
``L^2(p)``-orthogonal projection of s onto gradients (``p = 1``: Helmholtz-Hodge on a box;
``p = p_t``: the gauge decomposition of Horvat and Pfister 2024, whose gradient part is all that a
sampler's marginals see, :mod:`diffedu.gauge`). :func:`helmholtz_hodge_periodic` is the spectral
split on the torus, exact for trigonometric polynomials. :class:`Grid2D` holds the box and its
quadrature; ``grid_*`` are second-order difference operators on it. Lesson 12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from ._core import check_batch, check_callable, check_dtype, check_int, check_positive, check_real, field_at

__all__ = ["gradient_part", "Grid2D", "Decomposition", "decompose", "helmholtz_hodge_periodic",
           "grid_jacobian", "grid_curl", "grid_divergence", "weighted_norm", "relative_error"]


# --- grids -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid2D:
    r"""A box ``[x_lo, x_hi] x [y_lo, y_hi]`` with ``n x n`` nodes, end points included.

    Grid arrays are indexed ``[i, j]`` for the node ``(xs[i], ys[j])`` (``indexing="ij"``);
    vector fields on the grid have shape (n, n, 2). :meth:`points` lists the nodes in the same
    order, (n*n, 2), so ``field(grid.points()).reshape(n, n, 2)`` is the field on the grid.
    """

    xlim: tuple = (-4.0, 4.0)
    ylim: tuple | None = None
    n: int = 81

    def __post_init__(self):
        check_int(self.n, "n", minimum=5)  # nodes per axis
        for name, lim in (("xlim", self.xlim), ("ylim", self.ylim if self.ylim is not None else self.xlim)):
            if isinstance(lim, (str, bytes)) or not hasattr(lim, "__len__"):
                raise TypeError(f"{name} must be a pair of numbers (lo, hi); got {type(lim).__name__} {lim!r}")
            if len(lim) != 2:
                raise ValueError(f"{name} must be a pair of numbers (lo, hi); got {len(lim)} of them")
            lo, hi = (check_real(v, f"{name} (each end)") for v in lim)
            if not hi > lo:
                raise ValueError(f"{name} must have hi > lo; got {lim!r}")

    @property
    def _y(self):
        return self.xlim if self.ylim is None else self.ylim

    @property
    def xs(self) -> torch.Tensor:
        return torch.linspace(float(self.xlim[0]), float(self.xlim[1]), self.n, dtype=torch.float64)

    @property
    def ys(self) -> torch.Tensor:
        return torch.linspace(float(self._y[0]), float(self._y[1]), self.n, dtype=torch.float64)

    @property
    def h(self) -> tuple:
        """Spacings ``(hx, hy)``."""
        return ((float(self.xlim[1]) - float(self.xlim[0])) / (self.n - 1),
                (float(self._y[1]) - float(self._y[0])) / (self.n - 1))

    def mesh(self):
        """``X, Y`` (n, n) float64 with ``X[i, j] = xs[i]``, ``Y[i, j] = ys[j]``."""
        return torch.meshgrid(self.xs, self.ys, indexing="ij")

    def points(self, dtype=torch.float64) -> torch.Tensor:
        """The nodes as a batch (n*n, 2), in the order of the (n, n) arrays; dtype a floating dtype."""
        check_dtype(dtype)
        X, Y = self.mesh()
        return torch.stack([X.reshape(-1), Y.reshape(-1)], 1).to(dtype)

    def weights(self) -> torch.Tensor:
        """Trapezoid-rule area weights (n, n): ``sum(w * g)`` approximates ``int g dA``."""
        hx, hy = self.h
        wx = torch.full((self.n,), hx, dtype=torch.float64)
        wy = torch.full((self.n,), hy, dtype=torch.float64)
        wx[[0, -1]] *= 0.5
        wy[[0, -1]] *= 0.5
        return wx[:, None] * wy[None, :]

    def evaluate(self, field, t=None, *, dtype=torch.float64) -> torch.Tensor:
        """``field`` on the nodes: (n, n, 2) float64 (evaluated in ``dtype``, without autograd)."""
        f = field_at(field, t)
        with torch.no_grad():
            v = f(self.points(dtype))
        if not isinstance(v, torch.Tensor) or v.shape != (self.n * self.n, 2):
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"field must map (B, 2) to (B, 2); got {got}")
        return v.detach().to(torch.float64).reshape(self.n, self.n, 2)


def _check_grid(grid):
    if not isinstance(grid, Grid2D):
        raise TypeError(f"grid must be a diffedu.hodge.Grid2D; got {type(grid).__name__}")
    return grid


def _finite_tensor(F, name, shape):
    """A finite floating tensor of ``shape`` (a description of it in the errors), as float64."""
    if not isinstance(F, torch.Tensor) or not F.is_floating_point():
        got = f"a {F.dtype} tensor" if isinstance(F, torch.Tensor) else type(F).__name__
        raise TypeError(f"{name} must be a floating torch.Tensor of shape {shape}; got {got}")
    if not bool(torch.isfinite(F).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return F.detach().to(torch.float64)


def _grid_field(F, grid, name="F"):
    F = _finite_tensor(F, name, f"({grid.n}, {grid.n}, 2)")
    if F.shape != (grid.n, grid.n, 2):
        raise ValueError(f"{name} must have shape ({grid.n}, {grid.n}, 2) to match the grid; got {tuple(F.shape)}")
    return F


def _grid_scalar(p, grid, name="p", weight=True):
    if p is None:
        return torch.ones(grid.n, grid.n, dtype=torch.float64)
    p = _finite_tensor(p, name, f"({grid.n}, {grid.n}) or None")
    if p.shape != (grid.n, grid.n):
        raise ValueError(f"{name} must have shape ({grid.n}, {grid.n}) to match the grid; got {tuple(p.shape)}")
    if weight and bool((p < 0).any()):
        raise ValueError(f"{name} must be non-negative (a density or weight); got minimum {float(p.min()):.3g}")
    return p


def _d(a: np.ndarray, h: float, axis: int) -> np.ndarray:
    return np.gradient(a, h, axis=axis, edge_order=2)


def grid_jacobian(F, grid):
    r"""Jacobian of a grid field (n, n, 2) by second-order differences (``np.gradient``): (n, n, 2, 2).

    ``J[..., i, j] = d F_i / d x_j``. The difference operators of the two axes commute, so the
    Jacobian of a grid gradient ``grid_gradient(phi)`` is symmetric to rounding.
    """
    grid = _check_grid(grid)
    F = _grid_field(F, grid).numpy()
    hx, hy = grid.h
    J = np.stack([np.stack([_d(F[..., i], hx, 0), _d(F[..., i], hy, 1)], -1) for i in range(2)], -2)
    return torch.from_numpy(J)


def grid_curl(F, grid):
    r"""Scalar curl ``dF_y/dx - dF_x/dy`` of a grid field by second-order differences: (n, n)."""
    J = grid_jacobian(F, grid)
    return J[..., 1, 0] - J[..., 0, 1]


def grid_divergence(F, grid, p=None):
    r"""``div(p F)`` of a grid field (n, n, 2) by second-order differences: (n, n). p: (n, n) or None (= 1)."""
    grid = _check_grid(grid)
    F = _grid_field(F, grid)
    pF = (_grid_scalar(p, grid)[..., None] * F).numpy()
    hx, hy = grid.h
    return torch.from_numpy(_d(pF[..., 0], hx, 0) + _d(pF[..., 1], hy, 1))


def weighted_norm(F, grid, p=None):
    r"""``(int p |F|^2 dA)^{1/2}`` by the trapezoid rule. F: (n, n, 2) or (n, n); p: (n, n) or None."""
    grid = _check_grid(grid)
    sq = _finite_tensor(F, "F", f"({grid.n}, {grid.n}, 2) or ({grid.n}, {grid.n})") ** 2
    if sq.shape == (grid.n, grid.n, 2):
        sq = sq.sum(-1)
    elif sq.shape != (grid.n, grid.n):
        raise ValueError(f"F must have shape ({grid.n}, {grid.n}, 2) or ({grid.n}, {grid.n}); got {tuple(F.shape)}")
    return float((grid.weights() * _grid_scalar(p, grid) * sq).sum().sqrt())


def relative_error(F, G, grid, p=None):
    r"""``||F - G||_p / ||G||_p`` in the p-weighted L2 norm of :func:`weighted_norm`."""
    grid = _check_grid(grid)
    return weighted_norm(_grid_field(F, grid) - _grid_field(G, grid, "G"), grid, p) / weighted_norm(G, grid, p)


# --- the weighted (gauge) decomposition on a grid --------------------------------------------
@dataclass(frozen=True)
class Decomposition:
    r"""``field = gradient + remainder`` on a :class:`Grid2D`, with ``div(p remainder) = 0``.

    phi (n, n): the potential (zero at the densest node); gradient, remainder, field (n, n, 2);
    p (n, n): the weight, scaled to maximum 1; flux_residual: the discrete
    ``|| div(p remainder) || / || div(p field) ||`` of the solved system (rounding level).
    """

    grid: Grid2D
    phi: torch.Tensor
    gradient: torch.Tensor
    remainder: torch.Tensor
    field: torch.Tensor
    p: torch.Tensor
    flux_residual: float

    def energy_split(self):
        """``(||field||_p^2, ||gradient||_p^2, ||remainder||_p^2)``: the parts are L2(p)-orthogonal,
        so the last two add up to the first (up to discretisation error)."""
        return tuple(weighted_norm(F, self.grid, self.p) ** 2 for F in (self.field, self.gradient, self.remainder))


def _edge_ops(n, hx, hy):
    """Forward differences from nodes to x-edges and y-edges, and node-to-edge averages."""
    I = sp.identity(n, format="csr")
    d = sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n), format="csr")
    m = sp.diags([0.5 * np.ones(n - 1), 0.5 * np.ones(n - 1)], [0, 1], shape=(n - 1, n), format="csr")
    Gx, Gy = sp.kron(d / hx, I, format="csr"), sp.kron(I, d / hy, format="csr")
    Mx, My = sp.kron(m, I, format="csr"), sp.kron(I, m, format="csr")
    return Gx, Gy, Mx, My


def _edge_weights(n, hx, hy):
    """Quadrature weights of the x-edges ((n-1)*n) and y-edges (n*(n-1)): half on the boundary."""
    half = np.ones(n)
    half[[0, -1]] = 0.5
    wx = (hx * hy * np.ones(n - 1)[:, None] * half[None, :]).reshape(-1)
    wy = (hx * hy * half[:, None] * np.ones(n - 1)[None, :]).reshape(-1)
    return wx, wy


def decompose(field, grid: Grid2D, *, t=None, log_p=None, p_floor: float = 1e-12, dtype=torch.float64):
    r"""Split a 2-D field into ``grad(phi)`` plus a remainder r with ``div(p r) = 0``.

    ``grad(phi)`` is the projection of the field onto gradients in ``L^2(p)``: phi minimises
    ``int p |field - grad phi|^2 dA`` over the box, so it solves the weighted Poisson problem

        div(p grad phi) = div(p field)  in the box,    p (field - grad phi) . n = 0  on its edge,

    i.e. r satisfies ``div(p r) = 0`` with zero normal flux ``p r . n`` through the boundary.
    With ``log_p=None`` (p = 1) this is the Helmholtz-Hodge decomposition on a box: a gradient
    plus a divergence-free field tangent to the boundary. With ``p = p_t`` and ``field`` a learned
    score it is the gauge decomposition of lesson 12: ``grad(phi)`` is all a sampler's marginals
    see.

    field: a callable ``f(x)`` / ``f(x, t)`` (B, 2) -> (B, 2), evaluated at the nodes and the edge
    midpoints, or a tensor (n, n, 2) of node values (averaged onto the edges).
    log_p: None, a callable ``x -> (B,)`` log-density (any additive constant), or a tensor (n, n)
    of log p at the nodes. p is scaled to maximum 1 and floored at ``p_floor`` so the system stays
    nonsingular where p underflows (such regions carry no weight in any p-weighted norm).
    dtype: the dtype the callables are evaluated in (float32 for a float32 network); the results
    are float64.

    The box must hold nearly all of p's mass for the result to approximate the decomposition on
    the whole plane: where p is not negligible on the edge, the zero-flux condition is the box's,
    not the plane's (the tests use boxes whose edge density is below 1e-6 of the peak).

    Discretisation (finite volumes on a staggered grid): phi at the nodes, gradients on the cell
    edges, so the weighted Laplacian is the compact 5-point one and the discrete
    ``div(p r)`` at every node vanishes to solver precision (``flux_residual``). The node values
    of ``gradient`` are ``np.gradient(phi)`` (second order), whose Jacobian is symmetric to
    rounding; the node remainder satisfies ``div(p r) = 0`` to O(h^2). One sparse direct solve
    (``scipy.sparse.linalg.spsolve``) with phi pinned to 0 at the densest node.
    """
    grid = _check_grid(grid)
    p_floor = check_real(p_floor, "p_floor", minimum=0.0, maximum=1.0, strict=True)
    n = grid.n
    hx, hy = grid.h
    Gx, Gy, Mx, My = _edge_ops(n, hx, hy)
    X, Y = grid.mesh()
    ex = torch.stack([(X[:-1] + X[1:]).reshape(-1) / 2, Y[:-1].reshape(-1)], 1)    # x-edge midpoints
    ey = torch.stack([X[:, :-1].reshape(-1), (Y[:, :-1] + Y[:, 1:]).reshape(-1) / 2], 1)

    # the field at the nodes and its normal components on the edges
    if isinstance(field, torch.Tensor):
        F = _grid_field(field, grid, "field")
        Fn = F.numpy()
        fx, fy = Mx @ Fn[..., 0].reshape(-1), My @ Fn[..., 1].reshape(-1)
    else:
        F = grid.evaluate(field, t, dtype=dtype)
        f = field_at(field, t)
        with torch.no_grad():
            fx = f(ex.to(dtype))[:, 0].detach().to(torch.float64).numpy()
            fy = f(ey.to(dtype))[:, 1].detach().to(torch.float64).numpy()

    # log p at the nodes and on the edges
    if log_p is None:
        lp = torch.zeros(n, n, dtype=torch.float64)
        lx, ly = np.zeros(len(fx)), np.zeros(len(fy))
    elif isinstance(log_p, torch.Tensor):
        lp = _grid_scalar(log_p, grid, "log_p", weight=False)
        lx, ly = Mx @ lp.numpy().reshape(-1), My @ lp.numpy().reshape(-1)
    elif callable(log_p):
        with torch.no_grad():
            vals = [log_p(z.to(dtype)) for z in (grid.points(), ex, ey)]
        for v, m in zip(vals, (n * n, len(fx), len(fy))):
            if not isinstance(v, torch.Tensor) or v.shape != (m,):
                got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                raise ValueError(f"log_p must map (B, 2) to (B,); got {got}")
        lp = vals[0].detach().to(torch.float64).reshape(n, n)
        lx, ly = (v.detach().to(torch.float64).numpy() for v in vals[1:])
    else:
        raise TypeError(f"log_p must be None, a callable x -> (B,) or a ({n}, {n}) tensor; got {type(log_p).__name__}")
    if not torch.isfinite(lp).all() or not (np.isfinite(lx).all() and np.isfinite(ly).all()):
        raise ValueError("log_p must be finite on the grid")
    top = max(float(lp.max()), float(lx.max()), float(ly.max()))
    p = torch.exp(lp - top).clamp_min(p_floor)
    px, py = np.maximum(np.exp(lx - top), p_floor), np.maximum(np.exp(ly - top), p_floor)

    # normal equations of min sum_e w_e p_e (G phi - f)_e^2: (G^T W G) phi = G^T W f
    wx, wy = _edge_weights(n, hx, hy)
    Wx, Wy = sp.diags(wx * px), sp.diags(wy * py)
    A = (Gx.T @ Wx @ Gx + Gy.T @ Wy @ Gy).tocsr()
    b = Gx.T @ (Wx @ fx) + Gy.T @ (Wy @ fy)
    k0 = int(torch.argmax(p))
    keep = np.ones(n * n, dtype=bool)
    keep[k0] = False
    phi = np.zeros(n * n)
    phi[keep] = spla.spsolve(A[keep][:, keep].tocsc(), b[keep])
    # the discrete div(p r) at every node, relative to that of the field
    rx, ry = fx - Gx @ phi, fy - Gy @ phi
    res = np.linalg.norm(Gx.T @ (Wx @ rx) + Gy.T @ (Wy @ ry)) / max(np.linalg.norm(b), 1e-300)

    phi = phi.reshape(n, n)
    grad = np.stack([_d(phi, hx, 0), _d(phi, hy, 1)], -1)
    grad_t = torch.from_numpy(grad)
    return Decomposition(grid=grid, phi=torch.from_numpy(phi), gradient=grad_t, remainder=F - grad_t,
                         field=F, p=p, flux_residual=float(res))


def helmholtz_hodge_periodic(F, length=2 * math.pi):
    r"""Spectral Helmholtz-Hodge split of a periodic 2-D field: ``F = grad + div_free + mean``.

    F: (n, n, 2) samples on ``[0, L)^2`` (end point excluded), indexed ``[i, j]`` for
    ``(i L/n, j L/n)``. In Fourier space the gradient part is the projection of ``F_hat(k)`` on k,
    the divergence-free part the rest; the mean (the harmonic part on the torus, both curl- and
    divergence-free) is returned separately. Exact for trigonometric polynomials resolved by the
    grid. Returns ``(gradient, div_free, mean)`` with shapes (n, n, 2), (n, n, 2), (2,).
    """
    Fd = _finite_tensor(F, "F", "(n, n, 2)")
    if F.dim() != 3 or F.shape[0] != F.shape[1] or F.shape[2] != 2 or F.shape[0] == 0:
        raise ValueError(f"F must have shape (n, n, 2) with n >= 1; got {tuple(F.shape)}")
    length = check_positive(length, "length")
    n = F.shape[0]
    Fh = torch.fft.fft2(Fd, dim=(0, 1))
    k = torch.fft.fftfreq(n, d=length / n, dtype=torch.float64) * 2 * math.pi
    K = torch.stack(torch.meshgrid(k, k, indexing="ij"), -1)                  # (n, n, 2)
    k2 = (K**2).sum(-1)
    k2[0, 0] = 1.0
    proj = (K * Fh).sum(-1) / k2                                              # (k . F_hat) / |k|^2
    Gh = K * proj[..., None]
    Gh[0, 0] = 0
    grad = torch.fft.ifft2(Gh, dim=(0, 1)).real
    mean = Fd.mean((0, 1))
    return grad, Fd - grad - mean, mean


def gradient_part(field, grid: Grid2D, log_p, *, dtype=torch.float64):
    r"""The field ``x, t -> grad(phi_t)(x)``: the gradient part of ``field`` in the ``p_t``-weighted
    decomposition (:func:`decompose`), taken afresh at every time it is asked for.

    field: ``f(x, t)`` (B, 2) -> (B, 2) (a learned score); log_p: ``log p_t(x)`` as ``log_p(x, t)``
    (the weight); at each new t, :func:`decompose` runs on ``grid`` (one sparse solve; the result is
    kept for that t) and ``grad(phi_t)`` is interpolated bilinearly at x (clamped to the box). A
    sampler run with it sees, at every one of its times, only the part of the field that its
    marginals see (lesson 12: Vuong et al. 2025's reading). Returns the callable."""
    _check_grid(grid)
    check_callable(field, "field", "a field f(x, t) (B, 2) -> (B, 2)")
    check_callable(log_p, "log_p", "log p_t(x) as log_p(x, t) -> (B,)")
    dtype = check_dtype(dtype)
    cache = {}
    xs, ys = grid.xs, grid.ys

    def g(x, t):
        x = check_batch(x, 2)
        key = float(t)
        if key not in cache:
            cache[key] = decompose(field, grid, t=key, log_p=lambda y: log_p(y, key), dtype=dtype).gradient
        G = cache[key].to(x.dtype)
        hx, hy = grid.h
        u = ((x[:, 0] - float(xs[0])) / hx).clamp(0, grid.n - 1 - 1e-9)
        v = ((x[:, 1] - float(ys[0])) / hy).clamp(0, grid.n - 1 - 1e-9)
        i, j = u.floor().long(), v.floor().long()
        a, b = (u - i)[:, None], (v - j)[:, None]
        return ((1 - a) * (1 - b) * G[i, j] + a * (1 - b) * G[i + 1, j] + (1 - a) * b * G[i, j + 1]
                + a * b * G[i + 1, j + 1])
    return g
