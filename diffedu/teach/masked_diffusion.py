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
from .._paths import data_path, writable_data_path
from ..categorical import entropy, masked_sampler_law, masked_step_law, total_variation, zipf
from . import plots, widgets
from .checks import Feedback, check_close, check_implementation

__all__ = ["plot_truncated_unmasking", "truncation_widget", "plot_entropy_vs_q", "plot_stepwise_law",
           "stepwise_widget", "plot_elbo_integrands", "check_first_hit_alpha_prob", "check_marginal_elbo",
           "check_one_step_prob", "gumbel_table", "load_gumbel_table",
           "plot_sampler_entropy", "check_first_hitting_time"]

#: The vocabulary-scale float32 computation of lesson 09, section 7 (cached in data/GUMBEL_FILE).
GUMBEL_CONFIG = dict(vocab_size=50257, s=1.0, bits=[24, 53], log10_qs=[-3.0, -4.0, -5.0, -6.0, -7.0, -8.0],
                     steps=[1, 4, 16, 64, 256, 1024])
GUMBEL_FILE = "gumbel_entropy.json"


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


# --- the float32 drop at a GPT-2-sized vocabulary (section 7) ----------------------------------
def gumbel_table(*, save: bool = False, steps=None) -> dict:
    r"""Entropies at :data:`GUMBEL_CONFIG`: a Zipf law over ``vocab_size`` tokens, the entropy of the
    unmasked token's law after one masked step at each q (:func:`~diffedu.categorical.masked_step_law`)
    and of the token a step-wise sampler with N steps leaves (:func:`~diffedu.categorical.masked_sampler_law`),
    for each bit count. Exact laws (no sampling). ``steps`` overrides the list of N (the slow test
    uses a short one). A few minutes on one core (the 1,024-step sampler dominates); ``save=True``
    writes ``data/gumbel_entropy.json``. Returns ``{"config", "H", "q": {bits: [H]}, "steps": {bits: [H]}}``."""
    c = dict(GUMBEL_CONFIG)
    if steps is not None:
        c["steps"] = list(steps)
    tok = zipf(c["vocab_size"], c["s"])
    out = {"config": c, "H": float(entropy(tok)), "q": {}, "steps": {}}
    for b in c["bits"]:
        out["q"][str(b)] = [float(entropy(masked_step_law(tok, 10.0**lq, b)[0])) for lq in c["log10_qs"]]
        out["steps"][str(b)] = [float(entropy(masked_sampler_law(tok, n, b))) for n in c["steps"]]
    if save:
        import json

        writable_data_path(GUMBEL_FILE).write_text(json.dumps(out, indent=1) + "\n")
    return out


def load_gumbel_table() -> dict:
    """The cached :func:`gumbel_table` (``data/gumbel_entropy.json``), checked against :data:`GUMBEL_CONFIG`."""
    import json

    path = data_path(GUMBEL_FILE)
    out = json.loads(path.read_text())
    if out["config"] != GUMBEL_CONFIG:
        raise ValueError(f"{path} was computed with {out['config']}, not {GUMBEL_CONFIG}: recompute it with "
                         "python3 -m diffedu.teach.masked_diffusion gumbel")
    return out


def plot_sampler_entropy(table: dict, ax=None):
    r"""Entropy of the token a step-wise sampler leaves against its number of steps (log axis), one
    curve per bit count, and the ideal entropy; the right axis reads it as a perplexity exp(H)."""
    ax = plots._ax(ax)
    steps = table["config"]["steps"]
    for i, (b, h) in enumerate(table["steps"].items()):
        ax.plot(steps, h, "o-", color=f"C{i}", ms=4, label=f"{b}-bit uniforms")
    ax.axhline(table["H"], color="0.5", ls="--", label="ideal (the model's law)")
    ax.set_xscale("log")
    ax.set_xlabel("number of sampling steps N")
    ax.set_ylabel("entropy of the sampled token (nats)")
    ax.set_title(f"Zipf law over V = {table['config']['vocab_size']:,} tokens", fontsize="medium")
    right = ax.secondary_yaxis("right", functions=(np.exp, lambda p: np.log(np.maximum(p, 1e-300))))
    right.set_ylabel("perplexity exp(H)")
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



def _first_hit_inputs(generator, dtype, shape):
    B = shape[0]
    scheds = [dd.LinearMask(), dd.CosineMask(), dd.PowerMask(2.0)]
    return {"t": 0.2 + 0.8 * torch.rand(B, generator=generator, dtype=dtype),
            "n_masked": torch.randint(1, 9, (B,), generator=generator),
            "schedule": scheds[int(torch.randint(0, 3, (), generator=generator))],
            "u": torch.rand(B, generator=generator, dtype=dtype)}


def _first_hit_reference(t, n_masked, schedule, u):
    return dd.first_hitting_time(t, n_masked, schedule, u=u)


def check_first_hitting_time(answer):
    r"""``answer(t, n_masked, schedule, u)`` = the time s < t at which the first of ``n_masked``
    masked tokens unmasks, given the uniforms u (one per row): (B,) float64. Checked on fresh
    inputs (three schedules) against :func:`diffedu.discrete.first_hitting_time`."""
    # rtol 1e-6: ``1 / n`` of an integer tensor is float32 in torch, an exponent good to 1e-8 only
    return check_implementation(answer, _first_hit_reference, _first_hit_inputs, name="first-hitting time",
                                dtypes=(torch.float64,), tolerances={torch.float64: (1e-6, 1e-9)})

if __name__ == "__main__":
    import sys
    import time

    if sys.argv[1:] != ["gumbel"]:
        raise SystemExit("usage: python3 -m diffedu.teach.masked_diffusion gumbel")
    start = time.time()
    gumbel_table(save=True)
    print(f"wrote data/{GUMBEL_FILE} in {time.time() - start:.0f} s")
