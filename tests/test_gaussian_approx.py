"""diffedu.gaussian_approx: the fitted Gaussian vs numpy, explained variance exactly 1 for a
Gaussian target and rising to 1 with noise for a mixture, reproducibility, bad input."""

import math

import numpy as np
import pytest
import torch

from diffedu import EDM, VP, Empirical, Gaussian, GaussianMixture
from diffedu import fit_gaussian, time_grid
from diffedu.gaussian_approx import explained_variance, gaussian_explained_variance, teleport, teleport_sweep
from diffedu.samplers import dpmpp_2m, euler


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_fit_gaussian_matches_numpy():
    X = torch.randn(200, 4, generator=gen(), dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0.1]], dtype=torch.float64) + 3
    G = fit_gaussian(X)
    np.testing.assert_allclose(G.mean.numpy(), X.numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(G.cov.numpy(), np.cov(X.numpy().T), rtol=1e-10, atol=1e-12)
    S = fit_gaussian(X, shrinkage=1.0).cov
    torch.testing.assert_close(S, torch.eye(4, dtype=torch.float64) * float(np.trace(np.cov(X.numpy().T)) / 4))
    fit_gaussian(X[:, :2].repeat(1, 2))  # rank-deficient covariance is allowed


@pytest.mark.parametrize("process", [VP(), EDM()], ids=["VP", "EDM"])
def test_explained_variance_is_one_for_a_gaussian(process):
    G = Gaussian([1.0, -1.0], [[2.0, 0.3], [0.3, 0.5]])
    F = fit_gaussian(G.sample(200_000, generator=gen(), dtype=torch.float64))
    ts = [0.05 * process.t_max, 0.5 * process.t_max]
    ev_exact = explained_variance(G.bind(process).score, G.bind(process).score, G, process, ts, generator=gen(1))
    assert ev_exact.tolist() == [1.0, 1.0]
    ev_fit = explained_variance(G.bind(process).score, F.bind(process).score, G, process, ts, generator=gen(1))
    assert float(ev_fit.min()) > 0.99
    zero = explained_variance(G.bind(process).score, lambda x, t: torch.zeros_like(x), G, process, ts,
                              generator=gen(1))
    torch.testing.assert_close(zero, torch.zeros(2, dtype=torch.float64))


def test_explained_variance_of_a_mixture_rises_with_noise():
    P = VP()
    mix = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [[0.1, 0.1], [0.1, 0.1]])
    G = Gaussian(mix.mean, mix.cov)
    ts = [0.02, 0.1, 0.3, 0.6, 1.0]
    ev = explained_variance(mix.bind(P).score, G.bind(P).score, mix, P, ts, n=4000, generator=gen())
    assert float(ev[0]) < 0.6 and float(ev[-1]) > 0.999  # the y-direction is Gaussian: about half
    assert all(b >= a - 0.02 for a, b in zip(ev.tolist(), ev.tolist()[1:]))
    again = explained_variance(mix.bind(P).score, G.bind(P).score, mix, P, ts, n=4000, generator=gen())
    assert torch.equal(ev, again)


def test_explained_variance_on_training_points():
    X = torch.randn(50, 6, generator=gen(), dtype=torch.float64)
    E, P = Empirical(X), VP()
    ev = explained_variance(E.bind(P).score, fit_gaussian(X).bind(P).score, E, P, [0.1, 0.9], n=300,
                            generator=gen(1))
    assert float(ev[0]) < float(ev[1]) and float(ev[1]) > 0.99


def test_gaussian_explained_variance_matches_monte_carlo_and_1d_formula():
    P = VP()
    data = Gaussian([1.0, -0.5], [[2.0, 0.4], [0.4, 0.5]])
    model = Gaussian([0.6, 0.0], [[1.0, -0.2], [-0.2, 1.5]])
    ts = [0.1, 0.4, 0.9]
    mc = explained_variance(data.bind(P).score, model.bind(P).score, data, P, ts, n=400_000, generator=gen())
    closed = gaussian_explained_variance(data, model, P, ts)
    torch.testing.assert_close(closed, mc, rtol=0, atol=0.01)
    assert gaussian_explained_variance(data, data, P, ts).tolist() == [1.0, 1.0, 1.0]
    a, s = float(P.alpha(0.3)), float(P.sigma(0.3))
    vd, vm = a**2 * 2.0 + s**2, a**2 * 0.5 + s**2
    one_d = gaussian_explained_variance(Gaussian([0.0], [2.0]), Gaussian([0.0], [0.5]), P, [0.3])
    assert abs(float(one_d[0]) - (1 - (1 - vd / vm) ** 2)) < 1e-12
    with pytest.raises(TypeError, match="model"):
        gaussian_explained_variance(data, "G", P, ts)
    with pytest.raises(ValueError, match="same dimension"):
        gaussian_explained_variance(data, Gaussian([0.0], [1.0]), P, ts)
    with pytest.raises(ValueError, match="ts must"):
        gaussian_explained_variance(data, model, P, [0.0])


def test_bad_input_names_the_argument():
    G, P = Gaussian([0.0], [1.0]), VP()
    s = G.bind(P).score
    with pytest.raises(ValueError, match="data must have at least 2 rows"):
        fit_gaussian(torch.ones(1, 3))
    with pytest.raises(ValueError, match="data must have shape"):
        fit_gaussian(torch.ones(3))
    with pytest.raises(ValueError, match="shrinkage"):
        fit_gaussian(torch.randn(5, 2), shrinkage=2.0)
    with pytest.raises(ValueError, match="ts must"):
        explained_variance(s, s, G, P, [0.0, 0.5])
    with pytest.raises(ValueError, match="n must"):
        explained_variance(s, s, G, P, [0.5], n=0)
    with pytest.raises(TypeError, match="dist"):
        explained_variance(s, s, "G", P, [0.5])
    with pytest.raises(TypeError, match="process"):
        explained_variance(s, s, G, "VP", [0.5])
    with pytest.raises(TypeError, match="approx must be an approximate score"):  # names the one that is wrong
        explained_variance(s, None, G, P, [0.5])


# --- teleportation -------------------------------------------------------------------------
def test_teleport_equals_flow_then_sampler_and_helps_for_gaussian_data():
    p = VP()
    A = torch.tensor([[1.0, 0.3, -0.5], [0.2, 0.8, 0.1], [-0.4, 0.6, 1.2]], dtype=torch.float64)
    G = Gaussian(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), A @ A.T / 3 + 0.05 * torch.eye(3, dtype=torch.float64))
    D = G.bind(p).denoiser
    x = G.bind(p).sample_marginal(32, p.t_max, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ts = time_grid(p, 5, t_start=0.5)
    out = teleport(dpmpp_2m, D, p, x, ts, G)
    torch.testing.assert_close(out, dpmpp_2m(D, p, G.flow(x, p.t_max, 0.5, p), ts))
    # for Gaussian data teleportation is exact up to ts[0]: 4 steps from 0.5 beat 4 from t_max
    exact = G.flow(x, p.t_max, float(ts[-2]), p)
    err_tel = (teleport(dpmpp_2m, D, p, x, ts[:-1], G) - exact).norm(dim=1).max()
    err_full = (dpmpp_2m(D, p, x, time_grid(p, 5)[:-1]) - exact).norm(dim=1).max()
    assert err_tel < err_full
    # a fitted Gaussian from data: mean/cov match the sample moments
    data = G.sample(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    Gf = fit_gaussian(data)
    torch.testing.assert_close(Gf.mean, data.mean(0))
    torch.testing.assert_close(Gf.cov, torch.cov(data.T))
    out_data = teleport(euler, D, p, x, ts, data)
    assert out_data.shape == x.shape and torch.isfinite(out_data).all()


def test_teleporting_a_gaussian_target_loses_nothing():
    import diffedu as de
    from diffedu.gaussian_approx import teleport_sweep
    P = VP()
    G = Gaussian([1.0, -1.0], [[2.0, 0.3], [0.3, 0.5]])
    ts = de.time_grid(P, 20)
    x = G.sample_marginal(300, P.t_max, P, generator=gen(), dtype=torch.float64)
    D = G.bind(P).denoiser
    exact = G.flow(x, P.t_max, float(ts[-2]), P)  # the exact PF-ODE map down to t_eps
    errs = []
    for k in (0, 5, 10, 15, 18):
        out = teleport(de.dpmpp_2m, D, P, x, ts[k:-1], G) if k else de.dpmpp_2m(D, P, x, ts[:-1])
        errs.append(float((out - exact).norm(dim=1).max()))
    # the teleported part is exact, so skipping more steps never adds error: it removes it
    assert all(b <= a + 1e-12 for a, b in zip(errs, errs[1:])) and errs[-1] < 1e-3 * errs[0]
    sweep = teleport_sweep(de.dpmpp_2m, D, P, x, ts, G, [0, 5, 10])
    assert sweep[0] == 0 and float(sweep.max()) < 0.3


def test_teleport_sweep_on_a_mixture_grows_with_the_skipped_steps():
    import diffedu as de
    from diffedu.gaussian_approx import teleport_sweep
    P = VP()
    mix = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [[0.1, 0.1], [0.1, 0.1]])
    ts = de.time_grid(P, 12)
    x = mix.sample_marginal(200, P.t_max, P, generator=gen(), dtype=torch.float64)
    d = teleport_sweep(de.dpmpp_2m, mix.bind(P).denoiser, P, x, ts, Gaussian(mix.mean, mix.cov), [0, 3, 9])
    assert d[0] == 0 and float(d[1]) < 0.01 and float(d[2]) > 10 * float(d[1])
    with pytest.raises(ValueError, match="skips"):
        teleport_sweep(de.dpmpp_2m, mix.bind(P).denoiser, P, x, ts, mix.sample(10, generator=gen()), [12])
    with pytest.raises(ValueError, match="ts must start at t_max"):
        teleport_sweep(de.dpmpp_2m, mix.bind(P).denoiser, P, x, ts[1:], mix.sample(10, generator=gen()), [1])


def test_teleport_arguments_are_checked():
    """Issue 21 (property tests): t_from '0.5' was accepted (float()); a string target failed with a message
    about "data"; teleport_sweep read process.t_max of a string (AttributeError), took int('1') as a skip and
    never looked at target when every skip was 0; a (B, D + 1) score broadcast or failed inside torch."""
    G, p = Gaussian([0.0], [1.0]), VP()
    D, x, ts = G.bind(p).denoiser, torch.zeros(3, 1), time_grid(p, 3)
    with pytest.raises(TypeError, match="t_from must be a real number; got str"):
        teleport(euler, D, p, x, ts, G, t_from="0.5")
    with pytest.raises(TypeError, match="target must be a Gaussian or data"):
        teleport(euler, D, p, x, ts, "abc")
    with pytest.raises(ValueError, match="ts must lie in"):
        teleport(euler, D, p, x, [math.nan, 0.0], G)
    with pytest.raises(TypeError, match="process must be a diffedu.processes.Process"):
        teleport_sweep(euler, D, "VP", x, ts, G, [0])
    with pytest.raises(TypeError, match="skips .* must be an integer; got str"):
        teleport_sweep(euler, D, p, x, ts, G, ["1"])
    with pytest.raises(TypeError, match="target must be a Gaussian or data"):
        teleport_sweep(euler, D, p, x, ts, "abc", [0])
    s = G.bind(p).score
    with pytest.raises(ValueError, match="approx must return a tensor of x's shape"):
        explained_variance(s, lambda y, t: torch.cat([y, y], 1), G, p, [0.5])


def test_noise_scale_is_the_largest_standard_deviation():
    from diffedu import datasets
    from diffedu.gaussian_approx import noise_scale

    C = torch.tensor([[2.0, 0.6, 0.0], [0.6, 1.0, 0.2], [0.0, 0.2, 0.5]], dtype=torch.float64)
    assert noise_scale(Gaussian([0.0, 0.0, 0.0], C)) == pytest.approx(math.sqrt(np.linalg.eigvalsh(C.numpy()).max()))
    ring = datasets.ring()                       # radius 2, std 0.15: cov = (2 + 0.0225) I
    assert noise_scale(Gaussian(ring.mean, ring.cov)) == pytest.approx(math.sqrt(2.0225))
    X = torch.randn(500, 3, generator=gen(), dtype=torch.float64) * torch.tensor([3.0, 1.0, 0.1], dtype=torch.float64)
    assert noise_scale(X) == pytest.approx(math.sqrt(np.linalg.eigvalsh(np.cov(X.numpy().T)).max()))
    with pytest.raises(TypeError, match="target"):
        noise_scale("data")


def test_explained_variance_evaluates_a_network_in_its_dtype():
    """A float32 network given float64 draws: evaluated in float32 (no dtype error), the same EV as
    with an explicit cast."""
    from diffedu.nets import ScoreMLP

    P = VP()
    net = ScoreMLP(P, 2, hidden=8, generator=gen())
    G = Gaussian([0.0, 0.0], [1.0, 2.0])
    ev = explained_variance(net.score, G.bind(P).score, G, P, [0.3, 0.7], n=50, generator=gen(1))
    cast = explained_variance(lambda x, t: net.score(x.float(), t).double(), G.bind(P).score, G, P, [0.3, 0.7],
                              n=50, generator=gen(1))
    torch.testing.assert_close(ev, cast)


def test_teleport_sweep_against_a_converged_reference():
    """With a converged solve as the reference, skip 0 measures the sampler's own error (not 0), and
    for a Gaussian target teleporting (an exact jump) never adds error: it removes the skipped steps'
    discretisation error, so the distance falls."""
    P = VP()
    G = Gaussian([0.5, -0.5], [[1.5, 0.4], [0.4, 0.3]])
    x = G.sample_marginal(200, P.t_max, P, generator=gen(), dtype=torch.float64)
    ts = time_grid(P, 10)
    exact = G.flow(x, P.t_max, float(ts[-2]), P)                               # the exact flow to t_eps
    conv = euler(G.bind(P).denoiser, P, x, ts)                                 # (a coarse Euler run)
    d = teleport_sweep(euler, G.bind(P).denoiser, P, x, ts[:-1], G, [0, 3, 6], reference=exact)
    assert float(d[0]) == pytest.approx(float(((euler(G.bind(P).denoiser, P, x, ts[:-1]) - exact) ** 2).sum(1).mean().sqrt()))
    assert float(d[0]) > 1e-3 and d[0] > d[1] > d[2]
    assert conv.shape == x.shape
    with pytest.raises(ValueError, match="reference must have x's shape"):
        teleport_sweep(euler, G.bind(P).denoiser, P, x, ts[:-1], G, [0], reference=exact[:5])


def test_explained_variance_se_covers_the_closed_form():
    """Gaussian data, a wrong Gaussian model: the mean of the repeats lies within 4 standard errors
    of gaussian_explained_variance, and the error shrinks about like 1/sqrt(n) (n x 16: about 4 times)."""
    from diffedu.gaussian_approx import explained_variance_se

    P = VP()
    Gd, Gm = Gaussian([0.0, 1.0], [[1.0, 0.3], [0.3, 0.5]]), Gaussian([0.2, 0.8], [0.7, 0.7])
    ts = [0.2, 0.5]
    exact = gaussian_explained_variance(Gd, Gm, P, ts)
    small = explained_variance_se(Gd.bind(P).score, Gm.bind(P).score, Gd, P, ts, n=200, repeats=16, generator=gen(0))
    big = explained_variance_se(Gd.bind(P).score, Gm.bind(P).score, Gd, P, ts, n=3200, repeats=16, generator=gen(1))
    for r in (small, big):
        assert ((r.ev - exact).abs() < 4 * r.se).all(), (r, exact)
    ratio = small.se / big.se
    assert ((ratio > 2) & (ratio < 8)).all(), ratio
    with pytest.raises(ValueError, match="repeats"):
        explained_variance_se(Gd.bind(P).score, Gm.bind(P).score, Gd, P, ts, repeats=1)


def test_rms_distance_and_its_error_match_repeated_draws():
    """The delta-method error of the RMS distance agrees with the spread of the RMS over 400
    independent repeats (within 15%), and the RMS is the plain formula."""
    from diffedu.gaussian_approx import rms_distance

    g = gen(0)
    scale = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    draws = [rms_distance(torch.randn(100, 3, generator=g, dtype=torch.float64) * scale,
                          torch.zeros(100, 3, dtype=torch.float64)) for _ in range(400)]
    rms = torch.tensor([d.rms for d in draws])
    se = torch.tensor([d.se for d in draws])
    assert abs(float(rms.std()) / float(se.mean()) - 1) < 0.15
    assert abs(float(rms.mean()) - math.sqrt(5.25)) < 3 * float(rms.std()) / 20
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    assert rms_distance(x, torch.zeros(2, 2, dtype=torch.float64)).rms == pytest.approx(math.sqrt(12.5))
    assert rms_distance(x, x) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        rms_distance(x, x[:1])
