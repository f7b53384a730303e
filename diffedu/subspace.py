r"""Subspace clustering and diffusion models on a mixture of low-rank Gaussians (MoLRG).

Wang, Zhang, Zhang, Chen, Ma and Qu (2024), "Diffusion Models Learn Low-Dimensional
Distributions via Subspace Clustering": data ``x_0 = U_k a`` with ``a ~ N(0, I_r)`` and ``U_k``
(D, r) orthonormal, component ``k`` uniform. The exact denoiser is
:class:`diffedu.mixtures.LowRankMixture`'s; parameterising a denoiser in that form and training
it by denoising score matching is subspace clustering (the paper's Theorem 3). Lesson 08.

Contents: planted bases and exact per-subspace samples; principal angles and the subspace error
``||P - P*||_F / sqrt(2d)``; the K-subspaces estimator :class:`SubspaceClustering`, its two
steps (:func:`assign_subspaces`, :func:`refit_subspaces`, one iteration :func:`k_subspaces_step`)
and its objective at a given grouping (:func:`subspace_objective`); the low-rank denoiser
:class:`LowRankDenoiser` and its DSM training; :func:`phase_transition`, recovery success
against samples per subspace over seeded trials; and what a generative model's samples say about
the subspaces (:func:`distance_to_subspaces`, :func:`sample_subspace_error`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ._core import (as_param, as_real_tensor, check_batch, check_dtype, check_generator, check_int, check_positive,
                    check_process, check_real, coefs)
from .mixtures import LowRankMixture

__all__ = [
    "line_bases",
    "random_bases", "sample_subspaces", "principal_angles", "subspace_error", "match_subspaces",
    "fit_subspace", "SubspaceClustering", "LowRankDenoiser", "train_low_rank_denoiser",
    "phase_transition", "PhaseTransition", "SUCCESS_THRESHOLD", "assign_subspaces", "refit_subspaces",
    "k_subspaces_step", "subspace_objective", "distance_to_subspaces", "sample_subspace_error",
]

#: A subspace counts as recovered when its error ``||P - P*||_F / sqrt(2d)`` is below this.
SUCCESS_THRESHOLD = 0.2


def _generator(seed=None, generator=None):
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
        return generator
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(_seed(seed))
    return g


def _seed(seed):
    return None if seed is None else check_int(seed, "seed", minimum=0)


def _as_data(X, name="X") -> torch.Tensor:
    """(n, D) float64 CPU tensor with n >= 1 from a tensor or array."""
    T = as_real_tensor(X, name, "a tensor or array of numbers")
    if T.dim() != 2:
        raise ValueError(f"{name} must have shape (n, D); got {tuple(T.shape)}")
    if T.shape[0] == 0 or T.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(T.shape)}; need at least one row of D >= 1 numbers")
    if not torch.isfinite(T).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return T.to("cpu", torch.float64)


def _as_bases(U, name) -> torch.Tensor:
    """(K, D, r) or (D, r) -> (K, D, r) float64 with orthonormalised columns."""
    T = as_param(U, name)
    if T.dim() == 2:
        T = T[None]
    if T.dim() != 3 or T.shape[2] > T.shape[1] or T.shape[2] < 1:
        raise ValueError(f"{name} must have shape (D, r) or (K, D, r) with 1 <= r <= D; got {tuple(T.shape)}")
    return torch.linalg.qr(T.to("cpu", torch.float64))[0]


# --- planted subspaces ------------------------------------------------------------------------
def random_bases(n_subspaces: int, dim: int, rank: int, *, orthogonal: bool = False,
                 generator=None) -> torch.Tensor:
    r"""Orthonormal bases of ``n_subspaces`` random ``rank``-dimensional subspaces of R^dim.

    Returns (K, D, r) float64, Haar-distributed (QR of a Gaussian matrix). With
    ``orthogonal=True`` the subspaces are mutually orthogonal (needs ``K r <= D``).
    """
    K, D, r = (check_int(n_subspaces, "n_subspaces", minimum=1), check_int(dim, "dim", minimum=1), check_int(rank, "rank", minimum=1))
    if r > D:
        raise ValueError(f"rank must be <= dim; got rank={r} > dim={D}")
    if orthogonal and K * r > D:
        raise ValueError(f"orthogonal subspaces need n_subspaces * rank <= dim; got {K} * {r} > {D}")
    g = _generator(generator=generator) if generator is not None else None
    if orthogonal:
        Q = torch.linalg.qr(torch.randn(D, K * r, generator=g, dtype=torch.float64))[0]
        return Q.T.reshape(K, r, D).transpose(1, 2).contiguous()
    return torch.linalg.qr(torch.randn(K, D, r, generator=g, dtype=torch.float64))[0]


def line_bases(angles_deg) -> torch.Tensor:
    """Orthonormal bases (K, 2, 1) of K lines through the origin of the plane at the given angles
    (degrees from the first axis): ``(cos theta_k, sin theta_k)``."""
    th = as_real_tensor(angles_deg, "angles_deg", "a sequence of angles in degrees")
    if th.dim() > 1:
        raise ValueError(f"angles_deg must be a number or a 1-D sequence of angles; got shape {tuple(th.shape)}")
    th = torch.deg2rad(th.reshape(-1))
    if th.numel() == 0 or not torch.isfinite(th).all():
        raise ValueError(f"angles_deg must be a non-empty sequence of finite angles; got {angles_deg!r}")
    return torch.stack([torch.cos(th), torch.sin(th)], 1)[:, :, None]


def sample_subspaces(mixture: LowRankMixture, n_per_subspace: int, *, generator=None,
                     dtype=torch.float64):
    r"""Exactly ``n_per_subspace`` draws from each component of a :class:`LowRankMixture`.

    Returns ``X`` (K n, D), ordered component by component, and the labels (K n,) long.
    (``mixture.sample`` draws the components at random; a phase transition needs exact counts.)
    """
    if not isinstance(mixture, LowRankMixture):
        raise TypeError(f"mixture must be a diffedu.LowRankMixture; got {type(mixture).__name__}")
    n = check_int(n_per_subspace, "n_per_subspace", minimum=0)
    check_generator(generator, "cpu")
    draws = mixture._c.sample(n, generator, check_dtype(dtype), torch.device("cpu"))  # (n, K, D)
    K = mixture.K
    X = draws.transpose(0, 1).reshape(K * n, mixture.dim)
    return X, torch.arange(K).repeat_interleave(n)


# --- comparing subspaces ----------------------------------------------------------------------
def principal_angles(U, V) -> torch.Tensor:
    r"""Principal angles (radians, ascending) between span(U) and span(V).

    U: (D, r1), V: (D, r2) (columns need not be orthonormal; they are orthonormalised).
    cos(theta_i) are the singular values of ``Q_U^T Q_V``. Returns (min(r1, r2),) float64.
    """
    U, V = as_param(U, "U"), as_param(V, "V")
    for name, W in (("U", U), ("V", V)):
        if W.dim() != 2:
            raise ValueError(f"{name} must be a (D, r) matrix; got shape {tuple(W.shape)} (batched bases: subspace_error)")
    QU, QV = _as_bases(U, "U")[0], _as_bases(V, "V")[0]
    if QU.shape[0] != QV.shape[0]:
        raise ValueError(f"U and V must have the same number of rows (ambient dimension); got "
                         f"{QU.shape[0]} and {QV.shape[0]}")
    cos = torch.linalg.svdvals(QU.T @ QV).clamp(-1.0, 1.0)
    return torch.arccos(cos)  # singular values descend, so the angles ascend


def subspace_error(U, V) -> torch.Tensor:
    r"""``||P_U - P_V||_F / sqrt(r_U + r_V)``: 0 for equal subspaces, 1 for orthogonal ones.

    With equal ranks d this is the paper's ``||P - P*||_F / sqrt(2d)`` and equals
    ``sqrt(mean_i sin^2 theta_i)`` over the principal angles. U, V: (D, r) or batched (K, D, r).
    Returns a 0-d tensor, or (K,) when batched.
    """
    batched = (U.dim() if isinstance(U, torch.Tensor) else np.ndim(U)) == 3
    QU, QV = _as_bases(U, "U"), _as_bases(V, "V")
    if QU.shape[1] != QV.shape[1]:
        raise ValueError(f"U and V must have the same ambient dimension; got {QU.shape[1]} and {QV.shape[1]}")
    r1, r2 = QU.shape[2], QV.shape[2]
    # ||P_U - P_V||_F^2 = ||(I - P_V) U||_F^2 + ||(I - P_U) V||_F^2 (both = r - ||U^T V||_F^2);
    # the residual form keeps small errors accurate (no cancellation in r1 + r2 - 2 ||U^T V||^2)
    G = QU.transpose(1, 2) @ QV
    sq = (QU - QV @ G.transpose(1, 2)).pow(2).sum((1, 2)) + (QV - QU @ G).pow(2).sum((1, 2))
    err = (sq / (r1 + r2)).sqrt()
    return err if batched else err[0]


def match_subspaces(estimate, truth):
    r"""Pair estimated subspaces with true ones to minimise the total error (Hungarian method).

    estimate, truth: (K, D, r). Returns ``(perm, errors)``: ``estimate[perm[k]]`` is matched to
    ``truth[k]`` and ``errors[k]`` (K,) is their :func:`subspace_error`.
    """
    E, T = _as_bases(estimate, "estimate"), _as_bases(truth, "truth")
    if E.shape[0] != T.shape[0] or E.shape[1] != T.shape[1]:
        raise ValueError(f"estimate and truth must both be (K, D, r) with the same K and D; got "
                         f"{tuple(E.shape)} and {tuple(T.shape)}")
    cost = torch.stack([subspace_error(E, T[k].expand(E.shape[0], -1, -1)) for k in range(T.shape[0])])
    rows, cols = linear_sum_assignment(cost.numpy())  # rows: truth index, cols: estimate index
    perm = torch.as_tensor(cols[np.argsort(rows)])
    return perm, cost[torch.arange(T.shape[0]), perm]


def fit_subspace(X, rank: int) -> torch.Tensor:
    r"""Best ``rank``-dimensional subspace through the origin for the rows of X (uncentred PCA).

    X: (n, D). Returns (D, r) orthonormal: the top eigenvectors of ``X^T X``. With n < r the
    data span only n dimensions and the remaining columns are arbitrary (not recoverable).
    """
    X = _as_data(X)
    r = check_int(rank, "rank", minimum=1)
    if r > X.shape[1]:
        raise ValueError(f"rank must be <= the data dimension {X.shape[1]}; got {r}")
    _, V = torch.linalg.eigh(X.T @ X)
    return V[:, -r:].flip(1).contiguous()


def _fit_bases(X, labels, K, r, g):
    """Per-cluster uncentred PCA; an empty cluster gets a random subspace."""
    D = X.shape[1]
    out = torch.empty(K, D, r, dtype=torch.float64)
    for k in range(K):
        Xk = X[labels == k]
        if Xk.shape[0] == 0:
            out[k] = torch.linalg.qr(torch.randn(D, r, generator=g, dtype=torch.float64))[0]
        else:
            _, V = torch.linalg.eigh(Xk.T @ Xk)
            out[k] = V[:, -r:]
    return out


def _residuals(X, bases):
    """Squared distance of each row to each subspace, ``|x|^2 - |U_k^T x|^2``: (n, K)."""
    proj = torch.einsum("nd,kdr->nkr", X, bases).pow(2).sum(-1)
    return ((X * X).sum(1, keepdim=True) - proj).clamp_min(0)


def _labels(labels, n, K):
    """(n,) long labels in [0, K) from a tensor or array of integers."""
    if isinstance(labels, torch.Tensor):
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise TypeError(f"labels must hold integers; got a {labels.dtype} tensor")
        y = labels.detach().to("cpu", torch.long)
    else:
        a = np.asarray(labels)
        if a.dtype.kind not in "iu":
            raise TypeError(f"labels must hold integers; got {type(labels).__name__} of {a.dtype}")
        y = torch.as_tensor(a).long()
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), one per row of X; got {tuple(y.shape)}")
    if n and bool(((y < 0) | (y >= K)).any()):
        raise ValueError(f"labels must lie in [0, {K - 1}] (n_clusters = {K}); got values from {int(y.min())} "
                         f"to {int(y.max())}")
    return y


def _bases_for(X, bases, name="bases"):
    B = _as_bases(bases, name)
    if B.shape[1] != X.shape[1]:
        raise ValueError(f"{name} must have D = {X.shape[1]} rows (the columns of X); got shape {tuple(B.shape)}")
    return B


def assign_subspaces(X, bases) -> torch.Tensor:
    r"""K-subspaces' assignment step: the index of the subspace nearest to each row of X.

    X: (n, D); bases: (K, D, r) orthonormal (orthonormalised here). Returns (n,) long,
    ``argmin_k |x - U_k U_k^T x|^2 = argmin_k (|x|^2 - |U_k^T x|^2)`` (ties: the lowest k).
    """
    X = _as_data(X)
    return _residuals(X, _bases_for(X, bases)).argmin(1)


def refit_subspaces(X, labels, n_clusters: int, rank: int) -> torch.Tensor:
    r"""K-subspaces' refit step: for each cluster k, the best ``rank``-dimensional subspace through
    the origin for its rows (uncentred PCA: the top eigenvectors of ``X_k^T X_k``).

    X: (n, D); labels: (n,) integers in [0, n_clusters). Returns (K, D, r) float64 orthonormal.
    Every cluster needs at least one row (an empty cluster has no subspace: ``ValueError``);
    with fewer than ``rank`` rows the remaining directions are arbitrary, as in :func:`fit_subspace`.
    """
    X = _as_data(X)
    K, r = check_int(n_clusters, "n_clusters", minimum=1), check_int(rank, "rank", minimum=1)
    if r > X.shape[1]:
        raise ValueError(f"rank must be <= the data dimension D = {X.shape[1]}; got {r}")
    y = _labels(labels, X.shape[0], K)
    empty = [k for k in range(K) if not bool((y == k).any())]
    if empty:
        raise ValueError(f"labels leave clusters {empty} empty; each of the {K} clusters needs a row to fit")
    return _fit_bases(X, y, K, r, None)


def k_subspaces_step(X, bases):
    r"""One iteration of K-subspaces (Bradley and Mangasarian 2000): assign every row of X (n, D)
    to its nearest subspace (:func:`assign_subspaces`), then refit each subspace to its rows
    (:func:`refit_subspaces`). bases: (K, D, r). Returns ``(labels (n,), new bases (K, D, r))``;
    the objective ``sum_i min_k |x_i - P_k x_i|^2`` does not increase. An empty cluster keeps its
    old subspace.
    """
    X = _as_data(X)
    B = _bases_for(X, bases)
    K, r = B.shape[0], B.shape[2]
    y = _residuals(X, B).argmin(1)
    new = B.clone()
    for k in range(K):
        Xk = X[y == k]
        if Xk.shape[0]:
            new[k] = torch.linalg.eigh(Xk.T @ Xk)[1][:, -r:]
    return y, new


def subspace_objective(X, labels, n_clusters: int, rank: int) -> float:
    r"""The K-subspaces objective at a given grouping: ``sum_k min_{U_k} sum_{i in k} |x_i - U_k U_k^T x_i|^2``,
    each group's best ``rank``-dimensional subspace fitted by PCA.

    It equals the sum, over groups, of the ``D - rank`` smallest eigenvalues of ``X_k^T X_k``
    (Eckart-Young). Any group of at most ``rank`` points has residual 0: with n = d points per
    subspace *every* grouping into groups of d scores 0, so the objective cannot tell the true
    labels (lesson 08). An empty group contributes 0. X: (n, D); labels: (n,) in [0, n_clusters).
    """
    X = _as_data(X)
    K, r = check_int(n_clusters, "n_clusters", minimum=1), check_int(rank, "rank", minimum=1)
    if r > X.shape[1]:
        raise ValueError(f"rank must be <= the data dimension D = {X.shape[1]}; got {r}")
    y = _labels(labels, X.shape[0], K)
    total = 0.0
    for k in range(K):
        Xk = X[y == k]
        if Xk.shape[0] > r:
            ev = torch.linalg.eigvalsh(Xk.T @ Xk)      # ascending
            total += float(ev[: X.shape[1] - r].clamp_min(0).sum())
    return total


def distance_to_subspaces(X, bases) -> torch.Tensor:
    r"""Relative distance of each row of X to the nearest of the subspaces:
    ``sqrt(min_k |x - U_k U_k^T x|^2 / |x|^2)``, the sine of the angle between x and that subspace.

    X: (n, D) with no zero row; bases: (K, D, r). Returns (n,) float64 in [0, 1]: 0 for a point on
    one of the subspaces. The subspace error of a generative model's samples (lesson 08).
    """
    X = _as_data(X)
    sq = (X * X).sum(1)
    if bool((sq == 0).any()):
        raise ValueError("X must have no zero row (the relative distance of 0 is undefined)")
    return (_residuals(X, _bases_for(X, bases)).min(1).values / sq).clamp(0, 1).sqrt()


def sample_subspace_error(samples, bases) -> torch.Tensor:
    r"""How well a model's samples span the true subspaces: (K,) float64.

    Each sample is assigned to its nearest true subspace (:func:`assign_subspaces`), the rank-r
    subspace of each group is fitted by uncentred PCA (:func:`fit_subspace`) and compared with the
    true one by :func:`subspace_error`: 0 when the samples fill every subspace in all its r
    directions. Samples that copy n < r training points per subspace span only n of them, an
    error of at least ``sqrt((r - n) / (2r))``; a subspace that gets no sample has error 1.
    samples: (n, D); bases: (K, D, r).
    """
    X = _as_data(samples, "samples")
    B = _bases_for(X, bases)
    K, r = B.shape[0], B.shape[2]
    y = _residuals(X, B).argmin(1)
    out = torch.ones(K, dtype=torch.float64)
    for k in range(K):
        if bool((y == k).any()):
            out[k] = subspace_error(fit_subspace(X[y == k], r), B[k])
    return out


class SubspaceClustering:
    r"""K-subspaces clustering (Bradley and Mangasarian 2000; Tseng 2000), scikit-learn style.

    Alternates (1) assign each point to the subspace nearest to it, ``argmin_k |x - U_k U_k^T x|``,
    and (2) refit each ``U_k`` as the top-``rank`` eigenvectors of ``X_k^T X_k``; every step lowers
    ``sum_i min_k |x_i - P_k x_i|^2``. Subspaces pass through the origin (MoLRG). Each of
    ``n_init`` restarts begins from ``rank`` random data points per cluster; the best is kept.

    Parameters
    ----------
    n_clusters : int >= 1.  rank : int, 1 <= rank <= D.  n_init : int >= 1 restarts.
    max_iter : int >= 1 per restart.  seed : int or None; equal seeds give equal fits.

    Attributes (after :meth:`fit`)
    ----------
    ``bases_`` (K, D, r) float64 orthonormal, ``labels_`` (n,) long, ``inertia_`` float (the
    objective), ``n_iter_`` int (iterations of the best restart).
    """

    def __init__(self, n_clusters: int = 2, rank: int = 1, *, n_init: int = 10, max_iter: int = 100,
                 seed: int | None = None):
        self.n_clusters, self.rank, self.n_init, self.max_iter, self.seed = n_clusters, rank, n_init, max_iter, seed
        self._check_settings()  # checked here and again in fit (the attributes may be set in between)

    def __repr__(self):
        return (f"SubspaceClustering(n_clusters={self.n_clusters}, rank={self.rank}, n_init={self.n_init}, "
                f"max_iter={self.max_iter}, seed={self.seed})")

    def _check_settings(self):
        K = check_int(self.n_clusters, "n_clusters", minimum=1)
        r = check_int(self.rank, "rank", minimum=1)
        check_int(self.n_init, "n_init", minimum=1)
        check_int(self.max_iter, "max_iter", minimum=1)
        _seed(self.seed)
        return K, r

    def _check(self, X):
        K, r = self._check_settings()
        X = _as_data(X)
        if r > X.shape[1]:
            raise ValueError(f"rank must be <= the data dimension D = {X.shape[1]}; got rank={r}")
        return X, K, r

    def fit(self, X, y=None) -> "SubspaceClustering":
        """Cluster the rows of X (n, D) (tensor or array). ``y`` is ignored. Returns self."""
        X, K, r = self._check(X)
        g = _generator(self.seed)
        n = X.shape[0]
        best = None
        for _ in range(self.n_init):
            idx = torch.randint(n, (K, r), generator=g)
            bases = torch.linalg.qr(X[idx].transpose(1, 2) + 1e-9 * torch.randn(K, X.shape[1], r, generator=g,
                                                                              dtype=torch.float64))[0]
            labels = None
            for it in range(1, self.max_iter + 1):
                new = _residuals(X, bases).argmin(1)
                if labels is not None and torch.equal(new, labels):
                    break
                labels = new
                bases = _fit_bases(X, labels, K, r, g)
            inertia = float(_residuals(X, bases).min(1).values.sum())
            if best is None or inertia < best[0] - 1e-12 * max(1.0, abs(best[0])):
                best = (inertia, bases, labels, it)
        self.inertia_, self.bases_, self.labels_, self.n_iter_ = best
        self.labels_ = _residuals(X, self.bases_).argmin(1)
        return self

    def predict(self, X) -> torch.Tensor:
        """Index of the nearest fitted subspace for each row of X (n, D): (n,) long."""
        return self.residuals(X).argmin(1)

    def residuals(self, X) -> torch.Tensor:
        """Squared distances ``|x - U_k U_k^T x|^2`` to every fitted subspace: (n, K) float64."""
        if not hasattr(self, "bases_"):
            raise RuntimeError("SubspaceClustering is not fitted yet; call fit(X) first")
        X = _as_data(X)
        if X.shape[1] != self.bases_.shape[1]:
            raise ValueError(f"X must have {self.bases_.shape[1]} columns like the data it was fitted on; "
                             f"got {X.shape[1]}")
        return _residuals(X, self.bases_)


# --- the low-rank denoiser trained by DSM -----------------------------------------------------
class LowRankDenoiser(torch.nn.Module):
    r"""The paper's denoiser parameterisation (its eq. 9, in this project's notation).

    With orthonormal ``U_k = qr(W_k)`` (K, D, r) learnable and unit-variance latents,

        D_theta(x, t) = sum_k w_k(x, t) (alpha_t / (alpha_t^2 + sigma_t^2)) U_k U_k^T x,
        w(x, t) = softmax_k( alpha_t^2 |U_k^T x|^2 / (2 sigma_t^2 (alpha_t^2 + sigma_t^2)) ),

    which is exactly :class:`LowRankMixture`'s posterior mean when the ``U_k`` are the true
    bases (uniform weights, zero means, no noise). ``process`` is bound here, so the module is
    a denoiser ``D(x, t)`` for the samplers. x: (B, D); t: float, 0-d or (B,) tensor, t > 0.
    ``init`` (K, D, r) sets W (random normal from ``generator`` otherwise); ``dtype`` of W
    defaults to torch's default dtype.
    """

    def __init__(self, dim: int, n_components: int, rank: int, process, *, init=None, generator=None,
                 dtype: torch.dtype | None = None):
        super().__init__()
        D, K, r = check_int(dim, "dim", minimum=1), check_int(n_components, "n_components", minimum=1), check_int(rank, "rank", minimum=1)
        if r > D:
            raise ValueError(f"rank must be <= dim; got rank={r} > dim={D}")
        self.process = check_process(process)
        check_generator(generator, "cpu")
        dtype = torch.get_default_dtype() if dtype is None else check_dtype(dtype)
        if init is None:
            W = torch.randn(K, D, r, generator=generator, dtype=torch.float64)
        else:
            W = as_param(init, "init", (K, D, r))
        self.weight = torch.nn.Parameter(W.to(dtype))

    def bases(self) -> torch.Tensor:
        """Current orthonormal bases (K, D, r), differentiable."""
        return torch.linalg.qr(self.weight)[0]

    def forward(self, x, t):
        x = check_batch(x, self.weight.shape[1])
        U = self.bases().to(x.dtype)
        a, s = coefs(self.process, t, x, positive="the low-rank denoiser's weights divide by sigma_t, 0 at t = 0")
        z = torch.einsum("bd,kdr->bkr", x, U)                       # U_k^T x
        c = a**2 / (2 * s**2 * (a**2 + s**2))
        w = torch.softmax(c * z.pow(2).sum(-1), dim=1)              # (B, K)
        return (a / (a**2 + s**2)) * torch.einsum("bk,bkr,kdr->bd", w, z, U)


def train_low_rank_denoiser(X, n_components: int, rank: int, process, *, steps: int = 500,
                            batch_size: int = 128, lr: float = 3e-2, t_range=(0.02, 0.3),
                            n_init: int = 1, seed: int = 0) -> LowRankDenoiser:
    r"""Fit :class:`LowRankDenoiser` to data X (n, D) by denoising score matching.

    Minimises ``E |D_theta(alpha_t x_0 + sigma_t eps, t) - x_0|^2`` with x_0 from X, eps ~ N(0, I)
    and t uniform in ``t_range`` (fractions of ``process.t_max``), by Adam. At small noise this
    loss is a soft K-subspaces objective (the paper's Theorem 3): training is subspace clustering,
    with the same local minima (e.g. each learned subspace taking half of two true ones). So,
    like :class:`SubspaceClustering`, each of ``n_init`` runs starts from the span of ``rank``
    random training points per component, and the run with the lowest DSM loss on one fixed
    batch of 1,024 draws is returned.
    """
    X = _as_data(X).to(torch.get_default_dtype())
    check_process(process)
    if isinstance(t_range, (str, bytes)) or not hasattr(t_range, "__len__") or len(t_range) != 2:
        raise TypeError(f"t_range must be a pair (lo, hi) of fractions of t_max; got {t_range!r}")
    lo, hi = (check_real(v, "t_range (each end)") * process.t_max for v in t_range)
    if not 0 < lo < hi <= process.t_max:
        raise ValueError(f"t_range must satisfy 0 < t_range[0] < t_range[1] <= 1; got {t_range!r}")
    lr = check_positive(lr, "lr")
    K, r = check_int(n_components, "n_components", minimum=1), check_int(rank, "rank", minimum=1)
    if r > X.shape[1]:
        raise ValueError(f"rank must be <= the data dimension D = {X.shape[1]}; got rank={r}")
    steps, batch_size = check_int(steps, "steps", minimum=1), check_int(batch_size, "batch_size", minimum=1)
    g = _generator(seed)

    def draw(n):
        x0 = X[torch.randint(X.shape[0], (n,), generator=g)]
        t = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
        return x0, t, process.noise(x0, t, generator=g)[0]

    x0_ev, t_ev, xt_ev = draw(1024)
    best = None
    for _ in range(check_int(n_init, "n_init", minimum=1)):
        init = X[torch.randint(X.shape[0], (K, r), generator=g)].transpose(1, 2).to(torch.float64)
        init = init + 1e-3 * init.abs().max() * torch.randn(init.shape, generator=g, dtype=torch.float64)
        model = LowRankDenoiser(X.shape[1], K, r, process, init=init)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(steps):
            x0, t, xt = draw(batch_size)
            loss = (model(xt, t) - x0).pow(2).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            final = float((model(xt_ev, t_ev) - x0_ev).pow(2).sum(1).mean())
        if best is None or final < best[0]:
            best = (final, model)
    return best[1]


# --- the phase transition ---------------------------------------------------------------------
@dataclass(frozen=True)
class PhaseTransition:
    """n_per_subspace (len N,), errors (N, trials) worst matched subspace error per trial,
    success (N,) the fraction of trials with every subspace's error under ``threshold``;
    objective (N, trials): the K-subspaces objective of the estimate's grouping (the found one
    without labels, the true one with labels) and true_objective (N, trials): the objective of the
    true grouping (:func:`subspace_objective`). A failure whose objective exceeds the true one is
    an algorithmic failure: a better grouping exists and was not found."""

    n_per_subspace: list
    errors: torch.Tensor
    success: torch.Tensor
    threshold: float
    objective: torch.Tensor | None = None
    true_objective: torch.Tensor | None = None


def phase_transition(n_per_subspace, *, dim: int, n_subspaces: int, rank: int, noise: float = 0.0,
                     labels: bool = True, n_trials: int = 10, n_init: int = 10, seed: int = 0,
                     threshold: float = SUCCESS_THRESHOLD) -> PhaseTransition:
    r"""Recovery success against samples per subspace, over seeded trials.

    Trial j (seed ``seed + j``) plants ``n_subspaces`` random ``rank``-dimensional subspaces of
    R^dim, draws exactly n points from each (``x = U_k a + sqrt(noise) e_perp``, noise off the subspace), and estimates the
    subspaces: with ``labels=True`` by PCA of each labelled group (:func:`fit_subspace`), else by
    :class:`SubspaceClustering` (``n_init`` restarts). A trial succeeds when every matched
    subspace error is below ``threshold``. Noiseless with labels, success is 0 for n < rank and
    1 for n >= rank, whatever ``dim``. Without labels and noise, n = rank points per subspace do not
    identify the grouping (every grouping has objective 0, :func:`subspace_objective`); from
    n = rank + 1 on the true grouping is generically the only one with objective 0, so a failure
    there whose ``objective`` is above ``true_objective`` is the algorithm's.
    """
    if isinstance(n_per_subspace, (str, bytes)) or not hasattr(n_per_subspace, "__iter__"):
        raise TypeError(f"n_per_subspace must be a sequence of sample counts; got {type(n_per_subspace).__name__}")
    ns = [check_int(n, "n_per_subspace", minimum=0) for n in n_per_subspace]
    T = check_int(n_trials, "n_trials", minimum=1)
    noise = check_real(noise, "noise", minimum=0.0)
    seed, threshold = check_int(seed, "seed", minimum=0), check_positive(threshold, "threshold")
    check_int(n_init, "n_init", minimum=1)
    errors = torch.empty(len(ns), T, dtype=torch.float64)
    objective, true_objective = torch.zeros(len(ns), T, dtype=torch.float64), torch.zeros(len(ns), T, dtype=torch.float64)
    for j in range(T):
        g = _generator(seed + j)
        U = random_bases(n_subspaces, dim, rank, generator=g)
        mix = LowRankMixture(U, noise=float(noise))
        for i, n in enumerate(ns):
            if n == 0:
                errors[i, j] = 1.0
                continue
            X, y = sample_subspaces(mix, n, generator=g)
            true_objective[i, j] = subspace_objective(X, y, n_subspaces, rank)
            if labels:
                est = torch.stack([fit_subspace(X[y == k], rank) for k in range(n_subspaces)])
                err = subspace_error(est, U)
                objective[i, j] = true_objective[i, j]
            else:
                fit = SubspaceClustering(n_subspaces, rank, n_init=n_init, seed=seed + j).fit(X)
                est, objective[i, j] = fit.bases_, fit.inertia_
                err = match_subspaces(est, U)[1]
            errors[i, j] = err.max()
    return PhaseTransition(ns, errors, (errors < threshold).to(torch.float64).mean(1), float(threshold),
                           objective, true_objective)
