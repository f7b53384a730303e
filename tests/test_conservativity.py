"""diffedu.conservativity: Jacobian asymmetry, curl, circulation and path dependence of fields."""

import math

import pytest
import torch

from diffedu import VP, Gaussian, GaussianMixture
from diffedu import conservativity as cons
from diffedu import gauge

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
    J = cons.jacobian_at(lambda y: y @ M.T, x)
    assert torch.allclose(J, M.expand(5, 2, 2))
    assert torch.allclose(cons.antisymmetric_part(J), 0.5 * (M - M.T).expand(5, 2, 2))
    expected = torch.linalg.matrix_norm(M - M.T) / torch.linalg.matrix_norm(M)
    assert torch.allclose(cons.asymmetry_ratio(J), expected.expand(5))
    A = gauge.rotation_matrix(2)
    assert torch.allclose(cons.asymmetry(lambda y: 0.7 * y @ A.T, x), torch.full((5,), 2.0, dtype=DT))
    assert torch.allclose(cons.curl_2d(lambda y: 0.7 * y @ A.T, x), torch.full((5,), 1.4, dtype=DT))
    assert cons.asymmetry_ratio(torch.zeros(2, 3, 3, dtype=DT)).eq(0).all()


def test_exact_scores_are_symmetric(gen):
    proc = VP()
    mix = GaussianMixture([0.5, 0.5], [[-1.0, 0.0, 0.5], [1.0, 0.5, 0.0]], [[0.3, 0.5, 1.0], [1.0, 0.2, 0.4]])
    x = mix.sample_marginal(8, 0.3, proc, generator=gen, dtype=DT)
    assert cons.asymmetry(lambda y, t: mix.score(y, t, proc), x, 0.3).max() < 1e-12


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
    assert cons.asymmetry(energy_score, x).max() < 1e-12
    assert cons.asymmetry(free, x).min() > 1e-3
    loops = cons.circle_loops(x[:4], 0.5, 48)
    assert cons.circulation(energy_score, loops).abs().max() < 1e-9


def test_library_energy_model_is_conservative(gen):
    nets = pytest.importorskip("diffedu.nets")
    proc = VP()
    model = nets.EnergyMLP(proc, 2, hidden=32, depth=2, generator=gen).double()
    free = nets.ScoreMLP(proc, 2, hidden=32, depth=2, generator=gen).double()
    x = torch.randn(8, 2, generator=gen, dtype=DT)
    for t in (0.05, 0.5):
        assert cons.asymmetry(model.score, x, t).max() < 1e-10
        assert cons.asymmetry(free.score, x, t).min() > 1e-4


# --- line integrals --------------------------------------------------------------------------
def test_circulation_of_gradient_and_rotation(gen):
    n, R = 40, 0.8
    c = torch.randn(3, 2, generator=gen, dtype=DT)
    loops = cons.circle_loops(c, R, n)
    assert loops.shape == (n + 1, 3, 2) and torch.equal(loops[0], loops[-1])
    proc, g = VP(), aniso()
    circ = cons.circulation(lambda y: g.score(y, 0.2, proc), loops)
    assert circ.abs().max() < 1e-10
    # a linear field: Gauss-Legendre is exact, circulation = curl x polygon area (Stokes)
    A = gauge.rotation_matrix(2)
    area = 0.5 * n * R**2 * math.sin(2 * PI / n)
    circ = cons.circulation(lambda y: 1.5 * (y - c[0]) @ A.T, loops)
    assert torch.allclose(circ, torch.full((3,), 3.0 * area, dtype=DT), rtol=1e-12)
    ratio = cons.circulation_ratio(lambda y: (y - c[0]) @ A.T, loops[:, :1])
    assert 0.99 < float(ratio[0]) <= 1  # on the polygon the field is not quite along each chord
    assert cons.circulation_ratio(lambda y: g.score(y, 0.2, proc), loops).max() < 1e-10


def test_circulation_in_a_plane_of_higher_dimension(gen):
    c = torch.zeros(4, dtype=DT)
    loop = cons.circle_loops(c, 1.0, 200, dims=(1, 3))
    A = gauge.rotation_matrix(4, plane=(1, 3))
    circ = cons.circulation(lambda y: y @ A.T, loop)
    assert abs(float(circ[0]) - 2 * 0.5 * 200 * math.sin(2 * PI / 200)) < 1e-12


def test_path_dependence(gen):
    a, b = torch.tensor([-1.0, 0.0], dtype=DT), torch.tensor([1.0, 0.0], dtype=DT)
    s = torch.linspace(0, 1, 33, dtype=DT)[:, None]
    straight = a + s * (b - a)
    th = torch.linspace(PI, 0, 33, dtype=DT)
    arc = torch.stack([torch.cos(th), torch.sin(th)], 1)
    arc[0], arc[-1] = a, b
    proc, g = VP(), aniso()
    assert abs(float(cons.path_dependence(lambda y: g.score(y, 0.3, proc), straight, arc)[0])) < 1e-8
    A = gauge.rotation_matrix(2)
    dep = cons.path_dependence(lambda y: y @ A.T, straight, arc)
    loop = torch.cat([straight, arc.flip(0)[1:]])
    assert torch.allclose(dep, cons.circulation(lambda y: y @ A.T, loop))
    assert abs(float(dep[0])) > 2.0  # about curl x half-disc area = 2 x pi/2


# --- bad input -------------------------------------------------------------------------------
def test_bad_input_is_named():
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        cons.jacobian_at(lambda y: y, [[0.0, 0.0]])
    with pytest.raises(ValueError, match=r"J must have shape \(B, D, D\)"):
        cons.asymmetry_ratio(torch.zeros(2, 2, 3))
    with pytest.raises(ValueError, match="x must have shape"):
        cons.curl_2d(lambda y: y, torch.zeros(2, 3, dtype=DT))
    with pytest.raises(ValueError, match="radius"):
        cons.circle_loops(torch.zeros(2, dtype=DT), -1.0)
    with pytest.raises(ValueError, match="loop must be closed"):
        cons.circulation(lambda y: y, torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=DT))
    with pytest.raises(ValueError, match="end points"):
        cons.path_dependence(lambda y: y, torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=DT),
                          torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=DT))


def test_linear_circulation_is_stokes_for_linear_fields(gen):
    M = torch.tensor([[0.4, -1.3], [0.7, 2.0]], dtype=DT)
    c = torch.randn(3, 2, generator=gen, dtype=DT)
    n, R = 4096, 1.7
    poly = cons.circulation(lambda y: y @ M.T, cons.circle_loops(c, R, n))  # exact on each segment
    inscribed = 0.5 * n * math.sin(2 * PI / n) / PI  # polygon area / circle area
    assert torch.allclose(poly, torch.full((3,), cons.linear_circulation(M, R) * inscribed, dtype=DT), rtol=1e-12)
    assert cons.linear_circulation(0.5 * gauge.rotation_matrix(2), 2.0) == pytest.approx(4 * PI, rel=1e-15)
    with pytest.raises(ValueError, match="radius must be"):
        cons.linear_circulation(M, 0.0)
    with pytest.raises(ValueError, match="M must be"):
        cons.linear_circulation(torch.ones(3), 1.0)


def test_loops_and_paths_check_their_arguments():
    """Issue 21 (property tests): radius=True and '0.5' passed or gave ValueError, NaN paths gave NaN
    integrals, NaN M a NaN circulation, dims of strings a comparison TypeError."""
    c = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match="radius must be a real number"):
        cons.circle_loops(c, True)
    with pytest.raises(TypeError, match="radius must be a real number"):
        cons.circle_loops(c, "0.5")
    with pytest.raises(TypeError, match="n .* must be an integer; got bool"):
        cons.circle_loops(c, 1.0, True)
    with pytest.raises(TypeError, match="dims .* must be an integer; got str"):
        cons.circle_loops(c, 1.0, dims=("a", "b"))
    with pytest.raises(ValueError, match="dims must be 2 different coordinates of 0..1"):
        cons.circle_loops(c, 1.0, dims=(0, 0))
    with pytest.raises(ValueError, match="centers must be finite"):
        cons.circle_loops(torch.tensor([math.nan, 0.0]), 1.0)
    with pytest.raises(ValueError, match="centers must have D >= 2"):
        cons.circle_loops(torch.zeros(1), 1.0)
    path = torch.zeros(3, 2, 2, dtype=torch.float64)
    path[1, 0, 0] = math.nan
    with pytest.raises(ValueError, match="path must be finite"):
        cons.line_integral(lambda x: x, path)
    with pytest.raises(TypeError, match="nodes must be an integer; got bool"):
        cons.line_integral(lambda x: x, torch.zeros(3, 2, dtype=torch.float64), nodes=True)
    with pytest.raises(ValueError, match="M must be finite"):
        cons.linear_circulation([[0.0, math.nan], [1.0, 0.0]], 1.0)


def test_asymmetry_hutchinson_estimates_the_exact_ratio():
    """JVP/VJP estimate against the exact Jacobian ratio: consistent as probes grow, exact zero for
    a gradient (symmetric Jacobian), and the squared norms unbiased for every probe count."""
    from diffedu.conservativity import asymmetry, asymmetry_hutchinson

    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 30, 30, dtype=torch.float64, generator=g)
    f = lambda x: torch.einsum("bij,bj->bi", A[: x.shape[0]], x) + 0.1 * x**3  # noqa: E731
    x = torch.randn(4, 30, dtype=torch.float64, generator=g)
    exact = asymmetry(f, x)
    est = asymmetry_hutchinson(f, x, n_probes=400, generator=g)
    assert torch.allclose(est, exact, rtol=0.03)
    S = A + A.transpose(1, 2)
    assert float(asymmetry_hutchinson(lambda y: torch.einsum("bij,bj->bi", S, y), x, n_probes=3, generator=g).max()) < 1e-12
    rot = lambda y: torch.einsum("ij,bj->bi", A[0] - A[0].T, y)  # noqa: E731  a pure rotation: ratio 2
    assert torch.allclose(asymmetry_hutchinson(rot, x, n_probes=2, generator=g), torch.full((4,), 2.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="field must return"):
        asymmetry_hutchinson(lambda y: y[:, :2], x)
