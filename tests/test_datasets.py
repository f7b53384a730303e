"""diffedu.datasets: mixtures have the stated moments; samplers are seeded, shaped, in range."""

import math

import pytest
import torch

from diffedu import VP
from diffedu import datasets as ds


def test_ring_geometry_and_exact_score():
    mix = ds.ring(8, radius=2.0, std=0.1)
    assert mix.K == 8
    torch.testing.assert_close(mix.means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(mix.log_prob(x, 0.2, VP()).sum(), x)
    torch.testing.assert_close(mix.score(x.detach(), 0.2, VP()), g)


def test_grid_mixture_mean_and_cov():
    mix = ds.grid_mixture(3, spacing=1.0, std=0.1)
    torch.testing.assert_close(mix.mean, torch.zeros(2, dtype=torch.float64))
    var = 2 / 3 + 0.01  # uniform on {-1, 0, 1} has variance 2/3
    torch.testing.assert_close(mix.cov, var * torch.eye(2, dtype=torch.float64))


@pytest.mark.parametrize("name", sorted(ds.SAMPLERS))
def test_samplers_seeded_and_shaped(name):
    f = ds.sampler(name)
    a = f(500, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    b = f(500, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert a.shape == (500, 2) and a.dtype == torch.float64
    assert torch.equal(a, b)
    assert 0.2 < float(a.std(0).min()) and float(a.abs().max()) < 5


def test_checkerboard_only_black_squares():
    x = ds.checkerboard(2000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ij = torch.floor((x + 2) / 1.0).long()
    assert ((ij.sum(1) % 2) == 0).all()
    assert float(x.min()) >= -2 and float(x.max()) <= 2


def test_two_moons_on_circles():
    x = ds.two_moons(1000, noise=0.0, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = x / 2 + torch.tensor([0.5, 0.25], dtype=torch.float64)
    d_up = (p.norm(dim=1) - 1).abs()
    d_lo = ((p - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1) - 1).abs()
    assert float(torch.minimum(d_up, d_lo).max()) < 1e-12


def test_swiss_roll_radius_is_angle():
    x = ds.swiss_roll(300, noise=0.0, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = x.norm(dim=1) * 5
    assert float(r.min()) >= 1.5 * math.pi - 1e-9 and float(r.max()) <= 4.5 * math.pi + 1e-9


def test_bad_input():
    with pytest.raises(ValueError, match="name"):
        ds.sampler("spiral")
    with pytest.raises(ValueError, match="std"):
        ds.ring(std=0)
    with pytest.raises(ValueError, match="n must"):
        ds.two_moons(-1)


# --- the digits and subspace Gaussians --------------------------------------------------------
def test_digits_shape_range_and_counts():
    d = ds.load_digits()
    assert d.images.shape == (1797, 64) and d.images.dtype == torch.float32
    assert float(d.images.min()) == 0.0 and float(d.images.max()) == 1.0
    counts = torch.bincount(d.labels, minlength=10)
    assert counts.sum() == 1797 and int(counts.min()) == 174 and int(counts.max()) == 183
    assert round(float(ds.load_digits(dtype=torch.float64).images.sum() * 16)) == 561718  # data/README.md


def test_digits_bad_input():
    with pytest.raises(TypeError, match="dtype"):
        ds.load_digits(dtype=torch.int64)


def test_digits_reexported():
    import diffedu
    assert diffedu.load_digits is ds.load_digits


def test_subspace_gaussian_lives_on_a_k_dimensional_subspace():
    g = ds.subspace_gaussian(10, 3, seed=1, scale=2.0)
    ev = torch.linalg.eigvalsh(g.cov)
    assert (ev[:7].abs() < 1e-12).all() and (ev[7:] > 0.9).all()
    torch.testing.assert_close(ev[7:].sort().values, (2.0 * torch.linspace(1.0, 0.5, 3, dtype=torch.float64)).sort().values ** 2)
    with pytest.raises(ValueError, match="k must be at most D"):
        ds.subspace_gaussian(3, 4)
    with pytest.raises(TypeError, match="D must be an integer"):
        ds.subspace_gaussian(3.0, 2)


@pytest.mark.parametrize("squares", [2, 4, 5])
def test_checkerboard_is_uniform_over_its_black_squares(squares):
    """Every black square gets n / (number of black squares) points, up to a chi-square test."""
    from scipy.stats import chisquare

    n = 40_000
    x = ds.checkerboard(n, squares=squares, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ij = ((x + 2.0) / (4.0 / squares)).floor().long()
    assert ((ij[:, 0] + ij[:, 1]) % 2 == 0).all()
    counts = torch.bincount(ij[:, 0] * squares + ij[:, 1], minlength=squares * squares)
    black = [i * squares + j for i in range(squares) for j in range(squares) if (i + j) % 2 == 0]
    assert chisquare(counts[black].numpy()).pvalue > 1e-3
    with pytest.raises(ValueError, match="squares must be an integer <= 1000000"):
        ds.checkerboard(5, squares=10**11)


def test_wrong_types_are_type_errors():
    """Issue 21 (property tests): a bool or a numeric string was a ValueError (or an IndexError from
    torch for the noise); a NaN noise gave NaN samples."""
    with pytest.raises(TypeError, match="k must be an integer; got bool"):
        ds.ring(k=True)
    with pytest.raises(TypeError, match="std must be a real number; got str"):
        ds.grid_mixture(std="0.5")
    with pytest.raises(TypeError, match="half_width must be a real number"):
        ds.checkerboard(5, half_width="2")
    for f in (ds.two_moons, ds.swiss_roll):
        with pytest.raises(TypeError, match="noise must be a real number; got str"):
            f(5, noise="0.5")
        with pytest.raises(ValueError, match="noise must be a finite number"):
            f(5, noise=math.nan)
    with pytest.raises(TypeError, match="scale must be a real number"):
        ds.subspace_gaussian(3, 1, scale="1")
    with pytest.raises(ValueError, match="scale must be > 0"):
        ds.subspace_gaussian(3, 1, scale=0.0)


def test_random_mixture_is_seeded_and_well_posed():
    from diffedu.datasets import random_mixture

    m = random_mixture()
    assert m.K == 8 and m.dim == 64
    assert torch.equal(m.means, random_mixture(seed=0).means) and not torch.equal(m.means, random_mixture(seed=1).means)
    ev = torch.linalg.eigvalsh(m.covs)
    assert float(ev.min()) >= 0.02 - 1e-12          # 0.3 A A^T + 0.02 I
    small = random_mixture(3, 5, seed=2)
    x = small.sample(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float((x.mean(0) - small.mean).abs().max()) < 0.05
    with pytest.raises(ValueError, match="K"):
        random_mixture(0)
    with pytest.raises(TypeError, match="seed"):
        random_mixture(seed=1.5)
