"""Tests for diffedu.processes: every coefficient against SymPy and autograd, the grids, bad input.

The SymPy expressions below are typed in from the table of docs/notation.md, independently of
the code, so a wrong closed form or a wrong analytic derivative in diffedu fails here.
"""

import math

import pytest
import torch

from diffedu.processes import EDM, SIGMA_RATIO_MIN, VE, VP, Linear, Process, VPCosine, time_grid

F64 = torch.float64

PROCESSES = [VP(), VPCosine(), VE(), EDM(), Linear(),
             VP(beta_min=0.5, beta_max=5.0), VE(sigma_min=0.1, sigma_max=10.0), EDM(sigma_max=5.0),
             Linear(t_end=0.9), VPCosine(s=0.02, t_end=0.9)]
IDS = [repr(p) for p in PROCESSES]


def _sympy_alpha_sigma(p):
    """alpha_t, sigma_t as SymPy expressions, straight from docs/notation.md."""
    import sympy as sp

    t = sp.Symbol("t", positive=True)
    if isinstance(p, VP):
        bmin, bmax = sp.Float(p.beta_min, 30), sp.Float(p.beta_max, 30)
        beta = bmin + (bmax - bmin) * t
        tau = sp.Symbol("tau")
        alpha = sp.exp(-sp.Rational(1, 2) * sp.integrate(beta.subs(t, tau), (tau, 0, t)))
        sigma = sp.sqrt(1 - alpha**2)
    elif isinstance(p, VPCosine):
        s = sp.Float(p.s, 30)
        alpha = sp.cos(sp.pi / 2 * (t + s) / (1 + s)) / sp.cos(sp.pi / 2 * s / (1 + s))
        sigma = sp.sqrt(1 - alpha**2)
    elif isinstance(p, VE):
        smin, smax = sp.Float(p.sigma_min, 30), sp.Float(p.sigma_max, 30)
        alpha = sp.Integer(1)
        sigma = smin * sp.sqrt((smax / smin) ** (2 * t) - 1)
    elif isinstance(p, EDM):
        alpha, sigma = sp.Integer(1), t
    elif isinstance(p, Linear):
        alpha, sigma = 1 - t, t
    else:  # pragma: no cover
        raise AssertionError(p)
    return t, alpha, sigma


def _times(p):
    """Interior test times from just above t_eps to t_max."""
    t_eps = float(time_grid(p, 4)[-2])
    return [t_eps, 0.01 * p.t_max, 0.1 * p.t_max, 0.37 * p.t_max, 0.8 * p.t_max, p.t_max]


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_coefficients_match_sympy(p):
    import sympy as sp
    import mpmath

    t, alpha, sigma = _sympy_alpha_sigma(p)
    f = sp.diff(alpha, t) / alpha
    g2 = sp.diff(sigma**2, t) - 2 * f * sigma**2
    exprs = {"alpha": alpha, "sigma": sigma, "d_alpha": sp.diff(alpha, t),
             "d_sigma": sp.diff(sigma, t), "f": f, "g2": g2, "lam": sp.log(alpha / sigma)}
    with mpmath.workdps(40):
        for name, e in exprs.items():
            fn = sp.lambdify(t, e, "mpmath")
            for tv in _times(p):
                want = float(fn(mpmath.mpf(tv)))
                got = float(getattr(p, name)(tv))
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12), (name, tv)
            # (B,) tensors give the same values as floats
            ts = torch.tensor(_times(p), dtype=F64)
            vals = getattr(p, name)(ts)
            assert vals.shape == ts.shape and vals.dtype == torch.float64
            assert torch.allclose(vals, torch.stack([getattr(p, name)(float(v)) for v in ts]),
                                  rtol=1e-13, atol=0)


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_derivatives_match_autograd(p):
    ts = torch.tensor(_times(p), dtype=F64, requires_grad=True)
    for fun, dfun in (("alpha", "d_alpha"), ("sigma", "d_sigma")):
        (grad,) = torch.autograd.grad((getattr(p, fun)(ts) + 0 * ts).sum(), ts)  # + 0 t: constant alpha
        torch.testing.assert_close(getattr(p, dfun)(ts.detach()), grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_f_and_g2_definitions_and_sde_variance(p):
    """f = alpha'/alpha, g2 = d(sigma^2)/dt - 2 f sigma^2 (differentiated by autograd), g2 > 0."""
    ts = torch.tensor(_times(p), dtype=F64, requires_grad=True)
    (d_alpha,) = torch.autograd.grad((p.alpha(ts) + 0 * ts).sum(), ts)
    (d_var,) = torch.autograd.grad((p.sigma(ts) ** 2).sum(), ts)
    ts = ts.detach()
    f = d_alpha / p.alpha(ts)
    torch.testing.assert_close(p.f(ts), f, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(p.g2(ts), d_var - 2 * f * p.sigma(ts) ** 2, rtol=1e-9, atol=1e-12)
    assert (p.g2(ts) > 0).all()
    torch.testing.assert_close(p.snr(ts), torch.exp(2 * p.lam(ts)), rtol=1e-12, atol=0)


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_data_at_time_zero(p):
    assert p.t_min == 0.0
    assert float(p.alpha(0.0)) == 1.0
    assert float(p.sigma(0.0)) == 0.0
    assert float(p.lam(0.0)) == math.inf
    # f and g2 have finite limits at t = 0 for every process in the table
    assert math.isfinite(float(p.f(0.0)))
    assert math.isfinite(float(p.g2(0.0))), "g2(0) must be the finite limit, not 0 * inf"
    assert float(p.g2(0.0)) == pytest.approx(float(p.g2(1e-9)), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_lam_and_t_of_lam_are_inverses(p):
    ts = torch.tensor(_times(p) + [0.5 * p.t_max, 0.99 * p.t_max], dtype=F64)
    torch.testing.assert_close(p.t_of_lam(p.lam(ts)), ts, rtol=1e-10, atol=1e-13)
    lams = torch.linspace(float(p.lam(p.t_max)), 8.0, 23, dtype=F64)
    torch.testing.assert_close(p.lam(p.t_of_lam(lams)), lams, rtol=1e-9, atol=1e-9)
    # lambda is strictly decreasing in t
    fine = torch.linspace(1e-4 * p.t_max, p.t_max, 200, dtype=F64)
    assert (p.lam(fine).diff() < 0).all()


def test_vp_closed_forms_from_docstrings():
    p = VP()
    ts = torch.linspace(0.01, 1, 7, dtype=F64)
    torch.testing.assert_close(p.f(ts), -0.5 * p.beta(ts))
    torch.testing.assert_close(p.g2(ts), p.beta(ts))
    torch.testing.assert_close(p.alpha(ts) ** 2 + p.sigma(ts) ** 2, torch.ones(7, dtype=F64))
    q = VPCosine()
    torch.testing.assert_close(q.alpha(ts * 0.99) ** 2 + q.sigma(ts * 0.99) ** 2, torch.ones(7, dtype=F64))
    ve = VE()
    torch.testing.assert_close(ve.sigma(1.0), torch.tensor(math.sqrt(50.0**2 - 0.01**2), dtype=F64))


# --- time grids ------------------------------------------------------------------------------
@pytest.mark.parametrize("spacing", ["uniform", "lambda", "karras"])
@pytest.mark.parametrize("p", PROCESSES[:5], ids=IDS[:5])
@pytest.mark.parametrize("n", [2, 3, 10, 40])
def test_time_grid(p, spacing, n):
    ts = time_grid(p, n, spacing)
    assert ts.shape == (n + 1,) and ts.dtype == torch.float64
    assert (ts.diff() < 0).all(), "grid must be strictly decreasing"
    assert float(ts[0]) == p.t_max and float(ts[-1]) == 0.0
    t_eps = float(ts[-2])
    assert 0 < t_eps < p.t_max
    # the default t_eps: sigma/alpha = SIGMA_RATIO_MIN, so lambda finite and = log 500
    assert float(p.lam(t_eps)) == pytest.approx(math.log(1 / SIGMA_RATIO_MIN), rel=1e-10)
    assert math.isfinite(float(p.lam(t_eps)))
    body = ts[:-1]
    if spacing == "uniform":
        u = body
    elif spacing == "lambda":
        u = p.lam(body)
    else:
        u = (p.sigma(body) / p.alpha(body)) ** (1 / 7)
    step = u.diff()
    torch.testing.assert_close(step, step.mean().expand_as(step), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("p", PROCESSES[:5], ids=IDS[:5])
def test_time_grid_custom_t_eps_rho_and_n1(p):
    t_eps = 0.05 * p.t_max
    ts = time_grid(p, 6, "karras", t_eps=t_eps, rho=3.0)
    assert float(ts[-2]) == t_eps and float(ts[0]) == p.t_max
    u = (p.sigma(ts[:-1]) / p.alpha(ts[:-1])) ** (1 / 3)
    torch.testing.assert_close(u.diff(), u.diff().mean().expand(5), rtol=1e-8, atol=1e-12)
    for spacing in ("uniform", "lambda", "karras"):
        assert time_grid(p, 1, spacing).tolist() == [p.t_max, 0.0]


@pytest.mark.parametrize("n", [0, -3])
def test_time_grid_bad_n(n):
    with pytest.raises(ValueError, match="n must"):
        time_grid(VP(), n)


@pytest.mark.parametrize("n", [2.5, True, "10", None])
def test_time_grid_n_of_wrong_type(n):
    with pytest.raises(TypeError, match="n must be an integer"):
        time_grid(VP(), n)


@pytest.mark.parametrize("p", PROCESSES[:5], ids=IDS[:5])
@pytest.mark.parametrize("spacing", ["uniform", "lambda", "karras"])
def test_time_grid_from_a_later_start(p, spacing):
    """``t_start`` starts the grid late (teleportation); the spacing and t_eps are unchanged."""
    torch.testing.assert_close(time_grid(p, 10, spacing, t_start=p.t_max), time_grid(p, 10, spacing))
    t0 = 0.4 * p.t_max
    ts = time_grid(p, 7, spacing, t_start=t0)
    assert ts.shape == (8,) and float(ts[0]) == t0 and float(ts[-1]) == 0.0
    assert float(ts[-2]) == p.t_eps and (ts[1:] < ts[:-1]).all()
    body = ts[:-1]
    u = {"uniform": body, "lambda": p.lam(body), "karras": (p.sigma(body) / p.alpha(body)) ** (1 / 7)}[spacing]
    torch.testing.assert_close(u.diff(), u.diff().mean().expand(6), rtol=1e-8, atol=1e-12)
    for bad in (1.5 * p.t_max, p.t_eps, 0.0):
        with pytest.raises(ValueError, match="t_start"):
            time_grid(p, 4, t_start=bad)


@pytest.mark.parametrize("p", PROCESSES[:5], ids=IDS[:5])
def test_t_eps_and_noise(p):
    """``t_eps`` is where sigma/alpha = 0.002; ``noise`` draws x_t = alpha x0 + sigma eps."""
    assert float(p.sigma(p.t_eps) / p.alpha(p.t_eps)) == pytest.approx(SIGMA_RATIO_MIN, rel=1e-10)
    x0 = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    t = torch.linspace(0.1, 0.9, 5, dtype=F64) * p.t_max
    xt, eps = p.noise(x0, t, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(eps, torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(xt, p.alpha(t)[:, None] * x0 + p.sigma(t)[:, None] * eps)
    with pytest.raises(ValueError, match="t must lie"):
        p.noise(x0, -1.0)
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor"):
        p.noise([[1.0]], 0.5 * p.t_max)


def test_time_grid_bad_spacing_rho_t_eps():
    with pytest.raises(ValueError, match="spacing"):
        time_grid(VP(), 10, "log")
    with pytest.raises(ValueError, match="rho"):
        time_grid(VP(), 10, rho=0.0)
    with pytest.raises(TypeError, match="rho"):
        time_grid(VP(), 10, rho="7")
    with pytest.raises(ValueError, match="rho"):
        time_grid(VP(), 10, rho=float("nan"))
    for bad in (0.0, -0.1, 1.0, 2.0, float("nan")):
        with pytest.raises(ValueError, match="t_eps"):
            time_grid(VP(), 10, t_eps=bad)


@pytest.mark.parametrize("make, name", [
    (lambda: VP(beta_min=-1.0), "beta_min"),
    (lambda: VP(beta_min=0.0), "beta_min"),
    (lambda: VP(beta_max=float("nan")), "beta_max"),
    (lambda: VP(beta_min=5.0, beta_max=1.0), "beta_max"),
    (lambda: VPCosine(s=-0.1), "s"),
    (lambda: VPCosine(t_end=1.0), "t_end"),
    (lambda: VPCosine(t_end=float("nan")), "t_end"),
    (lambda: VE(sigma_min=-1), "sigma_min"),
    (lambda: VE(sigma_max=float("inf")), "sigma_max"),
    (lambda: VE(sigma_min=1.0, sigma_max=0.5), "sigma_max"),
    (lambda: EDM(sigma_max=0), "sigma_max"),
    (lambda: Linear(t_end=1.0), "t_end"),
    (lambda: Linear(t_end=-0.5), "t_end"),
])
def test_bad_parameters(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize("make, name", [
    (lambda: EDM(sigma_max="80"), "sigma_max"),
    (lambda: VP(beta_min=True), "beta_min"),
    (lambda: VE(sigma_min=None), "sigma_min"),
])
def test_parameters_of_the_wrong_type(make, name):
    with pytest.raises(TypeError, match=name):
        make()


@pytest.mark.parametrize("p", PROCESSES[:5], ids=IDS[:5])
def test_check_t(p):
    p.check_t(0.0)
    p.check_t(p.t_max)
    p.check_t(torch.tensor([0.0, 0.5 * p.t_max, p.t_max], dtype=F64))
    for bad in (-1e-3, p.t_max * 1.01 + 1e-3, float("nan")):
        with pytest.raises(ValueError, match=r"t must lie in"):
            p.check_t(bad)
    with pytest.raises(ValueError, match=r"t must lie in"):
        p.check_t(torch.tensor([0.1 * p.t_max, float("nan")], dtype=F64))
    with pytest.raises(ValueError, match=r"tau must lie in"):
        p.check_t(-1.0, name="tau")
    # t_max rounded to float32 (float32(0.999) > 0.999) is accepted; a real excess is not
    p.check_t(torch.tensor([0.0, p.t_max], dtype=torch.float32))
    with pytest.raises(ValueError, match=r"t must lie in"):
        p.check_t(torch.tensor([p.t_max * 1.001], dtype=torch.float32))


def test_processes_are_frozen_values():
    p = VP()
    with pytest.raises(Exception):
        p.beta_min = 1.0
    assert VP() == VP() and hash(VE()) == hash(VE())
    assert isinstance(p, Process)
    with pytest.raises(NotImplementedError):
        Process().alpha(0.5)


def test_t_of_lam_checks_its_argument():
    """Issue 21 (property tests): a numeric string gave torch's "new(): invalid data type 'str'" and NaN
    gave a NaN time; +-inf are the two ends and stay allowed."""
    for p in (VP(), VPCosine(), VE(), EDM(), Linear()):
        with pytest.raises(TypeError, match="lam must be a real number or a tensor; got str"):
            p.t_of_lam("1.0")
        with pytest.raises(TypeError, match="lam must be a real number"):
            p.t_of_lam(True)
        with pytest.raises(TypeError, match="lam must hold real numbers; got a torch.complex64 tensor"):
            p.t_of_lam(torch.tensor([1j]))
        with pytest.raises(ValueError, match="lam must not be NaN"):
            p.t_of_lam(torch.tensor([0.0, math.nan]))
        assert float(p.t_of_lam(math.inf)) == pytest.approx(0.0, abs=1e-12)


def test_vp_cosine_sigma_keeps_float32_precision_near_zero():
    """sigma_t = sqrt(1 - alpha_t^2) cancels near t = 0: in float32, 1 - alpha^2 rounded to 0 below
    t ~ 1e-5, so lambda and d_sigma were inf (found by the property tests under another seed). The
    product form sin(a + a0) sin(a - a0) / c0^2 keeps float32 within 1e-6 of float64 down to t = 1e-9,
    and equals sqrt(1 - alpha^2) in float64 where that does not cancel."""
    import torch

    from diffedu import VPCosine

    for p in (VPCosine(), VPCosine(s=0.015625, t_end=0.5)):
        for t in (1e-9, 5e-7, 1e-4, 0.1, 0.4):
            s32, s64 = p.sigma(torch.tensor(t, dtype=torch.float32)), p.sigma(torch.tensor(t, dtype=torch.float64))
            assert abs(float(s32) / float(s64) - 1) < 1e-6
            assert torch.isfinite(p.lam(torch.tensor(t, dtype=torch.float32)))
            assert torch.isfinite(p.d_sigma(torch.tensor(t, dtype=torch.float32)))
        for t in (0.1, 0.3, 0.5):
            tt = torch.tensor(t, dtype=torch.float64)
            assert float(p.sigma(tt)) == pytest.approx(float(torch.sqrt(1 - p.alpha(tt) ** 2)), rel=1e-12)
        assert float(p.sigma(torch.tensor(0.0))) == 0.0
