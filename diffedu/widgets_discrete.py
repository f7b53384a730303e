r"""Plots and sliders for lessons 08 (masked diffusion), 09 (stochastic interpolants) and 10
(likelihood from the probability-flow ODE).

As in :mod:`diffedu.widgets`: each ``*_widget`` builds an ``ipywidgets.interactive`` around a
plain drawing function that returns a fresh Figure (kept in ``.result``); tests move a slider
and check the data drawn. In a lesson, end the cell with the widget and mark it
``# NBVAL_IGNORE_OUTPUT``.
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import torch

from . import discrete as dd
from . import interpolants as di
from . import plotting as P
from . import samplers as ds
from . import widgets as _widgets  # noqa: F401  (registers the static fallbacks)

__all__ = ["zipf_tokens", "unmasked_token_law", "plot_truncated_unmasking", "truncation_widget", "plot_entropy_vs_q",
           "plot_stepwise_law", "stepwise_widget", "plot_elbo_integrands",
           "plot_interpolant_paths", "interpolant_widget", "plot_ode_likelihood", "likelihood_widget"]

# The callbacks return bare Figures that pyplot never holds, so interactive must display the returned
# value itself (auto_display); otherwise it shows only pyplot's figures, i.e. nothing.
_SHOW = {"auto_display": True}
_SLIDER = dict(continuous_update=False, style={"description_width": "initial"},
               layout=W.Layout(width="420px"))


def zipf_tokens(vocab_size: int, s: float = 1.0) -> torch.Tensor:
    r"""A Zipf-like token distribution ``p_v ~ 1 / (v + 1)^s`` over ``vocab_size`` tokens, float64."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an integer >= 2; got {vocab_size!r}")
    w = 1.0 / torch.arange(1, vocab_size + 1, dtype=torch.float64) ** s
    return w / w.sum()


def unmasked_token_law(tok, q: float, bits: int):
    r"""Exact law of the token drawn when a masked position unmasks, and ``P(unmask)``, when the
    categorical ``[q tok_1, ..., q tok_V, 1 - q]`` is drawn by Gumbel-max with ``bits``-bit uniforms."""
    pi = torch.cat([q * tok, torch.tensor([1 - q], dtype=torch.float64)])
    pe = dd.gumbel_max_probs(pi, bits)
    return pe[:-1] / pe[:-1].sum(), float(pe[:-1].sum())


def plot_truncated_unmasking(vocab_size: int, log10_q: float, *, bits=(24, 53)):
    r"""Token law given that a masked position unmasks, when the categorical over
    ``[q p_1, ..., q p_V, 1 - q]`` is drawn by Gumbel-max with ``bits``-bit uniforms.

    Bars: the ideal ``p`` (a Zipf law over ``vocab_size`` tokens) and the exact effective law
    (:func:`diffedu.discrete.gumbel_max_probs`) for each ``bits``; entropies in the legend.
    """
    tok, q = zipf_tokens(vocab_size), 10.0**log10_q
    ax = P.new_axes(figsize=(6.4, 3.6))
    v = np.arange(vocab_size)
    width = 0.8 / (1 + len(bits))
    ax.bar(v - 0.4 + width / 2, tok.numpy(), width, color="0.6", label=f"ideal, H = {float(dd.entropy(tok)):.3f}")
    for i, b in enumerate(bits):
        eff, rate = unmasked_token_law(tok, q, b)
        ax.bar(v - 0.4 + width * (i + 1.5), eff.numpy(), width, color=f"C{i}",
               label=f"{b} bits, H = {float(dd.entropy(eff)):.3f}, P(unmask)/q = {rate / q:.3f}")
    ax.set_xlabel("token")
    ax.set_ylabel("P(token | unmasked)")
    ax.set_title(f"unmasking probability q = 1e{log10_q:g}", fontsize="small")
    ax.legend(fontsize="x-small")
    return ax.figure


def truncation_widget(vocab_size: int = 6, log10_q: float = -6.5):
    """Sliders: vocabulary size and log10 of the unmasking probability (lesson 08)."""
    return W.interactive(
        plot_truncated_unmasking, _SHOW,
        vocab_size=W.IntSlider(value=vocab_size, min=2, max=12, step=1, description="vocabulary size", **_SLIDER),
        log10_q=W.FloatSlider(value=log10_q, min=-9.0, max=-3.0, step=0.25, description="log10 q", **_SLIDER),
        bits=W.fixed((24, 53)),
    )


def plot_entropy_vs_q(tok, log10_qs, *, bits=(24, 53), ax=None):
    """Entropy of the effective token law against log10 q, one curve per ``bits``."""
    ax = ax or P.new_axes()
    for i, b in enumerate(bits):
        h = [float(dd.entropy(unmasked_token_law(tok, 10.0**lq, b)[0])) for lq in log10_qs]
        ax.plot(log10_qs, h, "o-", color=f"C{i}", ms=3, label=f"{b}-bit uniforms")
    ax.axhline(float(dd.entropy(tok)), color="0.5", ls="--", label="ideal")
    ax.set_xlabel("log10 q (probability of unmasking in one step)")
    ax.set_ylabel("entropy of the unmasked token (nats)")
    ax.legend(fontsize="small")
    return ax


def plot_stepwise_law(dist: dd.SequenceDistribution, steps: int, *, schedule=None):
    r"""Exact law of the step-wise sampler with ``steps`` steps against the target, over all
    sequences sorted by target probability; the title gives the total-variation distance."""
    schedule = schedule or dd.LinearMask()
    law = dd.stepwise_law(dist.denoiser, dist.V, dist.L, schedule, steps)
    order = torch.argsort(dist.table, descending=True)
    ax = P.new_axes(figsize=(6.4, 3.4))
    ax.plot(dist.table[order].numpy(), "k-", lw=1.5, label="target p_0")
    ax.plot(law[order].numpy(), "C1.", ms=4, label=f"step-wise, {steps} steps")
    ax.plot(dist.product_of_marginals().table[order].numpy(), "C0-", lw=0.6, alpha=0.6,
            label="product of marginals (1 step)")
    tv = 0.5 * float((law - dist.table).abs().sum())
    ax.set_title(f"{steps} steps: total variation to p_0 = {tv:.4f}", fontsize="small")
    ax.set_xlabel("sequence (sorted by p_0)")
    ax.set_ylabel("probability")
    ax.legend(fontsize="x-small")
    return ax.figure


def stepwise_widget(dist: dd.SequenceDistribution, steps: int = 4):
    """Slider: number of steps of the step-wise sampler (lesson 08)."""
    return W.interactive(
        plot_stepwise_law, _SHOW,
        dist=W.fixed(dist),
        steps=W.IntSlider(value=steps, min=1, max=64, step=1, description="steps", **_SLIDER),
        schedule=W.fixed(dd.LinearMask()),
    )


def plot_elbo_integrands(dist: dd.SequenceDistribution, x0, schedules, denoiser=None, *, axs=None, n: int = 200):
    r"""The ELBO integrand of one sequence against t (different for every schedule) and against
    alpha_t (the same curve): ``(-alpha'_t)/(1 - alpha_t) E[sum_{i masked} log D]``."""
    denoiser = denoiser or dist.marginal_denoiser
    if axs is None:
        axs = P.new_axes(2, figsize=(10, 3.4))
    x0 = x0.reshape(1, -1)
    cost, m = dd._mask_costs(denoiser, x0, dist.V)
    L = x0.shape[1]
    t = torch.linspace(1e-3, 1 - 1e-3, n, dtype=torch.float64)
    for i, s in enumerate(schedules):
        a, da = s.alpha(t), s.d_alpha(t)
        mm = m.clamp(min=1).to(torch.float64)
        Pm = (1 - a[:, None]) ** (mm[None] - 1) * a[:, None] ** (L - m[None].to(torch.float64))
        per_alpha = -(Pm @ cost.T)[:, 0]  # integrand per unit of alpha
        axs[0].plot(t.numpy(), (-da * per_alpha).numpy(), color=f"C{i}", label=repr(s))
        axs[1].plot(a.numpy(), per_alpha.numpy(), color=f"C{i}", lw=3 - i * 0.7, label=repr(s))
    axs[0].set_xlabel("t")
    axs[0].set_ylabel("ELBO integrand per unit t")
    axs[1].set_xlabel("alpha_t (fraction unmasked)")
    axs[1].set_ylabel("ELBO integrand per unit alpha")
    axs[0].legend(fontsize="x-small")
    return axs


def plot_interpolant_paths(eps: float, a: float, *, rho0, rho1, n_paths: int = 12, n_hist: int = 1500,
                           steps: int = 100, seed: int = 0):
    r"""Left: backward-SDE paths from rho_1 to the data with noise level eps, for
    ``LinearInterpolant(a)``, over the exact density of x_t at t = 0.5. Right: a histogram of
    the first coordinate at t = 0 against the exact rho_0 marginal."""
    bridge = di.GaussianMixtureInterpolant(di.LinearInterpolant(a), rho0, rho1)
    g = torch.Generator().manual_seed(seed)
    x1 = rho1.sample(n_hist, generator=g, dtype=torch.float64)
    ts = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    traj = di.sde_trajectory(bridge, x1, ts, eps, generator=g)
    axs = P.new_axes(2, figsize=(10, 3.8))
    lim = (-4.0, 4.0)
    u = torch.linspace(*lim, 120, dtype=torch.float64)
    X, Y = torch.meshgrid(u, u, indexing="xy")
    dens = bridge.log_prob(torch.stack([X.reshape(-1), Y.reshape(-1)], 1), 0.5).exp().reshape(X.shape)
    axs[0].contourf(X.numpy(), Y.numpy(), dens.numpy(), levels=12, cmap="Greys")
    for k in range(n_paths):
        axs[0].plot(traj[:, k, 0].numpy(), traj[:, k, 1].numpy(), lw=0.8, color=f"C{k % 10}")
        axs[0].plot(traj[-1, k, 0].numpy(), traj[-1, k, 1].numpy(), "k.", ms=4)
    axs[0].set_xlim(*lim)
    axs[0].set_ylim(*lim)
    axs[0].set_title(f"paths, eps = {eps:g}, gamma^2 = {a:g} t(1-t); shading: rho at t = 0.5", fontsize="small")
    xs = torch.linspace(*lim, 300, dtype=torch.float64)
    # exact first-coordinate marginal of rho_0 (a mixture of 1-D Gaussians)
    w, m, c = rho0.weights, rho0.means[:, 0], rho0.covs[:, 0, 0]
    pdf = (w[None] * torch.exp(-0.5 * (xs[:, None] - m) ** 2 / c) / torch.sqrt(2 * torch.pi * c)).sum(1)
    axs[1].hist(traj[-1, :, 0].numpy(), bins=40, density=True, color="C1", alpha=0.6, label="SDE samples at t = 0")
    axs[1].plot(xs.numpy(), pdf.numpy(), "k-", label="exact rho_0")
    axs[1].set_xlabel("first coordinate")
    axs[1].legend(fontsize="x-small")
    return axs[0].figure


def interpolant_widget(rho0, rho1, *, eps: float = 0.5, a: float = 0.5):
    """Sliders: SDE noise level eps and interpolant noise amplitude a, gamma^2 = a t (1 - t) (lesson 09)."""
    return W.interactive(
        plot_interpolant_paths, _SHOW,
        eps=W.FloatSlider(value=eps, min=0.0, max=3.0, step=0.25, description="eps (SDE noise)", **_SLIDER),
        a=W.FloatSlider(value=a, min=0.0, max=2.0, step=0.25, description="gamma^2 / (t(1-t))", **_SLIDER),
        rho0=W.fixed(rho0), rho1=W.fixed(rho1), n_paths=W.fixed(12), n_hist=W.fixed(1500),
        steps=W.fixed(100), seed=W.fixed(0),
    )


def plot_ode_likelihood(log10_rtol: float, n_probes: int, *, dist, process, points, seed: int = 0):
    r"""``log p(x)`` along a line of points: exact (curve) against the PF-ODE change of variables
    (:func:`diffedu.samplers.log_likelihood`, dots) at solver tolerance ``10^log10_rtol``, with the
    exact divergence (``n_probes = 0``) or Hutchinson with ``n_probes`` probes. The exact prior
    ``log p_T`` is used, so the gap is the solver's and the estimator's alone."""
    D = dist.bind(process).denoiser
    t_eps = float(process.t_of_lam(np.log(500.0)))
    T = float(process.t_max)
    rtol = 10.0**log10_rtol
    kw = dict(divergence="exact") if n_probes == 0 else dict(
        divergence="hutchinson", n_probes=int(n_probes), generator=torch.Generator().manual_seed(seed))
    ll = ds.log_likelihood(D, process, points, t_start=t_eps, prior=lambda z: dist.log_prob(z, T, process),
                           rtol=rtol, atol=rtol * 1e-2, **kw)
    exact = dist.log_prob(points, t_eps, process)
    s = torch.linspace(0, 1, points.shape[0], dtype=torch.float64).numpy()
    ax = P.new_axes(figsize=(6.4, 3.6))
    ax.plot(s, exact.numpy(), "k-", label="exact log p")
    ax.plot(s, ll.numpy(), "C1o", ms=4, label="PF-ODE change of variables")
    err = float((ll - exact).abs().max())
    how = "exact divergence" if n_probes == 0 else f"Hutchinson, {n_probes} probe(s)"
    ax.set_title(f"rtol = 1e{log10_rtol:g}, {how}: max error {err:.2g} nats", fontsize="small")
    ax.set_xlabel("position along the line")
    ax.set_ylabel("log p(x)")
    ax.legend(fontsize="x-small")
    return ax.figure


def likelihood_widget(dist, process, points, *, log10_rtol: float = -3.0, n_probes: int = 0):
    """Sliders: solver tolerance (the adaptive solver's number of steps follows it) and the number
    of Hutchinson probes, 0 meaning the exact divergence (lesson 10)."""
    return W.interactive(
        plot_ode_likelihood, _SHOW,
        log10_rtol=W.FloatSlider(value=log10_rtol, min=-8.0, max=-1.0, step=1.0, description="log10 rtol", **_SLIDER),
        n_probes=W.IntSlider(value=n_probes, min=0, max=16, step=1, description="probes (0 = exact)", **_SLIDER),
        dist=W.fixed(dist), process=W.fixed(process), points=W.fixed(points), seed=W.fixed(0),
    )
