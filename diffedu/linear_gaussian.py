r"""Exact laws of linear stochastic samplers on Gaussian data: the moment recursion.

For Gaussian data ``p_0 = N(mu, Sigma)`` the Tweedie denoiser is affine in x (lesson 02),

    D(x, t) = mu + K_t (x - alpha_t mu),   K_t = alpha_t Sigma (alpha_t^2 Sigma + sigma_t^2 I)^{-1},

so a sampler whose step is ``x_{i+1} = A_i x_i + B_i D(x_i, t_i) + C_i z_i`` (z_i ~ N(0, I),
independent of x_i) maps a Gaussian ``x_i ~ N(m_i, P_i)`` to a Gaussian, with

    m_{i+1} = A_i m_i + B_i D(m_i, t_i),
    P_{i+1} = J_i P_i J_i^T + C_i^2 I,   J_i = A_i I + B_i K_{t_i}.

Euler-Maruyama on the reverse SDE and DDPM's ancestral sampler have this form, so the law of
their output is known exactly, without drawing a sample: its distance to the exact marginal is
the sampler's weak error with no Monte Carlo noise (lesson 03 measures the weak order from it).
A grid that ends at ``t = 0`` ends with the samplers' final jump ``x = D(x, t_eps)``: ``m <- D(m)``,
``P <- K P K^T``.

The step coefficients are written here from each method's defining equation, not taken from
:mod:`diffedu.samplers`, so ``tests/test_linear_gaussian.py`` checks the two against each other
(and both against Monte Carlo and the exact marginal).
"""

from __future__ import annotations

import math

import torch

from ._core import as_param, as_times, check_process, check_real
from .gaussian import Gaussian, _eigh_psd

__all__ = ["denoiser_gain", "euler_maruyama_moments", "ddpm_ancestral_moments"]


def denoiser_gain(gauss: Gaussian, t, process) -> torch.Tensor:
    r"""``K_t = alpha_t Sigma (alpha_t^2 Sigma + sigma_t^2 I)^{-1}``: (D, D) float64.

    The Tweedie denoiser of ``N(mu, Sigma)`` is ``D(x, t) = mu + K_t (x - alpha_t mu)`` (lesson 02,
    eq. 2). t: a float with sigma_t > 0 (``alpha_t^2 Sigma + sigma_t^2 I`` invertible even for a
    singular Sigma).
    """
    _check_gaussian(gauss)
    t = check_real(t, "t")  # float(t) read a numeric string
    check_process(process).check_t(t)
    a, s = float(process.alpha(t)), float(process.sigma(t))
    if s <= 0:
        raise ValueError(f"t must have sigma_t > 0 (t > {process.t_min}); got t = {t}")
    S = gauss.cov
    C = a * a * S + s * s * torch.eye(gauss.dim, dtype=torch.float64)
    return a * torch.linalg.solve(C, S).T  # C and S are symmetric: (S C^{-1})^T = C^{-1} S


def _check_gaussian(gauss):
    if not isinstance(gauss, Gaussian):
        raise TypeError(f"gauss must be a diffedu Gaussian (the recursion needs an affine denoiser); "
                        f"got {type(gauss).__name__}")


def _check_grid(process, ts):
    ts = as_times(ts)
    if ts.dim() != 1 or ts.numel() < 2:
        raise ValueError(f"ts must have shape (N+1,) with N >= 1; got {tuple(ts.shape)}")
    if not (ts[1:] < ts[:-1]).all():
        raise ValueError("ts must be strictly decreasing (from noise to data)")
    process.check_t(ts, "ts")  # decreasing and >= 0: only the last time can be 0 (the final jump)
    return [float(v) for v in ts]


def _start(gauss, process, t0, mean, cov):
    """The law at ``t0``: the given (mean, cov), each defaulting to the exact marginal's."""
    a = float(process.alpha(t0))
    m = a * gauss.mean if mean is None else as_param(mean, "mean", (gauss.dim,))
    P = gauss.marginal_cov(t0, process) if cov is None else as_param(cov, "cov", (gauss.dim, gauss.dim))
    if cov is not None:
        _eigh_psd(P, "cov")  # symmetric and positive semi-definite (a covariance)
    return m.clone(), P.clone()


def _propagate(gauss, process, ts, mean, cov, step):
    r"""Push ``N(mean, cov)`` at ``ts[0]`` through ``x <- A x + B D(x, t_i) + C z``; ``step(i)``
    returns (A, B, C). A last time of 0 is the final jump ``x = D(x, ts[-2])``."""
    _check_gaussian(gauss)
    check_process(process)
    ts = _check_grid(process, ts)
    m, P = _start(gauss, process, ts[0], mean, cov)
    eye = torch.eye(gauss.dim, dtype=torch.float64)
    mu = gauss.mean
    n = len(ts) - 1
    for i in range(n):
        t = ts[i]
        K = denoiser_gain(gauss, t, process)
        a = float(process.alpha(t))
        Dm = mu + K @ (m - a * mu)                       # D(m, t_i): the denoiser is affine
        if ts[i + 1] == 0.0:                             # final jump x = D(x, t_eps)
            m, P = Dm, K @ P @ K.T
            break
        A, B, C = step(i, ts)
        J = A * eye + B * K
        m = A * m + B * Dm
        P = J @ P @ J.T + C * C * eye
    return m, 0.5 * (P + P.T)


def euler_maruyama_moments(gauss: Gaussian, process, ts, *, mean=None, cov=None):
    r"""Exact mean and covariance of Euler-Maruyama's output on Gaussian data: ``((D,), (D, D))`` float64.

    The reverse SDE ``dx = [f x - g^2 s] dt + g dW_bar`` stepped as (Song et al. 2021, eq. 6)
    ``x_{i+1} = x_i + h_i [f(t_i) x_i - g(t_i)^2 s(x_i, t_i)] + sqrt(g(t_i)^2 |h_i|) z_i``,
    ``h_i = t_{i+1} - t_i < 0``, with the score from the denoiser by Tweedie,
    ``s = (alpha_t D - x) / sigma_t^2``: so ``A = 1 + h (f + g^2 / sigma^2)``,
    ``B = -h g^2 alpha / sigma^2``, ``C = sqrt(-h g^2)`` in the recursion of the module docstring.

    gauss: the data law ``N(mu, Sigma)``; ts: (N+1,) decreasing times, as for
    :func:`diffedu.samplers.euler_maruyama` (a last time of 0 is the final jump). mean, cov: the
    law of the start ``x`` at ts[0] (default: the exact marginal ``N(alpha mu, alpha^2 Sigma +
    sigma^2 I)``). Its distance to the exact marginal at ts[-1] is the weak error, O(1/N).
    """
    def step(i, ts):
        t, h = ts[i], ts[i + 1] - ts[i]
        f, g2 = float(process.f(t)), float(process.g2(t))
        a, s = float(process.alpha(t)), float(process.sigma(t))
        return 1 + h * (f + g2 / s**2), -h * g2 * a / s**2, math.sqrt(-h * g2)

    return _propagate(gauss, process, ts, mean, cov, step)


def ddpm_ancestral_moments(gauss: Gaussian, process, ts, *, mean=None, cov=None):
    r"""Exact mean and covariance of DDPM ancestral sampling on Gaussian data: ``((D,), (D, D))`` float64.

    Each step draws from the forward posterior ``q(x_s | x_t, x_0 = D(x_t, t))`` (Ho et al. 2020,
    eqs. 6-7, any process), s = t_{i+1} < t = t_i: with ``alpha_{t|s} = alpha_t / alpha_s`` and
    ``sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2``,
    ``x_s = (alpha_{t|s} sigma_s^2 / sigma_t^2) x_t + (alpha_s sigma_{t|s}^2 / sigma_t^2) D
    + (sigma_{t|s} sigma_s / sigma_t) z``. Arguments as :func:`euler_maruyama_moments`
    (the law of :func:`diffedu.samplers.ddpm_ancestral`'s output).
    """
    def step(i, ts):
        t, s_ = ts[i], ts[i + 1]
        a_t, s_t = float(process.alpha(t)), float(process.sigma(t))
        a_s, s_s = float(process.alpha(s_)), float(process.sigma(s_))
        a_ts = a_t / a_s
        var_ts = s_t**2 - a_ts**2 * s_s**2
        return a_ts * s_s**2 / s_t**2, a_s * var_ts / s_t**2, math.sqrt(max(var_ts, 0.0)) * s_s / s_t

    return _propagate(gauss, process, ts, mean, cov, step)
