"""Tests of diffedu.inverse: each inverse-problem method on a case where its behaviour is known exactly.

* PiGDM with the exact posterior covariance of a Gaussian prior is the exact posterior denoiser
  (and with an N(0, I) prior its published r_t^2 is that covariance); sampled with it, Heun
  reaches the exact posterior's moments.
* DPS's step is the ancestral step plus ``-zeta/|r| grad |r|^2``, checked against the closed-form
  Jacobian of a Gaussian denoiser on the same noise; zeta = 0 is the ancestral sampler.
* RED-diff settles where its expected gradient vanishes: the weighted-precision MAP point of
  :func:`red_diff_fixed_point`, which is not the posterior mean.
* Twisted SMC is exact for the posterior of the chain's own law: on a Gaussian prior with 20
  ancestral steps (a law computed exactly by the moment recursion) its particles land on that
  posterior within Monte Carlo error, measurably away from the true posterior; on a 2-D mixture
  with 400 steps, on the exact posterior's moments and mode weights.
* Calibration: exact draws cover the highest-density regions at their level; mode weights of
  exact draws are the mixture weights.
"""

import itertools
import math

import pytest
import torch

from diffedu import VE, VP, Gaussian, GaussianMixture, ddpm_ancestral, heun, time_grid
from diffedu import inverse as inv

F64 = torch.float64
MIX = GaussianMixture([0.3, 0.2, 0.5], [[-1.5, 0.0], [1.5, 0.5], [0.5, -1.0]],
                      [[[0.4, 0.1], [0.1, 0.3]], [[0.3, 0.0], [0.0, 0.3]], [[0.5, -0.2], [-0.2, 0.4]]])
GAUSS = Gaussian([0.5, -0.3], [[1.0, 0.4], [0.4, 0.5]])
MEAS = inv.Measurement([[1.0, 1.0]], [0.7], 0.3)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _gain(g, t, process):
    """J = dD/dx = alpha S (alpha^2 S + sigma^2 I)^{-1} of a Gaussian denoiser."""
    a, s = float(process.alpha(t)), float(process.sigma(t))
    S = g.cov
    return a * S @ torch.linalg.inv(a * a * S + s * s * torch.eye(g.dim, dtype=F64))


def test_measurement():
    x = torch.randn(5, 2, dtype=F64, generator=_gen(0))
    r = 0.7 - x.sum(1)
    assert torch.allclose(MEAS.log_likelihood(x), -0.5 * r**2 / 0.09 - 0.5 * math.log(2 * math.pi * 0.09))
    m = inv.Measurement.simulate([[1.0, 0.0]], [2.0, 1.0], 0.5, generator=_gen(1))
    assert m.y.shape == (1,) and abs(float(m.y) - 2.0) < 3.0
    post = MEAS.posterior(MIX)
    assert isinstance(post, GaussianMixture)
    with pytest.raises(TypeError, match="prior"):
        MEAS.posterior("prior")
    with pytest.raises(ValueError, match="batch"):
        inv.Measurement([[1.0, 1.0]], [[0.7], [0.2]], 0.3)


@pytest.mark.parametrize("process", [VP(), VE()], ids=["VP", "VE"])
def test_pigdm_with_the_exact_covariance_is_the_exact_posterior_denoiser(process):
    post = MEAS.posterior(GAUSS)

    def cov(t):                                          # Cov[x0 | x_t] = (sigma^2 / alpha) J (Tweedie)
        a, s = float(process.alpha(t)), float(process.sigma(t))
        return (s * s / a) * _gain(GAUSS, t, process)
    Dy = inv.pigdm_denoiser(GAUSS.bind(process).denoiser, process, MEAS, posterior_cov=cov)
    x = 3 * torch.randn(6, 2, dtype=F64, generator=_gen(2))
    for frac in (0.01, 0.1, 0.5, 1.0):
        t = frac * process.t_max
        assert torch.allclose(Dy(x, t), post.denoiser(x, t, process), atol=1e-10), t
    # the published r_t^2 = sigma^2 / (alpha^2 + sigma^2) is that covariance for an N(0, I) prior
    g0 = Gaussian([0.0, 0.0], [1.0, 1.0])
    D0 = inv.pigdm_denoiser(g0.bind(process).denoiser, process, MEAS)
    assert torch.allclose(D0(x, 0.3 * process.t_max), MEAS.posterior(g0).denoiser(x, 0.3 * process.t_max, process),
                          atol=1e-10)
    # ... and not for another prior: then PiGDM is an approximation (at sigma_t = alpha_t, say)
    t1 = float(process.t_of_lam(torch.tensor(0.0, dtype=F64)))
    assert not torch.allclose(inv.pigdm_denoiser(GAUSS.bind(process).denoiser, process, MEAS)(x, t1),
                              post.denoiser(x, t1, process), atol=1e-2)


def test_isotropic_posterior_var_makes_pigdm_exact_for_an_isotropic_prior():
    vp = VP()
    g = Gaussian([0.3, -0.2], [0.1, 0.1])                               # N(m, v I), v = 0.1 (digit-like scale)
    r2 = inv.isotropic_posterior_var(0.1, vp)
    x = torch.randn(5, 2, dtype=F64, generator=_gen(20))
    for t in (0.05, 0.3, 0.8):
        a, s = float(vp.alpha(t)), float(vp.sigma(t))
        assert r2(t) == pytest.approx(float((s * s / a) * _gain(g, t, vp)[0, 0]), rel=1e-12)
        Dy = inv.pigdm_denoiser(g.bind(vp).denoiser, vp, MEAS, posterior_cov=r2)
        assert torch.allclose(Dy(x, t), MEAS.posterior(g).denoiser(x, t, vp), atol=1e-10)
    with pytest.raises(ValueError, match="variance"):
        inv.isotropic_posterior_var(0.0, vp)


def test_pigdm_samples_the_exact_posterior_of_a_gaussian():
    vp = VP()
    post = MEAS.posterior(GAUSS)
    cov = lambda t: (float(vp.sigma(t)) ** 2 / float(vp.alpha(t))) * _gain(GAUSS, t, vp)
    xT = GAUSS.sample_marginal(20000, vp.t_max, vp, generator=_gen(3), dtype=F64)
    xs = inv.pigdm(GAUSS.bind(vp).denoiser, vp, xT, time_grid(vp, 60), MEAS, posterior_cov=cov, sampler=heun)
    se = post.cov.diagonal().sqrt() / math.sqrt(20000)
    assert ((xs.mean(0) - post.mean).abs() < 5 * se).all()
    assert torch.allclose(torch.cov(xs.T), post.cov, atol=0.01)


def test_dps_step_is_the_ancestral_step_plus_the_residual_gradient():
    vp = VP()
    D = GAUSS.bind(vp).denoiser
    x = torch.randn(5, 2, dtype=F64, generator=_gen(4))
    ts = torch.tensor([0.6, 0.4], dtype=F64)
    zeta = 0.7
    got = inv.dps(D, vp, x, ts, MEAS, zeta=zeta, generator=_gen(5))
    base = ddpm_ancestral(D, vp, x, ts, generator=_gen(5))               # the same noise
    A, y = MEAS.A, MEAS.y
    r = y - D(x, 0.6) @ A.T                                              # (B, 1)
    J = _gain(GAUSS, 0.6, vp)
    grad = -2 * (r @ A) @ J                                              # grad_x |y - A D(x)|^2 = -2 J^T A^T r
    expect = base - zeta / r.norm(dim=1, keepdim=True) * grad
    assert torch.allclose(got, expect, atol=1e-12)
    assert torch.allclose(inv.dps(D, vp, x, time_grid(vp, 8), MEAS, zeta=0.0, generator=_gen(6)),
                          ddpm_ancestral(D, vp, x, time_grid(vp, 8), generator=_gen(6)), atol=1e-12)


def test_dps_step_takes_one_time_as_a_number_or_a_one_entry_tensor():
    vp = VP()
    D = GAUSS.bind(vp).denoiser
    x, noise = torch.randn(4, 2, dtype=F64, generator=_gen(11)), torch.randn(4, 2, dtype=F64, generator=_gen(12))
    ref = inv.dps_step(D, vp, x, 0.6, 0.4, MEAS, zeta=0.5, noise=noise)
    got = inv.dps_step(D, vp, x, torch.tensor(0.6, dtype=F64), torch.tensor([0.4], dtype=F64), MEAS, zeta=0.5,
                       noise=noise)
    assert torch.equal(got, ref)
    with pytest.raises(ValueError, match="t must be a single time"):
        inv.dps_step(D, vp, x, torch.tensor([0.6, 0.5]), 0.4, MEAS, zeta=0.5, noise=noise)
    with pytest.raises(TypeError, match="t_next"):
        inv.dps_step(D, vp, x, 0.6, "0.4", MEAS, zeta=0.5, noise=noise)


def test_red_diff_settles_at_its_weighted_precision_map_not_the_posterior_mean():
    vp = VP()
    meas = inv.Measurement([[1.0, 1.0]], [1.5], 1.0)                    # a weak measurement: the prior matters
    ts = time_grid(vp, 50, "uniform")[:-1]
    fixed = inv.red_diff_fixed_point(GAUSS, vp, ts, meas, lam=0.25)
    # the closed form solves A^T (y - A mu) / s^2 = lam mean_t sigma^2 C_t^{-1} (mu - m)
    S, m = GAUSS.cov, GAUSS.mean
    P = 0.25 * sum(float(vp.sigma(t)) ** 2 * torch.linalg.inv(float(vp.alpha(t)) ** 2 * S + float(vp.sigma(t)) ** 2
                                                       * torch.eye(2, dtype=F64)) for t in ts.tolist()) / len(ts)
    assert torch.allclose(meas.A.T @ (meas.y - meas.A @ fixed) / 1.0, P @ (fixed - m), atol=1e-10)
    # RED-diff with times drawn from ts (each of 64 runs averaged over its last iterations)
    order = ts[torch.randint(len(ts), (6000,), generator=_gen(7))]
    path = []
    inv.red_diff(GAUSS.bind(vp).denoiser, vp, torch.zeros(64, 2, dtype=F64), order, meas, lam=0.25, lr=0.01,
                 generator=_gen(8), callback=lambda i, t, mu: path.append(mu.clone()))
    est = torch.stack(path[-2000:]).mean((0, 1))
    assert float((est - fixed).norm()) < 0.02
    assert float((fixed - meas.posterior(GAUSS).mean).norm()) > 0.2     # not the posterior mean


def _ancestral_law(g, process, ts):
    """Exact mean and covariance of the ancestral chain's output on Gaussian data, started from the
    exact marginal at ts[0] (Ho et al. 2020, eqs. 6-7, as the forward posterior q(x_s | x_t, x_0 = D))."""
    ts = ts.tolist()
    a0, s0 = float(process.alpha(ts[0])), float(process.sigma(ts[0]))
    I = torch.eye(g.dim, dtype=F64)
    m, P = a0 * g.mean, a0 * a0 * g.cov + s0 * s0 * I
    for t, s_ in itertools.pairwise(ts):
        K = _gain(g, t, process)
        Dm = g.mean + K @ (m - float(process.alpha(t)) * g.mean)
        if s_ == 0.0:
            return Dm, K @ P @ K.T
        a_t, sg_t, a_s, sg_s = (float(process.alpha(t)), float(process.sigma(t)), float(process.alpha(s_)),
                                float(process.sigma(s_)))
        a_ts = a_t / a_s
        var = sg_t**2 - a_ts**2 * sg_s**2
        A, B, C = a_ts * sg_s**2 / sg_t**2, a_s * var / sg_t**2, math.sqrt(var) * sg_s / sg_t
        J = A * I + B * K
        m, P = A * m + B * Dm, J @ P @ J.T + C * C * I
    return m, P


def test_twisted_smc_is_exact_for_the_posterior_of_its_chain():
    """20 ancestral steps: the chain's own law N(m, P) is off the prior; SMC's particles sit on
    N(m, P) conditioned on y, not on the true posterior."""
    vp = VP()
    ts = time_grid(vp, 20, "uniform")
    m, P = _ancestral_law(GAUSS, vp, ts)
    target = Gaussian(m, P).condition(MEAS.A, MEAS.y, MEAS.noise_std)
    true = MEAS.posterior(GAUSS)
    K = 20000
    xT = GAUSS.sample_marginal(K, vp.t_max, vp, generator=_gen(9), dtype=F64)
    run = inv.twisted_smc(GAUSS.bind(vp).denoiser, vp, xT, ts, MEAS, generator=_gen(10))
    ess = float(run.ess[-1]) * K
    se = target.cov.diagonal().sqrt() / math.sqrt(ess)
    assert ((run.x.mean(0) - target.mean).abs() < 5 * se).all()
    assert torch.allclose(torch.cov(run.x.T), target.cov, atol=0.01)
    assert float((torch.cov(run.x.T) - true.cov).abs().max()) > 0.03  # the chain's error is visible
    assert run.ess.shape == (21,) and ((run.ess > 0) & (run.ess <= 1 + 1e-12)).all()


def test_twisted_smc_with_the_exact_twist_keeps_its_weights_even():
    """With the exact p_t(y | x_t) of a Gaussian prior as the twisting function, only the chain's
    discretisation moves the weights: the effective sample size stays near K."""
    vp = VP()
    cov = lambda t: (float(vp.sigma(t)) ** 2 / float(vp.alpha(t))) * _gain(GAUSS, t, vp)
    xT = GAUSS.sample_marginal(2000, vp.t_max, vp, generator=_gen(11), dtype=F64)
    run = inv.twisted_smc(GAUSS.bind(vp).denoiser, vp, xT, time_grid(vp, 200, "uniform"), MEAS,
                          posterior_cov=cov, generator=_gen(12))
    assert float(run.ess.min()) > 0.9


def test_twisted_smc_on_a_mixture_reaches_the_exact_posterior():
    vp = VP()
    post = MEAS.posterior(MIX)
    K = 3000
    xT = MIX.sample_marginal(K, vp.t_max, vp, generator=_gen(13), dtype=F64)
    run = inv.twisted_smc(MIX.bind(vp).denoiser, vp, xT, time_grid(vp, 400, "uniform"), MEAS, generator=_gen(14))
    ess = float(run.ess[-1]) * K
    assert ess > 500
    se = post.cov.diagonal().sqrt() / math.sqrt(ess)
    assert ((run.x.mean(0) - post.mean).abs() < 5 * se + 0.01).all()   # + the 400-step chain's error
    assert float((inv.mode_weights(post, run.x) - post.weights).abs().max()) < 5 / math.sqrt(ess) + 0.01


def test_exact_draws_are_calibrated_and_narrow_ones_are_not():
    post = MEAS.posterior(MIX)
    x = post.sample(4000, generator=_gen(15), dtype=F64)
    cov = inv.hpd_coverage(post, x, (0.5, 0.9), n=40000, generator=_gen(16))
    assert torch.allclose(cov, torch.tensor([0.5, 0.9], dtype=F64), atol=4 * math.sqrt(0.25 / 4000) + 0.005)
    u = inv.credible_level(post, x, n=40000, generator=_gen(16))
    assert ((u >= 0) & (u <= 1)).all()
    narrow = post.means[None, 2] + 0.3 * (x - post.means[None, 2])   # squeezed towards a mode
    assert float(inv.hpd_coverage(post, narrow, 0.5, n=40000, generator=_gen(16))) > 0.7
    w = inv.mode_weights(post, x)
    assert torch.allclose(w, post.weights, atol=4 * math.sqrt(0.25 / 4000))


def test_bad_inputs():
    vp = VP()
    D = MIX.bind(vp).denoiser
    x = torch.randn(4, 2, dtype=F64)
    ts = time_grid(vp, 4)
    with pytest.raises(TypeError, match="meas"):
        inv.dps(D, vp, x, ts, "meas")
    with pytest.raises(ValueError, match="meas measures"):
        inv.dps(D, vp, torch.randn(4, 3, dtype=F64), ts, MEAS)
    with pytest.raises(ValueError, match="zeta"):
        inv.dps(D, vp, x, ts, MEAS, zeta=-1.0)
    with pytest.raises(ValueError, match="ts must be"):
        inv.red_diff(D, vp, x, ts, MEAS)                               # ts holds 0
    with pytest.raises(ValueError, match="resample_ess"):
        inv.twisted_smc(D, vp, x, ts, MEAS, resample_ess=2.0)
    with pytest.raises(TypeError, match="prior"):
        inv.red_diff_fixed_point(MIX, vp, ts[:-1], MEAS)
    with pytest.raises(ValueError, match="levels"):
        inv.hpd_coverage(MIX, x, (0.5, 1.5))
    with pytest.raises(TypeError, match="dist"):
        inv.credible_level("post", x)
    with pytest.raises(ValueError, match="noise_std"):
        inv.Measurement([[1.0, 0.0]], [0.0], 0.0)


def test_arguments_are_checked():
    """Issue 21 (property tests): lam = 0 with A of rank < D gave torch's LinAlgError; betas=0.9 "'float' object is
    not iterable"; a (B, D + 1) denoiser failed in a matrix product (PiGDM) or broadcast (RED-diff); pigdm with a
    measurement of the wrong dimension named x; Measurement.tensors read x.dtype of a list; twisted_smc with no
    particles divided by zero."""
    p = VP()
    G = Gaussian(torch.zeros(2), torch.eye(2))
    meas = inv.Measurement([[1.0, 0.0]], [0.5], 0.1)
    x = torch.zeros(3, 2, dtype=torch.float64)
    wide = lambda z, t: torch.cat([z, z], 1)  # noqa: E731
    with pytest.raises(ValueError, match="lam = 0 leaves the fixed-point equations singular"):
        inv.red_diff_fixed_point(G, p, [0.5], meas, lam=0.0)
    with pytest.raises(TypeError, match="betas must be a pair"):
        inv.red_diff(G.bind(p).denoiser, p, x, [0.5], meas, betas=0.9)
    with pytest.raises(ValueError, match="D must return a tensor of x's shape"):
        inv.red_diff(wide, p, x, [0.5], meas)
    with pytest.raises(ValueError, match="D must return a tensor of x's shape"):
        inv.pigdm_denoiser(wide, p, meas)(x, 0.5)
    with pytest.raises(ValueError, match="meas measures 2-D points but x is 1-D"):
        inv.pigdm(G.bind(p).denoiser, p, torch.zeros(3, 1), time_grid(p, 3), meas)
    with pytest.raises(TypeError, match="x must be a floating torch.Tensor"):
        meas.tensors([[0.0, 0.0]])
    with pytest.raises(ValueError, match="x must hold at least one particle"):
        inv.twisted_smc(G.bind(p).denoiser, p, x[:0], time_grid(p, 3), meas)


def test_credible_levels_refuse_a_law_without_a_density():
    """A singular law (a low-rank Gaussian without noise, an empirical law) has no log-density at
    t = 0 to rank draws by: a ValueError says so, instead of the process's t > 0 error."""
    from diffedu import gaussian, inverse, mixtures

    x = torch.zeros(3, 2, dtype=torch.float64)
    for d in (gaussian.Gaussian.low_rank(torch.zeros(2), torch.ones(2, 1), 0.0), mixtures.Empirical(torch.ones(4, 2))):
        for fn in (inverse.credible_level, inverse.hpd_coverage):
            with pytest.raises(ValueError, match="density at t = 0"):
                fn(d, x, n=100)
    u = inverse.credible_level(gaussian.Gaussian.low_rank(torch.zeros(2), torch.ones(2, 1), 0.5), x, n=100,
                               generator=torch.Generator().manual_seed(0))
    assert torch.equal(u, torch.zeros(3, dtype=torch.float64))  # the mode: no draw is denser
