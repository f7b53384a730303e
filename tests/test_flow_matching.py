"""diffedu.flow_matching, training.flow_matching_loss and nets.VelocityMLP (issue 18, point 1): the
conditional velocity is the time derivative of the path, the loss splits into an error and a floor,
the exact velocity variance against Monte Carlo, minibatch OT against an independent assignment
solver, straightness of straight and curved flows, and a trained velocity against the exact one."""

import math

import pytest
import torch
from scipy.optimize import linear_sum_assignment

import diffedu as de
from diffedu import flow_matching as fm
from diffedu import interpolants as di
from diffedu.nets import VelocityMLP
from diffedu.training import flow_matching_loss, train

F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def bridge():
    data = de.GaussianMixture([0.35, 0.35, 0.3], [[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]],
                              [[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.3]], [[0.25, 0.0], [0.0, 0.15]]])
    return di.GaussianMixtureInterpolant(di.LinearInterpolant(0.0), data, de.Gaussian([0.0, 0.0], [1.0, 1.0]))


def test_conditional_velocity_is_the_time_derivative_of_the_path():
    g = gen(0)
    x0, x1, z = (torch.randn(5, 3, generator=g, dtype=F64) for _ in range(3))
    t, h = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=F64), 1e-6
    for I in (di.LinearInterpolant(0.0), di.TrigInterpolant(0.7), di.LinearInterpolant(1.3)):
        zz = z if float(I.gamma2(0.5)) > 0 else None
        _, u = fm.conditional_velocity(I, x0, x1, t, zz)
        xp, _ = fm.conditional_velocity(I, x0, x1, t + h, zz)
        xm, _ = fm.conditional_velocity(I, x0, x1, t - h, zz)
        torch.testing.assert_close(u, (xp - xm) / (2 * h), rtol=1e-7, atol=1e-7)   # central difference
    with pytest.raises(ValueError, match="pass the latent noise z"):
        fm.conditional_velocity(di.LinearInterpolant(1.0), x0, x1, 0.5)


def test_the_loss_splits_into_error_and_floor(bridge):
    """Eq. (1) on shared draws: the exact velocity's loss is the floor (velocity_variance), and a
    perturbed field's loss exceeds it by its mean squared error, both within Monte Carlo error."""
    g = gen(1)
    k = 4000
    x0 = bridge.rho0.sample(k, generator=g, dtype=F64)
    x1 = torch.randn(k, 2, generator=g, dtype=F64)
    grid = torch.linspace(0.05, 0.95, 19, dtype=F64)
    t = grid[torch.randint(0, 19, (k,), generator=g)]
    I = bridge.interpolant
    xt, _ = fm.conditional_velocity(I, x0, x1, t)

    def per_t(field, x, tt):   # a field of the bridge evaluated row by row at each row's own t
        out = torch.empty_like(x)
        for s in tt.unique().tolist():
            rows = tt == s
            out[rows] = field(x[rows], s)
        return out

    exact = lambda x, tt: per_t(bridge.velocity, x, tt)  # noqa: E731
    terms = fm.fm_terms(exact, I, x0, x1, t)
    floor = per_t(lambda x, s: fm.velocity_variance(bridge, x, s)[:, None].expand_as(x), xt, t)[:, 0]
    d = terms - floor
    assert abs(float(d.mean())) < 3 * float(d.std()) / math.sqrt(k)
    A = torch.tensor([[0.0, -0.5], [0.5, 0.0]], dtype=F64)
    wrong = lambda x, tt: exact(x, tt) + x @ A.T  # noqa: E731
    extra = fm.fm_terms(wrong, I, x0, x1, t) - terms
    e = extra - ((xt @ A.T) ** 2).sum(1)
    assert abs(float(e.mean())) < 3 * float(e.std()) / math.sqrt(k)


def test_velocity_variance_against_the_law_of_total_variance_and_a_single_gaussian(bridge):
    g = gen(2)
    I = bridge.interpolant
    for t in (0.2, 0.6):
        x0 = bridge.rho0.sample(100000, generator=g, dtype=F64)
        x1 = torch.randn(100000, 2, generator=g, dtype=F64)
        xt, u = fm.conditional_velocity(I, x0, x1, t)
        d = (u**2).sum(1) - (bridge.velocity(xt, t) ** 2).sum(1) - fm.velocity_variance(bridge, xt, t)
        assert abs(float(d.mean())) < 3 * float(d.std()) / math.sqrt(100000)
    # one Gaussian pair: the conditional covariance is constant, the empirical one of (u, x_t) agrees
    g0, g1 = de.Gaussian([1.0, -1.0], [[1.0, 0.6], [0.6, 0.5]]), de.Gaussian([0.0, 0.0], [1.0, 1.0])
    one = di.GaussianMixtureInterpolant(di.TrigInterpolant(0.5), g0, g1)
    t = 0.4
    x0, x1 = g0.sample(200000, generator=g, dtype=F64), g1.sample(200000, generator=g, dtype=F64)
    z = torch.randn(200000, 2, generator=g, dtype=F64)
    xt, u = fm.conditional_velocity(one.interpolant, x0, x1, t, z)
    C = torch.cov(torch.cat([u, xt], 1).T)
    cond = C[:2, :2] - C[:2, 2:] @ torch.linalg.solve(C[2:, 2:], C[2:, :2])
    vv = fm.velocity_variance(one, xt[:5], t)
    assert float((vv - vv[0]).abs().max()) < 1e-12
    assert abs(float(vv[0]) - float(torch.trace(cond))) < 0.02 * float(torch.trace(cond))


def test_floor_is_the_average_over_t(bridge):
    m, se = fm.fm_floor(bridge, n=4000, generator=gen(3))
    assert 0 < se < 0.05 * m
    ts = torch.linspace(0.0125, 0.9875, 40)
    direct = sum(float(fm.velocity_variance(bridge, bridge.sample(2000, float(t), generator=gen(4)), float(t)).mean())
                 for t in ts) / 40
    assert abs(m - direct) < 4 * se + 0.02 * m


def test_ot_coupling_is_the_optimal_assignment():
    g = gen(5)
    x0, x1 = torch.randn(64, 2, generator=g, dtype=F64), torch.randn(64, 2, generator=g, dtype=F64) + 1.0
    p = fm.ot_coupling(x0, x1)
    assert sorted(p.tolist()) == list(range(64))
    cost = torch.cdist(x0, x1) ** 2
    r, c = linear_sum_assignment(cost.numpy())
    assert abs(float(cost[torch.arange(64), p].sum()) - float(cost[r, c].sum())) < 1e-9
    assert float(cost[torch.arange(64), p].sum()) < float(cost.diagonal().sum())


def test_straightness_of_straight_and_curved_flows():
    g = gen(6)
    x1 = torch.randn(200, 2, generator=g, dtype=F64)
    c = torch.tensor([1.0, -2.0], dtype=F64)
    s, se, x0 = fm.straightness(lambda x, t: c.expand_as(x), x1, steps=10)
    assert s < 1e-20 and torch.allclose(x0, x1 - c)
    # a rotation: the paths are arcs of angle w, the chord speed |x|*2 sin(w/2) and the speed |x| w,
    # constant along the arc, so S = E|x|^2 (w^2 + 4 sin^2(w/2) - 2 w * 2 sin(w/2) cos(0)) averaged exactly
    w = 1.2
    A = torch.tensor([[0.0, -w], [w, 0.0]], dtype=F64)
    s, se, x0 = fm.straightness(lambda x, t: x @ A.T, x1, steps=400)
    r2 = (x1**2).sum(1)
    # |v - chord|^2 = |v|^2 + |chord|^2 - 2 v.chord; v.chord averaged over the arc = |x|^2 w * 2 sin(w/2) * (2/w) sin(w/2)
    exact = r2 * (w**2 + 4 * math.sin(w / 2) ** 2 - 2 * 4 * math.sin(w / 2) ** 2)
    assert abs(s - float(exact.mean())) < 1e-4


def test_a_trained_velocity_matches_the_exact_one(bridge):
    """1,500 steps of flow matching (independent coupling) on the three-Gaussian mixture: the
    p_t-weighted relative error of the learned velocity is below 0.2 at t = 0.2, 0.5 and 0.8 (about
    0.1 measured), and the training loss ends within 5% of the floor."""
    torch.manual_seed(0)
    net = VelocityMLP(2, hidden=64, depth=3, generator=gen(0))
    run = train(net, flow_matching_loss(), bridge.rho0.sample, steps=1500, batch_size=256, generator=gen(1))
    floor, _ = fm.fm_floor(bridge, generator=gen(2))
    assert float(run.losses[-200:].mean()) < 1.05 * floor
    for t in (0.2, 0.5, 0.8):
        x = bridge.sample(4000, t, generator=gen(3))
        b = bridge.velocity(x, t)
        with torch.no_grad():
            v = net.velocity(x.float(), t).double()
        assert math.sqrt(float(((v - b) ** 2).sum(1).mean() / (b**2).sum(1).mean())) < 0.2


def test_couplings_and_bad_input():
    x0 = torch.randn(32, 2, generator=gen(7))
    net = VelocityMLP(2, hidden=8, depth=1, generator=gen(0))
    for coupling in ("independent", "ot"):
        assert torch.isfinite(flow_matching_loss(coupling=coupling)(net, x0, generator=gen(1)))
    x1 = torch.randn(32, 2, generator=gen(8))
    assert torch.isfinite(flow_matching_loss(coupling="given")(net, x0, x1, generator=gen(1)))
    with pytest.raises(ValueError, match="labels"):
        flow_matching_loss(coupling="given")(net, x0, generator=gen(1))
    with pytest.raises(ValueError, match="coupling"):
        flow_matching_loss(coupling="sinkhorn")
    with pytest.raises(TypeError, match="interpolant"):
        flow_matching_loss("linear")
    with pytest.raises(ValueError, match="t must"):
        net.velocity(x0, torch.zeros(3))


def test_relative_velocity_error_of_a_scaled_field(bridge):
    """v = (1 + c) b has relative error |c| exactly, at every t; the exact field has error 0."""
    for t in (0.1, 0.5, 0.9):
        err, se = fm.relative_velocity_error(lambda x, s: 1.3 * bridge.velocity(x, s), bridge, t, n=500, generator=gen(9))
        assert abs(err - 0.3) < 1e-12 and se < 1e-12
        assert fm.relative_velocity_error(bridge.velocity, bridge, t, n=100, generator=gen(9))[0] == 0.0
    # a field off by a constant c: error^2 = |c|^2 / E|b|^2, checked against a large independent sample
    c = torch.tensor([0.2, -0.1], dtype=F64)
    err, se = fm.relative_velocity_error(lambda x, s: bridge.velocity(x, s) + c, bridge, 0.4, n=5000, generator=gen(10))
    b = bridge.velocity(bridge.sample(100000, 0.4, generator=gen(11)), 0.4)
    assert abs(err - math.sqrt(float((c**2).sum() / (b**2).sum(1).mean()))) < 4 * se
    with pytest.raises(TypeError, match="bridge"):
        fm.relative_velocity_error(bridge.velocity, "bridge", 0.5)
