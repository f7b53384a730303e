"""The PF-ODE log-likelihood against the exact log-densities of a Gaussian and a mixture."""

import math

import pytest
import torch
from scipy.integrate import trapezoid  # numpy.trapezoid needs numpy 2; the pyproject allows 1.24

from diffedu import EDM, VP, Gaussian, GaussianMixture
from diffedu.likelihood import log_likelihood

F64 = torch.float64


def test_log_likelihood_gaussian_exact():
    p = VP()
    G = Gaussian(torch.tensor([0.5, -1.0], dtype=F64), torch.tensor([[0.6, 0.2], [0.2, 0.3]], dtype=F64))
    x = G.sample(6, generator=torch.Generator().manual_seed(0), dtype=F64)
    t0 = 1e-3
    prior = lambda z: G.log_prob(z, p.t_max, p)  # noqa: E731
    ll = log_likelihood(G.bind(p).denoiser, p, x, t_start=t0, prior=prior, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ll, G.log_prob(x, t0, p), rtol=0, atol=1e-6)
    # the default prior N(0, I) is nearly exact for VP at t = 1
    ll_default = log_likelihood(G.bind(p).denoiser, p, x, t_start=t0, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ll_default, ll, rtol=0, atol=0.05)


def test_log_likelihood_mixture_exact_and_hutchinson():
    p = EDM()
    M = GaussianMixture([0.3, 0.7], torch.tensor([[-2.0, 0.0], [1.5, 1.0]], dtype=F64),
                        torch.tensor([[0.3, 0.5], [0.4, 0.2]], dtype=F64))
    x = M.sample(4, generator=torch.Generator().manual_seed(1), dtype=F64)
    prior = lambda z: M.log_prob(z, p.t_max, p)  # noqa: E731
    t0 = 0.01
    ll = log_likelihood(M.bind(p).denoiser, p, x, t_start=t0, prior=prior, rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(ll, M.log_prob(x, t0, p), rtol=0, atol=1e-4)
    # Hutchinson: each solve is exact for its fixed probes; the average over seeds is unbiased
    runs = torch.stack([log_likelihood(M.bind(p).denoiser, p, x, t_start=t0, prior=prior, rtol=1e-6,
                                         divergence="hutchinson", n_probes=4,
                                         generator=torch.Generator().manual_seed(k)) for k in range(6)])
    se = runs.std(0) / math.sqrt(runs.shape[0])
    assert ((runs.mean(0) - ll).abs() < 4 * se + 1e-3).all(), (runs.mean(0), ll, se)




def test_bad_inputs_raise_named_errors():
    p = VP()
    G = Gaussian(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    D, x = G.bind(p).denoiser, torch.zeros(3, 2, dtype=F64)
    with pytest.raises(ValueError, match="divergence"):
        log_likelihood(D, p, x, divergence="exactly")
    with pytest.raises(ValueError, match="t_start"):
        log_likelihood(D, p, x, t_start=0.0)
    with pytest.raises(ValueError, match="rtol"):
        log_likelihood(D, p, x, rtol=0.0)
    with pytest.raises(ValueError, match="rtol"):
        log_likelihood(D, p, x, rtol=float("nan"))
    with pytest.raises(TypeError, match="D must be a denoiser"):
        log_likelihood("model", p, x)
    with pytest.raises(ValueError, match="prior must map"):
        log_likelihood(D, p, x, prior=lambda z: z, rtol=1e-3)


def test_arguments_are_checked_before_the_solve():
    """Issue 21 (property tests): t_start '0.5' was read by float(), a non-callable prior and a bad generator
    were found only after the solve (or never, with the exact divergence), a (B, D + 1) denoiser failed
    inside torch."""
    G, p = Gaussian([0.0], [1.0]), VP()
    D, x = G.bind(p).denoiser, torch.zeros(2, 1, dtype=torch.float64)
    with pytest.raises(TypeError, match="t_start must be a real number; got str"):
        log_likelihood(D, p, x, t_start="0.5")
    with pytest.raises(TypeError, match="prior must be a callable"):
        log_likelihood(D, p, x, prior=3)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        log_likelihood(D, p, x, generator=0)
    with pytest.raises(ValueError, match="D must return a tensor of x's shape"):
        log_likelihood(lambda z, t: torch.cat([z, z], 1), p, x)


# --- the same sum along SDE paths, and its exact bias (Ito's formula) ---------------------------
def _closed_form_bias(g, vp, x, t0, n=4000):
    """b(x) for Gaussian data: E[Laplacian p / p] = |C^-1 (mu - m)|^2 + s^2 tr C^-2 - tr C^-1, integrated."""
    import numpy as np

    ts = np.exp(np.linspace(math.log(t0), 0.0, n))
    a0, s0 = float(vp.alpha(t0)), float(vp.sigma(t0))
    vals = []
    for t in ts:
        Ci = torch.linalg.inv(g.marginal_cov(float(t), vp))
        a = float(vp.alpha(float(t))) / a0
        s2 = float(vp.sigma(float(t))) ** 2 - a * a * s0 * s0
        mu = a * x - g.mean * float(vp.alpha(float(t)))
        vals.append(0.5 * float(vp.g2(float(t))) * float(((mu @ Ci) ** 2).sum() + s2 * (Ci @ Ci).trace() - Ci.trace()))
    return float(trapezoid(vals, ts))


def test_sde_path_bias_matches_the_gaussian_closed_form():
    from diffedu.likelihood import sde_path_bias

    vp = VP()
    g = Gaussian([0.3, -0.2], [[0.5, 0.1], [0.1, 0.3]])
    x = torch.tensor([[0.3, -0.2], [1.5, 0.5], [-1.0, 1.0]], dtype=torch.float64)
    b = sde_path_bias(g, vp, x, vp.t_eps)
    for xi, bi in zip(x, b):
        assert float(bi) == pytest.approx(_closed_form_bias(g, vp, xi, vp.t_eps), abs=2e-4)


def test_sde_path_estimate_is_off_by_the_bias_and_unbiased_over_the_data():
    """Monte Carlo along forward-SDE paths against the formula (4 standard errors), for a mixture;
    and the bias averaged over data points is 0."""
    from diffedu.likelihood import sde_path_bias, sde_path_log_likelihood

    vp = VP()
    mix = GaussianMixture([0.4, 0.6], [[-1.0, 0.5], [1.0, -0.3]], [[0.3, 0.2], [0.2, 0.4]])
    t0 = vp.t_eps
    x = torch.tensor([[-1.0, 0.5], [0.0, 0.0]], dtype=torch.float64)
    b = sde_path_bias(mix, vp, x, t0)
    ts = torch.linspace(t0, 1.0, 201, dtype=torch.float64)
    D = mix.bind(vp).denoiser
    for xi, bi in zip(x, b):
        est = sde_path_log_likelihood(D, vp, xi[None].expand(2000, 2).clone(), ts,
                                      prior=lambda z: mix.log_prob(z, 1.0, vp), generator=torch.Generator().manual_seed(0))
        d = est - mix.log_prob(xi[None], t0, vp)
        assert abs(float(d.mean()) - float(bi)) < 4 * float(d.std()) / math.sqrt(2000) + 0.01
    xs = mix.sample(400, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    bs = sde_path_bias(mix, vp, xs, t0, n_time=24, n_hermite=10)
    assert abs(float(bs.mean())) < 4 * float(bs.std()) / math.sqrt(400)
    assert float(bs.std()) > 0.3                                    # per point it is far from 0


def test_sde_path_input_checks():
    from diffedu.likelihood import sde_path_bias, sde_path_log_likelihood

    vp = VP()
    g = Gaussian([0.0, 0.0], [1.0, 1.0])
    x = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="ts"):
        sde_path_log_likelihood(g.bind(vp).denoiser, vp, x, torch.tensor([0.5, 0.2]))
    with pytest.raises(ValueError, match="t_start"):
        sde_path_bias(g, vp, x, 1.5)
    with pytest.raises(ValueError, match="n_hermite"):
        sde_path_bias(Gaussian(torch.zeros(8), torch.ones(8)), vp, torch.zeros(1, 8, dtype=torch.float64), 0.1,
                      n_hermite=16)


def test_sde_path_arguments_are_checked():
    """Issue 21 (property tests): a string grid gave torch's "invalid data type"; a string dist an
    AttributeError; no points a reshape error."""
    from diffedu.likelihood import sde_path_bias, sde_path_log_likelihood
    G, p = Gaussian([0.0], [1.0]), VP()
    x = torch.zeros(2, 1, dtype=torch.float64)
    with pytest.raises(TypeError, match="ts must be a 1-D tensor or sequence of times"):
        sde_path_log_likelihood(G.bind(p).denoiser, p, x, "abc")
    with pytest.raises(TypeError, match="dist must be a diffedu distribution"):
        sde_path_bias("G", p, x, 0.5)
    with pytest.raises(ValueError, match="x must hold at least one point"):
        sde_path_bias(G, p, x[:0], 0.5)


def test_dequantise_and_bits_per_dim():
    """A uniform law on the dequantised cube of L levels costs log2 L bits per dimension; the
    dequantised points stay inside their bins."""
    from diffedu.likelihood import bits_per_dim, dequantise

    k = torch.randint(0, 17, (500, 8), generator=torch.Generator().manual_seed(0)).double() / 16
    y = dequantise(k, 1 / 16, generator=torch.Generator().manual_seed(1))
    assert float((y - k).abs().max()) <= 1 / 32 and float((y - k).abs().max()) > 0.9 / 32
    log_uniform = torch.full((500,), -8 * math.log(17 / 16), dtype=torch.float64)  # density on [-1/32, 1 + 1/32]^8
    assert torch.allclose(bits_per_dim(log_uniform, 8, bin_width=1 / 16), torch.full((500,), math.log2(17),
                                                                                     dtype=torch.float64))
    with pytest.raises(ValueError, match="bin_width"):
        bits_per_dim(log_uniform, 8, bin_width=0.0)


def test_bits_per_dim_checks_log_p():
    """Issue 21 (property tests): a string log_p gave torch's "invalid data type"; NaN gave NaN bits."""
    from diffedu.likelihood import bits_per_dim
    with pytest.raises(TypeError, match="log_p must be a log-density"):
        bits_per_dim("abc", 2)
    with pytest.raises(ValueError, match="log_p must be finite"):
        bits_per_dim(torch.tensor([math.nan]), 2)
