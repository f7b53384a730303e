r"""Lesson 11 (likelihood from the probability-flow ODE): the likelihood-along-a-line plot and
slider, and the exercise checkers.

The maths is in the core: the PF-ODE likelihood (the instantaneous change of variables, solved
with an adaptive solver) is :func:`diffedu.likelihood.log_likelihood`; the divergence, exact or by
Hutchinson's estimator, is :func:`diffedu.calculus.divergence`; the PF-ODE velocity is
:func:`diffedu.flows.pf_ode_velocity`; the constant divergence of a Gaussian's velocity is
:meth:`diffedu.gaussian.Gaussian.pf_ode_divergence`.
"""

from __future__ import annotations

import torch

from .._core import check_process
from ..calculus import divergence
from ..likelihood import log_likelihood
from . import plots
from . import widgets as _w
from .checks import Feedback, check_close

__all__ = ["plot_ode_likelihood", "likelihood_widget", "check_pf_divergence", "check_hutchinson_term"]


# --- plot and widget --------------------------------------------------------------------------
def plot_ode_likelihood(dist, process, points, ax=None, *, log10_rtol: float = -3.0, n_probes: int = 0,
                        seed: int = 0):
    r"""``log p(x)`` along a line of points: exact (curve) against the PF-ODE change of variables
    (:func:`diffedu.likelihood.log_likelihood`, dots).

    dist: a distribution with exact marginals (its denoiser drives the ODE); points: (B, D).
    The solver runs at ``rtol = 10^log10_rtol`` (``atol = rtol / 100``) from ``process.t_eps``,
    with the exact divergence (``n_probes = 0``) or Hutchinson with ``n_probes`` Rademacher
    probes (seeded by ``seed``). The exact prior ``log p_T`` is used, so the gap is the
    solver's and the estimator's alone; the title gives the largest gap. Returns the Axes.
    """
    process = check_process(process)
    n_probes = int(n_probes)
    if n_probes < 0:
        raise ValueError(f"n_probes must be >= 0 (0 = exact divergence); got {n_probes}")
    t_eps, T = process.t_eps, float(process.t_max)
    rtol = 10.0**log10_rtol
    kw = {"divergence": "exact"} if n_probes == 0 else {
        "divergence": "hutchinson", "n_probes": n_probes, "generator": torch.Generator().manual_seed(seed)}
    ll = log_likelihood(dist.bind(process).denoiser, process, points, t_start=t_eps,
                        prior=lambda z: dist.log_prob(z, T, process), rtol=rtol, atol=rtol * 1e-2, **kw)
    exact = dist.log_prob(points, t_eps, process)
    s = torch.linspace(0, 1, points.shape[0], dtype=torch.float64)
    ax = plots._ax(ax)
    ax.plot(plots._np(s), plots._np(exact), "k-", label="exact log p")
    ax.plot(plots._np(s), plots._np(ll), "C1o", ms=4, label="PF-ODE change of variables")
    err = float((ll - exact).abs().max())
    how = "exact divergence" if n_probes == 0 else f"Hutchinson, {n_probes} probe(s)"
    ax.set_title(f"rtol = 1e{log10_rtol:g}, {how}: max error {err:.2g} nats", fontsize="small")
    ax.set_xlabel("position along the line")
    ax.set_ylabel("log p(x)")
    ax.legend(fontsize="x-small")
    return ax


def _draw_likelihood(log10_rtol, n_probes, *, dist, process, points, seed):
    ax = plots.new_axes(figsize=(6.4, 3.6))
    plot_ode_likelihood(dist, process, points, ax, log10_rtol=log10_rtol, n_probes=n_probes, seed=seed)
    return ax.figure


def likelihood_widget(dist, process, points, *, log10_rtol: float = -3.0, n_probes: int = 0):
    """:func:`plot_ode_likelihood` with sliders: the solver tolerance (the adaptive solver's number
    of steps follows it) and the number of Hutchinson probes, 0 meaning the exact divergence."""
    check_process(process)
    return _w.interactive(
        _draw_likelihood,
        log10_rtol=_w.float_slider(log10_rtol, -8.0, -1.0, 1.0, "log10 rtol"),
        n_probes=_w.int_slider(n_probes, 0, 16, "probes (0 = exact)"),
        dist=dist, process=process, points=points, seed=0,
    )


# --- exercise checkers ------------------------------------------------------------------------
def check_pf_divergence(answer, gaussian, process, t, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = the divergence of the PF-ODE velocity ``v = f x - g^2 s / 2`` for Gaussian
    data, ``D f + 1/2 g^2 tr((alpha^2 C + sigma^2 I)^{-1})``, the same at every x
    (:meth:`~diffedu.gaussian.Gaussian.pf_ode_divergence`)."""
    check_process(process)
    return check_close(answer, gaussian.pf_ode_divergence(float(t), process), name=f"div v at t={float(t):g}",
                       rtol=rtol)


def check_hutchinson_term(answer, jacobian, probe, *, rtol: float = 1e-9) -> Feedback:
    r"""``answer`` = one Hutchinson term ``eps^T J eps`` for the matrix J (n, n) and the probe eps (n,).

    The expected value is the library's estimator (:func:`diffedu.calculus.divergence`,
    ``method="hutchinson"``) with that one probe, applied to the linear field ``x -> J x``, whose
    Jacobian is J.
    """
    J = torch.as_tensor(jacobian, dtype=torch.float64)
    e = torch.as_tensor(probe, dtype=torch.float64)
    if J.dim() != 2 or J.shape[0] != J.shape[1]:
        raise ValueError(f"jacobian must be a square matrix (n, n); got shape {tuple(J.shape)}")
    if e.shape != J.shape[:1]:
        raise ValueError(f"probe must have shape ({J.shape[0]},) to match jacobian; got {tuple(e.shape)}")
    x = torch.zeros(1, J.shape[0], dtype=torch.float64)
    expected = divergence(lambda z: z @ J.T, x, method="hutchinson", probes=e.reshape(1, 1, -1))[0]
    return check_close(answer, expected, name="eps^T J eps", rtol=rtol, atol=1e-12)
