r"""Is a vector field a gradient? Jacobian asymmetry, curl, circulation and path dependence.

A true score ``s = grad log p_t`` is a gradient, so its Jacobian is symmetric, its curl is zero
and its integral around every closed loop vanishes. A learned score need not be. Two kinds of
test, from local to global:

* :func:`asymmetry` ``= ||J - J^T||_F / ||J||_F`` at points (0 for a gradient, 2 for a pure
  rotation), :func:`curl_2d`; in high dimension :func:`asymmetry_hutchinson`, the same ratio from
  Jacobian-vector products with random probes (no D x D Jacobian);
* :func:`circulation` around closed loops and :func:`path_dependence` of line integrals.

The global split of a field into a gradient and the rest is :mod:`diffedu.hodge`; what the rest
does to a sampler is :mod:`diffedu.gauge`. Lesson 12.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._core import as_param, check_batch, check_coordinates, check_int, check_positive, field_at
from .calculus import jacobian

__all__ = ["jacobian_at", "antisymmetric_part", "asymmetry_ratio", "asymmetry", "asymmetry_hutchinson", "curl_2d",
           "circle_loops", "line_integral", "circulation", "circulation_ratio", "path_dependence",
           "linear_circulation"]


def _check_jac(J, name="J"):
    if not isinstance(J, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, D, D); got {type(J).__name__}")
    if J.dim() != 3 or J.shape[1] != J.shape[2]:
        raise ValueError(f"{name} must have shape (B, D, D); got {tuple(J.shape)}")
    if not J.is_floating_point():
        raise TypeError(f"{name} must have a real floating dtype; got {J.dtype}")
    if J.device.type == "cpu" and not bool(torch.isfinite(J).all()):
        raise ValueError(f"{name} must be finite: a Jacobian with NaN or inf has no asymmetry (was the "
                         "field evaluated where it is undefined?)")
    return J


# --- local tests: the Jacobian ---------------------------------------------------------------
def jacobian_at(field, x, t=None):
    r"""Jacobian ``J[b, i, j] = d field_i / d x_j`` at each row of x: (B, D, D).

    field: ``f(x)`` (t None) or ``f(x, t)``, (B, D) -> (B, D); x: (B, D). By autograd
    (:func:`diffedu.calculus.jacobian`).
    """
    return jacobian(field_at(field, t), check_batch(x))


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


def asymmetry_hutchinson(field, x, t=None, *, n_probes: int = 8, generator=None) -> torch.Tensor:
    r"""The asymmetry ratio ``||J - J^T||_F / ||J||_F`` from Jacobian-vector products: (B,).

    For probes z with ``E[z z^T] = I`` (Rademacher here), ``E|J z - J^T z|^2 = ||J - J^T||_F^2`` and
    ``E|J z|^2 = ||J||_F^2`` (Hutchinson's identity ``E[z^T A z] = tr A`` with ``A = M^T M``), so
    ``sqrt(sum_p |J z_p - J^T z_p|^2 / sum_p |J z_p|^2)`` over ``n_probes`` probes estimates the ratio
    (consistent as the probes grow; the two sums share their probes, which keeps the ratio's noise
    small). ``J^T z`` is one vector-Jacobian product, ``J z`` one more by the double-backward trick:
    two backward passes per probe whatever D, against D for :func:`asymmetry`. field: ``f(x)`` or
    ``f(x, t)``; x: (B, D); probes drawn with ``generator``.
    """
    x = check_batch(x)
    n_probes = check_int(n_probes, "n_probes", minimum=1)
    f = field_at(field, t)
    num = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    den = torch.zeros_like(num)
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        y = f(xr)
        if not isinstance(y, torch.Tensor) or y.shape != x.shape:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"field must return a tensor of x's shape {tuple(x.shape)}; got {got}")
        for _ in range(n_probes):
            z = (torch.randint(0, 2, x.shape, generator=generator, device=x.device) * 2 - 1).to(x.dtype)
            u = torch.zeros_like(y, requires_grad=True)
            (jtu,) = torch.autograd.grad(y, xr, grad_outputs=u, create_graph=True)   # J^T u, linear in u
            (jz,) = torch.autograd.grad(jtu, u, grad_outputs=z, retain_graph=True)   # J z
            (jtz,) = torch.autograd.grad(y, xr, grad_outputs=z, retain_graph=True)   # J^T z
            num += ((jz - jtz) ** 2).sum(1).detach()
            den += (jz**2).sum(1).detach()
    return torch.where(den > 0, torch.sqrt(num / torch.where(den > 0, den, torch.ones_like(den))), torch.zeros_like(den))


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
    c = check_batch(centers[None] if centers.dim() == 1 else centers, name="centers")
    if c.shape[1] < 2:
        raise ValueError(f"centers must have D >= 2 coordinates (a loop lies in a plane); got shape {tuple(centers.shape)}")
    radius = check_positive(radius, "radius")
    n = check_int(n, "n (vertices of the loop)", minimum=3)
    i, j = check_coordinates(dims, "dims", c.shape[1], 2)
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
    if path.device.type == "cpu" and not bool(torch.isfinite(path).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return path


def line_integral(field, path, t=None, *, nodes: int = 3):
    r"""``int_path f . dx`` along polygonal paths: (B,).

    path: (N+1, B, D) vertices (or (N+1, D) for one path, giving (1,)). Each straight segment
    is integrated with ``nodes``-point Gauss-Legendre quadrature (exact for fields polynomial of
    degree ``2 nodes - 1`` along the segment; error O(h^{2 nodes}) for smooth fields).
    """
    f = field_at(field, t)
    path = _check_path(path)
    nodes = check_int(nodes, "nodes", minimum=1)
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
    f = field_at(field, t)
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


def linear_circulation(M, radius: float) -> float:
    r"""Circulation of the linear field ``r(x) = M x`` counter-clockwise around a circle of ``radius``.

    The curl of ``M x`` in the plane of coordinates (0, 1) is the constant ``M[1, 0] - M[0, 1]``,
    so by Stokes the circulation around any such circle (any centre) is
    ``(M[1, 0] - M[0, 1]) pi radius^2``: ``2 gamma pi R^2`` for the rotation ``gamma A x``
    (lesson 12). M: (D, D), D >= 2. The closed form of what :func:`circulation` approximates
    on a :func:`circle_loops` polygon.
    """
    M = as_param(M, "M")
    if M.dim() != 2 or M.shape[0] != M.shape[1] or M.shape[0] < 2:
        raise ValueError(f"M must be a square (D, D) matrix with D >= 2; got shape {tuple(M.shape)}")
    radius = check_positive(radius, "radius")
    return float(M[1, 0] - M[0, 1]) * math.pi * radius**2
