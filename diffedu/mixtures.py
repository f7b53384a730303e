r"""Mixtures with exact marginals: Gaussian mixtures, low-rank mixtures, and empirical data.

For ``p_0 = sum_k w_k N(mu_k, Sigma_k)`` every marginal is again a mixture,
``p_t = sum_k w_k N(alpha_t mu_k, alpha_t^2 Sigma_k + sigma_t^2 I)``, and with the posterior
responsibilities ``r_k(x, t) = softmax_k(log w_k + log N_k(x))``

    score(x, t)    = sum_k r_k score_k(x, t),
    denoiser(x, t) = sum_k r_k D_k(x, t).

:class:`Empirical` is the limit of zero-variance components on a training set: its exact
denoiser is the memorising optimal denoiser, a softmax over training points (lesson on
memorisation). :func:`fit_gaussian_mixture` fits a :class:`GaussianMixture` to data by
expectation-maximisation (a model of the data that generalises, whose score is exact).
"""

from __future__ import annotations

import contextlib
import math

import torch

from ._core import (Distribution, as_param, as_real_tensor, check_batch, check_choice, check_coordinates,
                    check_generator, check_int, check_n, check_real, check_weights, coefs, resolve_device)
from .flow_map import pf_ode_flow, pf_ode_path
from .gaussian import _check_measurement, _Components, _condition_linear, _eigh_psd

__all__ = ["GaussianMixture", "LowRankMixture", "Empirical", "fit_gaussian_mixture"]


class _ComponentMixture(Distribution):
    """Shared mixture logic over :class:`diffedu.gaussian._Components`."""

    def _setup(self, weights, comps: _Components):
        self._c = comps
        self.dim = comps.D
        self.weights = weights
        self._logw = torch.log(weights)
        self._logw_cache: dict = {}

    def _logw_for(self, x):
        key = (x.dtype, x.device)
        if key not in self._logw_cache:
            self._logw_cache[key] = self._logw.to(dtype=x.dtype, device=x.device)
        return self._logw_cache[key]

    @property
    def K(self) -> int:
        return self._c.K

    @property
    def means(self) -> torch.Tensor:
        """(K, D) float64."""
        return self._c.mean

    @property
    def covs(self) -> torch.Tensor:
        """(K, D, D) float64."""
        return self._c.cov()

    def sample(self, n, *, generator=None, dtype=None, device=None):
        """n draws: (n, D). Components are chosen by ``torch.multinomial`` with the generator."""
        return self.sample_with_labels(n, generator=generator, dtype=dtype, device=device)[0]

    def sample_with_labels(self, n, *, generator=None, dtype=None, device=None):
        """n draws (n, D) and the component index of each draw (n,) long."""
        device, dtype = resolve_device(generator, device, dtype)
        n = check_n(n)
        k = torch.multinomial(self.weights.to(device), max(n, 1), replacement=True, generator=generator)[:n]
        draws = self._c.sample(n, generator, dtype, device)  # (n, K, D)
        return draws[torch.arange(n, device=device), k], k

    def responsibilities(self, x, t, process):
        """Posterior probabilities ``P(component k | x_t = x)``: (B, K)."""
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x, positive=self._c.singular)
        return torch.softmax(self._logw_for(x) + self._c.log_normal(x, a, s), dim=1)

    def log_prob(self, x, t, process):
        """``log p_t(x) = logsumexp_k (log w_k + log N_k(x))``: (B,)."""
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x, positive=self._c.singular)
        return torch.logsumexp(self._logw_for(x) + self._c.log_normal(x, a, s), dim=1)

    def _combine(self, x, t, process, which):
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x, positive=self._c.singular)
        logn, sc, den = self._c.score_and_denoiser(x, a, s, want_score=which == "score",
                                                     want_denoiser=which == "denoiser")
        r = torch.softmax(self._logw_for(x) + logn, dim=1)
        return torch.einsum("bk,bkd->bd", r, sc if which == "score" else den)

    def score(self, x, t, process):
        """``sum_k r_k score_k``: (B, D)."""
        return self._combine(x, t, process, "score")

    def denoiser(self, x, t, process):
        """``sum_k r_k D_k`` (Tweedie posterior mean): (B, D)."""
        return self._combine(x, t, process, "denoiser")

    def condition(self, A, y, noise_std) -> "GaussianMixture":
        r"""The exact posterior of x_0 given one linear measurement ``y = A x_0 + noise_std n``, n ~ N(0, I).

        A: (m, D); y: (m,); noise_std > 0. Bayes' rule component by component: each
        ``N(mu_k, Sigma_k)`` is conditioned like a Gaussian (:meth:`diffedu.gaussian.Gaussian.condition`)
        and its weight becomes ``w_k N(y; A mu_k, A Sigma_k A^T + s^2 I) / p(y)``, so the posterior
        is again a :class:`GaussianMixture` (full covariances; a :class:`LowRankMixture`'s posterior
        leaves the low-rank family) with exact scores and denoisers at every t (lesson 16).
        A batch of y is refused: condition on each y separately.
        """
        A, y, s = _check_measurement(A, y, noise_std, self.dim)
        means, covs, log_ev = _condition_linear(self._c.mean, self._c.cov(), A, y, s)
        w = torch.softmax(self._logw + log_ev, 0)
        return GaussianMixture(w / w.sum(), means, covs)

    def flow(self, x, t_from, t_to, process, *, rtol: float = 1e-9, atol: float = 1e-9):
        r"""The probability-flow ODE map from ``t_from`` to ``t_to``, solved to tolerance: (B, D).

        A mixture's flow has no closed form (each component's :meth:`diffedu.Gaussian.flow` is
        exact alone, not in the mixture); this is :func:`diffedu.flow_map.pf_ode_flow` with the
        exact denoiser, an adaptive solve in ``log(sigma/alpha)`` to ``rtol``, ``atol`` (pass
        float64 x). ``t_to = 0`` is reached through ``sigma/alpha = 1e-5`` and the denoiser. With
        ``t_from = t_max`` and ``t_to = 0`` it is the ideal one-step generator (lesson 17).
        """
        x = check_batch(x, self.dim)
        return pf_ode_flow(self.bind(process).denoiser, process, x, t_from, t_to, rtol=rtol, atol=atol)

    def flow_path(self, x, ts, process, *, rtol: float = 1e-9, atol: float = 1e-9) -> torch.Tensor:
        r"""The PF-ODE path of each row of x through the monotone times ``ts``: (T, B, D), as
        :meth:`flow` solves it (:func:`diffedu.flow_map.pf_ode_path`; index 0 is x)."""
        x = check_batch(x, self.dim)
        return pf_ode_path(self.bind(process).denoiser, process, x, ts, rtol=rtol, atol=atol)

    @property
    def mean(self) -> torch.Tensor:
        """Mean of p_0, (D,) float64."""
        return self.weights @ self._c.mean

    @property
    def cov(self) -> torch.Tensor:
        """Covariance of p_0 (law of total covariance), (D, D) float64."""
        m = self.mean
        dm = self._c.mean - m
        return torch.einsum("k,kde->de", self.weights, self._c.cov()) + torch.einsum(
            "k,kd,ke->de", self.weights, dm, dm)


class GaussianMixture(_ComponentMixture):
    r"""``sum_k w_k N(mu_k, Sigma_k)``.

    weights (K,), means (K, D), covs (K, D, D) symmetric PSD or (K, D) diagonal variances.
    Each covariance is eigendecomposed once.
    """

    def __init__(self, weights, means, covs):
        means = as_param(means, "means", (None, None))
        K, D = means.shape
        w = check_weights(weights, K)
        covs = as_param(covs, "covs")
        if covs.shape == (K, D):
            if (covs < 0).any():
                raise ValueError("covs (diagonal variances) must be non-negative")
            U = torch.eye(D, dtype=torch.float64).expand(K, D, D).clone()
            ev = covs
        elif covs.shape == (K, D, D):
            U, ev = _eigh_psd(covs, "covs")
        else:
            raise ValueError(f"covs must have shape ({K}, {D}, {D}) or ({K}, {D}); got {tuple(covs.shape)}")
        self._setup(w, _Components(means, U, ev, torch.zeros(K, dtype=torch.float64)))

    def __repr__(self):
        return f"GaussianMixture(K={self.K}, dim={self.dim})"

    def marginal(self, dims) -> "GaussianMixture":
        r"""The law of the coordinates ``dims`` of x ~ p_0: the mixture of the components'
        marginals, ``sum_k w_k N(mu_k[dims], Sigma_k[dims, dims])`` (same weights).

        dims: a sequence of distinct coordinate indices. Its marginals p_t under any process
        are the marginals of p_t, since the noise is independent across coordinates.
        """
        idx = list(check_coordinates(dims, "dims", self.dim))
        C = self.covs[:, idx][:, :, idx]
        return GaussianMixture(self.weights, self.means[:, idx], C)


class LowRankMixture(_ComponentMixture):
    r"""Mixture of low-rank Gaussians (MoLRG; Wang et al. 2024, "Diffusion models learn
    low-dimensional distributions via subspace clustering", eq. 3).

    ``x_0 = means_k + U_k a + sqrt(noise) e_perp`` with component k drawn with ``weights[k]``,
    ``a ~ N(0, diag(scales_k^2))`` and ``U_k`` (D, r) orthonormal. With ``noise = 0`` (the
    paper's model) p_0 lives on K r-dimensional subspaces, and the posterior-mean denoiser is

        D(x, t) = sum_k r_k(x, t) [ mu_k + U_k diag(alpha s^2 / (alpha^2 s^2 + sigma^2)) U_k^T (x - alpha mu_k) ],

    defined for t > 0. bases (K, D, r) must have orthonormal columns (use
    :func:`diffedu.subspace` helpers or ``torch.linalg.qr`` to make them).
    """

    def __init__(self, bases, weights=None, *, scales=None, means=None, noise: float = 0.0):
        U = as_param(bases, "bases", (None, None, None))
        K, D, r = U.shape
        if r > D:
            raise ValueError(f"bases must be (K, D, r) with r <= D; got {tuple(U.shape)}")
        gram = U.transpose(1, 2) @ U
        err = float((gram - torch.eye(r, dtype=torch.float64)).abs().max())
        if err > 1e-6:
            raise ValueError(f"bases must have orthonormal columns (U_k^T U_k = I); off by {err:.2g}")
        w = check_weights(torch.full((K,), 1.0 / K, dtype=torch.float64) if weights is None else weights, K)
        sc = torch.ones(K, r, dtype=torch.float64) if scales is None else as_param(scales, "scales", (K, r))
        if (sc <= 0).any():
            raise ValueError("scales must be positive")
        mu = torch.zeros(K, D, dtype=torch.float64) if means is None else as_param(means, "means", (K, D))
        noise = check_real(noise, "noise", minimum=0.0)
        self.bases = U
        self.noise = float(noise)
        # noise only in the orthogonal complement (the e_perp above): eigenvalues scales^2 along U_k
        self._setup(w, _Components(mu, U, sc**2, torch.full((K,), float(noise), dtype=torch.float64)))

    def __repr__(self):
        return f"LowRankMixture(K={self.K}, dim={self.dim}, rank={self._c.r}, noise={self.noise})"


@contextlib.contextmanager
def _matmul_precision(level: str):
    old = torch.get_float32_matmul_precision()
    if level == old:
        yield
        return
    torch.set_float32_matmul_precision(level)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


class Empirical(Distribution):
    r"""The empirical distribution of a training set: ``p_0 = (1/M) sum_m delta(x - x_m)``.

    Its exact denoiser is the memorising optimal denoiser, a softmax over training points:

        D(x, t) = sum_m w_m(x) x_m,  w = softmax_m( -|x - alpha_t x_m|^2 / (2 sigma_t^2) ).

    Written as ``logit_m = x . (alpha/sigma^2) x_m - alpha^2 |x_m|^2 / (2 sigma^2)`` it is
    softmax attention with a key bias: one GEMM against the augmented keys ``[x_m, |x_m|^2]``,
    a softmax, one GEMM against the values. Rows of x are processed in chunks
    of at most ``chunk_elems`` logits, so M = 50,000 points of dimension 3,072 fit in memory.
    points: (M, D).

    ``matmul_precision="high"`` is an opt-in reduced-precision mode for float32 input: the two
    GEMMs may use TF32 tensor cores on CUDA (``torch.set_float32_matmul_precision``), several
    times faster on recent GPUs, at a relative error near 1e-3 (``benchmarks/empirical_denoiser.py``
    reports it). The default, ``"highest"``, is strict float32.
    """

    def __init__(self, points, *, chunk_elems: int = 2**26, matmul_precision: str = "highest"):
        if isinstance(points, torch.Tensor):
            if not points.is_floating_point():
                raise TypeError(f"points must have a floating dtype; got {points.dtype}")
            X = points.detach().clone()  # a copy: the cached keys must not go stale
        else:
            X = as_param(points, "points")
        if X.dim() != 2 or X.shape[0] < 1:
            raise ValueError(f"points must have shape (M, D) with M >= 1; got {tuple(X.shape)}")
        if not torch.isfinite(X).all():
            raise ValueError("points must be finite (no NaN or inf)")
        self.points = X
        self.M, self.dim = X.shape
        self.chunk_elems = check_int(chunk_elems, "chunk_elems", minimum=1)
        self.matmul_precision = check_choice(matmul_precision, "matmul_precision", ("highest", "high", "medium"))
        self._cache: dict = {}

    def __repr__(self):
        return f"Empirical(M={self.M}, dim={self.dim})"

    @property
    def mean(self) -> torch.Tensor:
        """Mean of the training points, (D,) in their dtype."""
        return self.points.mean(0)

    @property
    def cov(self) -> torch.Tensor:
        """Covariance of p_0 = (1/M) sum_m delta(x - x_m), (D, D): the biased (1/M) sample
        covariance, since p_0 is exactly the empirical law."""
        dx = self.points - self.mean
        return dx.T @ dx / self.M

    def _keys(self, x):
        """Augmented keys ``[x_m, |x_m|^2, 0...]`` (M, P) in x's dtype and device, cached.

        P = D + 1 rounded up to a multiple of 8 (aligned GEMMs); only one copy is kept."""
        key = (x.dtype, x.device)
        if key not in self._cache:
            P = -(-(self.dim + 1) // 8) * 8
            self._cache = {}  # free the old copy first
            keys = x.new_zeros(self.M, P)
            # in blocks of rows: a float64 copy of all the points would be 2-4x their size
            step = max(1, 2**22 // max(self.dim, 1))
            for i in range(0, self.M, step):
                c = self.points[i:i + step].to(device=x.device)
                keys[i:i + step, :self.dim] = c
                keys[i:i + step, self.dim] = (c.to(torch.float64) ** 2).sum(1)
            self._cache = {key: keys}
        return self._cache[key]

    def _rows(self):
        """Rows of x per chunk, so that a chunk holds at most ``chunk_elems`` logits."""
        return max(1, self.chunk_elems // self.M)

    def _queries(self, x, a, s, width):
        """Augmented queries ``[x alpha/sigma^2, -alpha^2/(2 sigma^2), 0...]``: (B, width)."""
        c = (a / s**2).expand(x.shape[0], 1)
        q = x.new_zeros(x.shape[0], width)
        q[:, :self.dim] = x * c
        q[:, self.dim:self.dim + 1] = -0.5 * a * c
        return q

    def sample(self, n, *, generator=None, dtype=None, device=None):
        """n training points drawn uniformly with replacement: (n, D)."""
        device, dtype = resolve_device(generator, device, dtype)
        idx = torch.randint(self.M, (check_n(n),), generator=generator, device=device)
        return self.points.to(device=device, dtype=dtype)[idx]

    def denoiser(self, x, t, process):
        """Memorising optimal denoiser ``E[x_0 | x_t = x]``: (B, D). Needs t > 0."""
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x, positive=True)
        keys = self._keys(x)
        q = self._queries(x, a, s, keys.shape[1])
        out = torch.empty_like(x)
        step = self._rows()
        with _matmul_precision(self.matmul_precision):
            for i in range(0, x.shape[0], step):
                # torch.softmax subtracts the row maximum (no overflow at small sigma) and does not
                # slow down on the denormal weights that appear at mid sigma
                w = torch.softmax(q[i:i + step] @ keys.T, dim=1)  # (b, M)
                out[i:i + step] = (w @ keys)[:, :self.dim]
        return out

    def log_prob(self, x, t, process):
        """``log p_t(x) = logsumexp_m log N(x; alpha x_m, sigma^2 I) - log M``: (B,)."""
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x, positive=True)
        keys = self._keys(x)
        q = self._queries(x, a, s, keys.shape[1])
        sq = (x**2).sum(1, keepdim=True) / (2 * s**2)
        out = x.new_empty(x.shape[0])
        step = self._rows()
        for i in range(0, x.shape[0], step):
            logits = q[i:i + step] @ keys.T - sq[i:i + step]
            out[i:i + step] = torch.logsumexp(logits, 1)
        norm = -0.5 * self.dim * torch.log(2 * math.pi * s**2).reshape(-1)
        return out - math.log(self.M) + norm


# --- fitting a Gaussian mixture by EM -----------------------------------------------------------
def _log_normals(X, means, covs):
    """``log N(x_n; mu_k, Sigma_k)`` for every row and component: (N, K), by Cholesky factors."""
    L = torch.linalg.cholesky(covs)                                   # (K, D, D)
    diff = (X[None] - means[:, None]).transpose(1, 2)                 # (K, D, N)
    z = torch.linalg.solve_triangular(L, diff, upper=False)           # L^{-1} (x - mu)
    logdet = 2 * torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(1)  # (K,)
    D = X.shape[1]
    return (-0.5 * (z**2).sum(1) - 0.5 * logdet[:, None] - 0.5 * D * math.log(2 * math.pi)).T


def _m_step(X, r, reg):
    """Weights, means and covariances from responsibilities r (N, K); ``reg`` on the diagonal."""
    N, D = X.shape
    nk = r.sum(0) + 10 * torch.finfo(X.dtype).eps                     # (K,); an empty component stays finite
    means = (r.T @ X) / nk[:, None]
    diff = X[None] - means[:, None]                                   # (K, N, D)
    covs = (diff * r.T[:, :, None]).transpose(1, 2) @ diff / nk[:, None, None]
    covs = covs + reg * torch.eye(D, dtype=X.dtype)
    return nk / nk.sum(), means, 0.5 * (covs + covs.transpose(1, 2))


def _kmeans_pp(X, K, generator):
    """k-means++ seeding (Arthur and Vassilvitskii 2007): K rows of X, each drawn with probability
    proportional to its squared distance to the nearest row already chosen."""
    idx = [int(torch.randint(X.shape[0], (1,), generator=generator))]
    d2 = ((X - X[idx[0]]) ** 2).sum(1)
    for _ in range(1, K):
        p = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / len(d2))
        idx.append(int(torch.multinomial(p, 1, generator=generator)))
        d2 = torch.minimum(d2, ((X - X[idx[-1]]) ** 2).sum(1))
    return X[idx]


def fit_gaussian_mixture(data, n_components: int, *, reg: float = 1e-6, max_iter: int = 200, tol: float = 1e-4,
                         n_init: int = 1, generator: torch.Generator | None = None) -> GaussianMixture:
    r"""A :class:`GaussianMixture` of ``n_components`` full-covariance Gaussians fitted to ``data``
    (N, D) by expectation-maximisation (Dempster, Laird and Rubin 1977; Bishop 2006, Sec. 9.2.2).

    E-step, the responsibilities: ``r_nk = w_k N(x_n; mu_k, Sigma_k) / sum_j w_j N(x_n; mu_j, Sigma_j)``.
    M-step, with ``N_k = sum_n r_nk``:

        w_k = N_k / N,   mu_k = sum_n r_nk x_n / N_k,
        Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + reg I .

    With ``reg = 0`` each iteration does not lower the mean log-likelihood
    ``(1/N) sum_n log sum_k w_k N(x_n; mu_k, Sigma_k)``; ``reg > 0`` keeps every covariance
    positive definite (data with constant coordinates, components with fewer than D points, as for
    the 8x8 digits, need it). Iterations stop when the mean log-likelihood rises by less than
    ``tol`` or after ``max_iter``. Each of ``n_init`` starts seeds the means by k-means++ from
    ``generator`` and assigns every point to its nearest seed for a first M-step; the start with the
    highest final log-likelihood is returned. Computed in float64; returns the mixture (float64
    parameters), whose ``log_prob(x, 0, process)`` is the fitted density.
    """
    if not isinstance(data, torch.Tensor):
        data = as_real_tensor(data, "data", "a (N, D) tensor or array of numbers")
    X = check_batch(data, name="data").detach().to("cpu", torch.float64)
    K = check_int(n_components, "n_components", minimum=1)
    if K > X.shape[0]:
        raise ValueError(f"n_components must be at most the number of data rows {X.shape[0]}; got {K}")
    reg = check_real(reg, "reg", minimum=0.0)
    max_iter, n_init = check_int(max_iter, "max_iter", minimum=1), check_int(n_init, "n_init", minimum=1)
    tol = check_real(tol, "tol", minimum=0.0)
    check_generator(generator, "cpu")
    best = None
    for _ in range(n_init):
        centres = _kmeans_pp(X, K, generator)
        nearest = torch.cdist(X, centres).argmin(1)
        params = _m_step(X, torch.nn.functional.one_hot(nearest, K).to(X.dtype), reg)
        previous = -math.inf
        for _ in range(max_iter):
            w, means, covs = params
            try:
                logp = torch.log(w) + _log_normals(X, means, covs)       # (N, K)
            except torch.linalg.LinAlgError as e:
                raise ValueError(f"a covariance became singular (reg={reg:g}); raise reg so every component "
                                 f"stays positive definite ({e})") from None
            ll = float(torch.logsumexp(logp, 1).mean())
            if ll - previous < tol:
                break
            previous = ll
            params = _m_step(X, torch.softmax(logp, 1), reg)
        if best is None or ll > best[0]:
            best = (ll, params)
    w, means, covs = best[1]
    return GaussianMixture(w, means, covs)
