"""diffedu.score_matching: Tweedie's posterior covariance against closed forms, and DSM - ESM the
same constant for every model, equal to the exact score's DSM loss (the floor)."""

import math

import pytest
import torch

from diffedu import EDM, VP, Gaussian, GaussianMixture
from diffedu.score_matching import (dsm_constant, dsm_floor, dsm_terms, esm_terms, posterior_cov_trace,
                                     score_matching_gap)

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _gauss_post_trace(cov, a, s):
    """tr(C - a^2 C (a^2 C + s^2 I)^{-1} C): the posterior covariance of x_0 given x_t, Gaussian prior."""
    I = torch.eye(cov.shape[0], dtype=F64)
    return float(torch.trace(cov - a * a * cov @ torch.linalg.solve(a * a * cov + s * s * I, cov)))


@pytest.mark.parametrize("process, t", [(VP(), 0.3), (EDM(), 0.7)])
def test_posterior_trace_of_a_gaussian_is_the_closed_form(process, t):
    g = Gaussian([0.5, -1.0, 0.2], [[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.8]])
    x = g.sample_marginal(5, t, process, generator=gen(), dtype=F64)
    a, s = float(process.alpha(t)), float(process.sigma(t))
    got = posterior_cov_trace(g.bind(process).score, process, x, t)
    torch.testing.assert_close(got, torch.full((5,), _gauss_post_trace(g.cov, a, s), dtype=F64))


def test_posterior_trace_of_a_mixture_is_the_law_of_total_covariance():
    """For a mixture, tr Cov[x0 | xt] = sum_k r_k (tr S_k + |m_k|^2) - |sum_k r_k m_k|^2 with each
    component's Gaussian posterior (m_k, S_k): computed here component by component."""
    p, t = VP(), 0.25
    mix = GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]],
                          [[[0.3, 0.15], [0.15, 0.2]], [[0.1, 0.0], [0.0, 0.4]]])
    x = mix.sample_marginal(6, t, p, generator=gen(1), dtype=F64)
    a, s = float(p.alpha(t)), float(p.sigma(t))
    r = mix.responsibilities(x, t, p)
    comps = [Gaussian(mix.means[k], mix.covs[k]) for k in range(2)]
    m = torch.stack([c.denoiser(x, t, p) for c in comps], 1)                      # (B, K, D)
    tr_s = torch.tensor([_gauss_post_trace(c.cov, a, s) for c in comps], dtype=F64)
    second = (r * (tr_s + (m**2).sum(-1))).sum(1)
    mean = (r[..., None] * m).sum(1)
    torch.testing.assert_close(posterior_cov_trace(mix.bind(p).score, p, x, t), second - (mean**2).sum(1))


def test_dsm_minus_esm_is_one_constant_for_every_model_and_the_exact_models_floor():
    """Three models, the same draws: their DSM - ESM agree within Monte Carlo error, and equal
    C(t) = D/sigma^2 - E|s|^2 = (alpha^2/sigma^4) E tr Cov[x0|xt]; the exact model's DSM is C(t)."""
    p, t = VP(), 0.2
    mix = GaussianMixture([0.5, 0.5], [[-1.5, 0.0], [1.5, 0.3]], [[0.2, 0.1], [0.3, 0.2]])
    exact = mix.bind(p).score
    A = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=F64)
    models = {"exact": exact, "scaled": lambda x, tt: 1.3 * exact(x, tt),
              "rotated": lambda x, tt: exact(x, tt) + 0.5 * x @ A.T}
    gaps = {k: score_matching_gap(m, mix, p, t, n=20000, generator=gen(2)) for k, m in models.items()}
    C, C_se = dsm_constant(mix, p, t, n=20000, generator=gen(3))
    for k, g in gaps.items():
        assert abs(g.gap - C) < 4 * math.hypot(g.gap_se, C_se), (k, g, C, C_se)
    assert gaps["exact"].esm == 0 and gaps["exact"].dsm == pytest.approx(gaps["exact"].gap)
    assert gaps["scaled"].esm > 0.01 and gaps["rotated"].esm > 0.01
    # the other form of the constant: D / sigma^2 - E |s|^2 on fresh draws
    x = mix.sample_marginal(20000, t, p, generator=gen(4), dtype=F64)
    s2 = (exact(x, t) ** 2).sum(1)
    other = 2 / float(p.sigma(t)) ** 2 - float(s2.mean())
    assert abs(other - C) < 4 * math.hypot(float(s2.std()) / math.sqrt(20000), C_se)


def test_the_constant_grows_like_d_over_sigma_squared():
    p = EDM()
    g = Gaussian([0.0, 0.0, 0.0], [1.0, 0.5, 2.0])
    for t in (0.01, 0.003):
        C, _ = dsm_constant(g, p, t, n=200, generator=gen())
        assert C * t**2 / 3 == pytest.approx(1.0, rel=3 * t)   # C ~ D / sigma^2 with a relative O(sigma^2) gap


def test_terms_and_bad_input():
    p = VP()
    g = Gaussian([0.0, 0.0], [1.0, 1.0])
    x0 = torch.zeros(3, 2, dtype=F64)
    eps = torch.ones(3, 2, dtype=F64)
    s = float(p.sigma(0.5))
    torch.testing.assert_close(dsm_terms(lambda x, t: 0 * x, p, x0, 0.5, eps), torch.full((3,), 2 / s**2, dtype=F64))
    torch.testing.assert_close(esm_terms(g.bind(p).score, g.bind(p).score, x0, 0.5), torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="t must be > 0"):
        dsm_terms(g.bind(p).score, p, x0, 0.0, eps)
    with pytest.raises(ValueError, match="eps must have shape"):
        dsm_terms(g.bind(p).score, p, x0, 0.5, torch.ones(3, 3, dtype=F64))
    with pytest.raises(TypeError, match="dist must be a diffedu distribution"):
        dsm_constant("gauss", p, 0.5)
    with pytest.raises(TypeError, match="score must be"):
        posterior_cov_trace(3, p, x0, 0.5)


def test_the_training_floor_is_the_weighted_average_of_the_constant():
    """dsm_floor (the loss of the exact score, drawn as training draws it) equals the average of
    lambda(t) C(t) over t uniform on the training range, computed by quadrature of dsm_constant."""
    import numpy as np

    p = VP()
    g = Gaussian([0.3, -0.2], [1.0, 0.25])
    floor, se = dsm_floor(g, p, weighting="eps", n=40000, generator=gen(5))
    t_lo = float(p.t_of_lam(math.log(100.0)))  # the training range starts where sigma/alpha = 0.01
    nodes, w = np.polynomial.legendre.leggauss(24)
    ts = t_lo + (p.t_max - t_lo) * (nodes + 1) / 2
    vals = [float(p.sigma(float(t))) ** 2 * dsm_constant(g, p, float(t), n=3000, generator=gen(6))[0] for t in ts]
    quad = float(np.dot(w, vals)) / 2
    assert abs(floor - quad) < 4 * se + 0.01 * quad, (floor, quad, se)


def test_fields_are_shape_checked():
    """Issue 21 (property tests): a model returning (B, D + 1) broadcast silently against (B, 1) or failed in
    torch; in posterior_cov_trace the error named calculus's f."""
    G, p = Gaussian([0.0], [1.0]), VP()
    x = torch.zeros(3, 1, dtype=torch.float64)
    wide = lambda z, t: torch.cat([z, z], 1)  # noqa: E731
    s = G.bind(p).score
    with pytest.raises(ValueError, match="score must return a tensor of x's shape"):
        esm_terms(wide, s, x, 0.5)
    with pytest.raises(ValueError, match="exact must return a tensor of x's shape"):
        esm_terms(s, wide, x, 0.5)
    with pytest.raises(ValueError, match="score must return a tensor of x's shape"):
        dsm_terms(wide, p, x, 0.5, torch.zeros_like(x))
    with pytest.raises(ValueError, match="score must return a tensor of x's shape"):
        posterior_cov_trace(wide, p, x, 0.5)
