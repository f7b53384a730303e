"""The papers' few-step methods against the exact Gaussian flow: EVODiff's order, the five-step recipe's grid."""

import math

import numpy as np
import pytest
import torch

from diffedu import EDM, VE, VP, Gaussian, Linear, VPCosine, time_grid
from diffedu import samplers as S
from diffedu.few_step import FIVE_STEP, evodiff, five_step_grid

F64 = torch.float64
PROCESSES = {"VP": VP(), "VPCosine": VPCosine(), "VE": VE(), "EDM": EDM(), "Linear": Linear()}


def gaussian3():
    A = torch.tensor([[1.0, 0.3, -0.5], [0.2, 0.8, 0.1], [-0.4, 0.6, 1.2]], dtype=F64)
    return Gaussian(torch.tensor([1.0, -2.0, 0.5], dtype=F64), A @ A.T / 3 + 0.05 * torch.eye(3, dtype=F64))


@pytest.mark.parametrize("pname", list(PROCESSES))
def test_evodiff_is_first_order_on_the_gaussian(pname):
    """The published update converges with order 1, not 2: its factors sigmoid(|b|/4) -> 0.56 and
    zeta do not tend to the values that cancel the second-order error (DPM-Solver++(2M) measures 2)."""
    p, G = PROCESSES[pname], gaussian3()
    D = G.bind(p).denoiser
    x = G.bind(p).sample_marginal(8, p.t_max, generator=torch.Generator().manual_seed(1), dtype=F64)
    ns = (256, 512, 1024)
    errs = []
    for n in ns:
        ts = time_grid(p, n + 1, "karras")[:-1]          # n steps to t_eps, no jump
        errs.append(float((evodiff(D, p, x, ts) - G.flow(x, p.t_max, float(ts[-1]), p)).norm(dim=1).max()))
    order = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert abs(order - 1.0) < 0.2, (order, errs)


def test_evodiff_calls_and_final_jump():
    p, G = EDM(), gaussian3()
    calls = []
    D = lambda z, t: (calls.append(t), G.denoiser(z, t, p))[1]  # noqa: E731
    x = G.bind(p).sample_marginal(4, p.t_max, generator=torch.Generator().manual_seed(2), dtype=F64)
    ts = time_grid(p, 6)
    out = evodiff(D, p, x, ts)
    assert len(calls) == 6 and calls[0] == p.t_max and calls[-1] == p.t_eps   # N steps with the jump: N calls
    calls.clear()
    evodiff(D, p, x, ts[:-1])
    assert len(calls) == 6                             # 5 steps without the jump: N + 1 calls
    assert torch.isfinite(out).all()
    # 20 steps of the uniform-lambda grid: closer to the exact flow than DDIM (both first order),
    # farther than DPM-Solver++(2M) (second order)
    Dx = G.bind(p).denoiser
    ts = time_grid(p, 20, "lambda")
    ref = Dx(G.flow(x, p.t_max, p.t_eps, p), p.t_eps)
    err = {s.__name__: float((s(Dx, p, x, ts) - ref).norm(dim=1).mean()) for s in (evodiff, S.ddim, S.dpmpp_2m)}
    assert err["dpmpp_2m"] < err["evodiff"] < err["ddim"], err


def test_five_step_grid_as_published():
    """VP time is the DDPM time: the grid is Karras(rho = 1.2) in t from 1 to the time of the 7th of
    8 Karras(rho = 5) noise levels; other processes get the same lambdas when their range is VP's."""
    p = VP()
    ts = five_step_grid(p)
    assert ts.shape == (6,) and float(ts[0]) == 1.0 and bool((ts[1:] < ts[:-1]).all()) and float(ts[-1]) > 0
    hi, lo = math.exp(-float(p.lam(1.0))), 0.002
    level = (hi ** 0.2 + 6 / 7 * (lo ** 0.2 - hi ** 0.2)) ** 5
    t_stop = float(p.t_of_lam(torch.tensor(-math.log(level), dtype=F64)))
    v = torch.linspace(0, 1, 6, dtype=F64)
    expect = (1.0 + v * (t_stop ** (1 / 1.2) - 1.0)) ** 1.2
    torch.testing.assert_close(ts, expect, rtol=1e-9, atol=1e-12)
    cos = VPCosine()
    for q in (VE(), EDM(), Linear(), cos):
        g = five_step_grid(q)
        assert float(g[0]) == q.t_max and bool((g[1:] < g[:-1]).all()) and float(g[-1]) > 0
    # the recipe as a configuration: DDIM, 5 steps, 5 calls, the still noisy sample at the stop time
    G = gaussian3()
    calls = []
    D = lambda z, t: (calls.append(t), G.denoiser(z, t, p))[1]  # noqa: E731
    x = G.bind(p).sample_marginal(4, 1.0, generator=torch.Generator().manual_seed(3), dtype=F64)
    out = FIVE_STEP["sampler"](D, p, x, FIVE_STEP["grid"](p, FIVE_STEP["steps"]))
    assert len(calls) == 5 and FIVE_STEP["order"] == 1 and not FIVE_STEP["final_denoise"]
    assert torch.equal(out, S.ddim(G.bind(p).denoiser, p, x, ts))


def test_five_step_grid_bad_inputs():
    with pytest.raises(ValueError, match="stop"):
        five_step_grid(VP(), stop=8)
    with pytest.raises(TypeError, match="n"):
        five_step_grid(VP(), n=5.0)
    with pytest.raises(ValueError, match="rho_time"):
        five_step_grid(VP(), rho_time=0.0)
    with pytest.raises(TypeError, match="process"):
        five_step_grid("VP")


def test_evodiff_with_a_zero_denoiser_difference_stays_finite():
    # a zero-mean target started at x = 0: every denoiser output is 0 and the projection <a,b>/<b,b>
    # is 0/0 (found by the property tests, issue 21); the sampler must stay at the mean
    vp = VP()
    g = Gaussian([0.0], [[0.1]])
    for spacing in ("lambda", "karras"):
        ts = time_grid(vp, 4, spacing)
        out = evodiff(g.bind(vp).denoiser, vp, torch.zeros(1, 1, dtype=torch.float64), ts)
        assert torch.equal(out, torch.zeros(1, 1, dtype=torch.float64))
