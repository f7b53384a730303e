"""The numerical flow map against exact answers: the Gaussian flow, a solve in t, moments, subspaces."""

import math

import pytest
import torch

from diffedu import EDM, VE, VP, Gaussian, GaussianMixture, Linear, LowRankMixture, VPCosine, datasets
from diffedu.flow_map import consistency_sampler, flow_jacobian, pf_ode_flow, pf_ode_path

F64 = torch.float64
PROCESSES = {"VP": VP(), "VPCosine": VPCosine(), "VE": VE(), "EDM": EDM(), "Linear": Linear()}


def gaussian3():
    A = torch.tensor([[1.0, 0.3, -0.5], [0.2, 0.8, 0.1], [-0.4, 0.6, 1.2]], dtype=F64)
    return Gaussian(torch.tensor([1.0, -2.0, 0.5], dtype=F64), A @ A.T / 3 + 0.05 * torch.eye(3, dtype=F64))


def starts(dist, p, n=32, seed=0):
    return dist.sample_marginal(n, p.t_max, p, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("pname", list(PROCESSES))
def test_flow_matches_the_exact_gaussian_flow_row_by_row(pname):
    p, G = PROCESSES[pname], gaussian3()
    x = starts(G, p)
    D = G.bind(p).denoiser
    for t_to in (p.t_eps, 0.0, 0.3 * p.t_max):
        err = (pf_ode_flow(D, p, x, p.t_max, t_to) - G.flow(x, p.t_max, t_to, p)).norm(dim=1)
        assert float(err.max()) < 1e-7, (t_to, float(err.max()))
    # noising direction, from a clean-ish time up to t_max
    y = G.flow(x, p.t_max, 0.2 * p.t_max, p)
    back = pf_ode_flow(D, p, y, 0.2 * p.t_max, p.t_max)
    assert float(((back - x).norm(dim=1) / (1 + x.norm(dim=1))).max()) < 1e-8


def test_mixture_flow_of_one_component_is_the_gaussian_flow():
    p, G = VP(), gaussian3()
    M = GaussianMixture([1.0], G.mean[None], G.cov[None])
    x = starts(G, p, 16)
    path = M.flow_path(x, [1.0, 0.5, 0.1, 0.0], p)
    exact = G.flow_path(x, torch.tensor([1.0, 0.5, 0.1, 0.0], dtype=F64), p)
    assert float((path - exact).abs().max()) < 1e-7
    assert torch.equal(path[0], x)


def test_mixture_flow_agrees_with_an_independent_solve_in_t():
    """The ring's flow by pf_ode_flow (DOP853 in log sigma/alpha) against scipy's RK45 on dx/dt = v(x, t)."""
    from scipy.integrate import solve_ivp

    from diffedu.flows import pf_ode_velocity

    p, ring = EDM(), datasets.ring()
    x = starts(ring, p, 8)
    D = ring.bind(p).denoiser
    ours = ring.flow(x, p.t_max, 0.5, p)

    def rhs(t, y):
        return pf_ode_velocity(D, p, torch.from_numpy(y).reshape(8, 2), t).reshape(-1).numpy()
    sol = solve_ivp(rhs, (p.t_max, 0.5), x.reshape(-1).numpy(), method="RK45", rtol=1e-11, atol=1e-11)
    assert float((ours - torch.from_numpy(sol.y[:, -1]).reshape(8, 2)).abs().max()) < 1e-6


def test_mixture_flow_is_a_flow_semigroup_and_invertible():
    p, ring = VP(), datasets.ring()
    x = starts(ring, p, 16)
    direct = ring.flow(x, 1.0, 0.05, p)
    two = ring.flow(ring.flow(x, 1.0, 0.4, p), 0.4, 0.05, p)
    assert float((direct - two).abs().max()) < 1e-6
    assert float((ring.flow(direct, 0.05, 1.0, p) - x).abs().max()) < 1e-5


def test_mixture_flow_carries_p_T_to_p_0():
    """Seeded Monte Carlo: the flow of 4,000 draws of p_T has the mixture's mean, covariance and mode weights."""
    p, ring = VP(), datasets.ring()
    x = starts(ring, p, 4000, seed=3)
    x0 = ring.flow(x, 1.0, 0.0, p, rtol=1e-7, atol=1e-7)
    se = math.sqrt(float(torch.diagonal(ring.cov).max()) / 4000)
    assert float((x0.mean(0) - ring.mean).abs().max()) < 4 * se
    assert float((torch.cov(x0.T) - ring.cov).abs().max()) < 0.15
    r = ring.responsibilities(x0, p.t_eps, p).argmax(1)
    counts = torch.bincount(r, minlength=8).double() / 4000
    assert float((counts - 1 / 8).abs().max()) < 4 * math.sqrt(1 / 8 * 7 / 8 / 4000)


def test_low_rank_flow_to_zero_lands_on_the_subspaces():
    p = VP()
    U = torch.linalg.qr(torch.randn(2, 5, 2, generator=torch.Generator().manual_seed(0), dtype=F64))[0]
    M = LowRankMixture(U)
    x = starts(M, p, 20)
    x0 = M.flow(x, 1.0, 0.0, p)
    resid = torch.stack([(x0 - x0 @ U[k] @ U[k].T).norm(dim=1) for k in range(2)]).min(0).values
    assert float(resid.max()) < 1e-8


@pytest.mark.parametrize("pname", ["VP", "EDM"])
def test_flow_jacobian_matches_the_gaussian_gains(pname):
    p, G = PROCESSES[pname], gaussian3()
    x = starts(G, p, 3)
    J = flow_jacobian(G.bind(p).denoiser, p, x, p.t_max, 0.0)
    exact = G.eigvecs @ torch.diag(G.flow_gains(p.t_max, 0.0, p)) @ G.eigvecs.T
    assert J.shape == (3, 3, 3)
    assert float((J - exact).abs().max()) < 1e-6


def test_consistency_sampler_with_the_exact_map():
    """One step is the exact map; more steps stay exact in distribution but leave the ODE path."""
    p, G = VP(), gaussian3()
    F = lambda z, t: G.flow(z, t, 0.0, p)  # noqa: E731  the exact flow map to data
    x = starts(G, p, 20000, seed=5)
    one = consistency_sampler(F, p, x, torch.tensor([1.0, 0.0], dtype=F64))
    assert float((one - G.flow(x, 1.0, 0.0, p)).abs().max()) < 1e-12
    three = consistency_sampler(F, p, x, torch.tensor([1.0, 0.5, 0.1, 0.0], dtype=F64),
                                generator=torch.Generator().manual_seed(6))
    se = (torch.diagonal(G.cov) / 20000).sqrt()
    assert bool(((three.mean(0) - G.mean).abs() < 4 * se).all())
    assert float((torch.cov(three.T) - G.cov).abs().max()) < 0.05
    assert float((three - one).norm(dim=1).median()) > 0.1          # not the ODE's end point
    seen = []
    consistency_sampler(F, p, x[:4], torch.tensor([1.0, 0.5, 0.0], dtype=F64), generator=torch.Generator(),
                        callback=lambda i, t, z: seen.append((i, t)))
    assert seen == [(0, 1.0), (1, 0.5), (2, 0.0)]


def test_bad_inputs_raise_named_errors():
    p, G = VP(), gaussian3()
    D = G.bind(p).denoiser
    x = starts(G, p, 4)
    with pytest.raises(ValueError, match="monotone"):
        pf_ode_path(D, p, x, [1.0, 0.2, 0.5])
    with pytest.raises(ValueError, match="only the last"):
        pf_ode_path(D, p, x, [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="t_from and t_to"):
        pf_ode_flow(D, p, x, 0.5, 0.5)
    with pytest.raises(ValueError, match="sigma_end"):
        pf_ode_flow(D, p, x, 0.01, 0.0, sigma_end=1.0)
    with pytest.raises(ValueError, match="ts"):
        pf_ode_path(D, p, x, [1.0])
    with pytest.raises(TypeError, match="D must be"):
        pf_ode_flow("D", p, x, 1.0, 0.0)
    with pytest.raises(ValueError, match="method"):
        pf_ode_flow(D, p, x, 1.0, 0.0, method="Euler")
    with pytest.raises(ValueError, match="end at t = 0"):
        consistency_sampler(D, p, x, torch.tensor([1.0, 0.5], dtype=F64))
    with pytest.raises(ValueError, match="x must have shape"):
        datasets.ring().flow(x, 1.0, 0.0, p)


def test_flow_map_terms_and_loss():
    """The terms by hand; the exact map has zero loss; a distilled network is close to the map on held-out starts."""
    from diffedu.flow_map import flow_map_terms
    from diffedu.nets import ScoreMLP
    from diffedu.training import flow_map_loss, train

    p, G = VP(), Gaussian([0.5, -0.5], [[1.0, 0.6], [0.6, 0.8]])
    x = starts(G, p, 600, seed=7)
    times = torch.tensor([1.0, 0.6, 0.3, 0.1, 0.03], dtype=F64)
    path = G.flow_path(x, torch.cat([times, times.new_zeros(1)]), p)
    x0, paths = path[-1], path[:-1].transpose(0, 1)
    k = torch.randint(5, (600,), generator=torch.Generator().manual_seed(8))
    F = lambda z, t: 0.5 * z  # noqa: E731
    by_hand = torch.stack([((0.5 * paths[b, k[b]] - x0[b]) ** 2).sum() for b in range(600)])
    torch.testing.assert_close(flow_map_terms(F, x0, paths, times, k), by_hand)
    exact = lambda z, t: torch.stack([G.flow(z[i:i + 1], float(t[i]), 0.0, p)[0] for i in range(len(z))])  # noqa: E731
    assert float(flow_map_terms(exact, x0[:20], paths[:20], times, k[:20]).max()) < 1e-20
    with pytest.raises(ValueError, match="k must"):
        flow_map_terms(F, x0, paths, times, k + 5)
    with pytest.raises(ValueError, match="paths"):
        flow_map_terms(F, x0, paths[:, :3], times, k)
    net = ScoreMLP(p, 2, hidden=32, depth=2, param="denoiser", generator=torch.Generator().manual_seed(0))
    train(net, flow_map_loss(p, times.float()), x0.float(), labels=paths.float(), steps=600, batch_size=128,
          generator=torch.Generator().manual_seed(1))
    held = starts(G, p, 500, seed=9)
    with torch.no_grad():
        err = (net.denoiser(held.float(), 1.0).double() - G.flow(held, 1.0, 0.0, p)).norm(dim=1)
    scale = float(torch.linalg.eigvalsh(G.cov).max().sqrt())
    assert float(err.median()) < 0.1 * scale, float(err.median())
    with pytest.raises(ValueError, match="labels"):
        flow_map_loss(p, times.float())(net, x0.float()[:4], None)
    with pytest.raises(ValueError, match="times must be >"):
        flow_map_loss(p, torch.tensor([1.0, 0.0]))
    with pytest.raises(TypeError, match="times"):
        flow_map_loss(p, [1.0, 0.5])


def test_flow_map_terms_checks_paths_and_the_model():
    """Issue 21 (property tests): a NaN path was reported as 'x must be finite'; a model returning (B, D + 1)
    broadcast against x0 (B, 1) silently."""
    from diffedu.flow_map import flow_map_terms
    x0, times, k = torch.zeros(2, 1, dtype=torch.float64), torch.tensor([0.5]), torch.zeros(2, dtype=torch.long)
    paths = torch.zeros(2, 1, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="paths must be finite"):
        flow_map_terms(lambda x, t: x, x0, paths + math.nan, times, k)
    with pytest.raises(ValueError, match="F must return a tensor of x's shape"):
        flow_map_terms(lambda x, t: torch.cat([x, x], 1), x0, paths, times, k)
