"""diffedu.memorisation: nearest-neighbour distances vs brute force, the 1/3 rule at its
boundary, memorised fractions, the EMM, the sweep's nesting and reproducibility, bad input."""

import numpy as np
import pytest
import torch

from diffedu import Empirical, VP
from diffedu.memorisation import (effective_model_memorisation, empirical_fit_and_sample, is_memorised,
                                  memorisation_sweep, mlp_fit_and_sample,
                                  memorised_fraction, nn_distances, nn_ratio)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_nn_distances_match_brute_force():
    S = torch.randn(37, 5, generator=gen(), dtype=torch.float64)
    T = torch.randn(11, 5, generator=gen(1), dtype=torch.float64)
    d = np.sort(np.linalg.norm(S.numpy()[:, None] - T.numpy()[None], axis=-1), axis=1)[:, :2]
    np.testing.assert_allclose(nn_distances(S, T, chunk=8).numpy(), d, rtol=1e-12)


def test_one_third_rule_boundary():
    train = torch.tensor([[0.0, 0.0], [4.0, 0.0]], dtype=torch.float64)
    x = torch.tensor([[0.0, 0.0], [0.9, 0.0], [1.1, 0.0], [2.0, 0.0]], dtype=torch.float64)
    # ratios 0, 0.9/3.1, 1.1/2.9, 1
    torch.testing.assert_close(nn_ratio(x, train), torch.tensor([0, 0.9 / 3.1, 1.1 / 2.9, 1.0],
                                                                dtype=torch.float64))
    assert is_memorised(x, train).tolist() == [True, True, False, False]
    assert memorised_fraction(x, train) == 0.5
    assert memorised_fraction(x, train, ratio=0.5) == 0.75


def test_empirical_denoiser_at_small_noise_returns_training_points():
    # the memorising optimal denoiser maps a slightly noised training point back onto it
    train = torch.randn(20, 8, generator=gen(), dtype=torch.float64)
    E, P = Empirical(train), VP()
    t = float(P.t_of_lam(np.log(50.0)))
    xt = E.sample_marginal(100, t, P, generator=gen(1), dtype=torch.float64)
    assert memorised_fraction(E.denoiser(xt, t, P), train) == 1.0
    assert memorised_fraction(torch.randn(100, 8, generator=gen(2), dtype=torch.float64), train) < 0.2


def test_emm_and_sweep():
    assert effective_model_memorisation([10, 20, 40, 80], [1.0, 0.95, 0.5, 0.0]) == 20
    assert effective_model_memorisation([10, 20], [0.3, 0.1]) == 0
    data = torch.randn(64, 3, generator=gen(), dtype=torch.float64)
    seen = []

    def copy_small(train, n, generator):  # copies training points when M <= 16, else noise
        seen.append(train)
        if train.shape[0] <= 16:
            return train[torch.randint(train.shape[0], (n,), generator=generator)]
        return torch.randn(n, 3, generator=generator, dtype=torch.float64) * 3

    sweep = memorisation_sweep(copy_small, data, [4, 16, 64], n_samples=50, generator=gen(3))
    assert sweep.fractions[:2] == [1.0, 1.0] and sweep.fractions[2] < 0.5 and sweep.emm == 16
    assert torch.equal(seen[1][:4], seen[0]) and torch.equal(seen[2][:16], seen[1])  # nested
    again = memorisation_sweep(copy_small, data, [4, 16, 64], n_samples=50, generator=gen(3))
    assert again.fractions == sweep.fractions


def test_bad_input_names_the_argument():
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="train must have at least 2 rows"):
        nn_ratio(x, x[:1])
    with pytest.raises(ValueError, match="train must have shape"):
        nn_ratio(x, torch.randn(3, 4))
    with pytest.raises(ValueError, match="samples is empty"):
        nn_ratio(torch.empty(0, 2), x)
    with pytest.raises(TypeError, match="samples"):
        nn_ratio(np.ones((3, 2)), x)
    with pytest.raises(ValueError, match="ratio"):
        is_memorised(x, x, ratio=0.0)
    with pytest.raises(ValueError, match="sizes"):
        memorisation_sweep(lambda *a: x, x, [1, 2])
    with pytest.raises(TypeError, match="fit_and_sample"):
        memorisation_sweep(None, x, [2])
    with pytest.raises(ValueError, match="strictly increasing"):
        effective_model_memorisation([2, 2], [1, 1])


def test_empirical_denoiser_samples_are_all_memorised():
    import diffedu as de
    P = VP()
    for M, D in ((5, 2), (12, 16)):
        train = torch.randn(M, D, generator=gen(M), dtype=torch.float64)
        xT = torch.randn(200, D, generator=gen(1), dtype=torch.float64) * float(P.sigma(P.t_max))
        x0 = de.dpmpp_2m(Empirical(train).bind(P).denoiser, P, xT, de.time_grid(P, 30))
        assert memorised_fraction(x0, train) == 1.0
        assert float(nn_distances(x0, train)[:, 0].max()) < 1e-2


def test_exact_score_memorises_at_every_size():
    from diffedu.memorisation import empirical_fit_and_sample
    data = torch.randn(256, 2, generator=gen(), dtype=torch.float64)
    sweep = memorisation_sweep(empirical_fit_and_sample(VP()), data, [4, 64, 256], n_samples=100, generator=gen(1))
    assert sweep.fractions == [1.0, 1.0, 1.0] and sweep.emm == 256


def test_sweep_arguments_are_checked_at_entry():
    """Issue 21 (property tests): sizes ['2', '3'] were read by int(), NaN fractions counted as not memorised,
    level '0.9' gave a comparison TypeError after the whole sweep, the factories' sizes were checked only
    when the first model was trained."""
    with pytest.raises(TypeError, match="sizes .* must be an integer; got str"):
        effective_model_memorisation(["2", "3"], [1.0, 0.5])
    with pytest.raises(ValueError, match="fractions .* must be a finite number"):
        effective_model_memorisation([2, 3], [float("nan"), 0.5])
    with pytest.raises(TypeError, match="level must be a real number; got str"):
        effective_model_memorisation([2, 3], [1.0, 0.5], level="0.9")
    data = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    fit = empirical_fit_and_sample(VP(), n_steps=2)
    with pytest.raises(TypeError, match="level must be a real number"):
        memorisation_sweep(fit, data, [2, 4], level="0.9")
    with pytest.raises(TypeError, match="n_samples must be an integer; got bool"):
        memorisation_sweep(fit, data, [2, 4], n_samples=True)
    with pytest.raises(TypeError, match="hidden must be an integer; got bool"):
        mlp_fit_and_sample(VP(), hidden=True)
    with pytest.raises(TypeError, match="process must be a diffedu.processes.Process"):
        empirical_fit_and_sample("VP")


def _uniform_baseline_quadrature(M, ratio=1 / 3, n=1500):
    """b(M) for x, x_1..x_M iid uniform on [0, 1], by quadrature (independent of the library).

    Given x, the distances d_i = |x - x_i| are iid with CDF F(r) = min(1, x + r) - max(0, x - r), so
    U_i = F(d_i) are iid uniform: the two nearest have density M (M - 1) (1 - u2)^(M - 2) on
    u1 < u2, and R1 < ratio R2 exactly when U1 < F(ratio R2). Hence
    b(M) = int_0^1 dx int_0^1 M (M - 1) (1 - F(r))^(M - 2) F'(r) F(ratio r) dr (midpoint rule)."""
    x = (np.arange(n) + 0.5) / n
    r = (np.arange(n) + 0.5) / n
    X, R = np.meshgrid(x, r, indexing="ij")

    def F(rr):
        return np.minimum(1.0, X + rr) - np.maximum(0.0, X - rr)
    dF = (X + R < 1).astype(float) + (X - R > 0).astype(float)
    integrand = M * (M - 1) * (1 - F(R)) ** (M - 2) * dF * F(ratio * R)
    return integrand.mean()


def test_memorisation_baseline_matches_quadrature_for_uniform_data():
    """Fresh uniform points against M uniform training points on [0, 1]: the library's Monte Carlo
    baseline agrees with the quadrature above within 4 standard errors, at M = 2, 5 and 40."""
    from diffedu.memorisation import memorisation_baseline

    def uniform(n, generator=None):
        return torch.rand(n, 1, generator=generator, dtype=torch.float64)

    sizes = [2, 5, 40]
    b = memorisation_baseline(uniform, sizes, n_samples=400, n_sets=200, generator=gen(0))
    assert b.sizes == sizes and b.fractions.shape == (3,) and b.stderr.shape == (3,)
    for m, f, se in zip(sizes, b.fractions.tolist(), b.stderr.tolist()):
        exact = _uniform_baseline_quadrature(m)
        assert 0 < se < 0.03 and abs(f - exact) < 4 * se, (m, f, se, exact)
    # on the torus it would be 1/3 for every M; on [0, 1] the ends make a difference at small M
    assert abs(_uniform_baseline_quadrature(40) - 1 / 3) < 0.02


def test_memorisation_baseline_of_a_clustered_law_falls_with_m():
    """On the ring of 8 tight Gaussians a few training points sit in separate blobs, so fresh points
    are often 'memorised': the baseline at M = 4 is several times its value at M = 256 (near 1/9)."""
    from diffedu.datasets import ring
    from diffedu.memorisation import memorisation_baseline

    b = memorisation_baseline(ring().sample, [4, 256], n_samples=200, n_sets=10, generator=gen(1))
    assert float(b.fractions[0]) > 2 * float(b.fractions[1])
    assert abs(float(b.fractions[1]) - 1 / 9) < 0.04
    with pytest.raises(ValueError, match="sizes"):
        memorisation_baseline(ring().sample, [1, 4])
    with pytest.raises(TypeError, match="sample"):
        memorisation_baseline("ring", [4])
    with pytest.raises(ValueError, match="n_sets"):
        memorisation_baseline(ring().sample, [4], n_sets=1)
    with pytest.raises(ValueError, match="ratio"):
        memorisation_baseline(ring().sample, [4], ratio=0.0)
