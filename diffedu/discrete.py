r"""Masked (absorbing-state) diffusion over short token sequences, with exact answers.

Sequences have length L over the vocabulary ``{0, ..., V-1}``; the mask token is ``V``.
Data sits at t = 0 and the fully masked sequence at t = 1 (NOTATION.md's direction). A
schedule gives the probability ``alpha_t`` that a token is still unmasked at time t
(``alpha_0 = 1``, ``alpha_1 = 0``), each position independently:

    q(x_t^i = x_0^i) = alpha_t,   q(x_t^i = mask) = 1 - alpha_t.

The posterior ``p(x_0 | x_t)`` is ``p_0`` restricted to the sequences that agree with the
unmasked tokens of x_t: it does not depend on t. So the exact denoiser is *time-agnostic*
(Zheng et al. 2024, "Masked diffusion models are secretly time-agnostic masked models and
exploit inaccurate categorical sampling", Prop. 3.1), the continuous-time ELBO

    log p(x_0) >= int_0^1 (-alpha'_t) / (1 - alpha_t) E_{x_t ~ q(.|x_0)} [ sum_{i masked} log D(x_t)[i, x_0^i] ] dt

depends on the schedule only through ``d alpha / (1 - alpha)`` and is the same for every
schedule (substitute ``alpha`` for t; Shi et al. 2024, "Simplified and generalized masked
diffusion", eq. 5; Sahoo et al. 2024, MDLM, eq. 10), and sampling reduces to decoding tokens one
at a time in a random order: the first-hitting sampler (Zheng et al., Alg. 1).

Categorical draws use the Gumbel-max trick with uniforms of ``bits`` bits of precision
(24 is what ``torch.rand`` gives in float32, 53 in float64). :func:`gumbel_max_probs` gives
the exact law that such truncated uniforms produce (Zheng et al., Sec. 5, show the float32
case lowers the effective temperature). Lesson 08.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._core import check_generator

__all__ = [
    "MaskSchedule", "LinearMask", "CosineMask", "PowerMask",
    "SequenceDistribution", "all_masked", "mask_tokens",
    "sample_categorical", "gumbel_max_probs", "entropy",
    "first_hitting_time", "sample_first_hitting", "sample_stepwise", "stepwise_law",
    "elbo", "elbo_mc", "sequence_chi2",
]

_F64 = torch.float64


# --- argument checks ------------------------------------------------------------------------
def _check_generator(generator, device="cpu"):
    check_generator(generator, device)  # the samplers here draw on the CPU


def _check_int(value, name, lo=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}")
    return value


def _check_bits(bits):
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 53:
        raise ValueError(f"bits must be an integer in [1, 53] (24 = float32, 53 = float64); got {bits!r}")
    return bits


def _check_tokens(x, vocab_size, name="x", allow_mask=True):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, shape (B, L); got {type(x).__name__}")
    if x.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"{name} must have an integer dtype (token ids); got {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (B, L); got {tuple(x.shape)}")
    top = vocab_size if allow_mask else vocab_size - 1
    if x.numel() and (int(x.min()) < 0 or int(x.max()) > top):
        what = f"0..{vocab_size - 1} or the mask id {vocab_size}" if allow_mask else f"0..{vocab_size - 1}"
        raise ValueError(f"{name} must hold token ids in {what}; got values in [{int(x.min())}, {int(x.max())}]")
    return x.long()


def _check_probs(probs, name="probs"):
    if not isinstance(probs, torch.Tensor):
        try:
            probs = torch.as_tensor(probs, dtype=_F64)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"{name} must be array-like of probabilities; got {type(probs).__name__}") from e
    if not probs.is_floating_point():
        probs = probs.to(_F64)
    if probs.dim() < 1 or probs.shape[-1] < 1:
        raise ValueError(f"{name} must have a last dimension of categories; got shape {tuple(probs.shape)}")
    if not torch.isfinite(probs).all() or (probs < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    s = probs.sum(-1)
    if ((s - 1).abs() > 1e-6).any():
        raise ValueError(f"{name} must sum to 1 along the last dimension; got sums in "
                         f"[{float(s.min()):.6g}, {float(s.max()):.6g}]")
    return probs


# --- schedules --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaskSchedule:
    r"""Unmasked fraction ``alpha_t`` on ``[0, 1]``, decreasing from 1 to 0.

    Subclasses define ``alpha``, ``d_alpha`` and ``t_of_alpha``. ``t`` is a float or tensor;
    results are float64 tensors.
    """

    def alpha(self, t):
        raise NotImplementedError

    def d_alpha(self, t):
        raise NotImplementedError

    def t_of_alpha(self, a):
        raise NotImplementedError

    def check_t(self, t, name="t"):
        tt = torch.as_tensor(t, dtype=_F64)
        if torch.isnan(tt).any() or (tt < 0).any() or (tt > 1).any():
            raise ValueError(f"{name} must lie in [0, 1] for {self!r}; got values in "
                             f"[{float(tt.min())}, {float(tt.max())}]")
        return tt


@dataclass(frozen=True)
class LinearMask(MaskSchedule):
    r"""``alpha_t = 1 - t`` (MDLM's linear schedule; the ELBO weight is ``1/t``)."""

    def alpha(self, t):
        return 1 - torch.as_tensor(t, dtype=_F64)

    def d_alpha(self, t):
        return -torch.ones_like(torch.as_tensor(t, dtype=_F64))

    def t_of_alpha(self, a):
        return 1 - torch.as_tensor(a, dtype=_F64)


@dataclass(frozen=True)
class CosineMask(MaskSchedule):
    r"""``alpha_t = cos(pi t / 2)`` (Shi et al. 2024, Table 1)."""

    def alpha(self, t):
        t = torch.as_tensor(t, dtype=_F64)
        return torch.where(t >= 1, torch.zeros_like(t), torch.cos(0.5 * math.pi * t))

    def d_alpha(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * torch.as_tensor(t, dtype=_F64))

    def t_of_alpha(self, a):
        return 2 / math.pi * torch.arccos(torch.as_tensor(a, dtype=_F64).clamp(0, 1))


@dataclass(frozen=True)
class PowerMask(MaskSchedule):
    r"""``alpha_t = 1 - t^p`` (p = 1 is :class:`LinearMask`)."""

    p: float = 2.0

    def __post_init__(self):
        if not (isinstance(self.p, (int, float)) and math.isfinite(self.p) and self.p > 0):
            raise ValueError(f"p must be a positive finite number; got {self.p!r}")

    def alpha(self, t):
        return 1 - torch.as_tensor(t, dtype=_F64) ** self.p

    def d_alpha(self, t):
        return -self.p * torch.as_tensor(t, dtype=_F64) ** (self.p - 1)

    def t_of_alpha(self, a):
        return (1 - torch.as_tensor(a, dtype=_F64)).clamp(min=0) ** (1 / self.p)


def _check_schedule(schedule):
    if not isinstance(schedule, MaskSchedule):
        raise TypeError(f"schedule must be a diffedu.discrete.MaskSchedule (LinearMask(), CosineMask(), "
                        f"PowerMask(p)); got {type(schedule).__name__}")
    return schedule


# --- the data distribution ----------------------------------------------------------------
class SequenceDistribution:
    r"""A distribution over all ``V^L`` sequences, stored as a table; exact posterior marginals.

    probs: ``V^L`` probabilities in lexicographic order (position 0 most significant), as a flat
    (V^L,) tensor or of shape (V,) * L. Meant for small tables (V^L up to about 10^5).
    :meth:`markov_chain` builds the table of a Markov chain.
    """

    def __init__(self, probs, vocab_size: int, length: int):
        self.V = _check_int(vocab_size, "vocab_size", 2)
        self.L = _check_int(length, "length", 1)
        N = self.V ** self.L
        if N > 2**20:
            raise ValueError(f"vocab_size ** length must be at most 2**20 for a table; got {N}")
        p = _check_probs(torch.as_tensor(probs, dtype=_F64).reshape(-1) if not isinstance(probs, torch.Tensor)
                         else probs.to(_F64).reshape(-1))
        if p.numel() != N:
            raise ValueError(f"probs must hold vocab_size ** length = {N} entries; got {p.numel()}")
        self.table = p / p.sum()
        digits = torch.arange(N)[:, None] // (self.V ** torch.arange(self.L - 1, -1, -1))[None] % self.V
        self.seqs = digits.long()  # (N, L)
        self._onehot = torch.nn.functional.one_hot(self.seqs, self.V).to(_F64).reshape(N, self.L * self.V)

    @classmethod
    def markov_chain(cls, init, trans, length: int) -> "SequenceDistribution":
        r"""Sequences of a Markov chain: ``p(x) = init[x_0] prod_i trans[x_{i-1}, x_i]``.

        init: (V,) probabilities; trans: (V, V) row-stochastic.
        """
        init = _check_probs(init, "init")
        V = init.shape[-1]
        if init.dim() != 1:
            raise ValueError(f"init must have shape (V,); got {tuple(init.shape)}")
        trans = _check_probs(trans, "trans")
        if trans.shape != (V, V):
            raise ValueError(f"trans must have shape ({V}, {V}) (rows sum to 1); got {tuple(trans.shape)}")
        _check_int(length, "length", 1)
        p = init.clone()
        for _ in range(length - 1):
            p = (p[..., None] * trans.reshape((1,) * (p.dim() - 1) + (V, V)))
        return cls(p.reshape(-1), V, length)

    def __repr__(self):
        return f"SequenceDistribution(vocab_size={self.V}, length={self.L})"

    @property
    def mask_id(self) -> int:
        return self.V

    def index(self, x) -> torch.Tensor:
        """Table index of each sequence of x (B, L) without masks: (B,) long."""
        x = _check_tokens(x, self.V, allow_mask=False)
        if x.shape[1] != self.L:
            raise ValueError(f"x must have shape (B, {self.L}); got {tuple(x.shape)}")
        return (x * (self.V ** torch.arange(self.L - 1, -1, -1, device=x.device))).sum(1)

    def log_prob(self, x) -> torch.Tensor:
        """``log p_0(x)``: (B,) float64."""
        return torch.log(self.table[self.index(x).cpu()])

    def sample(self, n: int, *, generator=None) -> torch.Tensor:
        """n sequences (n, L) long, drawn from the table with ``torch.multinomial``."""
        _check_generator(generator)
        _check_int(n, "n", 1)
        return self.seqs[torch.multinomial(self.table, n, replacement=True, generator=generator)]

    def marginals(self) -> torch.Tensor:
        """Per-position marginals ``p(x^i = v)``: (L, V) float64."""
        return (self.table @ self._onehot).reshape(self.L, self.V)

    def product_of_marginals(self) -> "SequenceDistribution":
        """The distribution that draws every position independently from its marginal."""
        m = self.marginals()
        p = m[0]
        for i in range(1, self.L):
            p = (p[..., None] * m[i])
        return SequenceDistribution(p.reshape(-1), self.V, self.L)

    def denoiser(self, x, t=None) -> torch.Tensor:
        r"""Exact posterior marginals ``p(x_0^i = v | x_t = x)``: (B, L, V) float64.

        x: (B, L) with mask id V at masked positions. ``p(x_0 | x_t)`` is p_0 restricted to the
        sequences that agree with the unmasked tokens, so ``t`` is accepted and ignored
        (time-agnostic). Unmasked positions get a one-hot row. A context with zero probability
        under p_0 gets uniform rows.
        """
        x = _check_tokens(x, self.V)
        if x.shape[1] != self.L:
            raise ValueError(f"x must have shape (B, {self.L}); got {tuple(x.shape)}")
        # a batch repeats states: work on the distinct ones (codes in base V + 1)
        base = (self.V + 1) ** torch.arange(self.L - 1, -1, -1)
        codes, inverse = torch.unique((x.cpu() * base).sum(1), return_inverse=True)
        x = codes[:, None] // base % (self.V + 1)
        out = torch.empty(x.shape[0], self.L * self.V, dtype=_F64)
        step = max(1, 2**24 // (self.table.numel() * self.L))
        for i in range(0, x.shape[0], step):
            xb = x[i:i + step, None, :]
            ok = ((xb == self.seqs[None]) | (xb == self.V)).all(-1)  # (b, N) compatible sequences
            w = ok.to(_F64) * self.table
            z = w.sum(1, keepdim=True)
            w = torch.where(z > 0, w / z.clamp(min=1e-300), torch.full_like(w, 1.0 / w.shape[1]))
            out[i:i + step] = w @ self._onehot
        return out[inverse].reshape(-1, self.L, self.V)

    def marginal_denoiser(self, x, t=None) -> torch.Tensor:
        """Context-free denoiser: every masked position gets its marginal, (B, L, V).

        The first-hitting sampler with it draws from :meth:`product_of_marginals`."""
        x = _check_tokens(x, self.V)
        m = self.marginals()[None].expand(x.shape[0], -1, -1).clone()
        known = x.cpu() < self.V
        onehot = torch.nn.functional.one_hot(x.cpu().clamp(max=self.V - 1), self.V).to(_F64)
        m[known] = onehot[known]
        return m


def all_masked(n: int, length: int, vocab_size: int) -> torch.Tensor:
    """The fully masked start, (n, length) long filled with the mask id ``vocab_size``."""
    return torch.full((_check_int(n, "n"), _check_int(length, "length")), _check_int(vocab_size, "vocab_size", 2),
                      dtype=torch.long)


def mask_tokens(x0, t, schedule: MaskSchedule, vocab_size: int, *, generator=None) -> torch.Tensor:
    r"""Forward process: mask each token of x0 (B, L) independently with probability ``1 - alpha_t``.

    t: float, 0-d or (B,). Returns x_t (B, L) long with mask id ``vocab_size``.
    """
    schedule = _check_schedule(schedule)
    x0 = _check_tokens(x0, vocab_size, "x0", allow_mask=False)
    _check_generator(generator, x0.device)
    tt = schedule.check_t(t)
    a = schedule.alpha(tt).to(x0.device)
    if a.dim() == 1:
        if a.shape[0] != x0.shape[0]:
            raise ValueError(f"t must be a float, 0-d or ({x0.shape[0]},); got shape {tuple(a.shape)}")
        a = a[:, None]
    u = torch.rand(x0.shape, generator=generator, dtype=_F64, device=x0.device)
    return torch.where(u < a, x0, torch.full_like(x0, vocab_size))


# --- categorical sampling with truncated uniforms ----------------------------------------------
def _uniforms(shape, bits, generator, device=None):
    """Uniforms on the grid ``k 2^-bits``, k = 0 .. 2^bits - 1 (what torch.rand does for 24, 53)."""
    k = torch.randint(0, 2**bits, shape, generator=generator, device=device, dtype=torch.int64)
    return k.to(_F64) * 2.0**-bits


def sample_categorical(probs, *, bits: int = 53, generator=None) -> torch.Tensor:
    r"""Categorical draws by the Gumbel-max trick: ``argmax_c (log p_c - log(-log U_c))``.

    probs: (..., C); returns (...) long. ``U_c`` are uniforms with ``bits`` bits of precision:
    ``k 2^-bits`` with k uniform on ``{0, ..., 2^bits - 1}`` (``torch.rand`` in float32 is the
    24-bit case, in float64 the 53-bit one). The arithmetic is float64 whatever ``bits``.
    Ties go to the lowest index (``torch.argmax``). :func:`gumbel_max_probs` gives the exact law.
    """
    bits = _check_bits(bits)
    probs = _check_probs(probs).to(_F64)
    _check_generator(generator, probs.device)
    u = _uniforms(probs.shape, bits, generator, probs.device)
    g = -torch.log(-torch.log(u))
    return torch.argmax(torch.log(probs) + g, dim=-1)


def _survival_counts(u, r, n, after):
    r"""For each grid uniform u of the candidate v and ratio ``r = p_w / p_v``: the number of grid
    values k' for which w does not beat v. w beats v when ``k' / n > u^r``, and on a tie
    ``k' / n = u^r`` when w comes first (``after`` False): ``ceil(n u^r)`` if w comes first,
    ``floor(n u^r) + 1`` if it comes after v; in [1, n]."""
    x = n * torch.exp(r * torch.log(u))
    xr = torch.round(x)
    x = torch.where((x - xr).abs() <= 1e-9 * xr.clamp(min=1), xr, x)  # exact ties computed inexactly
    return torch.where(after, torch.floor(x) + 1, torch.ceil(x)).clamp(1, n)


def _gumbel_full(p, bits, chunk=2**18):
    """Exact law by summing over all 2^bits grid values of the winner's uniform."""
    C, n = p.numel(), 2**bits
    out = torch.zeros(C, dtype=_F64)
    for v in range(C):
        if p[v] == 0:
            continue
        others = torch.cat([p[:v], p[v + 1:]])
        r = others / p[v]
        after = (torch.arange(C - 1) >= v)[None]
        acc = 0.0
        for k0 in range(1, n, chunk):
            u = torch.arange(k0, min(n, k0 + chunk), dtype=_F64) / n
            cnt = _survival_counts(u[:, None], r[None], n, after) / n  # P(w does not beat v | U_v = u)
            acc += float(torch.prod(cnt, dim=1).sum()) / n
        out[v] = acc
    out[0] += float(n) ** -C  # every uniform is 0: all scores are -inf, argmax picks index 0
    return out


def _gumbel_split(p, bits, chunk=2**18, max_terms=2**22):
    """Law for many bits when one category dominates: exact where that category's uniform
    matters, ideal probabilities for the rest (absolute error below ``C 2^-2 bits``)."""
    C, n = p.numel(), 2**bits
    top = int(torch.argmax(p))
    rest = torch.cat([p[:top], p[top + 1:]])
    ideal_rest = rest / rest.sum() if rest.sum() > 0 else rest
    out = torch.zeros(C, dtype=_F64)
    j = 0
    for v in range(C):
        if v == top:
            continue
        if p[v] == 0:
            j += 1
            continue
        R = float(p[top] / p[v])
        # below k_min the dominant category survives only with its own U = 0 (count 1)
        k_min = max(1, int(math.floor(n * math.exp(-bits * math.log(2) / R))) - 1)
        if n - k_min > max_terms:
            # the grid resolves this category finely (n p_v / p_max > ~2^17): truncation moves
            # it by a relative ~ p_max / (2 n p_v) < 1e-5, below what this function reports
            out[v] = p[v]
            j += 1
            continue
        others = torch.cat([p[:v], p[v + 1:]])
        r = others / p[v]
        after = (torch.arange(C - 1) >= v)[None]
        top_pos = top if top < v else top - 1
        mask = torch.ones(C - 1, dtype=torch.bool)
        mask[top_pos] = False
        acc_all, acc_rest = 0.0, 0.0
        for k0 in range(k_min, n, chunk):
            u = torch.arange(k0, min(n, k0 + chunk), dtype=_F64) / n
            cnt = _survival_counts(u[:, None], r[None], n, after) / n
            acc_all += float(torch.prod(cnt, dim=1).sum()) / n
            acc_rest += float(torch.prod(cnt[:, mask], dim=1).sum()) / n
        out[v] = acc_all + (float(ideal_rest[j]) - acc_rest) / n
        j += 1
    out[top] = 1 - (out.sum() - out[top])
    return out


def gumbel_max_probs(probs, bits: int) -> torch.Tensor:
    r"""The exact law of :func:`sample_categorical` with ``bits``-bit uniforms: (C,) float64.

    With ``E_c = -log U_c`` the Gumbel-max winner is ``argmin_c E_c / p_c``. For uniforms on the
    grid ``k / n`` (n = 2^bits), given ``U_v = k / n`` the category w does not beat v with
    probability ``ceil(n (k/n)^(p_w/p_v)) / n``, so

        P(v) = (1/n) sum_{k=1}^{n-1} prod_{w != v} ceil(n (k/n)^(p_w / p_v)) / n

    (plus ``n^-C`` for index 0, when every uniform is 0), in exact arithmetic; an exact tie
    ``(k'/n) = (k/n)^(p_w/p_v)`` goes to the lower index, as ``torch.argmax`` does (in floating
    point such a tie may round either way; these events have probability below ``n^-2``). The lowest uniform above 0 in ``E`` is ``-log(1 - 1/n) ~ 2^-bits``: a category
    whose probability is comparable to ``2^-bits`` next to a dominant one is drawn less often
    than it should be, and among such categories the likely ones gain (a lower temperature;
    Zheng et al. 2024, Sec. 5). For ``bits <= 20`` the sum runs over all n terms (O(C^2 n)).
    For more bits the dominant category's uniform is resolved exactly where it matters and the
    others use ideal probabilities (absolute error below ``C 4^-bits``); a category with
    ``n p_v / p_max > 2^17``, which the grid resolves finely, keeps its ideal probability
    (relative error below 1e-5). So 53 bits returns ``probs`` up to round-off, and 24 bits is
    computed exactly where truncation shows: categories near ``2^-24`` next to a dominant one.
    probs: (C,) summing to 1.
    """
    bits = _check_bits(bits)
    p = _check_probs(probs).to(_F64).cpu()
    if p.dim() != 1:
        raise ValueError(f"probs must have shape (C,); got {tuple(p.shape)}")
    if p.numel() == 1:
        return torch.ones(1, dtype=_F64)
    return _gumbel_full(p, bits) if bits <= 20 else _gumbel_split(p, bits)


def entropy(p, dim: int = -1) -> torch.Tensor:
    """Shannon entropy in nats, ``-sum p log p`` (0 log 0 = 0)."""
    p = torch.as_tensor(p, dtype=_F64)
    return -(torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))).sum(dim)


# --- samplers -------------------------------------------------------------------------------
def _check_denoised(probs, B, L, V):
    if not isinstance(probs, torch.Tensor) or probs.shape != (B, L, V):
        got = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise ValueError(f"denoiser must return probabilities of shape ({B}, {L}, {V}); got {got}")
    return probs.to(_F64).cpu()


def first_hitting_time(t, n_masked, schedule: MaskSchedule, *, generator=None) -> torch.Tensor:
    r"""Time at which the first of ``n_masked`` masked tokens unmasks, going back from t.

    Each masked token at time t is still masked at s < t with probability
    ``(1 - alpha_s) / (1 - alpha_t)``, independently, so the first of n unmasks at
    ``1 - alpha_s = (1 - alpha_t) U^(1/n)`` (Zheng et al. 2024, eq. 9): from t = 1,
    ``alpha_s ~ Beta(1, n)``. t, n_masked: (B,) tensors (or scalars). Returns (B,) float64.
    """
    _check_generator(generator)
    schedule = _check_schedule(schedule)
    t = schedule.check_t(t).reshape(-1)
    n = torch.as_tensor(n_masked, dtype=_F64).reshape(-1)
    if (n < 1).any():
        raise ValueError("n_masked must be at least 1 for every sequence")
    t, n = torch.broadcast_tensors(t, n)
    u = torch.rand(t.shape, generator=generator, dtype=_F64)
    one_minus = (1 - schedule.alpha(t)) * u ** (1 / n)
    return schedule.t_of_alpha(1 - one_minus).clamp(0, 1)


def sample_first_hitting(denoiser, x, vocab_size: int, schedule: MaskSchedule, *, bits: int = 53,
                         generator=None) -> torch.Tensor:
    r"""First-hitting sampler (Zheng et al. 2024, Alg. 1): one denoiser call per masked token.

    x: (B, L) start (:func:`all_masked` for unconditional samples); denoiser(x, t) -> (B, L, V)
    probabilities. Loop: draw the time of the next unmasking (:func:`first_hitting_time`),
    pick one masked position uniformly, draw its token from the denoiser. Exact for an exact
    denoiser: it is any-order autoregressive decoding. Returns (B, L) long.
    """
    _check_generator(generator)
    schedule = _check_schedule(schedule)
    bits = _check_bits(bits)
    V = _check_int(vocab_size, "vocab_size", 2)
    x = _check_tokens(x, V).clone().cpu()
    B, L = x.shape
    t = torch.ones(B, dtype=_F64)
    while True:
        masked = x == V
        n = masked.sum(1)
        live = n > 0
        if not live.any():
            return x
        t = torch.where(live, first_hitting_time(t, n.clamp(min=1), schedule, generator=generator), t)
        probs = _check_denoised(denoiser(x, t), B, L, V)
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
    _check_generator(generator)
    schedule = _check_schedule(schedule)
    bits = _check_bits(bits)
    V = _check_int(vocab_size, "vocab_size", 2)
    steps = _check_int(steps, "steps")
    x = _check_tokens(x, V).clone().cpu()
    B, L = x.shape
    ts, a = _stepwise_grid(schedule, steps)
    for k in range(steps):
        q = float((a[k + 1] - a[k]) / (1 - a[k]))
        masked = x == V
        if not masked.any():
            break
        probs = _check_denoised(denoiser(x, torch.full((B,), float(ts[k]), dtype=_F64)), B, L, V)
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
    schedule = _check_schedule(schedule)
    V = _check_int(vocab_size, "vocab_size", 2)
    L = _check_int(length, "length")
    steps = _check_int(steps, "steps")
    S = (V + 1) ** L
    if S > 5000:
        raise ValueError(f"(vocab_size + 1) ** length must be at most 5000; got {S}")
    states = torch.arange(S)[:, None] // ((V + 1) ** torch.arange(L - 1, -1, -1))[None] % (V + 1)
    ts, a = _stepwise_grid(schedule, steps)
    pi = torch.zeros(S, dtype=_F64)
    pi[-1] = 1.0  # all masked: the largest code
    masked = states == V
    for k in range(steps):
        q = float((a[k + 1] - a[k]) / (1 - a[k]))
        probs = _check_denoised(denoiser(states, torch.full((S,), float(ts[k]), dtype=_F64)), S, L, V)
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


# --- the ELBO ------------------------------------------------------------------------------
def _mask_costs(denoiser, x0, V):
    """For every mask pattern M (2^L of them): ``sum_{i in M} -log D(x0 masked by M)[i, x0_i]``."""
    B, L = x0.shape
    M = (torch.arange(2**L)[:, None] >> torch.arange(L)[None]) & 1  # (2^L, L) 1 = masked
    xt = torch.where(M[None].bool(), torch.full((B, 2**L, L), V, dtype=torch.long), x0[:, None, :])
    probs = _check_denoised(denoiser(xt.reshape(-1, L), None), B * 2**L, L, V).reshape(B, 2**L, L, V)
    p_true = probs.gather(-1, x0[:, None, :, None].expand(B, 2**L, L, 1))[..., 0]
    nll = -torch.log(p_true.clamp(min=1e-300)) * M[None]
    return nll.sum(-1), M.sum(1)  # (B, 2^L), (2^L,)


def elbo(denoiser, x0, schedule: MaskSchedule, vocab_size: int, *, n_t: int = 64) -> torch.Tensor:
    r"""Continuous-time ELBO ``<= log p(x0)`` per sequence, by exact expectation over masks: (B,).

    ``ELBO = int_0^1 (-alpha'_t) / (1 - alpha_t) sum_M P_t(M) sum_{i in M} log D(x0 masked by M)[i, x0^i] dt``
    with ``P_t(M) = (1 - alpha_t)^|M| alpha_t^(L - |M|)`` over all 2^L mask patterns (L <= 12),
    and Gauss-Legendre quadrature with ``n_t`` nodes in t. The denoiser is called as
    ``denoiser(x, None)``: time-agnostic denoisers only (then the value does not depend on the
    schedule; for the exact denoiser it equals ``log p(x0)``). Gauss-Legendre is exact for
    :class:`LinearMask` once ``n_t >= L / 2`` and fast for smooth schedules; a schedule whose
    ``alpha'`` is singular at an end (``PowerMask(p)`` with p < 1) converges slowly in ``n_t``.
    """
    schedule = _check_schedule(schedule)
    V = _check_int(vocab_size, "vocab_size", 2)
    x0 = _check_tokens(x0, V, "x0", allow_mask=False).cpu()
    if x0.shape[1] > 12:
        raise ValueError(f"x0 must have length L <= 12 (2^L mask patterns); got {x0.shape[1]}")
    n_t = _check_int(n_t, "n_t")
    cost, m = _mask_costs(denoiser, x0, V)
    L = x0.shape[1]
    import numpy as np
    nodes, wts = np.polynomial.legendre.leggauss(n_t)
    t = torch.as_tensor(0.5 * (nodes + 1), dtype=_F64)
    w = torch.as_tensor(0.5 * wts, dtype=_F64)
    a, da = schedule.alpha(t), schedule.d_alpha(t)
    # P_t(M) / (1 - alpha) with |M| >= 1 (|M| = 0 costs nothing), written without dividing by 0
    mm = m.clamp(min=1).to(_F64)
    P = (1 - a[:, None]) ** (mm[None] - 1) * a[:, None] ** (L - m[None].to(_F64))  # (n_t, 2^L)
    integrand = (-da)[:, None] * (P @ cost.T)  # (n_t, B): positive, the NELBO rate
    return -(w @ integrand)


def elbo_mc(denoiser, x0, schedule: MaskSchedule, vocab_size: int, n: int, *, generator=None):
    r"""Monte Carlo ELBO as a training loop estimates it: t ~ U(0, 1), x_t ~ q(. | x0).

    Returns ``(mean, stderr)``, each (B,), over n draws per sequence of
    ``(-alpha'_t) / (1 - alpha_t) sum_{i masked} log D(x_t)[i, x0^i]``; denoiser(x, t) -> (B, L, V).
    """
    _check_generator(generator)
    schedule = _check_schedule(schedule)
    V = _check_int(vocab_size, "vocab_size", 2)
    x0 = _check_tokens(x0, V, "x0", allow_mask=False).cpu()
    n = _check_int(n, "n", 2)
    B, L = x0.shape
    xr = x0.repeat_interleave(n, 0)
    t = torch.rand(B * n, generator=generator, dtype=_F64).clamp(min=1e-12)
    xt = mask_tokens(xr, t, schedule, V, generator=generator)
    probs = _check_denoised(denoiser(xt, t), B * n, L, V)
    logp = torch.log(probs.gather(-1, xr[..., None])[..., 0].clamp(min=1e-300)) * (xt == V)
    val = (-schedule.d_alpha(t) / (1 - schedule.alpha(t)) * logp.sum(1)).reshape(B, n)
    return val.mean(1), val.std(1) / math.sqrt(n)


# --- goodness of fit -------------------------------------------------------------------------
def sequence_chi2(x, dist: SequenceDistribution, *, min_expected: float = 5.0):
    r"""Pearson chi-square test of samples x (n, L) against ``dist`` over whole sequences.

    Cells are all V^L sequences; those with expected count below ``min_expected`` are pooled
    into one cell. Returns ``(statistic, dof, p_value)``. Unlike per-position tests, it sees
    correlations: a sampler that draws every position from its marginal fails it.
    """
    from scipy.stats import chi2

    if not isinstance(dist, SequenceDistribution):
        raise TypeError(f"dist must be a SequenceDistribution; got {type(dist).__name__}")
    idx = dist.index(x).cpu()
    n = idx.numel()
    if n < 1:
        raise ValueError("x must hold at least one sequence")
    obs = torch.bincount(idx, minlength=dist.table.numel()).to(_F64)
    exp = n * dist.table
    small = exp < min_expected
    o = torch.cat([obs[~small], obs[small].sum()[None]]) if small.any() else obs
    e = torch.cat([exp[~small], exp[small].sum()[None]]) if small.any() else exp
    keep = e > 0
    o, e = o[keep], e[keep]
    stat = float(((o - e) ** 2 / e).sum())
    dof = int(o.numel() - 1)
    return stat, dof, float(chi2.sf(stat, dof))
