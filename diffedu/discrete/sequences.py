r"""Distributions over short token sequences, stored as tables, with exact posterior marginals.

The posterior ``p(x_0 | x_t)`` of masked diffusion is ``p_0`` restricted to the sequences that
agree with the unmasked tokens of x_t: it does not depend on t. So the exact denoiser
(:meth:`SequenceDistribution.denoiser`) is *time-agnostic* (Zheng et al. 2024, Prop. 3.1).
:func:`sequence_chi2` tests samples against a table over whole sequences. Lesson 09.
"""

from __future__ import annotations

import math

import torch

from .._core import as_real_tensor, check_positive, check_probs
from ._checks import check_cpu_generator, check_int, check_tokens

__all__ = ["SequenceDistribution", "sequence_chi2"]

_F64 = torch.float64


def _check_table_size(V, L):
    """``V ** L`` at most 2**20, checked by its logarithm before the table is computed."""
    if L * math.log2(V) > 20:
        raise ValueError(f"vocab_size ** length must be at most 2**20 for a table; got "
                         f"{V} ** {L} = 2**{L * math.log2(V):.1f}")


class SequenceDistribution:
    r"""A distribution over all ``V^L`` sequences, stored as a table; exact posterior marginals.

    probs: ``V^L`` probabilities in lexicographic order (position 0 most significant), as a flat
    (V^L,) tensor or of shape (V,) * L. Meant for small tables (V^L up to about 10^5).
    :meth:`markov_chain` builds the table of a Markov chain.
    """

    def __init__(self, probs, vocab_size: int, length: int):
        self.V = check_int(vocab_size, "vocab_size", minimum=2)
        self.L = check_int(length, "length", minimum=1)
        _check_table_size(self.V, self.L)
        N = self.V ** self.L
        p = check_probs(as_real_tensor(probs, "probs", "array-like of probabilities").reshape(-1), "probs")
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
        init = check_probs(init, "init")
        V = init.shape[-1]
        if init.dim() != 1:
            raise ValueError(f"init must have shape (V,); got {tuple(init.shape)}")
        trans = check_probs(trans, "trans")
        if trans.shape != (V, V):
            raise ValueError(f"trans must have shape ({V}, {V}) (rows sum to 1); got {tuple(trans.shape)}")
        _check_table_size(V, check_int(length, "length", minimum=1))  # before the V ** length table
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
        x = check_tokens(x, self.V, allow_mask=False)
        if x.shape[1] != self.L:
            raise ValueError(f"x must have shape (B, {self.L}); got {tuple(x.shape)}")
        return (x * (self.V ** torch.arange(self.L - 1, -1, -1, device=x.device))).sum(1)

    def log_prob(self, x) -> torch.Tensor:
        """``log p_0(x)``: (B,) float64."""
        return torch.log(self.table[self.index(x).cpu()])

    def sample(self, n: int, *, generator=None) -> torch.Tensor:
        """n sequences (n, L) long, drawn from the table with ``torch.multinomial``."""
        check_cpu_generator(generator)
        check_int(n, "n", minimum=1)
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
        x = check_tokens(x, self.V)
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
        x = check_tokens(x, self.V)
        if x.shape[1] != self.L:
            raise ValueError(f"x must have shape (B, {self.L}); got {tuple(x.shape)}")
        m = self.marginals()[None].expand(x.shape[0], -1, -1).clone()
        known = x.cpu() < self.V
        onehot = torch.nn.functional.one_hot(x.cpu().clamp(max=self.V - 1), self.V).to(_F64)
        m[known] = onehot[known]
        return m


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
    min_expected = check_positive(min_expected, "min_expected")
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
    if dof < 1:
        raise ValueError(f"x has too few sequences (n = {n}) for a test with min_expected = {min_expected:g}: every "
                         "cell pools into one (no degrees of freedom); draw more samples or lower min_expected")
    return stat, dof, float(chi2.sf(stat, dof))
