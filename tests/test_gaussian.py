"""Tests for diffedu.gaussian: every field of N(mean, cov) checked by an independent method.

log_prob against scipy.stats, score against autograd of log_prob, the denoiser against
Tweedie and a seeded Monte-Carlo posterior mean, ``flow`` against scipy's ODE solver.
"""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from diffedu import EDM, VE, VP, Gaussian, Linear, VPCosine, fit_gaussian, time_grid
from diffedu.gaussian import cov_ellipse, decision_time
from diffedu._core import coefs

F64 = torch.float64
PROCESSES = [VP(), VPCosine(), VE(), EDM(), Linear()]
PIDS = [type(p).__name__ for p in PROCESSES]
D = 4


def _spd(D, seed, lo=0.3):
    g = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(g.standard_normal((D, D)))
    return Q @ np.diag(np.linspace(lo, 2.5, D)) @ Q.T


MEAN = np.array([0.5, -1.0, 2.0, 0.25])
COV = _spd(D, 0)
DIAG = np.array([0.4, 1.5, 0.05, 2.0])
FACTOR = np.random.default_rng(1).standard_normal((D, 2))

CASES = {
    "full": (lambda: Gaussian(MEAN, COV), COV),
    "diag": (lambda: Gaussian(torch.tensor(MEAN), torch.tensor(DIAG)), np.diag(DIAG)),
    "lowrank_noise": (lambda: Gaussian.low_rank(MEAN, FACTOR, noise=0.3), FACTOR @ FACTOR.T + 0.3 * np.eye(D)),
    "lowrank_degenerate": (lambda: Gaussian.low_rank(MEAN, FACTOR), FACTOR @ FACTOR.T),
}


def _times(p):
    """Test times from the grid's t_eps to t_max (all > 0, where degenerate cases are defined)."""
    ts = time_grid(p, 6, "lambda")[:-1]
    return [float(t) for t in ts]


def _points(B, seed, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, generator=g, dtype=F64) * scale + torch.tensor(MEAN)


def _as(p, t):
    a, s = float(p.alpha(t)), float(p.sigma(t))
    return a, s


# --- parameters and sampling -----------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_covariance_reconstruction(case):
    make, C = CASES[case]
    g = make()
    assert g.dim == D
    torch.testing.assert_close(g.mean, torch.tensor(MEAN))
    torch.testing.assert_close(g.cov, torch.tensor(C), rtol=1e-10, atol=1e-12)
    U, ev = g.eigvecs, g.eigvals
    torch.testing.assert_close(U.T @ U, torch.eye(U.shape[1], dtype=F64), atol=1e-12, rtol=0)
    assert (ev >= 0).all()
    p = VP()
    a, s = _as(p, 0.3)
    torch.testing.assert_close(g.marginal_cov(0.3, p), torch.tensor(a**2 * C + s**2 * np.eye(D)))


@pytest.mark.parametrize("case", CASES)
def test_sample_moments_and_reproducibility(case):
    make, C = CASES[case]
    g = make()
    n = 40_000
    x = g.sample(n, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert x.shape == (n, D) and x.dtype == F64
    se_mean = np.sqrt(np.diag(C) / n)
    assert (np.abs(x.mean(0).numpy() - MEAN) < 5 * se_mean + 1e-12).all()
    emp = np.cov(x.numpy().T)
    se_cov = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)
    assert (np.abs(emp - C) < 5 * se_cov + 1e-12).all()
    y = g.sample(n, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.equal(x, y)
    assert g.sample(3, dtype=torch.float32).dtype == torch.float32
    assert g.sample(0).shape == (0, D)


@pytest.mark.parametrize("p", PROCESSES, ids=PIDS)
def test_sample_marginal_moments(p):
    g = CASES["full"][0]()
    t = 0.4 * p.t_max
    a, s = _as(p, t)
    n = 40_000
    x = g.sample_marginal(n, t, p, generator=torch.Generator().manual_seed(1), dtype=F64)
    C = a**2 * COV + s**2 * np.eye(D)
    assert (np.abs(x.mean(0).numpy() - a * MEAN) < 5 * np.sqrt(np.diag(C) / n)).all()
    se_cov = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)
    assert (np.abs(np.cov(x.numpy().T) - C) < 5 * se_cov).all()


# --- log_prob, score, denoiser ---------------------------------------------------------------
@pytest.mark.parametrize("p", PROCESSES, ids=PIDS)
@pytest.mark.parametrize("case", CASES)
def test_log_prob_matches_scipy(case, p):
    make, C = CASES[case]
    g = make()
    x = _points(7, 2)
    for t in _times(p):
        a, s = _as(p, t)
        want = stats.multivariate_normal(a * MEAN, a**2 * C + s**2 * np.eye(D)).logpdf(x.numpy())
        got = g.log_prob(x, t, p)
        assert got.shape == (7,) and got.dtype == F64
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-9)


def test_log_prob_at_t0_is_the_data_density():
    g = Gaussian(MEAN, COV)
    x = _points(5, 3)
    want = stats.multivariate_normal(MEAN, COV).logpdf(x.numpy())
    np.testing.assert_allclose(g.log_prob(x, 0.0, VP()).numpy(), want, rtol=1e-10)
    # and the denoiser at t = 0 is the identity for a full-rank Gaussian
    torch.testing.assert_close(g.denoiser(x, 0.0, EDM()), x)


@pytest.mark.parametrize("p", PROCESSES, ids=PIDS)
@pytest.mark.parametrize("case", CASES)
def test_score_is_autograd_of_log_prob_and_tweedie(case, p):
    g = CASES[case][0]()
    for t in _times(p):
        x = _points(6, 4).requires_grad_(True)
        (grad,) = torch.autograd.grad(g.log_prob(x, t, p).sum(), x)
        x = x.detach()
        sc = g.score(x, t, p)
        torch.testing.assert_close(sc, grad, rtol=1e-8, atol=1e-8 * float(grad.abs().max()))
        a, s = _as(p, t)
        den = g.denoiser(x, t, p)
        torch.testing.assert_close(sc, (a * den - x) / s**2, rtol=1e-7, atol=1e-7 * float(sc.abs().max()))
        torch.testing.assert_close(g.eps(x, t, p), (x - a * den) / s, rtol=1e-9, atol=1e-9)


def mc_posterior_mean(dist, x, t, p, n, seed):
    r"""Self-normalised importance estimate of E[x_0 | x_t = x] with the prior as proposal.

    E[x0 | x_t = x] = sum_i x0_i N(x; alpha x0_i, sigma^2 I) / sum_i N(...), x0_i ~ p_0.
    Returns the estimate (D,), its standard error (D,) and the effective sample size.
    """
    x0 = dist.sample(n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    a, s = _as(p, t)
    w = torch.softmax(-((x - a * x0) ** 2).sum(1) / (2 * s**2), 0)
    est = w @ x0
    se = torch.sqrt((w[:, None] ** 2 * (x0 - est) ** 2).sum(0))
    return est, se, float(1 / (w**2).sum())


@pytest.mark.parametrize("p", PROCESSES, ids=PIDS)
@pytest.mark.parametrize("case", ["full", "lowrank_degenerate"])
def test_denoiser_matches_monte_carlo_posterior_mean(case, p):
    g = CASES[case][0]()
    t = float(p.t_of_lam(0.0))  # sigma = alpha: the posterior is far from both prior and x
    x = g.sample_marginal(3, t, p, generator=torch.Generator().manual_seed(5), dtype=F64)
    den = g.denoiser(x, t, p)
    for i in range(3):
        est, se, ess = mc_posterior_mean(g, x[i], t, p, 200_000, seed=10 + i)
        assert ess > 1000
        assert float(se.max()) < 0.05  # the check has power: errors of 0.25 would fail
        assert ((den[i] - est).abs() < 5 * se).all(), (den[i], est, se)
    # the posterior mean is not the prior mean nor x / alpha: the test above distinguishes them
    assert float((den - g.mean).abs().max()) > 0.3


# --- the exact probability-flow map ---------------------------------------------------------
def _ode_flow(g, x, t0, t1, p):
    """solve_ivp of dx/dt = f x - 1/2 g2 score, all rows as one (B D)-dimensional system."""
    B = x.shape[0]

    def rhs(t, y):
        xt = torch.as_tensor(y, dtype=F64).reshape(B, D)
        v = p.f(t) * xt - 0.5 * p.g2(t) * g.score(xt, min(max(t, 0.0), p.t_max), p)
        return v.reshape(-1).numpy()

    sol = integrate.solve_ivp(rhs, (t0, t1), x.reshape(-1).numpy(), method="DOP853", rtol=1e-10, atol=1e-12)
    assert sol.success
    return torch.tensor(sol.y[:, -1]).reshape(B, D)


@pytest.mark.parametrize("p", PROCESSES, ids=PIDS)
@pytest.mark.parametrize("case", ["full", "lowrank_noise"])
def test_flow_matches_solve_ivp_both_directions(case, p):
    g = CASES[case][0]()
    t_hi, t_lo = p.t_max, float(time_grid(p, 4)[-2])
    x_hi = g.sample_marginal(2, t_hi, p, generator=torch.Generator().manual_seed(6), dtype=F64)
    down = g.flow(x_hi, t_hi, t_lo, p)
    torch.testing.assert_close(down, _ode_flow(g, x_hi, t_hi, t_lo, p), rtol=1e-7, atol=1e-7)
    x_lo = _points(2, 7)
    up = g.flow(x_lo, t_lo, t_hi, p)
    torch.testing.assert_close(up, _ode_flow(g, x_lo, t_lo, t_hi, p), rtol=1e-7,
                               atol=1e-7 * float(up.abs().max()))
    # the map is invertible: there and back is the identity
    torch.testing.assert_close(g.flow(up, t_hi, t_lo, p), x_lo, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("p", PROCESSES, ids=PIDS)
def test_flow_to_zero_matches_solve_ivp(p):
    g = CASES["full"][0]()
    x = g.sample_marginal(2, 0.5 * p.t_max, p, generator=torch.Generator().manual_seed(8), dtype=F64)
    torch.testing.assert_close(g.flow(x, 0.5 * p.t_max, 0.0, p), _ode_flow(g, x, 0.5 * p.t_max, 0.0, p),
                               rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("p", PROCESSES, ids=PIDS)
@pytest.mark.parametrize("case", ["full", "lowrank_degenerate"])
def test_flow_pushes_t_max_marginal_onto_data(case, p):
    make, C = CASES[case]
    g = make()
    n = 40_000
    x = g.sample_marginal(n, p.t_max, p, generator=torch.Generator().manual_seed(9), dtype=F64)
    x0 = g.flow(x, p.t_max, 0.0, p)
    assert torch.isfinite(x0).all()
    se_mean = np.sqrt(np.diag(C) / n)
    assert (np.abs(x0.mean(0).numpy() - MEAN) < 5 * se_mean + 1e-12).all()
    se_cov = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)
    assert (np.abs(np.cov(x0.numpy().T) - C) < 5 * se_cov + 1e-12).all()
    if case == "lowrank_degenerate":  # lands exactly on the affine subspace mean + range(F)
        P = torch.tensor(FACTOR @ np.linalg.pinv(FACTOR))
        y = x0 - torch.tensor(MEAN)
        torch.testing.assert_close(y @ P, y, atol=1e-10, rtol=0)


# --- precision, batching, dtypes -------------------------------------------------------------
@pytest.mark.parametrize("p", PROCESSES, ids=PIDS)
@pytest.mark.parametrize("case", CASES)
def test_float32_at_t_eps_is_finite_and_close_to_float64(case, p):
    g = CASES[case][0]()
    t = float(time_grid(p, 10)[-2])
    x32 = g.sample_marginal(16, t, p, generator=torch.Generator().manual_seed(11), dtype=torch.float32)
    x64 = x32.double()
    for name in ("score", "denoiser", "log_prob", "eps"):
        out32, out64 = getattr(g, name)(x32, t, p), getattr(g, name)(x64, t, p)
        assert out32.dtype == torch.float32 and torch.isfinite(out32).all(), name
        torch.testing.assert_close(out32.double(), out64, rtol=2e-3,
                                   atol=2e-3 * float(out64.abs().max()), msg=name)
    f32 = g.flow(x32, t, p.t_max, p)
    assert f32.dtype == torch.float32 and torch.isfinite(f32).all()
    f64 = g.flow(x64, t, p.t_max, p)  # expands thin modes by sigma_max / sigma_eps: rounding too
    torch.testing.assert_close(f32.double(), f64, rtol=1e-3, atol=1e-4 * float(f64.abs().max()))


@pytest.mark.parametrize("case", CASES)
def test_batch_equals_one_at_a_time_and_vector_t(case):
    g = CASES[case][0]()
    p = VP()
    x = _points(5, 12)
    ts = torch.tensor([0.05, 0.2, 0.5, 0.8, 1.0], dtype=F64)
    for name in ("score", "denoiser", "log_prob", "eps"):
        fn = getattr(g, name)
        batch = fn(x, 0.3, p)
        rows = torch.cat([fn(x[i:i + 1], 0.3, p) for i in range(5)])
        torch.testing.assert_close(batch, rows, rtol=1e-12, atol=1e-12, msg=name)
        vec = fn(x, ts, p)
        per = torch.cat([fn(x[i:i + 1], float(ts[i]), p) for i in range(5)])
        torch.testing.assert_close(vec, per, rtol=1e-12, atol=1e-12, msg=name)
        torch.testing.assert_close(fn(x, torch.tensor(0.3, dtype=F64), p), batch, msg=name)
    fl = g.flow(x, ts, 0.01, p)
    per = torch.cat([g.flow(x[i:i + 1], float(ts[i]), 0.01, p) for i in range(5)])
    torch.testing.assert_close(fl, per, rtol=1e-12, atol=1e-12)


def test_results_follow_x_dtype_and_bind():
    g = Gaussian(MEAN, COV)
    p = EDM()
    for dt in (torch.float32, torch.float64):
        x = _points(3, 13).to(dt)
        for name in ("score", "denoiser", "log_prob", "eps"):
            assert getattr(g, name)(x, 1.0, p).dtype == dt
        assert g.flow(x, 1.0, 2.0, p).dtype == dt
    b = g.bind(p)
    x = _points(3, 13)
    for name in ("score", "denoiser", "log_prob", "eps"):
        torch.testing.assert_close(getattr(b, name)(x, 1.5), getattr(g, name)(x, 1.5, p))
    xm = b.sample_marginal(4, 1.5, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert xm.shape == (4, D)


@pytest.mark.filterwarnings("error::UserWarning")
def test_score_keeps_autograd_through_t():
    """Distillation / consistency lessons differentiate fields in t: the graph through t survives."""
    g = Gaussian(MEAN, COV)
    p = VP()
    x = _points(3, 14)
    t = torch.full((3,), 0.4, dtype=F64, requires_grad=True)
    (dt,) = torch.autograd.grad(g.log_prob(x, t, p).sum(), t)
    h = 1e-6
    fd = (g.log_prob(x, 0.4 + h, p) - g.log_prob(x, 0.4 - h, p)) / (2 * h)
    torch.testing.assert_close(dt, fd, rtol=1e-6, atol=1e-6)


# --- bad input ---------------------------------------------------------------------------------
def test_bad_x():
    g = Gaussian(MEAN, COV)
    p = VP()
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        g.score(np.zeros((2, D)), 0.5, p)
    with pytest.raises(TypeError, match="x must have a real floating dtype"):
        g.score(torch.zeros(2, D, dtype=torch.int64), 0.5, p)
    for shape in ((D,), (2, D + 1), (2, 1, D)):
        with pytest.raises(ValueError, match=r"x must have shape \(B, 4\)"):
            g.log_prob(torch.zeros(shape, dtype=F64), 0.5, p)
    with pytest.raises(ValueError, match="x must have shape"):
        g.flow(torch.zeros(2, D + 1, dtype=F64), 0.5, 0.1, p)


def test_bad_t_and_process():
    g = Gaussian(MEAN, COV)
    x = _points(3, 0)
    for p in PROCESSES:
        for bad in (-0.1, p.t_max + 0.1, float("nan")):
            with pytest.raises(ValueError, match=r"t must lie in \["):
                g.score(x, bad, p)
    with pytest.raises(ValueError, match=r"t must lie in"):
        g.denoiser(x, torch.tensor([0.1, 0.2, 1.5], dtype=F64), VP())
    with pytest.raises(ValueError, match=r"t must be a float, a 0-d tensor or a \(3,\) tensor"):
        g.denoiser(x, torch.tensor([0.1, 0.2], dtype=F64), VP())
    with pytest.raises(ValueError, match=r"t must be"):
        g.denoiser(x, torch.full((3, 1), 0.1, dtype=F64), VP())
    with pytest.raises(TypeError, match="process must be"):
        g.score(x, 0.5, "VP")
    with pytest.raises(TypeError, match="process must be"):
        g.bind(None)


@pytest.mark.parametrize("make, exc, match", [
    (lambda: Gaussian(MEAN, COV + np.triu(np.ones((D, D)), 1) * 0.1), ValueError, "cov must be symmetric"),
    (lambda: Gaussian(MEAN, COV - 3 * np.eye(D)), ValueError, "cov must be positive semi-definite"),
    (lambda: Gaussian(MEAN, -DIAG), ValueError, "cov .*non-negative"),
    (lambda: Gaussian(MEAN, np.eye(D + 1)), ValueError, "cov must have shape"),
    (lambda: Gaussian(MEAN, np.ones((D, D, 1))), ValueError, "cov must have shape"),
    (lambda: Gaussian([0.0, float("nan"), 0.0, 0.0], COV), ValueError, "mean must be finite"),
    (lambda: Gaussian(MEAN, np.where(np.eye(D) > 0, np.nan, COV)), ValueError, "cov must be finite"),
    (lambda: Gaussian(np.zeros((2, D)), COV), ValueError, "mean must have shape"),
    (lambda: Gaussian("abc", COV), TypeError, "mean must be array-like"),
    (lambda: Gaussian.low_rank(MEAN, FACTOR, noise=-1.0), ValueError, "noise must be"),
    (lambda: Gaussian.low_rank(MEAN, FACTOR, noise=float("nan")), ValueError, "noise must be"),
    (lambda: Gaussian.low_rank(MEAN, FACTOR[:3]), ValueError, "factor must have shape"),
    (lambda: Gaussian.low_rank(MEAN, FACTOR * np.nan), ValueError, "factor must be finite"),
])
def test_bad_parameters(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_psd_accepts_singular_and_rejects_generator_device_mismatch():
    C = FACTOR @ FACTOR.T  # rank 2, PSD: accepted as a full matrix too
    g = Gaussian(MEAN, C)
    torch.testing.assert_close(g.cov, torch.tensor(C), atol=1e-12, rtol=0)
    gen = torch.Generator()  # CPU
    with pytest.raises(ValueError, match="generator lives on cpu"):
        g.sample(3, generator=gen, device="cuda")
    with pytest.raises(ValueError, match="generator"):
        g.sample_marginal(3, 0.5, VP(), generator=gen, device="cuda")
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        g.sample(3, generator=0)
    with pytest.raises(ValueError, match="n must be"):
        g.sample(-1)
    with pytest.raises(TypeError, match="dtype must be a floating"):
        g.sample(3, dtype=torch.int32)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_results_follow_x_device():
    g = Gaussian.low_rank(MEAN, FACTOR, noise=0.3)
    p = VP()
    x = _points(4, 0)
    xc = x.cuda()
    for name in ("score", "denoiser", "log_prob", "eps"):
        out = getattr(g, name)(xc, 0.3, p)
        assert out.device.type == "cuda" and out.dtype == F64
        torch.testing.assert_close(out.cpu(), getattr(g, name)(x, 0.3, p))
    torch.testing.assert_close(g.flow(xc, 0.3, 0.9, p).cpu(), g.flow(x, 0.3, 0.9, p))
    ts = torch.linspace(0.1, 0.9, 4, dtype=F64, device="cuda")
    assert g.score(xc, ts, p).device.type == "cuda"
    s = g.sample(5, generator=torch.Generator(device="cuda").manual_seed(0), dtype=F64)
    assert s.device.type == "cuda"
    with pytest.raises(ValueError, match="generator lives on cuda"):
        g.sample(5, generator=torch.Generator(device="cuda"), device="cpu")


# --- exact paths, signal fractions, rotated 2-D Gaussians --------------------------------------
def test_flow_path_is_the_exact_map_at_every_time():
    from diffedu import VP, time_grid
    from diffedu.gaussian import rotated_2d

    p, G = VP(), rotated_2d(2.0, 0.1, 40.0, mean=(0.5, -1.0))
    x = G.sample_marginal(7, p.t_max, p, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ts = time_grid(p, 12, "lambda")[:-1]
    path = G.flow_path(x, ts, p)
    assert path.shape == (12, 7, 2)
    torch.testing.assert_close(path[0], x)
    for k in (3, 11):
        torch.testing.assert_close(path[k], G.flow(x, p.t_max, float(ts[k]), p))


def test_signal_fraction_is_the_data_share_of_each_modes_variance():
    """Projected on eigenvector k, Var[x_t] = alpha^2 lambda_k + sigma^2 (from marginal_cov);
    the fraction is alpha^2 lambda_k over it, and 1/2 exactly where (sigma/alpha)^2 = lambda_k."""
    from diffedu import EDM, VP
    from diffedu.gaussian import rotated_2d

    G = rotated_2d(2.0, 0.1, 25.0)
    for p, t in ((VP(), 0.4), (EDM(), 0.8)):
        C = G.marginal_cov(t, p)
        U = G.eigvecs
        var_t = torch.diagonal(U.T @ C @ U)
        a = float(p.alpha(t))
        torch.testing.assert_close(G.signal_fraction(t, p), a**2 * G.eigvals / var_t)
    p = EDM()
    for lam in G.eigvals.tolist():
        frac = G.signal_fraction(lam**0.5, p)
        assert min(abs(float(f) - 0.5) for f in frac) < 1e-12


def test_rotated_2d_has_the_requested_spectrum_and_axis():
    import math

    from diffedu.gaussian import rotated_2d

    G = rotated_2d(3.0, 0.5, 60.0, mean=(1.0, 2.0))
    ev, U = torch.linalg.eigh(G.cov)
    torch.testing.assert_close(ev, torch.tensor([0.5, 3.0], dtype=torch.float64))
    top = U[:, 1] * torch.sign(U[0, 1])
    torch.testing.assert_close(top, torch.tensor([math.cos(math.pi / 3), math.sin(math.pi / 3)], dtype=torch.float64))
    torch.testing.assert_close(G.mean, torch.tensor([1.0, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="lam2"):
        rotated_2d(1.0, -1.0)


@pytest.mark.parametrize("process", PROCESSES, ids=PIDS)
def test_decision_time_is_where_the_signal_fraction_is_one_half(process):
    from diffedu.gaussian import decision_time

    G = Gaussian(torch.zeros(3, dtype=F64), torch.tensor([2.0, 0.3, 0.01], dtype=F64))
    times = decision_time(G.eigvals, process)
    assert times.shape == (3,)
    for k, t in enumerate(times.tolist()):
        assert float(G.signal_fraction(t, process)[k]) == pytest.approx(0.5, abs=1e-9)
    # the sigma/alpha of that time is sqrt(eigval): EDM's time is its noise level
    assert float(decision_time(0.25, EDM())) == pytest.approx(0.5, rel=1e-12)
    with pytest.raises(ValueError, match="eigval"):
        decision_time(-1.0, process)


@pytest.mark.parametrize("process", PROCESSES, ids=PIDS)
def test_pf_ode_divergence_matches_autograd_divergence_of_the_velocity(process):
    from diffedu.calculus import divergence
    from diffedu.flows import pf_ode_velocity

    G = Gaussian(torch.tensor(MEAN), torch.tensor(COV))
    t = 0.4 * process.t_max
    x = G.sample_marginal(5, t, process, generator=torch.Generator().manual_seed(3), dtype=F64)
    div = divergence(lambda z: pf_ode_velocity(G.bind(process).denoiser, process, z, t), x)
    expected = G.pf_ode_divergence(t, process)
    assert expected.shape == ()
    torch.testing.assert_close(div, expected.expand(5), rtol=1e-9, atol=1e-9)


def test_cov_ellipse_lies_on_the_mahalanobis_level_and_encloses_its_area():
    from diffedu.gaussian import cov_ellipse

    C = torch.tensor([[1.0, 0.45], [0.45, 0.3]], dtype=torch.float64)
    m = torch.tensor([0.3, -0.2], dtype=torch.float64)
    pts = cov_ellipse(C, m, n_std=2.0, n=2001)
    y = pts - m
    maha = (y @ torch.linalg.inv(C) * y).sum(1)
    assert torch.allclose(maha, torch.full_like(maha, 4.0), rtol=1e-12)
    assert torch.allclose(pts[0], pts[-1], atol=1e-12)
    area = 0.5 * float((y[:-1, 0] * y[1:, 1] - y[1:, 0] * y[:-1, 1]).sum())  # shoelace, counter-clockwise
    assert area == pytest.approx(math.pi * 4.0 * math.sqrt(float(torch.linalg.det(C))), rel=1e-5)
    with pytest.raises(ValueError, match="cov must have shape"):
        cov_ellipse(torch.eye(3))
    with pytest.raises(ValueError, match="cov must be positive semi-definite"):
        cov_ellipse(torch.diag(torch.tensor([1.0, -1.0])))


# --- issue 21: found by tests/test_properties.py ---------------------------------------------------
def test_parameters_refuse_wrong_types():
    with pytest.raises(ValueError, match="mean must have at least one entry"):
        Gaussian([], [])
    with pytest.raises(TypeError, match="mean must be array-like of numbers, real and not bool"):
        Gaussian(np.array([1j, 0.0]), np.eye(2))
    for bad in (True, "0.5"):
        with pytest.raises(TypeError, match="noise must be a real number"):
            Gaussian.low_rank(torch.zeros(2), torch.ones(2, 1), noise=bad)
    with pytest.raises(TypeError, match="shrinkage must be a real number"):
        fit_gaussian(torch.randn(5, 2, dtype=torch.float64), shrinkage="0.5")
    with pytest.raises(TypeError, match="data must be a .* real and not bool"):
        fit_gaussian(np.ones((5, 2)) * 1j)
    with pytest.raises(TypeError, match="eigval must be a positive number"):
        decision_time("1.0", VP())
    with pytest.raises(TypeError, match="eigval must be a positive number"):
        decision_time(True, VP())
    with pytest.raises(ValueError, match="cov must be finite"):  # was a RuntimeError from allclose
        cov_ellipse(torch.tensor([[1.0, math.nan], [math.nan, 1.0]]))


def test_times_are_named_and_singular_gaussians_refuse_t_zero():
    g = Gaussian(torch.zeros(2), torch.eye(2))
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match="t_from must be a real number"):
        g.flow(x, "0.5", 0.1, VP())
    with pytest.raises(TypeError, match="t_to must be a real number"):
        g.flow(x, 0.5, "0.1", VP())
    with pytest.raises(TypeError, match="ts must be a 1-D tensor or sequence of times; got str"):
        g.flow_path(x, "abc", VP())
    with pytest.raises(ValueError, match="ts must lie in"):
        g.flow_path(x, [0.5, math.nan], VP())
    # a degenerate Gaussian: these divided by v_k(0) = 0 and returned NaN or inf
    flat = Gaussian.low_rank(torch.zeros(2), torch.tensor([[1.0], [0.0]]))
    with pytest.raises(ValueError, match="t_from must be > 0.0 here"):
        flat.flow(x, 0.0, 0.5, VP())
    assert torch.isfinite(flat.flow(x, 0.5, 0.0, VP())).all()  # to t = 0: onto the subspace
    with pytest.raises(ValueError, match="t must be > 0.0 here"):
        flat.signal_fraction(0.0, VP())
    with pytest.raises(ValueError, match="t must be > 0.0 here"):
        flat.pf_ode_divergence(0.0, VP())


# --- how a perturbation travels along the exact flow (lesson 02, "perturb early, perturb late") ---
def _gauss4():
    A = torch.tensor([[1.0, 0.3, -0.5, 0.2], [0.2, 0.8, 0.1, 0.0], [-0.4, 0.6, 1.2, 0.3], [0.1, 0.0, 0.2, 0.5]],
                     dtype=torch.float64)
    return Gaussian(torch.tensor([1.0, -2.0, 0.5, 0.0]), A @ A.T + 0.02 * torch.eye(4, dtype=torch.float64))


@pytest.mark.parametrize("p", [VP(), EDM()], ids=["VP", "EDM"])
def test_flow_gains_are_the_eigenvalues_of_the_flows_jacobian(p):
    g = _gauss4()
    t0, t1 = 0.6 * p.t_max, 0.05 * p.t_max
    x = torch.randn(1, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda y: g.flow(y[None], t0, t1, p)[0], x[0])
    U, gains = g.eigvecs, g.flow_gains(t0, t1, p)
    torch.testing.assert_close(J, U @ torch.diag(gains) @ U.T, rtol=1e-10, atol=1e-12)
    # the flow is affine: a perturbation's effect does not depend on where it is applied
    delta = 0.3 * torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for y in (x, 5 * x):
        torch.testing.assert_close(g.flow(y + delta, t0, t1, p) - g.flow(y, t0, t1, p), delta @ J.T,
                                   rtol=1e-9, atol=1e-11)


def test_thin_form_gains_include_the_complement():
    F = torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.0, 0.3], [0.2, 0.1]], dtype=torch.float64)
    g, p = Gaussian.low_rank(torch.zeros(4), F, noise=0.05), VP()
    x = torch.randn(1, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda y: g.flow(y[None], 0.7, 0.02, p)[0], x[0])
    ev_J = torch.linalg.eigvalsh(0.5 * (J + J.T))
    gains, g_iso = g._gains(0.7, 0.02, p)
    want = torch.sort(torch.cat([gains, g_iso.expand(2)])).values
    torch.testing.assert_close(ev_J, want, rtol=1e-9, atol=1e-12)
    assert g.flow_gains(0.7, 0.02, p).shape == (2,)


def test_leading_share_projects_on_the_largest_eigenvalues():
    g = Gaussian(torch.zeros(4), torch.tensor([0.1, 3.0, 1.0, 0.5]))  # diagonal: leading coords 1, 2
    v = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(g.leading_share(v, 2), torch.tensor([13 / 30, 1.0], dtype=torch.float64))
    torch.testing.assert_close(g.leading_share(v, 4), torch.ones(2, dtype=torch.float64))
    # an isotropic v has share k / D on average
    z = torch.randn(20000, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(float(g.leading_share(z, 1).mean()) - 0.25) < 0.01
    with pytest.raises(ValueError, match="k"):
        g.leading_share(v, 5)
    with pytest.raises(TypeError, match="k"):
        g.leading_share(v, 1.5)
    with pytest.raises(ValueError, match="zero row"):
        g.leading_share(torch.zeros(1, 4, dtype=torch.float64), 1)
    with pytest.raises(ValueError, match="v"):
        g.leading_share(torch.ones(2, 3), 1)


@pytest.mark.parametrize("p", [VP(), VE()], ids=["VP", "VE"])
def test_perturbation_share_against_perturbations_carried_by_the_flow(p):
    """Monte Carlo: isotropic perturbations at t_from, flowed to t_to; the share of the summed
    squared change in the k leading directions agrees with the closed form within 4 standard errors
    (a ratio of means, its error by the delta method)."""
    g = _gauss4()
    gen = torch.Generator().manual_seed(5)
    for t_from in (0.7 * p.t_max, 0.02 * p.t_max):
        t_to = 0.005 * p.t_max
        x = g.sample_marginal(1, t_from, p, generator=gen, dtype=torch.float64)
        delta = 1e-2 * torch.randn(20000, 4, generator=gen, dtype=torch.float64)
        change = g.flow(x + delta, t_from, t_to, p) - g.flow(x.expand(20000, 4), t_from, t_to, p)
        Uk, _ = g._leading(2)
        top, tot = ((change @ Uk) ** 2).sum(1), (change**2).sum(1)
        r = float(top.mean() / tot.mean())
        se = float((top - r * tot).std() / tot.mean()) / math.sqrt(20000)
        want = float(g.perturbation_share(t_from, t_to, p, 2))
        assert abs(r - want) < 4 * se + 1e-12, (t_from, r, want, se)
    # early perturbations act on the leading directions far more than late ones
    assert g.perturbation_share(0.7 * p.t_max, 0.005 * p.t_max, p, 1) > g.perturbation_share(
        0.02 * p.t_max, 0.005 * p.t_max, p, 1)
    with pytest.raises(ValueError, match="t_from"):
        g.perturbation_share(torch.tensor([0.5, 0.6]), 0.1, p, 1)
    with pytest.raises(ValueError, match="single times"):
        g.flow_gains(0.5 * p.t_max, torch.tensor([0.1]), p)


def test_perturbation_share_of_a_point_mass_at_t_zero_is_refused():
    """A law of zero covariance (a low-rank factor of zeros, no noise) carried to t_to = 0: every
    gain is 0, the share 0/0 (NaN, found by the property tests' explore profile). A ValueError
    says why; at t_to > 0 every direction keeps the same gain and the share is k / D."""
    g = Gaussian.low_rank(torch.zeros(3), torch.zeros(3, 1), 0.0)
    with pytest.raises(ValueError, match="zero covariance"):
        g.perturbation_share(1.0, 0.0, VP(), 1)
    assert float(g.perturbation_share(1.0, 0.1, VP(), 1)) == pytest.approx(1 / 3)


def test_perturbation_share_from_t_zero_for_a_full_covariance():
    """Issue 21 (property tests): a full-rank Gaussian has no complement, but its complement gain 0/0 entered
    the total as 0 * NaN, so perturbation_share(t_from = 0) was NaN."""
    g = Gaussian(torch.zeros(2), torch.diag(torch.tensor([4.0, 1.0])))
    share = g.perturbation_share(0.0, 0.5, VP(), 1)
    gains = g.flow_gains(0.0, 0.5, VP())
    lead = int(g.eigvals.argmax())
    assert torch.isfinite(share) and float(share) == pytest.approx(float(gains[lead] ** 2 / (gains**2).sum()))
