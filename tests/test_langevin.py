"""diffedu.langevin: the step's stationary law on a Gaussian is the exact AR(1) variance
v / (1 - h / 2v); annealed Langevin with an exact score samples a mixture's moments."""

import math

import pytest
import torch

from diffedu import EDM, VP, Gaussian, GaussianMixture, time_grid
from diffedu.langevin import annealed_langevin, gaussian_stationary_variance, langevin_step

F64 = torch.float64


@pytest.mark.parametrize("h", [0.05, 0.4])
def test_langevin_steps_reach_the_biased_stationary_variance(h):
    """20,000 chains, 400 steps: the sample variance matches v / (1 - h/(2v)) (not v) within its
    Monte Carlo error, so the test sees the discretisation bias at h = 0.4."""
    v, mu = 0.8, 1.5
    g = Gaussian([mu], [v])
    p = EDM()
    score = lambda x, t: g.score(x, 1e-8, p)  # noqa: E731  the data's own score (t ~ 0)
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(20000, 1, dtype=F64)
    for _ in range(400):
        x = langevin_step(score, x, 0.0, h, torch.randn(x.shape, generator=gen, dtype=F64))
    target = gaussian_stationary_variance(v, h)
    se = target * math.sqrt(2 / 20000)
    assert abs(float(x.var()) - target) < 4 * se
    assert abs(float(x.mean()) - mu) < 4 * math.sqrt(target / 20000)
    if h == 0.4:
        assert abs(float(x.var()) - v) > 8 * se   # the bias is visible


def test_annealed_langevin_samples_a_mixture():
    """With enough steps per level the mode weights come out right (too few steps, or too small a
    step, leave the chains near where the previous level put them: lesson 04 shows it)."""
    p = VP()
    mix = GaussianMixture([0.3, 0.7], [[-1.5, 0.0], [1.5, 0.5]], [[0.1, 0.2], [0.2, 0.1]])
    gen = torch.Generator().manual_seed(1)
    x = mix.sample_marginal(4000, p.t_max, p, generator=gen, dtype=F64)
    seen = []
    out = annealed_langevin(mix.bind(p).denoiser, p, x, time_grid(p, 40), n_steps=20, step_scale=0.2,
                            generator=gen, callback=lambda i, t, z: seen.append(i))
    assert seen == list(range(41))
    torch.testing.assert_close(out.mean(0), mix.mean, atol=0.06, rtol=0)
    torch.testing.assert_close(torch.cov(out.T), mix.cov, atol=0.08, rtol=0)
    left = float((out[:, 0] < 0).double().mean())
    assert abs(left - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 4000) + 0.02


def test_bad_input_is_named():
    p = VP()
    D = Gaussian([0.0], [1.0]).bind(p).denoiser
    x = torch.zeros(3, 1, dtype=F64)
    with pytest.raises(ValueError, match="step must be > 0"):
        langevin_step(lambda z, t: z, x, 0.5, 0.0, x)
    with pytest.raises(ValueError, match="noise must have shape"):
        langevin_step(lambda z, t: z, x, 0.5, 0.1, torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="step must be < 2 v"):
        gaussian_stationary_variance(1.0, 2.0)
    with pytest.raises(ValueError, match="strictly decreasing"):
        annealed_langevin(D, p, x, torch.tensor([0.0, 0.5]))
    with pytest.raises(TypeError, match="n_steps must be an integer"):
        annealed_langevin(D, p, x, time_grid(p, 3), n_steps=2.0)
    with pytest.raises(TypeError, match="D must be a denoiser"):
        annealed_langevin(None, p, x, time_grid(p, 3))


def test_fields_are_shape_checked():
    """Issue 21 (property tests): a score or denoiser returning (B, D + 1) broadcast against x (B, 1) silently,
    or failed inside torch; a 2-D grid was flattened."""
    G, p = Gaussian([0.0], [1.0]), VP()
    x = torch.zeros(3, 1, dtype=torch.float64)
    wide = lambda z, t: torch.cat([z, z], 1)  # noqa: E731
    with pytest.raises(ValueError, match="score must return a tensor of x's shape"):
        langevin_step(wide, x, 0.5, 0.01, torch.zeros_like(x))
    with pytest.raises(ValueError, match="D must return a tensor of x's shape"):
        annealed_langevin(wide, p, x, time_grid(p, 3))
    with pytest.raises(ValueError, match="ts must be a non-empty 1-D sequence of times"):
        annealed_langevin(G.bind(p).denoiser, p, x, time_grid(p, 3)[None])
