r"""Masked (absorbing-state) diffusion over short token sequences, with exact answers.

Sequences have length L over the vocabulary ``{0, ..., V-1}``; the mask token is ``V``.
Data sits at t = 0 and the fully masked sequence at t = 1 (the notation page's direction). A
schedule gives the probability ``alpha_t`` that a token is still unmasked at time t
(``alpha_0 = 1``, ``alpha_1 = 0``), each position independently:

    q(x_t^i = x_0^i) = alpha_t,   q(x_t^i = mask) = 1 - alpha_t.

The posterior ``p(x_0 | x_t)`` is ``p_0`` restricted to the sequences that agree with the
unmasked tokens of x_t: it does not depend on t. So the exact denoiser is *time-agnostic*
(Zheng et al. 2024, "Masked diffusion models are secretly time-agnostic masked models and
exploit inaccurate categorical sampling", Prop. 3.1), the continuous-time ELBO

    log p(x_0) >= int_0^1 (-alpha'_t) / (1 - alpha_t) E_{x_t ~ q(.|x_0)} [ sum_{i masked} log D(x_t)[i, x_0^i] ] dt

depends on the schedule only through ``d alpha / (1 - alpha)`` and is the same for every
schedule (Shi et al. 2024, eq. 5; Sahoo et al. 2024, MDLM, eq. 10), and sampling reduces to
decoding tokens one at a time in a random order: the first-hitting sampler (Zheng et al., Alg. 1).

The pieces, one module each: :mod:`.schedules` (schedules and the forward masking),
:mod:`.sequences` (the data distribution and its exact denoiser), :mod:`.evidence` (the ELBO),
:mod:`.sampling`. Categorical draws with truncated uniforms are :mod:`diffedu.categorical`.

Beside the masked process, :mod:`.uniform` is uniform-noise diffusion with the same interface (the
same schedules, sequence tables, ``denoiser(x, t) -> (B, L, V)``, ELBO and step-wise sampler with its
exact law), its leave-one-out posterior and its absorbing reformulation (lesson 18).
Everything is re-exported here: ``from diffedu import discrete as dd; dd.elbo(...)``. Lesson 09.
"""

from ..categorical import entropy, gumbel_max_probs, sample_categorical, total_variation
from .evidence import elbo, elbo_integrand, elbo_mc
from .sampling import first_hitting_survival, first_hitting_time, sample_first_hitting, sample_stepwise, stepwise_law
from .schedules import CosineMask, LinearMask, MaskSchedule, PowerMask, all_masked, mask_tokens
from .sequences import SequenceDistribution, sequence_chi2
from .uniform import (absorbing_denoiser, denoiser_from_loo, loo_from_denoiser, noise_posterior,
                      sample_uniform_stepwise, uniform_denoiser, uniform_elbo, uniform_kernel, uniform_loo,
                      uniform_marginal, uniform_ratios, uniform_step_probs, uniform_stepwise_law, uniform_tokens)

__all__ = [
    "MaskSchedule", "LinearMask", "CosineMask", "PowerMask",
    "SequenceDistribution", "all_masked", "mask_tokens",
    "first_hitting_time", "first_hitting_survival", "sample_first_hitting", "sample_stepwise", "stepwise_law",
    "elbo_integrand", "elbo", "elbo_mc", "sequence_chi2",
    "sample_categorical", "gumbel_max_probs", "entropy", "total_variation",
    "uniform_kernel", "uniform_tokens", "uniform_marginal", "uniform_denoiser", "uniform_loo", "loo_from_denoiser",
    "denoiser_from_loo", "uniform_ratios", "uniform_elbo", "uniform_step_probs", "sample_uniform_stepwise",
    "uniform_stepwise_law", "noise_posterior", "absorbing_denoiser",
]
