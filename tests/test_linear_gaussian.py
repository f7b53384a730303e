"""diffedu.linear_gaussian: the exact moment recursion of linear stochastic samplers on Gaussian
data, against Monte Carlo runs of the samplers themselves and against the exact marginal."""

import math

import numpy as np
import pytest
import torch

import diffedu as de
from diffedu import linear_gaussian as lg
from diffedu import samplers as S

F64 = torch.float64
PAIRS = [(lg.euler_maruyama_moments, S.euler_maruyama), (lg.ddpm_ancestral_moments, S.ddpm_ancestral)]


def gaussian3():
    A = torch.tensor([[1.0, 0.3, -0.5], [0.2, 0.8, 0.1], [-0.4, 0.6, 1.2]], dtype=F64)
    return de.Gaussian(torch.tensor([1.0, -2.0, 0.5], dtype=F64), A @ A.T / 3 + 0.05 * torch.eye(3, dtype=F64))


@pytest.mark.parametrize("process", [de.VP(), de.EDM()], ids=["VP", "EDM"])
def test_denoiser_gain_is_the_denoisers_slope(process):
    g = gaussian3()
    t = 0.3 * process.t_max
    K = lg.denoiser_gain(g, t, process)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    a = float(process.alpha(t))
    torch.testing.assert_close(g.denoiser(x, t, process), g.mean + (x - a * g.mean) @ K.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn, sampler", PAIRS, ids=["euler_maruyama", "ddpm_ancestral"])
@pytest.mark.parametrize("jump", [False, True], ids=["to_t_eps", "final_jump"])
def test_moments_match_monte_carlo_of_the_sampler(fn, sampler, jump):
    """200,000 runs of the library's sampler from the exact p_T, 8 steps: mean and covariance
    within 5 standard errors of the recursion's (the coefficients are written independently)."""
    p, g = de.VP(), gaussian3()
    ts = de.time_grid(p, 9 if jump else 10)
    ts = ts if jump else ts[:-1]
    m, P = fn(g, p, ts)
    gen = torch.Generator().manual_seed(3)
    n = 200_000
    x = g.sample_marginal(n, p.t_max, p, generator=gen, dtype=F64)
    y = sampler(g.bind(p).denoiser, p, x, ts, generator=gen)
    se_m = (torch.diagonal(P) / n).sqrt()
    assert ((y.mean(0) - m).abs() < 5 * se_m).all(), (y.mean(0), m)
    se_P = ((torch.outer(torch.diagonal(P), torch.diagonal(P)) + P**2) / n).sqrt()
    assert ((torch.cov(y.T) - P).abs() < 5 * se_P).all(), (torch.cov(y.T), P)


@pytest.mark.parametrize("fn", [lg.euler_maruyama_moments, lg.ddpm_ancestral_moments],
                         ids=["euler_maruyama", "ddpm_ancestral"])
@pytest.mark.parametrize("process", [de.VP(), de.VE(), de.EDM()], ids=["VP", "VE", "EDM"])
def test_weak_error_falls_like_one_over_n_to_the_exact_marginal(fn, process):
    g = gaussian3()
    ns, errs = (200, 400, 800), []
    for n in ns:
        ts = de.time_grid(process, n + 1)[:-1]          # n steps to t_eps, no jump
        m, P = fn(g, process, ts)
        te = float(ts[-1])
        errs.append(float(torch.linalg.matrix_norm(P - g.marginal_cov(te, process))
                          + (m - process.alpha(te) * g.mean).norm()))
    order = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert abs(order - 1) < 0.15, (order, errs)
    assert errs[-1] < 0.05


def test_exact_start_stays_exact_in_the_limit_and_a_given_start_is_used():
    g, p = gaussian3(), de.VP()
    ts = de.time_grid(p, 4001)[:-1]
    m, P = lg.euler_maruyama_moments(g, p, ts)
    te = float(ts[-1])
    torch.testing.assert_close(P, g.marginal_cov(te, p), rtol=0, atol=5e-3)
    # a start N(0, sigma_T^2 I) (what one samples in practice) differs a little at T: the law at the
    # end differs from the exact-start one by about alpha_T^2 times the data's spread
    m0, P0 = lg.euler_maruyama_moments(g, p, ts[:50], mean=torch.zeros(3), cov=torch.eye(3))
    m1, P1 = lg.euler_maruyama_moments(g, p, ts[:50])
    assert 0 < float((m0 - m1).norm()) < 0.05
    # with no step at all taken in effect (a short grid), the start is returned
    m2, P2 = lg.euler_maruyama_moments(g, p, torch.tensor([p.t_max, p.t_max - 1e-12], dtype=F64),
                                       mean=torch.ones(3), cov=2 * torch.eye(3))
    torch.testing.assert_close(m2, torch.ones(3, dtype=F64), rtol=0, atol=1e-9)
    torch.testing.assert_close(P2, 2 * torch.eye(3, dtype=F64), rtol=0, atol=1e-9)


def test_final_jump_is_the_denoiser_pushforward():
    g, p = gaussian3(), de.VP()
    ts = de.time_grid(p, 6)
    m, P = lg.euler_maruyama_moments(g, p, ts)
    m5, P5 = lg.euler_maruyama_moments(g, p, ts[:-1])
    K = lg.denoiser_gain(g, float(ts[-2]), p)
    torch.testing.assert_close(m, g.denoiser(m5[None], float(ts[-2]), p)[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(P, K @ P5 @ K.T, rtol=1e-12, atol=1e-12)


def test_bad_input():
    g, p = gaussian3(), de.VP()
    ts = de.time_grid(p, 5)
    with pytest.raises(TypeError, match="Gaussian"):
        lg.euler_maruyama_moments(de.GaussianMixture([1.0], [[0.0]], [[1.0]]), p, ts)
    with pytest.raises(TypeError, match="process"):
        lg.euler_maruyama_moments(g, "VP", ts)
    with pytest.raises(ValueError, match="decreasing"):
        lg.euler_maruyama_moments(g, p, ts.flip(0))
    with pytest.raises(ValueError, match="shape"):
        lg.euler_maruyama_moments(g, p, ts[:1])
    with pytest.raises(ValueError, match="decreasing"):
        lg.euler_maruyama_moments(g, p, torch.tensor([1.0, 0.0, 0.0], dtype=F64))
    with pytest.raises(ValueError, match="ts"):
        lg.euler_maruyama_moments(g, p, torch.tensor([2.0, 1.0], dtype=F64))
    with pytest.raises(ValueError, match="cov"):
        lg.ddpm_ancestral_moments(g, p, ts, cov=torch.eye(2))
    with pytest.raises(ValueError, match="symmetric"):
        lg.ddpm_ancestral_moments(g, p, ts, cov=torch.tensor([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match="mean"):
        lg.ddpm_ancestral_moments(g, p, ts, mean=torch.zeros(2))
    with pytest.raises(ValueError, match="sigma_t > 0"):
        lg.denoiser_gain(g, 0.0, p)
    assert math.isfinite(float(lg.denoiser_gain(g, 1e-6, p).sum()))


def test_arguments_are_checked():
    """Issue 21 (property tests): denoiser_gain read t = '0.5' with float(); a negative-definite start cov
    (symmetric) was pushed through the recursion."""
    G, p = de.Gaussian([0.0], [1.0]), de.VP()
    with pytest.raises(TypeError, match="t must be a real number; got str"):
        lg.denoiser_gain(G, "0.5", p)
    with pytest.raises(ValueError, match="cov must be positive semi-definite"):
        lg.euler_maruyama_moments(G, p, de.time_grid(p, 3), mean=[0.0], cov=[[-1.0]])
