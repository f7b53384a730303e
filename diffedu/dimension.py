r"""The intrinsic dimension of the data manifold, read from the score's Jacobian.

Stanczuk et al. (2024), "Your diffusion model secretly knows the dimension of the data
manifold". Near data on a k-dimensional manifold, at small noise the score points back to the
manifold: ``s(x, t) ~ -(x - alpha_t proj(x)) / sigma_t^2``, so the score Jacobian has D - k
singular values near ``1 / sigma_t^2`` (normal directions) and k much smaller ones (tangent).
:func:`intrinsic_dimension` finds the largest gap of the normalised spectrum over *every*
position, including the one below the top (co-dimension 1, a hyperplane), the one above it
(full dimension) and the one below the bottom (dimension 0, a point mass). Lesson 13.

:func:`mle_dimension` is a standard estimator from outside the score world, for comparison:
Levina and Bickel's maximum-likelihood estimator from nearest-neighbour distances (written here:
it is a few lines of ``torch.cdist``; the packaged versions, scikit-dimension's ``MLE``, would add
a dependency and scikit-learn for one formula).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._core import check_batch, check_callable, check_choice, check_int, check_output, check_process, coefs
from .calculus import jacobian

__all__ = ["DimensionEstimate", "normalised_spectrum", "dimension_from_spectrum", "intrinsic_dimension",
           "normal_space_angles", "mle_dimension"]


# --- intrinsic dimension ---------------------------------------------------------------------
@dataclass(frozen=True)
class DimensionEstimate:
    r"""Result of :func:`intrinsic_dimension`.

    dim: the estimate (the most common per-point estimate); dims (B,) long: per point;
    spectra (B, D): normalised singular values mu, descending (about 1 in normal directions,
    about ``sigma_t^2 / (alpha_t^2 lambda)`` in a tangent direction of variance lambda); gaps
    (B, D + 1): ``mu_{i-1} - mu_i`` for i = 1..D + 1 with ``mu_0 = 1`` the normal-direction level
    and ``mu_{D+1} = 0`` the tangent level, so the largest gap at i = D - k + 1 marks dimension k
    (k = 0 when all D directions are normal). Gaps are taken on the linear scale: tangent
    values spread over decades (one per tangent variance), which a log scale would mistake for
    gaps.
    """

    dim: int
    dims: torch.Tensor
    spectra: torch.Tensor
    gaps: torch.Tensor


def dimension_from_spectrum(spectrum):
    r"""Dimension estimates from normalised spectra (B, D), descending: ``(dims (B,), gaps (B, D + 1))``.

    The normal directions sit near 1, the tangent ones near 0. Every position is a candidate:
    with the two reference levels ``mu_0 = 1`` prepended and ``mu_{D+1} = 0`` appended, gap i
    (i = 1..D + 1) is ``mu_{i-1} - mu_i``; the largest gap at i leaves i - 1 normal directions above
    it, so the estimate is ``k = D - i + 1``. Gap 1 (from the upper reference to the top value) wins
    for full-dimensional data (k = D), gap 2 for a hyperplane (k = D - 1), and gap D + 1 (from the
    bottom value to the lower reference) for a point mass, where every direction is normal (k = 0).
    """
    mu = check_batch(spectrum, name="spectrum").to(torch.float64)
    padded = torch.cat([torch.ones_like(mu[:, :1]), mu, torch.zeros_like(mu[:, :1])], 1)
    gaps = padded[:, :-1] - padded[:, 1:]                             # (B, D + 1)
    n_normal = torch.argmax(gaps, 1)                                  # 0..D
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
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one point (B >= 1); got shape (0, D)")
    check_process(process)
    check_callable(score, "score")
    check_choice(method, "method", ("jacobian", "scores"))
    B, D = x.shape
    if isinstance(t, torch.Tensor) and t.dim() == 1:
        raise ValueError("t must be one time (a float or a 0-d tensor) for a spectrum; got a (B,) tensor")
    a, s = coefs(process, t, x, positive="the spectrum is scaled by sigma_t^2, 0 at t = 0 (a small t > 0 is meant)")
    if method == "jacobian":
        J = jacobian(lambda y: check_output(score(y, t), y, "score"), a * x)
        return torch.linalg.svdvals(J.detach()) * s**2
    if method == "scores":
        P = 4 * D if n_probes is None else check_int(n_probes, f"n_probes (scores per point, >= D = {D})", minimum=D)
        eps = torch.randn((B, P, D), generator=generator, dtype=x.dtype, device=x.device)
        pts = (a * x)[:, None, :] + s * eps
        with torch.no_grad():
            flat = pts.reshape(B * P, D)
            S = check_output(score(flat, t), flat, "score").reshape(B, P, D)
        return torch.linalg.svdvals(S) * s / math.sqrt(P)


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


def normal_space_angles(score, x, t, process, normals) -> tuple[torch.Tensor, torch.Tensor]:
    r"""How well the score Jacobian's leading singular vectors find a known normal space: angles in degrees.

    x: (B, D) points on the data; normals: (B, D) unit normals (co-dimension 1) or (B, D, m)
    orthonormal bases of the true normal space at x. With ``J = U S V^T`` the score Jacobian at
    ``alpha_t x`` (:func:`normalised_spectrum`'s first method), the m leading left singular vectors
    ``U_m`` (the directions the score's output moves along) and right ones ``V_m`` (the input
    directions it responds to most) each span an estimate of the normal space; the largest
    principal angle between that span and the true one is ``arccos`` of the smallest singular value
    of ``N^T U_m`` (Bjorck and Golub 1973). For a gradient field J is symmetric and both estimates
    coincide; an antisymmetric part turns them apart (Horvat and Pfister 2024: conservativity is
    what makes the Jacobian's eigenspaces carry the manifold's local geometry). Returns
    ``(left (B,), right (B,))`` in degrees.
    """
    x = check_batch(x)
    B, D = x.shape
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one point (B >= 1); got shape (0, D)")
    check_process(process)
    check_callable(score, "score")
    if not isinstance(normals, torch.Tensor):
        raise TypeError(f"normals must be a torch.Tensor; got {type(normals).__name__}")
    N = normals.to(x.dtype)
    if N.dim() == 2:
        N = N[:, :, None]
    if N.dim() != 3 or N.shape[:2] != (B, D) or not 1 <= N.shape[2] <= D:
        raise ValueError(f"normals must have shape (B, D) = ({B}, {D}) or (B, D, m) with 1 <= m <= D; "
                         f"got {tuple(normals.shape)}")
    if not torch.isfinite(N).all():
        raise ValueError("normals must be finite")
    a, s = coefs(process, t, x, positive="the Jacobian is read at small noise, sigma_t > 0 (a small t > 0 is meant)")
    J = jacobian(lambda y: check_output(score(y, t), y, "score"), a * x).detach()
    U, _, Vh = torch.linalg.svd(J)
    m = N.shape[2]

    def angle(E):
        c = torch.linalg.svdvals(N.transpose(1, 2) @ E[:, :, :m])[:, -1].clamp(max=1.0)
        return torch.rad2deg(torch.arccos(c))

    return angle(U), angle(Vh.transpose(1, 2))


def mle_dimension(x, k: int = 10, *, reference=None) -> tuple[float, torch.Tensor]:
    r"""Levina and Bickel's maximum-likelihood dimension estimate from nearest-neighbour distances.

    x: (B, D) points at which to estimate; reference: the (M, D) sample whose neighbours are used
    (default x itself, each point's own zero distance dropped). With ``T_j(x)`` the distance to the
    j-th nearest neighbour,

        m_k(x) = [ 1/(k - 1) sum_{j=1}^{k-1} log(T_k(x) / T_j(x)) ]^{-1}

    (Levina and Bickel 2004, "Maximum likelihood estimation of intrinsic dimension", eq. 8, with
    the unbiased k - 1 normalisation), and the global estimate averages the inverses,
    ``[mean_x 1/m_k(x)]^{-1}`` (MacKay and Ghahramani's correction). Returns ``(estimate, m_k (B,))``.
    It underestimates in high intrinsic dimension at a fixed sample size (the neighbourhoods are
    not small then). Points with a repeated neighbour (distance 0) give NaN.
    """
    x = check_batch(x)
    k = check_int(k, "k", minimum=2)
    ref = x if reference is None else check_batch(reference, x.shape[1], name="reference")
    self_ref = reference is None
    if ref.shape[0] < k + int(self_ref):
        raise ValueError(f"reference must hold at least k{' + 1' if self_ref else ''} = {k + int(self_ref)} "
                         f"points; got {ref.shape[0]}")
    d = torch.cdist(x.double(), ref.double())
    T = torch.topk(d, k + int(self_ref), dim=1, largest=False).values[:, int(self_ref):]   # (B, k)
    logs = torch.log(T[:, -1:] / T[:, :-1])                                                 # (B, k - 1)
    inv = logs.mean(1)
    m = 1.0 / inv
    return float(1.0 / inv.mean()), m
