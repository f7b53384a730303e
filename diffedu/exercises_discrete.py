r"""Checkers for the exercises of lessons 08 (masked diffusion), 09 (stochastic interpolants) and
10 (likelihood), with the API of :mod:`diffedu.exercises`: each prints one line and returns a
:class:`~diffedu.exercises.Feedback`; ``None`` or ``...`` prints "not answered yet". Expected
values come from the library, never from a stored string.
"""

from __future__ import annotations

import torch

from . import discrete as dd
from . import interpolants as di
from .exercises import Feedback, check_close

__all__ = ["check_first_hit_alpha_prob", "check_marginal_elbo", "check_one_step_prob",
           "check_interpolant_velocity", "check_interpolant_variance", "check_pf_divergence",
           "check_hutchinson_term"]


# --- lesson 08 ---------------------------------------------------------------------------------
def check_first_hit_alpha_prob(answer, n_masked: int, alpha: float, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = P(no token of ``n_masked`` has unmasked yet when alpha_t reaches ``alpha``),
    starting from the fully masked sequence: ``(1 - alpha)^n`` (lesson 08)."""
    return check_close(answer, torch.tensor((1 - alpha) ** n_masked, dtype=torch.float64),
                       name=f"P(first unmasking below alpha = {alpha:g}, n = {n_masked})", rtol=rtol)


def check_marginal_elbo(answer, dist: dd.SequenceDistribution, x0, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = the ELBO of sequence x0 (L,) under the context-free denoiser (lesson 08)."""
    x0 = torch.as_tensor(x0).reshape(1, -1)
    expected = dd.elbo(dist.marginal_denoiser, x0, dd.LinearMask(), dist.V)[0]
    return check_close(answer, expected, name="ELBO with the context-free denoiser", rtol=rtol)


def check_one_step_prob(answer, dist: dd.SequenceDistribution, x0, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = probability that the one-step sampler returns sequence x0 (lesson 08)."""
    x0 = torch.as_tensor(x0).reshape(1, -1)
    law = dd.stepwise_law(dist.denoiser, dist.V, dist.L, dd.LinearMask(), 1)
    return check_close(answer, law[dist.index(x0)][0], name="one-step sampler probability", rtol=rtol)


# --- lesson 09 ---------------------------------------------------------------------------------
def check_interpolant_velocity(answer, bridge: di.GaussianMixtureInterpolant, x, t, *,
                               rtol: float = 1e-6) -> Feedback:
    r"""``answer`` (B, D) = the interpolant's velocity ``b(x, t)`` (lesson 09)."""
    return check_close(answer, bridge.velocity(torch.as_tensor(x, dtype=torch.float64), t),
                       name=f"velocity at t={float(t):g}", rtol=rtol, atol=1e-9)


def check_interpolant_variance(answer, bridge: di.GaussianMixtureInterpolant, t, *,
                               rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = the variance of x_t for 1-D Gaussian ends (lesson 09)."""
    _, _, cov, _, _ = bridge.components(t)
    if cov.shape[0] != 1 or cov.shape[1] != 1:
        raise ValueError("check_interpolant_variance needs 1-D Gaussian ends")
    return check_close(answer, cov[0, 0, 0], name=f"Var[x_t] at t={float(t):g}", rtol=rtol)


# --- lesson 10 ---------------------------------------------------------------------------------
def check_pf_divergence(answer, gaussian, process, t, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = the divergence of the PF-ODE velocity ``v = f x - g^2 s / 2`` for Gaussian
    data: ``D f + 1/2 g^2 tr((alpha^2 C + sigma^2 I)^{-1})``, the same at every x (lesson 10)."""
    from ._core import check_process

    check_process(process)
    cov = gaussian.marginal_cov(t, process)
    expected = gaussian.dim * process.f(float(t)) + 0.5 * process.g2(float(t)) * torch.linalg.inv(cov).trace()
    return check_close(answer, expected, name=f"div v at t={float(t):g}", rtol=rtol)


def check_hutchinson_term(answer, jacobian, probe, *, rtol: float = 1e-9) -> Feedback:
    r"""``answer`` = one Hutchinson term ``eps^T J eps`` for the matrix J and probe eps (lesson 10)."""
    J = torch.as_tensor(jacobian, dtype=torch.float64)
    e = torch.as_tensor(probe, dtype=torch.float64)
    return check_close(answer, e @ J @ e, name="eps^T J eps", rtol=rtol, atol=1e-12)
