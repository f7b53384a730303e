r"""Samplers of masked diffusion: first-hitting (one token at a time) and step-wise, with exact laws.

Sampling with an exact time-agnostic denoiser reduces to decoding tokens one at a time in a
random order: the first-hitting sampler (Zheng et al. 2024, Alg. 1). The step-wise (ancestral)
sampler of MDLM unmasks several positions per step, independently given the state, so with few
steps it misses their correlations; :func:`stepwise_law` gives its exact law. Categorical draws
use :func:`diffedu.categorical.sample_categorical` with ``bits`` of uniform precision. Lesson 09.
"""

from __future__ import annotations

import math

import torch

from .._core import as_real_tensor, check_callable
from ..categorical import _check_bits, sample_categorical
from ._checks import check_cpu_generator, check_denoised, check_int, check_tokens
from .schedules import MaskSchedule, check_schedule

__all__ = ["first_hitting_time", "first_hitting_survival", "sample_first_hitting", "sample_stepwise", "stepwise_law"]

_F64 = torch.float64


def _counts(n_masked):
    """Numbers of masked tokens: integers >= 1 (a float64 tensor)."""
    if isinstance(n_masked, bool):
        raise TypeError("n_masked must be an integer or a tensor of integers; got bool")
    n = as_real_tensor(n_masked, "n_masked", "an integer or a tensor of integers")
    if torch.isnan(n).any() or (n < 1).any() or (n != torch.round(n)).any():
        raise ValueError(f"n_masked must be an integer >= 1 (each entry); got {n_masked!r}")
    return n


def _fraction(value, name):
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a real number or tensor; got bool")
    return as_real_tensor(value, name, "a real number or tensor")


def first_hitting_time(t, n_masked, schedule: MaskSchedule, *, generator=None, u=None) -> torch.Tensor:
    r"""Time at which the first of ``n_masked`` masked tokens unmasks, going back from t.

    Each masked token at time t is still masked at s < t with probability
    ``(1 - alpha_s) / (1 - alpha_t)``, independently, so the first of n unmasks at
    ``1 - alpha_s = (1 - alpha_t) U^(1/n)`` (Zheng et al. 2024, eq. 9): from t = 1,
    ``alpha_s ~ Beta(1, n)``. t, n_masked: (B,) tensors (or scalars). ``u``: the uniforms U in
    [0, 1], one per row (drawn from ``generator`` when None; pass them to compare two
    implementations on the same draws, lesson 09). Returns (B,) float64.
    """
    check_cpu_generator(generator)
    schedule = check_schedule(schedule)
    t = schedule.check_t(t).reshape(-1)
    n = _counts(n_masked).reshape(-1)
    t, n = torch.broadcast_tensors(t, n)
    if u is None:
        u = torch.rand(t.shape, generator=generator, dtype=_F64)
    else:
        if not isinstance(u, torch.Tensor) or not u.is_floating_point():
            raise TypeError(f"u must be a floating tensor of uniforms; got {type(u).__name__}")
        u = u.to(_F64).reshape(-1)
        if u.shape != t.shape:
            raise ValueError(f"u must have one uniform per row, shape {tuple(t.shape)}; got {tuple(u.shape)}")
        if torch.isnan(u).any() or (u < 0).any() or (u > 1).any():
            raise ValueError("u must lie in [0, 1]")
    one_minus = (1 - schedule.alpha(t)) * u ** (1 / n)
    return schedule.t_of_alpha(1 - one_minus).clamp(0, 1)


def first_hitting_survival(alpha, n_masked, *, alpha_from=0.0) -> torch.Tensor:
    r"""Probability that none of ``n_masked`` masked tokens has unmasked yet when the unmasked
    fraction, going back in time from ``alpha_from``, reaches ``alpha``.

    Each token masked at ``alpha_from`` is still masked at ``alpha >= alpha_from`` with
    probability ``(1 - alpha) / (1 - alpha_from)``, independently, so

        P(alpha at the first unmasking > alpha) = ((1 - alpha) / (1 - alpha_from))^n,

    the survival function of :func:`first_hitting_time` (in units of alpha; from the fully
    masked sequence, ``alpha_from = 0``, the first unmasking is at ``alpha ~ Beta(1, n)``;
    Zheng et al. 2024, eq. 9). alpha, n_masked: floats or broadcastable tensors; alpha in
    ``[alpha_from, 1]``, alpha_from in [0, 1). Returns float64. Lesson 09.
    """
    a, a0 = _fraction(alpha, "alpha"), _fraction(alpha_from, "alpha_from")
    n = _counts(n_masked)
    if torch.isnan(a0).any() or (a0 < 0).any() or (a0 >= 1).any():
        raise ValueError(f"alpha_from must lie in [0, 1); got {alpha_from!r}")
    if torch.isnan(a).any() or (a < a0).any() or (a > 1).any():
        raise ValueError(f"alpha must lie in [alpha_from, 1]; got {alpha!r}")
    return ((1 - a) / (1 - a0)) ** n


def sample_first_hitting(denoiser, x, vocab_size: int, schedule: MaskSchedule, *, bits: int = 53,
                         generator=None) -> torch.Tensor:
    r"""First-hitting sampler (Zheng et al. 2024, Alg. 1): one denoiser call per masked token.

    x: (B, L) start (:func:`all_masked` for unconditional samples); denoiser(x, t) -> (B, L, V)
    probabilities. Loop: draw the time of the next unmasking (:func:`first_hitting_time`),
    pick one masked position uniformly, draw its token from the denoiser. Exact for an exact
    denoiser: it is any-order autoregressive decoding. Returns (B, L) long.
    """
    check_callable(denoiser, "denoiser", "a denoiser(x, t) -> (B, L, V) probabilities")
    check_cpu_generator(generator)
    schedule = check_schedule(schedule)
    bits = _check_bits(bits)
    V = check_int(vocab_size, "vocab_size", minimum=2)
    x = check_tokens(x, V).clone().cpu()
    B, L = x.shape
    t = torch.ones(B, dtype=_F64)
    while True:
        masked = x == V
        n = masked.sum(1)
        live = n > 0
        if not live.any():
            return x
        t = torch.where(live, first_hitting_time(t, n.clamp(min=1), schedule, generator=generator), t)
        probs = check_denoised(denoiser(x, t), B, L, V)
        # one masked position per live row, uniformly: the argmax of uniform scores over masked slots
        score = torch.rand((B, L), generator=generator, dtype=_F64).masked_fill(~masked, -1.0)
        pos = score.argmax(1)
        rows = torch.arange(B)
        tok = sample_categorical(probs[rows, pos], bits=bits, generator=generator)
        x[rows[live], pos[live]] = tok[live]


def _stepwise_grid(schedule, steps):
    ts = torch.linspace(1, 0, steps + 1, dtype=_F64)
    a = schedule.alpha(ts)
    a[0], a[-1] = 0.0, 1.0
    return ts, a


def sample_stepwise(denoiser, x, vocab_size: int, schedule: MaskSchedule, steps: int, *, bits: int = 53,
                    generator=None) -> torch.Tensor:
    r"""Step-wise (ancestral) sampler on a uniform grid of ``steps`` steps from t = 1 to 0.

    From t to s < t every masked token unmasks with probability
    ``q = (alpha_s - alpha_t) / (1 - alpha_t)`` and takes a token from the denoiser; positions
    unmasked in the same step are drawn independently (MDLM, eq. 7). One categorical over
    V + 1 outcomes per masked token: token v with ``q D[v]``, stay masked with ``1 - q``, drawn
    by :func:`sample_categorical` with ``bits`` (MDLM's float32 code is ``bits=24``).
    x: (B, L) start; returns (B, L) long. :func:`stepwise_law` gives its exact law.
    """
    check_callable(denoiser, "denoiser", "a denoiser(x, t) -> (B, L, V) probabilities")
    check_cpu_generator(generator)
    schedule = check_schedule(schedule)
    bits = _check_bits(bits)
    V = check_int(vocab_size, "vocab_size", minimum=2)
    steps = check_int(steps, "steps", minimum=1)
    x = check_tokens(x, V).clone().cpu()
    B, L = x.shape
    ts, a = _stepwise_grid(schedule, steps)
    for k in range(steps):
        q = float((a[k + 1] - a[k]) / (1 - a[k]))
        masked = x == V
        if not masked.any():
            break
        probs = check_denoised(denoiser(x, torch.full((B,), float(ts[k]), dtype=_F64)), B, L, V)
        cat = torch.cat([q * probs, torch.full((B, L, 1), 1 - q, dtype=_F64)], dim=-1)
        new = sample_categorical(cat, bits=bits, generator=generator)
        x = torch.where(masked, new, x)
    return x


def stepwise_law(denoiser, vocab_size: int, length: int, schedule: MaskSchedule, steps: int) -> torch.Tensor:
    r"""Exact law of :func:`sample_stepwise` (53-bit draws) from the all-masked start: (V^L,).

    Propagates a distribution over all ``(V+1)^L`` partially masked states through the steps;
    each step's transition factorises over masked positions given the state. In the table
    order of :class:`SequenceDistribution`. Small V and L only ((V+1)^L up to about 4000).
    """
    check_callable(denoiser, "denoiser", "a denoiser(x, t) -> (B, L, V) probabilities")
    schedule = check_schedule(schedule)
    V = check_int(vocab_size, "vocab_size", minimum=2)
    L = check_int(length, "length", minimum=1)
    steps = check_int(steps, "steps", minimum=1)
    if L * math.log(V + 1) > math.log(5000):  # checked before (V + 1) ** L is computed
        raise ValueError(f"(vocab_size + 1) ** length must be at most 5000; got {V + 1} ** {L}")
    S = (V + 1) ** L
    states = torch.arange(S)[:, None] // ((V + 1) ** torch.arange(L - 1, -1, -1))[None] % (V + 1)
    ts, a = _stepwise_grid(schedule, steps)
    pi = torch.zeros(S, dtype=_F64)
    pi[-1] = 1.0  # all masked: the largest code
    masked = states == V
    for k in range(steps):
        q = float((a[k + 1] - a[k]) / (1 - a[k]))
        probs = check_denoised(denoiser(states, torch.full((S,), float(ts[k]), dtype=_F64)), S, L, V)
        # per position: a distribution over V + 1 next values
        step = torch.cat([q * probs, torch.full((S, L, 1), 1 - q, dtype=_F64)], -1)
        keep = torch.nn.functional.one_hot(states, V + 1).to(_F64)
        step = torch.where(masked[..., None], step, keep)
        T = step[:, 0]
        for i in range(1, L):
            T = (T[:, :, None] * step[:, i, None, :]).reshape(S, -1)
        pi = pi @ T
    full = (states < V).all(1)
    codes = (states[full] * (V ** torch.arange(L - 1, -1, -1))[None]).sum(1)
    out = torch.zeros(V**L, dtype=_F64)
    out[codes] = pi[full]
    return out
