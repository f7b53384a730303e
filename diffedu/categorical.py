r"""Categorical sampling with truncated uniforms: the Gumbel-max trick and its exact law.

A categorical draw by the Gumbel-max trick is ``argmax_c (log p_c - log(-log U_c))`` with uniforms
U_c. In floating point the uniforms are not continuous: ``torch.rand`` gives ``k 2^-bits`` with k
uniform on ``{0, ..., 2^bits - 1}``, ``bits = 24`` in float32 and 53 in float64.
:func:`gumbel_max_probs` gives the exact law that such truncated uniforms produce: categories
whose probability is comparable to ``2^-bits`` next to a dominant one are drawn less often than
they should be, and among them the likely ones gain, a lower temperature (Zheng et al. 2024,
"Masked diffusion models are secretly time-agnostic masked models and exploit inaccurate
categorical sampling", Sec. 5). :func:`masked_step_law` is the case that matters in masked
diffusion: the race of a token law against the mask in one sampler step. Lesson 09.
"""

from __future__ import annotations

import math

import torch

from ._core import as_real_tensor, check_generator, check_int, check_probs, check_real

__all__ = ["sample_categorical", "gumbel_max_probs", "masked_step_law", "entropy", "total_variation", "zipf"]

_F64 = torch.float64


def _check_bits(bits):
    return check_int(bits, "bits (24 = float32, 53 = float64)", minimum=1, maximum=53)


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
    probs = check_probs(probs).to(_F64)
    check_generator(generator, probs.device)
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
    p = check_probs(probs).to(_F64).cpu()
    if p.dim() != 1:
        raise ValueError(f"probs must have shape (C,); got {tuple(p.shape)}")
    if p.numel() == 1:
        return torch.ones(1, dtype=_F64)
    return _gumbel_full(p, bits) if bits <= 20 else _gumbel_split(p, bits)


def _probs_along(p, dim, name):
    """p as float64 probabilities along ``dim`` (checked by :func:`check_probs`), moved last."""
    p = p.to(_F64) if isinstance(p, torch.Tensor) and p.is_floating_point() else as_real_tensor(p, name, "array-like of probabilities")
    dim = check_int(dim, "dim", minimum=None)
    if not -max(p.dim(), 1) <= dim < max(p.dim(), 1):
        raise ValueError(f"dim must be an axis of {name} (shape {tuple(p.shape)}); got {dim}")
    return check_probs(p.movedim(dim, -1) if p.dim() else p, name)


def entropy(p, dim: int = -1) -> torch.Tensor:
    """Shannon entropy in nats, ``-sum p log p`` (0 log 0 = 0). p: probabilities along ``dim``."""
    p = _probs_along(p, dim, "p")
    return -(torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))).sum(-1)


def total_variation(p, q, dim: int = -1) -> torch.Tensor:
    r"""Total-variation distance between two laws on the same finite set: ``1/2 sum_c |p_c - q_c|``.

    It equals ``max_A |p(A) - q(A)|`` over events A, in [0, 1]. p, q: (..., C) probabilities
    (broadcast against each other); returns (...) float64. Lesson 09 measures the step-wise
    sampler's law against the data with it.
    """
    p, q = _probs_along(p, dim, "p"), _probs_along(q, dim, "q")
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"p and q must have the same number of outcomes; got {p.shape[-1]} and {q.shape[-1]}")
    return 0.5 * (p - q).abs().sum(-1)




def masked_step_law(probs, q: float, bits: int):
    r"""One step of a masked-diffusion sampler at one masked position, drawn by Gumbel-max.

    The position unmasks with probability q and then takes token v with probability ``probs[v]``:
    one categorical over ``[q p_1, ..., q p_V, 1 - q]`` (the last outcome: stay masked), drawn
    with ``bits``-bit uniforms (:func:`gumbel_max_probs`). Returns ``(law, p_unmask)``: the law of
    the token given that the position unmasked, (V,) float64, and the probability that it
    unmasked. With 53 bits they are ``probs`` and q; with 24 bits and small q the tail tokens
    are lost (Zheng et al. 2024, Sec. 5). probs: (V,) summing to 1; q in (0, 1].
    """
    p = check_probs(probs).to(_F64).cpu()
    if p.dim() != 1:
        raise ValueError(f"probs must have shape (V,); got {tuple(p.shape)}")
    q = check_real(q, "q", minimum=0.0, maximum=1.0)
    if q == 0:
        raise ValueError("q must be > 0 (the position must be able to unmask)")
    pi = torch.cat([q * p, torch.tensor([1 - q], dtype=_F64)])
    pe = gumbel_max_probs(pi, bits)
    unmask = pe[:-1].sum()
    return pe[:-1] / unmask, float(unmask)


def zipf(vocab_size: int, s: float = 1.0) -> torch.Tensor:
    r"""A Zipf law over ``vocab_size`` tokens, ``p_v ~ 1 / (v + 1)^s``, float64 (V,).

    Token frequencies in natural language follow it roughly with s near 1: a few tokens carry
    most of the mass and a long tail carries the rest.
    """
    V = check_int(vocab_size, "vocab_size", minimum=2)
    s = check_real(s, "s", minimum=0.0)
    w = 1.0 / torch.arange(1, V + 1, dtype=_F64) ** s
    return w / w.sum()
