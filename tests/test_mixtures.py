"""Tests for diffedu.mixtures: GaussianMixture, LowRankMixture and Empirical.

log_prob against scipy (logsumexp of multivariate_normal.logpdf, also in 500 D) or a direct
float64 logsumexp, score against autograd, the denoiser against Tweedie and a seeded Monte-Carlo
posterior mean, float32 at the smallest grid time, chunking, bad input.
"""

import math
import time

import numpy as np
import pytest
import torch
from scipy import special, stats

from diffedu import EDM, VE, VP, Empirical, GaussianMixture, Linear, LowRankMixture, VPCosine, time_grid

F64 = torch.float64
PROCESSES = [VP(), VPCosine(), VE(), EDM(), Linear()]
PIDS = [type(p).__name__ for p in PROCESSES]


def _spd(D, rng, lo=0.2, hi=2.0):
    Q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    return Q @ np.diag(rng.uniform(lo, hi, D)) @ Q.T


def _orthonormal(K, D, r, rng):
    return np.stack([np.linalg.qr(rng.standard_normal((D, r)))[0] for _ in range(K)])


_rng = np.random.default_rng(0)
W = np.array([0.2, 0.5, 0.3])
MEANS = np.array([[2.0, 0.0, -1.0], [-1.5, 1.0, 0.5], [0.0, -2.0, 1.5]])
COVS = np.stack([_spd(3, _rng) for _ in range(3)])
DIAGS = _rng.uniform(0.1, 1.5, (3, 3))
BASES = _orthonormal(3, 5, 2, _rng)
SCALES = np.array([[1.0, 0.5], [2.0, 0.3], [0.7, 0.7]])
LR_MEANS = _rng.standard_normal((3, 5))
POINTS = _rng.standard_normal((40, 3)) * 1.5


def _lr_cov(noise):
    """Component covariances of x0 = mu_k + U_k a + sqrt(noise) e_perp, built independently."""
    out = []
    for U, s in zip(BASES, SCALES):
        out.append(U @ np.diag(s**2) @ U.T + noise * (np.eye(5) - U @ U.T))
    return np.stack(out)


CASES = {
    "gmm_full": (lambda: GaussianMixture(W, MEANS, COVS), W, MEANS, COVS),
    "gmm_diag": (lambda: GaussianMixture(torch.tensor(W), torch.tensor(MEANS), torch.tensor(DIAGS)),
                 W, MEANS, np.stack([np.diag(d) for d in DIAGS])),
    "lowrank": (lambda: LowRankMixture(BASES, W, scales=SCALES, means=LR_MEANS), W, LR_MEANS, _lr_cov(0.0)),
    "lowrank_noise": (lambda: LowRankMixture(BASES, W, scales=SCALES, means=LR_MEANS, noise=0.05),
                      W, LR_MEANS, _lr_cov(0.05)),
}
MIXTURES = list(CASES)


def _times(p):
    return [float(t) for t in time_grid(p, 5, "lambda")[:-1]]


def _as(p, t):
    return float(p.alpha(t)), float(p.sigma(t))


def _scipy_log_prob(x, t, p, w, means, covs):
    a, s = _as(p, t)
    D = means.shape[1]
    comps = [np.log(wk) + stats.multivariate_normal(a * m, a**2 * C + s**2 * np.eye(D)).logpdf(x)
             for wk, m, C in zip(w, means, covs)]
    return special.logsumexp(np.stack(comps, -1), axis=-1)


def _x(dist, B, seed, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, dist.dim, generator=g, dtype=F64) * scale


def mc_posterior_mean(dist, x, t, p, n, seed):
    r"""Self-normalised importance estimate of E[x0 | x_t = x], prior as proposal.

    E[x0 | x_t = x] = sum_i x0_i N(x; alpha x0_i, sigma^2 I) / sum_i N(...), x0_i ~ p_0.
    Returns the estimate (D,), its standard error (D,) and the effective sample size."""
    x0 = dist.sample(n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    a, s = _as(p, t)
    w = torch.softmax(-((x - a * x0) ** 2).sum(1) / (2 * s**2), 0)
    est = w @ x0
    se = torch.sqrt((w[:, None] ** 2 * (x0 - est) ** 2).sum(0))
    return est, se, float(1 / (w**2).sum())


# --- parameters, sampling ----------------------------------------------------------------------
@pytest.mark.parametrize("case", MIXTURES)
def test_parameters_and_sample_moments(case):
    make, w, means, covs = CASES[case]
    m = make()
    K, D = means.shape
    assert m.K == K and m.dim == D
    torch.testing.assert_close(m.means, torch.tensor(means))
    torch.testing.assert_close(m.covs, torch.tensor(covs), rtol=1e-10, atol=1e-12)
    mu = w @ means
    C = np.einsum("k,kde->de", w, covs) + np.einsum("k,kd,ke->de", w, means - mu, means - mu)
    torch.testing.assert_close(m.mean, torch.tensor(mu))
    torch.testing.assert_close(m.cov, torch.tensor(C), rtol=1e-10, atol=1e-12)
    n = 40_000
    x, k = m.sample_with_labels(n, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert x.shape == (n, D) and k.shape == (n,)
    freq = np.bincount(k.numpy(), minlength=K) / n
    assert (np.abs(freq - w) < 5 * np.sqrt(w * (1 - w) / n)).all()
    assert (np.abs(x.mean(0).numpy() - mu) < 5 * np.sqrt(np.diag(C) / n)).all()
    se_cov = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)
    assert (np.abs(np.cov(x.numpy().T) - C) < 5 * se_cov).all()
    # each draw has its labelled component's distribution (mean check per component)
    for j in range(K):
        xj = x[k == j].numpy()
        assert (np.abs(xj.mean(0) - means[j]) < 5 * np.sqrt(np.diag(covs[j]) / len(xj)) + 1e-9).all()
    assert torch.equal(x, m.sample(n, generator=torch.Generator().manual_seed(0), dtype=F64))


# --- log_prob, score, denoiser -----------------------------------------------------------------
@pytest.mark.parametrize("p", PROCESSES, ids=PIDS)
@pytest.mark.parametrize("case", MIXTURES)
def test_log_prob_matches_scipy(case, p):
    make, w, means, covs = CASES[case]
    m = make()
    x = _x(m, 6, 1)
    for t in _times(p):
        got = m.log_prob(x, t, p)
        assert got.shape == (6,) and got.dtype == F64
        np.testing.assert_allclose(got.numpy(), _scipy_log_prob(x.numpy(), t, p, w, means, covs),
                                   rtol=1e-9, atol=1e-9)


def test_log_prob_500d_matches_scipy():
    rng = np.random.default_rng(3)
    K, D = 3, 500
    w = np.array([0.3, 0.3, 0.4])
    means = rng.standard_normal((K, D)) * 0.3
    A = rng.standard_normal((K, D, D)) / math.sqrt(D)
    covs = A @ A.transpose(0, 2, 1) + 0.2 * np.eye(D)
    m = GaussianMixture(w, means, covs)
    p = VP()
    x = m.sample_marginal(4, 0.3, p, generator=torch.Generator().manual_seed(0), dtype=F64)
    got = m.log_prob(x, 0.3, p)
    np.testing.assert_allclose(got.numpy(), _scipy_log_prob(x.numpy(), 0.3, p, w, means, covs), rtol=1e-9)
    # diagonal covariances in 500 D
    diag = rng.uniform(0.2, 2.0, (K, D))
    md = GaussianMixture(w, means, diag)
    want = _scipy_log_prob(x.numpy(), 0.3, p, w, means, np.stack([np.diag(d) for d in diag]))
    np.testing.assert_allclose(md.log_prob(x, 0.3, p).numpy(), want, rtol=1e-9)
    # and the score is still the gradient of log_prob
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(m.log_prob(xg, 0.3, p).sum(), xg)
    torch.testing.assert_close(m.score(x, 0.3, p), grad, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("p", PROCESSES, ids=PIDS)
@pytest.mark.parametrize("case", MIXTURES)
def test_score_is_autograd_of_log_prob_and_tweedie(case, p):
    m = CASES[case][0]()
    for t in _times(p):
        x = _x(m, 5, 2).requires_grad_(True)
        (grad,) = torch.autograd.grad(m.log_prob(x, t, p).sum(), x)
        x = x.detach()
        sc = m.score(x, t, p)
        torch.testing.assert_close(sc, grad, rtol=1e-8, atol=1e-8 * float(grad.abs().max()))
        a, s = _as(p, t)
        den = m.denoiser(x, t, p)
        torch.testing.assert_close(sc, (a * den - x) / s**2, rtol=1e-7, atol=1e-7 * float(sc.abs().max()))
        torch.testing.assert_close(m.eps(x, t, p), (x - a * den) / s, rtol=1e-7,
                                   atol=1e-7 * float((x - a * den).abs().max() / s))
        r = m.responsibilities(x, t, p)
        torch.testing.assert_close(r.sum(1), torch.ones(5, dtype=F64))
        assert (r >= 0).all()


@pytest.mark.parametrize("p", [VP(), EDM(), Linear()], ids=["VP", "EDM", "Linear"])
@pytest.mark.parametrize("case", ["gmm_full", "lowrank", "empirical"])
def test_denoiser_matches_monte_carlo_posterior_mean(case, p):
    m = Empirical(POINTS) if case == "empirical" else CASES[case][0]()
    t = float(p.t_of_lam(0.0))  # sigma = alpha: the posterior mixes components
    x = m.sample_marginal(3, t, p, generator=torch.Generator().manual_seed(5), dtype=F64)
    den = m.denoiser(x, t, p)
    for i in range(3):
        est, se, ess = mc_posterior_mean(m, x[i], t, p, 200_000, seed=20 + i)
        assert ess > 1000
        assert float(se.max()) < 0.05
        assert ((den[i] - est).abs() < 5 * se + 1e-12).all(), (den[i], est, se)


def test_denoiser_mixes_components():
    """At sigma = alpha the responsibilities are far from one-hot, so the check above has teeth."""
    m = CASES["gmm_full"][0]()
    p = EDM()
    x = m.sample_marginal(50, 1.0, p, generator=torch.Generator().manual_seed(5), dtype=F64)
    assert float(m.responsibilities(x, 1.0, p).max(1).values.min()) < 0.9


# --- precision, batching, dtypes ---------------------------------------------------------------
@pytest.mark.parametrize("p", PROCESSES, ids=PIDS)
@pytest.mark.parametrize("case", MIXTURES)
def test_float32_at_t_eps_is_finite_and_close_to_float64(case, p):
    m = CASES[case][0]()
    t = float(time_grid(p, 10)[-2])
    x32 = m.sample_marginal(16, t, p, generator=torch.Generator().manual_seed(11), dtype=torch.float32)
    x64 = x32.double()
    for name in ("score", "denoiser", "log_prob", "eps", "responsibilities"):
        out32, out64 = getattr(m, name)(x32, t, p), getattr(m, name)(x64, t, p)
        assert out32.dtype == torch.float32 and torch.isfinite(out32).all(), name
        torch.testing.assert_close(out32.double(), out64, rtol=2e-3,
                                   atol=2e-3 * float(out64.abs().max()), msg=name)


@pytest.mark.parametrize("case", MIXTURES + ["empirical"])
def test_batch_equals_one_at_a_time_and_vector_t(case):
    m = Empirical(POINTS) if case == "empirical" else CASES[case][0]()
    p = VP()
    x = _x(m, 5, 12)
    ts = torch.tensor([0.05, 0.2, 0.5, 0.8, 1.0], dtype=F64)
    for name in ("score", "denoiser", "log_prob", "eps"):
        fn = getattr(m, name)
        batch = fn(x, 0.3, p)
        assert batch.dtype == F64 and fn(x.float(), 0.3, p).dtype == torch.float32
        rows = torch.cat([fn(x[i:i + 1], 0.3, p) for i in range(5)])
        torch.testing.assert_close(batch, rows, rtol=1e-11, atol=1e-11, msg=name)
        per = torch.cat([fn(x[i:i + 1], float(ts[i]), p) for i in range(5)])
        torch.testing.assert_close(fn(x, ts, p), per, rtol=1e-11, atol=1e-11, msg=name)


# --- Empirical -------------------------------------------------------------------------------
def _direct_empirical(points, x, t, p):
    """Denoiser and log_prob from explicit distances, float64."""
    a, s = _as(p, t)
    d2 = ((x[:, None, :] - a * points[None]) ** 2).sum(-1)  # (B, M)
    logits = -d2 / (2 * s**2)
    den = torch.softmax(logits, 1) @ points
    M, D = points.shape
    lp = torch.logsumexp(logits, 1) - math.log(M) - 0.5 * D * math.log(2 * math.pi * s**2)
    return den, lp


@pytest.mark.parametrize("p", PROCESSES, ids=PIDS)
def test_empirical_matches_direct_formulas(p):
    pts = torch.tensor(POINTS)
    e = Empirical(pts)
    x = _x(e, 6, 3)
    for t in _times(p):
        den, lp = _direct_empirical(pts, x, t, p)
        torch.testing.assert_close(e.denoiser(x, t, p), den, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(e.log_prob(x, t, p), lp, rtol=1e-10, atol=1e-9)
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(e.log_prob(xg, t, p).sum(), xg)
        torch.testing.assert_close(e.score(x, t, p), grad, rtol=1e-7, atol=1e-7 * float(grad.abs().max()))
        # log_prob is the scipy mixture of N(alpha x_m, sigma^2 I) with equal weights
        a, s = _as(p, t)
        M = len(POINTS)
        want = _scipy_log_prob(x.numpy(), t, p, np.full(M, 1 / M), POINTS, np.zeros((M, 3, 3)))
        np.testing.assert_allclose(e.log_prob(x, t, p).numpy(), want, rtol=1e-9, atol=1e-9)


def test_empirical_small_sigma_returns_nearest_point_and_float32_is_finite():
    rng = np.random.default_rng(4)
    pts = torch.tensor(rng.standard_normal((500, 64)) * 30.0)  # large norms: logits near 1e8
    e = Empirical(pts)
    for p in PROCESSES:
        t = float(time_grid(p, 10)[-2])
        a, _ = _as(p, t)
        x = a * pts[:7] + 0.3 * torch.tensor(rng.standard_normal((7, 64)))  # near the first 7 points
        nearest = pts[torch.cdist(x, a * pts).argmin(1)]
        torch.testing.assert_close(e.denoiser(x, t, p), nearest, rtol=0, atol=1e-9)
        out32 = e.denoiser(x.float(), t, p)
        assert out32.dtype == torch.float32 and torch.isfinite(out32).all()
        torch.testing.assert_close(out32.double(), nearest, rtol=1e-5, atol=1e-4)
        for name in ("score", "eps", "log_prob"):
            assert torch.isfinite(getattr(e, name)(x.float(), t, p)).all(), (p, name)
        # a far-away query still gets a finite answer (softmax in log space, no underflow to 0/0)
        far = torch.full((1, 64), 1e4, dtype=torch.float32)
        assert torch.isfinite(e.denoiser(far, t, p)).all()


def test_empirical_chunked_equals_unchunked_and_float32_matches():
    rng = np.random.default_rng(5)
    pts = torch.tensor(rng.standard_normal((300, 8)))
    x = torch.tensor(rng.standard_normal((37, 8))) * 1.5
    p = VE()
    whole = Empirical(pts)
    for chunk in (1, 300, 1000, 7 * 300 + 5):
        part = Empirical(pts, chunk_elems=chunk)
        for t in (0.05, 0.4, torch.linspace(0.05, 1.0, 37, dtype=F64)):
            for name in ("denoiser", "log_prob", "score"):
                torch.testing.assert_close(getattr(part, name)(x, t, p), getattr(whole, name)(x, t, p),
                                           rtol=1e-12, atol=1e-12)
    # float32 points with float64 queries (and back) give the float64 answer to float32 accuracy
    e32 = Empirical(pts.float())
    torch.testing.assert_close(e32.denoiser(x.float(), 0.4, p).double(), whole.denoiser(x, 0.4, p),
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(Empirical(pts, matmul_precision="high").denoiser(x, 0.4, p),
                               whole.denoiser(x, 0.4, p))


def test_empirical_sample_draws_training_points():
    pts = torch.tensor(POINTS)
    e = Empirical(pts)
    x = e.sample(500, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert x.shape == (500, 3)
    assert ((x[:, None, :] == pts[None]).all(-1).sum(1) >= 1).all()
    assert len(torch.unique(x, dim=0)) > 30  # uniform over 40 points: nearly all appear
    assert torch.equal(x, e.sample(500, generator=torch.Generator().manual_seed(0), dtype=F64))


@pytest.mark.slow
def test_empirical_large_float32_runs_in_memory():
    """M = 50,000 points of dimension 3,072 in float32 (CIFAR-10 sized), B = 64.

    About 5 s on an idle 2-core machine (more when it is busy): marked slow."""
    g = torch.Generator().manual_seed(0)
    M, D, B = 50_000, 3_072, 64
    pts = torch.empty(M, D).uniform_(-1, 1, generator=g)  # uniform is cheaper to draw than normal
    e = Empirical(pts)
    p = VP()
    t_eps = float(time_grid(p, 10)[-2])
    x = pts[:B] + 0.05 * torch.randn(B, D, generator=g)
    t0 = time.perf_counter()
    out = e.denoiser(x, t_eps, p)  # logits near 1e8 in float32
    assert out.shape == (B, D) and out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, pts[:B], rtol=0, atol=1e-5)
    # at t = 0.1 (sigma/alpha about 0.3) the posterior still sits on the source point
    a, _ = _as(p, 0.1)
    x = a * pts[:B] + 0.01 * torch.randn(B, D, generator=g)
    torch.testing.assert_close(e.denoiser(x, 0.1, p), pts[:B], rtol=0, atol=1e-4)
    assert torch.isfinite(e.log_prob(x[:8], 0.1, p)).all()
    assert time.perf_counter() - t0 < 120


# --- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make, exc, match", [
    (lambda: GaussianMixture([0.5, 0.6, -0.1], MEANS, COVS), ValueError, "weights must be non-negative"),
    (lambda: GaussianMixture([0.2, 0.2, 0.2], MEANS, COVS), ValueError, "weights must sum to 1"),
    (lambda: GaussianMixture([0.5, 0.5], MEANS, COVS), ValueError, r"weights must have shape \(3\)"),
    (lambda: GaussianMixture([0.5, np.nan, 0.5], MEANS, COVS), ValueError, "weights must be finite"),
    (lambda: GaussianMixture(W, MEANS * np.nan, COVS), ValueError, "means must be finite"),
    (lambda: GaussianMixture(W, MEANS[0], COVS), ValueError, "means must have shape"),
    (lambda: GaussianMixture(W, MEANS, COVS + np.triu(np.ones((3, 3)), 1)), ValueError, "covs must be symmetric"),
    (lambda: GaussianMixture(W, MEANS, COVS - 5 * np.eye(3)), ValueError, "covs must be positive semi-definite"),
    (lambda: GaussianMixture(W, MEANS, -DIAGS), ValueError, "covs .*non-negative"),
    (lambda: GaussianMixture(W, MEANS, COVS[:2]), ValueError, "covs must have shape"),
    (lambda: GaussianMixture(W, MEANS, np.where(COVS > 0, np.nan, COVS)), ValueError, "covs must be finite"),
    (lambda: LowRankMixture(BASES * 2, W), ValueError, "bases must have orthonormal columns"),
    (lambda: LowRankMixture(BASES[0], W), ValueError, "bases must have shape"),
    (lambda: LowRankMixture(np.ones((3, 2, 4)), W), ValueError, "bases must be"),
    (lambda: LowRankMixture(BASES, [0.5, 0.5, 0.5]), ValueError, "weights must sum to 1"),
    (lambda: LowRankMixture(BASES, W, scales=-SCALES), ValueError, "scales must be positive"),
    (lambda: LowRankMixture(BASES, W, scales=SCALES[:, :1]), ValueError, "scales must have shape"),
    (lambda: LowRankMixture(BASES, W, means=LR_MEANS[:, :2]), ValueError, "means must have shape"),
    (lambda: LowRankMixture(BASES, W, noise=-0.1), ValueError, "noise must be"),
    (lambda: LowRankMixture(BASES, W, noise=float("nan")), ValueError, "noise must be"),
    (lambda: Empirical(torch.ones(5, 3, dtype=torch.int64)), TypeError, "points must have a floating dtype"),
    (lambda: Empirical(torch.ones(5)), ValueError, r"points must have shape \(M, D\)"),
    (lambda: Empirical(torch.ones(0, 3)), ValueError, r"points must have shape \(M, D\)"),
    (lambda: Empirical(torch.tensor([[0.0, float("nan")]])), ValueError, "points must be finite"),
    (lambda: Empirical([[0.0, float("inf")]]), ValueError, "points must be finite"),
    (lambda: Empirical(POINTS, matmul_precision="low"), ValueError, "matmul_precision"),
])
def test_bad_parameters(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("case", MIXTURES + ["empirical"])
def test_bad_x_t_generator(case):
    m = Empirical(POINTS) if case == "empirical" else CASES[case][0]()
    p = VP()
    x = _x(m, 3, 0)
    for name in ("score", "denoiser", "log_prob", "eps"):
        fn = getattr(m, name)
        with pytest.raises(TypeError, match="x must be a torch.Tensor"):
            fn(x.numpy(), 0.5, p)
        with pytest.raises(ValueError, match="x must have shape"):
            fn(x[:, :-1], 0.5, p)
        with pytest.raises(ValueError, match="x must have shape"):
            fn(x[0], 0.5, p)
        with pytest.raises(ValueError, match=r"t must lie in \["):
            fn(x, 1.5, p)
        with pytest.raises(ValueError, match=r"t must lie in \["):
            fn(x, float("nan"), p)
        with pytest.raises(ValueError, match=r"t must be a float"):
            fn(x, torch.tensor([0.1, 0.2], dtype=F64), p)
        with pytest.raises(TypeError, match="process must be"):
            fn(x, 0.5, None)
    with pytest.raises(ValueError, match="generator lives on cpu"):
        m.sample(3, generator=torch.Generator(), device="cuda")
    with pytest.raises(ValueError, match="n must be"):
        m.sample(-2)


def test_degenerate_mixture_cases_reduce_to_simpler_ones():
    """K = 1 is a Gaussian; a zero weight drops its component; M = 1 is a point mass."""
    from diffedu import Gaussian

    p = VP()
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    g = Gaussian(MEANS[0], COVS[0])
    one = GaussianMixture([1.0], MEANS[:1], COVS[:1])
    two = GaussianMixture([1.0, 0.0], MEANS[:2], COVS[:2])
    for m in (one, two):
        for name in ("score", "denoiser", "log_prob"):
            torch.testing.assert_close(getattr(m, name)(x, 0.3, p), getattr(g, name)(x, 0.3, p), msg=name)
    assert (two.sample_with_labels(200, generator=torch.Generator().manual_seed(0))[1] == 0).all()
    e = Empirical(torch.tensor([[1.0, 2.0, 3.0]], dtype=F64))
    torch.testing.assert_close(e.denoiser(x, 0.3, p), torch.tensor([[1.0, 2.0, 3.0]], dtype=F64).expand(4, 3))
    pt = Gaussian([1.0, 2.0, 3.0], np.zeros(3))  # a point mass as a Gaussian with zero covariance
    torch.testing.assert_close(e.log_prob(x, 0.3, p), pt.log_prob(x, 0.3, p))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_results_follow_x_device():
    p = VP()
    for m in (CASES["gmm_full"][0](), CASES["lowrank_noise"][0](), Empirical(POINTS)):
        x = _x(m, 4, 0)
        xc = x.cuda()
        for name in ("score", "denoiser", "log_prob", "eps"):
            out = getattr(m, name)(xc, 0.3, p)
            assert out.device.type == "cuda" and out.dtype == F64
            torch.testing.assert_close(out.cpu(), getattr(m, name)(x, 0.3, p))
        s = m.sample(5, generator=torch.Generator(device="cuda").manual_seed(0), dtype=F64)
        assert s.device.type == "cuda"


def test_marginal_of_a_mixture_integrates_the_other_coordinate_out():
    """The 1-D marginal's density equals the 2-D density integrated over x_2 (trapezoid rule on a
    wide grid), at t = 0 and at t > 0."""
    from diffedu import VP

    mix = GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]],
                          [[[0.3, 0.15], [0.15, 0.2]], [[0.1, 0.0], [0.0, 0.4]]])
    m1 = mix.marginal([0])
    assert m1.dim == 1 and m1.K == 2
    p = VP()
    x1 = torch.linspace(-3, 3, 13, dtype=F64)
    x2 = torch.linspace(-9, 9, 6001, dtype=F64)
    for t in (0.0, 0.3):
        X = torch.stack(torch.meshgrid(x1, x2, indexing="ij"), -1).reshape(-1, 2)
        dens = mix.log_prob(X, t, p).exp().reshape(13, 6001)
        torch.testing.assert_close(torch.trapezoid(dens, x2, dim=1), m1.log_prob(x1[:, None], t, p).exp(),
                                   rtol=1e-7, atol=1e-12)
    swapped = mix.marginal([1, 0])
    torch.testing.assert_close(swapped.means, mix.means.flip(1))
    with pytest.raises(ValueError, match="dims"):
        mix.marginal([0, 0])
    with pytest.raises(ValueError, match="dims"):
        mix.marginal([2])


def test_every_distribution_has_mean_and_cov_properties():
    """One interface: ``mean`` and ``cov`` are properties on every distribution; for the empirical
    law they are the sample mean and the biased (1/M) sample covariance."""
    from diffedu import Gaussian

    X = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    E = Empirical(X)
    torch.testing.assert_close(E.mean, X.mean(0))
    torch.testing.assert_close(E.cov, torch.cov(X.T, correction=0))
    lr = LowRankMixture(torch.eye(3, dtype=F64)[None, :, :2], noise=0.1)
    for d in (E, lr, Gaussian([0.0, 1.0], [1.0, 2.0]), GaussianMixture([1.0], [[0.0]], [[2.0]])):
        assert isinstance(d.mean, torch.Tensor) and isinstance(d.cov, torch.Tensor)
        assert d.mean.shape == (d.dim,) and d.cov.shape == (d.dim, d.dim)


# --- issue 21: found by tests/test_properties.py ---------------------------------------------------
def test_marginal_dims_and_sample_arguments_are_checked():
    mix = GaussianMixture([0.5, 0.5], [[0.0, 1.0], [1.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]])
    for bad in (["0"], [0.5], [True]):  # int("0") and int(0.5) were accepted
        with pytest.raises(TypeError, match="dims"):
            mix.marginal(bad)
    with pytest.raises(TypeError, match="dims must be a sequence of coordinate indices; got int"):
        mix.marginal(0)
    with pytest.raises(TypeError, match="weights must be array-like of numbers, real and not bool"):
        GaussianMixture(torch.tensor([0.5, 0.5]) + 0j, [[0.0], [1.0]], [[1.0], [1.0]])
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        mix.sample(3, dtype="float32")
    with pytest.raises(ValueError, match="device must name a device"):
        mix.sample(3, device="cpux")


# --- fit_gaussian_mixture (EM) ------------------------------------------------------------------
def _known_mixture():
    return GaussianMixture([0.5, 0.3, 0.2], [[-3.0, 0.0], [2.0, 2.0], [2.0, -3.0]],
                           [[[0.5, 0.2], [0.2, 0.4]], [[0.3, -0.1], [-0.1, 0.6]], [[0.8, 0.0], [0.0, 0.2]]])


def test_em_recovers_a_known_mixture():
    """20,000 draws of three well-separated components: EM's weights, means and covariances match the
    truth within a few Monte Carlo standard errors (about 0.004 for a weight, 0.01 for a mean), and its
    mean log-likelihood of fresh data is the true density's within 0.01 nats."""
    from diffedu.mixtures import fit_gaussian_mixture

    true = _known_mixture()
    x = true.sample(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fit = fit_gaussian_mixture(x, 3, generator=torch.Generator().manual_seed(1))
    order = torch.cdist(true.means, fit.means).argmin(1)           # match components by their means
    assert sorted(order.tolist()) == [0, 1, 2]
    torch.testing.assert_close(fit.weights[order], true.weights, atol=0.015, rtol=0)
    torch.testing.assert_close(fit.means[order], true.means, atol=0.04, rtol=0)
    torch.testing.assert_close(fit.covs[order], true.covs, atol=0.04, rtol=0)
    fresh = true.sample(20000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    gap = float(fit.log_prob(fresh, 0.0, VP()).mean() - true.log_prob(fresh, 0.0, VP()).mean())
    assert abs(gap) < 0.01, gap


def test_em_with_one_component_is_the_sample_mean_and_covariance():
    """K = 1 in closed form: the mean and the biased (1/N) covariance, plus reg on the diagonal."""
    from diffedu.mixtures import fit_gaussian_mixture

    x = torch.randn(300, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * torch.tensor([1.0, 2, 3, 4])
    fit = fit_gaussian_mixture(x, 1, reg=0.01)
    torch.testing.assert_close(fit.weights, torch.ones(1, dtype=torch.float64))
    torch.testing.assert_close(fit.means[0], x.mean(0))
    torch.testing.assert_close(fit.covs[0], torch.cov(x.T, correction=0) + 0.01 * torch.eye(4, dtype=torch.float64))


def test_em_never_lowers_the_likelihood_and_stops_at_a_fixed_point():
    """Two properties of EM, checked with the mixture's own density and posterior code (not EM's):
    with reg = 0 the mean log-likelihood does not fall from one iteration to the next (Dempster et al.
    1977, Thm 1), and at convergence one more E- and M-step, with the responsibilities of
    GaussianMixture.responsibilities, returns the same parameters."""
    from diffedu.mixtures import fit_gaussian_mixture

    x = _known_mixture().sample(600, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.cat([x, x[:150] * 0.3 + 0.5])                          # overlapping data: EM moves for a while
    lls = []
    for it in range(1, 9):
        f = fit_gaussian_mixture(x, 4, reg=0.0, max_iter=it, tol=0.0, generator=torch.Generator().manual_seed(4))
        lls.append(float(f.log_prob(x, 0.0, VP()).mean()))
    assert all(b >= a - 1e-10 for a, b in zip(lls, lls[1:])), lls
    assert lls[-1] > lls[0] + 1e-3
    fit = fit_gaussian_mixture(x, 4, reg=1e-3, max_iter=2000, tol=1e-12, generator=torch.Generator().manual_seed(4))
    r = fit.responsibilities(x, 0.0, VP())                            # (N, K), the mixture's own posterior
    nk = r.sum(0)
    means = r.T @ x / nk[:, None]
    d = x[None] - means[:, None]
    covs = torch.einsum("nk,knd,kne->kde", r, d, d) / nk[:, None, None] + 1e-3 * torch.eye(2, dtype=torch.float64)
    torch.testing.assert_close(nk / len(x), fit.weights, atol=1e-6, rtol=0)
    torch.testing.assert_close(means, fit.means, atol=1e-5, rtol=0)
    torch.testing.assert_close(covs, fit.covs, atol=1e-5, rtol=0)


def test_em_inputs_are_checked():
    from diffedu.mixtures import fit_gaussian_mixture

    x = torch.randn(10, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="n_components must be at most the number of data rows 10"):
        fit_gaussian_mixture(x, 11)
    with pytest.raises(TypeError, match="n_components"):
        fit_gaussian_mixture(x, 2.0)
    with pytest.raises(ValueError, match="reg"):
        fit_gaussian_mixture(x, 2, reg=-1.0)
    with pytest.raises(ValueError, match="data must be finite"):
        fit_gaussian_mixture(torch.full((4, 2), float("nan")), 1)
    with pytest.raises(TypeError, match="generator"):
        fit_gaussian_mixture(x, 2, generator=1)
    with pytest.raises(ValueError, match="singular"):                 # constant data, no regularisation
        fit_gaussian_mixture(torch.ones(10, 2, dtype=torch.float64), 1, reg=0.0)
    same = fit_gaussian_mixture(x.tolist(), 2, generator=torch.Generator().manual_seed(0))  # an array-like
    assert same.K == 2 and same.means.dtype == torch.float64
