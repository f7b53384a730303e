"""diffedu.fields: conservativity tests, Helmholtz-Hodge and gauge decompositions, dimension.

Every decomposition test plants a known split and recovers it; errors are p-weighted relative
L2 errors on an 81 x 81 grid. Gauge fields are checked against autograd divergences, and the
PF-ODE with a gauge field against the exact Gaussian marginal covariance.
"""

import math

import pytest
import torch

from diffedu import EDM, VP, Empirical, Gaussian, GaussianMixture
from diffedu import fields as F
from diffedu.calculus import divergence
from diffedu.flows import denoiser_from_score, pf_ode_velocity

DT = torch.float64
PI = math.pi


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def aniso():
    return Gaussian([0.3, -0.2], [[1.0, 0.45], [0.45, 0.3]])


# --- local tests -----------------------------------------------------------------------------
def test_jacobian_and_asymmetry_of_linear_fields(gen):
    M = torch.tensor([[1.0, 2.0], [-0.5, 3.0]], dtype=DT)
    x = torch.randn(5, 2, generator=gen, dtype=DT)
    J = F.jacobian_at(lambda y: y @ M.T, x)
    assert torch.allclose(J, M.expand(5, 2, 2))
    assert torch.allclose(F.antisymmetric_part(J), 0.5 * (M - M.T).expand(5, 2, 2))
    expected = torch.linalg.matrix_norm(M - M.T) / torch.linalg.matrix_norm(M)
    assert torch.allclose(F.asymmetry_ratio(J), expected.expand(5))
    A = F.rotation_matrix(2)
    assert torch.allclose(F.asymmetry(lambda y: 0.7 * y @ A.T, x), torch.full((5,), 2.0, dtype=DT))
    assert torch.allclose(F.curl_2d(lambda y: 0.7 * y @ A.T, x), torch.full((5,), 1.4, dtype=DT))
    assert F.asymmetry_ratio(torch.zeros(2, 3, 3, dtype=DT)).eq(0).all()


def test_exact_scores_are_symmetric(gen):
    proc = VP()
    mix = GaussianMixture([0.5, 0.5], [[-1.0, 0.0, 0.5], [1.0, 0.5, 0.0]], [[0.3, 0.5, 1.0], [1.0, 0.2, 0.4]])
    x = mix.sample_marginal(8, 0.3, proc, generator=gen, dtype=DT)
    assert F.asymmetry(lambda y, t: mix.score(y, t, proc), x, 0.3).max() < 1e-12


def test_energy_model_asymmetry_at_rounding_level_and_free_model_not(gen):
    torch.manual_seed(0)  # only the throwaway nets below; the library never uses global state
    energy = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.SiLU(), torch.nn.Linear(32, 32),
                                 torch.nn.SiLU(), torch.nn.Linear(32, 1)).double()

    def energy_score(x):
        with torch.enable_grad():
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            return torch.autograd.grad(energy(x).sum(), x, create_graph=True)[0]

    free = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2)).double()
    x = torch.randn(16, 2, generator=gen, dtype=DT)
    assert F.asymmetry(energy_score, x).max() < 1e-12
    assert F.asymmetry(free, x).min() > 1e-3
    loops = F.circle_loops(x[:4], 0.5, 48)
    assert F.circulation(energy_score, loops).abs().max() < 1e-9


def test_library_energy_model_is_conservative(gen):
    nets = pytest.importorskip("diffedu.nets")
    proc = VP()
    model = nets.EnergyMLP(proc, 2, hidden=32, depth=2, generator=gen).double()
    free = nets.ScoreMLP(proc, 2, hidden=32, depth=2, generator=gen).double()
    x = torch.randn(8, 2, generator=gen, dtype=DT)
    for t in (0.05, 0.5):
        assert F.asymmetry(model.score, x, t).max() < 1e-10
        assert F.asymmetry(free.score, x, t).min() > 1e-4


# --- line integrals --------------------------------------------------------------------------
def test_circulation_of_gradient_and_rotation(gen):
    n, R = 40, 0.8
    c = torch.randn(3, 2, generator=gen, dtype=DT)
    loops = F.circle_loops(c, R, n)
    assert loops.shape == (n + 1, 3, 2) and torch.equal(loops[0], loops[-1])
    proc, g = VP(), aniso()
    circ = F.circulation(lambda y: g.score(y, 0.2, proc), loops)
    assert circ.abs().max() < 1e-10
    # a linear field: Gauss-Legendre is exact, circulation = curl x polygon area (Stokes)
    A = F.rotation_matrix(2)
    area = 0.5 * n * R**2 * math.sin(2 * PI / n)
    circ = F.circulation(lambda y: 1.5 * (y - c[0]) @ A.T, loops)
    assert torch.allclose(circ, torch.full((3,), 3.0 * area, dtype=DT), rtol=1e-12)
    ratio = F.circulation_ratio(lambda y: (y - c[0]) @ A.T, loops[:, :1])
    assert 0.99 < float(ratio[0]) <= 1  # on the polygon the field is not quite along each chord
    assert F.circulation_ratio(lambda y: g.score(y, 0.2, proc), loops).max() < 1e-10


def test_circulation_in_a_plane_of_higher_dimension(gen):
    c = torch.zeros(4, dtype=DT)
    loop = F.circle_loops(c, 1.0, 200, dims=(1, 3))
    A = F.rotation_matrix(4, plane=(1, 3))
    circ = F.circulation(lambda y: y @ A.T, loop)
    assert abs(float(circ[0]) - 2 * 0.5 * 200 * math.sin(2 * PI / 200)) < 1e-12


def test_path_dependence(gen):
    a, b = torch.tensor([-1.0, 0.0], dtype=DT), torch.tensor([1.0, 0.0], dtype=DT)
    s = torch.linspace(0, 1, 33, dtype=DT)[:, None]
    straight = a + s * (b - a)
    th = torch.linspace(PI, 0, 33, dtype=DT)
    arc = torch.stack([torch.cos(th), torch.sin(th)], 1)
    arc[0], arc[-1] = a, b
    proc, g = VP(), aniso()
    assert abs(float(F.path_dependence(lambda y: g.score(y, 0.3, proc), straight, arc)[0])) < 1e-8
    A = F.rotation_matrix(2)
    dep = F.path_dependence(lambda y: y @ A.T, straight, arc)
    loop = torch.cat([straight, arc.flip(0)[1:]])
    assert torch.allclose(dep, F.circulation(lambda y: y @ A.T, loop))
    assert abs(float(dep[0])) > 2.0  # about curl x half-disc area = 2 x pi/2


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
    grid = F.Grid2D((0.0, 1.0), None, 81)
    field = lambda x: _psi_grad(x) + _tangent_curl(x)  # noqa: E731
    d = F.decompose(grid.evaluate(field) if as_array else field, grid)
    G, W = grid.evaluate(_psi_grad), grid.evaluate(_tangent_curl)
    assert F.relative_error(d.gradient, G, grid) < 1e-2
    assert F.relative_error(d.remainder, W, grid) < 1e-2
    assert torch.allclose(d.gradient + d.remainder, d.field)
    # the gradient part has a symmetric (grid) Jacobian; the rest is divergence-free
    J = F.grid_jacobian(d.gradient, grid)
    assert float((J - J.transpose(-1, -2)).norm() / J.norm()) < 1e-10
    assert d.flux_residual < 1e-9
    div_r = F.grid_divergence(d.remainder, grid).norm() / F.grid_divergence(d.field, grid).norm()
    assert float(div_r) < 1e-2
    total, g2, r2 = d.energy_split()
    assert abs(g2 + r2 - total) < 1e-2 * total


def test_weighted_decomposition_recovers_score_of_a_mixture():
    proc, t = VP(), 0.2
    mix = GaussianMixture([0.6, 0.4], [[-1.0, 0.5], [1.2, -0.3]],
                          [[[1.0, 0.5], [0.5, 0.6]], [[0.4, -0.1], [-0.1, 0.9]]])
    A = F.rotation_matrix(2)

    def score(x):
        return mix.score(x, t, proc)

    def gauge(x):  # r = (1/p) A grad(p g) with g = sin x + cos(y)/2, so div(p r) = 0
        g = torch.sin(x[:, 0]) + 0.5 * torch.cos(x[:, 1])
        dg = torch.stack([torch.cos(x[:, 0]), -0.5 * torch.sin(x[:, 1])], 1)
        return (dg + g[:, None] * score(x)) @ A.T

    x = torch.randn(6, 2, dtype=DT)
    div = divergence(lambda y: mix.log_prob(y, t, proc).exp()[:, None] * gauge(y), x)
    assert div.abs().max() < 1e-12
    grid = F.Grid2D((-5.0, 5.0), None, 81)
    d = F.decompose(lambda x: score(x) + gauge(x), grid, log_p=lambda x: mix.log_prob(x, t, proc))
    err_s = F.relative_error(d.gradient, grid.evaluate(score), grid, d.p)
    err_r = F.relative_error(d.remainder, grid.evaluate(gauge), grid, d.p)
    assert err_s < 1e-2 and err_r < 1e-2
    assert d.flux_residual < 1e-9
    J = F.grid_jacobian(d.gradient, grid)
    assert float((J - J.transpose(-1, -2)).norm() / J.norm()) < 1e-10
    rel_div = F.grid_divergence(d.remainder, grid, d.p).norm() / F.grid_divergence(d.field, grid, d.p).norm()
    assert float(rel_div) < 2e-2


def test_weighted_solve_removes_gauge_rotation_but_not_plain_rotation():
    proc, t, g = VP(), 0.2, aniso()
    grid = F.Grid2D((-5.0, 5.0), None, 81)
    score = lambda x: g.score(x, t, proc)  # noqa: E731
    log_p = lambda x: g.log_prob(x, t, proc)  # noqa: E731
    S = grid.evaluate(score)
    r = F.gauge_rotation(g, proc, 1.0)
    d = F.decompose(lambda x: score(x) + r(x, t), grid, log_p=log_p)
    assert F.relative_error(d.gradient, S, grid, d.p) < 1e-2
    # a plain rotation is not a gauge field here: part of it is a gradient and stays
    q = F.plain_rotation(g, proc, 1.0)
    d = F.decompose(lambda x: score(x) + q(x, t), grid, log_p=log_p)
    assert F.relative_error(d.gradient, S, grid, d.p) > 5e-2


def test_periodic_helmholtz_hodge_is_exact():
    n, L = 32, 2 * PI
    xs = torch.arange(n, dtype=DT) * L / n
    X, Y = torch.meshgrid(xs, xs, indexing="ij")
    grad = torch.stack([torch.cos(X) * torch.cos(2 * Y), -2 * torch.sin(X) * torch.sin(2 * Y)], -1)  # psi = sin x cos 2y
    curl = torch.stack([3 * torch.cos(3 * Y) * torch.sin(X), -torch.cos(X) * torch.sin(3 * Y)], -1)  # perp grad sin x sin 3y
    g, w, m = F.helmholtz_hodge_periodic(grad + curl + torch.tensor([0.5, -1.0], dtype=DT), L)
    assert torch.allclose(g, grad, atol=1e-12) and torch.allclose(w, curl, atol=1e-12)
    assert torch.allclose(m, torch.tensor([0.5, -1.0], dtype=DT))


# --- gauge fields and the PF-ODE ------------------------------------------------------------
def test_gauge_rotation_has_zero_weighted_divergence(gen):
    proc, t = EDM(), 0.7
    x = torch.randn(10, 3, generator=gen, dtype=DT)
    g = Gaussian([0.1, 0.2, -0.3], [[2.0, 0.3, 0.1], [0.3, 0.5, 0.0], [0.1, 0.0, 1.0]])
    A = torch.tensor([[0.0, 1.0, -2.0], [-1.0, 0.0, 0.5], [2.0, -0.5, 0.0]], dtype=DT)

    def wdiv(r):
        return divergence(lambda y: g.log_prob(y, t, proc).exp()[:, None] * r(y, t), x)

    p = g.log_prob(x, t, proc).exp()
    assert (wdiv(F.gauge_rotation(g, proc, 1.3, A)).abs() / p).max() < 1e-10
    assert (wdiv(F.plain_rotation(g, proc, 1.3, A)).abs() / p).max() > 1e-2
    iso = Gaussian([0.1, 0.2, -0.3], [0.7, 0.7, 0.7])  # isotropic: a plain rotation is a gauge field
    assert (divergence(lambda y: iso.log_prob(y, t, proc).exp()[:, None] * F.plain_rotation(iso, proc, 1.3, A)(y, t), x).abs()
            / iso.log_prob(x, t, proc).exp()).max() < 1e-10


def test_gauge_rotated_pf_ode_keeps_the_exact_covariance_and_plain_rotation_does_not():
    proc, g = VP(), aniso()
    T, t_end = 1.0, 0.01
    exact = g.marginal_cov(t_end, proc)
    errs = {}
    for name, r in (("gauge", F.gauge_rotation(g, proc, 2.0)), ("plain", F.plain_rotation(g, proc, 2.0))):
        D = denoiser_from_score(lambda x, t, r=r: g.score(x, t, proc) + r(x, t), proc)
        m, C = F.affine_flow_moments(lambda x, t, D=D: pf_ode_velocity(x, t, D, proc),
                                     g.mean * proc.alpha(T), g.marginal_cov(T, proc), T, t_end, rtol=1e-6, atol=1e-9)
        errs[name] = float((C - exact).norm() / exact.norm())
        assert torch.allclose(m, g.mean * proc.alpha(t_end), atol=1e-6)
    assert errs["gauge"] < 1e-5
    assert errs["plain"] > 0.1


# --- intrinsic dimension ---------------------------------------------------------------------
@pytest.mark.parametrize("D,k", [(10, 3), (6, 5), (8, 1), (5, 5)])
@pytest.mark.parametrize("method", ["jacobian", "scores"])
def test_dimension_of_rank_k_gaussians_including_hyperplanes(D, k, method, gen):
    proc = EDM()
    g = Gaussian.low_rank(torch.zeros(D), torch.randn(D, k, generator=gen, dtype=DT))
    x0 = g.sample(12, generator=gen, dtype=DT)
    est = F.intrinsic_dimension(lambda x, t: g.score(x, t, proc), x0, 0.01, proc, method=method, generator=gen)
    assert est.dim == k
    assert (est.dims == k).all()
    assert est.spectra.shape == (12, D) and est.gaps.shape == (12, D)


def test_dimension_from_spectrum_looks_at_every_gap():
    spectra = torch.tensor([[1.0, 1.0, 1.0, 1e-3],      # a curve in R^4: 3 normals
                            [1.0, 1e-3, 5e-4, 1e-4],    # a hyperplane: co-dimension 1
                            [1e-2, 5e-3, 1e-3, 1e-4]],  # full dimension: no normal direction
                           dtype=DT)
    dims, gaps = F.dimension_from_spectrum(spectra)
    assert dims.tolist() == [1, 3, 4]


def test_dimension_of_a_circle_from_an_empirical_score(gen):
    th = torch.rand(2000, generator=gen, dtype=DT) * 2 * PI
    pts = torch.stack([torch.cos(th), torch.sin(th), torch.zeros_like(th)], 1)
    emp = Empirical(pts)
    est = F.intrinsic_dimension(lambda x, t: emp.score(x, t, EDM()), pts[:16], 0.05, EDM())
    assert est.dim == 1


# --- bad input -------------------------------------------------------------------------------
def test_bad_input_is_named():
    grid = F.Grid2D((0.0, 1.0), None, 11)
    proc, g = VP(), aniso()
    with pytest.raises(TypeError, match="field"):
        F.asymmetry("not a field", torch.zeros(2, 2, dtype=DT))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        F.jacobian_at(lambda y: y, [[0.0, 0.0]])
    with pytest.raises(ValueError, match=r"J must have shape \(B, D, D\)"):
        F.asymmetry_ratio(torch.zeros(2, 2, 3))
    with pytest.raises(ValueError, match="x must have shape"):
        F.curl_2d(lambda y: y, torch.zeros(2, 3, dtype=DT))
    with pytest.raises(ValueError, match="radius"):
        F.circle_loops(torch.zeros(2, dtype=DT), -1.0)
    with pytest.raises(ValueError, match="loop must be closed"):
        F.circulation(lambda y: y, torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=DT))
    with pytest.raises(ValueError, match="end points"):
        F.path_dependence(lambda y: y, torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=DT),
                          torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=DT))
    with pytest.raises(ValueError, match="n must be an integer >= 5"):
        F.Grid2D((0, 1), None, 3)
    with pytest.raises(ValueError, match="xlim"):
        F.Grid2D((1, 0), None, 11)
    with pytest.raises(TypeError, match="grid must be"):
        F.decompose(lambda y: y, (0, 1))
    with pytest.raises(ValueError, match=r"field must have shape \(11, 11, 2\)"):
        F.decompose(torch.zeros(10, 10, 2), grid)
    with pytest.raises(TypeError, match="log_p"):
        F.decompose(lambda y: y, grid, log_p="gaussian")
    with pytest.raises(ValueError, match="log_p must be finite"):
        F.decompose(lambda y: y, grid, log_p=torch.full((11, 11), float("nan")))
    with pytest.raises(ValueError, match="p_floor"):
        F.decompose(lambda y: y, grid, p_floor=0.0)
    with pytest.raises(TypeError, match="gaussian must be"):
        F.gauge_rotation(GaussianMixture([1.0], [[0.0, 0.0]], [[1.0, 1.0]]), proc)
    with pytest.raises(ValueError, match="A must be antisymmetric"):
        F.gauge_rotation(g, proc, 1.0, torch.eye(2))
    with pytest.raises(TypeError, match="process must be"):
        F.plain_rotation(g, "VP")
    with pytest.raises(ValueError, match="method must be"):
        F.intrinsic_dimension(lambda x, t: x, torch.zeros(2, 2, dtype=DT), 0.1, proc, method="pca")
    with pytest.raises(ValueError, match="n_probes"):
        F.intrinsic_dimension(lambda x, t: x, torch.zeros(2, 2, dtype=DT), 0.1, proc, method="scores", n_probes=1)
    with pytest.raises(ValueError, match="t must lie"):
        F.intrinsic_dimension(lambda x, t: x, torch.zeros(2, 2, dtype=DT), 5.0, proc)
    with pytest.raises(ValueError, match="mean must be"):
        F.affine_flow_moments(lambda x, t: x, torch.zeros(2), torch.eye(3), 1.0, 0.5)
