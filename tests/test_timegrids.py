"""Optimised time grids: the parametrisation, the search, generalisation to fresh starts, the denoiser speed."""

import math

import pytest
import torch

from diffedu import EDM, VE, VP, Gaussian, Linear, VPCosine, datasets, fit_gaussian, time_grid
from diffedu import samplers as S
from diffedu.timegrids import (denoiser_speed, grid_errors, grid_from_logits, grid_logits, optimise_time_grid)

F64 = torch.float64
PROCESSES = {"VP": VP(), "VPCosine": VPCosine(), "VE": VE(), "EDM": EDM(), "Linear": Linear()}


@pytest.mark.parametrize("pname", list(PROCESSES))
def test_logits_and_grids_are_inverse_and_zero_logits_are_the_lambda_grid(pname):
    p = PROCESSES[pname]
    for n in (3, 5, 10):
        lam_grid = time_grid(p, n, "lambda")
        torch.testing.assert_close(grid_from_logits(p, torch.zeros(n - 1, dtype=F64)), lam_grid, rtol=1e-10, atol=1e-12)
        ts = time_grid(p, n, "karras")
        w = grid_logits(p, ts)
        assert w.shape == (n - 1,)
        back = grid_from_logits(p, w)
        torch.testing.assert_close(back, ts, rtol=1e-9, atol=1e-12)
        assert float(back[0]) == p.t_max and float(back[-2]) == p.t_eps and float(back[-1]) == 0.0
        # teleport: one more logit, the first time free
        w = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=F64)
        tg = grid_from_logits(p, w, teleport=True)
        assert tg.shape == (n + 1,) and bool((tg[1:] < tg[:-1]).all()) and float(tg[0]) < p.t_max
        torch.testing.assert_close(grid_from_logits(p, grid_logits(p, tg, teleport=True), teleport=True), tg,
                                   rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def ring_problem():
    p, ring = EDM(), datasets.ring()
    D = ring.bind(p).denoiser

    def starts(n, seed):
        x = ring.sample_marginal(n, p.t_max, p, generator=torch.Generator().manual_seed(seed), dtype=F64)
        return x, D(ring.flow(x, p.t_max, p.t_eps, p, rtol=1e-8, atol=1e-8), p.t_eps)
    return p, ring, D, starts(300, 0), starts(600, 1)


@pytest.mark.parametrize("sname", ["ddim", "dpmpp_2m"])
def test_optimised_grid_beats_karras_and_lambda_on_fresh_starts(ring_problem, sname):
    p, ring, D, (xf, rf), (xm, rm) = ring_problem
    smp = S.DETERMINISTIC[sname]
    fit = optimise_time_grid(smp, D, p, 5, xf, reference=rf, generations=12, generator=torch.Generator().manual_seed(0))
    assert fit.ts.shape == (6,) and bool((fit.ts[1:] < fit.ts[:-1]).all())
    assert float(fit.ts[0]) == p.t_max and float(fit.ts[-2]) == p.t_eps and float(fit.ts[-1]) == 0.0
    assert 1 + 12 * 12 < fit.evaluations <= 1 + 12 * 12 + 100 and fit.history.shape == (13,)
    assert bool((fit.history[1:] <= fit.history[:-1]).all()) and fit.error <= float(fit.history[-1])
    e = grid_errors(smp, D, p, xf, fit.ts, rf)
    assert abs(float(e.mean()) - fit.error) < 1e-12
    ours = grid_errors(smp, D, p, xm, fit.ts, rm)
    for spacing in ("karras", "lambda"):
        base = grid_errors(smp, D, p, xm, time_grid(p, 5, spacing), rm)
        diff = base - ours                              # paired over the same fresh starts
        assert float(diff.mean()) > 4 * float(diff.std()) / math.sqrt(len(diff)), (spacing, float(ours.mean()),
                                                                                    float(base.mean()))


def test_optimised_teleport_grid_and_determinism(ring_problem):
    p, ring, D, (xf, rf), (xm, rm) = ring_problem
    G = fit_gaussian(ring.sample(5000, generator=torch.Generator().manual_seed(2), dtype=F64))
    kw = dict(reference=rf, teleport=G, generations=6, objective="median", polish=20)
    a = optimise_time_grid(S.dpmpp_2m, D, p, 3, xf, generator=torch.Generator().manual_seed(1), **kw)
    b = optimise_time_grid(S.dpmpp_2m, D, p, 3, xf, generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a.ts, b.ts) and a.error == b.error
    assert float(a.ts[0]) < p.t_max and a.ts.shape == (4,)
    e = grid_errors(S.dpmpp_2m, D, p, xf, a.ts, rf, teleport=G)
    assert abs(float(e.median()) - a.error) < 1e-12
    # a teleported grid from a plain init: the first logit is a tiny jump, so it starts as the plain grid
    c = optimise_time_grid(S.dpmpp_2m, D, p, 3, xf, init=time_grid(p, 3, "karras"), generations=0, polish=0, **{
        k: v for k, v in kw.items() if k not in ("generations", "polish")})
    torch.testing.assert_close(c.ts[1:], time_grid(p, 3, "karras")[1:], rtol=1e-4, atol=1e-9)


def test_several_initial_grids_enter_the_first_pool(ring_problem):
    p, ring, D, (xf, rf), _ = ring_problem
    fit = optimise_time_grid(S.ddim, D, p, 4, xf, reference=rf, init=["lambda", "karras", time_grid(p, 4, "uniform")],
                             generations=2, population=3, polish=0, generator=torch.Generator().manual_seed(0))
    assert fit.evaluations == 3 + 2 * 3
    first = min(float(grid_errors(S.ddim, D, p, xf, time_grid(p, 4, sp), rf).mean()) for sp in ("lambda", "karras", "uniform"))
    assert float(fit.history[0]) == pytest.approx(first, rel=1e-12)


def test_grid_errors_by_hand(ring_problem):
    p, ring, D, (xf, rf), _ = ring_problem
    ts = time_grid(p, 4)
    torch.testing.assert_close(grid_errors(S.heun, D, p, xf, ts, rf), (S.heun(D, p, xf, ts) - rf).norm(dim=1))


def test_denoiser_speed_of_a_gaussian_mode():
    """1-D N(0, v): D along the exact flow is c (v + e^{-2 lambda})^{-1/2}; its lambda-derivative in closed form."""
    p, v = VP(), 0.3
    G = Gaussian([0.0], [v])
    x = torch.tensor([[0.7], [-1.3]], dtype=F64) * math.sqrt(float(p.alpha(1.0)) ** 2 * v + float(p.sigma(1.0)) ** 2)
    lam = torch.linspace(float(p.lam(0.99)), float(p.lam(0.01)), 400, dtype=F64)
    ts = p.t_of_lam(lam)
    path = G.flow_path(x, ts, p)
    speed = denoiser_speed(G.bind(p).denoiser, p, path, ts)
    mid = 0.5 * (lam[1:] + lam[:-1])
    s = torch.exp(-2 * mid)
    vT = float(p.alpha(float(ts[0]))) ** 2 * v + float(p.sigma(float(ts[0]))) ** 2
    c = (v * x.abs()[:, 0] / math.sqrt(vT)).mean()
    exact = c * s * (v + s) ** -1.5
    torch.testing.assert_close(speed, exact, rtol=2e-4, atol=1e-8)
    peak = float(torch.exp(-2 * mid[speed.argmax()]))
    assert abs(peak / (2 * v) - 1) < 0.05


def test_bad_inputs_raise_named_errors(ring_problem):
    p, ring, D, (xf, rf), _ = ring_problem
    with pytest.raises(ValueError, match="n_steps"):
        optimise_time_grid(S.ddim, D, p, 2, xf, reference=rf)
    with pytest.raises(TypeError, match="n_steps"):
        optimise_time_grid(S.ddim, D, p, 5.0, xf, reference=rf)
    with pytest.raises(ValueError, match="objective"):
        optimise_time_grid(S.ddim, D, p, 4, xf, reference=rf, objective="max")
    with pytest.raises(ValueError, match="reference"):
        optimise_time_grid(S.ddim, D, p, 4, xf, reference=rf[:5])
    with pytest.raises(TypeError, match="teleport"):
        optimise_time_grid(S.ddim, D, p, 4, xf, reference=rf, teleport="gaussian")
    with pytest.raises(TypeError, match="generator"):
        optimise_time_grid(S.ddim, D, p, 4, xf, reference=rf, generator=0)
    with pytest.raises(ValueError, match="init"):
        optimise_time_grid(S.ddim, D, p, 4, xf, reference=rf, init=time_grid(p, 5))
    with pytest.raises(ValueError, match="init"):
        optimise_time_grid(S.ddim, D, p, 4, xf, reference=rf, init="log")
    with pytest.raises(TypeError, match="sampler"):
        optimise_time_grid("ddim", D, p, 4, xf, reference=rf)
    with pytest.raises(ValueError, match="polish"):
        optimise_time_grid(S.ddim, D, p, 4, xf, reference=rf, polish=-1)
    with pytest.raises(ValueError, match="ts must start"):
        grid_logits(p, time_grid(p, 4, t_start=10.0))
    with pytest.raises(ValueError, match="logits must be finite"):
        grid_from_logits(p, torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match="path"):
        denoiser_speed(D, p, xf, time_grid(p, 4)[:-1])


def test_denoiser_speed_checks_path_and_denoiser():
    """Issue 21 (property tests): a NaN path was reported as 'x must be finite' (the denoiser's check); a
    denoiser returning (B, D + 1) gave a plausible speed."""
    p = VP()
    ts = time_grid(p, 3)[:-1]
    path = torch.zeros(len(ts), 2, 1, dtype=torch.float64)
    D = Gaussian([0.0], [1.0]).bind(p).denoiser
    with pytest.raises(ValueError, match="path must be finite"):
        denoiser_speed(D, p, path + math.nan, ts)
    with pytest.raises(ValueError, match="D must return a tensor of x's shape"):
        denoiser_speed(lambda x, t: torch.cat([x, x], 1), p, path, ts)
