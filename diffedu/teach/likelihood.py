r"""Lesson 11 (likelihood from the probability-flow ODE): the likelihood-along-a-line plot and
slider, the probe-spread and bits-per-dimension plots, the exercise checkers, and the cached
digit-network likelihoods (``data/digit_likelihood.pt``, ``python3 -m diffedu.teach.likelihood digits``).

The maths is in the core: the PF-ODE likelihood (the instantaneous change of variables, solved
with an adaptive solver) is :func:`diffedu.likelihood.log_likelihood`; the divergence, exact or by
Hutchinson's estimator, is :func:`diffedu.calculus.divergence`; the PF-ODE velocity is
:func:`diffedu.flows.pf_ode_velocity`; the constant divergence of a Gaussian's velocity is
:meth:`diffedu.gaussian.Gaussian.pf_ode_divergence`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .._core import check_process
from .._paths import data_path, writable_data_path
from ..calculus import divergence
from ..likelihood import dequantise, log_likelihood
from . import models, plots
from . import widgets as _w
from .checks import Feedback, check_close, check_implementation

__all__ = ["plot_ode_likelihood", "likelihood_widget", "plot_probe_spread", "plot_bits_per_dim",
           "check_pf_divergence", "check_hutchinson_term", "check_hutchinson_estimator", "digit_test_points",
           "digit_log_likelihoods", "load_digit_log_likelihoods"]


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


def plot_probe_spread(n_probes, spreads, spread_se, slope, ax=None):
    r"""Log-log plot of the spread of Hutchinson likelihood estimates against the number of probes
    (points with error bars), the fitted line of slope ``slope`` and the 1/sqrt(probes) reference
    through the first point. Returns the Axes."""
    import numpy as np

    ax = plots._ax(ax)
    P, s, e = (np.asarray(a, dtype=float) for a in (n_probes, spreads, spread_se))
    ax.errorbar(P, s, yerr=e, fmt="o", color="C0", label="spread over repeats (+- its standard error)")
    ax.plot(P, s[0] * (P / P[0]) ** slope, "C0-", lw=1, label=f"fitted slope {slope:.2f}")
    ax.plot(P, s[0] * (P / P[0]) ** -0.5, "k--", lw=0.8, label="slope -1/2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Hutchinson probes per point")
    ax.set_ylabel("spread of log p estimates (nats)")
    ax.legend(fontsize="x-small")
    return ax


def plot_bits_per_dim(results: dict, ax=None, *, uniform=None):
    r"""Horizontal bars of bits per dimension ``{name: (mean, standard error)}`` with error bars,
    and a dotted line at ``uniform`` (the uniform law's log2 L). Returns the Axes."""
    ax = plots._ax(ax)
    names = list(results)
    means = [results[n][0] for n in names]
    errs = [results[n][1] for n in names]
    ax.barh(range(len(names)), means, xerr=errs, color=[f"C{i}" for i in range(len(names))], alpha=0.8)
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.invert_yaxis()
    if uniform is not None:
        ax.axvline(uniform, color="k", ls=":", lw=1, label=f"uniform over the levels: {uniform:.2f}")
        ax.legend(fontsize="x-small", loc="lower right")
    ax.set_xlabel("bits per dimension on held-out digits (lower is better)")
    return ax


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


# --- the digit network's likelihood (cached: 297 PF-ODE solves with exact 64-D divergences) ----
DIGIT_LL_FILE = "digit_likelihood.pt"
#: Settings of the cached digit likelihoods: dequantisation seed, solver tolerances, the network's step.
DIGIT_LL_CONFIG = dict(seed=0, bin_width=1 / 16, rtol=1e-3, atol=1e-5, divergence="hutchinson", n_probes=4,
                       step=20000)


def digit_test_points():
    """The 297 held-out digits (:func:`diffedu.teach.models.digit_split`), uniformly dequantised over
    their bins of width 1/16 (seeded; :func:`diffedu.likelihood.dequantise`): (297, 64) float64."""
    _, held_out, _, _ = models.digit_split()
    g = torch.Generator().manual_seed(DIGIT_LL_CONFIG["seed"])
    return dequantise(held_out.double(), DIGIT_LL_CONFIG["bin_width"], generator=g)


def digit_log_likelihoods(points=None, *, divergence: str | None = None, n_probes: int | None = None, generator=None):
    r"""``log p_{t_eps}`` of the digit network (:func:`diffedu.teach.models.load_digit_model`) at
    ``points`` (default :func:`digit_test_points`) by :func:`diffedu.likelihood.log_likelihood`
    (PF-ODE from t_eps, default prior, ``DIGIT_LL_CONFIG``'s tolerances and divergence: Hutchinson
    with 4 Rademacher probes per point, fixed along each solve, unbiased; the exact 64-D divergence
    costs 16 times more): (B,) nats."""
    c = DIGIT_LL_CONFIG
    net = models.load_digit_model(c["step"])
    x = digit_test_points() if points is None else points
    D = lambda z, t: net.denoiser(z.float(), t).double()  # noqa: E731  the network runs in float32
    return log_likelihood(D, net.process, x.double(), rtol=c["rtol"], atol=c["atol"],
                          divergence=c["divergence"] if divergence is None else divergence,
                          n_probes=c["n_probes"] if n_probes is None else n_probes,
                          generator=torch.Generator().manual_seed(c["seed"] + 1) if generator is None else generator)


def load_digit_log_likelihoods(path=None) -> torch.Tensor:
    """The cached :func:`digit_log_likelihoods` of the 297 test points (``data/digit_likelihood.pt``)."""
    path = data_path(DIGIT_LL_FILE) if path is None else Path(path)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob["config"] != DIGIT_LL_CONFIG:
        raise ValueError(f"{path} was made with {blob['config']}, not DIGIT_LL_CONFIG: rerun "
                         "python3 -m diffedu.teach.likelihood digits")
    return blob["log_p"].double()


def main(argv=None) -> int:
    import sys
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["digits"]:
        print("usage: python3 -m diffedu.teach.likelihood digits   (recomputes data/digit_likelihood.pt)")
        return 2
    import time
    t0 = time.perf_counter()
    ll = digit_log_likelihoods()
    torch.save({"config": dict(DIGIT_LL_CONFIG), "log_p": ll.float()}, writable_data_path(DIGIT_LL_FILE))
    print(f"wrote {writable_data_path(DIGIT_LL_FILE)} in {time.perf_counter() - t0:.0f} s")
    return 0


def _hutchinson_reference(f, x, probes):
    return divergence(f, x, method="hutchinson", probes=probes)


def _hutchinson_inputs(generator, dtype, shape):
    B, D = shape
    A = torch.randn(D, D, generator=generator, dtype=dtype)
    b = torch.randn(D, generator=generator, dtype=dtype)
    P = int(torch.randint(1, 5, (), generator=generator))
    z = (torch.randint(0, 2, (P, B, D), generator=generator) * 2 - 1).to(dtype)
    return {"f": lambda y: torch.tanh(y @ A.T + b), "x": torch.randn(B, D, generator=generator, dtype=dtype), "probes": z}


def check_hutchinson_estimator(answer):
    r"""``answer(f, x, probes)`` = Hutchinson's divergence estimate ``mean_p z_p^T J_f(x) z_p`` per row:
    f a field (B, D) -> (B, D), x (B, D), probes (P, B, D); returns (B,). Checked on fresh inputs
    against :func:`diffedu.calculus.divergence` with the same probes."""
    return check_implementation(answer, _hutchinson_reference, _hutchinson_inputs, name="Hutchinson estimator")


if __name__ == "__main__":
    raise SystemExit(main())
