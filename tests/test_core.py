"""Tests for diffedu._core: argument checks, time coefficients, the shared Distribution interface."""

import math

import numpy as np
import pytest
import torch

from diffedu import EDM, VE, VP, Gaussian, Linear, VPCosine
from diffedu._core import (Bound, Distribution, as_param, check_batch, check_callable, check_choice, check_probs,
                           check_int, check_n, check_positive, check_process, check_real, check_weights,
                           coefs, field_at, resolve_device)

F64 = torch.float64


# --- argument checks ------------------------------------------------------------------------
def test_check_batch():
    x = torch.zeros(3, 2, dtype=F64)
    assert check_batch(x) is x and check_batch(x, 2) is x
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor of shape \(B, D\); got list"):
        check_batch([[0.0, 0.0]])
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        check_batch(np.zeros((3, 2)), name="y")
    with pytest.raises(TypeError, match="x must have a real floating dtype; got torch.int32"):
        check_batch(torch.zeros(3, 2, dtype=torch.int32))
    with pytest.raises(TypeError, match="x must have a real floating dtype; got torch.complex64"):
        check_batch(torch.zeros(3, 2, dtype=torch.complex64))
    bad = x.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match="x must be finite; 1 of its 3 rows hold NaN or inf"):
        check_batch(bad)
    assert check_batch(bad, finite=False) is bad
    with pytest.raises(ValueError, match=r"x must have shape \(B, 5\); got \(3, 2\)"):
        check_batch(x, 5)
    with pytest.raises(ValueError, match=r"x must have shape \(B, D\); got \(2,\)"):
        check_batch(torch.zeros(2))
    with pytest.raises(ValueError, match=r"got \(1, 3, 2\)"):
        check_batch(torch.zeros(1, 3, 2), 2)


def test_check_process():
    p = VP()
    assert check_process(p) is p
    with pytest.raises(TypeError, match="process must be a diffedu.processes.Process.*got str"):
        check_process("VP")
    with pytest.raises(TypeError, match="process must be"):
        check_process(VP)  # the class, not an instance


def test_as_param():
    t = as_param([1, 2, 3], "mean", (None,))
    assert t.dtype == F64 and t.tolist() == [1.0, 2.0, 3.0]
    src = torch.ones(2, 2, dtype=torch.float32, requires_grad=True)
    out = as_param(src, "cov", (2, 2))
    assert out.dtype == F64 and not out.requires_grad
    out[0, 0] = 5.0  # a copy: the caller's tensor is untouched
    assert float(src.detach()[0, 0]) == 1.0
    with pytest.raises(ValueError, match=r"cov must have shape \(2, \?\); got \(3, 2\)"):
        as_param(np.zeros((3, 2)), "cov", (2, None))
    with pytest.raises(ValueError, match=r"mean must have shape \(\?\); got \(2, 2\)"):
        as_param(np.zeros((2, 2)), "mean", (None,))
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="weights must be finite"):
            as_param([0.5, bad], "weights")
    with pytest.raises(TypeError, match="means must be array-like of numbers; got str"):
        as_param("abc", "means")
    with pytest.raises(TypeError, match="means must be array-like"):
        as_param([[1.0, 2.0], [3.0]], "means")


def test_check_weights():
    w = check_weights([0.25, 0.75], 2)
    assert w.dtype == F64
    check_weights([1 / 3] * 3)  # round-off within tolerance
    check_weights([0.0, 1.0])  # a zero weight is allowed
    with pytest.raises(ValueError, match="weights must be non-negative; got minimum -0.5"):
        check_weights([1.5, -0.5])
    with pytest.raises(ValueError, match="weights must sum to 1; got sum 0.6"):
        check_weights([0.3, 0.3])
    with pytest.raises(ValueError, match=r"weights must have shape \(3\)"):
        check_weights([0.5, 0.5], 3)
    with pytest.raises(ValueError, match="pi must sum to 1"):
        check_weights([2.0], name="pi")
    with pytest.raises(ValueError, match="weights must be finite"):
        check_weights([float("nan"), 1.0])


def test_check_n_and_check_int():
    """Wrong type -> TypeError, wrong value -> ValueError, both naming the argument; a bool is
    not an integer."""
    assert check_n(0) == 0 and check_n(7) == 7
    import numpy as np
    assert check_int(np.int64(3), "k") == 3 and type(check_int(np.int64(3), "k")) is int
    for bad in (2.0, True, False, "3", None, torch.tensor(3)):
        with pytest.raises(TypeError, match="n must be an integer; got"):
            check_n(bad)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 0; got -1"):
        check_n(-1, "n_samples")
    with pytest.raises(ValueError, match="steps must be an integer >= 1; got 0"):
        check_int(0, "steps", minimum=1)
    with pytest.raises(ValueError, match="k must be an integer <= 4; got 5"):
        check_int(5, "k", maximum=4)


def test_check_real_and_check_positive():
    assert check_real(2, "x") == 2.0 and check_real(torch.tensor(0.5), "x") == 0.5
    assert check_positive(1e-300, "tol") == 1e-300
    for bad in ("0.5", True, None, [1.0], torch.ones(2), 1j):
        with pytest.raises(TypeError, match="x must be a real number"):
            check_real(bad, "x")
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="x must be a finite number"):
            check_real(bad, "x")
    assert check_real(float("inf"), "x", finite=False) == float("inf")
    with pytest.raises(ValueError, match="rtol must be > 0"):
        check_positive(0.0, "rtol")
    with pytest.raises(ValueError, match="p must be >= 0"):
        check_real(-0.1, "p", minimum=0.0)
    with pytest.raises(ValueError, match="p must be < 1"):
        check_real(1.0, "p", maximum=1.0, strict=True)


def test_check_callable_choice_and_field_at():
    with pytest.raises(TypeError, match="D must be a denoiser; got int"):
        check_callable(3, "D", "a denoiser")
    with pytest.raises(ValueError, match="method must be one of"):
        check_choice("pca", "method", ("jacobian", "scores"))
    f = lambda x, t: x * t  # noqa: E731
    assert field_at(f, 2.0)(torch.ones(1)).item() == 2.0
    assert field_at(torch.sin, None) is torch.sin


def test_resolve_device():
    g = torch.Generator()
    assert resolve_device(None, None, None) == (torch.device("cpu"), torch.get_default_dtype())
    assert resolve_device(g, None, F64) == (torch.device("cpu"), F64)
    assert resolve_device(g, "cpu", torch.float32) == (torch.device("cpu"), torch.float32)
    assert resolve_device(None, torch.device("cpu"), F64)[0] == torch.device("cpu")
    with pytest.raises(ValueError, match=r"generator lives on cpu but must draw on cuda.*"
                                         r"torch.Generator\(device='cuda'\)"):
        resolve_device(g, "cuda", F64)
    with pytest.raises(ValueError, match="generator lives on cpu"):
        resolve_device(g, torch.device("meta"), F64)
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None; got int"):
        resolve_device(0, None, None)
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        resolve_device(None, None, torch.int64)


@pytest.mark.parametrize("p", [VP(), VPCosine(), VE(), EDM(), Linear()], ids=lambda p: type(p).__name__)
def test_coefs(p):
    x = torch.zeros(4, 2, dtype=F64)
    t = 0.3 * p.t_max
    a, s = coefs(p, t, x)
    assert a.shape == () and a.dtype == F64
    assert float(a) == pytest.approx(float(p.alpha(t)), rel=1e-15)
    assert float(s) == pytest.approx(float(p.sigma(t)), rel=1e-15)
    # a 0-d tensor is the same as a float
    a0, s0 = coefs(p, torch.tensor(t, dtype=F64), x)
    assert float(a0) == float(a) and float(s0) == float(s)
    # a (B,) tensor gives (B, 1) columns, computed in float64 and cast to x's dtype
    ts = torch.linspace(0.0, p.t_max, 4, dtype=torch.float32)
    a4, s4 = coefs(p, ts, x.float())
    assert a4.shape == (4, 1) and a4.dtype == torch.float32
    torch.testing.assert_close(s4[:, 0], p.sigma(ts.double()).float())
    # float32 x: coefficients in float32, computed from float64
    a32, s32 = coefs(p, t, x.float())
    assert a32.dtype == torch.float32 and float(s32) == pytest.approx(float(s), rel=1e-7)
    with pytest.raises(ValueError, match=r"t must be a float, a 0-d tensor or a \(4,\) tensor; got shape \(3,\)"):
        coefs(p, torch.zeros(3), x)
    with pytest.raises(ValueError, match=r"t must lie in"):
        coefs(p, -0.1, x)
    with pytest.raises(ValueError, match=r"t must lie in"):
        coefs(p, torch.tensor([0.1, 0.2, 0.3, 2 * p.t_max + 1]), x)
    with pytest.raises(TypeError, match="process must be"):
        coefs(None, t, x)


def test_coefs_keep_the_graph_through_t():
    p = VP()
    t = torch.tensor([0.2, 0.6], dtype=F64, requires_grad=True)
    a, s = coefs(p, t, torch.zeros(2, 3, dtype=F64))
    (da,) = torch.autograd.grad(a.sum(), t)
    torch.testing.assert_close(da, p.d_alpha(t.detach()))


# --- the Distribution interface --------------------------------------------------------------
class _FromDenoiser(Distribution):
    """N(m, v I) in D dimensions implementing only sample, log_prob and the denoiser."""

    def __init__(self, m, v):
        self.m, self.v, self.dim = torch.as_tensor(m, dtype=F64), float(v), len(m)

    def sample(self, n, *, generator=None, dtype=None, device=None):
        device, dtype = resolve_device(generator, device, dtype)
        z = torch.randn(check_n(n), self.dim, generator=generator, dtype=dtype, device=device)
        return self.m.to(dtype) + math.sqrt(self.v) * z

    def log_prob(self, x, t, process):
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x)
        var = a**2 * self.v + s**2
        return (-0.5 * ((x - a * self.m.to(x.dtype)) ** 2).sum(1) / var.reshape(-1)
                - 0.5 * self.dim * torch.log(2 * math.pi * var).reshape(-1))

    def denoiser(self, x, t, process):
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x)
        m = self.m.to(x.dtype)
        return m + a * self.v / (a**2 * self.v + s**2) * (x - a * m)


class _FromScore(_FromDenoiser):
    """The same distribution implementing the score instead: the base class derives the denoiser."""

    denoiser = Distribution.denoiser

    def score(self, x, t, process):
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x)
        return -(x - a * self.m.to(x.dtype)) / (a**2 * self.v + s**2)


@pytest.mark.parametrize("p", [VP(), EDM(), Linear()], ids=lambda p: type(p).__name__)
def test_tweedie_conversions_in_the_base_class(p):
    m = [1.0, -2.0]
    d, s_ = _FromDenoiser(m, 0.7), _FromScore(m, 0.7)
    g = Gaussian(m, [0.7, 0.7])
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=F64) * 2
    ts = torch.linspace(0.1, 0.9, 5, dtype=F64) * p.t_max
    for t in (0.5 * p.t_max, ts):
        for dist in (d, s_):
            torch.testing.assert_close(dist.score(x, t, p), g.score(x, t, p))
            torch.testing.assert_close(dist.denoiser(x, t, p), g.denoiser(x, t, p))
            torch.testing.assert_close(dist.eps(x, t, p), g.eps(x, t, p))
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(d.log_prob(xg, t, p).sum(), xg)
        torch.testing.assert_close(d.score(x, t, p), grad)
        # eps_hat = (x - alpha D) / sigma
        a, s = coefs(p, t, x)
        torch.testing.assert_close(d.eps(x, t, p), (x - a * d.denoiser(x, t, p)) / s)


def test_sample_marginal_and_bind():
    d = _FromDenoiser([1.0, -2.0], 0.5)
    p = VE()
    n, t = 40_000, 0.5
    x = d.sample_marginal(n, t, p, generator=torch.Generator().manual_seed(1), dtype=F64)
    a, s = float(p.alpha(t)), float(p.sigma(t))
    var = a**2 * 0.5 + s**2
    assert x.shape == (n, 2) and x.dtype == F64
    assert (x.mean(0) - a * d.m).abs().max() < 5 * math.sqrt(var / n)
    assert (x.var(0) / var - 1).abs().max() < 5 * math.sqrt(2 / n)
    y = d.sample_marginal(n, t, p, generator=torch.Generator().manual_seed(1), dtype=F64)
    assert torch.equal(x, y)
    # a (n,) tensor of times: one time per row
    ts = torch.tensor([0.0, 1.0], dtype=F64)
    x2 = d.sample_marginal(2, ts, p, generator=torch.Generator().manual_seed(2), dtype=F64)
    assert x2.shape == (2, 2)
    b = d.bind(p)
    assert isinstance(b, Bound) and b.process is p
    xx = torch.randn(3, 2, dtype=F64)
    for name in ("score", "denoiser", "log_prob", "eps"):
        torch.testing.assert_close(getattr(b, name)(xx, 0.4), getattr(d, name)(xx, 0.4, p))
    torch.testing.assert_close(b.sample_marginal(4, 0.4, generator=torch.Generator().manual_seed(3), dtype=F64),
                               d.sample_marginal(4, 0.4, p, generator=torch.Generator().manual_seed(3), dtype=F64))
    with pytest.raises(TypeError, match="process must be"):
        d.bind("VE")
    with pytest.raises(ValueError, match="generator lives on cpu"):
        d.sample_marginal(3, 0.5, p, generator=torch.Generator(), device="cuda")
    with pytest.raises(NotImplementedError):
        Distribution().sample(3)


# --- issue 21: found by tests/test_properties.py ---------------------------------------------------
def test_as_param_refuses_complex_bool_and_strings():
    """Complex parameters lost their imaginary part and bools became 0/1 without a word."""
    for bad, got in ((np.array([1.0 + 1j]), "complex128"), (torch.tensor([1j]), "complex64"),
                     (torch.tensor([True, False]), "bool"), ([True, False], "bool")):
        with pytest.raises(TypeError, match=f"mean must be array-like of numbers, real and not bool; got .*{got}"):
            as_param(bad, "mean")
    with pytest.raises(TypeError, match="probs must be array-like of probabilities, real and not bool"):
        check_probs(np.array([0.5 + 0j, 0.5]))


def test_resolve_device_checks_dtype_and_device():
    """A string dtype raised AttributeError ('str' has no is_floating_point); a misspelt device a RuntimeError."""
    with pytest.raises(TypeError, match="dtype must be a floating dtype .*; got 'float32'"):
        resolve_device(None, None, "float32")
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        resolve_device(None, None, np.float32)
    with pytest.raises(ValueError, match="device must name a device such as 'cpu'.*got 'cpux'"):
        resolve_device(None, "cpux", None)
    with pytest.raises(TypeError, match="device must be a torch.device or a string"):
        resolve_device(None, 1.5, None)


def test_coefs_checks_x_type_and_names_its_time():
    """coefs read x.device of a list (AttributeError) and cast alpha to an integer x's dtype (0)."""
    with pytest.raises(TypeError, match="x must be a floating torch.Tensor.*got list"):
        coefs(VP(), 0.5, [[1.0]])
    with pytest.raises(TypeError, match="x must be a floating torch.Tensor.*torch.int64"):
        coefs(VP(), 0.5, torch.ones(2, 1, dtype=torch.int64))
    with pytest.raises(TypeError, match="t_from must be a real number"):
        coefs(VP(), "0.5", torch.ones(2, 1), name="t_from")


def test_new_validators():
    from diffedu._validate import as_times, check_coordinates, check_output
    assert as_times(0.5).tolist() == [0.5] and as_times([0.1, 0.2]).dtype == F64
    with pytest.raises(ValueError, match="ts must be a non-empty 1-D sequence of times"):
        as_times([])
    with pytest.raises(TypeError, match="ts must be a 1-D tensor or sequence of times; got str"):
        as_times("0.5")
    assert check_coordinates([1, 0], "dims", 2) == (1, 0)
    with pytest.raises(TypeError, match="dims .* must be an integer; got bool"):
        check_coordinates([True], "dims", 2)
    with pytest.raises(ValueError, match="dims must be 2 different coordinates of 0..2"):
        check_coordinates((0, 3), "dims", 3, 2)
    x = torch.zeros(2, 3)
    assert check_output(x + 1, x, "D") is not None
    with pytest.raises(ValueError, match=r"D must return a tensor of x's shape \(2, 3\); got \(2, 1\)"):
        check_output(x[:, :1], x, "D")
