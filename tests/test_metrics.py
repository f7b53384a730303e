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


# --- MMD and moments ------------------------------------------------------------------------------
def _gauss_kernel_mean(ma, va, mb, vb, h):
    """E k(X, Y) for X ~ N(ma, va I), Y ~ N(mb, vb I) in D dims, k = exp(-|x-y|^2 / (2 h^2)):
    the Gaussian integral det(I + (va + vb)/h^2 I)^(-1/2) exp(-|ma - mb|^2 / (2 (h^2 + va + vb)))."""
    D = ma.numel()
    s = h * h + va + vb
    return (h * h / s) ** (D / 2) * math.exp(-float(((ma - mb) ** 2).sum()) / (2 * s))


def test_mmd2_is_unbiased_for_the_closed_form_between_gaussians():
    from diffedu.metrics import mmd2

    D, h = 5, 2.0
    ma, mb = torch.zeros(D, dtype=torch.float64), torch.full((D,), 0.4, dtype=torch.float64)
    va, vb = 1.0, 1.5
    exact = (_gauss_kernel_mean(ma, va, ma, va, h) + _gauss_kernel_mean(mb, vb, mb, vb, h)
             - 2 * _gauss_kernel_mean(ma, va, mb, vb, h))
    g = torch.Generator().manual_seed(0)
    est = torch.tensor([mmd2(ma + va**0.5 * torch.randn(60, D, generator=g, dtype=torch.float64),
                             mb + vb**0.5 * torch.randn(80, D, generator=g, dtype=torch.float64), bandwidth=h)
                        for _ in range(400)])
    se = float(est.std()) / math.sqrt(len(est))
    assert abs(float(est.mean()) - exact) < 4 * se, (float(est.mean()), exact, se)
    same = torch.tensor([mmd2(torch.randn(60, D, generator=g, dtype=torch.float64),
                              torch.randn(80, D, generator=g, dtype=torch.float64), bandwidth=h) for _ in range(400)])
    assert abs(float(same.mean())) < 4 * float(same.std()) / math.sqrt(400)


def test_mmd2_matches_a_double_loop_and_moment_errors():
    from diffedu.metrics import median_bandwidth, mmd2, moment_errors

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64) + 1
    h = median_bandwidth(x, y)
    k = lambda a, b: math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h))  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / 42
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(5)) / 35
    assert mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    z = torch.cat([x, y])
    dists = [float((z[i] - z[j]).norm()) for i in range(12) for j in range(i + 1, 12)]
    assert h == pytest.approx(float(torch.tensor(dists, dtype=torch.float64).median()), rel=1e-12)
    em, ec = moment_errors(x, torch.zeros(3), torch.eye(3))
    assert em == pytest.approx(float(x.mean(0).norm()) / math.sqrt(3))
    assert ec == pytest.approx(float((torch.cov(x.T) - torch.eye(3, dtype=torch.float64)).norm()) / math.sqrt(3))
    with pytest.raises(ValueError, match="at least 2 rows"):
        mmd2(x[:1], y)
    with pytest.raises(ValueError, match="mean must be"):
        moment_errors(x, torch.zeros(2), torch.eye(3))


def test_sample_metrics_check_their_arguments():
    """Issue 21 (property tests): a string x gave torch's "invalid data type"; one row gave a NaN bandwidth or a
    NaN covariance; NaN or non-PSD true moments gave numbers; a string bandwidth was read by float(); a
    string exact distribution an AttributeError; repeats=0 an empty floor."""
    from diffedu.metrics import median_bandwidth, mmd2, moment_errors
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="x must be a .* array of numbers; got str"):
        w2("abc", x)
    with pytest.raises(ValueError, match="need at least 2 rows in all"):
        median_bandwidth(x[:1])
    with pytest.raises(ValueError, match="x needs at least 2 rows"):
        moment_errors(x[:1], [0.0, 0.0], torch.eye(2))
    with pytest.raises(ValueError, match="mean must be finite"):
        moment_errors(x, [0.0, math.nan], torch.eye(2))
    with pytest.raises(ValueError, match="cov must be positive semi-definite"):
        moment_errors(x, [0.0, 0.0], -torch.eye(2))
    with pytest.raises(TypeError, match="bandwidth must be a real number; got str"):
        mmd2(x, x, bandwidth="0.5")
    G = Gaussian([0.0], [1.0])
    with pytest.raises(TypeError, match="exact must be a diffedu distribution"):
        relative_score_error(G.bind(VP()).score, "G", VP(), [0.5])
    with pytest.raises(ValueError, match="repeats must be an integer >= 1"):
        w2_noise_floor(G.sample, 3, repeats=0)


def test_paired_log_ratio_and_mean_gap():
    from diffedu.metrics import mean_gap, paired_log_ratio

    a, b = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([2.0, 2.0, 2.0])
    d = torch.log(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))
    r, se = paired_log_ratio(a, b)
    assert r == pytest.approx(1.0) and se == pytest.approx(float(d.std()) / math.sqrt(3))
    # seeded Monte Carlo: a = 0.5 b with independent log-normal noise; the shared spread of b cancels
    g = torch.Generator().manual_seed(0)
    b = torch.exp(2 * torch.randn(4000, generator=g, dtype=torch.float64))
    a = 0.5 * b * torch.exp(0.3 * torch.randn(4000, generator=g, dtype=torch.float64))
    r, se = paired_log_ratio(a, b)
    assert abs(math.log(r) - math.log(0.5)) < 4 * se and se == pytest.approx(0.3 / math.sqrt(4000), rel=0.05)
    # Welch's statistic by hand, and its null distribution ~ N(0, 1)
    x, y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 0.0, 1.0, 1.0])
    assert mean_gap(x, y) == pytest.approx((2.0 - 0.5) / math.sqrt(1.0 / 3 + (1 / 3) / 4))
    gaps = torch.tensor([mean_gap(torch.randn(50, generator=g), torch.randn(80, generator=g)) for _ in range(400)])
    assert abs(float(gaps.mean())) < 0.2 and abs(float(gaps.std()) - 1) < 0.15
    with pytest.raises(ValueError, match="positive"):
        paired_log_ratio(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="pair up"):
        paired_log_ratio(torch.ones(3), torch.ones(4))
    with pytest.raises(TypeError, match="a must be"):
        paired_log_ratio([1.0, 2.0], torch.ones(2))
    with pytest.raises(ValueError, match="at least 2"):
        mean_gap(torch.ones(1), torch.ones(3))
    with pytest.raises(ValueError, match="constant"):
        mean_gap(torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="finite"):
        mean_gap(torch.tensor([1.0, math.nan]), torch.ones(3))

