r"""Stochastic interpolants between two densities, with exact fields for Gaussian-mixture ends.

Albergo, Boffi and Vanden-Eijnden (2023), "Stochastic interpolants: a unifying framework for
flows and diffusions", eq. (2.1), in this project's time direction (data ``x0 ~ rho_0`` at
t = 0, the other end ``x1 ~ rho_1`` at t = 1; ``docs/notation.md``):

    x_t = alpha(t) x0 + beta(t) x1 + gamma(t) z,   z ~ N(0, I),  x0, x1, z independent,

with ``alpha(0) = beta(1) = 1``, ``alpha(1) = beta(0) = gamma(0) = gamma(1) = 0``. Its density
rho_t solves the transport equation ``d_t rho + div(b rho) = 0`` with the velocity

    b(x, t) = E[alpha' x0 + beta' x1 + gamma' z | x_t = x]          (paper, Thm. 2.6),

so the probability-flow ODE ``dx/dt = b`` carries rho_t along in either direction, and for every
``eps >= 0`` the SDEs

    forward (t up):   dX = (b + eps s) dt + sqrt(2 eps) dW,
    backward (t down): dX = (b - eps s) dt + sqrt(2 eps) dW_bar,          (paper, eq. 2.33)

with the score ``s = grad log rho_t``, have the same marginals: eps changes trajectories,
not marginals. Going down in t is generation (rho_1 to the data). With ``rho_1 = N(0, I)`` and
``gamma = 0`` this is the diffusion model with the :class:`~diffedu.processes.Linear` process.

When both ends are Gaussian mixtures, ``rho_t`` is the mixture over pairs (i, j) of
``N(mu_ij(t), Sigma_ij(t))``, ``mu = alpha m0_i + beta m1_j``,
``Sigma = alpha^2 C0_i + beta^2 C1_j + gamma^2 I``, and on each pair the conditional
expectation is linear, so with responsibilities ``r_ij(x, t)``

    b(x, t) = sum_ij r_ij [mu_ij' + 1/2 Sigma_ij' Sigma_ij^{-1} (x - mu_ij)],
    s(x, t) = -sum_ij r_ij Sigma_ij^{-1} (x - mu_ij),

where ``1/2 Sigma' = alpha alpha' C0 + beta beta' C1 + gamma gamma' I`` stays finite at the ends
even though gamma' does not. Lesson 10.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from ._core import (as_real_tensor, check_batch, check_callable, check_output, check_choice, check_dtype, check_generator, check_n,
                    check_real, shape_checked)
from .gaussian import Gaussian
from .mixtures import GaussianMixture

__all__ = ["Interpolant", "LinearInterpolant", "TrigInterpolant", "GaussianMixtureInterpolant",
           "ode_trajectory", "sde_step", "sde_trajectory"]

_F64 = torch.float64


def _t(t, batch=False):
    """t as a float64 tensor (a tensor t keeps its graph), checked to lie in [0, 1]: a float or a
    0-d tensor, and with ``batch`` also a (B,) tensor (the coefficients of :class:`Interpolant`)."""
    if isinstance(t, torch.Tensor):
        if t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"t must be a real float or a 0-d tensor; got a {t.dtype} tensor")
        if t.dim() > (1 if batch else 0):
            want = "a float, a 0-d or a (B,) tensor" if batch else "a float or a 0-d tensor"
            raise ValueError(f"t must be {want}; got shape {tuple(t.shape)}")
        tt = t.to(_F64)
    elif isinstance(t, numbers.Real) and not isinstance(t, bool):
        tt = torch.as_tensor(float(t), dtype=_F64)
    else:
        raise TypeError(f"t must be a float or a 0-d tensor; got {type(t).__name__} {t!r}")
    _check_unit(tt)
    return tt


def _tb(t):
    """The coefficients accept a (B,) tensor of times too (flow matching draws one t per sample)."""
    return _t(t, batch=True)


def _check_unit(t, name="t"):
    if t.device.type != "cpu" or t.numel() == 0:
        return
    lo, hi = float(t.detach().min()), float(t.detach().max())
    if not (0.0 <= lo and hi <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1] (data at 0, rho_1 at 1); got {lo if lo < 0 or lo != lo else hi}")


@dataclass(frozen=True)
class Interpolant:
    r"""Coefficients ``alpha, beta, gamma`` of ``x_t = alpha x0 + beta x1 + gamma z`` on [0, 1].

    Subclasses define ``alpha, beta, d_alpha, d_beta`` and ``gamma2(t) = gamma^2`` with
    ``d_gamma2 = (gamma^2)'``; ``gamma gamma' = d_gamma2 / 2`` is what the velocity uses. Every
    coefficient takes t as a float, a 0-d or a (B,) tensor (one time per sample).
    """

    def alpha(self, t):
        raise NotImplementedError

    def beta(self, t):
        raise NotImplementedError

    def d_alpha(self, t):
        raise NotImplementedError

    def d_beta(self, t):
        raise NotImplementedError

    def gamma2(self, t):
        raise NotImplementedError

    def d_gamma2(self, t):
        raise NotImplementedError

    def gamma(self, t):
        return torch.sqrt(self.gamma2(t))


def _check_a(a):
    check_real(a, "a (the noise amplitude, gamma^2 = a t (1 - t))", minimum=0.0)


@dataclass(frozen=True)
class LinearInterpolant(Interpolant):
    r"""``alpha = 1 - t``, ``beta = t``, ``gamma^2 = a t (1 - t)`` (paper, eq. 2.11 with t -> 1 - t:
    the same, it is symmetric). ``a = 0`` is rectified flow / flow matching."""

    a: float = 0.0

    def __post_init__(self):
        _check_a(self.a)

    def alpha(self, t):
        return 1 - _tb(t)

    def beta(self, t):
        return _tb(t)

    def d_alpha(self, t):
        return -torch.ones_like(_tb(t))

    def d_beta(self, t):
        return torch.ones_like(_tb(t))

    def gamma2(self, t):
        t = _tb(t)
        return self.a * t * (1 - t)

    def d_gamma2(self, t):
        return self.a * (1 - 2 * _tb(t))


@dataclass(frozen=True)
class TrigInterpolant(Interpolant):
    r"""``alpha = cos(pi t / 2)``, ``beta = sin(pi t / 2)``, ``gamma^2 = a t (1 - t)``: with
    ``a = 0`` and standard normal rho_1, variance preserving for unit-variance data."""

    a: float = 0.0

    def __post_init__(self):
        _check_a(self.a)

    def alpha(self, t):
        return torch.cos(0.5 * math.pi * _tb(t))

    def beta(self, t):
        return torch.sin(0.5 * math.pi * _tb(t))

    def d_alpha(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * _tb(t))

    def d_beta(self, t):
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * _tb(t))

    def gamma2(self, t):
        t = _tb(t)
        return self.a * t * (1 - t)

    def d_gamma2(self, t):
        return self.a * (1 - 2 * _tb(t))


def _as_mixture(dist, name):
    """(weights (K,), means (K, D), covs (K, D, D)) float64 from a Gaussian or GaussianMixture."""
    if isinstance(dist, Gaussian):
        return torch.ones(1, dtype=_F64), dist.mean[None].clone(), dist.cov[None].clone()
    if isinstance(dist, GaussianMixture):
        return dist.weights.clone(), dist.means.clone(), dist.covs.clone()
    raise TypeError(f"{name} must be a diffedu Gaussian or GaussianMixture; got {type(dist).__name__}")


class GaussianMixtureInterpolant:
    r"""Exact density, score and velocity of an interpolant between two Gaussian mixtures.

    interpolant: an :class:`Interpolant`; rho0 (the data, t = 0) and rho1 (t = 1): a
    :class:`~diffedu.gaussian.Gaussian` or :class:`~diffedu.mixtures.GaussianMixture` of the
    same dimension D. Methods take ``x`` (B, D) and ``t`` a float or 0-d tensor in [0, 1]
    (a tensor t that requires grad is differentiated through) and compute in x's dtype.
    The covariance of every pair must be positive definite at t (true for every t when both
    ends have positive-definite covariances, or when gamma > 0 inside (0, 1)).
    """

    def __init__(self, interpolant: Interpolant, rho0, rho1):
        if not isinstance(interpolant, Interpolant):
            raise TypeError(f"interpolant must be a diffedu.interpolants.Interpolant "
                            f"(LinearInterpolant(a), TrigInterpolant(a)); got {type(interpolant).__name__}")
        w0, m0, c0 = _as_mixture(rho0, "rho0")
        w1, m1, c1 = _as_mixture(rho1, "rho1")
        if m0.shape[1] != m1.shape[1]:
            raise ValueError(f"rho0 and rho1 must have the same dimension; got {m0.shape[1]} and {m1.shape[1]}")
        self.interpolant, self.rho0, self.rho1 = interpolant, rho0, rho1
        self.dim = m0.shape[1]
        K0, K1 = w0.numel(), w1.numel()
        # pairs (i, j) flattened to K = K0 K1 components
        self._logw = (torch.log(w0)[:, None] + torch.log(w1)[None]).reshape(-1)
        self._m0 = m0[:, None].expand(K0, K1, -1).reshape(-1, self.dim)
        self._m1 = m1[None].expand(K0, K1, -1).reshape(-1, self.dim)
        self._c0 = c0[:, None].expand(K0, K1, -1, -1).reshape(-1, self.dim, self.dim)
        self._c1 = c1[None].expand(K0, K1, -1, -1).reshape(-1, self.dim, self.dim)

    def __repr__(self):
        return f"GaussianMixtureInterpolant({self.interpolant!r}, K={self._logw.numel()}, dim={self.dim})"

    # --- the Gaussian pairs at time t ----------------------------------------------------
    def components(self, t, dtype=_F64):
        r"""Per pair at time t: log weights (K,), means (K, D), covariances (K, D, D) and
        their time derivatives ``mu'`` (K, D) and ``Sigma'/2`` (K, D, D), in ``dtype``."""
        I = self.interpolant
        t = _t(t)
        check_dtype(dtype)
        a, b, g2 = I.alpha(t), I.beta(t), I.gamma2(t)
        da, db, dg2 = I.d_alpha(t), I.d_beta(t), I.d_gamma2(t)
        eye = torch.eye(self.dim, dtype=_F64)
        mu = a * self._m0 + b * self._m1
        cov = a**2 * self._c0 + b**2 * self._c1 + g2 * eye
        dmu = da * self._m0 + db * self._m1
        half_dcov = a * da * self._c0 + b * db * self._c1 + 0.5 * dg2 * eye
        return tuple(v.to(dtype) for v in (self._logw, mu, cov, dmu, half_dcov))

    def _solve(self, x, t):
        logw, mu, cov, dmu, hdc = self.components(t, x.dtype)
        try:
            Lc = torch.linalg.cholesky(cov)
        except RuntimeError as e:  # torch.linalg.LinAlgError subclasses RuntimeError
            raise ValueError(f"the covariance of some pair is singular at t = {float(_t(t).detach()):.6g}; "
                             "give rho0 and rho1 positive-definite covariances or use gamma > 0") from e
        y = x[:, None, :] - mu[None]  # (B, K, D)
        sol = torch.einsum("kde,bke->bkd", torch.cholesky_inverse(Lc), y)  # Sigma^{-1} y: (B, K, D)
        logdet = 2 * torch.log(torch.diagonal(Lc, dim1=-2, dim2=-1)).sum(-1)
        logn = -0.5 * ((y * sol).sum(-1) + logdet + self.dim * math.log(2 * math.pi))
        return logw, logn, sol, dmu, hdc

    def log_prob(self, x, t):
        """``log rho_t(x)``: (B,)."""
        x = check_batch(x, self.dim)
        logw, logn, *_ = self._solve(x, t)
        return torch.logsumexp(logw + logn, dim=1)

    def responsibilities(self, x, t):
        """``P(pair (i, j) | x_t = x)``: (B, K0 K1), pairs in row-major (i, j) order."""
        x = check_batch(x, self.dim)
        logw, logn, *_ = self._solve(x, t)
        return torch.softmax(logw + logn, dim=1)

    def _fields(self, x, t, want_velocity=True):
        logw, logn, sol, dmu, hdc = self._solve(x, t)
        r = torch.softmax(logw + logn, dim=1)
        score = -torch.einsum("bk,bkd->bd", r, sol)
        if not want_velocity:
            return score, None
        v = torch.einsum("bk,kd->bd", r, dmu) + torch.einsum("kde,bk,bke->bd", hdc, r, sol)
        return score, v

    def score(self, x, t):
        """``grad log rho_t(x) = -sum_k r_k Sigma_k^{-1} (x - mu_k)``: (B, D)."""
        return self._fields(check_batch(x, self.dim), t, want_velocity=False)[0]

    def velocity(self, x, t):
        r"""``b(x, t) = E[dx_t/dt | x_t = x] = sum_k r_k (mu_k' + 1/2 Sigma_k' Sigma_k^{-1} (x - mu_k))``: (B, D)."""
        return self._fields(check_batch(x, self.dim), t)[1]

    def drift(self, x, t, eps: float, direction: str = "backward"):
        r"""SDE drift with noise level eps: ``b + eps s`` forward (t up), ``b - eps s`` backward."""
        _check_eps(eps)
        check_choice(direction, "direction", ("forward", "backward"))
        s, v = self._fields(check_batch(x, self.dim), t)
        return v + (1.0 if direction == "forward" else -1.0) * eps * s

    def sample(self, n: int, t, *, generator=None, dtype=_F64):
        r"""Draws of ``x_t = alpha x0 + beta x1 + gamma z`` from the definition: (n, D)."""
        n = check_n(n)
        t = _t(t)
        check_generator(generator, "cpu")
        dtype = check_dtype(dtype)
        I = self.interpolant
        x0 = self.rho0.sample(n, generator=generator, dtype=_F64)
        x1 = self.rho1.sample(n, generator=generator, dtype=_F64)
        z = torch.randn(n, self.dim, generator=generator, dtype=_F64)
        return (I.alpha(t) * x0 + I.beta(t) * x1 + I.gamma(t) * z).to(dtype)


def _check_eps(eps):
    check_real(eps, "eps (the SDE noise level)", minimum=0.0)


def _check_grid(ts):
    ts = as_real_tensor(ts, "ts", "a 1-D tensor or sequence of times")
    if not bool(torch.isfinite(ts).all()):
        raise ValueError("ts must be finite (no NaN or inf)")
    if ts.dim() != 1 or ts.numel() < 2:
        raise ValueError(f"ts must be a 1-d grid of at least 2 times; got shape {tuple(ts.shape)}")
    d = ts[1:] - ts[:-1]
    if not ((d > 0).all() or (d < 0).all()):
        raise ValueError("ts must be strictly monotone (increasing or decreasing)")
    if ts.min() < 0 or ts.max() > 1:
        raise ValueError(f"ts must lie in [0, 1]; got values in [{float(ts.min())}, {float(ts.max())}]")
    return ts


def ode_trajectory(velocity, x, ts, *, method: str = "rk4") -> torch.Tensor:
    r"""Probability-flow ODE ``dx/dt = velocity(x, t)`` along ``ts``: (N+1, B, D).

    ts (N+1,) monotone in either direction (decreasing = generation, toward the data at 0).
    ``method="rk4"``: classical Runge-Kutta (four velocity calls per step); ``"euler"``: one call
    per step, ``x <- x + h v(x, t)`` (what few-step flow samplers use).
    """
    check_callable(velocity, "velocity", "a velocity field v(x, t) -> (B, D)")
    x = check_batch(x)
    ts = _check_grid(ts)
    check_choice(method, "method", ("rk4", "euler"))
    velocity = shape_checked(velocity, "velocity")
    out = [x]
    for t0, t1 in zip(ts[:-1].tolist(), ts[1:].tolist()):
        h, tm = t1 - t0, 0.5 * (t0 + t1)
        k1 = velocity(x, t0)
        if method == "euler":
            x = x + h * k1
        else:
            k2 = velocity(x + 0.5 * h * k1, tm)
            k3 = velocity(x + 0.5 * h * k2, tm)
            k4 = velocity(x + h * k3, t1)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(x)
    return torch.stack(out)


def sde_step(velocity, score, x, t: float, h: float, eps: float, noise) -> torch.Tensor:
    r"""One Euler-Maruyama step of the SDE family with noise level eps, from t to t + h: (B, D).

    ``x + (b - eps s) h + sqrt(2 eps |h|) noise`` for h < 0 (the backward SDE, generation) and
    ``x + (b + eps s) h + sqrt(2 eps h) noise`` for h > 0 (paper, eq. 2.33). velocity b and score s:
    fields ``f(x, t) -> (B, D)``; noise: (B, D) standard normal draws, passed in.
    """
    check_callable(velocity, "velocity", "a velocity field b(x, t) -> (B, D)")
    check_callable(score, "score", "a score field s(x, t) -> (B, D)")
    x = check_batch(x)
    noise = check_batch(noise, x.shape[1], "noise")
    if noise.shape != x.shape:
        raise ValueError(f"noise must have x's shape {tuple(x.shape)}; got {tuple(noise.shape)}")
    t = check_real(t, "t", minimum=0.0, maximum=1.0)
    h = check_real(h, "h (the step; negative going back)")
    if not -1e-12 <= t + h <= 1.0 + 1e-12:
        raise ValueError(f"the step must stay in [0, 1]: t + h = {t + h} (t = {t}, h = {h})")
    _check_eps(eps)
    sign = -1.0 if h < 0 else 1.0
    drift = check_output(velocity(x, t), x, "velocity")
    if eps > 0:
        drift = drift + sign * eps * check_output(score(x, t), x, "score")
    return x + drift * h + math.sqrt(2 * eps * abs(h)) * noise


def sde_trajectory(bridge: GaussianMixtureInterpolant, x, ts, eps: float, *, generator=None, velocity=None,
                   score=None) -> torch.Tensor:
    r"""Euler-Maruyama for the SDE family with noise level eps along ``ts``: (N+1, B, D).

    Decreasing ts: ``x <- x + (b - eps s) h + sqrt(2 eps |h|) xi`` with h < 0 (the backward SDE,
    generation); increasing ts: drift ``b + eps s`` (:func:`sde_step`). eps = 0 is the ODE (Euler).
    Every eps has the marginals rho_t (up to the O(h) discretisation error). ``velocity`` and
    ``score`` (fields ``f(x, t)``) replace the bridge's exact b and s, e.g. by a learned or
    perturbed b: the ``eps s`` term then pulls the paths back toward rho_t (lesson 10, section 6).
    """
    if not isinstance(bridge, GaussianMixtureInterpolant):
        raise TypeError(f"bridge must be a GaussianMixtureInterpolant; got {type(bridge).__name__}")
    _check_eps(eps)
    x = check_batch(x, bridge.dim)
    check_generator(generator, x.device)
    ts = _check_grid(ts)
    b = bridge.velocity if velocity is None else velocity
    s = bridge.score if score is None else score
    out = [x]
    for t0, t1 in zip(ts[:-1].tolist(), ts[1:].tolist()):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device) if eps > 0 else torch.zeros_like(x)
        x = sde_step(b, s, x, t0, t1 - t0, eps, noise)
        out.append(x)
    return torch.stack(out)
