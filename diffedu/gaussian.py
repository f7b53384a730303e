r"""Gaussian data: exact marginals, score, Tweedie denoiser and the exact probability-flow map.

For ``p_0 = N(mu, Sigma)`` with ``Sigma = U diag(lambda_k) U^T`` the forward marginal is

    p_t = N(alpha_t mu, alpha_t^2 Sigma + sigma_t^2 I),

so each eigen-mode ``k`` has variance ``v_k(t) = alpha_t^2 lambda_k + sigma_t^2`` and

    score(x, t)    = -U diag(1 / v_k) U^T (x - alpha_t mu),
    denoiser(x, t) = mu + U diag(alpha_t lambda_k / v_k) U^T (x - alpha_t mu).

Lesson 02 derives these. The covariance is stored in *thin eigen form*: an orthonormal basis
``U`` (D, r) with eigenvalues ``ev`` (r,), and one variance ``iso`` for the orthogonal
complement (unused when r = D). Full, diagonal and low-rank-plus-noise covariances all fit this
form, and :class:`~diffedu.mixtures.GaussianMixture` and
:class:`~diffedu.mixtures.LowRankMixture` use the same machinery with K components.
"""

from __future__ import annotations

import math

import torch

from ._core import (Distribution, as_param, as_real_tensor, as_times, check_batch, check_int, check_n,
                    check_positive, check_process, check_real, coefs, resolve_device)

__all__ = ["Gaussian", "fit_gaussian", "rotated_2d", "decision_time", "cov_ellipse"]


def _eigh_psd(cov: torch.Tensor, name: str):
    """Eigendecomposition of a symmetric positive semi-definite (.., D, D) matrix."""
    scale = float(cov.abs().max()) if cov.numel() else 0.0
    if not torch.allclose(cov, cov.transpose(-1, -2), atol=1e-10 * max(scale, 1.0), rtol=1e-8):
        raise ValueError(f"{name} must be symmetric; got max |C - C^T| = "
                         f"{float((cov - cov.transpose(-1, -2)).abs().max()):.3g}")
    ev, U = torch.linalg.eigh(0.5 * (cov + cov.transpose(-1, -2)))
    tol = 1e-10 * max(scale, 1.0)
    if (ev < -tol).any():
        raise ValueError(f"{name} must be positive semi-definite; got eigenvalue {float(ev.min()):.3g}")
    return U, ev.clamp_min(0)


def _check_mean(mean, name="mean"):
    mean = as_param(mean, name, (None,))
    if mean.numel() == 0:
        raise ValueError(f"{name} must have at least one entry (the dimension D >= 1); got shape (0,)")
    return mean


def _check_measurement(A, y, noise_std, D: int):
    r"""Validate a linear measurement ``y = A x + noise_std * n`` of x in R^D, n ~ N(0, I).

    A: (m, D) array-like; y: (m,) array-like, one measurement (a batch of them is refused:
    condition on each separately); noise_std: a positive number. Returns float64 ``(A, y, s)``.
    """
    A = as_param(A, "A", (None, D))
    if A.shape[0] == 0:
        raise ValueError(f"A must have at least one row (m >= 1 measurements); got shape {tuple(A.shape)}")
    y = as_param(y, "y")
    if y.dim() == 2:
        raise ValueError(f"y must be one measurement of shape ({A.shape[0]},); got a batch of shape "
                         f"{tuple(y.shape)}: condition on each y separately")
    if y.shape != (A.shape[0],):
        raise ValueError(f"y must have shape ({A.shape[0]},) to match A's {A.shape[0]} rows; got {tuple(y.shape)}")
    return A, y, check_positive(noise_std, "noise_std")


def _condition_linear(mean, cov, A, y, s):
    r"""Gaussian conditioning of ``x ~ N(mean, cov)`` on ``y = A x + s n``: (mean', cov', log p(y)).

    mean (.., D), cov (.., D, D) float64 (a batch of K components is conditioned at once).
    ``S = A C A^T + s^2 I``, the gain ``G = C A^T S^{-1}``, then

        mean' = mean + G (y - A mean),   cov' = (I - G A) C (I - G A)^T + s^2 G G^T

    (Joseph's form of ``C - G A C``: symmetric and PSD to rounding), and the evidence
    ``log p(y) = log N(y; A mean, S)`` (Bishop 2006, eqs. 2.113-2.117; Kalman's update).
    """
    m, D = A.shape
    S = A @ cov @ A.T + s * s * torch.eye(m, dtype=cov.dtype)
    L = torch.linalg.cholesky(0.5 * (S + S.transpose(-1, -2)))
    G = torch.cholesky_solve(A @ cov, L).transpose(-1, -2)          # C A^T S^{-1}: S, C symmetric
    r = y - mean @ A.T                                               # (.., m)
    mean_post = mean + (G @ r[..., None])[..., 0]
    I_GA = torch.eye(D, dtype=cov.dtype) - G @ A
    cov_post = I_GA @ cov @ I_GA.transpose(-1, -2) + s * s * G @ G.transpose(-1, -2)
    z = torch.linalg.solve_triangular(L, r[..., None], upper=False)[..., 0]
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    log_ev = -0.5 * ((z**2).sum(-1) + logdet + m * math.log(2 * math.pi))
    return mean_post, 0.5 * (cov_post + cov_post.transpose(-1, -2)), log_ev


class _Components:
    """K Gaussian components in thin eigen form, with per-(dtype, device) cached copies.

    mean (K, D), U (K, D, r) orthonormal columns, ev (K, r) >= 0, iso (K,) >= 0.
    """

    def __init__(self, mean, U, ev, iso):
        self.mean, self.U, self.ev, self.iso = mean, U, ev, iso
        self.K, self.D, self.r = U.shape
        self.full = self.r == self.D
        #: some covariance is singular, so p_0 has no density and t = 0 is excluded
        self.singular = bool((ev == 0).any() or (not self.full and (iso == 0).any()))
        self._cache: dict = {}

    def params(self, x: torch.Tensor):
        key = (x.dtype, x.device)
        if key not in self._cache:
            self._cache[key] = tuple(p.to(dtype=x.dtype, device=x.device)
                                     for p in (self.mean, self.U, self.ev, self.iso))
        return self._cache[key]

    def cov(self) -> torch.Tensor:
        C = torch.einsum("kdr,kr,ker->kde", self.U, self.ev, self.U)
        if not self.full:
            eye = torch.eye(self.D, dtype=C.dtype)
            P = eye - torch.einsum("kdr,ker->kde", self.U, self.U)
            C = C + self.iso[:, None, None] * P
        return C

    def terms(self, x, a, s):
        """Per-component pieces at (x, t): centred y, eigen-coordinates z, variances.

        a, s: () or (B, 1). Returns y (B, K, D), z (B, K, r), var (.., K, r), y_perp and
        var_c (None when r = D)."""
        mean, U, ev, iso = self.params(x)
        if a.dim():
            a, s = a[..., None], s[..., None]  # (B, 1, 1)
        y = x[:, None, :] - a * mean
        z = torch.einsum("bkd,kdr->bkr", y, U)
        var = a**2 * ev + s**2
        if self.full:
            return a, y, z, var, None, None
        y_perp = y - torch.einsum("bkr,kdr->bkd", z, U)
        var_c = a**2 * iso[:, None] + s**2
        return a, y, z, var, y_perp, var_c

    def log_normal(self, x, a, s):
        """log N(x; alpha mu_k, alpha^2 Sigma_k + sigma^2 I) for every k: (B, K)."""
        return self.score_and_denoiser(x, a, s, want_score=False, want_denoiser=False)[0]

    def score_and_denoiser(self, x, a, s, want_score=True, want_denoiser=True):
        """Per-component scores and denoisers (B, K, D), plus log N (B, K)."""
        mean, U, ev, iso = self.params(x)
        a3, _, z, var, y_perp, var_c = self.terms(x, a, s)
        var_e = var.expand(z.shape)
        logn = torch.log(2 * math.pi * var_e).sum(-1) + (z**2 / var_e).sum(-1)
        if y_perp is not None:
            vc = var_c.expand(*z.shape[:2], 1)[..., 0]
            logn = logn + (self.D - self.r) * torch.log(2 * math.pi * vc) + (y_perp**2).sum(-1) / vc
        sc = den = None
        if want_score:
            sc = -torch.einsum("bkr,kdr->bkd", z / var, U)
            if y_perp is not None:
                sc = sc - y_perp / var_c
        if want_denoiser:
            den = mean + torch.einsum("bkr,kdr->bkd", a3 * ev * z / var, U)
            if y_perp is not None:
                den = den + (a3 * iso[:, None] / var_c) * y_perp
        return -0.5 * logn, sc, den

    def sample(self, n, generator, dtype, device):
        """n draws from each component's N(mean_k, Sigma_k): (n, K, D)."""
        mean, U, ev, iso = (p.to(dtype=dtype, device=device)
                            for p in (self.mean, self.U, self.ev, self.iso))
        zr = torch.randn((n, self.K, self.r), generator=generator, dtype=dtype, device=device)
        out = mean + torch.einsum("nkr,kdr->nkd", zr * ev.sqrt(), U)
        if not self.full:
            zd = torch.randn((n, self.K, self.D), generator=generator, dtype=dtype, device=device)
            zd = zd - torch.einsum("nkr,kdr->nkd", torch.einsum("nkd,kdr->nkr", zd, U), U)
            out = out + iso.sqrt()[:, None] * zd
        return out


class Gaussian(Distribution):
    r"""Gaussian data distribution ``N(mean, cov)``, eigendecomposed once.

    Parameters
    ----------
    mean : (D,) array-like
    cov : (D, D) symmetric positive semi-definite matrix, or (D,) diagonal variances.
        For a low-rank-plus-noise covariance ``F F^T + noise I`` use :meth:`low_rank`.

    Every method computes in the dtype and on the device of its input ``x``.
    """

    def __init__(self, mean, cov):
        mean = _check_mean(mean)
        D = mean.shape[0]
        cov = as_param(cov, "cov")
        if cov.shape == (D,):
            if (cov < 0).any():
                raise ValueError(f"cov (diagonal variances) must be non-negative; got {float(cov.min())}")
            U, ev = torch.eye(D, dtype=torch.float64), cov
        elif cov.shape == (D, D):
            U, ev = _eigh_psd(cov, "cov")
        else:
            raise ValueError(f"cov must have shape ({D}, {D}) or ({D},) to match mean; got {tuple(cov.shape)}")
        self._init(mean, U, ev, torch.zeros(()))

    def _init(self, mean, U, ev, iso):
        self._c = _Components(mean[None], U[None], ev[None], iso.reshape(1))
        self.dim = mean.shape[0]

    @classmethod
    def low_rank(cls, mean, factor, noise: float = 0.0) -> "Gaussian":
        r"""``N(mean, F F^T + noise I)`` with ``F`` (D, r), stored in thin form (no D x D matrix).

        ``noise = 0`` gives a degenerate Gaussian on an r-dimensional affine subspace; its
        density and denoiser are then defined only for t > 0."""
        mean = _check_mean(mean)
        F = as_param(factor, "factor", (mean.shape[0], None))
        noise = check_real(noise, "noise", minimum=0.0)
        U, S, _ = torch.linalg.svd(F, full_matrices=False)
        self = cls.__new__(cls)
        self._init(mean, U, S**2 + noise, torch.as_tensor(float(noise), dtype=torch.float64))
        return self

    # --- parameters ------------------------------------------------------------------------
    @property
    def mean(self) -> torch.Tensor:
        """(D,) float64."""
        return self._c.mean[0]

    @property
    def cov(self) -> torch.Tensor:
        """(D, D) float64, rebuilt from the eigen form."""
        return self._c.cov()[0]

    @property
    def eigvals(self) -> torch.Tensor:
        """Eigenvalues (r,) of the covariance in the stored basis, float64."""
        return self._c.ev[0]

    @property
    def eigvecs(self) -> torch.Tensor:
        """Orthonormal eigenvectors (D, r), float64."""
        return self._c.U[0]

    def __repr__(self):
        return f"Gaussian(dim={self.dim}, rank={self._c.r})"

    # --- the interface ----------------------------------------------------------------------
    def sample(self, n, *, generator=None, dtype=None, device=None):
        """n draws from ``N(mean, cov)``: (n, D)."""
        device, dtype = resolve_device(generator, device, dtype)
        return self._c.sample(check_n(n), generator, dtype, device)[:, 0]

    def marginal_cov(self, t, process) -> torch.Tensor:
        """Covariance ``alpha_t^2 Sigma + sigma_t^2 I`` of p_t, float64 (D, D)."""
        a, s = coefs(process, t, self.mean[None])
        return a**2 * self.cov + s**2 * torch.eye(self.dim, dtype=torch.float64)

    def log_prob(self, x, t, process):
        """``log p_t(x)``: (B,)."""
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x, positive=self._c.singular)
        return self._c.log_normal(x, a, s)[:, 0]

    def score(self, x, t, process):
        """``grad log p_t(x) = -(alpha^2 Sigma + sigma^2 I)^{-1} (x - alpha mu)``: (B, D)."""
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x, positive=self._c.singular)
        return self._c.score_and_denoiser(x, a, s, want_denoiser=False)[1][:, 0]

    def denoiser(self, x, t, process):
        """Tweedie posterior mean ``mu + Sigma alpha (alpha^2 Sigma + sigma^2 I)^{-1} (x - alpha mu)``."""
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x, positive=self._c.singular)
        return self._c.score_and_denoiser(x, a, s, want_score=False)[2][:, 0]

    def condition(self, A, y, noise_std) -> "Gaussian":
        r"""The exact posterior of x_0 given one linear measurement ``y = A x_0 + noise_std n``, n ~ N(0, I).

        A: (m, D); y: (m,); noise_std > 0. The posterior is Gaussian,
        ``N(mu + G (y - A mu), (I - G A) Sigma)`` with ``G = Sigma A^T (A Sigma A^T + s^2 I)^{-1}``
        (Bishop 2006, eqs. 2.113-2.117), so its score, denoiser and flow are exact at every t
        (lesson 16). A batch of y is refused: condition on each y separately.
        """
        A, y, s = _check_measurement(A, y, noise_std, self.dim)
        mean, cov, _ = _condition_linear(self.mean, self.cov, A, y, s)
        return Gaussian(mean, cov)

    def flow(self, x, t_from, t_to, process):
        r"""Exact probability-flow ODE map from ``t_from`` to ``t_to`` (either direction).

        Each eigen-mode of ``x - alpha mu`` scales by ``sqrt(v_k(t_to) / v_k(t_from))``
        about the moving mean ``alpha_t mu``, with ``v_k(t) = alpha_t^2 lambda_k + sigma_t^2``:
        high-variance modes are decided first ("outline first, details later"; lesson 02).
        ``t_from``/``t_to`` are floats, 0-d or (B,) tensors. x: (B, D) -> (B, D).
        """
        x = check_batch(x, self.dim)
        a0, s0 = coefs(process, t_from, x, positive=self._c.singular, name="t_from")
        a1, s1 = coefs(process, t_to, x, name="t_to")
        mean, U, ev, iso = (p[0] for p in self._c.params(x))
        y = x - a0 * mean
        z = y @ U
        scale = torch.sqrt((a1**2 * ev + s1**2) / (a0**2 * ev + s0**2))
        out = a1 * mean + (z * scale) @ U.T
        if not self._c.full:
            scale_c = torch.sqrt((a1**2 * iso + s1**2) / (a0**2 * iso + s0**2))
            out = out + scale_c * (y - z @ U.T)
        return out

    def flow_path(self, x, ts, process) -> torch.Tensor:
        r"""The exact PF-ODE path of each row of x: ``flow(x, ts[0], ts[k])`` for every k.

        x: (B, D) at ``ts[0]``; ts: (N+1,) times (any order, each where the flow is defined).
        Returns (N+1, B, D), a trajectory in the samplers' layout, computed without time
        stepping (each point is the exact map, :meth:`flow`).
        """
        ts = as_times(ts)
        check_process(process).check_t(ts, "ts")
        t0 = float(ts[0])
        return torch.stack([self.flow(x, t0, float(t), process) for t in ts])

    def flow_gains(self, t_from, t_to, process) -> torch.Tensor:
        r"""How the exact flow from ``t_from`` to ``t_to`` scales each eigen-mode: (r,) float64.

        :meth:`flow` is affine in x with Jacobian ``U diag(gain_k) U^T`` (plus ``gain_iso`` on the
        complement of U for a thin form), ``gain_k = sqrt(v_k(t_to) / v_k(t_from))``,
        ``v_k(t) = alpha_t^2 lambda_k + sigma_t^2`` (lesson 02, eq. 3). So a perturbation
        ``delta`` of x at ``t_from`` changes the end point by ``U diag(gain) U^T delta``, whatever
        x is. Eigenvalues in :attr:`eigvals` order.
        """
        return self._gains(t_from, t_to, process)[0]

    def _gains(self, t_from, t_to, process):
        """(gains (r,), complement gain (0-d)) float64 of :meth:`flow_gains`."""
        ref = self.mean[None]
        a0, s0 = coefs(process, t_from, ref, positive=self._c.singular, name="t_from")
        a1, s1 = coefs(process, t_to, ref, name="t_to")
        if a0.dim() or a1.dim():
            raise ValueError("t_from and t_to must be single times (floats or 0-d tensors)")
        ev, iso = self.eigvals, self._c.iso[0]
        return (torch.sqrt((a1**2 * ev + s1**2) / (a0**2 * ev + s0**2)),
                torch.sqrt((a1**2 * iso + s1**2) / (a0**2 * iso + s0**2)))

    def _leading(self, k):
        """The k leading eigenvectors (largest eigenvalues first): (D, k) float64."""
        k = check_int(k, "k", minimum=1, maximum=self._c.r)
        order = torch.argsort(self.eigvals, descending=True, stable=True)[:k]
        return self.eigvecs[:, order], order

    def leading_share(self, v, k: int) -> torch.Tensor:
        r"""The share of each row's squared length in the span of the k leading principal directions.

        v: (B, D). Returns (B,) float64 ``|U_k^T v_b|^2 / |v_b|^2``, U_k the eigenvectors of the k
        largest eigenvalues (ties in the stored order). For images these directions carry the
        coarse shape (lesson 02 calls them the outline); an isotropic v has share k / D on average.
        """
        v = check_batch(v, self.dim, name="v").to(torch.float64)
        Uk, _ = self._leading(k)
        norm2 = (v**2).sum(1)
        if (norm2 == 0).any():
            raise ValueError("v must have no zero row (its share is undefined)")
        return ((v @ Uk) ** 2).sum(1) / norm2

    def perturbation_share(self, t_from, t_to, process, k: int) -> torch.Tensor:
        r"""The share of an isotropic perturbation's effect that lies in the k leading directions.

        A perturbation ``delta`` with ``E[delta delta^T] = c I`` of x at ``t_from``, carried to
        ``t_to`` by the exact flow, changes the end point by ``U diag(gain) U^T delta``
        (:meth:`flow_gains`), whose expected squared length is ``c sum_k gain_k^2``. Returns the
        0-d float64 ratio ``sum_{k leading} gain_k^2 / sum_all gain_k^2`` (the complement of a
        thin form counts D - r times with its own gain): ``E|P_k Delta|^2 / E|Delta|^2``.
        Perturbed at high noise, the change follows the data's leading directions (gain_k grows
        with lambda_k); perturbed at low noise, a mode already visible in x_t passes unchanged
        while the others are shrunk, so the change spreads over all directions (lesson 02).
        """
        gains, g_iso = self._gains(t_from, t_to, process)
        _, order = self._leading(k)
        total = (gains**2).sum()
        if not self._c.full:  # a full form has no complement (its gain is 0/0 at t_from = 0)
            total = total + (self.dim - self._c.r) * g_iso**2
        if not total > 0:  # every gain 0: a law of zero covariance, carried to t_to = 0
            raise ValueError("the exact flow to t_to maps every x to the mean (this law has zero covariance and "
                             "t_to = 0): a perturbation has no effect to share; take t_to > 0")
        return (gains[order] ** 2).sum() / total

    def signal_fraction(self, t, process) -> torch.Tensor:
        r"""The share of each eigen-mode's variance in x_t that comes from the data: (K,) float64.

        Along eigenvector k of the covariance, ``x_t = alpha_t x_0 + sigma_t eps`` has variance
        ``alpha_t^2 lambda_k + sigma_t^2``, of which ``alpha_t^2 lambda_k`` is signal:
        ``alpha_t^2 lambda_k / (alpha_t^2 lambda_k + sigma_t^2)``, which crosses 1/2 where
        ``(sigma_t / alpha_t)^2 = lambda_k``. High-variance modes carry signal up to larger
        noise (lesson 02). Eigenvalues in :attr:`eigvals` order.
        """
        a, s = coefs(process, t, self.mean[None], positive=self._c.singular)
        ev = self.eigvals
        return a**2 * ev / (a**2 * ev + s**2)

    def pf_ode_divergence(self, t, process) -> torch.Tensor:
        r"""Divergence of the PF-ODE velocity ``v = f x - 1/2 g^2 s``: a 0-d float64 tensor.

        The score ``s = -C_t^{-1} (x - alpha_t mu)`` with ``C_t = alpha_t^2 Sigma + sigma_t^2 I``
        is linear in x, so ``div v = D f(t) + 1/2 g(t)^2 tr(C_t^{-1})`` is the same at every x:
        the integrand of the instantaneous change of variables
        (:func:`diffedu.likelihood.log_likelihood`; lesson 11). t: a float where C_t is
        invertible (t > 0 when Sigma is singular).
        """
        t = check_real(t, "t")
        coefs(process, t, self.mean[None], positive=self._c.singular)
        C = self.marginal_cov(t, process)
        return self.dim * process.f(t) + 0.5 * process.g2(t) * torch.linalg.inv(C).trace()


def decision_time(eigval, process) -> torch.Tensor:
    r"""The time at which a mode of variance ``eigval`` is half decided: float64, eigval's shape.

    Along an eigenvector of variance ``lambda`` the signal fraction
    ``alpha_t^2 lambda / (alpha_t^2 lambda + sigma_t^2)`` (:meth:`Gaussian.signal_fraction`)
    equals 1/2 where ``(sigma_t / alpha_t)^2 = lambda``, i.e. ``lambda_t = -1/2 log lambda``:
    ``t = process.t_of_lam(-log(lambda) / 2)`` (lesson 02). eigval: a positive float or tensor.
    A mode with ``lambda`` above ``(sigma_T / alpha_T)^2`` is half decided before ``t_max``: its
    time lies beyond ``t_max`` (or is NaN where ``t_of_lam`` has no root).
    """
    check_process(process)
    if isinstance(eigval, bool):
        raise TypeError("eigval must be a positive number or a tensor of them; got bool")
    ev = as_real_tensor(eigval, "eigval", "a positive number or a tensor of them")
    if not torch.isfinite(ev).all() or (ev <= 0).any():
        raise ValueError(f"eigval must be positive and finite; got {eigval!r}")
    return process.t_of_lam(-0.5 * torch.log(ev))


def rotated_2d(lam1: float, lam2: float, angle_deg: float = 30.0, mean=(0.0, 0.0)) -> Gaussian:
    r"""The 2-D Gaussian with eigenvalues ``lam1, lam2`` whose first eigenvector is at ``angle_deg``.

    ``cov = R diag(lam1, lam2) R^T`` with R the rotation by ``angle_deg`` degrees; mean (2,).
    """
    lam1, lam2 = check_real(lam1, "lam1", minimum=0.0), check_real(lam2, "lam2", minimum=0.0)
    th = math.radians(check_real(angle_deg, "angle_deg"))
    U = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]], dtype=torch.float64)
    cov = U @ torch.diag(torch.tensor([lam1, lam2], dtype=torch.float64)) @ U.T
    return Gaussian(as_param(mean, "mean", (2,)), 0.5 * (cov + cov.T))


def cov_ellipse(cov, mean=(0.0, 0.0), *, n_std: float = 2.0, n: int = 121) -> torch.Tensor:
    r"""Points on the ``n_std``-standard-deviation ellipse of a 2-D Gaussian: (n, 2) float64, closed.

    The ellipse ``{x : (x - m)^T C^{-1} (x - m) = n_std^2}`` is the image of the circle of radius
    ``n_std`` under ``x = m + U diag(sqrt(lambda)) z`` with ``C = U diag(lambda) U^T``; the first
    and last points coincide, traversed counter-clockwise. cov: (2, 2) symmetric positive
    semi-definite (a singular C gives a segment); mean: (2,). Lesson 12 draws the final
    covariances of rotated flows with it.
    """
    C = as_param(cov, "cov", (2, 2))
    n_std = check_real(n_std, "n_std", minimum=0.0)
    n = check_int(n, "n", minimum=3)
    U, ev = _eigh_psd(C, "cov")
    U = U * torch.tensor([1.0, float(torch.sign(torch.linalg.det(U)))], dtype=torch.float64)  # a rotation
    th = torch.linspace(0, 2 * math.pi, n, dtype=torch.float64)
    circle = n_std * torch.stack([torch.cos(th), torch.sin(th)], 1)
    return circle * ev.sqrt() @ U.T + as_param(mean, "mean", (2,))


def fit_gaussian(data, *, shrinkage: float = 0.0) -> Gaussian:
    r"""The Gaussian with the mean and (unbiased) covariance of ``data`` (M, D), M >= 2.

    ``shrinkage`` in [0, 1] blends the covariance towards ``(tr C / D) I``:
    ``(1 - shrinkage) C + shrinkage (tr C / D) I`` (for a full-rank fit of few points).
    Parameters are float64. A rank-deficient covariance (digits: border pixels always 0) is
    fine: the Gaussian's denoiser and flow are defined for t > 0.
    """
    if not isinstance(data, torch.Tensor):
        data = as_real_tensor(data, "data", "a (M, D) tensor or array of numbers")
    X = check_batch(data, name="data").detach().to("cpu", torch.float64)
    if X.shape[0] < 2:
        raise ValueError(f"data must have at least 2 rows to fit a covariance; got {X.shape[0]}")
    shrinkage = check_real(shrinkage, "shrinkage", minimum=0.0, maximum=1.0)
    C = torch.cov(X.T).reshape(X.shape[1], X.shape[1])
    if shrinkage:
        C = (1 - shrinkage) * C + shrinkage * (torch.trace(C) / X.shape[1]) * torch.eye(X.shape[1], dtype=C.dtype)
    return Gaussian(X.mean(0), C)
