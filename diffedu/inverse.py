r"""Linear inverse problems with a diffusion prior, measured against the exact posterior.

A measurement ``y = A x_0 + s n`` (n ~ N(0, I), A (m, D)) of data from a prior p_0 with a
denoiser D(x, t). The posterior score splits by Bayes' rule,

    grad log p_t(x | y) = grad log p_t(x) + grad log p_t(y | x),
    p_t(y | x_t) = int p(y | x_0) p(x_0 | x_t) dx_0,

and the practical methods differ in how they approximate the intractable ``p(x_0 | x_t)``:

* :func:`dps` (Chung et al. 2023): a point mass at D(x_t), with a heuristic step size;
* :func:`pigdm` (Song et al. 2023): a Gaussian ``N(D(x_t), r_t^2 I)``, exact for a Gaussian prior
  with the exact posterior covariance (:func:`pigdm_denoiser`);
* :func:`red_diff` (Mardani et al. 2023): a variational point estimate, not a sampler;
* :func:`twisted_smc` (Wu et al. 2023): sequential Monte Carlo whose twisting functions use the
  same Gaussian approximation but whose importance weights correct it, so it is asymptotically
  exact as the number of particles grows.

For a Gaussian-mixture prior the exact posterior is again a mixture,
:meth:`diffedu.mixtures.GaussianMixture.condition`, with exact scores at every t, so each
method's error can be measured exactly: by :func:`credible_level` / :func:`hpd_coverage`
(calibration against the exact posterior's highest-density regions) and :func:`mode_weights`
(lesson 16).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ._core import (
    Distribution,
    as_param,
    as_times,
    check_batch,
    check_callable,
    check_generator,
    check_int,
    check_positive,
    check_process,
    check_real,
    coefs,
    shape_checked,
)
from .gaussian import Gaussian, _check_measurement
from .processes import VP
from .samplers import _check, _noise, _steps, ddim

__all__ = [
    "Measurement",
    "SMCResult",
    "credible_level",
    "dps",
    "dps_step",
    "hpd_coverage",
    "isotropic_posterior_var",
    "mode_weights",
    "pigdm",
    "pigdm_denoiser",
    "red_diff",
    "red_diff_fixed_point",
    "twisted_smc",
]


class Measurement:
    r"""One linear measurement ``y = A x_0 + noise_std n``, n ~ N(0, I_m).

    A: (m, D); y: (m,); noise_std > 0 (array-likes are stored as float64). ``log_likelihood(x)``
    is ``log p(y | x_0 = x)``; ``posterior(prior)`` the exact posterior of a prior of the zoo.
    """

    def __init__(self, A, y, noise_std):
        A0 = as_param(A, "A", (None, None))
        self.A, self.y, self.noise_std = _check_measurement(A0, y, noise_std, A0.shape[1])
        self.m, self.dim = self.A.shape
        self._cache: dict = {}

    @classmethod
    def simulate(cls, A, x0, noise_std, *, generator=None) -> Measurement:
        r"""The measurement of one point x0 (D,): ``y = A x0 + noise_std n`` with n drawn from ``generator``."""
        A0 = as_param(A, "A", (None, None))
        x0 = as_param(x0, "x0", (A0.shape[1],))
        s = check_positive(noise_std, "noise_std")
        check_generator(generator, "cpu")
        n = torch.randn(A0.shape[0], generator=generator, dtype=torch.float64)
        return cls(A0, A0 @ x0 + s * n, s)

    def __repr__(self):
        return f"Measurement(m={self.m}, dim={self.dim}, noise_std={self.noise_std:g})"

    def tensors(self, x):
        """``(A, y)`` in x's dtype and device (cached)."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = f"a {x.dtype} tensor" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"x must be a floating torch.Tensor (A and y take its dtype and device); got {got}")
        key = (x.dtype, x.device)
        if key not in self._cache:
            self._cache[key] = (self.A.to(dtype=x.dtype, device=x.device), self.y.to(dtype=x.dtype, device=x.device))
        return self._cache[key]

    def log_likelihood(self, x) -> torch.Tensor:
        r"""``log p(y | x_0 = x) = log N(y; A x, s^2 I)``: (B,) in x's dtype."""
        x = check_batch(x, self.dim)
        A, y = self.tensors(x)
        r = y - x @ A.T
        s2 = self.noise_std**2
        return -0.5 * (r**2).sum(1) / s2 - 0.5 * self.m * math.log(2 * math.pi * s2)

    def posterior(self, prior):
        """The exact posterior ``p(x_0 | y)`` of a prior with a ``condition`` method (Gaussian, mixtures)."""
        if not hasattr(prior, "condition"):
            raise TypeError(f"prior must be a Gaussian or a mixture of the zoo (with .condition); got {type(prior).__name__}")
        return prior.condition(self.A, self.y, self.noise_std)


def _check_meas(meas, D):
    if not isinstance(meas, Measurement):
        raise TypeError(f"meas must be a diffedu.inverse.Measurement; got {type(meas).__name__}")
    if meas.dim != D:
        raise ValueError(f"meas measures {meas.dim}-D points but x is {D}-D")
    return meas


# --- the Gaussian approximation of p(y | x_t) and its gradient (a vector-Jacobian product) --------
def isotropic_posterior_var(variance, process):
    r"""``t -> r_t^2 = v sigma_t^2 / (alpha_t^2 v + sigma_t^2)``: Var[x_0 | x_t] per coordinate for an N(m, v I) prior.

    With v = 1 it is PiGDM's published ``r_t^2 = sigma_t^2 / (alpha_t^2 + sigma_t^2)`` (Song et
    al. 2023, Sec. 3.2), exact for an N(0, I) prior; for data of another scale v matches it
    (lesson 16: digits in [0, 1] have v near 0.1). variance: v > 0. Returns a callable of a float t.
    """
    v = check_positive(variance, "variance")
    process = check_process(process)

    def r2(t):
        a, s = float(process.alpha(t)), float(process.sigma(t))
        return v * s * s / (a * a * v + s * s)
    return r2


def _cov_fn(posterior_cov, process):
    """``t -> C_t``: a float (``C_t = r^2 I``) or a (D, D) tensor."""
    if posterior_cov is None:
        return isotropic_posterior_var(1.0, process)
    if callable(posterior_cov):
        return posterior_cov
    v = check_real(posterior_cov, "posterior_cov", minimum=0.0)
    return lambda t: v


def _cov_y(meas, C, x):
    """Cholesky factor of ``M = s^2 I + A C A^T`` (m, m) in x's dtype."""
    A, _ = meas.tensors(x)
    if isinstance(C, torch.Tensor) and C.dim() == 2:
        ACA = A @ C.to(dtype=x.dtype, device=x.device) @ A.T
    else:
        ACA = float(C) * (A @ A.T)
    M = ACA + meas.noise_std**2 * torch.eye(meas.m, dtype=x.dtype, device=x.device)
    return torch.linalg.cholesky(0.5 * (M + M.T))


def _twist(D, x, t, meas, C):
    r"""At (x, t): the denoiser d = D(x, t), the log of ``N(y; A d, s^2 I + A C A^T)`` (B,) and its
    gradient in x, ``J^T A^T M^{-1} (y - A d)`` with J = dD/dx (one vector-Jacobian product; C
    does not depend on x)."""
    A, y = meas.tensors(x)
    L = _cov_y(meas, C, x)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        d = D(xg, t)
        r = y - d @ A.T                                                        # (B, m)
        z = torch.linalg.solve_triangular(L, r.detach().T, upper=False)        # L^{-1} r (m, B)
        v = torch.cholesky_solve(r.detach().T, L).T @ A                        # A^T M^{-1} r (B, D)
        grad, = torch.autograd.grad(d, xg, grad_outputs=v)
    logdet = 2 * torch.log(torch.diagonal(L)).sum()
    log_tw = -0.5 * ((z**2).sum(0) + logdet + meas.m * math.log(2 * math.pi))
    return d.detach(), log_tw.detach(), grad.detach()


# --- diffusion posterior sampling ------------------------------------------------------------------
def _ancestral_step_coefs(process, t, t_next):
    r"""``(A, B, C)`` of the DDPM ancestral step from t to t_next > 0: ``x <- A x + B D + C z`` (Ho et al.
    2020, eqs. 6-7, the step of :func:`diffedu.samplers.ddpm_ancestral`): with ``h = lambda_next - lambda``,
    ``A = (sigma_next/sigma) e^{-h}``, ``B = alpha_next (1 - e^{-2h})``, ``C = sigma_next sqrt(1 - e^{-2h})``."""
    a, s = float(process.alpha(t)), float(process.sigma(t))
    a1, s1 = float(process.alpha(t_next)), float(process.sigma(t_next))
    h = math.log(a1 / s1) - math.log(a / s)
    return s1 / s * math.exp(-h), -a1 * math.expm1(-2 * h), s1 * math.sqrt(-math.expm1(-2 * h))


def dps_step(D, process, x, t, t_next, meas, *, zeta: float, noise):
    r"""One step of diffusion posterior sampling from t to t_next < t (Chung et al. 2023, Alg. 1, lines 4-8).

    With ``x0_hat = D(x, t)`` and the residual ``r = y - A x0_hat`` (per sample):

        x' = A_t x + B_t x0_hat + C_t noise          (the DDPM ancestral step; at t_next = 0 the
                                                      final jump x' = x0_hat, noise unused)
        x_next = x' - (zeta / |r|) grad_x |r|^2      (a vector-Jacobian product through D).

    x, noise: (B, D); meas: a :class:`Measurement` (its noise level plays no part: DPS's step is
    a heuristic, zeta / |r| in the paper's App. C.2). Returns (B, D) in x's dtype.
    """
    check_callable(D, "D", "a denoiser D(x, t) -> (B, D)")
    process = check_process(process)
    x = check_batch(x)
    meas = _check_meas(meas, x.shape[1])
    t, t_next = _one_time(t, "t"), _one_time(t_next, "t_next")
    process.check_t(torch.tensor([t, t_next], dtype=torch.float64), "t and t_next")
    if not t_next < t or t <= process.t_min:
        raise ValueError(f"t_next must be below t and t above {process.t_min}; got t = {t}, t_next = {t_next}")
    zeta = check_real(zeta, "zeta", minimum=0.0)
    if t_next > 0:
        noise = check_batch(noise, x.shape[1], name="noise")
        if noise.shape != x.shape or noise.dtype != x.dtype:
            raise ValueError(f"noise must have x's shape {tuple(x.shape)} and dtype {x.dtype}; got "
                             f"{tuple(noise.shape)} {noise.dtype}")
    return _dps_step(shape_checked(D, "D"), process, x, t, t_next, meas, zeta, noise)


def _one_time(t, name):
    """A single time: a real number or a one-entry tensor (``ValueError`` for several, ``TypeError`` for the rest)."""
    if isinstance(t, torch.Tensor) and t.numel() != 1:
        raise ValueError(f"{name} must be a single time (a number or a 0-d tensor); got a tensor of shape {tuple(t.shape)}")
    return check_real(t, name)


def _dps_step(D, process, x, t, t_next, meas, zeta, noise):
    """:func:`dps_step` without the argument checks (the loop of :func:`dps`)."""
    A, y = meas.tensors(x)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        d = D(xg, t)                                                       # x0_hat = D(x_t, t)
        norm2 = ((y - d @ A.T) ** 2).sum(1)                                # |y - A x0_hat|^2 per sample
        grad, = torch.autograd.grad(norm2.sum(), xg)
    d = d.detach()
    if float(t_next) == 0.0:
        x_next = d                                                         # final jump x_0 = D(x_eps)
    else:
        a_, b_, c_ = _ancestral_step_coefs(process, t, t_next)           # x' = A x + B x0_hat + C z
        x_next = torch.add(a_ * x, d, alpha=b_).add_(noise, alpha=c_)
    step = zeta / norm2.detach().sqrt().clamp_min(torch.finfo(x.dtype).tiny)
    return x_next - step[:, None] * grad                                   # x_next = x' - zeta_i grad


def dps(D, process, x, ts, meas, *, zeta: float = 0.3, generator=None, callback=None, progress=False):
    r"""Diffusion posterior sampling (Chung, Kim, Mccann, Klasky and Ye 2023, Alg. 1).

    DPS replaces ``p(x_0 | x_t)`` by a point mass at ``x0_hat = D(x_t, t)``, so
    ``p(y | x_t) ~ N(y; A x0_hat, s^2 I)``, and follows each DDPM ancestral step (as
    :func:`diffedu.samplers.ddpm_ancestral`) by a gradient step on the residual,

        x_{i+1} = ancestral(x_i, x0_hat) - zeta_i grad_{x_i} |y - A x0_hat(x_i)|^2,
        zeta_i = zeta / |y - A x0_hat(x_i)|

    (:func:`dps_step`; the paper's step size, its App. C.2, for each sample separately; it
    suggests zeta in [0.1, 1] for images). The final jump ``x_0 = D(x_eps)`` takes the same
    correction. DPS is exact in no non-trivial case: even for a Gaussian prior the point mass
    drops ``Cov[x_0 | x_t]`` and the step is a heuristic (lesson 16 measures the cost).
    x: (B, D) at ts[0]; meas: a :class:`Measurement`; returns (B, D). One denoiser call (with a
    VJP) per step.
    """
    x, g, D = _check(D, process, x, ts, generator, callback)
    meas = _check_meas(meas, x.shape[1])
    zeta = check_real(zeta, "zeta", minimum=0.0)
    if callback is not None:
        callback(0, g.t[0], x)
    for i in _steps(g.n, progress):
        last = g.jump and i == g.n - 1
        noise = None if last else _noise(x, generator)
        x = _dps_step(D, process, x, g.t[i], g.t[i + 1], meas, zeta, noise)
        if callback is not None:
            callback(i + 1, g.t[i + 1], x)
    return x


# --- pseudo-inverse guidance -----------------------------------------------------------------------
def pigdm_denoiser(D, process, meas, *, posterior_cov=None):
    r"""The PiGDM-guided denoiser ``D_y = D + (sigma_t^2 / alpha_t) g_t``: a callable (x, t) -> (B, D).

    Song, Vahdat, Mardani and Kautz (2023), "Pseudoinverse-guided diffusion models for inverse
    problems", eqs. 5-7: ``p(x_0 | x_t) ~ N(D(x_t), C_t)``, hence ``p(y | x_t) ~ N(y; A D, A C_t A^T + s^2 I)``
    and

        g_t = grad_x log p(y | x_t) = J^T A^T (A C_t A^T + s^2 I)^{-1} (y - A D),   J = dD/dx,

    a vector-Jacobian product through D. ``posterior_cov``: None for the paper's
    ``C_t = r_t^2 I`` with ``r_t^2 = sigma_t^2 / (alpha_t^2 + sigma_t^2)`` (Var[x_0 | x_t] of an
    N(0, I) prior), a number r^2, or a callable ``t -> r^2`` (:func:`isotropic_posterior_var`
    for data of variance v) or ``t -> (D, D)`` matrix. The
    guidance enters as a score, ``s_y = s + g_t``, turned into a denoiser by Tweedie's formula
    (the paper's Alg. 1 adds it to the DDIM update with its own step weight; the score form is
    the one that is exact). **Exact case:** for a Gaussian prior with ``C_t`` its exact posterior
    covariance ``Cov[x_0 | x_t] = (sigma_t^2 / alpha_t) J``, ``D_y`` is the exact posterior
    denoiser ``E[x_0 | x_t, y]`` (``tests/test_inverse.py``), and with an N(0, I) prior the
    published r_t^2 is that covariance.
    """
    check_callable(D, "D", "a denoiser D(x, t) -> (B, D)")
    process = check_process(process)
    if not isinstance(meas, Measurement):
        raise TypeError(f"meas must be a diffedu.inverse.Measurement; got {type(meas).__name__}")
    cov = _cov_fn(posterior_cov, process)
    D = shape_checked(D, "D")

    def guided(x, t):
        x = check_batch(x, meas.dim)
        a, s = coefs(process, t, x, positive="PiGDM divides by alpha_t and needs sigma_t > 0")
        if isinstance(t, torch.Tensor) and t.dim() == 1 and t.numel() > 1:
            raise ValueError("pigdm_denoiser needs one time for the batch (a float or a 0-d tensor)")
        d, _, grad = _twist(D, x, t, meas, cov(float(t)))
        return d + (s**2 / a) * grad
    return guided


def pigdm(D, process, x, ts, meas, *, posterior_cov=None, sampler=None, generator=None, callback=None,
          progress=False):
    r"""Sample with :func:`pigdm_denoiser` and a sampler of :mod:`diffedu.samplers` (default DDIM, as the paper).

    One denoiser call with a VJP per sampler evaluation. x: (B, D) at ts[0]; returns (B, D).
    """
    sampler = ddim if sampler is None else check_callable(sampler, "sampler", "a sampler of diffedu.samplers")
    _check_meas(meas, check_batch(x).shape[1])
    Dy = pigdm_denoiser(D, process, meas, posterior_cov=posterior_cov)
    return sampler(Dy, process, x, ts, generator=generator, callback=callback, progress=progress)


# --- RED-diff: variational optimisation --------------------------------------------------------------
def red_diff(D, process, x, ts, meas, *, lam: float = 0.25, lr: float = 0.05, betas=(0.9, 0.99),
             generator=None, callback=None, progress=False):
    r"""RED-diff (Mardani, Song, Kautz and Vahdat 2023, "A variational perspective on solving
    inverse problems with diffusion models", Alg. 1): a point estimate, not a sampler.

    The variational family is ``q = N(mu, v I)`` with v -> 0, so the method optimises a point mu
    (initialised at x). At each time t of ``ts`` (visited in the given order, one Adam step each;
    the paper visits them in decreasing order), with ``x_t = alpha_t mu + sigma_t eps``:

        grad = -A^T (y - A mu) / s^2 + lam * w_t * (eps_hat(x_t, t) - eps),   w_t = sigma_t / alpha_t,

    the gradient of ``|y - A mu|^2 / (2 s^2) + lam w_t sg[eps_hat - eps]^T mu`` (the paper's
    score-matching regulariser with its stop-gradient, eqs. 8-10, and its weight
    ``w_t = 1/sqrt(SNR)``), one denoiser call and no Jacobian per step. For a Gaussian prior the
    expected step vanishes at a MAP point under a *weighted* prior precision
    (:func:`red_diff_fixed_point`), the posterior mean only in special cases. x: (B, D) starting
    points (B independent runs); ts: (N,) times in (0, t_max], any order; returns mu (B, D).
    """
    D = shape_checked(check_callable(D, "D", "a denoiser D(x, t) -> (B, D)"), "D")
    process = check_process(process)
    x = check_batch(x)
    meas = _check_meas(meas, x.shape[1])
    ts = as_times(ts)
    process.check_t(ts, "ts")
    if (ts <= process.t_min).any():
        raise ValueError(f"ts must be > {process.t_min} (RED-diff divides by alpha_t and sigma_t); got {ts.tolist()}")
    lam = check_real(lam, "lam", minimum=0.0)
    lr = check_positive(lr, "lr")
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2) of Adam's decay rates; got {betas!r}")
    b1, b2 = (check_real(b, "betas", minimum=0.0, maximum=1.0, strict=False) for b in betas)
    check_generator(generator, x.device)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a callable callback(i, t, x) or None; got {type(callback).__name__}")
    A, y = meas.tensors(x)
    s2 = meas.noise_std**2
    mu = x.detach().clone()
    m1, m2 = torch.zeros_like(mu), torch.zeros_like(mu)
    a_all, s_all = process.alpha(ts).tolist(), process.sigma(ts).tolist()
    if callback is not None:
        callback(0, float(ts[0]), mu)
    for i in _steps(len(a_all), progress):
        a, s, t = a_all[i], s_all[i], float(ts[i])
        eps = _noise(mu, generator)
        xt = a * mu + s * eps                                              # x_t = alpha mu + sigma eps
        eps_hat = (xt - a * D(xt, t)) / s                                  # the model's noise prediction
        grad = -((y - mu @ A.T) @ A) / s2 + lam * (s / a) * (eps_hat - eps)
        m1.mul_(b1).add_(grad, alpha=1 - b1)                               # Adam (Kingma and Ba 2015)
        m2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        mhat, vhat = m1 / (1 - b1 ** (i + 1)), m2 / (1 - b2 ** (i + 1))
        mu = mu - lr * mhat / (vhat.sqrt() + 1e-8)
        if callback is not None:
            callback(i + 1, t, mu)
    return mu


def red_diff_fixed_point(prior, process, ts, meas, *, lam: float = 0.25) -> torch.Tensor:
    r"""Where RED-diff's expected step vanishes for a Gaussian prior N(m, S) with times drawn from ``ts``: (D,) float64.

    For a Gaussian prior ``eps_hat(x) = sigma C_t^{-1} (x - alpha m)`` with
    ``C_t = alpha^2 S + sigma^2 I``, so ``E_eps[w_t (eps_hat - eps)] = sigma_t^2 C_t^{-1} (mu - m)``
    and the expected gradient of :func:`red_diff` with t uniform over ``ts`` is zero at

        mu* = (A^T A / s^2 + P)^{-1} (A^T y / s^2 + P m),   P = lam * mean_t sigma_t^2 C_t^{-1}:

    the MAP point of a Gaussian prior whose precision P is a weighted average over noise levels,
    not ``S^{-1}``; mu* is the posterior mean only where P = S^{-1} (lesson 16).
    """
    if not isinstance(prior, Gaussian):
        raise TypeError(f"prior must be a diffedu Gaussian; got {type(prior).__name__}")
    process = check_process(process)
    meas = _check_meas(meas, prior.dim)
    ts = as_times(ts)
    process.check_t(ts, "ts")
    if (ts <= process.t_min).any():
        raise ValueError(f"ts must be > {process.t_min}; got {ts.tolist()}")
    lam = check_real(lam, "lam", minimum=0.0)
    S, m = prior.cov, prior.mean
    I = torch.eye(prior.dim, dtype=torch.float64)
    P = torch.zeros_like(S)
    for t in ts.tolist():
        a, s = float(process.alpha(t)), float(process.sigma(t))
        P += s * s * torch.linalg.inv(a * a * S + s * s * I)
    P = lam * P / len(ts)
    s2 = meas.noise_std**2
    lhs = meas.A.T @ meas.A / s2 + P
    try:
        return torch.linalg.solve(lhs, meas.A.T @ meas.y / s2 + P @ m)
    except torch.linalg.LinAlgError as e:  # lam = 0 and A of rank < D: no unique fixed point
        raise ValueError(f"lam = {lam:g} leaves the fixed-point equations singular (A has rank < D = {prior.dim}): "
                         "the fixed point is not unique; use lam > 0") from e


# --- twisted sequential Monte Carlo -----------------------------------------------------------------
class SMCResult(NamedTuple):
    """What :func:`twisted_smc` returns.

    x: (K, D) the particles after the final resampling (samples of the posterior, correlated);
    ess: (N + 1,) float64, the effective sample size ``1 / sum_k W_k^2`` of the normalised weights
    before each step and at the end, as a fraction of K; resampled: how many times the particles
    were resampled before the end.
    """

    x: torch.Tensor
    ess: torch.Tensor
    resampled: int


def _ess(logw):
    W = torch.softmax(logw.double(), 0)
    return float(1.0 / (W**2).sum()) / logw.numel()


def _resample(logw, generator):
    K = logw.numel()
    return torch.multinomial(torch.softmax(logw.double(), 0).to(logw.device), K, replacement=True,
                             generator=generator)


def twisted_smc(D, process, x, ts, meas, *, posterior_cov=None, resample_ess: float = 0.5, generator=None,
                callback=None, progress=False) -> SMCResult:
    r"""Twisted diffusion sampling (Wu, Trippe, Naesseth, Blei and Cunningham 2023, "Practical and
    asymptotically exact conditional sampling in diffusion models", Alg. 1): sequential Monte
    Carlo over the DDPM ancestral chain.

    K particles x (K, D) start at ts[0]. The **twisting function** at t_i is
    ``p~_i(y | x) = N(y; A D(x, t_i), s^2 I + A C_i A^T)`` (the Gaussian of :func:`pigdm_denoiser`;
    ``posterior_cov=0.0`` is the paper's ``p(y | x0_hat)``), the **proposal** the ancestral
    step ``N(A_i x + B_i D, C_i^2 I)`` shifted by ``C_i^2 grad log p~_i(y | x)``, and each particle's
    weight is multiplied by

        N(x'; A_i x + B_i D, C_i^2 I) p~_{i+1}(y | x') / [ proposal(x' | x) p~_i(y | x) ],

    starting from ``p~_0(y | x)`` and ending with the exact likelihood ``p(y | x_0) / p~(y | x_eps)``
    at the final jump ``x_0 = D(x_eps)`` (or at ts[-1] when the grid stops there). Particles are
    resampled (multinomially) when the ESS falls below ``resample_ess * K``, and once at the end.

    **What is exact.** The weights are exact importance weights for the posterior of the
    ancestral chain's own law, ``p_model(x_0) p(y | x_0)``: the particles converge to it as
    K -> infinity, with a bias of order 1/K in any expectation (an SMC estimate is a ratio), and
    p_model is the prior up to the ancestral sampler's error (weak order 1 in the step), whatever
    the twisting function (which affects only the variance). The cost is one denoiser call with a
    VJP per step **per particle**. x: (K, D); returns an :class:`SMCResult`.
    """
    x, g, D = _check(D, process, x, ts, generator, callback)
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one particle (K >= 1 rows)")
    meas = _check_meas(meas, x.shape[1])
    resample_ess = check_real(resample_ess, "resample_ess", minimum=0.0, maximum=1.0)
    cov = _cov_fn(posterior_cov, process)
    d, log_tw, grad = _twist(D, x, g.t[0], meas, cov(g.t[0]))
    logw = log_tw.double()                                                 # x ~ p_T: weights p~_0(y | x)
    ess, resampled = [], 0
    if callback is not None:
        callback(0, g.t[0], x)
    for i in _steps(g.n, progress):
        ess.append(_ess(logw))
        if ess[-1] < resample_ess and i < g.n - 1:                        # resample (not before the last step)
            idx = _resample(logw, generator)
            x, d, log_tw, grad = x[idx], d[idx], log_tw[idx], grad[idx]
            logw = torch.zeros_like(logw)
            resampled += 1
        if g.jump and i == g.n - 1:                                        # final jump x_0 = D(x_eps):
            x = d                                                          # weight p(y | x_0) / p~(y | x_eps)
            logw = logw + meas.log_likelihood(x).double() - log_tw.double()
        else:
            a_, b_, c_ = _ancestral_step_coefs(process, g.t[i], g.t[i + 1])
            mean = torch.add(a_ * x, d, alpha=b_)                          # the ancestral step's mean
            shift = (c_ * c_) * grad                                       # the twisted proposal's shift
            z = _noise(x, generator)
            x_new = mean + shift + c_ * z                                  # x' ~ N(mean + shift, C^2 I)
            # log N(x'; mean, C^2) - log N(x'; mean + shift, C^2)
            log_ratio = -(((x_new - mean) ** 2).sum(1) - ((c_ * z) ** 2).sum(1)) / (2 * c_ * c_)
            d, log_tw_new, grad = _twist(D, x_new, g.t[i + 1], meas, cov(g.t[i + 1]))
            logw = logw + log_ratio.double() + log_tw_new.double() - log_tw.double()
            x, log_tw = x_new, log_tw_new
            if i == g.n - 1:                                               # the grid stops at t > 0:
                logw = logw + meas.log_likelihood(x).double() - log_tw.double()   # x is the sample
        if callback is not None:
            callback(i + 1, g.t[i + 1], x)
    ess.append(_ess(logw))
    x = x[_resample(logw, generator)]
    return SMCResult(x, torch.tensor(ess, dtype=torch.float64), resampled)


# --- calibration against an exact posterior ------------------------------------------------------------
def _reference_log_probs(dist, n, generator):
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a diffedu distribution with an exact density; got {type(dist).__name__}")
    if getattr(getattr(dist, "_c", None), "singular", True):  # an empirical law has no _c: no density either
        raise ValueError(f"dist must have a density at t = 0 (a non-singular Gaussian or mixture); this "
                         f"{type(dist).__name__} is singular (supported on a subspace or on points)")
    n = check_int(n, "n", minimum=10)
    ref = dist.sample(n, generator=generator, dtype=torch.float64)
    return torch.sort(dist.log_prob(ref, 0.0, VP())).values


def credible_level(dist, x, *, n: int = 20000, generator=None) -> torch.Tensor:
    r"""The level of the smallest highest-density credible region of ``dist`` that contains each x: (B,) float64.

    ``u(x) = P_{X ~ dist}[ log p(X) >= log p(x) ]``, the mass of the region denser than x, is
    estimated from n exact draws of ``dist`` (error about ``sqrt(u (1 - u) / n)``). If the rows
    of x are draws from ``dist``, u is uniform on [0, 1] (the probability integral transform of
    ``log p(X)``), so ``mean(u <= level) = level`` for every level: :func:`hpd_coverage`.
    dist: a distribution with a density at t = 0 (a non-singular Gaussian or mixture).
    """
    ref = _reference_log_probs(dist, n, generator)
    x = check_batch(x, dist.dim).detach().to("cpu", torch.float64)
    lx = dist.log_prob(x, 0.0, VP())
    below = torch.searchsorted(ref, lx, right=False)                       # draws with log p < log p(x)
    return 1.0 - below.double() / ref.numel()


def hpd_coverage(dist, x, levels=(0.5, 0.9), *, n: int = 20000, generator=None) -> torch.Tensor:
    r"""The fraction of the rows of x inside the exact ``level`` highest-density region of dist: (L,) float64.

    Calibrated samples give ``coverage = level`` (within the binomial error
    ``sqrt(level (1 - level) / B)``); over-confident ones (too narrow) give more, samples that miss
    the mass give less. Uses :func:`credible_level`.
    """
    lv = as_param(levels, "levels")
    lv = lv.reshape(1) if lv.dim() == 0 else lv
    if lv.dim() != 1 or lv.numel() == 0 or (lv <= 0).any() or (lv >= 1).any():
        raise ValueError(f"levels must be numbers in (0, 1); got {levels!r}")
    u = credible_level(dist, x, n=n, generator=generator)
    return (u[None, :] <= lv[:, None]).double().mean(1)


def mode_weights(mixture, x) -> torch.Tensor:
    r"""The mean responsibility of each component over the rows of x at t = 0: (K,) float64.

    For draws of the mixture itself, ``E[r_k(X)] = w_k`` exactly, so ``|mode_weights(p, x) - p.weights|``
    measures how a sampler misplaces mass between modes, without assigning samples by a threshold.
    """
    if not hasattr(mixture, "responsibilities"):
        raise TypeError(f"mixture must be a diffedu mixture; got {type(mixture).__name__}")
    x = check_batch(x, mixture.dim).detach().to("cpu", torch.float64)
    if x.shape[0] == 0:
        raise ValueError("x must have at least one row")
    return mixture.responsibilities(x, 0.0, VP()).mean(0)
