"""The grid densities of the PF-ODE and the reverse SDE (diffedu.grid_transport), checked against
closed forms: with the exact score of a Gaussian both solutions are the exact marginal p_t, up to
an error that shrinks as the grid is refined; the distances against their closed forms; the
Gronwall bound against its integral."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from diffedu import fokker_planck as fp
from diffedu import grid_transport as gt
from diffedu.gaussian import Gaussian
from diffedu.processes import VP

G = Gaussian([0.4, -0.3], [[0.5, 0.2], [0.2, 0.3]])


def _solve(n, churn, limiter="vanleer", t_end=0.2):
    vp = VP()
    grid = np.linspace(-4.0, 4.0, n)
    p_T = fp.density_on_grid(G, vp, grid, 1.0)
    res = gt.sampler_density(G.bind(vp).score, vp, grid, p_T, 1.0, t_end, churn=churn, limiter=limiter)
    return res, p_T, fp.density_on_grid(G, vp, grid, t_end), (grid[1] - grid[0]) ** 2


@pytest.mark.parametrize("churn", [0.0, 1.0])
def test_exact_score_carries_the_exact_marginal(churn):
    res, p_T, p, h2 = _solve(64, churn)
    assert abs(res.density.sum() * h2 - p_T.sum() * h2) < 1e-9      # mass conserved (zero flux at the edges)
    assert (res.density >= 0).all()
    assert gt.grid_tv(res.density, p, h2) < 0.02


def test_the_floor_shrinks_with_the_grid_and_with_the_limiter():
    coarse, _, p_c, h2_c = _solve(32, 0.0)
    fine, _, p_f, h2_f = _solve(64, 0.0)
    up, _, _, _ = _solve(64, 0.0, "upwind")
    tv_c, tv_f, tv_up = gt.grid_tv(coarse.density, p_c, h2_c), gt.grid_tv(fine.density, p_f, h2_f), \
        gt.grid_tv(up.density, p_f, h2_f)
    assert tv_f < 0.5 * tv_c                                        # second order where smooth
    assert tv_f < 0.5 * tv_up                                       # upwinding's numerical diffusion


def test_snapshots_and_steps():
    vp = VP()
    grid = np.linspace(-4.0, 4.0, 32)
    p_T = fp.density_on_grid(G, vp, grid, 1.0)
    res = gt.sampler_density(G.bind(vp).score, vp, grid, p_T, 1.0, 0.3, keep=[0.5, 0.8, 1.0])
    assert np.allclose(res.times, [1.0, 0.8, 0.5]) and res.snapshots.shape == (3, 32, 32)
    assert np.array_equal(res.snapshots[0], p_T) and res.steps >= 50


def test_distances_against_closed_forms():
    x = np.linspace(-10, 10, 4001)
    h = x[1] - x[0]
    p, q = norm.pdf(x, 0.0, 1.0), norm.pdf(x, 0.7, 1.0)
    assert gt.grid_tv(p, q, h) == pytest.approx(2 * norm.cdf(0.35) - 1, abs=1e-6)
    assert gt.grid_hellinger(p, q, h) == pytest.approx(math.sqrt(1 - math.exp(-0.7**2 / 8)), abs=1e-6)
    g = np.linspace(-5, 5, 41)
    X, Y = np.meshgrid(g, g, indexing="ij")
    a = np.exp(-((X + 1) ** 2 + Y**2) / 0.5)
    b = np.exp(-((X - 1) ** 2 + Y**2) / 0.5)
    assert gt.grid_w2(a, b, g) == pytest.approx(2.0, abs=1e-6)     # a translation by 2 cells' worth: exact


def test_gronwall_bound_integrates():
    ts = np.linspace(0.1, 1.0, 2001)
    one = np.ones_like(ts)
    assert gt.gronwall_bound(ts, 2 * one, 0 * one, one) == pytest.approx(0.9, rel=1e-9)
    expected = (math.exp(0.5 * 0.9) - 1) / 0.5                      # int exp(L (t - t_end)) dt, eps g^2 / 2 = 1
    assert gt.gronwall_bound(ts, 2 * one, 0.5 * one, one) == pytest.approx(expected, rel=1e-6)


def test_gronwall_terms_of_the_exact_score():
    vp = VP()
    grid = np.linspace(-4.0, 4.0, 96)
    t = 0.3
    q = fp.density_on_grid(G, vp, grid, t)
    eps, lam = gt.gronwall_terms(G.bind(vp).score, vp, grid, q, t)
    assert eps < 0.02                                               # grad log q is the score: FD error only
    C = G.marginal_cov(t, vp)
    lam_exact = -float(vp.f(t)) + 0.5 * float(vp.g2(t)) * float(torch.linalg.eigvalsh(-torch.linalg.inv(C))[-1])
    assert lam == pytest.approx(lam_exact, rel=1e-9)


def test_bad_input():
    vp = VP()
    grid = np.linspace(-4.0, 4.0, 16)
    p = np.ones((16, 16))
    s = G.bind(vp).score
    with pytest.raises(ValueError, match="t_end"):
        gt.sampler_density(s, vp, grid, p, 0.5, 0.6)
    with pytest.raises(ValueError, match="cfl"):
        gt.sampler_density(s, vp, grid, p, 1.0, 0.5, cfl=1.5)
    with pytest.raises(ValueError, match="p_start"):
        gt.sampler_density(s, vp, grid, np.ones((15, 16)), 1.0, 0.5)
    with pytest.raises(ValueError, match="uniform"):
        gt.sampler_density(s, vp, grid**3, p, 1.0, 0.5)
    with pytest.raises(ValueError, match="limiter"):
        gt.sampler_density(s, vp, grid, p, 1.0, 0.5, limiter="superbee")
    with pytest.raises(ValueError, match="score must return"):
        gt.sampler_density(lambda x, t: x[:, :1], vp, grid, p, 1.0, 0.5)
    with pytest.raises(ValueError, match="same shape"):
        gt.grid_tv(np.ones(3), np.ones(4), 1.0)


def test_arguments_are_checked():
    """Issue 21 (property tests): NaN eps/Lambda/g2/ts gave a NaN bound (or NumPy's conversion error for a
    string); keep=('0.5',) was read by float(); gronwall_terms took a NaN or wrong-shape q (torch's max() error), a
    string mass_floor (NumPy's error) and an integer dtype (autograd's error), and a score of the wrong shape
    failed in a reshape; a string threshold failed inside NumPy."""
    ts = np.linspace(0.1, 1.0, 4)
    with pytest.raises(ValueError, match="eps must be finite"):
        gt.gronwall_bound(ts, [0.1, math.nan, 0.1, 0.1], np.zeros(4), np.ones(4))
    with pytest.raises(TypeError, match="ts must be a 1-D array of numbers"):
        gt.gronwall_bound("abc", np.zeros(4), np.zeros(4), np.ones(4))
    p = VP()
    g = Gaussian(torch.zeros(2), torch.eye(2))
    grid = np.linspace(-3.0, 3.0, 6)
    q = fp.density_on_grid(g, p, grid, 0.5)
    with pytest.raises(TypeError, match="keep .* must be a real number; got str"):
        gt.sampler_density(g.bind(p).score, p, grid, q, 0.5, 0.4, keep=("0.45",))
    with pytest.raises(ValueError, match="q must be a finite non-negative"):
        gt.gronwall_terms(g.bind(p).score, p, grid, np.full((6, 6), math.nan), 0.5)
    with pytest.raises(TypeError, match="mass_floor must be a real number"):
        gt.gronwall_terms(g.bind(p).score, p, grid, q, 0.5, mass_floor="0.1")
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        gt.gronwall_terms(g.bind(p).score, p, grid, q, 0.5, dtype=torch.int64)
    with pytest.raises(ValueError, match="score must return a tensor of x's shape"):
        gt.gronwall_terms(lambda x, t: torch.cat([x, x], 1), p, grid, q, 0.5)
    with pytest.raises(TypeError, match="threshold must be a real number"):
        gt.grid_w2(q, q, grid, threshold="0")
