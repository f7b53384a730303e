"""diffedu.fokker_planck: exact marginals solve both Fokker-Planck equations for every process,
perturbed scores do not, Hutchinson's mean and variance, the grid solver against closed forms,
bad input."""

import math

import numpy as np
import pytest
import torch

from diffedu import EDM, VE, VP, Gaussian, GaussianMixture, Linear, VPCosine
from diffedu import fokker_planck as fp
from diffedu.datasets import ring, two_gaussians
from diffedu.nets import EnergyMLP, ScoreMLP, train_dsm

PROCESSES = [VP(), VPCosine(), VE(), EDM(), Linear()]
DISTS = {
    "gaussian": Gaussian([0.5, -1.0], [[0.6, 0.2], [0.2, 0.3]]),
    "mixture": two_gaussians(),
    "mixture3d": GaussianMixture([0.5, 0.5], [[1.0, 0, 0], [-1.0, 0.5, 0]], [[0.2, 0.3, 0.1], [0.3, 0.1, 0.2]]),
}


def _points(dist, process, frac, n=32, seed=0):
    t = frac * process.t_max
    x = dist.sample_marginal(n, t, process, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x, torch.full((n,), t, dtype=torch.float64)


def _dt_score(score, x, t):
    tt = t.clone().requires_grad_(True)
    return fp.time_derivative(score(x, tt), tt)


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("name", sorted(DISTS))
@pytest.mark.parametrize("frac", [0.05, 0.5])
def test_exact_marginals_have_zero_residuals(process, name, frac):
    b = DISTS[name].bind(process)
    x, t = _points(DISTS[name], process, frac)
    scale = float(_dt_score(b.score, x, t).abs().max())
    R = fp.score_residual(b.score, process)(x, t)
    assert R.shape == x.shape
    assert float(R.abs().max()) < 1e-10 * max(scale, 1.0)
    # log-density residual, scaled by the size of d_t log p
    tt = t.clone().requires_grad_(True)
    (dtl,) = torch.autograd.grad(b.log_prob(x, tt).sum(), tt)
    Rl = fp.log_density_residual(b.log_prob, process)(x, t)
    assert Rl.shape == (x.shape[0],)
    assert float(Rl.abs().max()) < 1e-10 * max(float(dtl.abs().max()), 1.0)


@pytest.mark.parametrize("process", [VP(), EDM()], ids=lambda p: type(p).__name__)
def test_perturbed_scores_have_clearly_nonzero_residuals(process):
    mix = ring(6, std=0.3)
    b = mix.bind(process)
    x, t = _points(mix, process, 0.2)
    scale = float(_dt_score(b.score, x, t).abs().mean())
    for bad in (lambda y, s: 1.1 * b.score(y, s),                                   # scaled score
                lambda y, s: b.score(y, s) + 0.1 * torch.stack([torch.cos(y[:, 0]), 0 * y[:, 1]], 1)):
        R = fp.score_residual(bad, process)(x, t)
        assert float(R.abs().mean()) > 1e-2 * scale
    # rotating the score, r = 0.2 J s with J antisymmetric, keeps div(p r) = 0 (both sampler
    # marginals stay exact) yet the score residual is large: residuals see more than samples do
    J = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    R = fp.score_residual(lambda y, s: b.score(y, s) + 0.2 * b.score(y, s) @ J.T, process)(x, t)
    assert float(R.abs().mean()) > 1e-2 * scale


def test_unnormalised_log_density_residual_is_d_t_log_Z():
    process, dist = VP(), DISTS["mixture"]
    b = dist.bind(process)
    x, t = _points(dist, process, 0.3)
    R = fp.log_density_residual(lambda y, s: b.log_prob(y, s) + 0.7 * s**2, process)(x, t)
    torch.testing.assert_close(R, 1.4 * t)


def test_hutchinson_residual_is_unbiased():
    """4 points, each repeated 2000 times with one probe per row: the row means approach the
    exact residual (R is linear in div s, so Hutchinson's estimate of it is unbiased)."""
    process, dist = VP(), DISTS["mixture3d"]
    b = dist.bind(process)
    x, t = _points(dist, process, 0.3, n=4)
    bad = lambda y, s: 1.2 * b.score(y, s)  # noqa: E731
    exact = fp.score_residual(bad, process)(x, t)
    reps = 2000
    est = fp.score_residual(bad, process, method="hutchinson", n_probes=1,
                            generator=torch.Generator().manual_seed(0))(x.repeat(reps, 1), t.repeat(reps))
    est = est.reshape(reps, 4, 3).mean(0)
    assert float((est - exact).abs().max()) < 0.05 * float(exact.abs().max())


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_mean_and_variance_for_a_linear_field(probe):
    """For f(x) = A x: E[z^T A z] = tr A; Var = 2|S|_F^2 (Gaussian) or 2|S|_F^2 - 2 sum_i S_ii^2
    (Rademacher), S = (A + A^T)/2."""
    A = torch.tensor([[1.0, 2.0, -0.5], [0.3, -1.0, 0.7], [1.5, 0.2, 0.5]], dtype=torch.float64)
    S = 0.5 * (A + A.T)
    var = 2 * (S**2).sum() - (2 * (torch.diagonal(S) ** 2).sum() if probe == "rademacher" else 0)
    n = 20000
    x = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    est = fp.div(lambda y, s: y @ A.T, x, 0.5, method="hutchinson", probe=probe,
                 generator=torch.Generator().manual_seed(2))
    exact = fp.div(lambda y, s: y @ A.T, x[:3], 0.5)
    torch.testing.assert_close(exact, torch.full((3,), float(torch.trace(A)), dtype=torch.float64))
    assert abs(float(est.mean()) - float(torch.trace(A))) < 4 * math.sqrt(float(var) / n)
    assert float(est.var()) == pytest.approx(float(var), rel=0.06)


def test_laplacian_of_a_quadratic():
    x = torch.randn(5, 3, dtype=torch.float64)
    lap = fp.laplacian(lambda y, s: s * (y**2).sum(1), x, 2.0)
    torch.testing.assert_close(lap, torch.full((5,), 12.0, dtype=torch.float64))


def test_grid_solver_matches_closed_form_1d():
    g = np.linspace(-4, 4, 201)
    mix = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.04], [0.09]])
    ts = [0.0, 0.1, 0.3, 1.0]
    P = fp.solve_fp_grid(fp.density_on_grid(mix, VP(), g, 0.0), g, VP(), ts)
    h = g[1] - g[0]
    for k, t in enumerate(ts):
        exact = fp.density_on_grid(mix, VP(), g, t)
        assert np.abs(P[k] - exact).max() < 2e-3 * exact.max()
        assert P[k].sum() * h == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("process", [VP(), VE(sigma_max=3.0)], ids=lambda p: type(p).__name__)
def test_grid_solver_matches_closed_form_2d(process):
    g = np.linspace(-4, 4, 81)
    mix = ring(6, radius=2.0, std=0.35)
    ts = [0.0, 0.2, 0.6]
    P = fp.solve_fp_grid(fp.density_on_grid(mix, process, g, 0.0), g, process, ts, max_dt=0.005)
    assert P.shape == (3, 81, 81)
    for k, t in enumerate(ts):
        exact = fp.density_on_grid(mix, process, g, t)
        assert np.abs(P[k] - exact).max() < 1e-2 * exact.max()


def test_residual_of_a_net_trains():
    """The FP penalty runs end to end (third derivatives of the net) and keeps losses finite."""
    for m in (ScoreMLP(VP(), 2, hidden=16, generator=torch.Generator().manual_seed(0)),
              EnergyMLP(VP(), 2, hidden=16, generator=torch.Generator().manual_seed(0))):
        L = train_dsm(m, torch.randn(64, 2), steps=2, batch_size=16, fp_weight=1.0, fp_batch=8,
                      generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(L).all()


def test_bad_input():
    process, b = VP(), DISTS["gaussian"].bind(VP())
    x = torch.randn(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="score must return a tensor of shape"):
        fp.score_residual(lambda y, s: b.score(y, s)[:, :1], process)(x, 0.5)
    with pytest.raises(ValueError, match="log_p must return a tensor of shape"):
        fp.log_density_residual(lambda y, s: b.log_prob(y, s)[:, None], process)(x, 0.5)
    with pytest.raises(ValueError, match="t must lie"):
        fp.score_residual(b.score, process)(x, 1.5)
    with pytest.raises(ValueError, match="t must be a float"):
        fp.score_residual(b.score, process)(x, torch.full((3,), 0.5))
    with pytest.raises(TypeError, match="process"):
        fp.score_residual(b.score, "VP")
    with pytest.raises(ValueError, match="x must have shape"):
        fp.score_residual(b.score, process)(torch.randn(4), 0.5)
    g = np.linspace(-1, 1, 11)
    with pytest.raises(ValueError, match="p0 must have shape"):
        fp.solve_fp_grid(np.ones(10), g, process, [0.0, 0.1])
    with pytest.raises(ValueError, match="ts must"):
        fp.solve_fp_grid(np.ones(11), g, process, [0.2, 0.1])
    with pytest.raises(ValueError, match="uniform"):
        fp.solve_fp_grid(np.ones(11), g**3, process, [0.0, 0.1])


def test_arguments_are_checked_at_entry():
    """Issue 21 (property tests): residual operators accepted a bad method, probe, n_probes or generator and
    failed at their first call (or never); n = 0 gave a ZeroDivisionError; a numeric size string was
    accepted; a NaN grid gave NaN densities or a message about x; a string p0 a NumPy message."""
    g, p = Gaussian(torch.zeros(1), torch.ones(1)), VP()
    s = g.bind(p).score
    with pytest.raises(ValueError, match="method must be one of"):
        fp.score_residual(s, p, method="nonsense")
    with pytest.raises(TypeError, match="n_probes must be an integer; got bool"):
        fp.log_density_residual(g.bind(p).log_prob, p, n_probes=True)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        fp.score_residual(s, p, generator=0)
    with pytest.raises(TypeError, match="log_p must be a callable"):
        fp.log_density_residual(3, p)
    with pytest.raises(TypeError, match="field must be a field"):
        fp.div(3, torch.zeros(2, 1), 0.5)
    with pytest.raises(ValueError, match="n must be an integer >= 1; got 0"):
        fp.residual_rms(s, p, g.sample, [0.5], n=0)
    with pytest.raises(TypeError, match="ts must be a 1-D tensor or sequence of times; got str"):
        fp.residual_rms(s, p, g.sample, "abc", n=4)
    with pytest.raises(TypeError, match="size must be a real number; got str"):
        fp.perturb_score(s, "scale", "0.5")
    with pytest.raises(ValueError, match="grid must be finite"):
        fp.grid_mesh([0.0, math.nan])
    with pytest.raises(ValueError, match="grid must be finite"):
        fp.density_on_grid(g, p, [0.0, math.nan], 0.5)
    with pytest.raises(TypeError, match="dist must be a diffedu distribution"):
        fp.density_on_grid("g", p, [0.0, 1.0], 0.5)
    with pytest.raises(TypeError, match="p0 must be an array of densities"):
        fp.solve_fp_grid("abc", np.linspace(-1, 1, 5), p, [0.1, 0.2])
    with pytest.raises(TypeError, match="ode_steps must be an integer; got bool"):
        fp.ode_sde_gap(g.bind(p).denoiser, p, g.sample, 4, ode_steps=True)
    t = torch.ones(3)
    with pytest.raises(ValueError, match="t must be a .B,. tensor that requires grad"):
        fp.time_derivative(torch.sin(t), t)  # was autograd's "does not require grad"
    with pytest.raises(TypeError, match="y must be a floating torch.Tensor"):
        fp.time_derivative([1.0], t.requires_grad_(True))


def test_log_density_penalty_vanishes_for_an_unnormalised_exact_marginal():
    """Deveney et al.'s penalty: the residual's variance in x, blind to log Z_t (constant in x)."""
    import math as _m

    mix = two_gaussians()
    vp = VP()
    x0 = mix.sample(64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    unnormalised = lambda x, t: mix.log_prob(x, t, vp) + 3.0 * t**2 + _m.pi  # noqa: E731  log Z_t added
    g = torch.Generator().manual_seed(1)
    assert float(fp.log_density_penalty(unnormalised, vp, x0, generator=g).detach()) < 1e-20
    wrong = lambda x, t: 1.2 * mix.log_prob(x, t, vp)  # noqa: E731
    assert float(fp.log_density_penalty(wrong, vp, x0, generator=torch.Generator().manual_seed(1)).detach()) > 1e-3
    with pytest.raises(ValueError, match="n"):
        fp.log_density_penalty(wrong, vp, x0, n=1)


def test_log_density_penalty_names_x0():
    """Issue 21 (property tests): a NaN x0 was reported as 'x must be finite'."""
    g, p = Gaussian(torch.zeros(1), torch.ones(1)), VP()
    with pytest.raises(ValueError, match="x0 must be finite"):
        fp.log_density_penalty(g.bind(p).log_prob, p, torch.tensor([[0.0], [math.nan]]))
