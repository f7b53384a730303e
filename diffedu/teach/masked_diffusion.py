r"""Lesson 09 (masked diffusion is time-agnostic): its plots, sliders and exercise checkers.

The maths lives in the core: :mod:`diffedu.discrete` (schedules, the sequence distribution and
its exact denoiser, the ELBO and its integrand :func:`~diffedu.discrete.elbo_integrand`, the
first-hitting and step-wise samplers and the step-wise sampler's exact law) and
:mod:`diffedu.categorical` (Gumbel-max with truncated uniforms, :func:`~diffedu.categorical.masked_step_law`,
:func:`~diffedu.categorical.zipf`, entropy and total variation). This module only draws and grades.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import discrete as dd
from ..categorical import entropy, masked_step_law, total_variation, zipf
from . import plots, widgets
from .checks import Feedback, check_close

__all__ = ["plot_truncated_unmasking", "truncation_widget", "plot_entropy_vs_q", "plot_stepwise_law",
           "stepwise_widget", "plot_elbo_integrands", "check_first_hit_alpha_prob", "check_marginal_elbo",
           "check_one_step_prob"]


# --- float32 Gumbel sampling ---------------------------------------------------------------
def plot_truncated_unmasking(vocab_size: int, log10_q: float, *, bits=(24, 53), ax=None):
    r"""Token law given that a masked position unmasks with probability ``q = 10^log10_q``.

    Bars: the ideal law (a Zipf law over ``vocab_size`` tokens, :func:`diffedu.categorical.zipf`)
    and, for each ``bits``, the exact law when the categorical ``[q p_1, ..., q p_V, 1 - q]`` is
    drawn by Gumbel-max with ``bits``-bit uniforms (:func:`diffedu.categorical.masked_step_law`);
    entropies and ``P(unmask) / q`` in the legend. Returns the Axes.
    """
    tok, q = zipf(vocab_size), 10.0**log10_q
    ax = plots._ax(ax)
    v = np.arange(vocab_size)
    width = 0.8 / (1 + len(bits))
    ax.bar(v - 0.4 + width / 2, tok.numpy(), width, color="0.6", label=f"ideal, H = {float(entropy(tok)):.3f}")
    for i, b in enumerate(bits):
        law, rate = masked_step_law(tok, q, b)
        ax.bar(v - 0.4 + width * (i + 1.5), law.numpy(), width, color=f"C{i}",
               label=f"{b} bits, H = {float(entropy(law)):.3f}, P(unmask)/q = {rate / q:.3f}")
    ax.set_xlabel("token")
    ax.set_ylabel("P(token | unmasked)")
    ax.set_title(f"unmasking probability q = 1e{log10_q:g}", fontsize="small")
    ax.legend(fontsize="x-small")
    return ax


def _draw_truncation(vocab_size, log10_q, bits):
    ax = plots.new_axes(figsize=(6.4, 3.6))
    return plot_truncated_unmasking(vocab_size, log10_q, bits=bits, ax=ax).figure


def truncation_widget(vocab_size: int = 6, log10_q: float = -6.5):
    """Sliders: vocabulary size and log10 of the unmasking probability over :func:`plot_truncated_unmasking`."""
    return widgets.interactive(
        _draw_truncation,
        vocab_size=widgets.int_slider(vocab_size, 2, 12, "vocabulary size"),
        log10_q=widgets.float_slider(log10_q, -9.0, -3.0, 0.25, "log10 q"),
        bits=(24, 53),
    )


def plot_entropy_vs_q(tok, log10_qs, *, bits=(24, 53), ax=None):
    r"""Entropy of the unmasked token's law (:func:`~diffedu.categorical.masked_step_law`) against
    log10 q, one curve per ``bits``, and the ideal entropy of ``tok`` (V,). Returns the Axes."""
    ax = plots._ax(ax)
    for i, b in enumerate(bits):
        h = [float(entropy(masked_step_law(tok, 10.0**lq, b)[0])) for lq in log10_qs]
        ax.plot(log10_qs, h, "o-", color=f"C{i}", ms=3, label=f"{b}-bit uniforms")
    ax.axhline(float(entropy(tok)), color="0.5", ls="--", label="ideal")
    ax.set_xlabel("log10 q (probability of unmasking in one step)")
    ax.set_ylabel("entropy of the unmasked token (nats)")
    ax.legend(fontsize="small")
    return ax


# --- step-wise sampling ----------------------------------------------------------------------
def plot_stepwise_law(dist: dd.SequenceDistribution, steps: int, *, schedule=None, ax=None):
    r"""Exact law of the step-wise sampler with ``steps`` steps (:func:`diffedu.discrete.stepwise_law`)
    against the target p_0 and the product of marginals (one step), over all sequences sorted by
    p_0; the title gives the total-variation distance to p_0. Returns the Axes."""
    schedule = schedule or dd.LinearMask()
    law = dd.stepwise_law(dist.denoiser, dist.V, dist.L, schedule, steps)
    order = torch.argsort(dist.table, descending=True)
    ax = plots._ax(ax)
    ax.plot(dist.table[order].numpy(), "k-", lw=1.5, label="target p_0")
    ax.plot(law[order].numpy(), "C1.", ms=4, label=f"step-wise, {steps} steps")
    ax.plot(dist.product_of_marginals().table[order].numpy(), "C0-", lw=0.6, alpha=0.6,
            label="product of marginals (1 step)")
    tv = float(total_variation(law, dist.table))
    ax.set_title(f"{steps} steps: total variation to p_0 = {tv:.4f}", fontsize="small")
    ax.set_xlabel("sequence (sorted by p_0)")
    ax.set_ylabel("probability")
    ax.legend(fontsize="x-small")
    return ax


def _draw_stepwise(dist, steps, schedule):
    ax = plots.new_axes(figsize=(6.4, 3.4))
    return plot_stepwise_law(dist, steps, schedule=schedule, ax=ax).figure


def stepwise_widget(dist: dd.SequenceDistribution, steps: int = 4):
    """Slider: the number of steps of the step-wise sampler over :func:`plot_stepwise_law`."""
    if not isinstance(dist, dd.SequenceDistribution):
        raise TypeError(f"dist must be a diffedu.discrete.SequenceDistribution; got {type(dist).__name__}")
    return widgets.interactive(_draw_stepwise, dist=dist, steps=widgets.int_slider(steps, 1, 64, "steps"),
                               schedule=dd.LinearMask())


# --- the ELBO ------------------------------------------------------------------------------
def plot_elbo_integrands(dist: dd.SequenceDistribution, x0, schedules, denoiser=None, *, axs=None, n: int = 200):
    r"""The ELBO integrand of one sequence x0 (L,), per schedule: against t (left; different for
    every schedule) and per unit of alpha_t against alpha_t (right; one curve), both from
    :func:`diffedu.discrete.elbo_integrand`. denoiser: time-agnostic (default: the context-free
    ``dist.marginal_denoiser``). Returns the two Axes."""
    denoiser = denoiser or dist.marginal_denoiser
    axs = plots._axs(axs, 2, (10, 3.4))
    x0 = torch.as_tensor(x0).reshape(1, -1)
    t = torch.linspace(1e-3, 1 - 1e-3, n, dtype=torch.float64)
    for i, s in enumerate(schedules):
        per_t = dd.elbo_integrand(denoiser, x0, s, dist.V, t, per="t")[:, 0]
        per_alpha = dd.elbo_integrand(denoiser, x0, s, dist.V, t, per="alpha")[:, 0]
        axs[0].plot(t.numpy(), per_t.numpy(), color=f"C{i}", label=repr(s))
        axs[1].plot(s.alpha(t).numpy(), per_alpha.numpy(), color=f"C{i}", lw=3 - i * 0.7, label=repr(s))
    axs[0].set_xlabel("t")
    axs[0].set_ylabel("ELBO integrand per unit t")
    axs[1].set_xlabel("alpha_t (fraction unmasked)")
    axs[1].set_ylabel("ELBO integrand per unit alpha")
    axs[0].legend(fontsize="x-small")
    return axs


# --- exercise checkers -----------------------------------------------------------------------
def check_first_hit_alpha_prob(answer, n_masked: int, alpha: float, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = P(no token of ``n_masked`` has unmasked yet when alpha_t reaches ``alpha``),
    from the fully masked sequence (:func:`diffedu.discrete.first_hitting_survival`)."""
    return check_close(answer, dd.first_hitting_survival(alpha, n_masked),
                       name=f"P(first unmasking below alpha = {alpha:g}, n = {n_masked})", rtol=rtol)


def check_marginal_elbo(answer, dist: dd.SequenceDistribution, x0, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = the ELBO of the sequence x0 (L,) under the context-free denoiser (:func:`diffedu.discrete.elbo`)."""
    x0 = torch.as_tensor(x0).reshape(1, -1)
    expected = dd.elbo(dist.marginal_denoiser, x0, dd.LinearMask(), dist.V)[0]
    return check_close(answer, expected, name="ELBO with the context-free denoiser", rtol=rtol)


def check_one_step_prob(answer, dist: dd.SequenceDistribution, x0, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = the probability that the one-step sampler returns the sequence x0 (L,)
    (:func:`diffedu.discrete.stepwise_law` with one step)."""
    x0 = torch.as_tensor(x0).reshape(1, -1)
    law = dd.stepwise_law(dist.denoiser, dist.V, dist.L, dd.LinearMask(), 1)
    return check_close(answer, law[dist.index(x0)][0], name="one-step sampler probability", rtol=rtol)
