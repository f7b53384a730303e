r"""Fitting a Gaussian mixture to data by expectation-maximisation (Dempster, Laird and Rubin 1977).

A baseline density model for lesson 11's likelihood comparison: a diffusion model's bits per
dimension mean something only next to classical density estimators fitted to the same data.
:func:`fit_gaussian_mixture` returns a :class:`~diffedu.mixtures.GaussianMixture`, so its exact
log-density (``log_prob(x, 0.0, process)``) and samples come from the zoo. Full covariances, each
regularised by ``reg * I`` (as scikit-learn's ``reg_covar``), k-means++ seeding (Arthur and
Vassilvitskii 2007) from a ``generator``.
"""

from __future__ import annotations

import math

import torch

from ._core import check_batch, check_generator, check_int, check_positive
from .mixtures import GaussianMixture

__all__ = ["fit_gaussian_mixture"]


def _log_gauss(x, mean, cov):
    """log N(x; mean_k, cov_k) for every row and component: (B, K)."""
    L = torch.linalg.cholesky(cov)                                   # (K, D, D)
    d = x[None] - mean[:, None]                                      # (K, B, D)
    z = torch.linalg.solve_triangular(L, d.transpose(1, 2), upper=False)   # (K, D, B)
    logdet = 2 * torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(1)
    D = x.shape[1]
    return (-0.5 * (z**2).sum(1) - 0.5 * logdet[:, None] - 0.5 * D * math.log(2 * math.pi)).T


def fit_gaussian_mixture(x, K: int, *, iters: int = 100, reg: float = 1e-4, tol: float = 1e-8,
                         generator=None) -> tuple[GaussianMixture, torch.Tensor]:
    r"""Maximum-likelihood K-component mixture with full covariances by EM: ``(mixture, log-likelihoods)``.

    x: (M, D) data (float64 inside). E-step: responsibilities ``r_mk ∝ w_k N(x_m; mu_k, C_k)``;
    M-step: ``w_k = mean_m r_mk``, ``mu_k`` and ``C_k`` the responsibility-weighted mean and
    covariance, plus ``reg I``. Stops after ``iters`` steps or when the mean log-likelihood rises
    by less than ``tol``. Returns the fitted :class:`~diffedu.mixtures.GaussianMixture` and the
    mean log-likelihood after each step (non-decreasing, up to rounding: EM's guarantee).
    """
    x = check_batch(x).to(torch.float64)
    M, D = x.shape
    K = check_int(K, "K", minimum=1, maximum=M)
    iters = check_int(iters, "iters", minimum=1)
    reg, tol = check_positive(reg, "reg"), check_positive(tol, "tol")
    check_generator(generator)
    idx = [int(torch.randint(M, (1,), generator=generator))]         # k-means++ seeding
    for _ in range(K - 1):
        d2 = torch.cdist(x, x[idx]).min(1).values ** 2
        idx.append(int(torch.multinomial(d2 / d2.sum(), 1, generator=generator)))
    mean = x[idx].clone()
    eye = torch.eye(D, dtype=torch.float64)
    cov = (torch.cov(x.T).reshape(D, D) + reg * eye).expand(K, D, D).clone()
    logw = torch.full((K,), -math.log(K), dtype=torch.float64)
    history = []
    for _ in range(iters):
        lj = _log_gauss(x, mean, cov) + logw                         # (M, K)
        ll = torch.logsumexp(lj, 1)
        history.append(float(ll.mean()))
        r = torch.exp(lj - ll[:, None])
        nk = r.sum(0) + 1e-300
        logw = torch.log(nk / M)
        mean = (r.T @ x) / nk[:, None]
        d = x[None] - mean[:, None]                                  # (K, M, D)
        cov = torch.einsum("km,kmi,kmj->kij", r.T, d, d) / nk[:, None, None] + reg * eye
        if len(history) > 1 and history[-1] - history[-2] < tol:
            break
    lj = _log_gauss(x, mean, cov) + logw
    history.append(float(torch.logsumexp(lj, 1).mean()))
    return GaussianMixture(torch.exp(logw), mean, cov), torch.tensor(history, dtype=torch.float64)
