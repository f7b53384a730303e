r"""Vector fields of the reverse-time dynamics, and converters between model parametrisations.

Every sampler in :mod:`diffedu.samplers` takes a denoiser ``D(x, t)``; a model that predicts
the noise, the score or the velocity becomes one here (and back), through the process's
``alpha_t`` and ``sigma_t`` only (the notation page, ``docs/notation.md``):

    eps_hat = (x - alpha_t D) / sigma_t,            D = (x - sigma_t eps_hat) / alpha_t,
    s       = (alpha_t D - x) / sigma_t^2,          D = (x + sigma_t^2 s) / alpha_t,
    v       = alpha'_t D + sigma'_t eps_hat,        D = (sigma_t v - sigma'_t x) / (alpha'_t sigma_t - sigma'_t alpha_t).

``v`` is the probability-flow ODE velocity ``dx/dt = f x - 1/2 g^2 s`` written without f and
g (which blow up at t = 1 for the linear interpolant): substituting f = alpha'/alpha,
g^2 = 2 sigma sigma' - 2 f sigma^2 and Tweedie's formula gives
``v = alpha' D + (sigma'/sigma)(x - alpha D)`` (Song et al. 2021, eq. 13; Karras et al. 2022,
eq. 4 with alpha = 1). The "velocity" of rectified-flow papers runs from noise to data with
data at t = 1; here t -> 1 - t, so their velocity is minus ours.
"""

from __future__ import annotations

import torch

from ._core import check_batch, check_callable, check_output, check_process, coefs

__all__ = [
    "pf_ode_velocity", "reverse_sde_drift",
    "denoiser_from_eps", "eps_from_denoiser",
    "denoiser_from_score", "score_from_denoiser",
    "denoiser_from_velocity", "velocity_from_denoiser",
]


#: Why the fields that divide by sigma_t are undefined at t = 0 (the error message says so).
_AT_ZERO = "the field divides by sigma_t, which is 0 at t = 0"


def _coefs4(process, t, x, positive=_AT_ZERO):
    """``alpha, sigma, alpha', sigma'`` at t > 0, in x's dtype/device, shaped () or (B, 1)."""
    a, s = coefs(process, t, x, positive=positive)
    if isinstance(t, torch.Tensor):
        tt = t.to(device=x.device, dtype=torch.float64)
    else:
        tt = torch.as_tensor(float(t), dtype=torch.float64, device=x.device)
    da, ds = process.d_alpha(tt).to(x.dtype), process.d_sigma(tt).to(x.dtype)
    if tt.dim() == 1:
        da, ds = da[:, None], ds[:, None]
    return a, s, da, ds


def pf_ode_velocity(denoiser, process, x, t):
    r"""Probability-flow ODE velocity ``v(x, t) = f x - 1/2 g^2 s = alpha' D + (sigma'/sigma)(x - alpha D)``.

    denoiser: ``D(x, t) -> (B, D)``; x: (B, D); t: float, 0-d or (B,) tensor with sigma_t > 0
    (t = 0 raises ``ValueError``: the formula divides by sigma; samplers stop at
    ``process.t_eps``). Returns (B, D). Integrating ``dx/dt = v`` from t_max down to 0 carries p_T to p_0
    (Song et al. 2021, eq. 13).
    """
    check_callable(denoiser, "denoiser", "a denoiser D(x, t) -> (B, D)")
    x = check_batch(x)
    a, s, da, ds = _coefs4(check_process(process), t, x)
    d = check_output(denoiser(x, t), x, "denoiser")
    return da * d + (ds / s) * (x - a * d)


def reverse_sde_drift(denoiser, process, x, t):
    r"""Drift of the reverse SDE ``dx = [f x - g^2 s] dt + g dW_bar`` (time running from T to 0).

    x: (B, D) -> (B, D). ``s = (alpha D - x)/sigma^2`` by Tweedie (Anderson 1982; Song et al.
    2021, eq. 6). Equals ``2 v - f x`` with v the PF-ODE velocity.
    """
    check_callable(denoiser, "denoiser", "a denoiser D(x, t) -> (B, D)")
    x = check_batch(x)
    process = check_process(process)
    a, s = coefs(process, t, x, positive=_AT_ZERO)
    tt = t.to(device=x.device, dtype=torch.float64) if isinstance(t, torch.Tensor) else float(t)
    f, g2 = process.f(tt).to(x.dtype), process.g2(tt).to(x.dtype)
    if f.dim() == 1:
        f, g2 = f[:, None], g2[:, None]
    score = (a * check_output(denoiser(x, t), x, "denoiser") - x) / s**2
    return f * x - g2 * score


def _check_model(model, name):
    if not callable(model):
        raise TypeError(f"{name} must be a callable model(x, t) -> (B, D); got {type(model).__name__}")
    return model


def denoiser_from_eps(eps_model, process):
    r"""Denoiser ``D(x, t) = (x - sigma_t eps_hat(x, t)) / alpha_t`` from a noise-prediction model."""
    _check_model(eps_model, "eps_model")
    check_process(process)

    def denoiser(x, t):
        a, s = coefs(process, t, x)
        return (x - s * eps_model(x, t)) / a
    return denoiser


def eps_from_denoiser(denoiser, process):
    r"""Noise prediction ``eps_hat(x, t) = (x - alpha_t D(x, t)) / sigma_t`` (needs sigma_t > 0)."""
    _check_model(denoiser, "denoiser")
    check_process(process)

    def eps(x, t):
        a, s = coefs(process, t, x, positive=_AT_ZERO)
        return (x - a * denoiser(x, t)) / s
    return eps


def denoiser_from_score(score_model, process):
    r"""Denoiser by Tweedie, ``D(x, t) = (x + sigma_t^2 s(x, t)) / alpha_t``."""
    _check_model(score_model, "score_model")
    check_process(process)

    def denoiser(x, t):
        a, s = coefs(process, t, x)
        return (x + s**2 * score_model(x, t)) / a
    return denoiser


def score_from_denoiser(denoiser, process):
    r"""Score by Tweedie, ``s(x, t) = (alpha_t D(x, t) - x) / sigma_t^2`` (needs sigma_t > 0)."""
    _check_model(denoiser, "denoiser")
    check_process(process)

    def score(x, t):
        a, s = coefs(process, t, x, positive=_AT_ZERO)
        return (a * denoiser(x, t) - x) / s**2
    return score


def denoiser_from_velocity(velocity_model, process):
    r"""Denoiser from a PF-ODE velocity model ``v = alpha' D + sigma' eps_hat`` (our time direction).

    Solving ``x = alpha D + sigma eps_hat`` and ``v = alpha' D + sigma' eps_hat`` for D gives
    ``D = (sigma v - sigma' x) / (alpha' sigma - sigma' alpha)``; the denominator is
    ``-alpha sigma lambda'_t`` and is nonzero wherever lambda is strictly decreasing. For the
    linear interpolant ``D = x - t v``.
    """
    _check_model(velocity_model, "velocity_model")
    check_process(process)

    def denoiser(x, t):
        a, s, da, ds = _coefs4(process, t, x)
        return (s * velocity_model(x, t) - ds * x) / (da * s - ds * a)
    return denoiser


def velocity_from_denoiser(denoiser, process):
    r"""PF-ODE velocity model ``v(x, t)`` from a denoiser (see :func:`pf_ode_velocity`)."""
    _check_model(denoiser, "denoiser")
    check_process(process)

    def velocity(x, t):
        return pf_ode_velocity(denoiser, process, x, t)
    return velocity
