r"""Categorical sampling with truncated uniforms: the Gumbel-max trick and its exact law.

A categorical draw by the Gumbel-max trick is ``argmax_c (log p_c - log(-log U_c))`` with uniforms
U_c. In floating point the uniforms are not continuous: ``torch.rand`` gives ``k 2^-bits`` with k
uniform on ``{0, ..., 2^bits - 1}``, ``bits = 24`` in float32 and 53 in float64.
:func:`gumbel_max_probs` gives the exact law that such truncated uniforms produce: categories
whose probability is comparable to ``2^-bits`` next to a dominant one are drawn less often than
they should be, and among them the likely ones gain, a lower temperature (Zheng et al. 2024,
"Masked diffusion models are secretly time-agnostic masked models and exploit inaccurate
categorical sampling", Sec. 5). :func:`masked_step_law` is the case that matters in masked
diffusion: the race of a token law against the mask in one sampler step, and
:func:`masked_sampler_law` the law of the token a whole step-wise sampler leaves. All three work
at language-model sizes (a GPT-2 vocabulary of 50,257 tokens) in bounded memory and time: a
decomposition on the largest category, the first grid values of every category summed exactly
and the rest by one Euler-Maclaurin integral shared by all categories (:func:`gumbel_max_probs`
derives it). Lesson 09.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._core import as_real_tensor, check_generator, check_int, check_probs, check_real

__all__ = ["sample_categorical", "gumbel_max_probs", "masked_step_law", "masked_sampler_law", "entropy",
           "total_variation", "zipf"]

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
    # every positive category's uniform is 0: all scores are -inf, argmax picks index 0 (the zero
    # categories score -inf whatever their uniforms, so only the positive ones count)
    out[0] += float(n) ** -int((p > 0).sum())
    return out


def _one_positive(p, n):
    """The exact law when only one category v has positive probability: v wins unless its uniform
    is 0 (probability 1/n), when every score is -inf and argmax picks index 0."""
    v = int(torch.nonzero(p > 0)[0, 0])
    out = torch.zeros_like(p)
    out[v] = 1.0 - 1.0 / n
    out[0] += 1.0 / n
    return out


def _gumbel_split(p, bits, chunk=2**18, max_terms=2**22):
    """Law for many bits when one category dominates: exact where that category's uniform
    matters, ideal probabilities for the rest (absolute error below ``C 2^-2 bits``).

    The method of :func:`gumbel_max_probs` before its bounded scan: O(C^2) work per grid value and
    chunks of ``chunk x C`` float64 (100 GB for a 50,257-token Zipf law). Kept as an independent
    reference for the tests, where both run."""
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


# --- the exact law at any size: the race against one decomposed category -------------------------
#
# With J = n - k the distance of a grid uniform from the top (E = -log(1 - J/n), J = n is U = 0,
# E = inf), category w beats v at v's grid value j when J_w < x, x = n (1 - (1 - j/n)^(p_w/p_v))
# (J_w = x is a tie: w wins it when it comes first). Pick one category d (the largest) and write
# P(v) as (1/n) R_v + sum_j (1/n) G_v(j) D_v(j): R is the law of the race among the others (d's
# uniform is 0, probability 1/n), G_v(j) the probability that no other category beats v at j, and
# D_v(j) = (n - 1 - b_d(j)) / n the probability that d's uniform is not 0 and d does not beat v.
# The first J0 grid values of every winner are summed exactly; after them the summand is smooth in
# j, and the Euler-Maclaurin (midpoint) rule turns the sum into an integral over the race's time a
# that is the same for every winner: sum_{j > J0} g(j) = r_v int_{a_v}^inf e^{Lambda(a)} D(a) da
# + g'(J0 + 1/2) / 24. Lambda, the log-probability that no category of the race has beaten the
# time a, is exact for the T largest categories (one by one) and for the counts below M of the
# others (grouped: #{w : b_w >= m} is one binary search on the sorted probabilities, m < M); above
# M a count b = floor(x) is replaced by its midpoint x - 1/2 (summed with power sums of p).
_TOL = 1e-12          # relative tolerance under which a computed tie is an exact tie
_J0, _M, _K = 16, 16, 24
_A_MAX = 46.0         # e^-46 ~ 1e-20: the race's time beyond which nothing is left


def _phi(j, n):
    """``-log(1 - j/n)``: the value E = -log U of the grid uniform U = 1 - j/n (j may be fractional)."""
    return -torch.log1p(-torch.as_tensor(j, dtype=_F64) / n)


def _beat_counts(x, before):
    """Grid values of a category that beat v, from x = n (1 - (1 - j/n)^(p_w / p_v)): J < x beat v,
    J = x beats it when the category comes first. x within 1e-9 of an integer is an exact tie
    computed inexactly."""
    xr = torch.round(x)
    x = torch.where((x - xr).abs() <= 1e-9 * xr.clamp(min=1), xr, x)
    return torch.where(before, torch.floor(x), torch.ceil(x) - 1)


def _tie_ranks(p, idx):
    """For each category: how many others have exactly its probability and a lower index, and a higher one."""
    _, inv, counts = torch.unique(p, return_inverse=True, return_counts=True)
    by_idx = torch.argsort(idx)
    order = by_idx[torch.sort(inv[by_idx], stable=True).indices]          # by value, then by index
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty(p.numel(), dtype=torch.long)
    rank[order] = torch.arange(p.numel()) - start[inv[order]]
    return rank, counts[inv] - 1 - rank


class _Race:
    """The Gumbel-max race among categories with probabilities r (C,) (summing to 1, all > 0) and
    indices idx, with ``bits``-bit uniforms: everything that does not depend on the decomposed
    category d (its probability and whether it comes first), computed once (masked_step_law reuses
    it for every q)."""

    def __init__(self, r, idx, bits, depth=0):
        self.n, self.bits, self.depth = 2.0**bits, bits, depth
        self.r, self.idx, self.C = r, idx, r.numel()
        n, C = self.n, self.C
        by_idx = torch.argsort(idx)
        desc = by_idx[torch.sort(-r[by_idx], stable=True).indices].tolist()   # descending r, ties by index
        T = min(C, max(8, int((r * _A_MAX > 0.5).sum())))
        self.top_r, self.top_i = r[desc[:T]], idx[desc[:T]]
        tail = torch.tensor(desc[T:], dtype=torch.long)
        self.N = tail.numel()
        if self.N:
            bi = tail[torch.argsort(idx[tail])]
            asc = bi[torch.sort(r[bi], stable=True).indices]          # ascending r, ties by index
            self.pa, self.ia = r[asc].contiguous(), idx[asc].contiguous()
            newg = torch.ones(self.N, dtype=torch.bool)
            newg[1:] = self.pa[1:] != self.pa[:-1]
            self.gid = torch.cumsum(newg.long(), 0) - 1
            self.gmul = int(idx.max()) + 2
            self.key = (self.gid * self.gmul + self.ia).to(_F64)
            pw = self.pa.flip(0)[None, :] ** torch.arange(_K + 1, dtype=_F64)[:, None]
            self.pre = torch.cat([torch.zeros(_K + 1, 1, dtype=_F64), torch.cumsum(pw, 1)], 1)  # (K+1, N+1)
        m = torch.arange(1, _M + 1, dtype=_F64)
        self.delta = torch.log1p(-m / n) - torch.log1p(-(m - 1) / n)
        self.ks = torch.arange(_K + 1, dtype=_F64)
        self.fact = torch.tensor([float(math.factorial(k)) for k in range(_K + 1)], dtype=_F64)
        self.is_top = torch.zeros(C, dtype=torch.bool)
        self.is_top[torch.tensor(desc[:T], dtype=torch.long)] = True
        self._atoms()
        self._nodes()
        self._law = None

    # -- the log-probability that no category of the race beats a time ---------------------------
    def _count_ge(self, t, v=None):
        """#{tail w: r_w > t}, and with v also those with r_w = t and a lower index than v. The
        binary searches run in the transposed order (first axis fastest): with the winners sorted by
        probability along it, neighbouring queries are close, which is several times faster."""
        perm = list(range(t.dim()))[::-1]
        hi = torch.searchsorted(self.pa, (t * (1 + _TOL)).permute(perm).contiguous(), right=True).permute(perm)
        out = self.N - hi
        if v is None:
            return out
        lo_val = self.pa[(hi - 1).clamp(min=0)]
        band = (hi > 0) & (lo_val >= t * (1 - _TOL))
        if band.any():
            lo = torch.searchsorted(self.pa, t[band] * (1 - _TOL), right=False)
            k = torch.searchsorted(self.key, (self.gid[lo] * self.gmul).to(_F64) + v[band].to(_F64))
            out = out.clone()
            out[band] += k - lo
        return out

    def _log_surv(self, a=None, *, logu=None, rv=None, v=None):
        """Sum over the race of log P(w does not beat the time a). At a winner's grid value
        (logu = log(1 - j/n), rv = r_v, v = its index; any common shape) ties follow the indices and
        v's own term is included when v is in the tail (the top excludes it)."""
        n, at_atom = self.n, logu is not None
        if at_atom:
            a = -logu / rv
            x = -n * torch.expm1((self.top_r / rv[..., None]) * logu[..., None])
            b = _beat_counts(x, self.top_i < v[..., None])
            b = torch.where(self.top_i == v[..., None], torch.zeros_like(b), b)
        else:
            b = torch.ceil(-n * torch.expm1(-self.top_r * a[..., None])) - 1
        out = torch.log1p(-b.clamp(0, n - 1) / n).sum(-1)
        if not self.N:
            return out
        if at_atom:
            ratio = torch.log1p(-torch.arange(1, _M + 1, dtype=_F64) / n)
            C = self._count_ge(rv[..., None] * (ratio / logu[..., None]), v[..., None].expand(*v.shape, _M))
        else:
            C = self._count_ge(_phi(torch.arange(1, _M + 1, dtype=_F64), n) / a[..., None])
        C = C.to(_F64)
        CM = C[..., -1]
        out = out + ((C[..., :-1] - CM[..., None]) * self.delta[:-1]).sum(-1)
        # the C_M largest tail categories: log(e^{-r a} + 1/(2n)) ~ -r a + e^{r a} / (2n)
        k = CM.long()
        powers = a[None] ** self.ks.reshape(-1, *([1] * a.dim())) / self.fact.reshape(-1, *([1] * a.dim()))
        sum_exp = (self.pre[:, k] * powers).sum(0)
        return out - a * self.pre[1][k] + sum_exp / (2 * n)

    def _atoms(self):
        """log G_v(j) for the first J0 + 1 grid values of every category: L (C, J0 + 1)."""
        n, C = self.n, self.C
        j = torch.arange(1, _J0 + 2, dtype=_F64)
        logu = torch.log1p(-j / n)
        self.logu = logu
        L = torch.empty(C, _J0 + 1, dtype=_F64)
        step = max(1, 2**15 // (_J0 + 1))
        order = torch.argsort(self.r)                        # winners by probability: close queries
        for s in range(0, C, step):
            w = order[s:s + step]
            rv = self.r[w, None].expand(-1, _J0 + 1)
            vv = self.idx[w, None].expand(-1, _J0 + 1)
            lu = logu[None].expand_as(rv)
            Ls = self._log_surv(logu=lu, rv=rv, v=vv)
            jj = j[None].expand_as(rv)
            own = torch.where(jj - 1 < _M, torch.log1p(-(jj - 1) / n), torch.log1p(-(jj - 0.5) / n))
            L[w] = Ls - torch.where(self.is_top[w, None], torch.zeros_like(own), own)
        self.L = L
        self.before, self.after = _tie_ranks(self.r, self.idx)

    def _nodes(self):
        """Gauss-Legendre panels in the race's time a, geometric from below the smallest a_v (where
        the Euler-Maclaurin tail of v starts) to A_MAX, and e^{Lambda(a)} at their nodes."""
        self.a_start = _phi(_J0 + 0.5, self.n) / self.r            # a_v for every category
        lo = min(max(float(self.a_start.min()) / 4, 1e-300), _A_MAX / 10)
        edges = torch.cat([torch.zeros(1, dtype=_F64),
                           torch.logspace(math.log10(lo), math.log10(_A_MAX), int(math.log(_A_MAX / lo) / math.log(1.15)) + 2,
                                          dtype=_F64)])
        xg, wg = (torch.as_tensor(v, dtype=_F64) for v in np.polynomial.legendre.leggauss(8))
        h = edges[1:] - edges[:-1]
        self.edges, self.h, self.wg, self.xg = edges, h, wg, xg
        self.nodes = (edges[:-1, None] + 0.5 * h[:, None] * (xg + 1)).reshape(-1)
        self.race_at_nodes = torch.exp(torch.cat([self._log_surv(self.nodes[s:s + 2**12])
                                                  for s in range(0, self.nodes.numel(), 2**12)]))
        # int from the panel start to a_v of the panel's degree-7 interpolant, as weights on its nodes
        self.pos_start = (torch.searchsorted(edges, self.a_start, right=True) - 1).clamp(0, h.numel() - 1)
        s = ((2 * (self.a_start - edges[self.pos_start]) / h[self.pos_start]) - 1).clamp(-1, 1)
        V = np.polynomial.legendre.legvander(xg.numpy(), 7)                     # (8, 8): Legendre at the nodes
        to_leg = np.linalg.inv(V)                                                # node values -> coefficients
        ints = np.stack([np.polynomial.legendre.legval(s.numpy(), np.polynomial.legendre.legint(np.eye(8)[k], lbnd=-1))
                         for k in range(8)], 1)                                  # (C, 8): int_{-1}^{s} P_k
        self._head_w = torch.as_tensor(ints @ to_leg, dtype=_F64) * 0.5 * h[self.pos_start, None]

    def _cumulative(self, f, which=slice(None)):
        """int_0^{a_v} of the function with values f at the nodes, for the categories ``which``, and int_0^inf."""
        fp = f.reshape(-1, 8)
        cum = torch.cat([torch.zeros(1, dtype=_F64), torch.cumsum((fp * self.wg).sum(1) * 0.5 * self.h, 0)])
        k = self.pos_start[which]
        return cum[k] + (fp[k] * self._head_w[which]).sum(-1), cum[-1]

    # -- the race against the decomposed category ----------------------------------------------
    def against(self, pd, d_first):
        """sum_j (1/n) G_v(j) D_v(j) for every category v of the race, when the race is scaled by
        1 - pd and races a category d of probability pd (coming before v where d_first[v]): (C,)."""
        n = self.n
        if pd == 0:
            D = torch.full((self.C, _J0 + 1), (n - 1) / n, dtype=_F64)
        else:
            ratio = pd / ((1 - pd) * self.r)
            xd = -n * torch.expm1(ratio[:, None] * self.logu[None])
            D = (n - 1 - _beat_counts(xd, d_first[:, None]).clamp(0, n - 1)) / n
        g = torch.exp(self.L) * D / n
        P = g[:, :_J0].sum(1)
        more = D[:, _J0] > 0
        if more.any():
            if pd == 0:
                Dm = torch.full_like(self.nodes, 1 - 1 / (2 * n))
            else:
                Dm = (torch.exp(-pd / (1 - pd) * self.nodes) - 1 / (2 * n)).clamp(min=0)
            f = self.race_at_nodes * Dm
            head, total = self._cumulative(f)
            em = self.r * (total - head) * (1 - 1 / (2 * n))
            for k in torch.nonzero(more & self.is_top)[:, 0].tolist():   # their own exact survival, divided out
                rv = float(self.r[k])
                Sv = 1 - (torch.ceil(-n * torch.expm1(-rv * self.nodes)) - 1).clamp(0, n - 1) / n
                hk, tk = self._cumulative(f * torch.exp(-rv * self.nodes) / Sv, k)
                em[k] = rv * (tk - hk)
            tied_d = ((self.r * (1 - pd) - pd).abs() <= _TOL * pd).long()
            ties = self.after - self.before - tied_d * (2 * d_first.long() - 1)
            em = em * torch.exp(ties / (2 * n)) + (g[:, _J0] - g[:, _J0 - 1]) / 24
            P = torch.where(more, P + em, P)
        return P

    def law(self):
        """The law of the race itself (no decomposed category): (C,)."""
        if self._law is None:   # weighted 1/n^2 at depth 1: the ideal law there (error below n^-2)
            self._law = self.r if self.depth >= 1 else _scan(self.r, self.idx, self.bits, self.depth + 1)
        return self._law


def _scan(p, idx, bits, depth=0):
    """Gumbel-max law of p (C,) > 0 with indices idx, by the decomposition on the largest category."""
    C = p.numel()
    if C == 1:
        return torch.ones(1, dtype=_F64)
    d = int(torch.argmax(p))                       # lowest index among the largest (p sorted by index)
    keep = torch.arange(C) != d
    pd = float(p[d])
    rest = p[keep] / p[keep].sum()
    out = torch.empty(C, dtype=_F64)
    race = _Race(rest, idx[keep], bits, depth)
    main = race.against(pd, idx[keep] > idx[d])
    R = race.law()
    out[keep] = main + R / 2.0**bits
    out[d] = 1 - out[keep].sum()
    return out


_FULL_BUDGET = 2**26   # C^2 n below which the direct sum over the whole grid is used (exact)
_RACES: dict = {}      # token races reused by masked_step_law: {(bits, key): _Race}


def gumbel_max_probs(probs, bits: int) -> torch.Tensor:
    r"""The exact law of :func:`sample_categorical` with ``bits``-bit uniforms: (C,) float64.

    With ``E_c = -log U_c`` the Gumbel-max winner is ``argmin_c E_c / p_c``. For uniforms on the
    grid ``k / n`` (n = 2^bits), given ``U_v = k / n`` the category w does not beat v with
    probability ``ceil(n (k/n)^(p_w/p_v)) / n``, so

        P(v) = (1/n) sum_{k=1}^{n-1} prod_{w != v} ceil(n (k/n)^(p_w / p_v)) / n

    (plus ``n^-C`` for index 0, when every uniform is 0), in exact arithmetic; an exact tie
    ``(k'/n) = (k/n)^(p_w/p_v)`` goes to the lower index, as ``torch.argmax`` does. The lowest
    value of ``E`` is ``-log(1 - 1/n) ~ 2^-bits``: a category whose probability is comparable to
    ``2^-bits`` next to a dominant one is drawn less often than it should be, and among such
    categories the likely ones gain (a lower temperature; Zheng et al. 2024, Sec. 5).

    When ``C^2 n <= 2^26`` the sum runs over all n grid values (O(C^2 n), exact). Otherwise it runs
    in bounded memory (tensors of O(C) entries, chunked) and time O(C log C) with no C x C or
    C x n work (a Zipf law over 50,257 tokens at 24 bits: about 5 s and 200 MB on one core).
    Write ``J = n - k`` for the distance of a grid uniform from the top (``E = -log(1 - J/n)``;
    ``J = n`` is ``U = 0``): w beats v at v's value j when ``J_w < x = n (1 - (1 - j/n)^(p_w/p_v))``.
    Decompose on the largest category d: with probability 1/n its uniform is 0 and the others race
    alone (their law R, computed the same way, and the ideal law one level further down), so

        P(v) = R_v / n + sum_j (1/n) G_v(j) D_v(j),

    with G_v(j) the probability that no other category beats v at j and ``D_v(j) = (n - 1 -
    b_d(j)) / n`` that d's uniform is not 0 and d does not beat v. The first 16 terms of every
    category are summed exactly, ties by index; after them the summand is smooth in j and the
    Euler-Maclaurin midpoint rule ``sum_{j > J0} g = int_{J0 + 1/2} g dj + g'(J0 + 1/2) / 24``
    turns the rest into one integral over the race's time that all categories share (Gauss-Legendre
    panels), with d's count at its midpoint. In log G the beat counts b_w of the largest few
    categories are exact one by one, those of the others exact below 16 (``#{w: b_w >= m}`` is one
    binary search in the sorted probabilities) and at their midpoint ``x - 1/2`` above (a sum of
    powers of p). Against the direct sum (random laws of 3-8 categories at 14-18 bits) every
    probability is within ``2/n`` relatively (worst measured 1.2/n) or ``n^-2`` absolutely
    (``tests/test_categorical.py``). probs: (C,) summing to 1.
    """
    bits = _check_bits(bits)
    p = check_probs(probs).to(_F64).cpu()
    if p.dim() != 1:
        raise ValueError(f"probs must have shape (C,); got {tuple(p.shape)}")
    if p.numel() == 1:
        return torch.ones(1, dtype=_F64)
    n = 2**bits
    pos = p > 0
    Cp = int(pos.sum())
    if Cp == 1:  # closed form (the direct sum would run over all n grid values: 2^53 of them at 53 bits)
        return _one_positive(p, n)
    if Cp * Cp * n <= _FULL_BUDGET:
        return _gumbel_full(p, bits)
    out = torch.zeros_like(p)
    out[pos] = _scan(p[pos] / p[pos].sum(), torch.nonzero(pos)[:, 0], bits)
    return out


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




def _token_race(p, bits):
    """The race among the tokens of ``p`` (all > 0), cached: masked_step_law at many q reuses it."""
    key = (bits, p.numel(), hash(p.numpy().tobytes()))
    if key not in _RACES:
        if len(_RACES) >= 4:
            _RACES.pop(next(iter(_RACES)))
        _RACES[key] = _Race(p, torch.arange(p.numel()), bits)
    return _RACES[key]


def masked_step_law(probs, q: float, bits: int):
    r"""One step of a masked-diffusion sampler at one masked position, drawn by Gumbel-max.

    The position unmasks with probability q and then takes token v with probability ``probs[v]``:
    one categorical over ``[q p_1, ..., q p_V, 1 - q]`` (the last outcome: stay masked), drawn
    with ``bits``-bit uniforms (:func:`gumbel_max_probs`). Returns ``(law, p_unmask)``: the law of
    the token given that the position unmasked, (V,) float64, and the probability that it
    unmasked. With 53 bits they are ``probs`` and q up to a relative ``1 / (2^54 q p_v)`` (a
    token still has to win on a grid of spacing 2^-53); with 24 bits and small q the tail tokens
    are lost (Zheng et al. 2024, Sec. 5). probs: (V,) summing to 1; q in (0, 1].

    Computed like :func:`gumbel_max_probs` with the mask as the decomposed category; the race
    among the tokens does not depend on q and is kept for the next call with the same probs and
    bits, so a sweep over q costs little more than one law (about 2-5 s for V = 50,257 on one core,
    then well under a second per q).
    """
    p = check_probs(probs).to(_F64).cpu()
    if p.dim() != 1:
        raise ValueError(f"probs must have shape (V,); got {tuple(p.shape)}")
    q = check_real(q, "q", minimum=0.0, maximum=1.0)
    if q == 0:
        raise ValueError("q must be > 0 (the position must be able to unmask)")
    bits = _check_bits(bits)
    if q == 1:  # the mask's score is -inf: a token always wins (index 0 if every token's uniform is 0)
        return gumbel_max_probs(p, bits), 1.0
    pos = p > 0
    Vp = int(pos.sum())
    if (Vp + 1) ** 2 * 2**bits <= _FULL_BUDGET or Vp == 1:
        pi = torch.cat([q * p, torch.tensor([1 - q], dtype=_F64)])
        pe = gumbel_max_probs(pi, bits)
        joint = pe[:-1]
    else:
        race = _token_race(p[pos] / p[pos].sum(), bits)
        joint = torch.zeros_like(p)
        joint[pos] = race.against(1 - q, torch.zeros(Vp, dtype=torch.bool)) + race.law() / 2.0**bits
    unmask = joint.sum()
    # the bounded scan is accurate to 2/n relatively, so its sum can pass 1 by as much: clamp
    return joint / unmask, min(float(unmask), 1.0)


def masked_sampler_law(probs, steps: int, bits: int):
    r"""The law of the token that the step-wise masked sampler leaves at one position: (V,) float64.

    A context-free denoiser (every masked position has the token law ``probs``) and the sampler of
    :func:`diffedu.discrete.sample_stepwise` with the linear schedule on a uniform grid of
    ``steps`` steps: at step k (k = 0 .. N-1) a still-masked position unmasks with probability
    ``q_k = 1 / (N - k)`` (1 at the last step), through one categorical ``[q p, 1 - q]`` drawn by
    Gumbel-max with ``bits``-bit uniforms. With ``u_k`` the probability that it unmasks at step k
    and ``P_k`` the joint law of unmasking with each token (:func:`masked_step_law`),

        law = sum_k prod_{k' < k} (1 - u_k') P_k.

    With 53 bits this is ``probs`` (up to the ``1 / (2^54 q p_v)`` of :func:`masked_step_law`);
    with 24 bits (float32, MDLM's code) the many small-q steps lower the temperature, the more the
    more steps (Zheng et al. 2024, Sec. 5). The race among the tokens is computed once, then each
    step costs O(V) (about 0.1 s per step for V = 50,257 on one core). probs: (V,) summing to 1.
    """
    p = check_probs(probs).to(_F64).cpu()
    if p.dim() != 1:
        raise ValueError(f"probs must have shape (V,); got {tuple(p.shape)}")
    steps = check_int(steps, "steps", minimum=1)
    bits = _check_bits(bits)
    out = torch.zeros_like(p)
    alive = 1.0
    for k in range(steps):
        law, u = masked_step_law(p, 1.0 / (steps - k), bits)
        out += alive * u * law
        alive *= 1 - u
    return out / out.sum()


def zipf(vocab_size: int, s: float = 1.0) -> torch.Tensor:
    r"""A Zipf law over ``vocab_size`` tokens, ``p_v ~ 1 / (v + 1)^s``, float64 (V,).

    Token frequencies in natural language follow it roughly with s near 1: a few tokens carry
    most of the mass and a long tail carries the rest.
    """
    V = check_int(vocab_size, "vocab_size", minimum=2)
    s = check_real(s, "s", minimum=0.0)
    w = 1.0 / torch.arange(1, V + 1, dtype=_F64) ** s
    return w / w.sum()
