r"""Uniform-noise discrete diffusion, exactly, beside the masked process and with its interface.

Sequences of length L over ``{0, ..., V-1}``, no mask token. Each position is corrupted
independently: with probability ``alpha_t`` it keeps its token, otherwise it is replaced by a token
drawn uniformly from all V (possibly itself), so

    q_t(x_t^i = v | x_0^i = a) = K_t[a, v] = alpha_t [v = a] + (1 - alpha_t) / V       (1)

with the schedules of masked diffusion (:class:`~diffedu.discrete.MaskSchedule`: ``alpha_0 = 1``,
``alpha_1 = 0``, so x_1 is uniform). In continuous time each token jumps to a uniform token at rate
``beta_t = -alpha'_t / alpha_t`` (Austin et al. 2021, D3PM; Schiff et al. 2024, UDLM).

**The exact reverse chain needs only per-position posteriors.** A reverse jump changes one position,
``x -> x^{i -> v}``, at rate ``(beta_t / V) s_i(x)[v]`` with the ratio ``s = p_t(x^{i->v}) / p_t(x)``
(the "concrete score"). Given x_0^i, the noisy token x_t^i is independent of everything else, so

    s_i(x)[v] = sum_a D_i(x)[a] K_t[a, v] / K_t[a, x^i] = (L_i(x) K_t)[v] / (L_i(x) K_t)[x^i]    (2)

with the *denoiser* ``D_i(x)[a] = P(x_0^i = a | x_t = x)`` and the *leave-one-out posterior*
``L_i(x)[a] = P(x_0^i = a | x_t^{-i} = x^{-i})``, which does not look at position i's own noisy
token. Bayes links them: ``D_i[a] ~ L_i[a] K_t[a, x^i]`` (Gourevitch et al. 2026, "Uniform
diffusion models revisited: leave-one-out denoiser and absorbing state reformulation").
Unlike masked diffusion (where a masked token says nothing about its clean value, so D = L), the
two differ, and so do the two ways a predicted distribution can enter the reverse rates:
``param="denoiser"`` (the first form of (2), exact for D) and ``param="loo"`` (the second, the
"plug-in bridge" of D3PM/UDLM that normalises ``K_{t|s}[v, x^i] (p K_s)[v]`` over v; exact for L).
A network trained by cross-entropy learns D; plugged into the bridge it gives the wrong rates: the
ELBO of that pair has a gap, the paper's mismatch.

**The ELBO.** For model ratios s^ (Lou et al. 2024, SEDD, denoising score entropy; the prior term
is 0 since x_1 is exactly uniform), with ``r_i[v] = K_t[x_0^i, v] / K_t[x_0^i, x_t^i]``,

    log p(x_0) >= -int_0^1 (beta_t / V) E_{x_t ~ q_t(.|x_0)} sum_i sum_{v != x_t^i}
                   [ s^_i[v] - r_i[v] log s^_i[v] + r_i[v] (log r_i[v] - 1) ] dt,          (3)

and ``beta_t dt = -d alpha / alpha``: a time-agnostic predictor gives the same number for every
schedule. For the exact ratios the path law of the model is the forward path law, so (3) is an
equality: the ELBO is ``log p(x_0)``.

**The absorbing reformulation.** Write the corruption as masking then filling: position i is masked
(``m^i = 1``) with probability ``1 - alpha_t`` and a masked position shows a uniform token. Summed
over m this is (1), so (x_t, m) has the uniform process as its x-marginal, and given m the posterior
of x_0 is the masked-diffusion one (p_0 restricted to the unmasked tokens). Hence

    D(x_t) = sum_m P(m | x_t) D_mask(x_t masked by m),
    P(m | x_t) ~ alpha_t^(L - |m|) ((1 - alpha_t) / V)^|m| p_0(x_0^i = x_t^i for every unmasked i),   (4)

a mixture of masked posteriors; ``P(m^i = 1 | x_t)`` is the probability that a visible token is
noise, the "remasking" the reformulation does. Lesson 18.
"""

from __future__ import annotations

import math

import torch

from .._core import check_callable, check_choice
from ._checks import check_cpu_generator, check_denoised, check_int, check_tokens
from .schedules import MaskSchedule, check_schedule
from .sequences import SequenceDistribution

__all__ = ["uniform_kernel", "uniform_tokens", "uniform_marginal", "uniform_denoiser", "uniform_loo",
           "loo_from_denoiser", "denoiser_from_loo", "uniform_ratios", "uniform_elbo", "uniform_step_probs",
           "sample_uniform_stepwise", "uniform_stepwise_law", "noise_posterior", "absorbing_denoiser", "PARAMS"]

_F64 = torch.float64
#: How a predicted distribution over clean tokens enters the reverse rates, eq. (2).
PARAMS = ("denoiser", "loo")


def _alpha(schedule, t):
    """alpha_t as float64 (t: float, 0-d or (B,)); schedule checked."""
    return check_schedule(schedule).alpha(t)


def uniform_kernel(schedule: MaskSchedule, t, vocab_size: int) -> torch.Tensor:
    r"""``K_t[a, v] = q(x_t = v | x_0 = a) = alpha_t [v = a] + (1 - alpha_t) / V``, eq. (1).

    t: a float or 0-d tensor (returns (V, V)) or a (T,) tensor (returns (T, V, V)); float64."""
    V = check_int(vocab_size, "vocab_size", minimum=2)
    a = _alpha(schedule, t)
    eye = torch.eye(V, dtype=_F64)
    return a[..., None, None] * eye + (1 - a)[..., None, None] / V


def uniform_tokens(x0, t, schedule: MaskSchedule, vocab_size: int, *, generator=None) -> torch.Tensor:
    r"""Forward process: each token of x0 (B, L) kept with probability alpha_t, else replaced by a
    uniform token (possibly itself). t: float, 0-d or (B,). Returns x_t (B, L) long."""
    schedule = check_schedule(schedule)
    V = check_int(vocab_size, "vocab_size", minimum=2)
    x0 = check_tokens(x0, V, "x0", allow_mask=False)
    check_cpu_generator(generator, x0.device)
    a = schedule.alpha(schedule.check_t(t)).to(x0.device)
    if a.dim() == 1:
        if a.shape[0] != x0.shape[0]:
            raise ValueError(f"t must be a float, 0-d or ({x0.shape[0]},); got shape {tuple(a.shape)}")
        a = a[:, None]
    keep = torch.rand(x0.shape, generator=generator, dtype=_F64, device=x0.device) < a
    noise = torch.randint(0, V, x0.shape, generator=generator, device=x0.device)
    return torch.where(keep, x0, noise)


def _check_dist(dist):
    if not isinstance(dist, SequenceDistribution):
        raise TypeError(f"dist must be a diffedu.discrete.SequenceDistribution; got {type(dist).__name__}")
    return dist


def _times(schedule, t, B, name="t"):
    """alpha_t as a (B,) float64 tensor from t (float, 0-d or (B,)); ``name`` names it in errors."""
    try:
        a = schedule.alpha(schedule.check_t(t)).reshape(-1)
    except (TypeError, ValueError) as err:
        if name == "t":
            raise
        raise type(err)(f"{name}: {err}") from None
    if a.numel() == 1:
        return a.expand(B).clone()
    if a.numel() != B:
        raise ValueError(f"{name} must be a float, 0-d or ({B},); got {a.numel()} times")
    return a


def _posterior_weights(dist, x, a):
    """``P(x_0 = seq | x_t = x)`` for every table sequence: (B, N) float64, in chunks of rows."""
    B, L = x.shape
    N, V = dist.table.numel(), dist.V
    out = torch.empty(B, N, dtype=_F64)
    step = max(1, 2**22 // max(N * L, 1))
    for s in range(0, B, step):
        xb, ab = x[s:s + step], a[s:s + step]
        c = (1 - ab) / V                                                      # (b,)
        same = (dist.seqs[None] == xb[:, None, :])                            # (b, N, L)
        like = torch.where(same, (ab + c)[:, None, None], c[:, None, None]).prod(-1)   # prod_j K[x0^j, x^j]
        w = like * dist.table
        out[s:s + step] = w / w.sum(1, keepdim=True)
    return out


def uniform_marginal(dist: SequenceDistribution, t, schedule: MaskSchedule) -> torch.Tensor:
    r"""The law of x_t over all V^L sequences, ``p_t = p_0 K_t^{(x) L}``: (V^L,) float64, in the table order
    of :class:`~diffedu.discrete.SequenceDistribution`. t: a float."""
    dist = _check_dist(dist)
    schedule = check_schedule(schedule)
    K = uniform_kernel(schedule, float(schedule.check_t(t)), dist.V)
    p = dist.table.reshape((dist.V,) * dist.L)
    for i in range(dist.L):
        p = torch.tensordot(p, K, dims=([i], [0])).movedim(-1, i)
    return p.reshape(-1)


def _sequences(x, dist):
    """x as (B, L) tokens of dist's vocabulary and length, on the CPU."""
    x = check_tokens(x, dist.V, allow_mask=False).cpu()
    if x.shape[1] != dist.L:
        raise ValueError(f"x must have shape (B, {dist.L}); got {tuple(x.shape)}")
    return x


def uniform_denoiser(dist: SequenceDistribution, schedule: MaskSchedule):
    r"""The exact denoiser of uniform diffusion for the data ``dist``: a function ``D(x, t) -> (B, L, V)``,
    ``D_i(x)[a] = P(x_0^i = a | x_t = x)`` by Bayes over the whole table (``p_0(x_0) prod_j K_t[x_0^j, x^j]``).
    It depends on t (unlike masked diffusion's). x: (B, L) tokens; t: float, 0-d or (B,)."""
    dist = _check_dist(dist)
    schedule = check_schedule(schedule)

    def denoiser(x, t):
        x = _sequences(x, dist)
        w = _posterior_weights(dist, x, _times(schedule, t, x.shape[0]))
        return (w @ dist._onehot).reshape(-1, dist.L, dist.V)

    return denoiser


def uniform_loo(dist: SequenceDistribution, schedule: MaskSchedule):
    r"""The exact leave-one-out posterior: ``L(x, t) -> (B, L, V)`` with
    ``L_i(x)[a] = P(x_0^i = a | x_t^{-i} = x^{-i})``, computed directly: position i's own noisy token is
    summed out (its likelihood replaced by 1), so it never enters row i."""
    dist = _check_dist(dist)
    schedule = check_schedule(schedule)

    def loo(x, t):
        x = _sequences(x, dist)
        a = _times(schedule, t, x.shape[0])
        c = (1 - a) / dist.V
        same = dist.seqs[None] == x[:, None, :]                                   # (B, N, L)
        k = torch.where(same, (a + c)[:, None, None], c[:, None, None])
        out = torch.empty(x.shape[0], dist.L, dist.V, dtype=_F64)
        for i in range(dist.L):
            like = torch.cat([k[..., :i], k[..., i + 1:]], -1).prod(-1) * dist.table   # (B, N)
            pi = like @ torch.nn.functional.one_hot(dist.seqs[:, i], dist.V).to(_F64)
            out[:, i] = pi / pi.sum(1, keepdim=True)
        return out

    return loo


def _probs(probs, x):
    """A given prediction (B, L, V) of laws over the vocabulary and the (B, L) tokens it is for."""
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a (B, L, V) tensor of probabilities; got {type(probs).__name__}")
    if probs.dim() != 3 or not probs.is_floating_point():
        raise (ValueError if probs.is_floating_point() else TypeError)(
            f"probs must be a (B, L, V) floating tensor of probabilities; got {probs.dtype} of shape {tuple(probs.shape)}")
    B, L, V = probs.shape
    if V < 2:
        raise ValueError(f"probs must have V >= 2 entries per position; got shape {tuple(probs.shape)}")
    x = check_tokens(x, V, allow_mask=False).cpu()
    if tuple(x.shape) != (B, L):
        raise ValueError(f"x must be the ({B}, {L}) tokens that probs ({B}, {L}, {V}) predicts; got shape {tuple(x.shape)}")
    P = probs.to(_F64).cpu()
    if not bool(torch.isfinite(P).all()) or bool((P < 0).any()):
        raise ValueError("probs must be finite and non-negative")
    return P, x


def loo_from_denoiser(probs, x, t, schedule: MaskSchedule) -> torch.Tensor:
    r"""``L_i[a] ~ D_i[a] / K_t[a, x^i]`` (normalised over a): the leave-one-out posterior from the
    denoiser's. probs: (B, L, V); x: (B, L); t: float or (B,). Returns (B, L, V)."""
    schedule = check_schedule(schedule)
    D, x = _probs(probs, x)
    V = D.shape[-1]
    a = _times(schedule, t, x.shape[0])[:, None, None]
    Kx = a * torch.nn.functional.one_hot(x, V).to(_F64) + (1 - a) / V              # K[a, x^i] over a: (B, L, V)
    L = D / Kx
    return L / L.sum(-1, keepdim=True)


def denoiser_from_loo(probs, x, t, schedule: MaskSchedule) -> torch.Tensor:
    r"""``D_i[a] ~ L_i[a] K_t[a, x^i]``: the denoiser from the leave-one-out posterior (Bayes with position
    i's own noisy token). probs: (B, L, V); x: (B, L); t: float or (B,). Returns (B, L, V)."""
    schedule = check_schedule(schedule)
    Lp, x = _probs(probs, x)
    V = Lp.shape[-1]
    a = _times(schedule, t, x.shape[0])[:, None, None]
    Kx = a * torch.nn.functional.one_hot(x, V).to(_F64) + (1 - a) / V
    D = Lp * Kx
    return D / D.sum(-1, keepdim=True)


def uniform_ratios(probs, x, t, schedule: MaskSchedule, *, param: str = "denoiser") -> torch.Tensor:
    r"""Reverse-rate ratios ``s_i(x)[v] = p_t(x^{i->v}) / p_t(x)`` from a predicted distribution, eq. (2):
    ``param="denoiser"``: ``sum_a probs[a] K[a, v] / K[a, x^i]``; ``param="loo"``:
    ``(probs K)[v] / (probs K)[x^i]``. Exact for the true D, resp. the true L. Returns (B, L, V);
    the entry v = x^i is 1."""
    schedule = check_schedule(schedule)
    check_choice(param, "param", PARAMS)
    P, x = _probs(probs, x)
    V = P.shape[-1]
    a = _times(schedule, t, x.shape[0])[:, None, None]
    onehot = torch.nn.functional.one_hot(x, V).to(_F64)
    c = (1 - a) / V
    if param == "denoiser":
        Kx = a * onehot + c                                        # K[a, x^i] as a function of a
        w = P / Kx                                                 # (B, L, V) over a
        return a * w + c * w.sum(-1, keepdim=True)                 # sum_a w[a] K[a, v]
    m = a * P + c                                                  # (P K)[v] = alpha P[v] + c
    return m / (m * onehot).sum(-1, keepdim=True)


def _tanh_sinh(n: int):
    """Tanh-sinh (double exponential) nodes and weights on (0, 1), clipped where 1 - u < 1e-14 or
    u < 1e-300; exponential convergence despite the integrable log singularity of (3) at alpha = 1."""
    h = 6.0 / n
    k = torch.arange(-n, n + 1, dtype=_F64) * h
    s = 0.5 * math.pi * torch.sinh(k)
    x = torch.tanh(s)
    w = h * 0.5 * math.pi * torch.cosh(k) / torch.cosh(s) ** 2
    u, wu = 0.5 * (x + 1), 0.5 * w
    keep = (u > 1e-300) & (1 - u > 1e-14)
    return u[keep], wu[keep]


def uniform_elbo(predictor, x0, schedule: MaskSchedule, vocab_size: int, *, param: str = "denoiser",
                 n_t: int = 48) -> torch.Tensor:
    r"""Continuous-time ELBO ``<= log p(x0)`` of uniform diffusion, eq. (3), by exact expectation over all
    V^L noisy states and tanh-sinh quadrature in alpha: (B,) float64.

    predictor: ``predictor(x, t) -> (B, L, V)`` probabilities over clean tokens, entering the rates by
    ``param`` (:func:`uniform_ratios`). With ``beta dt = -d alpha / alpha`` the integral runs over alpha,
    at ``t = schedule.t_of_alpha(alpha)``. For the exact denoiser (param "denoiser") or the exact
    leave-one-out posterior (param "loo") it equals ``log p(x0)``. x0: (B, L) with V^L <= 2^16.
    """
    check_callable(predictor, "predictor", "a callable predictor(x, t) -> (B, L, V)")
    schedule = check_schedule(schedule)
    check_choice(param, "param", PARAMS)
    V = check_int(vocab_size, "vocab_size", minimum=2)
    x0 = check_tokens(x0, V, "x0", allow_mask=False).cpu()
    n_t = check_int(n_t, "n_t", minimum=4)
    B, L = x0.shape
    if L * math.log2(V) > 16:
        raise ValueError(f"vocab_size ** length must be at most 2**16 (every noisy state is visited); got {V} ** {L}")
    N = V**L
    states = (torch.arange(N)[:, None] // (V ** torch.arange(L - 1, -1, -1))[None] % V).long()   # (N, L)
    onehot = torch.nn.functional.one_hot(states, V).to(_F64)                                      # (N, L, V)
    alphas, weights = _tanh_sinh(n_t)
    total = torch.zeros(B, dtype=_F64)
    for a, w in zip(alphas.tolist(), weights.tolist()):
        t = float(schedule.t_of_alpha(torch.tensor(a, dtype=_F64)))
        c = (1 - a) / V
        s_hat = uniform_ratios(check_denoised(predictor(states, torch.full((N,), t, dtype=_F64)), N, L, V),
                               states, torch.full((N,), t, dtype=_F64), schedule, param=param)  # (N, L, V)
        # q(x_t | x0) for every x0 row and state, and r_i[v] = K[x0^i, v] / K[x0^i, x_t^i]
        k_x = torch.where(states[None] == x0[:, None, :], torch.tensor(a + c, dtype=_F64),
                          torch.tensor(c, dtype=_F64))                                        # (B, N, L): K[x0^i, x_t^i]
        q = k_x.prod(-1)                                                                      # (B, N)
        k_v = a * torch.nn.functional.one_hot(x0, V).to(_F64)[:, None] + c                    # (B, 1, L, V)
        k_x = k_x[..., None]
        r = k_v / k_x                                                                          # (B, N, L, V)
        f = s_hat[None] - r * torch.log(s_hat[None]) + r * (torch.log(r) - 1)
        f = (f * (1 - onehot)[None]).sum((-1, -2)) / V                                        # (B, N)
        total += w * (q * f).sum(1) / a
    return -total


def _bridge_step(P, x, a_t, a_s, param):
    """Per-position ``p(x_s^i = v | x_t)`` (B, L, V) for alpha_t < alpha_s; see uniform_step_probs."""
    V = P.shape[-1]
    a_t, a_s = a_t[:, None, None], a_s[:, None, None]
    onehot = torch.nn.functional.one_hot(x, V).to(_F64)
    a_ts = a_t / a_s
    K_ts_x = a_ts * onehot + (1 - a_ts) / V                          # K_{t|s}[v, x^i] over v
    if param == "loo":
        m_s = a_s * P + (1 - a_s) / V                                # (P K_s)[v]
        out = K_ts_x * m_s
    else:
        Kx = a_t * onehot + (1 - a_t) / V                            # K_t[a, x^i] over a
        w = P / Kx
        out = K_ts_x * (a_s * w + (1 - a_s) / V * w.sum(-1, keepdim=True))   # sum_a w[a] K_s[a, v]
    return out / out.sum(-1, keepdim=True)


def uniform_step_probs(probs, x, t, s, schedule: MaskSchedule, *, param: str = "denoiser") -> torch.Tensor:
    r"""One reverse step of uniform diffusion from t to s < t, position by position: (B, L, V).

    ``p(x_s^i = v | x_t) = sum_a D_i[a] q(x_s^i = v | x_t^i, x_0^i = a)`` with the bridge
    ``q(x_s = v | x_t = w, x_0 = a) = K_{t|s}[v, w] K_s[a, v] / K_t[a, w]``, ``K_{t|s}`` the kernel (1)
    with ``alpha_t / alpha_s``. With ``param="loo"`` the prediction enters the normalised plug-in
    bridge ``K_{t|s}[v, x^i] (probs K_s)[v] / (probs K_t)[x^i]`` instead: the same numbers when
    probs is the leave-one-out posterior of the D above. Positions are drawn independently (like
    MDLM's step): exact only as the steps get small. probs: (B, L, V); x: (B, L); t, s: floats or (B,).
    """
    schedule = check_schedule(schedule)
    check_choice(param, "param", PARAMS)
    P, x = _probs(probs, x)
    V = P.shape[-1]
    B = x.shape[0]
    a_t, a_s = _times(schedule, t, B), _times(schedule, s, B, "s")
    if (a_t > a_s).any() or (a_s <= 0).any():
        raise ValueError("s must come before t (alpha_s >= alpha_t) and have alpha_s > 0")
    return _bridge_step(P, x, a_t, a_s, param)


def _grid(schedule, steps):
    ts = torch.linspace(1, 0, steps + 1, dtype=_F64)
    return ts, schedule.alpha(ts)


def sample_uniform_stepwise(predictor, x, vocab_size: int, schedule: MaskSchedule, steps: int, *,
                            param: str = "denoiser", generator=None) -> torch.Tensor:
    r"""Step-wise sampler of uniform diffusion on a uniform grid from t = 1 to 0: at each step every
    position draws its new token from :func:`uniform_step_probs`. x: (B, L) start (uniform tokens for
    unconditional samples); predictor(x, t) -> (B, L, V). Returns (B, L) long."""
    check_callable(predictor, "predictor", "a callable predictor(x, t) -> (B, L, V)")
    check_cpu_generator(generator)
    schedule = check_schedule(schedule)
    check_choice(param, "param", PARAMS)
    V = check_int(vocab_size, "vocab_size", minimum=2)
    steps = check_int(steps, "steps", minimum=1)
    x = check_tokens(x, V, allow_mask=False).clone().cpu()
    B, L = x.shape
    ts, a = _grid(schedule, steps)
    for k in range(steps):
        P = check_denoised(predictor(x, torch.full((B,), float(ts[k]), dtype=_F64)), B, L, V)
        probs = _bridge_step(P, x, a[k].expand(B), a[k + 1].expand(B), param)
        x = torch.multinomial(probs.reshape(-1, V), 1, generator=generator).reshape(B, L)
    return x


def uniform_stepwise_law(predictor, vocab_size: int, length: int, schedule: MaskSchedule, steps: int, *,
                         param: str = "denoiser") -> torch.Tensor:
    r"""Exact law of :func:`sample_uniform_stepwise` from uniform tokens: (V^L,) float64, in table order.

    Propagates the distribution over all V^L states through the steps (each step's transition
    factorises over positions). Small V and L only (V^L up to 2^12)."""
    check_callable(predictor, "predictor", "a callable predictor(x, t) -> (B, L, V)")
    schedule = check_schedule(schedule)
    check_choice(param, "param", PARAMS)
    V = check_int(vocab_size, "vocab_size", minimum=2)
    L = check_int(length, "length", minimum=1)
    steps = check_int(steps, "steps", minimum=1)
    if L * math.log2(V) > 12:
        raise ValueError(f"vocab_size ** length must be at most 2**12; got {V} ** {L}")
    N = V**L
    states = (torch.arange(N)[:, None] // (V ** torch.arange(L - 1, -1, -1))[None] % V).long()
    ts, a = _grid(schedule, steps)
    pi = torch.full((N,), 1.0 / N, dtype=_F64)
    for k in range(steps):
        P = check_denoised(predictor(states, torch.full((N,), float(ts[k]), dtype=_F64)), N, L, V)
        step = _bridge_step(P, states, a[k].expand(N), a[k + 1].expand(N), param)     # (N, L, V)
        T = step[:, 0]
        for i in range(1, L):
            T = (T[:, :, None] * step[:, i, None, :]).reshape(N, -1)
        pi = pi @ T
    return pi


def _masks(L):
    return ((torch.arange(2**L)[:, None] >> torch.arange(L)[None]) & 1).bool()      # (2^L, L): True = masked


def _mask_posterior(dist, x, a):
    """``P(m | x_t = x)`` over the 2^L mask patterns, eq. (4): (B, 2^L)."""
    L, V = dist.L, dist.V
    M = _masks(L)
    # p_0(x_0^i = x^i for every unmasked i): sum of the table over sequences agreeing on the unmasked set
    agree = dist.seqs[None, None] == x[:, None, None, :]                     # (B, 1, N, L)
    ok = (agree | M[None, :, None, :]).all(-1)                               # (B, 2^L, N)
    pm = (ok.to(_F64) * dist.table).sum(-1)                                  # (B, 2^L)
    k = M.sum(1).to(_F64)
    logw = (L - k)[None] * torch.log(a)[:, None] + k[None] * torch.log((1 - a)[:, None] / V)
    w = torch.exp(logw - logw.max(1, keepdim=True).values) * pm
    return w / w.sum(1, keepdim=True), M


def noise_posterior(dist: SequenceDistribution, x, t, schedule: MaskSchedule) -> torch.Tensor:
    r"""In the absorbing reformulation, ``P(m^i = 1 | x_t = x)``: the probability that the token shown at
    position i is noise (was replaced), eq. (4). x: (B, L), L <= 12; t: float or (B,). Returns (B, L)."""
    dist = _check_dist(dist)
    schedule = check_schedule(schedule)
    x = check_tokens(x, dist.V, allow_mask=False).cpu()
    if x.shape[1] != dist.L or dist.L > 12:
        raise ValueError(f"x must have shape (B, {dist.L}) with L <= 12; got {tuple(x.shape)}")
    a = _times(schedule, t, x.shape[0])
    w, M = _mask_posterior(dist, x, a)
    return w @ M.to(_F64)


def absorbing_denoiser(dist: SequenceDistribution, schedule: MaskSchedule):
    r"""The uniform-diffusion denoiser as the mixture of masked-diffusion denoisers, eq. (4):
    ``D(x, t) = sum_m P(m | x) dist.denoiser(x masked by m)`` over the 2^L mask patterns. The same
    function as :func:`uniform_denoiser`, computed another way (a check of the reformulation)."""
    dist = _check_dist(dist)
    schedule = check_schedule(schedule)

    def denoiser(x, t):
        x = check_tokens(x, dist.V, allow_mask=False).cpu()
        if x.shape[1] != dist.L or dist.L > 12:
            raise ValueError(f"x must have shape (B, {dist.L}) with L <= 12; got {tuple(x.shape)}")
        B, L = x.shape
        w, M = _mask_posterior(dist, x, _times(schedule, t, B))
        masked = torch.where(M[None], torch.full((B, 2**L, L), dist.V, dtype=torch.long), x[:, None, :])
        D = dist.denoiser(masked.reshape(-1, L)).reshape(B, 2**L, L, dist.V)
        return (w[..., None, None] * D).sum(1)

    return denoiser
