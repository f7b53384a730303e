"""diffedu.hodge: Helmholtz-Hodge and weighted decompositions recover planted splits (p-weighted
relative L2 errors on an 81 x 81 grid)."""

import math

import pytest
import torch

from diffedu import VP, Gaussian, GaussianMixture
from diffedu import hodge
from diffedu import gauge
from diffedu.calculus import divergence

DT = torch.float64
PI = math.pi


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def aniso():
    return Gaussian([0.3, -0.2], [[1.0, 0.45], [0.45, 0.3]])


# --- decompositions --------------------------------------------------------------------------
def _psi_grad(x):  # psi = sin(2x) cos(y) + x^2 y
    X, Y = x[:, 0], x[:, 1]
    return torch.stack([2 * torch.cos(2 * X) * torch.cos(Y) + 2 * X * Y, -torch.sin(2 * X) * torch.sin(Y) + X**2], 1)


def _tangent_curl(x):  # w = perp grad chi, chi = sin(pi x) sin(pi y)(1 + x) vanishes on the box edge
    X, Y = x[:, 0], x[:, 1]
    cx = PI * torch.cos(PI * X) * torch.sin(PI * Y) * (1 + X) + torch.sin(PI * X) * torch.sin(PI * Y)
    cy = PI * torch.sin(PI * X) * torch.cos(PI * Y) * (1 + X)
    return torch.stack([cy, -cx], 1)


@pytest.mark.parametrize("as_array", [False, True])
def test_helmholtz_hodge_on_a_box_recovers_planted_parts(as_array):
    grid = hodge.Grid2D((0.0, 1.0), None, 81)
    field = lambda x: _psi_grad(x) + _tangent_curl(x)  # noqa: E731
    d = hodge.decompose(grid.evaluate(field) if as_array else field, grid)
    G, W = grid.evaluate(_psi_grad), grid.evaluate(_tangent_curl)
    assert hodge.relative_error(d.gradient, G, grid) < 1e-2
    assert hodge.relative_error(d.remainder, W, grid) < 1e-2
    assert torch.allclose(d.gradient + d.remainder, d.field)
    # the gradient part has a symmetric (grid) Jacobian; the rest is divergence-free
    J = hodge.grid_jacobian(d.gradient, grid)
    assert float((J - J.transpose(-1, -2)).norm() / J.norm()) < 1e-10
    assert d.flux_residual < 1e-9
    div_r = hodge.grid_divergence(d.remainder, grid).norm() / hodge.grid_divergence(d.field, grid).norm()
    assert float(div_r) < 1e-2
    total, g2, r2 = d.energy_split()
    assert abs(g2 + r2 - total) < 1e-2 * total


def test_weighted_decomposition_recovers_score_of_a_mixture():
    proc, t = VP(), 0.2
    mix = GaussianMixture([0.6, 0.4], [[-1.0, 0.5], [1.2, -0.3]],
                          [[[1.0, 0.5], [0.5, 0.6]], [[0.4, -0.1], [-0.1, 0.9]]])
    A = gauge.rotation_matrix(2)

    def score(x):
        return mix.score(x, t, proc)

    def gauge_field(x):  # r = (1/p) A grad(p g) with g = sin x + cos(y)/2, so div(p r) = 0
        g = torch.sin(x[:, 0]) + 0.5 * torch.cos(x[:, 1])
        dg = torch.stack([torch.cos(x[:, 0]), -0.5 * torch.sin(x[:, 1])], 1)
        return (dg + g[:, None] * score(x)) @ A.T

    x = torch.randn(6, 2, dtype=DT)
    div = divergence(lambda y: mix.log_prob(y, t, proc).exp()[:, None] * gauge_field(y), x)
    assert div.abs().max() < 1e-12
    grid = hodge.Grid2D((-5.0, 5.0), None, 81)
    d = hodge.decompose(lambda x: score(x) + gauge_field(x), grid, log_p=lambda x: mix.log_prob(x, t, proc))
    err_s = hodge.relative_error(d.gradient, grid.evaluate(score), grid, d.p)
    err_r = hodge.relative_error(d.remainder, grid.evaluate(gauge_field), grid, d.p)
    assert err_s < 1e-2 and err_r < 1e-2
    assert d.flux_residual < 1e-9
    J = hodge.grid_jacobian(d.gradient, grid)
    assert float((J - J.transpose(-1, -2)).norm() / J.norm()) < 1e-10
    rel_div = hodge.grid_divergence(d.remainder, grid, d.p).norm() / hodge.grid_divergence(d.field, grid, d.p).norm()
    assert float(rel_div) < 2e-2


def test_weighted_solve_removes_gauge_rotation_but_not_plain_rotation():
    proc, t, g = VP(), 0.2, aniso()
    grid = hodge.Grid2D((-5.0, 5.0), None, 81)
    score = lambda x: g.score(x, t, proc)  # noqa: E731
    log_p = lambda x: g.log_prob(x, t, proc)  # noqa: E731
    S = grid.evaluate(score)
    r = gauge.gauge_rotation(g, proc, 1.0)
    d = hodge.decompose(lambda x: score(x) + r(x, t), grid, log_p=log_p)
    assert hodge.relative_error(d.gradient, S, grid, d.p) < 1e-2
    # a plain rotation is not a gauge field here: part of it is a gradient and stays
    q = gauge.plain_rotation(g, proc, 1.0)
    d = hodge.decompose(lambda x: score(x) + q(x, t), grid, log_p=log_p)
    assert hodge.relative_error(d.gradient, S, grid, d.p) > 5e-2


def test_periodic_helmholtz_hodge_is_exact():
    n, L = 32, 2 * PI
    xs = torch.arange(n, dtype=DT) * L / n
    X, Y = torch.meshgrid(xs, xs, indexing="ij")
    grad = torch.stack([torch.cos(X) * torch.cos(2 * Y), -2 * torch.sin(X) * torch.sin(2 * Y)], -1)  # psi = sin x cos 2y
    curl = torch.stack([3 * torch.cos(3 * Y) * torch.sin(X), -torch.cos(X) * torch.sin(3 * Y)], -1)  # perp grad sin x sin 3y
    g, w, m = hodge.helmholtz_hodge_periodic(grad + curl + torch.tensor([0.5, -1.0], dtype=DT), L)
    assert torch.allclose(g, grad, atol=1e-12) and torch.allclose(w, curl, atol=1e-12)
    assert torch.allclose(m, torch.tensor([0.5, -1.0], dtype=DT))


# --- bad input -------------------------------------------------------------------------------
def test_bad_input_is_named():
    grid = hodge.Grid2D((0.0, 1.0), None, 11)
    with pytest.raises(ValueError, match="n must be an integer >= 5"):
        hodge.Grid2D((0, 1), None, 3)
    with pytest.raises(ValueError, match="xlim"):
        hodge.Grid2D((1, 0), None, 11)
    with pytest.raises(TypeError, match="grid must be"):
        hodge.decompose(lambda y: y, (0, 1))
    with pytest.raises(ValueError, match=r"field must have shape \(11, 11, 2\)"):
        hodge.decompose(torch.zeros(10, 10, 2), grid)
    with pytest.raises(TypeError, match="log_p"):
        hodge.decompose(lambda y: y, grid, log_p="gaussian")
    with pytest.raises(ValueError, match="log_p must be finite"):
        hodge.decompose(lambda y: y, grid, log_p=torch.full((11, 11), float("nan")))
    with pytest.raises(ValueError, match="p_floor"):
        hodge.decompose(lambda y: y, grid, p_floor=0.0)


def test_grid_arguments_are_checked():
    """Issue 21 (property tests): Grid2D took ('-1', '1') (float()), n=True was a ValueError; NaN fields and
    weights gave NaN norms; relative_error read grid.n of a tuple (AttributeError); p_floor=True was a
    ValueError and length='0.5' too."""
    grid = hodge.Grid2D((0.0, 1.0), None, 7)
    with pytest.raises(TypeError, match="xlim .* must be a real number; got str"):
        hodge.Grid2D(("-1", "1"))
    with pytest.raises(TypeError, match="n must be an integer; got bool"):
        hodge.Grid2D(n=True)
    F = torch.zeros(7, 7, 2, dtype=torch.float64)
    F[0, 0, 0] = math.nan
    for op in (hodge.grid_jacobian, hodge.grid_curl, hodge.grid_divergence, hodge.weighted_norm):
        with pytest.raises(ValueError, match="F must be finite"):
            op(F, grid)
    with pytest.raises(ValueError, match="p must be non-negative"):
        hodge.weighted_norm(torch.ones(7, 7, 2), grid, -torch.ones(7, 7))
    with pytest.raises(TypeError, match="F must be a floating torch.Tensor"):
        hodge.grid_curl(torch.ones(7, 7, 2, dtype=torch.int64), grid)
    with pytest.raises(TypeError, match="grid must be"):
        hodge.relative_error(torch.ones(7, 7, 2), torch.ones(7, 7, 2), (0, 1))
    with pytest.raises(TypeError, match="p_floor must be a real number; got bool"):
        hodge.decompose(lambda y: y, grid, p_floor=True)
    with pytest.raises(TypeError, match="length must be a real number; got str"):
        hodge.helmholtz_hodge_periodic(torch.zeros(4, 4, 2), "0.5")
    with pytest.raises(ValueError, match="F must be finite"):
        hodge.helmholtz_hodge_periodic(torch.full((4, 4, 2), math.nan))


def test_gradient_part_removes_a_gauge_field_at_every_time():
    """The exact score of a Gaussian plus its gauge rotation: the p_t-weighted gradient part is the
    exact score again (up to the grid), at two times, and it is interpolated between nodes."""
    from diffedu import VP, Gaussian
    from diffedu.gauge import gauge_rotation
    from diffedu.hodge import Grid2D, gradient_part

    vp = VP()
    g = Gaussian([0.2, -0.1], [[0.6, 0.2], [0.2, 0.3]])
    r = gauge_rotation(g, vp, 1.0)
    field = lambda x, t: g.score(x, t, vp) + r(x, t)  # noqa: E731
    gp = gradient_part(field, Grid2D((-4.0, 4.0), None, 81), lambda x, t: g.log_prob(x, t, vp))
    for t in (0.2, 0.6):
        x = g.sample_marginal(200, t, vp, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        exact = g.score(x, t, vp)
        err = (gp(x, t) - exact).norm(dim=1).mean() / exact.norm(dim=1).mean()
        assert float(err) < 0.03
        assert float((field(x, t) - exact).norm(dim=1).mean() / exact.norm(dim=1).mean()) > 0.5
