r"""Few-step samplers from recent papers, in the samplers' conventions, measured against the truth.

* :func:`evodiff`: EVODiff's variance-optimised second-order multistep update (Li, Chen and Zeng
  2025, "EVODiff: Entropy-aware variance optimized diffusion inference", NeurIPS; the update of
  their EDM code, ``samplers/evodiff.py``, ``solver_type="evodiff"``). Every coefficient is in
  closed form: least-squares projections of the denoiser outputs on each other (the balance that
  minimises the variance of a difference ``D_i - r D_{i-1}``, ``r* = <D_i, D_{i-1}> / |D_{i-1}|^2``)
  mixed with fixed functions (sigmoids, clamps) of them.
* :func:`five_step_grid` and :data:`FIVE_STEP`: the five-step recipe of Li (2025),
  "Hyperparameters are all you need: Using five-step inference for an original diffusion model
  to generate images comparable to the latest distillation model" (code ``txt2img.py``,
  ``stop_steps = 5``): first-order DPM-Solver++ (DDIM) on a grid that stops early and returns
  the still noisy sample. A configuration of :func:`diffedu.samplers.ddim`, not a new sampler.

Left out of both papers: Free-U and the "golden noise" network (image-model parts of the recipe),
EVODiff's noise-prediction variant and its single-step solvers. Lesson 17 (few-step sampling).
"""

from __future__ import annotations

import math

import torch

from ._core import check_int, check_positive, check_process
from .processes import SIGMA_RATIO_MIN, VP
from .samplers import _check, _ddim_step, _steps, ddim

__all__ = ["evodiff", "five_step_grid", "FIVE_STEP"]


def _row_dot(a, b):
    return (a * b).sum(1, keepdim=True)


def _projection(a, b):
    r"""Per row, ``clamp(<a, b> / <b, b>, -2, 2)``: the r minimising ``|a - r b|^2`` (EVODiff's
    ``projection_coefficient``, clamped as published); 0 (the least-norm minimiser) where b = 0,
    which the published code leaves 0/0 (a zero-mean target started at x = 0). (B, 1)."""
    den = _row_dot(b, b)
    r = _row_dot(a, b) / torch.where(den > 0, den, torch.ones_like(den))
    return torch.where(den > 0, r, torch.zeros_like(r)).clamp(-2.0, 2.0)


def evodiff(D, process, x, ts, *, generator=None, callback=None, progress=False):
    r"""EVODiff (Li, Chen and Zeng 2025): a second-order multistep update with variance-optimised
    differences, one denoiser call per step.

    With ``kappa = sigma/alpha`` (EDM's sigma), ``h = 1/kappa_{i+1} - 1/kappa_i``, ``r = h^lambda_{i-1} / h^lambda_i``,
    the DDIM step ``x_E = (sigma_{i+1}/sigma_i) x_i + sigma_{i+1} h D_i`` and per row:

    1. balance: ``b = (1 - w) sqrt((sigma_{i+1}/sigma_i) / (sigma_i/sigma_{i-1})) + w P(D_i, D_{i-1})``,
       ``P(a, b) = clamp(<a,b>/<b,b>, -2, 2)``, ``w = (1 - tau^2)/2`` with the normalised noise level
       ``tau = (kappa_{i+1} + kappa_N)/(kappa_0 + kappa_N)``; ``D1 = D_i - b D_{i-1}`` (for ``b = 1``
       this is DPM-Solver++(2M)'s difference);
    2. probe: ``x_P = x_E + sigma_{i+1} h D1 / (2 r')``, ``r' = clamp(sigmoid(|b|/4) r, r/4, 3r/2)``,
       and one call ``D_P = D(x_P, t_{i+1})`` (it is the next step's ``D_{i+1}``);
    3. correct: the same balance for ``D2 = D_P - b' D_i``; ``B = -eta D1 / r + (1 - eta) r D2`` with
       ``eta = sigmoid(|P(B_+ + B_-, B_+ - B_-)| / 2) / 2``, ``B_- = D1/(r h)``, ``B_+ = r D2 / h``; and
       ``x_{i+1} = x_E + sigma_{i+1} h B / (2 zeta)``, ``zeta = sigmoid(|z| - 1/2)`` where
       ``z = P(x_P - x_E - sigma_{i+1} h B / (2 r'), D1) / (h sigma_{i+1})`` (for more than 20 steps
       the published ``zeta = sigmoid(-(|z| - 1/2) c)``, ``c = sigmoid(P(D_i, (D_i - D_{i-1})/h) (2 - (sigma_{i+1}/sigma_i)^2))``).

    The first step is DDIM. On a grid ending ``..., t_eps, 0`` the step to ``t_eps`` stops at the
    probe (no correction: its call is the final jump's denoising), so N steps cost N calls, as
    DDIM; without the jump every step is corrected (N + 1 calls). Where the paper's code ends
    with its own first-order step and no final denoising, this takes the samplers' final jump.
    Order against the exact Gaussian flow: ``tests/test_few_step.py``.
    """
    x, g, D = _check(D, process, x, ts, generator, callback)
    kappa = [s / a for s, a in zip(g.s[:g.n + 1 - g.jump], g.a)]
    k0, kN = kappa[0], kappa[-1]
    many = g.n - g.jump > 20                           # the published switch at 20 steps
    if callback is not None:
        callback(0, g.t[0], x)
    d_prev = None
    d = D(x, g.t[0])
    for i in _steps(g.n, progress):
        if g.jump and i == g.n - 1:
            x = d                                      # final jump: D at t_eps (the last probe's call)
        elif d_prev is None:                           # first step: DDIM, then D at the new point
            x = _ddim_step(x, d, *g.ddim_coefs(i))
            d_prev, d = d, D(x, g.t[i + 1])
        else:
            s1, s0, sm = g.s[i + 1], g.s[i], g.s[i - 1]
            h = 1 / kappa[i + 1] - 1 / kappa[i]        # = e^{lambda_{i+1}} - e^{lambda_i}
            r = g.h(i - 1) / g.h(i)
            x_e = _ddim_step(x, d, *g.ddim_coefs(i))   # (sigma_{i+1}/sigma_i) x + sigma_{i+1} h D_i
            tau = (kappa[i + 1] + kN) / (k0 + kN)
            w = 0.5 * (1 - tau * tau)
            base = math.sqrt((s1 / s0) / (s0 / sm))
            b = (1 - w) * base + w * _projection(d, d_prev)   # the balance of D_i - b D_{i-1}
            d1 = d - b * d_prev
            r_i = (torch.sigmoid(0.25 * b.abs()) * r).clamp(0.25 * r, 1.5 * r)
            x_p = x_e + (0.5 * s1 * h) * d1 / r_i      # the probe
            d_p = D(x_p, g.t[i + 1])
            if g.jump and i == g.n - 2:
                x = x_p                                # last step before the jump: no correction
            else:
                d2 = d_p - ((1 - w) * base + w * _projection(d_p, d)) * d
                b_pre, b_next = d1 / (r * h), r * d2 / h
                eta = 0.5 * torch.sigmoid((0.5 * _projection(b_next + b_pre, b_next - b_pre)).abs())
                B = (-eta / r) * d1 + (r * (1 - eta)) * d2
                z = _projection(x_p - x_e - (0.5 * s1 * h) * B / r_i, d1) / (h * s1)
                if many:
                    c = torch.sigmoid(_projection(d, (d - d_prev) / h) * (2 - (s1 / s0) ** 2))
                    zeta = torch.sigmoid(-(z.abs() - 0.5) * c)
                else:
                    zeta = torch.sigmoid(z.abs() - 0.5)
                x = x_e + (0.5 * s1 * h) * B / zeta
            d_prev, d = d, d_p
        if callback is not None:
            callback(i + 1, g.t[i + 1], x)
    return x


def five_step_grid(process, n: int = 5, *, rho_noise: float = 5.0, n_noise: int = 8, stop: int = 6,
                   rho_time: float = 1.2) -> torch.Tensor:
    r"""The time grid of Li's five-step recipe: (n + 1,) float64 from ``t_max`` down to a stop time > 0.

    As published (``txt2img.py``, ``stop_steps = 5``): take ``n_noise`` = 8 noise levels of Karras
    et al.'s spacing with ``rho_noise`` = 5 between the process's ``sigma/alpha`` at t_eps (0.002)
    and at t_max; stop at the one of index ``stop`` = 6 (``sigma/alpha`` about 0.13 when the largest is
    14.6, Stable Diffusion's); between t_max and that stop place ``n + 1`` times spaced as Karras'
    sigmas with ``rho_time`` = 1.2 *in the DDPM time* (the timestep index t/1000 of the linear-beta
    VP, :class:`~diffedu.processes.VP` here, where Stable Diffusion's scaled-linear schedule was
    used). Times are carried to ``process`` through equal ``lambda`` (DDIM and the other exponential
    integrators depend only on ``lambda``). The grid ends above 0: :func:`~diffedu.samplers.ddim`
    on it takes n steps and n calls and returns the noisy sample at the stop time, as the recipe
    does (its decoder takes it as it is); append a 0 for a final denoising (one more call).
    """
    process = check_process(process)
    n = check_int(n, "n", minimum=1)
    n_noise = check_int(n_noise, "n_noise", minimum=2)
    stop = check_int(stop, "stop", minimum=1, maximum=n_noise - 1)
    rho_noise, rho_time = check_positive(rho_noise, "rho_noise"), check_positive(rho_time, "rho_time")
    hi = math.exp(-float(process.lam(float(process.t_max))))        # sigma/alpha at t_max
    lo = SIGMA_RATIO_MIN
    u = stop / (n_noise - 1)
    level = (hi ** (1 / rho_noise) + u * (lo ** (1 / rho_noise) - hi ** (1 / rho_noise))) ** rho_noise
    vp = VP()
    c_hi = float(vp.t_of_lam(torch.tensor(-math.log(hi), dtype=torch.float64)))    # DDPM time of the ends
    c_lo = float(vp.t_of_lam(torch.tensor(-math.log(level), dtype=torch.float64)))
    v = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    c = (c_hi ** (1 / rho_time) + v * (c_lo ** (1 / rho_time) - c_hi ** (1 / rho_time))) ** rho_time
    # lambda of the DDPM time c: VP's formula, also past c = 1 (a process noisier than VP reaches)
    B = vp.beta_min * c + 0.5 * (vp.beta_max - vp.beta_min) * c**2
    ts = process.t_of_lam(-0.5 * torch.log(torch.expm1(B)))
    ts[0] = float(process.t_max)
    return ts


#: The five-step recipe as a configuration of the existing samplers: DDIM (DPM-Solver++ of order 1)
#: on :func:`five_step_grid` (5 steps, 5 calls, no final denoising).
FIVE_STEP = {"sampler": ddim, "order": 1, "grid": five_step_grid, "steps": 5, "final_denoise": False}
