r"""Gauge freedom: fields that move samples but leave every marginal of the PF-ODE unchanged.

Horvat and Pfister (2024), "On gauge freedom, conservativity and intrinsic dimensionality
estimation in diffusion models". The probability-flow ODE ``dx/dt = f x - 1/2 g^2 s`` transports
p_t by the continuity equation ``d p / dt = -div(p v)``; adding to s any r with
``div(p_t r) = 0`` leaves ``div(p v)``, hence every marginal, unchanged: trajectories move,
distributions do not. Only the conservative part ``grad(phi)`` of the weighted decomposition
(:func:`diffedu.hodge.decompose`) matters for the distribution a sampler transports.

For a Gaussian ``p_t = N(m, C)`` the field ``r = A C^{-1}(x - m) = -A s`` with A antisymmetric is
such a gauge field (:func:`gauge_rotation`); the plain rotation ``A (x - m)`` is one only when C
is isotropic (:func:`plain_rotation`). :func:`affine_flow_moments` pushes a Gaussian's moments
through any affine velocity without samples, and :func:`gauge_flow_summary` uses it to measure
what each rotation does to the final covariance. Lesson 12.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._core import (as_param, check_batch, check_callable, check_coordinates, check_dtype, check_int, check_positive,
                    check_process, check_real, coefs)
from .gaussian import Gaussian, _eigh_psd

__all__ = ["gauge_rotation", "plain_rotation", "rotation_matrix", "linear_gauge_defect",
           "affine_flow_moments", "rotated_scores", "gauge_flow_summary", "gauge_defect"]


# --- gauge fields of a Gaussian and the moments of affine flows -----------------------------
def rotation_matrix(dim: int = 2, plane=(0, 1), dtype=torch.float64) -> torch.Tensor:
    r"""The antisymmetric generator A of rotations in ``plane``: ``A[j, i] = 1, A[i, j] = -1``. (D, D)."""
    dim = check_int(dim, "dim", minimum=2)
    i, j = check_coordinates(plane, "plane", dim, 2)
    A = torch.zeros(dim, dim, dtype=check_dtype(dtype))
    A[j, i], A[i, j] = 1.0, -1.0
    return A


def _check_antisym(A, dim):
    A = as_param(A, "A")
    if A.shape != (dim, dim):
        raise ValueError(f"A must have shape ({dim}, {dim}); got {tuple(A.shape)}")
    if float((A + A.T).abs().max()) > 1e-12 * (1 + float(A.abs().max())):
        raise ValueError("A must be antisymmetric (A^T = -A)")
    return A


def _check_gauss(gaussian, process, strength):
    if not isinstance(gaussian, Gaussian):
        raise TypeError(f"gaussian must be a diffedu.Gaussian; got {type(gaussian).__name__}")
    check_process(process)
    check_real(strength, "strength")


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


def linear_gauge_defect(M, cov) -> float:
    r"""How far the linear field ``r(x) = M x`` is from a gauge field of ``p = N(0, C)``: 0 if it is one.

    ``div(p M x) = p (tr M - x^T C^{-1} M x)`` vanishes for every x exactly when ``K = C^{-1} M``
    is antisymmetric (then ``tr M = tr(C K) = 0`` too). Returns the relative size of K's
    symmetric part, ``max |K + K^T| / max |K|`` (0 for ``M = 0``, the trivial gauge field):
    ``M = A C^{-1}`` with A antisymmetric gives 0; a plain rotation ``M = A`` gives 0 only for
    an isotropic C (lesson 12). M, cov: (D, D), cov positive definite.
    """
    C, M = as_param(cov, "cov"), as_param(M, "M")
    if C.dim() != 2 or C.shape[0] != C.shape[1] or C.shape[0] == 0:
        raise ValueError(f"cov must be a square (D, D) matrix; got shape {tuple(C.shape)}")
    if M.shape != C.shape:
        raise ValueError(f"M must have the shape of cov, {tuple(C.shape)}; got {tuple(M.shape)}")
    if float(_eigh_psd(C, "cov")[1].min()) <= 0:
        raise ValueError("cov must be positive definite (C^{-1} M is used); it is singular")
    K = torch.linalg.solve(C, M)
    size = float(K.abs().max())
    return 0.0 if size == 0 else float((K + K.T).abs().max()) / size


def _check_affine(velocity, m0, t, tol=1e-6):
    """``ValueError`` unless v(x, t) is finite and affine in x around m0 (second differences vanish)."""
    D = m0.shape[0]
    E = torch.eye(D, dtype=torch.float64)
    with torch.no_grad():
        v = velocity(torch.cat([m0[None], m0 + E, m0 + 2 * E, m0 - 3 * E]), t)
    if not isinstance(v, torch.Tensor) or v.shape != (3 * D + 1, D):
        got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"velocity must map (B, {D}) to (B, {D}); got {got}")
    v = v.double()
    if not torch.isfinite(v).all():
        raise ValueError(f"velocity returned NaN or inf at t = {t:g}")
    d1, d2, d3 = v[1:D + 1] - v[0], v[D + 1:2 * D + 1] - v[0], v[2 * D + 1:] - v[0]
    scale = float(d1.abs().max()) + float(v[0].abs().max()) + 1e-300
    bad = max(float((d2 - 2 * d1).abs().max()), float((d3 + 3 * d1).abs().max()))
    if bad > tol * scale:
        raise ValueError(f"velocity must be affine in x (v(x, t) = M(t) x + c(t)): its differences along the "
                         f"coordinates are not linear (relative defect {bad / scale:.2g} at t = {t:g}); "
                         "integrate it with a sampler instead")


def affine_flow_moments(velocity, mean, cov, t_from: float, t_to: float, *, rtol: float = 1e-8,
                        atol: float = 1e-12, max_calls: int = 100_000):
    r"""Push a mean and covariance through an ODE ``dx/dt = v(x, t)`` whose v is affine in x.

    For ``v(x, t) = M(t) x + c(t)`` a Gaussian stays Gaussian and its moments solve
    ``dm/dt = v(m, t)``, ``dC/dt = M C + C M^T`` with ``M = dv/dx`` (unit differences at m,
    exact for an affine v; one batched call of v per step).
    Integrated with scipy's DOP853 at ``rtol``; an independent check of samplers that needs no
    samples. velocity: ``v(x, t)`` (B, D) -> (B, D); mean (D,); cov (D, D). Returns float64
    ``(mean, cov)`` at ``t_to``. The velocity is checked to be finite and affine at ``t_from``,
    and finite at every call; more than ``max_calls`` calls raise ``RuntimeError`` (a stiff or
    diverging moment equation would otherwise run without end).
    """
    from scipy.integrate import solve_ivp

    check_callable(velocity, "velocity")
    m0 = as_param(mean, "mean", (None,))
    if m0.numel() == 0:
        raise ValueError("mean must have at least one entry (D >= 1); got shape (0,)")
    C0 = as_param(cov, "cov", (m0.shape[0], m0.shape[0]))
    _eigh_psd(C0, "cov")
    t_from, t_to = check_real(t_from, "t_from"), check_real(t_to, "t_to")
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    max_calls = check_int(max_calls, "max_calls", minimum=1)
    D = m0.shape[0]
    _check_affine(velocity, m0, t_from)
    calls = 0

    def rhs(t, y):
        nonlocal calls
        calls += 1
        if calls > max_calls:
            raise RuntimeError(f"the moment ODE took more than max_calls = {max_calls} velocity calls between "
                               f"t = {t_from:g} and {t_to:g}: is the velocity stiff there, or not affine?")
        m = torch.from_numpy(y[:D].copy())[None]
        C = torch.from_numpy(y[D:].reshape(D, D).copy())
        with torch.no_grad():                         # v affine: exact differences, one batch
            v = velocity(torch.cat([m, m + torch.eye(D, dtype=m.dtype)]), float(t)).double()
        if not torch.isfinite(v).all():
            raise ValueError(f"velocity returned NaN or inf at t = {float(t):g}")
        dm, M = v[0], (v[1:] - v[0]).T
        dC = M @ C + C @ M.T
        return np.concatenate([dm.numpy(), dC.numpy().reshape(-1)])

    sol = solve_ivp(rhs, (t_from, t_to), np.concatenate([m0.numpy(), C0.numpy().reshape(-1)]),
                    method="DOP853", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"the moment ODE failed: {sol.message}")
    y = torch.from_numpy(sol.y[:, -1])
    C = y[D:].reshape(D, D)
    return y[:D], 0.5 * (C + C.T)


def rotated_scores(gaussian, process, strength: float = 1.0):
    r"""The exact score of a Gaussian and its two rotated versions, as fields and as denoisers.

    Returns ``(scores, denoisers)``, two dicts keyed ``"exact"``, ``"gauge"`` (``s + r`` with r
    the :func:`gauge_rotation`) and ``"plain"`` (``s +`` the :func:`plain_rotation`); each value
    is a field ``f(x, t)`` (B, D) -> (B, D), the denoisers by Tweedie
    (:func:`diffedu.flows.denoiser_from_score`), ready for the samplers.
    """
    from .flows import denoiser_from_score

    gauge = gauge_rotation(gaussian, process, strength)
    plain = plain_rotation(gaussian, process, strength)
    out = {"exact": lambda x, t: gaussian.score(x, t, process),
           "gauge": lambda x, t: gaussian.score(x, t, process) + gauge(x, t),
           "plain": lambda x, t: gaussian.score(x, t, process) + plain(x, t)}
    return out, {k: denoiser_from_score(s, process) for k, s in out.items()}


def gauge_flow_summary(gaussian, process, strength: float = 1.0, *, t_end: float | None = None,
                       rtol: float = 1e-6):
    r"""The final covariance of the PF-ODE run from ``p_T`` with the gauge-rotated and with the
    plainly rotated score, against the exact marginal covariance: no samples needed.

    Each rotated score makes the PF-ODE velocity affine in x (the score of a Gaussian is), so
    :func:`affine_flow_moments` carries ``N(alpha_T m, C_T)`` exactly (to the solver's ``rtol``)
    from ``t_max`` to ``t_end`` (default: where sigma/alpha = 0.02). Returns
    ``{"exact" | "gauge" | "plain": (cov (D, D), relative Frobenius error against the exact
    marginal covariance at t_end)}``: the gauge error is at the solver's tolerance, the plain one
    is not (lesson 12).
    """
    from .flows import pf_ode_velocity

    _check_gauss(gaussian, process, strength)
    rtol = check_positive(rtol, "rtol")
    if t_end is None:
        t_end = float(process.t_of_lam(math.log(50.0)))
    else:
        t_end = check_real(t_end, "t_end")
        process.coefs(t_end, gaussian.mean[None], positive="the flow is integrated from t_max down to t_end > 0",
                      name="t_end")
    T = float(process.t_max)
    exact = gaussian.marginal_cov(t_end, process)
    _, dens = rotated_scores(gaussian, process, strength)
    out = {"exact": (exact, 0.0)}       # the exact flow carries p_T to p_t by construction
    for name in ("gauge", "plain"):
        D = dens[name]
        _, C = affine_flow_moments(lambda x, t, D=D: pf_ode_velocity(D, process, x, t),
                                   gaussian.mean * process.alpha(T), gaussian.marginal_cov(T, process),
                                   T, t_end, rtol=rtol, atol=rtol * 1e-3)
        out[name] = (C, float((C - exact).norm() / exact.norm()))
    return out


def gauge_defect(r, score, x, t) -> torch.Tensor:
    r"""``div(p r) / p = div r + r . grad log p`` at each row of x: (B,). Zero everywhere exactly
    when r is a gauge field of p (adding it to the score leaves every PF-ODE marginal unchanged).

    r, score: fields ``f(x, t)`` (B, D) -> (B, D), score the exact ``grad log p_t``; x: (B, D); t a
    time. ``div r`` by autograd (:func:`diffedu.calculus.divergence`, D backward passes). Dividing
    by p keeps the test meaningful where p is tiny (lesson 12)."""
    from .calculus import divergence

    check_callable(r, "r", "a field r(x, t) -> (B, D)")
    check_callable(score, "score", "a score s(x, t) -> (B, D)")
    x = check_batch(x)
    with torch.no_grad():
        rx, sx = r(x, t), score(x, t)
    for name, v in (("r", rx), ("score", sx)):
        if not isinstance(v, torch.Tensor) or v.shape != x.shape:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"{name} must return a tensor of x's shape {tuple(x.shape)}; got {got}")
    return divergence(lambda y: r(y, t), x).detach() + (rx * sx).sum(1)
