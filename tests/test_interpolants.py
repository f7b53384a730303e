"""diffedu.interpolants: exact fields checked by autograd, the transport equation, Monte Carlo,
the diffusion special case, scipy's ODE solver and SDE marginals."""

import math

import pytest
import torch
from scipy.integrate import solve_ivp

from diffedu import Gaussian, GaussianMixture, Linear
from diffedu.interpolants import (GaussianMixtureInterpolant, LinearInterpolant, TrigInterpolant,
                                  ode_trajectory, sde_trajectory)
import diffedu as de
from diffedu import interpolants as di

F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def rho0():
    return GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.5, -0.5]],
                           [[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.4]]])


def rho1():
    return GaussianMixture([0.5, 0.5], [[0.0, 2.0], [0.0, -2.0]], [[0.5, 0.3], [0.3, 0.5]])


BRIDGES = [LinearInterpolant(0.0), LinearInterpolant(0.5), TrigInterpolant(1.0)]


@pytest.mark.parametrize("interp", BRIDGES)
@pytest.mark.parametrize("t", [0.0, 0.3, 1.0])
def test_score_is_the_gradient_of_the_log_density(interp, t):
    br = GaussianMixtureInterpolant(interp, rho0(), rho1())
    x = torch.randn(8, 2, generator=gen(0), dtype=F64).requires_grad_(True)
    g, = torch.autograd.grad(br.log_prob(x, t).sum(), x)
    assert torch.allclose(br.score(x.detach(), t), g, atol=1e-10)


@pytest.mark.parametrize("interp", BRIDGES)
def test_velocity_solves_the_transport_equation(interp):
    """d_t log rho + div b + b . grad log rho = 0, every term by autograd."""
    br = GaussianMixtureInterpolant(interp, rho0(), rho1())
    xs = torch.randn(5, 2, generator=gen(1), dtype=F64)
    for t0 in (0.1, 0.5, 0.85):
        for x in xs:
            t = torch.tensor(t0, dtype=F64, requires_grad=True)
            xi = x[None].clone().requires_grad_(True)
            dlogp_dt, = torch.autograd.grad(br.log_prob(xi, t).sum(), t)
            b = br.velocity(xi, t0)
            div = sum(torch.autograd.grad(b[0, d], xi, retain_graph=True)[0][0, d] for d in range(2))
            resid = dlogp_dt + div + (b * br.score(xi.detach(), t0)).sum()
            assert abs(float(resid.detach())) < 1e-10


def test_velocity_is_the_conditional_mean_of_dx_dt_by_monte_carlo():
    """E[phi(x_t) . b(x_t)] = E[phi(x_t) . (alpha' x0 + beta' x1 + gamma' z)] for test functions phi."""
    interp = LinearInterpolant(0.5)
    br = GaussianMixtureInterpolant(interp, rho0(), rho1())
    n, t = 200000, torch.tensor(0.4, dtype=F64)
    g = gen(2)
    x0, x1 = rho0().sample(n, generator=g, dtype=F64), rho1().sample(n, generator=g, dtype=F64)
    z = torch.randn(n, 2, generator=g, dtype=F64)
    xt = interp.alpha(t) * x0 + interp.beta(t) * x1 + interp.gamma(t) * z
    dx = interp.d_alpha(t) * x0 + interp.d_beta(t) * x1 + 0.5 * interp.d_gamma2(t) / interp.gamma(t) * z
    b = br.velocity(xt, 0.4)
    for phi in (lambda x: x, torch.tanh, lambda x: torch.sin(x.flip(1))):
        d = (phi(xt) * (b - dx)).sum(1)
        assert abs(float(d.mean())) < 4 * float(d.std()) / math.sqrt(n)
        assert float(d.std()) / math.sqrt(n) < 0.02  # the check has power


def test_diffusion_is_the_special_case_with_gaussian_rho1():
    """gamma = 0 and rho_1 = N(0, I): the Linear process's PF-ODE velocity f x - g^2 s / 2."""
    data = rho0()
    br = GaussianMixtureInterpolant(LinearInterpolant(0.0), data, Gaussian([0.0, 0.0], [1.0, 1.0]))
    P = Linear()
    x = torch.randn(10, 2, generator=gen(3), dtype=F64)
    for t in (0.05, 0.4, 0.9):
        v = P.f(t) * x - 0.5 * P.g2(t) * data.score(x, t, P)
        assert torch.allclose(br.velocity(x, t), v, atol=1e-12)
        assert torch.allclose(br.score(x, t), data.score(x, t, P), atol=1e-12)
        assert torch.allclose(br.log_prob(x, t), data.log_prob(x, t, P), atol=1e-12)


def test_gaussian_to_gaussian_flow_map_is_exact():
    """The velocity between two Gaussians is linear, so the flow map is x -> A x + c. Integrate
    dA/dt = M(t) A with scipy: A C0 A^T = C1 and A m0 + c = m1 (non-commuting covariances)."""
    m0, C0 = torch.tensor([1.0, -1.0], dtype=F64), torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=F64)
    m1, C1 = torch.tensor([-2.0, 0.5], dtype=F64), torch.tensor([[0.3, -0.2], [-0.2, 2.0]], dtype=F64)
    br = GaussianMixtureInterpolant(LinearInterpolant(0.3), Gaussian(m0, C0), Gaussian(m1, C1))

    def rhs(t, y):
        _, mu, cov, dmu, hdc = br.components(float(t))
        M = hdc[0] @ torch.linalg.inv(cov[0])
        A, c = torch.as_tensor(y[:4], dtype=F64).reshape(2, 2), torch.as_tensor(y[4:], dtype=F64)
        # x' = dmu + M (x - mu) with x = A x0 + c  =>  A' = M A,  c' = dmu - M mu + M c
        return torch.cat([(M @ A).reshape(-1), dmu[0] - M @ mu[0] + M @ c]).numpy()

    sol = solve_ivp(rhs, (0.0, 1.0), [1.0, 0, 0, 1.0, 0, 0], method="DOP853", rtol=1e-10, atol=1e-12)
    A, c = torch.as_tensor(sol.y[:4, -1], dtype=F64).reshape(2, 2), torch.as_tensor(sol.y[4:, -1], dtype=F64)
    assert torch.allclose(A @ C0 @ A.T, C1, atol=1e-8)
    assert torch.allclose(A @ m0 + c, m1, atol=1e-8)
    # the library's RK4 integrator pushes points along the same map, in both directions
    x = torch.randn(16, 2, generator=gen(4), dtype=F64)
    ts = torch.linspace(0, 1, 101, dtype=F64)
    traj = ode_trajectory(br.velocity, x, ts)
    assert traj.shape == (101, 16, 2)
    y = traj[-1]
    assert torch.allclose(y, x @ A.T + c, atol=1e-7)
    assert torch.allclose(ode_trajectory(br.velocity, y, ts.flip(0))[-1], x, atol=1e-7)


def test_sde_family_shares_the_marginals():
    """Backward SDEs with eps = 0, 0.5, 2 from rho_1 samples: the law at t = 0.5 and at t = 0
    matches rho_t (mean, covariance, weight of the x < 0 half-plane), while paths differ."""
    br = GaussianMixtureInterpolant(LinearInterpolant(0.5), rho0(), rho1())
    n = 4000
    x1 = rho1().sample(n, generator=gen(5), dtype=F64)
    ts = torch.linspace(1, 0, 101, dtype=F64)
    ref = {t: br.sample(200000, t, generator=gen(6)) for t in (0.5, 0.0)}
    finals = []
    for i, eps in enumerate((0.0, 0.5, 2.0)):
        traj = sde_trajectory(br, x1, ts, eps, generator=gen(7 + i))
        for k, t in ((50, 0.5), (100, 0.0)):
            x, r = traj[k], ref[t]
            se = r.std(0) / math.sqrt(n)
            assert ((x.mean(0) - r.mean(0)).abs() < 5 * se + 0.02).all(), (eps, t)
            assert (torch.cov(x.T) - torch.cov(r.T)).abs().max() < 0.1, (eps, t)
            assert abs(float((x[:, 0] < 0).double().mean() - (r[:, 0] < 0).double().mean())) < 0.04
        finals.append(traj[-1])
    assert (finals[0] - finals[2]).norm(dim=1).mean() > 0.3  # the trajectories do differ


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="a \\(the noise amplitude"):
        LinearInterpolant(-1.0)
    with pytest.raises(TypeError, match="rho1"):
        GaussianMixtureInterpolant(LinearInterpolant(), rho0(), "normal")
    with pytest.raises(TypeError, match="interpolant"):
        GaussianMixtureInterpolant(Linear(), rho0(), rho1())
    with pytest.raises(ValueError, match="same dimension"):
        GaussianMixtureInterpolant(LinearInterpolant(), rho0(), Gaussian([0.0], [1.0]))
    br = GaussianMixtureInterpolant(LinearInterpolant(0.5), rho0(), rho1())
    with pytest.raises(ValueError, match="t must lie in"):
        br.velocity(torch.zeros(2, 2, dtype=F64), 1.5)
    with pytest.raises(ValueError, match="x must have shape"):
        br.score(torch.zeros(2, 3, dtype=F64), 0.5)
    with pytest.raises(ValueError, match="eps"):
        sde_trajectory(br, torch.zeros(2, 2, dtype=F64), torch.linspace(1, 0, 3), -1.0)
    with pytest.raises(ValueError, match="ts must be strictly monotone"):
        ode_trajectory(br.velocity, torch.zeros(2, 2, dtype=F64), torch.tensor([0.0, 0.5, 0.2]))
    singular = GaussianMixtureInterpolant(LinearInterpolant(0.0), Gaussian([0.0, 0.0], [1.0, 0.0]), rho1())
    with pytest.raises(ValueError, match="singular"):
        singular.score(torch.zeros(1, 2, dtype=F64), 0.0)


def test_times_and_parameters_are_checked():
    """Issue 21 (property tests): the coefficient functions took any t (alpha(-5) = 6, a complex t was cast);
    a and eps were ValueErrors for a numeric string; a velocity returning (B, D + 1) failed inside torch."""
    I = LinearInterpolant()
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        I.alpha(-5.0)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        TrigInterpolant().gamma2(math.nan)
    with pytest.raises(TypeError, match="t must be a real float or a 0-d tensor; got a torch.complex64 tensor"):
        I.beta(torch.tensor(0.5 + 0j))
    with pytest.raises(TypeError, match="a .* must be a real number; got str"):
        LinearInterpolant("0.5")
    bridge = GaussianMixtureInterpolant(I, Gaussian([0.0], [1.0]), Gaussian([0.0], [1.0]))
    with pytest.raises(TypeError, match="eps .* must be a real number; got str"):
        bridge.drift(torch.zeros(2, 1), 0.5, "0.1")
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        bridge.sample(3, 0.5, dtype="float32")
    with pytest.raises(ValueError, match="velocity must return a tensor of x's shape"):
        ode_trajectory(lambda x, t: torch.cat([x, x], 1), torch.zeros(2, 1), [0.0, 1.0])
    with pytest.raises(TypeError, match="ts must be a 1-D tensor or sequence of times; got str"):
        ode_trajectory(bridge.velocity, torch.zeros(2, 1), "abc")


# --- issue 18: batched coefficients, Euler paths, one SDE step, and an SDE with a replaced velocity ----
def test_coefficients_take_a_batch_of_times():
    I = di.TrigInterpolant(0.6)
    t = torch.tensor([0.0, 0.25, 0.9, 1.0], dtype=F64)
    for name in ("alpha", "beta", "d_alpha", "d_beta", "gamma2", "d_gamma2", "gamma"):
        batch = getattr(I, name)(t)
        torch.testing.assert_close(batch, torch.stack([getattr(I, name)(float(s)) for s in t]))
    with pytest.raises(ValueError, match="t must lie in"):
        I.alpha(torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="a float, a 0-d or a \\(B,\\) tensor"):
        I.alpha(torch.zeros(2, 2))


def test_euler_paths_converge_at_first_order():
    g0, g1 = de.Gaussian([1.0, -1.0], [[1.0, 0.6], [0.6, 0.5]]), de.Gaussian([0.0, 0.0], [1.0, 1.0])
    b = di.GaussianMixtureInterpolant(di.LinearInterpolant(0.0), g0, g1)
    x1 = g1.sample(50, generator=torch.Generator().manual_seed(0), dtype=F64)
    ref = di.ode_trajectory(b.velocity, x1, torch.linspace(1, 0, 401, dtype=F64))[-1]
    errs = [float((di.ode_trajectory(b.velocity, x1, torch.linspace(1, 0, n + 1, dtype=F64), method="euler")[-1]
                   - ref).norm(dim=1).max()) for n in (20, 40, 80)]
    assert 1.7 < errs[0] / errs[1] < 2.3 and 1.7 < errs[1] / errs[2] < 2.3


def test_sde_step_and_a_replaced_velocity():
    data = de.GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], [[0.3, 0.3], [0.3, 0.3]])
    b = di.GaussianMixtureInterpolant(di.LinearInterpolant(0.5), data, de.Gaussian([0.0, 0.0], [1.0, 1.0]))
    g = torch.Generator().manual_seed(1)
    x, z = torch.randn(6, 2, generator=g, dtype=F64), torch.randn(6, 2, generator=g, dtype=F64)
    step = di.sde_step(b.velocity, b.score, x, 0.6, -0.1, 0.7, z)
    torch.testing.assert_close(step, x - 0.1 * (b.velocity(x, 0.6) - 0.7 * b.score(x, 0.6)) + (2 * 0.7 * 0.1) ** 0.5 * z)
    ts = torch.linspace(1, 0, 11, dtype=F64)
    same = di.sde_trajectory(b, x, ts, 0.5, generator=torch.Generator().manual_seed(2))
    explicit = di.sde_trajectory(b, x, ts, 0.5, generator=torch.Generator().manual_seed(2), velocity=b.velocity,
                                 score=b.score)
    torch.testing.assert_close(same, explicit)
    # a constant replaced velocity and eps = 0: the paths move by exactly -1 from t = 1 to t = 0
    shifted = di.sde_trajectory(b, x, ts, 0.0, velocity=lambda y, t: torch.ones_like(y))
    torch.testing.assert_close(shifted[-1], x - 1.0)
