"""diffedu.gauge: gauge fields have zero weighted divergence (autograd) and keep the PF-ODE's
exact Gaussian covariance; plain rotations do not."""

import math

import pytest
import torch

from diffedu import EDM, VP, Gaussian, GaussianMixture
from diffedu import gauge
from diffedu.calculus import divergence
from diffedu.flows import denoiser_from_score, pf_ode_velocity

DT = torch.float64
PI = math.pi


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def aniso():
    return Gaussian([0.3, -0.2], [[1.0, 0.45], [0.45, 0.3]])


# --- gauge fields and the PF-ODE ------------------------------------------------------------
def test_gauge_rotation_has_zero_weighted_divergence(gen):
    proc, t = EDM(), 0.7
    x = torch.randn(10, 3, generator=gen, dtype=DT)
    g = Gaussian([0.1, 0.2, -0.3], [[2.0, 0.3, 0.1], [0.3, 0.5, 0.0], [0.1, 0.0, 1.0]])
    A = torch.tensor([[0.0, 1.0, -2.0], [-1.0, 0.0, 0.5], [2.0, -0.5, 0.0]], dtype=DT)

    def wdiv(r):
        return divergence(lambda y: g.log_prob(y, t, proc).exp()[:, None] * r(y, t), x)

    p = g.log_prob(x, t, proc).exp()
    assert (wdiv(gauge.gauge_rotation(g, proc, 1.3, A)).abs() / p).max() < 1e-10
    assert (wdiv(gauge.plain_rotation(g, proc, 1.3, A)).abs() / p).max() > 1e-2
    iso = Gaussian([0.1, 0.2, -0.3], [0.7, 0.7, 0.7])  # isotropic: a plain rotation is a gauge field
    assert (divergence(lambda y: iso.log_prob(y, t, proc).exp()[:, None] * gauge.plain_rotation(iso, proc, 1.3, A)(y, t), x).abs()
            / iso.log_prob(x, t, proc).exp()).max() < 1e-10


def test_gauge_rotated_pf_ode_keeps_the_exact_covariance_and_plain_rotation_does_not():
    proc, g = VP(), aniso()
    T, t_end = 1.0, 0.01
    exact = g.marginal_cov(t_end, proc)
    errs = {}
    for name, r in (("gauge", gauge.gauge_rotation(g, proc, 2.0)), ("plain", gauge.plain_rotation(g, proc, 2.0))):
        D = denoiser_from_score(lambda x, t, r=r: g.score(x, t, proc) + r(x, t), proc)
        m, C = gauge.affine_flow_moments(lambda x, t, D=D: pf_ode_velocity(D, proc, x, t),
                                     g.mean * proc.alpha(T), g.marginal_cov(T, proc), T, t_end, rtol=1e-6, atol=1e-9)
        errs[name] = float((C - exact).norm() / exact.norm())
        assert torch.allclose(m, g.mean * proc.alpha(t_end), atol=1e-6)
    assert errs["gauge"] < 1e-5
    assert errs["plain"] > 0.1


def test_linear_gauge_defect_is_zero_exactly_when_the_weighted_divergence_is(gen):
    C = torch.tensor([[2.0, 0.3, 0.1], [0.3, 0.5, 0.0], [0.1, 0.0, 1.0]], dtype=DT)
    A = torch.tensor([[0.0, 1.0, -2.0], [-1.0, 0.0, 0.5], [2.0, -0.5, 0.0]], dtype=DT)
    g = Gaussian([0.0, 0.0, 0.0], C)
    x = torch.randn(8, 3, generator=gen, dtype=DT)

    def p(y):
        return g.log_prob(y, 0.0, EDM()).exp()

    def wdiv(M):  # div(p M x) / p by autograd
        return divergence(lambda y: p(y)[:, None] * (y @ M.T), x) / p(x)

    good = C @ A                 # C^{-1} M = A: antisymmetric
    assert gauge.linear_gauge_defect(good, C) < 1e-14 and wdiv(good).abs().max() < 1e-10
    assert gauge.linear_gauge_defect(A, C) > 0.1 and wdiv(A).abs().max() > 1e-2   # plain rotation, anisotropic C
    assert gauge.linear_gauge_defect(A, 0.7 * torch.eye(3, dtype=DT)) == 0.0      # isotropic C: a gauge field
    assert gauge.linear_gauge_defect(torch.zeros(3, 3), C) == 0.0
    with pytest.raises(ValueError, match="M must have the shape"):
        gauge.linear_gauge_defect(torch.eye(2), C)


# --- bad input -------------------------------------------------------------------------------
def test_bad_input_is_named():
    proc = VP()
    g = aniso()
    with pytest.raises(TypeError, match="gaussian must be"):
        gauge.gauge_rotation(GaussianMixture([1.0], [[0.0, 0.0]], [[1.0, 1.0]]), proc)
    with pytest.raises(ValueError, match="A must be antisymmetric"):
        gauge.gauge_rotation(g, proc, 1.0, torch.eye(2))
    with pytest.raises(TypeError, match="process must be"):
        gauge.plain_rotation(g, "VP")
    with pytest.raises(ValueError, match=r"cov must have shape \(2, 2\)"):
        gauge.affine_flow_moments(lambda x, t: x, torch.zeros(2), torch.eye(3), 1.0, 0.5)


def test_affine_flow_moments_refuses_what_would_hang():
    """A velocity that is not affine, or that returns NaN, raises at once instead of running the
    moment ODE without end; so does a stiff one, after max_calls."""
    m, C = torch.zeros(2), torch.eye(2)
    with pytest.raises(ValueError, match="velocity must be affine in x"):
        gauge.affine_flow_moments(lambda x, t: x**3, m + 1, C, 1.0, 0.5)
    with pytest.raises(ValueError, match="velocity returned NaN or inf"):
        gauge.affine_flow_moments(lambda x, t: x * float("nan"), m, C, 1.0, 0.5)
    with pytest.raises(ValueError, match=r"velocity returned NaN or inf at t = 0\.[0-5]"):  # later on the way
        gauge.affine_flow_moments(lambda x, t: x * (float("nan") if t < 0.6 else 1.0), m, C, 1.0, 0.0)
    with pytest.raises(RuntimeError, match="max_calls = 50"):
        gauge.affine_flow_moments(lambda x, t: -1e6 * x, m, C, 1.0, 0.0, max_calls=50)
    mean, cov = gauge.affine_flow_moments(lambda x, t: -x, m + 1, C, 1.0, 0.0)
    torch.testing.assert_close(mean, torch.full((2,), float(torch.e), dtype=torch.float64), rtol=1e-7, atol=0)


def test_arguments_are_checked():
    """Issue 21 (property tests): strength '0.5' was a ValueError, NaN A passed the antisymmetry test, a bool
    dim was a ValueError and a string plane a comparison error, a negative-definite cov gave a defect,
    t_end '0.5' was accepted (float())."""
    G, p = Gaussian(torch.zeros(2), torch.eye(2)), VP()
    with pytest.raises(TypeError, match="strength must be a real number; got str"):
        gauge.gauge_rotation(G, p, "0.5")
    with pytest.raises(ValueError, match="A must be finite"):
        gauge.gauge_rotation(G, p, 1.0, torch.tensor([[0.0, math.nan], [math.nan, 0.0]]))
    with pytest.raises(TypeError, match="dim must be an integer; got bool"):
        gauge.rotation_matrix(True)
    with pytest.raises(TypeError, match="plane .* must be an integer; got str"):
        gauge.rotation_matrix(2, ("a", "b"))
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        gauge.rotation_matrix(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="cov must be positive semi-definite"):
        gauge.linear_gauge_defect(torch.eye(2), -torch.eye(2))
    with pytest.raises(ValueError, match="cov must be positive definite"):
        gauge.linear_gauge_defect(torch.eye(2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="cov must be positive semi-definite"):
        gauge.affine_flow_moments(lambda x, t: -x, [0.0], [[-1.0]], 0.0, 1.0)
    with pytest.raises(TypeError, match="t_end must be a real number; got str"):
        gauge.gauge_flow_summary(G, p, t_end="0.5")
    with pytest.raises(ValueError, match="t_end must be > 0.0 here"):
        gauge.gauge_flow_summary(G, p, t_end=0.0)


def test_gauge_defect_is_zero_for_a_gauge_rotation_and_not_for_a_plain_one():
    """div(p r) / p from autograd against the closed form -gamma (x - m)^T C^-1 A (x - m) of the
    plain rotation (lesson 12), and 0 for the gauge rotation."""
    from diffedu.gauge import gauge_defect, gauge_rotation, plain_rotation, rotation_matrix

    vp = VP()
    g = Gaussian([0.3, -0.2], [[1.0, 0.45], [0.45, 0.3]])
    x = g.sample_marginal(20, 0.3, vp, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = lambda y, t: g.score(y, t, vp)  # noqa: E731
    assert float(gauge_defect(gauge_rotation(g, vp, 1.5), s, x, 0.3).abs().max()) < 1e-10
    A = rotation_matrix(2)
    C = g.marginal_cov(0.3, vp)
    d = x - g.mean * vp.alpha(0.3)
    closed = -1.5 * ((d @ torch.linalg.inv(C)) * (d @ A.T)).sum(1)
    assert torch.allclose(gauge_defect(plain_rotation(g, vp, 1.5), s, x, 0.3), closed, atol=1e-10)
