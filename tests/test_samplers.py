"""Samplers against exact answers: the Gaussian PF-ODE map, exact marginal moments and log p_t."""

import math

import numpy as np
import pytest
import torch

from diffedu import EDM, VE, VP, Gaussian, GaussianMixture, Linear, VPCosine, time_grid
from diffedu import samplers as S

F64 = torch.float64
PROCESSES = {"VP": VP(), "VPCosine": VPCosine(), "VE": VE(), "EDM": EDM(), "Linear": Linear()}
# theoretical (deterministic) orders; dpmpp_3m is the published DPM-Solver++(3M), measured 2
ORDERS = {"euler": 1, "ddim": 1, "heun": 2, "dpmpp_2m": 2, "dpmpp_3m": 2, "multistep3": 3}


def gaussian3():
    A = torch.tensor([[1.0, 0.3, -0.5], [0.2, 0.8, 0.1], [-0.4, 0.6, 1.2]], dtype=F64)
    return Gaussian(torch.tensor([1.0, -2.0, 0.5], dtype=F64), A @ A.T / 3 + 0.05 * torch.eye(3, dtype=F64))


def slope(ns, errs):
    """Least-squares slope of -log(err) against log(N): the measured order."""
    return -np.polyfit(np.log(ns), np.log(errs), 1)[0]


def measure_order(sampler, process, ns=(128, 256, 512), batch=8):
    """Max error at t_eps against Gaussian.flow on karras grids with N steps; returns (order, errs)."""
    G = gaussian3()
    D = G.bind(process).denoiser
    x = G.bind(process).sample_marginal(batch, process.t_max, generator=torch.Generator().manual_seed(1), dtype=F64)
    errs = []
    for n in ns:
        ts = time_grid(process, n + 1, "karras")[:-1]  # n steps from t_max to t_eps, no jump
        ref = G.flow(x, process.t_max, float(ts[-1]), process)
        errs.append(float((sampler(D, process, x, ts) - ref).norm(dim=1).max()))
    return slope(ns, errs), errs


@pytest.mark.parametrize("pname", list(PROCESSES))
@pytest.mark.parametrize("sname", list(ORDERS))
def test_convergence_order(sname, pname):
    # the published 3M reaches its asymptotic slope later (its leading error cancels at coarse N)
    ns = (128, 256, 512) if sname == "dpmpp_3m" else (64, 128, 256)
    order, errs = measure_order(S.DETERMINISTIC[sname], PROCESSES[pname], ns)
    assert abs(order - ORDERS[sname]) < 0.3, (sname, pname, order, errs)


def test_published_3m_is_second_order_and_corrected_is_third():
    """The published DPM-Solver++(3M) weights differ from the exact quadrature only in D2's factor."""
    g = S._Grid(VP(), time_grid(VP(), 20, "karras"))
    for i in (3, 7, 12):
        h = g.h(i)
        phi3 = (math.expm1(-h) / h + 1) / h - 0.5
        r0, r1 = g.h(i - 1) / h, g.h(i - 2) / h
        # D2 = (D1_0 - D1_1)/(r0 + r1) has weights (1/r0, -(1/r0 + 1/r1), 1/r1)/(r0 + r1)
        d2 = np.array([1 / r0, -(1 / r0 + 1 / r1), 1 / r1]) / (r0 + r1)
        diff = np.array(S._ab3_weights_exact(g, i)) - np.array(S._dpmpp_3m_weights_published(g, i))
        np.testing.assert_allclose(diff, -g.a[i + 1] * phi3 * d2, rtol=1e-8, atol=1e-14)
        # both sets of weights sum to the DDIM weight c_i (the loop adds only w1, w2 on differences)
        a, r, a_next = g.ddim_coefs(i)
        for w in (S._ab3_weights_exact(g, i), S._dpmpp_3m_weights_published(g, i)):
            assert math.isclose(sum(w), a_next - a * r, rel_tol=1e-12)


@pytest.mark.parametrize("pname", ["VP", "EDM", "VE"])
def test_multistep3_start_up_step_limits_the_order(pname):
    """multistep3's default DDIM first step has local error O(h^2): on uniform-lambda grids fine
    enough, the global error stops falling at the third-order rate. The midpoint start (one extra
    call) removes that floor; the slope between N = 512 and 1024 tells them apart."""
    p, G = PROCESSES[pname], gaussian3()
    D = G.bind(p).denoiser
    x = G.bind(p).sample_marginal(8, p.t_max, generator=torch.Generator().manual_seed(1), dtype=F64)
    slopes, calls = {}, {}
    for start in ("ddim", "midpoint"):
        errs = []
        for n in (512, 1024):
            ts = time_grid(p, n + 1, "lambda")[:-1]
            seen = []

            def Dc(y, t):
                seen.append(t)
                return D(y, t)
            out = S.multistep3(Dc, p, x, ts, start=start)
            errs.append(float((out - G.flow(x, p.t_max, float(ts[-1]), p)).norm(dim=1).max()))
            calls[start] = len(seen) - n
        slopes[start] = math.log2(errs[0] / errs[1])
    assert slopes["midpoint"] > 2.8, slopes
    assert slopes["ddim"] < slopes["midpoint"] - 0.8, slopes
    assert calls == {"ddim": 0, "midpoint": 1}
    with pytest.raises(ValueError, match="start"):
        S.multistep3(D, p, x, time_grid(p, 5), start="heun")


def test_ddim_equals_euler_for_edm():
    G, p = gaussian3(), EDM()
    x = G.bind(p).sample_marginal(16, p.t_max, generator=torch.Generator().manual_seed(0), dtype=F64)
    ts = time_grid(p, 12)
    D = G.bind(p).denoiser
    a, b = S.trajectory(S.ddim, D, p, x, ts), S.trajectory(S.euler, D, p, x, ts)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pname", ["VP", "EDM", "Linear"])
def test_ddim_is_first_step_of_dpm_solvers(pname):
    p = PROCESSES[pname]
    G = gaussian3()
    x = G.bind(p).sample_marginal(8, p.t_max, generator=torch.Generator().manual_seed(0), dtype=F64)
    ts = time_grid(p, 10, "lambda")
    D = G.bind(p).denoiser
    ref = S.trajectory(S.ddim, D, p, x, ts)[1]
    for sampler in (S.dpmpp_2m, S.dpmpp_3m, S.multistep3):
        torch.testing.assert_close(S.trajectory(sampler, D, p, x, ts)[1], ref, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("sname", ["ddim", "dpmpp_2m", "dpmpp_3m", "multistep3", "ddpm_ancestral"])
def test_vp_and_edm_same_lambda_grid_same_trajectory(sname):
    """Exponential integrators depend on the process only through lambda: x/alpha is invariant."""
    vp, edm = VP(), EDM(sigma_max=200.0)
    G = gaussian3()
    ts_vp = time_grid(vp, 15, "lambda")
    lam = vp.lam(ts_vp[:-1])
    ts_edm = torch.cat([edm.t_of_lam(lam), ts_vp.new_zeros(1)])  # sigma_EDM = sigma/alpha
    x = G.bind(vp).sample_marginal(8, vp.t_max, generator=torch.Generator().manual_seed(3), dtype=F64)
    a0 = float(vp.alpha(ts_vp[0]))
    kw = lambda: dict(generator=torch.Generator().manual_seed(5))  # noqa: E731
    sampler = getattr(S, sname)
    tv = S.trajectory(sampler, G.bind(vp).denoiser, vp, x, ts_vp, **kw())
    te = S.trajectory(sampler, G.bind(edm).denoiser, edm, x / a0, ts_edm, **kw())
    alphas = vp.alpha(ts_vp)[:, None, None]
    torch.testing.assert_close(tv / alphas, te, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sname", list(S.DETERMINISTIC) + list(S.STOCHASTIC))
def test_final_jump_is_the_denoiser_and_never_touches_t0(sname):
    p, G = VP(), gaussian3()
    calls = []

    def D(x, t):
        assert float(t) > 0, "the denoiser must never be called at t = 0"
        calls.append(float(t))
        return G.denoiser(x, t, p)

    x = G.bind(p).sample_marginal(6, p.t_max, generator=torch.Generator().manual_seed(0), dtype=F64)
    ts = time_grid(p, 8)
    path = S.trajectory(S.__dict__[sname], D, p, x, ts, generator=torch.Generator().manual_seed(1))
    assert path.shape == (9, 6, 3) and torch.isfinite(path).all()
    torch.testing.assert_close(path[-1], G.denoiser(path[-2], float(ts[-2]), p))
    torch.testing.assert_close(path[0], x)


def test_trajectory_ends_where_sampler_ends_and_callback_indices():
    p, G = EDM(), gaussian3()
    x = G.bind(p).sample_marginal(5, p.t_max, generator=torch.Generator().manual_seed(0), dtype=F64)
    ts = time_grid(p, 6)
    seen = []
    out = S.heun(G.bind(p).denoiser, p, x, ts, callback=lambda i, t, xi: seen.append((i, t)))
    assert [i for i, _ in seen] == list(range(7))
    assert [t for _, t in seen] == ts.tolist()
    torch.testing.assert_close(S.trajectory(S.heun, G.bind(p).denoiser, p, x, ts)[-1], out)


@pytest.mark.parametrize("pname", ["EDM", "VE"])
@pytest.mark.parametrize("sname", list(S.DETERMINISTIC))
def test_fixed_point_of_the_flow_stays_fixed_in_float32(sname, pname):
    """With alpha = 1 and D(x, t) = x the PF-ODE velocity is 0: every step must return x bit for bit.

    The updates are written as x + (small terms built from x - alpha D), so this holds exactly in
    float32; the algebraically equal ``r x + (1 - r) D`` rounds at every step and drifts.
    """
    p = PROCESSES[pname]
    x = torch.randn(64, 5, generator=torch.Generator().manual_seed(3)) * 7.3
    ts = time_grid(p, 25)[:-1]                          # stop at t_eps: every step is a real update
    out = S.DETERMINISTIC[sname](lambda y, t: y, p, x, ts)
    assert out.dtype == torch.float32
    assert torch.equal(out, x)


def test_dtype_kept_and_progress_bar_opt_in(capsys):
    p, G = VP(), gaussian3()
    x = G.bind(p).sample_marginal(4, p.t_max, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    ts = time_grid(p, 5)
    for sampler in list(S.DETERMINISTIC.values()) + list(S.STOCHASTIC.values()):
        out = sampler(G.bind(p).denoiser, p, x, ts, generator=torch.Generator().manual_seed(0))
        assert out.dtype == torch.float32 and out.shape == x.shape
    assert capsys.readouterr().err == ""
    S.euler(G.bind(p).denoiser, p, x, ts, progress=True)
    assert "sampling" in capsys.readouterr().err


# --- stochastic samplers ---------------------------------------------------------------------
MU, V0 = 1.5, 0.4


def scalar_denoiser(p):
    """Exact denoiser of N(MU, V0) in 1-D, cheap enough for 10^5 samples."""
    def D(x, t):
        a, s = float(p.alpha(t)), float(p.sigma(t))
        return MU + (a * V0 / (a * a * V0 + s * s)) * (x - a * MU)
    return D


def moment_errors(sampler, p, n, batch, seed, **kw):
    g = torch.Generator().manual_seed(seed)
    aT, sT = float(p.alpha(p.t_max)), float(p.sigma(p.t_max))
    x = aT * MU + math.sqrt(aT**2 * V0 + sT**2) * torch.randn(batch, 1, generator=g, dtype=F64)
    ts = time_grid(p, n + 1, "lambda")[:-1]
    out = sampler(scalar_denoiser(p), p, x, ts, generator=g, **kw)
    a, s = float(p.alpha(ts[-1])), float(p.sigma(ts[-1]))
    return float(out.mean()) - a * MU, float(out.var()) - (a * a * V0 + s * s), a * a * V0 + s * s


@pytest.mark.parametrize("pname", ["VP", "EDM"])
@pytest.mark.parametrize("sname", ["euler_maruyama", "ddpm_ancestral"])
def test_stochastic_weak_order_one(sname, pname):
    """Variance error at t_eps shrinks like the step (slope ~1); MC noise is ~0.3% of it."""
    p, ns = PROCESSES[pname], (16, 32, 64)
    errs = [abs(moment_errors(S.STOCHASTIC[sname], p, n, 100_000, seed=n)[1]) for n in ns]
    assert abs(slope(ns, errs) - 1) < 0.3, errs


@pytest.mark.parametrize("sname", ["euler_maruyama", "ddpm_ancestral", "predictor_corrector"])
def test_stochastic_many_steps_match_exact_moments(sname):
    p, n, batch = VP(), 400, 20_000
    kw = {"snr": 0.02} if sname == "predictor_corrector" else {}
    dm, dv, var = moment_errors(S.STOCHASTIC[sname], p, n, batch, seed=7, **kw)
    se_m, se_v = math.sqrt(var / batch), var * math.sqrt(2 / batch)
    # the weak bias at N = 400 is about 20 / N * 0.03 < se; allow 4 standard errors
    assert abs(dm) < 4 * se_m + 2e-3 and abs(dv) < 4 * se_v + 2e-3, (dm, dv, se_m, se_v)


@pytest.mark.parametrize("sname", list(S.STOCHASTIC))
def test_stochastic_seeded_reproducibility(sname):
    p, G = EDM(), gaussian3()
    x = G.bind(p).sample_marginal(6, p.t_max, generator=torch.Generator().manual_seed(0), dtype=F64)
    ts = time_grid(p, 6)
    run = lambda seed: S.STOCHASTIC[sname](G.bind(p).denoiser, p, x, ts,  # noqa: E731
                                           generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(run(11), run(11), rtol=0, atol=0)
    assert not torch.allclose(run(11), run(12))


# --- bad input -------------------------------------------------------------------------------
def test_bad_inputs_raise_named_errors():
    p, G = VP(), gaussian3()
    D = G.bind(p).denoiser
    x = torch.zeros(4, 3, dtype=F64)
    ts = time_grid(p, 4)
    with pytest.raises(ValueError, match="ts must be strictly decreasing"):
        S.euler(D, p, x, ts.flip(0))
    with pytest.raises(ValueError, match="ts must be strictly decreasing"):
        S.ddim(D, p, x, torch.tensor([1.0, 0.5, 0.5, 0.0], dtype=F64))
    with pytest.raises(ValueError, match="ts must have shape"):
        S.heun(D, p, x, ts[:1])
    with pytest.raises(ValueError, match="ts"):
        S.euler(D, p, x, torch.tensor([2.0, 1.0, 0.0], dtype=F64))  # beyond VP's t_max = 1
    with pytest.raises(ValueError, match="x must have shape"):
        S.euler(D, p, torch.zeros(4, 3, 1), ts)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        S.euler(D, p, np.zeros((4, 3)), ts)
    with pytest.raises(TypeError, match="D must be a callable"):
        S.euler("not a model", p, x, ts)
    with pytest.raises(TypeError, match="process"):
        S.euler(D, "VP", x, ts)
    with pytest.raises(TypeError, match="generator"):
        S.euler_maruyama(D, p, x, ts, generator=0)
    with pytest.raises(ValueError, match="generator lives on cpu"):
        S.euler_maruyama(D, p, torch.zeros(4, 3, device="meta"), ts, generator=torch.Generator())
    with pytest.raises(ValueError, match="snr"):
        S.predictor_corrector(D, p, x, ts, snr=-1.0)



@pytest.mark.parametrize("sname", list(S.DETERMINISTIC) + list(S.STOCHASTIC))
def test_a_denoiser_of_the_wrong_shape_or_a_bad_callback_is_refused(sname):
    """A (B, 1) result would broadcast silently: the first call is checked (only the first)."""
    p = VP()
    sampler = {**S.DETERMINISTIC, **S.STOCHASTIC}[sname]
    x = torch.zeros(4, 3, dtype=F64)
    ts = time_grid(p, 4)
    with pytest.raises(ValueError, match=r"D must return a tensor of x's shape \(4, 3\); got \(4, 1\)"):
        sampler(lambda z, t: z[:, :1], p, x, ts, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="D must return a tensor of x's shape"):
        sampler(lambda z, t: [0.0], p, x, ts, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="callback must be a callable"):
        sampler(lambda z, t: z, p, x, ts, callback=3)
    bad = x.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="x must be finite"):
        sampler(lambda z, t: z, p, bad, ts)


def test_complex_grid_is_a_type_error():
    """Issue 21 (property tests): a complex grid was cast to real with only a torch warning."""
    D = Gaussian(torch.zeros(2), torch.eye(2)).bind(VP()).denoiser
    ts = time_grid(VP(), 4).to(torch.complex128)
    with pytest.raises(TypeError, match="ts must be a 1-D tensor or sequence of times, real and not bool"):
        S.ddim(D, VP(), torch.zeros(3, 2), ts)


def test_predictor_corrector_skips_the_corrector_where_every_score_is_zero():
    # found by the property tests (issue 21): a zero-mean Gaussian started at its mean gives score 0,
    # and the corrector's step 2 (snr |z| / |s|)^2 was 0/0; the run must stay finite
    import diffedu as de

    vp = de.VP()
    g = de.Gaussian([0.0], [[0.1]])
    for snr in (0.0, 0.16):
        out = de.samplers.predictor_corrector(g.bind(vp).denoiser, vp, torch.zeros(1, 1), de.time_grid(vp, 2)[:-1],
                                              generator=torch.Generator().manual_seed(0), snr=snr)
        assert bool(torch.isfinite(out).all())
