r"""Is a vector field a gradient? Jacobian asymmetry, curl, circulation, Helmholtz-Hodge and
gauge decompositions, and the intrinsic dimension read from the score's Jacobian.

A true score ``s = grad log p_t`` is a gradient, so its Jacobian is symmetric, its curl is zero
and its integral around every closed loop vanishes. A learned score need not be. Three tests,
from local to global:

* :func:`asymmetry` ``= ||J - J^T||_F / ||J||_F`` at points (0 for a gradient, 2 for a pure
  rotation), :func:`curl_2d`;
* :func:`circulation` around closed loops and :func:`path_dependence` of line integrals;
* :func:`decompose`: on a 2-D grid, ``s = grad(phi) + r`` with ``div(p r) = 0``, the
  ``L^2(p)``-orthogonal projection of s onto gradients (``p = 1``: Helmholtz-Hodge on a box).

**Gauge freedom** (Horvat and Pfister 2024, "On gauge freedom, conservativity and intrinsic
dimensionality estimation in diffusion models"). The probability-flow ODE
``dx/dt = f x - 1/2 g^2 s`` transports p_t by the continuity equation
``d p / dt = -div(p v)``; adding to s any r with ``div(p_t r) = 0`` leaves ``div(p v)``, hence
every marginal, unchanged: trajectories move, distributions do not. Only the conservative part
``grad(phi)`` of the weighted decomposition matters for the distribution a sampler transports.
For a Gaussian ``p_t = N(m, C)`` the field ``r = A C^{-1}(x - m) = -A s`` with A antisymmetric is
such a gauge field (:func:`gauge_rotation`); the plain rotation ``A (x - m)`` is one only when C
is isotropic (:func:`plain_rotation`). Lesson 11.

**Intrinsic dimension** (Stanczuk et al. 2024, "Your diffusion model secretly knows the
dimension of the data manifold"). Near data on a k-dimensional manifold, at small noise the
score points back to the manifold: ``s(x, t) ~ -(x - alpha_t proj(x)) / sigma_t^2``, so the score
Jacobian has D - k singular values near ``1 / sigma_t^2`` (normal directions) and k much smaller
ones (tangent). :func:`intrinsic_dimension` finds the largest gap of the normalised spectrum over
*every* position, including the one below the top (co-dimension 1, a hyperplane) and the one
above it (full dimension). Lesson 12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from ._core import check_batch, check_process, coefs
from .calculus import jacobian
from .gaussian import Gaussian

__all__ = [
    "jacobian_at", "antisymmetric_part", "asymmetry_ratio", "asymmetry", "curl_2d",
    "circle_loops", "line_integral", "circulation", "circulation_ratio", "path_dependence",
    "Grid2D", "Decomposition", "decompose", "helmholtz_hodge_periodic",
    "grid_jacobian", "grid_curl", "grid_divergence", "weighted_norm", "relative_error",
    "gauge_rotation", "plain_rotation", "rotation_matrix", "affine_flow_moments",
    "DimensionEstimate", "normalised_spectrum", "dimension_from_spectrum", "intrinsic_dimension",
]


# --- checks ----------------------------------------------------------------------------------
def _check_callable(f, name):
    if not callable(f):
        raise TypeError(f"{name} must be a callable field f(x) or f(x, t) -> (B, D); got {type(f).__name__}")
    return f


def _bind(field, t, name="field"):
    """``x -> field(x)`` when t is None, else ``x -> field(x, t)``."""
    _check_callable(field, name)
    return field if t is None else (lambda x: field(x, t))


def _check_jac(J, name="J"):
    if not isinstance(J, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, D, D); got {type(J).__name__}")
    if J.dim() != 3 or J.shape[1] != J.shape[2]:
        raise ValueError(f"{name} must have shape (B, D, D); got {tuple(J.shape)}")
    return J


# --- local tests: the Jacobian ---------------------------------------------------------------
def jacobian_at(field, x, t=None):
    r"""Jacobian ``J[b, i, j] = d field_i / d x_j`` at each row of x: (B, D, D).

    field: ``f(x)`` (t None) or ``f(x, t)``, (B, D) -> (B, D); x: (B, D). By autograd
    (:func:`diffedu.calculus.jacobian`).
    """
    return jacobian(_bind(field, t), check_batch(x))


def antisymmetric_part(J):
    r"""``(J - J^T) / 2`` of (B, D, D) Jacobians; zero exactly when the field is locally a gradient."""
    J = _check_jac(J)
    return 0.5 * (J - J.transpose(1, 2))


def asymmetry_ratio(J):
    r"""``||J - J^T||_F / ||J||_F`` per Jacobian: (B,).

    0 for a gradient field (symmetric Jacobian), 2 for a pure rotation (``J = -J^T``), and
    rounding level (about 1e-16 in float64) for a score computed as the autograd gradient of an
    energy. A zero Jacobian gives 0.
    """
    J = _check_jac(J)
    num = torch.linalg.matrix_norm(J - J.transpose(1, 2))
    den = torch.linalg.matrix_norm(J)
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))


def asymmetry(field, x, t=None):
    r"""Asymmetry ratio ``||J - J^T||_F / ||J||_F`` of ``field`` at each row of x: (B,)."""
    return asymmetry_ratio(jacobian_at(field, x, t))


def curl_2d(field, x, t=None):
    r"""Scalar curl ``d f_2 / d x_1 - d f_1 / d x_2`` of a 2-D field at each row of x: (B,)."""
    x = check_batch(x)
    if x.shape[1] != 2:
        raise ValueError(f"x must have shape (B, 2) for a 2-D curl; got {tuple(x.shape)}")
    J = jacobian_at(field, x, t)
    return J[:, 1, 0] - J[:, 0, 1]


# --- global tests: line integrals ------------------------------------------------------------
def circle_loops(centers, radius: float, n: int = 64, *, dims=(0, 1)):
    r"""Closed polygonal loops: circles of ``radius`` about each centre in the plane ``dims``.

    centers: (B, D) or (D,). Returns (n + 1, B, D) with the last vertex equal to the first,
    traversed counter-clockwise in the (dims[0], dims[1]) plane.
    """
    if not isinstance(centers, torch.Tensor):
        raise TypeError(f"centers must be a torch.Tensor of shape (B, D) or (D,); got {type(centers).__name__}")
    c = centers[None] if centers.dim() == 1 else check_batch(centers, name="centers")
    if not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive number; got {radius!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise ValueError(f"n must be an integer >= 3 (vertices of the loop); got {n!r}")
    i, j = dims
    if not (0 <= i < c.shape[1] and 0 <= j < c.shape[1] and i != j):
        raise ValueError(f"dims must be two different coordinates of 0..{c.shape[1] - 1}; got {dims!r}")
    th = torch.linspace(0, 2 * math.pi, n + 1, dtype=c.dtype, device=c.device)
    th[-1] = 0.0  # close exactly
    loop = c[None].repeat(n + 1, 1, 1)
    loop[:, :, i] += radius * torch.cos(th)[:, None]
    loop[:, :, j] += radius * torch.sin(th)[:, None]
    return loop


def _check_path(path, name="path"):
    if not isinstance(path, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N+1, B, D) or (N+1, D); got {type(path).__name__}")
    if not path.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype; got {path.dtype}")
    if path.dim() == 2:
        path = path[:, None]
    if path.dim() != 3 or path.shape[0] < 2:
        raise ValueError(f"{name} must have shape (N+1, B, D) or (N+1, D) with N >= 1; got {tuple(path.shape)}")
    return path


def line_integral(field, path, t=None, *, nodes: int = 3):
    r"""``int_path f . dx`` along polygonal paths: (B,).

    path: (N+1, B, D) vertices (or (N+1, D) for one path, giving (1,)). Each straight segment
    is integrated with ``nodes``-point Gauss-Legendre quadrature (exact for fields polynomial of
    degree ``2 nodes - 1`` along the segment; error O(h^{2 nodes}) for smooth fields).
    """
    f = _bind(field, t)
    path = _check_path(path)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ValueError(f"nodes must be a positive integer; got {nodes!r}")
    u, w = np.polynomial.legendre.leggauss(nodes)
    u = torch.as_tensor((u + 1) / 2, dtype=path.dtype, device=path.device)
    w = torch.as_tensor(w / 2, dtype=path.dtype, device=path.device)
    a, d = path[:-1], path[1:] - path[:-1]                     # (N, B, D)
    pts = a[None] + u[:, None, None, None] * d[None]           # (q, N, B, D)
    vals = f(pts.reshape(-1, path.shape[2])).reshape(pts.shape)
    return torch.einsum("q,qnbd,nbd->b", w, vals, d)


def _closed(loop, name="loop"):
    loop = _check_path(loop, name)
    gap = float((loop[0] - loop[-1]).abs().max())
    scale = float(loop.abs().max()) + 1.0
    if gap > 1e-9 * scale:
        raise ValueError(f"{name} must be closed (last vertex equal to the first); they differ by {gap:.3g}")
    return loop


def circulation(field, loop, t=None, *, nodes: int = 3):
    r"""Circulation ``oint f . dx`` around closed polygonal loops (N+1, B, D): (B,).

    Zero for a gradient field (up to quadrature error); equals ``int curl f dA`` over the
    enclosed area in 2-D (Stokes).
    """
    return line_integral(field, _closed(loop), t, nodes=nodes)


def circulation_ratio(field, loop, t=None, *, nodes: int = 3):
    r"""Scale-free circulation ``|oint f . dx| / oint |f| |dx|`` in [0, 1]: (B,).

    0 for a gradient field; 1 when the field runs along the loop everywhere (a rotation about
    the loop's centre). Computed without autograd (the result is detached).
    """
    loop = _closed(loop)
    f = _bind(field, t)
    with torch.no_grad():  # a diagnostic: no graph kept (an energy model's score would keep one)
        return _circulation_ratio(f, loop, nodes)


def _circulation_ratio(f, loop, nodes):
    circ = line_integral(f, loop, nodes=nodes)
    u, w = np.polynomial.legendre.leggauss(nodes)
    u = torch.as_tensor((u + 1) / 2, dtype=loop.dtype, device=loop.device)
    w = torch.as_tensor(w / 2, dtype=loop.dtype, device=loop.device)
    d = loop[1:] - loop[:-1]                                   # (N, B, D)
    pts = loop[:-1][None] + u[:, None, None, None] * d[None]  # (q, N, B, D)
    speed = f(pts.reshape(-1, loop.shape[2])).reshape(pts.shape).norm(dim=-1)
    total = torch.einsum("q,qnb,nb->b", w, speed, d.norm(dim=-1))
    return circ.abs() / total.clamp_min(torch.finfo(total.dtype).tiny)


def path_dependence(field, path_a, path_b, t=None, *, nodes: int = 3):
    r"""``int_{path_a} f . dx - int_{path_b} f . dx`` for paths with the same end points: (B,).

    Zero for every pair of paths exactly when f is a gradient; in general it is the circulation
    around the loop "a, then b backwards".
    """
    a, b = _check_path(path_a, "path_a"), _check_path(path_b, "path_b")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"path_a and path_b must have the same (B, D); got {tuple(a.shape[1:])} and {tuple(b.shape[1:])}")
    for end, name in ((0, "start"), (-1, "end")):
        gap = float((a[end] - b[end]).abs().max())
        if gap > 1e-9 * (float(a.abs().max()) + 1.0):
            raise ValueError(f"path_a and path_b must share their {name} points; they differ by {gap:.3g}")
    return line_integral(field, a, t, nodes=nodes) - line_integral(field, b, t, nodes=nodes)


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
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 5:
            raise ValueError(f"n must be an integer >= 5 (nodes per axis); got {self.n!r}")
        for name, lim in (("xlim", self.xlim), ("ylim", self.ylim if self.ylim is not None else self.xlim)):
            try:
                lo, hi = (float(v) for v in lim)
            except (TypeError, ValueError) as e:
                raise TypeError(f"{name} must be a pair of numbers (lo, hi); got {lim!r}") from e
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise ValueError(f"{name} must be finite with hi > lo; got {lim!r}")

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
        """The nodes as a batch (n*n, 2), in the order of the (n, n) arrays."""
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
        f = _bind(field, t)
        with torch.no_grad():
            v = f(self.points(dtype))
        if not isinstance(v, torch.Tensor) or v.shape != (self.n * self.n, 2):
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"field must map (B, 2) to (B, 2); got {got}")
        return v.detach().to(torch.float64).reshape(self.n, self.n, 2)


def _check_grid(grid):
    if not isinstance(grid, Grid2D):
        raise TypeError(f"grid must be a diffedu.fields.Grid2D; got {type(grid).__name__}")
    return grid


def _grid_field(F, grid, name="F"):
    if not isinstance(F, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({grid.n}, {grid.n}, 2); got {type(F).__name__}")
    if F.shape != (grid.n, grid.n, 2):
        raise ValueError(f"{name} must have shape ({grid.n}, {grid.n}, 2) to match the grid; got {tuple(F.shape)}")
    return F.detach().to(torch.float64)


def _grid_scalar(p, grid, name="p"):
    if p is None:
        return torch.ones(grid.n, grid.n, dtype=torch.float64)
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{name} must be None or a torch.Tensor of shape ({grid.n}, {grid.n}); got {type(p).__name__}")
    if p.shape != (grid.n, grid.n):
        raise ValueError(f"{name} must have shape ({grid.n}, {grid.n}) to match the grid; got {tuple(p.shape)}")
    return p.detach().to(torch.float64)


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
    if not isinstance(F, torch.Tensor):
        raise TypeError(f"F must be a torch.Tensor on the grid; got {type(F).__name__}")
    sq = F.detach().to(torch.float64) ** 2
    if sq.shape == (grid.n, grid.n, 2):
        sq = sq.sum(-1)
    elif sq.shape != (grid.n, grid.n):
        raise ValueError(f"F must have shape ({grid.n}, {grid.n}, 2) or ({grid.n}, {grid.n}); got {tuple(F.shape)}")
    return float((grid.weights() * _grid_scalar(p, grid) * sq).sum().sqrt())


def relative_error(F, G, grid, p=None):
    r"""``||F - G||_p / ||G||_p`` in the p-weighted L2 norm of :func:`weighted_norm`."""
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
    score it is the gauge decomposition of lesson 11: ``grad(phi)`` is all a sampler's marginals
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
    if not (isinstance(p_floor, (int, float)) and 0 < p_floor < 1):
        raise ValueError(f"p_floor must be a number in (0, 1); got {p_floor!r}")
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
        f = _bind(field, t)
        with torch.no_grad():
            fx = f(ex.to(dtype))[:, 0].detach().to(torch.float64).numpy()
            fy = f(ey.to(dtype))[:, 1].detach().to(torch.float64).numpy()

    # log p at the nodes and on the edges
    if log_p is None:
        lp = torch.zeros(n, n, dtype=torch.float64)
        lx, ly = np.zeros(len(fx)), np.zeros(len(fy))
    elif isinstance(log_p, torch.Tensor):
        lp = _grid_scalar(log_p, grid, "log_p")
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
    if not isinstance(F, torch.Tensor):
        raise TypeError(f"F must be a torch.Tensor of shape (n, n, 2); got {type(F).__name__}")
    if F.dim() != 3 or F.shape[0] != F.shape[1] or F.shape[2] != 2:
        raise ValueError(f"F must have shape (n, n, 2); got {tuple(F.shape)}")
    if not (isinstance(length, (int, float)) and length > 0):
        raise ValueError(f"length must be a positive number; got {length!r}")
    n = F.shape[0]
    Fd = F.detach().to(torch.float64)
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


# --- gauge fields of a Gaussian and the moments of affine flows -----------------------------
def rotation_matrix(dim: int = 2, plane=(0, 1), dtype=torch.float64) -> torch.Tensor:
    r"""The antisymmetric generator A of rotations in ``plane``: ``A[j, i] = 1, A[i, j] = -1``. (D, D)."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2; got {dim!r}")
    i, j = plane
    if not (0 <= i < dim and 0 <= j < dim and i != j):
        raise ValueError(f"plane must be two different coordinates of 0..{dim - 1}; got {plane!r}")
    A = torch.zeros(dim, dim, dtype=dtype)
    A[j, i], A[i, j] = 1.0, -1.0
    return A


def _check_antisym(A, dim):
    A = torch.as_tensor(A, dtype=torch.float64)
    if A.shape != (dim, dim):
        raise ValueError(f"A must have shape ({dim}, {dim}); got {tuple(A.shape)}")
    if float((A + A.T).abs().max()) > 1e-12 * (1 + float(A.abs().max())):
        raise ValueError("A must be antisymmetric (A^T = -A)")
    return A


def _check_gauss(gaussian, process, strength):
    if not isinstance(gaussian, Gaussian):
        raise TypeError(f"gaussian must be a diffedu.Gaussian; got {type(gaussian).__name__}")
    check_process(process)
    if not (isinstance(strength, (int, float)) and math.isfinite(strength)):
        raise ValueError(f"strength must be a finite number; got {strength!r}")


def gauge_rotation(gaussian, process, strength: float = 1.0, A=None):
    r"""A gauge field of the Gaussian marginals: ``r(x, t) = -strength A s(x, t)``.

    With ``p_t = N(m_t, C_t)`` and ``s = -C_t^{-1}(x - m_t)``, ``r = strength A C_t^{-1}(x - m_t)``
    for an antisymmetric A (default: the rotation generator of the first two coordinates).
    ``div(p_t r) = p_t [tr(A C^{-1}) - (x - m)^T C^{-1} A C^{-1} (x - m)] = 0``: both terms vanish
    because ``A C^{-1}`` has zero trace and ``C^{-1} A C^{-1}`` is antisymmetric. So ``s + r`` moves
    samples along the level sets of p_t and leaves every marginal of the PF-ODE exact. Returns a
    field ``r(x, t)`` (B, D) -> (B, D).
    """
    _check_gauss(gaussian, process, strength)
    A = rotation_matrix(gaussian.dim) if A is None else _check_antisym(A, gaussian.dim)

    def r(x, t):
        s = gaussian.score(x, t, process)
        return -strength * s @ A.to(s).T
    return r


def plain_rotation(gaussian, process, strength: float = 1.0, A=None):
    r"""The plain rotation about the moving mean: ``r(x, t) = strength A (x - alpha_t mu)``.

    ``div(p_t r) = -strength p_t (x - m)^T C^{-1} A (x - m)``, which vanishes for every x only when
    ``C^{-1} A`` is antisymmetric, i.e. (in 2-D) when C_t is isotropic. On an anisotropic Gaussian
    ``s + r`` changes the distribution the PF-ODE produces. Returns ``r(x, t)``.
    """
    _check_gauss(gaussian, process, strength)
    A = rotation_matrix(gaussian.dim) if A is None else _check_antisym(A, gaussian.dim)

    def r(x, t):
        x = check_batch(x, gaussian.dim)
        a, _ = coefs(process, t, x)
        return strength * (x - a * gaussian.mean.to(x)) @ A.to(x).T
    return r


def affine_flow_moments(velocity, mean, cov, t_from: float, t_to: float, *, rtol: float = 1e-8,
                        atol: float = 1e-12):
    r"""Push a mean and covariance through an ODE ``dx/dt = v(x, t)`` whose v is affine in x.

    For ``v(x, t) = M(t) x + c(t)`` a Gaussian stays Gaussian and its moments solve
    ``dm/dt = v(m, t)``, ``dC/dt = M C + C M^T`` with ``M = dv/dx`` (unit differences at m,
    exact for an affine v; one batched call of v per step).
    Integrated with scipy's DOP853 at ``rtol``; an independent check of samplers that needs no
    samples. velocity: ``v(x, t)`` (B, D) -> (B, D); mean (D,); cov (D, D). Returns float64
    ``(mean, cov)`` at ``t_to``.
    """
    from scipy.integrate import solve_ivp

    _check_callable(velocity, "velocity")
    m0 = torch.as_tensor(mean, dtype=torch.float64)
    C0 = torch.as_tensor(cov, dtype=torch.float64)
    if m0.dim() != 1 or C0.shape != (m0.shape[0], m0.shape[0]):
        raise ValueError(f"mean must be (D,) and cov (D, D); got {tuple(m0.shape)} and {tuple(C0.shape)}")
    D = m0.shape[0]

    def rhs(t, y):
        m = torch.from_numpy(y[:D].copy())[None]
        C = torch.from_numpy(y[D:].reshape(D, D).copy())
        with torch.no_grad():                         # v affine: exact differences, one batch
            v = velocity(torch.cat([m, m + torch.eye(D, dtype=m.dtype)]), float(t))
        dm, M = v[0], (v[1:] - v[0]).T
        dC = M @ C + C @ M.T
        return np.concatenate([dm.numpy(), dC.numpy().reshape(-1)])

    sol = solve_ivp(rhs, (float(t_from), float(t_to)), np.concatenate([m0.numpy(), C0.numpy().reshape(-1)]),
                    method="DOP853", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"the moment ODE failed: {sol.message}")
    y = torch.from_numpy(sol.y[:, -1])
    C = y[D:].reshape(D, D)
    return y[:D], 0.5 * (C + C.T)


# --- intrinsic dimension ---------------------------------------------------------------------
@dataclass(frozen=True)
class DimensionEstimate:
    r"""Result of :func:`intrinsic_dimension`.

    dim: the estimate (the most common per-point estimate); dims (B,) long: per point;
    spectra (B, D): normalised singular values mu, descending (about 1 in normal directions,
    about ``sigma_t^2 / (alpha_t^2 lambda)`` in a tangent direction of variance lambda); gaps
    (B, D): ``mu_{i-1} - mu_i`` for i = 1..D with ``mu_0 = 1`` the normal-direction level, so the
    largest gap at i = D - k + 1 marks dimension k. Gaps are taken on the linear scale: tangent
    values spread over decades (one per tangent variance), which a log scale would mistake for
    gaps.
    """

    dim: int
    dims: torch.Tensor
    spectra: torch.Tensor
    gaps: torch.Tensor


def dimension_from_spectrum(spectrum):
    r"""Dimension estimates from normalised spectra (B, D), descending: ``(dims (B,), gaps (B, D))``.

    The normal directions sit near 1, the tangent ones near 0. Every position is a candidate:
    with ``mu_0 = 1`` prepended, gap i (i = 1..D) is ``mu_{i-1} - mu_i``; the largest gap at i
    leaves i - 1 normal directions above it, so the estimate is ``k = D - i + 1``. Gap 1 (between
    the reference level and the top value) wins for full-dimensional data (k = D), gap 2 for a
    hyperplane (k = D - 1). A point mass (k = 0) has no gap and is not detected.
    """
    if not isinstance(spectrum, torch.Tensor) or spectrum.dim() != 2:
        raise ValueError(f"spectrum must be a (B, D) tensor; got "
                         f"{tuple(spectrum.shape) if isinstance(spectrum, torch.Tensor) else type(spectrum).__name__}")
    mu = spectrum.to(torch.float64)
    padded = torch.cat([torch.ones_like(mu[:, :1]), mu], 1)
    gaps = padded[:, :-1] - padded[:, 1:]                             # (B, D)
    n_normal = torch.argmax(gaps, 1)                                  # 0..D-1
    return mu.shape[1] - n_normal, gaps


def normalised_spectrum(score, x, t, process, *, method: str = "jacobian", n_probes: int | None = None,
                        generator=None):
    r"""Spectrum of the score near the data at time t, scaled so normal directions sit near 1: (B, D).

    x: (B, D) points on the data (clean samples). method ``"jacobian"``: the singular values of
    the score Jacobian at ``alpha_t x``, times ``sigma_t^2``. method ``"scores"`` (Stanczuk et al.
    2024, Alg. 1): the singular values of the (n_probes, D) matrix of scores at
    ``alpha_t x + sigma_t eps_i``, times ``sigma_t / sqrt(n_probes)`` (default n_probes = 4 D).
    """
    x = check_batch(x)
    check_process(process)
    _check_callable(score, "score")
    B, D = x.shape
    a, s = coefs(process, t, x)
    if isinstance(t, torch.Tensor) and t.dim() == 1:
        raise ValueError("t must be one time (a float or a 0-d tensor) for a spectrum; got a (B,) tensor")
    if method == "jacobian":
        J = jacobian(lambda y: score(y, t), a * x)
        return torch.linalg.svdvals(J.detach()) * s**2
    if method == "scores":
        P = 4 * D if n_probes is None else n_probes
        if isinstance(P, bool) or not isinstance(P, int) or P < D:
            raise ValueError(f"n_probes must be an integer >= D = {D} (scores per point); got {n_probes!r}")
        eps = torch.randn((B, P, D), generator=generator, dtype=x.dtype, device=x.device)
        pts = (a * x)[:, None, :] + s * eps
        with torch.no_grad():
            S = score(pts.reshape(B * P, D), t).reshape(B, P, D)
        return torch.linalg.svdvals(S) * s / math.sqrt(P)
    raise ValueError(f"method must be 'jacobian' or 'scores'; got {method!r}")


def intrinsic_dimension(score, x, t, process, *, method: str = "jacobian", n_probes: int | None = None,
                        generator=None) -> DimensionEstimate:
    r"""Estimate the dimension of the data manifold from the score at small noise.

    score: ``s(x, t)``, (B, D) -> (B, D), exact or learned; x: (B, D) points on the data; t: a
    small time (sigma_t well below the manifold's curvature radius and the tangent spread,
    well above the spacing of a finite training set). See :func:`normalised_spectrum` for the
    two methods and :func:`dimension_from_spectrum` for the gap rule, which considers every
    position so co-dimension 1 and full dimension are found too.
    """
    mu = normalised_spectrum(score, x, t, process, method=method, n_probes=n_probes, generator=generator)
    dims, gaps = dimension_from_spectrum(mu)
    dim = int(torch.mode(dims).values)
    return DimensionEstimate(dim=dim, dims=dims, spectra=mu, gaps=gaps)
