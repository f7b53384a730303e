"""diffedu.metrics: W2 against closed forms, noise floor, relative score error."""

import math

import pytest
import torch

from diffedu import VP, Gaussian
from diffedu.datasets import ring
from diffedu.metrics import relative_score_error, w2, w2_noise_floor


def test_w2_of_a_shift_is_the_shift():
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shift = torch.tensor([0.3, -0.4], dtype=torch.float64)
    assert w2(x, x + shift) == pytest.approx(0.5, abs=1e-9)  # the identity coupling is optimal
    assert w2(x, x) == pytest.approx(0.0, abs=1e-7)  # sqrt of a round-off-sized cost


def test_w2_one_dimensional_is_sorted_matching():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 1, generator=g, dtype=torch.float64)
    y = torch.rand(300, 1, generator=g, dtype=torch.float64)
    exact = math.sqrt(float(((x.sort(0).values - y.sort(0).values) ** 2).mean()))
    assert w2(x, y) == pytest.approx(exact, rel=1e-9)


def test_noise_floor_positive_and_shrinks():
    s = ring().sample
    small = w2_noise_floor(s, 100, repeats=3, generator=torch.Generator().manual_seed(0))
    big = w2_noise_floor(s, 800, repeats=3, generator=torch.Generator().manual_seed(0))
    assert small.shape == (3,) and (small > 0).all()
    assert float(big.mean()) < float(small.mean())


def test_relative_score_error_zero_for_exact_and_known_for_scaled():
    dist, proc = Gaussian([0.0, 1.0], [[1.0, 0.3], [0.3, 0.5]]), VP()
    e0 = relative_score_error(dist.bind(proc).score, dist, proc, [0.1, 0.5], n=100)
    assert float(e0.max()) < 1e-14
    e1 = relative_score_error(lambda x, t: 1.25 * dist.score(x, t, proc), dist, proc, [0.1, 0.5], n=100)
    torch.testing.assert_close(e1, torch.full((2,), 0.25, dtype=torch.float64))


def test_bad_input():
    with pytest.raises(ValueError, match="y must have shape"):
        w2(torch.randn(5, 2), torch.randn(5, 3))
    dist, proc = Gaussian([0.0, 1.0], [1.0, 1.0]), VP()
    with pytest.raises(ValueError, match="score must return"):
        relative_score_error(lambda x, t: x[:, :1], dist, proc, [0.5], n=10)
