"""Exact conditioning of the zoo on a linear measurement: Gaussian, GaussianMixture, LowRankMixture.

Checked against independent computations: Bayes' rule on a 2-D grid (prior density times the
likelihood, normalised by quadrature), the Schur complement of the joint Gaussian of (x, y) in
50-D (NumPy), and a low-rank mixture against the same mixture written with full covariances.
Bad input (shapes of A and y, a batch of y, noise_std <= 0) gets a clear error.
"""

import math

import numpy as np
import pytest
import torch

from diffedu import VP, Gaussian, GaussianMixture, LowRankMixture

F64 = torch.float64
MIX = GaussianMixture([0.3, 0.2, 0.5], [[-1.5, 0.0], [1.5, 0.5], [0.5, -1.0]],
                      [[[0.4, 0.1], [0.1, 0.3]], [[0.3, 0.0], [0.0, 0.3]], [[0.5, -0.2], [-0.2, 0.4]]])


def _grid(n=400, lim=6.0):
    h = 2 * lim / n
    c = -lim + h * (torch.arange(n, dtype=F64) + 0.5)
    X, Y = torch.meshgrid(c, c, indexing="xy")
    return torch.stack([X.reshape(-1), Y.reshape(-1)], 1), h


@pytest.mark.parametrize("A, y, s", [([[1.0, 1.0]], [0.7], 0.3), ([[1.0, 0.0]], [-1.2], 0.1),
                                     ([[1.0, 0.5], [0.0, 1.0]], [0.3, -0.4], 0.5)])
def test_mixture_posterior_is_bayes_rule_on_a_grid(A, y, s):
    """log p(x | y) of the conditioned mixture = log [p(x) N(y; A x, s^2 I)] normalised on a grid."""
    post = MIX.condition(A, y, s)
    pts, h = _grid()
    vp = VP()
    At, yt = torch.tensor(A, dtype=F64), torch.tensor(y, dtype=F64)
    log_joint = MIX.log_prob(pts, 0.0, vp) - 0.5 * ((yt - pts @ At.T) ** 2).sum(1) / s**2
    log_bayes = log_joint - torch.logsumexp(log_joint, 0) - 2 * math.log(h)
    lp = post.log_prob(pts, 0.0, vp)
    mass = log_bayes.exp() * h * h
    keep = mass > 1e-8                                         # where the posterior has mass
    assert float(mass.sum()) == pytest.approx(1.0, abs=1e-9)
    assert torch.allclose(lp[keep], log_bayes[keep], atol=1e-6)
    # the evidence reweights the components: the weights are p(k | y)
    lk = torch.stack([GaussianMixture([1.0], MIX.means[k:k + 1], MIX.covs[k:k + 1]).log_prob(pts, 0.0, vp)
                      for k in range(3)], 1) + torch.log(MIX.weights)
    like = -0.5 * ((yt - pts @ At.T) ** 2).sum(1) / s**2
    wk = torch.softmax(torch.logsumexp(lk + like[:, None], 0), 0)
    assert torch.allclose(post.weights, wk, atol=1e-9)


def test_gaussian_posterior_in_50d_is_the_schur_complement():
    rng = np.random.default_rng(0)
    D, m, s = 50, 12, 0.4
    F = rng.standard_normal((D, D)) / math.sqrt(D)
    S = F @ F.T + 0.1 * np.eye(D)
    mu = rng.standard_normal(D)
    A = rng.standard_normal((m, D))
    y = rng.standard_normal(m)
    post = Gaussian(mu, S).condition(A, y, s)
    # the joint of (x, y) is Gaussian: condition by its Schur complement
    Syy = A @ S @ A.T + s * s * np.eye(m)
    Sxy = S @ A.T
    mean = mu + Sxy @ np.linalg.solve(Syy, y - A @ mu)
    cov = S - Sxy @ np.linalg.solve(Syy, Sxy.T)
    assert np.allclose(post.mean.numpy(), mean, atol=1e-10)
    assert np.allclose(post.cov.numpy(), cov, atol=1e-10)
    # its exact denoiser at every t: the posterior's own Tweedie mean
    vp = VP()
    x = torch.randn(4, D, dtype=F64, generator=torch.Generator().manual_seed(1))
    a, sg = float(vp.alpha(0.4)), float(vp.sigma(0.4))
    Ct = a * a * cov + sg * sg * np.eye(D)
    expect = mean + (a * cov @ np.linalg.solve(Ct, (x.numpy() - a * mean).T)).T
    assert np.allclose(post.denoiser(x, 0.4, vp).numpy(), expect, atol=1e-9)


def test_low_rank_mixture_posterior_is_a_gaussian_mixture():
    rng = np.random.default_rng(2)
    D, r, K = 6, 2, 3
    U = np.stack([np.linalg.qr(rng.standard_normal((D, r)))[0] for _ in range(K)])
    lrm = LowRankMixture(U, [0.2, 0.5, 0.3], scales=rng.uniform(0.5, 2.0, (K, r)), means=rng.standard_normal((K, D)),
                         noise=0.05)
    full = GaussianMixture(lrm.weights, lrm.means, lrm.covs)
    A, y = rng.standard_normal((3, D)), rng.standard_normal(3)
    p1, p2 = lrm.condition(A, y, 0.2), full.condition(A, y, 0.2)
    assert isinstance(p1, GaussianMixture)
    assert torch.allclose(p1.weights, p2.weights, atol=1e-12)
    assert torch.allclose(p1.means, p2.means, atol=1e-12) and torch.allclose(p1.covs, p2.covs, atol=1e-12)
    # noise = 0: the prior lives on subspaces; its posterior too, and the denoiser is defined for t > 0
    lrm0 = LowRankMixture(U, scales=np.ones((K, r)))
    post0 = lrm0.condition(A, y, 0.2)
    x = torch.randn(5, D, dtype=F64, generator=torch.Generator().manual_seed(3))
    assert torch.isfinite(post0.denoiser(x, 0.3, VP())).all()


def test_posterior_samples_match_importance_weighted_prior_samples():
    """Monte Carlo: prior draws weighted by the likelihood have the posterior's mean."""
    g = torch.Generator().manual_seed(4)
    x = MIX.sample(400_000, generator=g, dtype=F64)
    A, y, s = torch.tensor([[1.0, -0.5]], dtype=F64), torch.tensor([0.4], dtype=F64), 0.5
    logw = -0.5 * ((y - x @ A.T) ** 2).sum(1) / s**2
    W = torch.softmax(logw, 0)
    post = MIX.condition(A, y, s)
    mc = (W[:, None] * x).sum(0)
    ess = 1 / (W**2).sum()
    se = post.cov.diagonal().sqrt() / ess.sqrt()
    assert ((mc - post.mean).abs() < 5 * se).all()


@pytest.mark.parametrize("dist", [Gaussian([0.0, 0.0], [1.0, 2.0]), MIX,
                                  LowRankMixture(torch.eye(2)[None, :, :1].double())])
def test_bad_measurements_get_clear_errors(dist):
    with pytest.raises(ValueError, match="A must have shape"):
        dist.condition([[1.0, 0.0, 0.0]], [1.0], 0.1)            # wrong D
    with pytest.raises(ValueError, match="A must have shape"):
        dist.condition([1.0, 0.0], [1.0], 0.1)                   # 1-D A
    with pytest.raises(ValueError, match="batch"):
        dist.condition([[1.0, 0.0]], [[1.0], [2.0]], 0.1)        # a batch of y
    with pytest.raises(ValueError, match="y must have shape"):
        dist.condition([[1.0, 0.0]], [1.0, 2.0], 0.1)            # y does not match A
    for s in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="noise_std"):
            dist.condition([[1.0, 0.0]], [1.0], s)
    with pytest.raises(TypeError, match="noise_std"):
        dist.condition([[1.0, 0.0]], [1.0], "0.1")
    with pytest.raises(TypeError, match="A"):
        dist.condition("A", [1.0], 0.1)
    with pytest.raises(ValueError, match="A must have at least one row"):
        dist.condition(np.zeros((0, 2)), np.zeros(0), 0.1)
