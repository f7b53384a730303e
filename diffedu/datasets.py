r"""Named 2-D data sets for the lessons.

Gaussian mixtures (exact scores, denoisers and marginals for every process, through
:class:`diffedu.mixtures.GaussianMixture`):

* :func:`ring` - K equal Gaussians on a circle (the classic "8 Gaussians");
* :func:`grid_mixture` - an n x n grid of equal Gaussians;
* :func:`two_gaussians` - two anisotropic Gaussians of unequal weight;
* :func:`random_mixture` - K Gaussians with random means and full covariances in D dimensions
  (64 by default).

Samplers only (no closed-form score), each ``f(n, *, generator=None, dtype=None, device=None)
-> (n, 2)``, scaled to roughly unit variance per coordinate:

* :func:`two_moons` - the two interleaved half circles of scikit-learn's ``make_moons``;
* :func:`checkerboard` - uniform on the black squares of a 4 x 4 board on ``[-2, 2]^2``;
* :func:`swiss_roll` - the 2-D swiss roll (scikit-learn's ``make_swiss_roll``, x and z axes).

Higher-dimensional sets: :func:`load_digits`, the 1,797 8x8 handwritten digits shipped in
``data/digits.npz`` (the test set of the UCI "Optical Recognition of Handwritten Digits" data,
Alpaydin and Kaynak 1998, as bundled with scikit-learn; pixels are counts 0..16 of 4x4 blocks of
a 32x32 bitmap; scikit-learn is not needed to load it), and :func:`subspace_gaussian`, a Gaussian
on a random k-dimensional subspace of R^D.

:data:`SAMPLERS` maps each name to a sampler (a mixture's ``.sample``), :func:`sampler` looks
one up.
"""

from __future__ import annotations

import math

from typing import NamedTuple

import numpy as np
import torch

from ._core import check_int, check_n, check_positive, check_real, resolve_device
from ._paths import data_path
from .gaussian import Gaussian
from .mixtures import GaussianMixture

__all__ = ["ring", "grid_mixture", "two_gaussians", "two_moons", "checkerboard", "swiss_roll",
           "SAMPLERS", "sampler", "load_digits", "Digits", "subspace_gaussian", "random_mixture"]


def _positive(name, v):
    return check_positive(v, name)


def _count(name, v, least=1):
    return check_int(v, name, minimum=least)


# --- Gaussian mixtures (exact scores) -----------------------------------------------------
def ring(k: int = 8, radius: float = 2.0, std: float = 0.15) -> GaussianMixture:
    r"""K equal-weight isotropic Gaussians ``N(radius (cos 2 pi j/K, sin 2 pi j/K), std^2 I)``."""
    _count("k", k)
    _positive("radius", radius)
    _positive("std", std)
    ang = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    means = radius * torch.stack([torch.cos(ang), torch.sin(ang)], 1)
    return GaussianMixture(torch.full((k,), 1.0 / k, dtype=torch.float64), means,
                           torch.full((k, 2), std**2, dtype=torch.float64))


def grid_mixture(n: int = 3, spacing: float = 1.5, std: float = 0.15) -> GaussianMixture:
    r"""n x n equal Gaussians centred on ``spacing * (i - (n-1)/2, j - (n-1)/2)``, variance ``std^2 I``."""
    _count("n", n)
    _positive("spacing", spacing)
    _positive("std", std)
    c = spacing * (torch.arange(n, dtype=torch.float64) - (n - 1) / 2)
    means = torch.cartesian_prod(c, c)
    return GaussianMixture(torch.full((n * n,), 1.0 / (n * n), dtype=torch.float64), means,
                           torch.full((n * n, 2), std**2, dtype=torch.float64))


def random_mixture(K: int = 8, D: int = 64, *, seed: int = 0) -> GaussianMixture:
    r"""K equal-weight Gaussians in D dimensions with random means and full covariances, from ``seed``.

    ``mu_k = 6 z_k / sqrt(D)`` and ``Sigma_k = 0.3 A_k A_k^T + 0.02 I`` with z_k, and A_k's entries,
    standard normal (A_k divided by sqrt(D)), drawn in that order in float64: modes a few
    standard deviations apart, each with an anisotropic spectrum. The defaults are the 64-D
    mixture of ``benchmarks/samplers.py accuracy`` and of lesson 17.
    """
    K, D = _count("K", K), _count("D", D)
    g = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    means = 3 * torch.randn(K, D, generator=g, dtype=torch.float64) / math.sqrt(D) * 2
    A = torch.randn(K, D, D, generator=g, dtype=torch.float64) / math.sqrt(D)
    covs = 0.3 * A @ A.transpose(1, 2) + 0.02 * torch.eye(D, dtype=torch.float64)
    return GaussianMixture(torch.full((K,), 1.0 / K, dtype=torch.float64), means, covs)


def two_gaussians() -> GaussianMixture:
    """Two anisotropic Gaussians, weights 0.3 / 0.7: a small asymmetric 2-D test case."""
    return GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]],
                           [[[0.3, 0.15], [0.15, 0.2]], [[0.1, 0.0], [0.0, 0.4]]])


# --- samplers only ------------------------------------------------------------------------
def _uniform(n, generator, dtype, device):
    return torch.rand(n, generator=generator, dtype=dtype, device=device)


def _normal(shape, generator, dtype, device):
    return torch.randn(shape, generator=generator, dtype=dtype, device=device)


def two_moons(n: int, *, noise: float = 0.05, generator=None, dtype=None, device=None) -> torch.Tensor:
    r"""Two interleaved half circles (as scikit-learn's ``make_moons``), centred and scaled: (n, 2).

    Upper moon ``(cos u, sin u)``, lower moon ``(1 - cos u, 1/2 - sin u)``, u uniform on
    ``[0, pi]``, each point in either moon with probability 1/2; then Gaussian noise of standard
    deviation ``noise``, the shift ``(-1/2, -1/4)`` and a factor 2 (unit scale per coordinate)."""
    device, dtype = resolve_device(generator, device, dtype)
    n = check_n(n)
    noise = check_real(noise, "noise", minimum=0.0)
    u = math.pi * _uniform(n, generator, dtype, device)
    lower = _uniform(n, generator, dtype, device) < 0.5
    x = torch.where(lower, 1 - torch.cos(u), torch.cos(u))
    y = torch.where(lower, 0.5 - torch.sin(u), torch.sin(u))
    pts = torch.stack([x, y], 1) + noise * _normal((n, 2), generator, dtype, device)
    return 2 * (pts - pts.new_tensor([0.5, 0.25]))


def checkerboard(n: int, *, squares: int = 4, half_width: float = 2.0, generator=None, dtype=None,
                 device=None) -> torch.Tensor:
    r"""Uniform on the squares (i, j) with i + j even of a ``squares x squares`` board on
    ``[-half_width, half_width]^2``: (n, 2). The black square is drawn by its index, without
    listing the board (``squares`` up to 10^6)."""
    device, dtype = resolve_device(generator, device, dtype)
    n = check_n(n)
    check_int(squares, "squares", minimum=2, maximum=10**6)
    _positive("half_width", half_width)
    s = squares
    k = torch.randint((s * s + 1) // 2, (n,), generator=generator, device=device)  # a black cell, uniformly
    if s % 2:  # odd s: (i + j) even exactly when the row-major index i s + j is even
        i, j = (2 * k) // s, (2 * k) % s
    else:      # even s: s/2 black cells per row, at the columns of the row's parity
        i, j = k // (s // 2), 2 * (k % (s // 2)) + (k // (s // 2)) % 2
    ij = torch.stack([i, j], 1).to(dtype)
    off = torch.stack([_uniform(n, generator, dtype, device), _uniform(n, generator, dtype, device)], 1)
    w = 2 * half_width / squares
    return -half_width + w * (ij + off)


def swiss_roll(n: int, *, noise: float = 0.05, generator=None, dtype=None, device=None) -> torch.Tensor:
    r"""2-D swiss roll: ``u (cos u, sin u) / 5`` with ``u = 3 pi / 2 (1 + 2 v)``, v uniform on [0, 1],
    plus Gaussian noise of standard deviation ``noise``: (n, 2). (scikit-learn's
    ``make_swiss_roll`` keeps x and z; the factor 1/5 gives roughly unit scale.)"""
    device, dtype = resolve_device(generator, device, dtype)
    n = check_n(n)
    noise = check_real(noise, "noise", minimum=0.0)
    u = 1.5 * math.pi * (1 + 2 * _uniform(n, generator, dtype, device))
    pts = torch.stack([u * torch.cos(u), u * torch.sin(u)], 1) / 5
    return pts + noise * _normal((n, 2), generator, dtype, device)


SAMPLERS = {
    "ring": lambda n, **kw: ring().sample(n, **kw),
    "grid": lambda n, **kw: grid_mixture().sample(n, **kw),
    "two_gaussians": lambda n, **kw: two_gaussians().sample(n, **kw),
    "two_moons": two_moons,
    "checkerboard": checkerboard,
    "swiss_roll": swiss_roll,
}


def sampler(name: str):
    """The sampler ``f(n, *, generator=None, dtype=None, device=None) -> (n, 2)`` of a named set."""
    if name not in SAMPLERS:
        raise ValueError(f"name must be one of {sorted(SAMPLERS)}; got {name!r}")
    return SAMPLERS[name]


# --- higher-dimensional sets --------------------------------------------------------------
class Digits(NamedTuple):
    """images: (1797, 64) floating, pixel / 16 in [0, 1], row-major 8x8; labels: (1797,) long."""

    images: torch.Tensor
    labels: torch.Tensor


def load_digits(*, dtype: torch.dtype = torch.float32) -> Digits:
    """The 1,797 digits as flattened images (B, D) = (1797, 64) in [0, 1], and their labels."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype; got {dtype!r}")
    with np.load(data_path("digits.npz")) as z:
        images, labels = z["images"], z["labels"]
    return Digits(torch.as_tensor(images.astype(np.float64) / 16.0).to(dtype),
                  torch.as_tensor(labels.astype(np.int64)))


def subspace_gaussian(D: int, k: int, *, seed: int = 0, scale: float = 1.0) -> Gaussian:
    r"""A Gaussian on a random k-dimensional subspace of R^D: ``N(0, F F^T)`` with F (D, k).

    F's columns are an orthonormal basis drawn from ``seed`` (QR of a Gaussian matrix) scaled by
    ``scale * linspace(1, 0.5, k)``, so the tangent variances are of order ``scale^2`` and
    distinct. Data on a linear manifold of dimension k (lesson 13).
    """
    D, k = check_int(D, "D", minimum=1), check_int(k, "k", minimum=1)
    if k > D:
        raise ValueError(f"k must be at most D = {D}; got {k}")
    g = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    scale = check_positive(scale, "scale")
    Q, _ = torch.linalg.qr(torch.randn(D, k, generator=g, dtype=torch.float64))
    s = scale * torch.linspace(1.0, 0.5, k, dtype=torch.float64)
    return Gaussian.low_rank(torch.zeros(D, dtype=torch.float64), Q * s)
