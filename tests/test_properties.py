"""Property-based tests of every public callable of the core (issue 21, ``docs/input-checks.md``).

One table, :data:`SPECS`, holds a spec per public callable: how Hypothesis draws a valid call
(``make``), what its result must satisfy (``check``: finite, of the right shape and dtype), and
for each argument the kinds of bad input that apply to it (``bad``). Three tests read the table:

* :func:`test_registry`: the public callables found in the modules (every name in the
  ``__all__`` of every core module, and the public methods of the public classes) are exactly
  :data:`REGISTRY`, and every entry has a spec or a reason in :data:`LEFT_OUT`; a new public
  function without a strategy fails here;
* :func:`test_valid`: valid calls return finite results of the right shape and dtype;
* :func:`test_bad`: each kind of bad input (:data:`KINDS` builds the cases from the valid value)
  raises ``TypeError`` (a wrong type) or ``ValueError`` (a wrong value) whose message names the
  argument.

The default command runs a few derandomized examples per test (profile ``default``, about
40 s); the slow step (``pytest -m slow``) reruns both tests with the ``explore`` profile.
"""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffedu
from diffedu import (calculus, categorical, conservativity, datasets, diagnostics, dimension, flows,
                     fokker_planck as fp, gauge, gaussian, gaussian_approx as gapprox, hodge, interpolants,
                     likelihood, memorisation, metrics, mixtures, nets, processes, samplers, subspace,
                     symbolic, training)
from diffedu import discrete as dd
from diffedu._core import Bound, Distribution

# --- Hypothesis profiles ---------------------------------------------------------------------
# Hypothesis (6.131 and newer) also draws literal constants that it finds in every loaded local
# module, so the examples of a derandomized run depended on what else the session had imported
# and on any constant anywhere in diffedu: the explore profile hung in the full slow step and
# not when this file ran alone. The pool stays empty here, so that a profile's examples depend
# only on this file's strategies (older Hypothesis has no such pool).
try:
    from hypothesis.internal.conjecture import providers as _providers
except ImportError:  # pragma: no cover
    _providers = None
if _providers is not None and hasattr(_providers, "_get_local_constants") and hasattr(_providers, "Constants"):
    _NO_LOCAL_CONSTANTS = _providers.Constants()
    _providers._get_local_constants = lambda: _NO_LOCAL_CONSTANTS

_COMMON = dict(derandomize=True, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
#: per-test example counts (a spec's ``examples`` scales them); the deadline catches hangs
PROFILES = {"default": dict(valid=3, bad=1, deadline=20_000),
            "explore": dict(valid=40, bad=10, deadline=60_000)}


def _settings(profile: str, which: str, scale: float, deadline: float | None):
    p = PROFILES[profile]
    return settings(max_examples=max(1, round(p[which] * scale)), deadline=deadline or p["deadline"], **_COMMON)


# --- a call, a spec, a bad input ---------------------------------------------------------------
@dataclass
class Call:
    """``fn(**kw)``; ``ctx`` tells the bad-input kinds what they need (the process, the batch size)."""

    fn: Callable
    kw: dict
    ctx: dict = field(default_factory=dict)

    def __call__(self, **override):
        return self.fn(**{**self.kw, **override})


@dataclass
class Spec:
    """How to call one public callable: ``make(draw) -> Call``, a ``check(result, call)`` of its
    valid result, and ``bad``: argument -> kinds of bad input (keys of :data:`KINDS`)."""

    make: Callable
    check: Callable
    bad: dict
    examples: float = 1.0
    deadline: float | None = None
    names: dict = field(default_factory=dict)
    bad_with: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Bad:
    """One bad value; ``exc`` None means "a ValueError (naming any argument) or a valid result"."""

    label: str
    value: Any
    exc: Any


def spec(make, check=None, *, examples=1.0, deadline=None, names=None, bad_with=None, **bad):
    """A :class:`Spec`; ``bad`` maps argument names to a kind or a tuple of kinds. ``names``: other
    names an error may call an argument by; ``bad_with``: argument -> keyword values that make
    the argument matter (probes need the Hutchinson method)."""
    bad = {a: (k,) if isinstance(k, str) or callable(k) else tuple(k) for a, k in bad.items()}
    return Spec(make, check or finite, bad, examples, deadline, names or {}, bad_with or {})


# --- checks of valid results -----------------------------------------------------------------
def _all_finite(v) -> bool:
    if isinstance(v, torch.Tensor):
        return not (v.is_floating_point() or v.is_complex()) or bool(torch.isfinite(v).all())
    if isinstance(v, np.ndarray):
        return not np.issubdtype(v.dtype, np.inexact) or bool(np.isfinite(v).all())
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, dict):
        return all(_all_finite(u) for u in v.values())
    if isinstance(v, (tuple, list)):
        return all(_all_finite(u) for u in v)
    return True


def finite(out, call=None):
    """Every number in the result (tensors, arrays, floats, tuples, dicts) is finite."""
    assert _all_finite(out), f"non-finite result {out!r}"


def like(shape=None, dtype=None):
    """A check: a finite tensor of ``shape`` and ``dtype`` (callables of the call, or values)."""
    def check(out, call):
        assert isinstance(out, torch.Tensor), type(out)
        finite(out)
        want = shape(call) if callable(shape) else shape
        if want is not None:
            assert tuple(out.shape) == tuple(want), (tuple(out.shape), tuple(want))
        wd = dtype(call) if callable(dtype) else dtype
        if wd is not None:
            assert out.dtype == wd, (out.dtype, wd)
    return check


def like_x(arg="x", cols=None):
    """A finite (B, D) tensor in the dtype of the argument ``arg`` (D = ``cols`` when given)."""
    def shape(c):
        x = c.kw[arg]
        return (x.shape[0], x.shape[1] if cols is None else cols)
    return like(shape, lambda c: c.kw[arg].dtype)


def rows_of(arg="x"):
    """A finite (B,) tensor in the dtype of the argument ``arg``."""
    return like(lambda c: (c.kw[arg].shape[0],), lambda c: c.kw[arg].dtype)


def is_a(cls, also=None):
    def check(out, call):
        assert isinstance(out, cls), type(out)
        if also is not None:
            also(out, call)
    return check


def returns_field(args):
    """A check of a returned callable: called with ``args(call)`` it gives a finite result."""
    def check(out, call):
        assert callable(out)
        a = args(call)
        res = out(*a)
        finite(res)
        if isinstance(a[0], torch.Tensor) and isinstance(res, torch.Tensor) and res.dim() == 2:
            assert res.shape == a[0].shape and res.dtype == a[0].dtype
    return check


# --- drawing valid inputs ----------------------------------------------------------------------
PROCESSES = (processes.VP(), processes.VPCosine(), processes.VE(), processes.EDM(), processes.Linear())
FLOATS = (torch.float32, torch.float64)
F64 = torch.float64


def proc(draw):
    return draw(st.sampled_from(PROCESSES))


def fdtype(draw):
    return draw(st.sampled_from(FLOATS))


def ints(draw, lo, hi):
    return draw(st.integers(lo, hi))


def reals(draw, lo, hi):
    return draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False))


def array(draw, shape, lo=-2.0, hi=2.0):
    """A float64 NumPy array of ``shape`` with entries in [lo, hi]."""
    return draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False,
                                                                 allow_subnormal=False)))


def tensor(draw, shape, lo=-2.0, hi=2.0, dtype=F64):
    return torch.as_tensor(array(draw, shape, lo, hi)).to(dtype)


def batch(draw, B=None, D=None, dtype=None, lo=-2.0, hi=2.0):
    """x: (B, D) in a float dtype."""
    B = ints(draw, 1, 4) if B is None else B
    D = ints(draw, 1, 3) if D is None else D
    return tensor(draw, (B, D), lo, hi, fdtype(draw) if dtype is None else dtype)


def spd(draw, D, floor=0.1):
    """A symmetric positive-definite (D, D) float64 array."""
    A = array(draw, (D, D), -1.0, 1.0)
    return A @ A.T + floor * np.eye(D)


def time(draw, p, *, B=None, positive=False, form=None):
    """A time of process p as a float, a 0-d tensor or a (B,) tensor; in [t_eps, t_max] when
    ``positive`` (uniform in lambda), else also 0 and anywhere in [0, t_max]."""
    def one():
        if not positive and draw(st.booleans()):
            return draw(st.sampled_from([0.0, reals(draw, 1e-6, 1.0) * p.t_max]))
        lam = reals(draw, float(p.lam(p.t_max)), float(p.lam(p.t_eps)))
        return min(max(float(p.t_of_lam(lam)), p.t_eps), p.t_max)
    forms = ["float", "0d"] + (["batch"] if B is not None else [])
    form = draw(st.sampled_from(forms)) if form is None else form
    if form == "float":
        return one()
    if form == "0d":
        return torch.tensor(one(), dtype=fdtype(draw))
    return torch.tensor([one() for _ in range(B)], dtype=fdtype(draw))


def grid(draw, p, n=None):
    """A strictly decreasing grid of p (a time_grid, ending at 0 or at t_eps)."""
    n = ints(draw, 1, 4) if n is None else n
    ts = processes.time_grid(p, n, draw(st.sampled_from(["uniform", "lambda", "karras"])))
    return ts if draw(st.booleans()) else ts[:-1] if n > 1 else ts


def gaussian_dist(draw, D, *, singular=None):
    mean = array(draw, (D,))
    form = draw(st.sampled_from(["full", "diag", "low_rank"] if singular is not False else ["full", "diag"]))
    if form == "full":
        return gaussian.Gaussian(mean, spd(draw, D))
    if form == "diag":
        return gaussian.Gaussian(mean, array(draw, (D,), 0.05, 2.0))
    r = ints(draw, 1, D)
    # noise 0 (singular) or >= 1e-3: a positive noise below float32's range (1e-298) makes a law that is
    # not singular in float64 and has zero variance in float32 (0/0 at t = 0), a limit of the dtype
    noise = 0.0 if draw(st.booleans()) else reals(draw, 1e-3, 0.5)
    # factor entries 0 or of size >= 1e-3, for the same reason: a factor of 3e-77 is a law of variance
    # 1e-153, a point mass in float32 (0/0 when a float32 x is carried from t = 0)
    U = array(draw, (D, r), -1.0, 1.0)
    U[np.abs(U) < 1e-3] = 0.0
    return gaussian.Gaussian.low_rank(mean, U, noise)


def mixture(draw, D, K=None):
    K = ints(draw, 1, 3) if K is None else K
    w = array(draw, (K,), 0.1, 1.0)
    covs = np.stack([spd(draw, D) for _ in range(K)]) if draw(st.booleans()) else array(draw, (K, D), 0.05, 1.0)
    return mixtures.GaussianMixture(w / w.sum(), array(draw, (K, D)), covs)


def low_rank_mixture(draw, D):
    K, r = ints(draw, 1, 3), ints(draw, 1, D)
    U = torch.linalg.qr(tensor(draw, (K, D, r)) + torch.eye(D, r, dtype=F64))[0]
    noise = draw(st.sampled_from([0.0, reals(draw, 0.01, 0.5)]))
    return mixtures.LowRankMixture(U, scales=array(draw, (K, r), 0.2, 2.0), means=array(draw, (K, D)), noise=noise)


def empirical(draw, D):
    return mixtures.Empirical(tensor(draw, (ints(draw, 1, 5), D)))


def dist(draw, D, kinds=("gaussian", "mixture", "low_rank", "empirical")):
    kind = draw(st.sampled_from(kinds))
    return {"gaussian": gaussian_dist, "mixture": mixture, "low_rank": low_rank_mixture,
            "empirical": empirical}[kind](draw, D)


def singular(d) -> bool:
    """Whether p_0 of d has no density (then t must be > 0 wherever p_t or its score is used)."""
    return isinstance(d, mixtures.Empirical) or bool(d._c.singular)


# --- kinds of bad input --------------------------------------------------------------------------
def _at(v, draw, fill):
    """A copy of tensor v with ``fill`` at one drawn entry."""
    v = v.detach().clone().contiguous()
    v.view(-1)[ints(draw, 0, v.numel() - 1)] = fill
    return v


def _nonfinite(v, draw):
    return [Bad("NaN", _at(v, draw, math.nan), ValueError), Bad("inf", _at(v, draw, -math.inf), ValueError)]


def _dtypes(v):
    return [Bad("integer dtype", v.detach().round().to(torch.int64), TypeError),
            Bad("complex dtype", v.detach().to(torch.complex128), TypeError),
            Bad("bool dtype", v.detach() > 0, TypeError)]


def _containers(v):
    return [Bad("list", v.detach().tolist(), TypeError), Bad("numpy array", v.detach().cpu().numpy(), TypeError),
            Bad("numeric string", "1.5", TypeError)]


def k_tensor(v, call, draw):
    """A floating torch.Tensor of a fixed number of dimensions."""
    return (_nonfinite(v, draw) + _dtypes(v) + _containers(v)
            + [Bad("empty", torch.empty(0, dtype=v.dtype), ValueError), Bad("extra dimension", v.detach()[None], ValueError)])


def k_batch(v, call, draw):
    """x: a (B, D) floating torch.Tensor, any D."""
    return k_tensor(v, call, draw) + [Bad("1-D", v.detach()[0], ValueError), Bad("no rows", v.detach()[:0], None)]


def k_batch_d(v, call, draw):
    """x: a (B, D) floating torch.Tensor whose D is fixed by the callable."""
    return k_batch(v, call, draw) + [Bad("wrong D", torch.cat([v.detach(), v.detach()[:, :1]], 1), ValueError)]


def k_data(v, call, draw):
    """Data (M, D) where array-likes are accepted (lists, NumPy arrays of floats)."""
    v = torch.as_tensor(v)
    return (_nonfinite(v, draw) + [Bad("complex dtype", v.to(torch.complex128), TypeError),
                                   Bad("bool dtype", v > 0, TypeError), Bad("string", "abc", TypeError),
                                   Bad("1-D", v[0], ValueError), Bad("extra dimension", v[None], ValueError)])


def k_data_d(v, call, draw):
    v = torch.as_tensor(v)
    return k_data(v, call, draw) + [Bad("wrong D", torch.cat([v, v[:, :1]], 1), ValueError)]


def k_array(v, call, draw):
    """An array-like parameter (list, NumPy array or tensor of numbers) of a fixed shape."""
    t = torch.as_tensor(v, dtype=F64)
    return ([Bad("NaN", _at(t, draw, math.nan), ValueError), Bad("inf", _at(t, draw, math.inf), ValueError),
             Bad("string", "abc", TypeError), Bad("complex", t.to(torch.complex128) + 1j, TypeError),
             Bad("bool", t > 0, TypeError), Bad("extra dimension", t[None, None], ValueError)]
            + ([Bad("empty", t.reshape(-1)[:0], ValueError)] if t.dim() != 1 or t.numel() else []))


def k_cov(v, call, draw, full_dim=None):
    """A symmetric positive semi-definite (.., D, D) matrix (array-like); ``full_dim``: the number of
    dimensions of the full form when a diagonal form can be square too (a mixture's (K, D) variances)."""
    t = torch.as_tensor(v, dtype=F64)
    if t.dim() < 2 or t.shape[-1] != t.shape[-2] or (full_dim is not None and t.dim() != full_dim):  # diagonal
        return k_array(t, call, draw) + [Bad("negative variance", -t - 1.0, ValueError)]
    nonsym = t.clone()
    nonsym[..., 0, -1] += 1.0
    return k_array(t, call, draw) + [Bad("not symmetric", nonsym, ValueError) if t.shape[-1] > 1 else None,
                                     Bad("negative definite", -t - torch.eye(t.shape[-1], dtype=F64), ValueError)]


def k_probs(v, call, draw):
    """Probabilities along the last dimension (summing to 1)."""
    t = torch.as_tensor(v, dtype=F64)
    neg = t.clone()
    neg[..., 0] -= 2.0
    return [Bad("NaN", _at(t, draw, math.nan), ValueError), Bad("negative", neg, ValueError),
            Bad("sum != 1", 2 * t, ValueError), Bad("string", "abc", TypeError),
            Bad("complex", t.to(torch.complex128), TypeError), Bad("empty", t[..., :0], ValueError)]


def k_weights(v, call, draw):
    t = torch.as_tensor(v, dtype=F64)
    return k_probs(t, call, draw) + [Bad("wrong length", torch.cat([t, t[:1]]) / (1 + t[0]), ValueError)]


def _time_values(p, B, positive):
    hi = p.t_max * 1.01 + 0.01
    mid = 0.5 * (p.t_eps + p.t_max)
    out = [Bad("numeric string", "0.5", TypeError), Bad("bool", True, TypeError),
           Bad("complex tensor", torch.tensor(0.5 + 0j), TypeError), Bad("list", [mid], TypeError),
           Bad("NaN", math.nan, ValueError), Bad("below t_min", -1e-13, ValueError),
           Bad("above t_max", hi, ValueError), Bad("NaN in a tensor", torch.tensor([math.nan]), ValueError),
           Bad("above t_max in a tensor", torch.tensor([mid, hi]) if B == 2 else torch.tensor(hi), ValueError)]
    if positive:
        out.append(Bad("t = 0", 0.0, ValueError))
    return out


def _shape_cases(mid, B, exc=ValueError):
    out = [Bad("2-D tensor", torch.full((max(B or 2, 2), 1), mid), exc)]
    if B is not None:
        out.append(Bad("wrong length", torch.full((B + 1,), mid), exc))
    return out


def k_time(v, call, draw, positive=False, one=False):
    """A time of ``call.ctx["process"]``: a float, a 0-d or a (B,) tensor in [t_min, t_max]."""
    p, B = call.ctx["process"], call.ctx.get("B")
    mid = 0.5 * (p.t_eps + p.t_max)
    return (_time_values(p, None if one else B, positive)
            + _shape_cases(mid, None if one else B, (TypeError, ValueError) if one else ValueError))


def k_times(v, call, draw):
    """A sequence (T,) of times in (0, t_max] (one time per row of a result)."""
    p = call.ctx["process"]
    mid = 0.5 * (p.t_eps + p.t_max)
    return [Bad("string", "abc", TypeError), Bad("complex", torch.tensor([mid + 0j]), TypeError),
            Bad("NaN", [mid, math.nan], ValueError), Bad("t = 0", [mid, 0.0], ValueError),
            Bad("above t_max", [mid, p.t_max * 1.01 + 0.01], ValueError), Bad("empty", [], ValueError),
            Bad("2-D", torch.full((2, 2), mid), ValueError)]


def k_grid(v, call, draw):
    """A strictly decreasing grid (N+1,) of times of the process, N >= 1."""
    p = call.ctx["process"]
    ts = torch.as_tensor(v, dtype=F64)
    rep = torch.cat([ts[:1], ts])
    return [Bad("increasing", ts.flip(0), ValueError), Bad("repeated time", rep, ValueError),
            Bad("NaN", _at(ts, draw, math.nan), ValueError), Bad("above t_max", ts + p.t_max, ValueError),
            Bad("below 0", ts - ts[0] - 1.0, ValueError), Bad("one time", ts[:1], ValueError),
            Bad("2-D", ts[None], ValueError), Bad("string", "abc", TypeError),
            Bad("complex", ts.to(torch.complex128), TypeError)]


def k_int(minimum=0, maximum=None, huge=False):
    """An integer >= minimum (<= maximum); ``huge``: a size cap refuses 10**12."""
    def cases(v, call, draw):
        out = [Bad("bool", True, TypeError), Bad("float", float(minimum) + 1.0, TypeError),
               Bad("numeric string", str(minimum + 1), TypeError), Bad("too small", minimum - 1, ValueError)]
        if maximum is not None:
            out.append(Bad("too large", maximum + 1, ValueError))
        if huge:
            out.append(Bad("huge", 10**12, ValueError))
        return out
    return cases


def k_real(minimum=None, maximum=None, strict=False, finite=True):
    """A real number (int or float) in [minimum, maximum] (open with ``strict``)."""
    def cases(v, call, draw):
        out = [Bad("numeric string", "0.5", TypeError), Bad("bool", True, TypeError),
               Bad("complex", 0.5j, TypeError), Bad("list", [0.5], TypeError), Bad("NaN", math.nan, ValueError)]
        if finite and maximum is None:
            out.append(Bad("inf", math.inf, ValueError))
        if minimum is not None:
            out.append(Bad("below the minimum", minimum if strict else minimum - 1.0, ValueError))
        if maximum is not None:
            out.append(Bad("above the maximum", maximum if strict else maximum + 1.0, ValueError))
        return out
    return cases


def k_callable(v, call, draw):
    return [Bad("number", 3, TypeError), Bad("string", "f", TypeError)]


def k_field(v, call, draw):
    """A callable field that returns the wrong shape (checked on its first call)."""
    return k_callable(v, call, draw) + [Bad("returns (B, D + 1)", lambda x, t=None: torch.cat([x, x[:, :1]], 1), ValueError)]


def k_process(v, call, draw):
    return [Bad("string", "VP", TypeError), Bad("class", processes.VP, TypeError), Bad("None", None, TypeError)]


def k_generator(v, call, draw):
    return [Bad("seed", 0, TypeError), Bad("NumPy generator", np.random.default_rng(0), TypeError)]


def k_dtype(v, call, draw):
    return [Bad("integer dtype", torch.int64, TypeError), Bad("string", "float32", TypeError),
            Bad("NumPy dtype", np.float32, TypeError)]


def k_device(v, call, draw):
    return [Bad("unknown device", "cpux", ValueError), Bad("number", 1.5, TypeError)]


def k_choice(v, call, draw):
    return [Bad("unknown option", "nonsense", ValueError), Bad("number", 3, (TypeError, ValueError))]


def k_type(label, value):
    """A value of a wrong type (a string, a number)."""
    def cases(v, call, draw):
        return [Bad(label, value, TypeError), Bad("number", 3, TypeError)]
    return cases


def k_tokens(mask=True):
    """Token ids (B, L) in 0..V-1 (and V, the mask, when ``mask``); ``call.ctx["V"]``."""
    def cases(v, call, draw):
        V = call.ctx["V"]
        top = V + 1 if mask else V
        return [Bad("float dtype", v.to(F64), TypeError), Bad("list", v.tolist(), TypeError),
                Bad("token too large", _at(v, draw, top), ValueError), Bad("negative token", _at(v, draw, -1), ValueError),
                Bad("1-D", v[0], ValueError)]
    return cases


def k_unit_time(v, call, draw):
    """A time in [0, 1] (interpolants, masking schedules)."""
    return [Bad("numeric string", "0.5", TypeError), Bad("bool", True, TypeError),
            Bad("complex tensor", torch.tensor(0.5 + 0j), TypeError), Bad("NaN", math.nan, ValueError),
            Bad("below 0", -0.1, ValueError), Bad("above 1", 1.5, ValueError),
            Bad("above 1 in a tensor", torch.tensor([0.5, 1.5]), ValueError)]


def k_unit_grid(v, call, draw):
    """A strictly monotone grid in [0, 1]."""
    ts = torch.as_tensor(v, dtype=F64)
    return [Bad("not monotone", torch.cat([ts, ts[:1]]), ValueError), Bad("NaN", _at(ts, draw, math.nan), ValueError),
            Bad("above 1", ts + 2.0, ValueError), Bad("one time", ts[:1], ValueError), Bad("string", "abc", TypeError),
            Bad("complex", ts.to(torch.complex128), TypeError)]


def k_pair(v, call, draw):
    """Two different coordinate indices."""
    return [Bad("same coordinate", (0, 0), ValueError), Bad("out of range", (0, 99), ValueError),
            Bad("strings", ("a", "b"), TypeError), Bad("number", 0, TypeError), Bad("bools", (False, True), TypeError)]


KINDS = {
    "tensor": k_tensor, "batch": k_batch, "batch_d": k_batch_d, "data": k_data, "data_d": k_data_d,
    "array": k_array, "cov": k_cov, "probs": k_probs, "weights": k_weights,
    "time": k_time, "time_pos": lambda v, c, d: k_time(v, c, d, positive=True),
    "time1": lambda v, c, d: k_time(v, c, d, one=True), "time1_pos": lambda v, c, d: k_time(v, c, d, True, True),
    "times": k_times, "grid": k_grid, "unit_time": k_unit_time, "unit_grid": k_unit_grid,
    "count": k_int(0), "size": k_int(1), "size2": k_int(2), "size3": k_int(3),
    "real": k_real(), "positive": k_real(0.0, strict=True), "nonneg": k_real(0.0),
    "unit": k_real(0.0, 1.0), "open_unit": k_real(0.0, 1.0, strict=True),
    "callable": k_callable, "field": k_field, "process": k_process, "generator": k_generator,
    "dtype": k_dtype, "device": k_device, "choice": k_choice, "pair": k_pair,
    "tokens": k_tokens(True), "tokens0": k_tokens(False),
    "dist": k_type("string", "gaussian"), "gaussian": k_type("tensor", torch.zeros(2)),
    "schedule": k_type("string", "linear"), "grid2d": k_type("tuple", (-1.0, 1.0)),
}


# --- running a spec ----------------------------------------------------------------------------
def _kind(k):
    return KINDS[k] if isinstance(k, str) else k


def _names(spec_, arg):
    return (arg,) + tuple(spec_.names.get(arg, ()))


def _names_it(msg, names) -> bool:
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", msg) for n in names)


def run_valid(spec_, draw):
    call = spec_.make(draw)
    spec_.check(call(), call)


def run_bad(spec_, arg, draw):
    """Every bad value of every kind of ``arg``: the right exception, naming the argument."""
    call = spec_.make(draw)
    call.kw.update(spec_.bad_with.get(arg, {}))
    assert arg in call.kw, f"spec does not pass {arg!r}"
    names = _names(spec_, arg)
    for kind in spec_.bad[arg]:
        for bad in _kind(kind)(call.kw[arg], call, draw):
            if bad is None:
                continue
            what = f"{arg} = {bad.label} ({type(bad.value).__name__})"
            try:
                out = call(**{arg: bad.value})
            except (TypeError, ValueError) as e:
                want = bad.exc or ValueError
                assert isinstance(e, want), f"{what}: {type(e).__name__} instead of {want}: {e}"
                assert bad.exc is None or _names_it(str(e), names), f"{what}: the message does not name {arg}: {e}"
            except Exception as e:  # noqa: BLE001 - anything else is a failure of the policy
                raise AssertionError(f"{what}: {type(e).__name__} (not TypeError/ValueError): {e}") from e
            else:
                assert bad.exc is None, f"{what}: no error; returned {type(out).__name__}"



# === the specs: one per public callable ==========================================================
SPECS: dict = {}
KINDS["time_any"] = lambda v, c, d: _time_values(c.ctx["process"], None, False)
KINDS["time_any_pos"] = lambda v, c, d: _time_values(c.ctx["process"], None, True)
KINDS["lam"] = lambda v, c, d: [Bad("numeric string", "1.0", TypeError), Bad("bool", True, TypeError),
                                Bad("complex", torch.tensor(1j), TypeError), Bad("list", [1.0], TypeError),
                                Bad("NaN", math.nan, ValueError), Bad("NaN in a tensor", torch.tensor([0.0, math.nan]), ValueError)]
KINDS["time_dist"] = lambda v, c, d: k_time(v, c, d, positive=singular(c.ctx["dist"]))
KINDS["time1_dist"] = lambda v, c, d: k_time(v, c, d, positive=singular(c.ctx["dist"]), one=True)
KINDS["times_any"] = lambda v, c, d: [b for b in k_times(v, c, d) if b.label != "t = 0"]
KINDS["x_type"] = lambda v, c, d: _containers(v) + _dtypes(v)[:2]


# --- processes ----------------------------------------------------------------------------------
MAKE_PROCESS = {
    processes.VP: lambda d: processes.VP(reals(d, 0.05, 1.0), reals(d, 5.0, 25.0)),
    processes.VPCosine: lambda d: processes.VPCosine(reals(d, 0.001, 0.05), reals(d, 0.5, 0.9946)),
    processes.VE: lambda d: processes.VE(reals(d, 0.002, 0.1), reals(d, 1.0, 80.0)),
    processes.EDM: lambda d: processes.EDM(reals(d, 1.0, 100.0)),
    processes.Linear: lambda d: processes.Linear(reals(d, 0.5, 0.999)),
}
PROCESS_ARGS = {processes.VP: {"beta_min": "positive", "beta_max": "positive"},
                processes.VPCosine: {"s": "positive", "t_end": "open_unit"},
                processes.VE: {"sigma_min": "positive", "sigma_max": "positive"},
                processes.EDM: {"sigma_max": "positive"}, processes.Linear: {"t_end": "open_unit"}}
#: methods whose value at t = 0 is their infinite limit (lambda_0 = +inf; sigma' ~ 1/sqrt(t) for VP, VE)
AT_ZERO_INFINITE = {"d_sigma", "lam", "snr"}


def _process_ctor(cls):
    def make(d):
        p = MAKE_PROCESS[cls](d)
        return Call(cls, {k: getattr(p, k) for k in PROCESS_ARGS[cls]})
    return spec(make, is_a(cls), **PROCESS_ARGS[cls])


def _time_method(cls, name):
    def make(d):
        p = MAKE_PROCESS[cls](d)
        return Call(getattr(p, name), {"t": time(d, p, B=ints(d, 1, 3))}, {"process": p})

    def check(out, call):
        t = call.kw["t"]
        tt = torch.as_tensor(t, dtype=F64)
        assert isinstance(out, torch.Tensor) and tuple(out.shape) == tuple(tt.shape)
        assert out.dtype == (t.dtype if isinstance(t, torch.Tensor) else F64)
        ok = torch.isfinite(out) | ((tt == 0) & (out.abs() == math.inf) if name in AT_ZERO_INFINITE else False)
        assert bool(ok.all()), (out, t)
    return spec(make, check, t="time_any")


def _t_of_lam(cls):
    def make(d):
        p = MAKE_PROCESS[cls](d)
        lo, hi = float(p.lam(p.t_max)), float(p.lam(p.t_eps))
        lam = d(st.sampled_from(["float", "tensor"]))
        lam = reals(d, lo, hi) if lam == "float" else tensor(d, (ints(d, 1, 3),), lo, hi, fdtype(d))
        return Call(p.t_of_lam, {"lam": lam}, {"process": p})

    def check(out, call):
        finite(out)
        p = call.ctx["process"]
        assert float(out.min()) >= -1e-6 and float(out.max()) <= p.t_max * (1 + 1e-3) + 1e-6
    return spec(make, check, lam="lam")


def _check_t(cls):
    def make(d):
        p = MAKE_PROCESS[cls](d)
        return Call(p.check_t, {"t": time(d, p, B=ints(d, 1, 3))}, {"process": p})
    return spec(make, lambda out, call: out is None, t="time_any")


def _coefs(cls):
    def make(d):
        p = MAKE_PROCESS[cls](d)
        x = batch(d)
        return Call(p.coefs, {"t": time(d, p, B=x.shape[0]), "x": x}, {"process": p, "B": x.shape[0]})

    def check(out, call):
        x = call.kw["x"]
        for c in out:
            assert c.dtype == x.dtype and tuple(c.shape) in ((), (x.shape[0], 1))
        finite(out)
    return spec(make, check, t="time", x="x_type")


def _noise(cls):
    def make(d):
        p = MAKE_PROCESS[cls](d)
        x0 = batch(d)
        return Call(p.noise, {"x0": x0, "t": time(d, p, B=x0.shape[0]), "generator": torch.Generator().manual_seed(0)},
                    {"process": p, "B": x0.shape[0]})

    def check(out, call):
        for v in out:
            like_x("x0")(v, call)
    return spec(make, check, x0="batch", t="time", generator="generator")


PROCESS_METHODS = ("alpha", "sigma", "d_alpha", "d_sigma", "f", "g2", "lam", "snr")
for _cls in MAKE_PROCESS:
    _key = f"diffedu.processes.{_cls.__name__}"
    SPECS[_key] = _process_ctor(_cls)
    for _m in PROCESS_METHODS + (("beta",) if _cls is processes.VP else ()):
        SPECS[f"{_key}.{_m}"] = _time_method(_cls, _m)
    SPECS[f"{_key}.t_of_lam"] = _t_of_lam(_cls)
    SPECS[f"{_key}.check_t"] = _check_t(_cls)
    SPECS[f"{_key}.coefs"] = _coefs(_cls)
    SPECS[f"{_key}.noise"] = _noise(_cls)

SPECS["diffedu.processes.Process"] = spec(lambda d: Call(processes.Process, {}), is_a(processes.Process))


def _time_grid(d):
    p = proc(d)
    kw = {"process": p, "n": ints(d, 1, 6), "spacing": d(st.sampled_from(["uniform", "lambda", "karras"])),
          "rho": reals(d, 1.0, 10.0), "t_start": None, "t_eps": None}
    if d(st.booleans()):
        kw["t_eps"] = p.t_eps
        kw["t_start"] = reals(d, 0.5, 1.0) * (p.t_max - p.t_eps) + p.t_eps
    return Call(processes.time_grid, kw, {"process": p})


def _check_grid(out, call):
    like((call.kw["n"] + 1,), F64)(out, call)
    assert float(out[-1]) == 0.0 and bool((out[1:] < out[:-1]).all())


SPECS["diffedu.processes.time_grid"] = spec(_time_grid, _check_grid, process="process", n="size", spacing="choice",
                                            rho="positive", t_start="time1_pos", t_eps="time1_pos")


# --- distributions: Gaussian, mixtures, the empirical law, Bound -------------------------------------
DIST_KINDS = {"diffedu.gaussian.Gaussian": "gaussian", "diffedu.mixtures.GaussianMixture": "mixture",
              "diffedu.mixtures.LowRankMixture": "low_rank", "diffedu.mixtures.Empirical": "empirical"}


def _dist_call(kind, method, *, t=True, x=True, n=False):
    """A call of ``method`` of a drawn distribution of ``kind`` with x (B, D), a time, the process."""
    def make(d):
        D = ints(d, 1, 3)
        g = dist(d, D, (kind,))
        p = proc(d)
        kw, ctx = {}, {"process": p, "dist": g}
        if x:
            kw["x"] = batch(d, D=D)
            ctx["B"] = kw["x"].shape[0]
        if n:
            kw["n"] = ints(d, 0, 4)
        if t:
            kw["t"] = time(d, p, B=ctx.get("B"), positive=singular(g))
        kw["process"] = p
        return Call(getattr(g, method), kw, ctx)
    return make


def _time_kind(kind):
    return "time_dist"


def _field_specs(key, kind):
    tk = _time_kind(kind)
    for m in ("score", "denoiser", "eps"):
        SPECS[f"{key}.{m}"] = spec(_dist_call(kind, m), like_x(), x="batch_d", t=tk, process="process")
    SPECS[f"{key}.log_prob"] = spec(_dist_call(kind, "log_prob"), rows_of(), x="batch_d", t=tk, process="process")


def _sample_spec(kind, method="sample"):
    def make(d):
        g = dist(d, ints(d, 1, 3), (kind,))
        return Call(getattr(g, method), {"n": ints(d, 0, 5), "generator": torch.Generator().manual_seed(1),
                                         "dtype": fdtype(d), "device": "cpu"}, {"dist": g})

    def check(out, call):
        x = out[0] if method == "sample_with_labels" else out
        like((call.kw["n"], call.ctx["dist"].dim), call.kw["dtype"])(x, call)
        if method == "sample_with_labels":
            assert out[1].shape == (call.kw["n"],) and out[1].dtype == torch.long
    return spec(make, check, n="count", generator="generator", dtype="dtype", device="device")


def _sample_marginal_spec(kind):
    def make(d):
        g, p = dist(d, ints(d, 1, 3), (kind,)), proc(d)
        return Call(g.sample_marginal, {"n": ints(d, 0, 4), "t": time(d, p, form="float"), "process": p,
                                        "generator": torch.Generator().manual_seed(1), "dtype": fdtype(d)},
                    {"process": p, "dist": g})
    check = lambda out, call: like((call.kw["n"], call.ctx["dist"].dim), call.kw["dtype"])(out, call)  # noqa: E731
    return spec(make, check, n="count", t="time1", process="process", generator="generator", dtype="dtype")


def _bind_spec(kind):
    def make(d):
        g, p = dist(d, ints(d, 1, 3), (kind,)), proc(d)
        return Call(g.bind, {"process": p}, {"dist": g})
    return spec(make, is_a(Bound), process="process")


for _key, _kind_name in DIST_KINDS.items():
    _field_specs(_key, _kind_name)
    SPECS[f"{_key}.sample"] = _sample_spec(_kind_name)
    SPECS[f"{_key}.sample_marginal"] = _sample_marginal_spec(_kind_name)
    SPECS[f"{_key}.bind"] = _bind_spec(_kind_name)
for _key in ("diffedu.mixtures.GaussianMixture", "diffedu.mixtures.LowRankMixture"):
    _k = DIST_KINDS[_key]
    SPECS[f"{_key}.sample_with_labels"] = _sample_spec(_k, "sample_with_labels")
    SPECS[f"{_key}.responsibilities"] = spec(
        _dist_call(_k, "responsibilities"),
        lambda out, call: like((call.kw["x"].shape[0], call.ctx["dist"].K), call.kw["x"].dtype)(out, call),
        x="batch_d", t=_time_kind(_k), process="process")


def _gaussian_ctor(d):
    D = ints(d, 1, 3)
    mean = array(d, (D,))
    cov = spd(d, D) if d(st.booleans()) else array(d, (D,), 0.0, 2.0)
    as_ = d(st.sampled_from([list, np.asarray, torch.as_tensor]))
    return Call(gaussian.Gaussian, {"mean": as_(mean.tolist()) if as_ is list else as_(mean), "cov": as_(cov) if as_ is not list else cov.tolist()})


SPECS["diffedu.gaussian.Gaussian"] = spec(_gaussian_ctor, is_a(gaussian.Gaussian), mean="array", cov="cov")


def _low_rank(d):
    D = ints(d, 1, 3)
    return Call(gaussian.Gaussian.low_rank, {"mean": array(d, (D,)), "factor": array(d, (D, ints(d, 1, D))),
                                             "noise": reals(d, 0.0, 1.0)})


SPECS["diffedu.gaussian.Gaussian.low_rank"] = spec(_low_rank, is_a(gaussian.Gaussian), mean="array", factor="array",
                                                   noise="nonneg")


def _gauss_call(method, *, x=False, t_args=("t",), singular_ok=True):
    def make(d):
        D = ints(d, 1, 3)
        g, p = gaussian_dist(d, D, singular=None if singular_ok else False), proc(d)
        kw, ctx = {}, {"process": p, "dist": g}
        if x:
            kw["x"] = batch(d, D=D)
            ctx["B"] = kw["x"].shape[0]
        for a in t_args:
            kw[a] = time(d, p, B=ctx.get("B"), positive=singular(g), form=None if x else "float")
        kw["process"] = p
        return Call(getattr(g, method), kw, ctx)
    return make


_G = "diffedu.gaussian.Gaussian"
SPECS[f"{_G}.flow"] = spec(_gauss_call("flow", x=True, t_args=("t_from", "t_to")), like_x(), x="batch_d",
                           t_from="time_dist", t_to="time", process="process")
SPECS[f"{_G}.marginal_cov"] = spec(_gauss_call("marginal_cov"),
                                   lambda out, call: like((call.ctx["dist"].dim,) * 2, F64)(out, call),
                                   t="time1", process="process")
SPECS[f"{_G}.signal_fraction"] = spec(_gauss_call("signal_fraction"),
                                      lambda out, call: like((call.ctx["dist"]._c.r,), F64)(out, call),
                                      t="time1_dist", process="process")
SPECS[f"{_G}.pf_ode_divergence"] = spec(_gauss_call("pf_ode_divergence"), like((), F64), t="time1_dist",
                                        process="process")


def _flow_path(d):
    D = ints(d, 1, 3)
    g, p = gaussian_dist(d, D), proc(d)
    ts = torch.tensor([time(d, p, positive=singular(g), form="float") for _ in range(ints(d, 1, 4))], dtype=F64)
    return Call(g.flow_path, {"x": batch(d, D=D), "ts": ts, "process": p}, {"process": p})


SPECS[f"{_G}.flow_path"] = spec(_flow_path, lambda out, call: like(
    (call.kw["ts"].numel(),) + tuple(call.kw["x"].shape), call.kw["x"].dtype)(out, call),
    x="batch_d", ts="times_any", process="process")


def _bound_call(method):
    def make(d):
        D = ints(d, 1, 3)
        g, p = dist(d, D), proc(d)
        b = g.bind(p)
        if method == "sample_marginal":
            kw = {"n": ints(d, 0, 4), "t": time(d, p, form="float"), "generator": torch.Generator().manual_seed(2)}
            return Call(b.sample_marginal, kw, {"process": p, "dist": g})
        x = batch(d, D=D)
        return Call(getattr(b, method), {"x": x, "t": time(d, p, B=x.shape[0], positive=singular(g))},
                    {"process": p, "B": x.shape[0], "dist": g})
    return make


for _m in ("score", "denoiser", "eps"):
    SPECS[f"diffedu._core.Bound.{_m}"] = spec(_bound_call(_m), like_x(), x="batch_d", t="time_dist")
SPECS["diffedu._core.Bound.log_prob"] = spec(_bound_call("log_prob"), rows_of(), x="batch_d", t="time_dist")
SPECS["diffedu._core.Bound.sample_marginal"] = spec(
    _bound_call("sample_marginal"), lambda out, call: like((call.kw["n"], call.ctx["dist"].dim))(out, call),
    n="count", t="time1", generator="generator")
SPECS["diffedu._core.Bound"] = spec(lambda d: Call(Bound, {"dist": gaussian_dist(d, 2), "process": proc(d)}), is_a(Bound))


def _mixture_ctor(d):
    D, K = ints(d, 1, 3), ints(d, 1, 3)
    w = array(d, (K,), 0.1, 1.0)
    covs = np.stack([spd(d, D) for _ in range(K)]) if d(st.booleans()) else array(d, (K, D), 0.0, 1.0)
    return Call(mixtures.GaussianMixture, {"weights": w / w.sum(), "means": array(d, (K, D)), "covs": covs})


SPECS["diffedu.mixtures.GaussianMixture"] = spec(_mixture_ctor, is_a(mixtures.GaussianMixture), weights="weights",
                                                 means="array", covs=lambda v, c, d: k_cov(v, c, d, full_dim=3))


def _marginal(d):
    g = mixture(d, ints(d, 1, 3))
    dims = d(st.permutations(range(g.dim)))[:ints(d, 1, g.dim)]
    return Call(g.marginal, {"dims": list(dims)}, {"dist": g})


KINDS["dims"] = lambda v, c, d: [Bad("repeated", [0, 0], ValueError), Bad("out of range", [99], ValueError),
                                 Bad("empty", [], ValueError), Bad("numeric strings", ["0"], TypeError),
                                 Bad("floats", [0.5], TypeError), Bad("bools", [True], TypeError),
                                 Bad("number", 0, TypeError)]
SPECS["diffedu.mixtures.GaussianMixture.marginal"] = spec(
    _marginal, is_a(mixtures.GaussianMixture, lambda out, call: out.dim == len(call.kw["dims"])), dims="dims")


def _low_rank_ctor(d):
    D = ints(d, 1, 3)
    K, r = ints(d, 1, 3), ints(d, 1, D)
    U = torch.linalg.qr(tensor(d, (K, D, r)) + torch.eye(D, r, dtype=F64))[0]
    w = array(d, (K,), 0.1, 1.0)
    return Call(mixtures.LowRankMixture, {"bases": U, "weights": w / w.sum(), "scales": array(d, (K, r), 0.1, 2.0),
                                          "means": array(d, (K, D)), "noise": reals(d, 0.0, 1.0)})


KINDS["bases"] = lambda v, c, d: k_array(v, c, d) + [Bad("not orthonormal", 2 * torch.as_tensor(v), ValueError)]
SPECS["diffedu.mixtures.LowRankMixture"] = spec(_low_rank_ctor, is_a(mixtures.LowRankMixture), bases="bases",
                                                weights="weights", scales="array", means="array", noise="nonneg")


def _empirical_ctor(d):
    pts = array(d, (ints(d, 1, 5), ints(d, 1, 3)))
    as_ = d(st.sampled_from(["tensor32", "tensor64", "numpy", "list"]))
    pts = {"tensor32": torch.as_tensor(pts).float(), "tensor64": torch.as_tensor(pts), "numpy": pts,
           "list": pts.tolist()}[as_]
    return Call(mixtures.Empirical, {"points": pts, "chunk_elems": ints(d, 1, 2**26),
                                     "matmul_precision": d(st.sampled_from(["highest", "high", "medium"]))})


SPECS["diffedu.mixtures.Empirical"] = spec(_empirical_ctor, is_a(mixtures.Empirical), points="data",
                                           chunk_elems="size", matmul_precision="choice")


# --- gaussian: helpers ------------------------------------------------------------------------------
def _fit_gaussian(d):
    data = array(d, (ints(d, 2, 6), ints(d, 1, 3)))
    return Call(gaussian.fit_gaussian, {"data": d(st.sampled_from([torch.as_tensor, np.asarray]))(data),
                                        "shrinkage": reals(d, 0.0, 1.0)})


SPECS["diffedu.gaussian.fit_gaussian"] = spec(_fit_gaussian, is_a(gaussian.Gaussian), data="data", shrinkage="unit")
SPECS["diffedu.gaussian.rotated_2d"] = spec(
    lambda d: Call(gaussian.rotated_2d, {"lam1": reals(d, 0.0, 3.0), "lam2": reals(d, 0.0, 3.0),
                                         "angle_deg": reals(d, -360.0, 360.0), "mean": array(d, (2,))}),
    is_a(gaussian.Gaussian), lam1="nonneg", lam2="nonneg", angle_deg="real", mean="array")


def _decision_time(d):
    p = proc(d)
    ev = reals(d, 0.01, 10.0) if d(st.booleans()) else tensor(d, (ints(d, 1, 3),), 0.01, 10.0)
    return Call(gaussian.decision_time, {"eigval": ev, "process": p})


KINDS["eigval"] = lambda v, c, d: [Bad("string", "1.0", TypeError), Bad("bool", True, TypeError),
                                   Bad("complex", torch.tensor([1j]), TypeError), Bad("zero", 0.0, ValueError),
                                   Bad("negative", torch.tensor([1.0, -1.0]), ValueError),
                                   Bad("NaN", math.nan, ValueError), Bad("inf", math.inf, ValueError)]
SPECS["diffedu.gaussian.decision_time"] = spec(
    _decision_time, lambda out, call: like(tuple(torch.as_tensor(call.kw["eigval"]).shape), F64)(out, call),
    eigval="eigval", process="process")


def _cov_ellipse(d):
    return Call(gaussian.cov_ellipse, {"cov": spd(d, 2, 0.0), "mean": array(d, (2,)), "n_std": reals(d, 0.0, 3.0),
                                       "n": ints(d, 3, 50)})


SPECS["diffedu.gaussian.cov_ellipse"] = spec(_cov_ellipse, lambda out, call: like((call.kw["n"], 2), F64)(out, call),
                                             cov="cov", mean="array", n_std="nonneg", n="size3")


# --- samplers ------------------------------------------------------------------------------------
def _sampler_call(fn, extra=None):
    def make(d):
        D, p = ints(d, 1, 3), proc(d)
        g = dist(d, D, ("gaussian", "mixture"))
        x = batch(d, D=D)
        kw = {"D": g.bind(p).denoiser, "process": p, "x": x, "ts": grid(d, p),
              "generator": torch.Generator().manual_seed(3), "callback": None, "progress": False}
        kw.update(extra(d) if extra else {})
        return Call(fn, kw, {"process": p, "B": x.shape[0]})
    return make


KINDS["callback"] = lambda v, c, d: k_callable(v, c, d)
_SAMPLER_BAD = dict(D="field", process="process", x="batch", ts="grid", generator="generator", callback="callback")
for _name in ("euler", "heun", "ddim", "dpmpp_2m", "dpmpp_3m", "euler_maruyama", "ddpm_ancestral"):
    SPECS[f"diffedu.samplers.{_name}"] = spec(_sampler_call(getattr(samplers, _name)), like_x(), **_SAMPLER_BAD)
SPECS["diffedu.samplers.multistep3"] = spec(
    _sampler_call(samplers.multistep3, lambda d: {"start": d(st.sampled_from(["ddim", "midpoint"]))}), like_x(),
    start="choice", **_SAMPLER_BAD)
SPECS["diffedu.samplers.predictor_corrector"] = spec(
    _sampler_call(samplers.predictor_corrector, lambda d: {"snr": reals(d, 0.0, 0.3), "n_corrector": ints(d, 0, 2)}),
    like_x(), snr="nonneg", n_corrector="count", **_SAMPLER_BAD)


def _trajectory(d):
    call = _sampler_call(samplers.heun)(d)
    kw = {k: call.kw[k] for k in ("D", "process", "x", "ts")}
    return Call(samplers.trajectory, {"sampler": d(st.sampled_from([samplers.heun, samplers.ddpm_ancestral])), **kw},
                call.ctx)


SPECS["diffedu.samplers.trajectory"] = spec(
    _trajectory, lambda out, call: like((len(call.kw["ts"]),) + tuple(call.kw["x"].shape), call.kw["x"].dtype)(out, call),
    sampler="callable", D="field", process="process", x="batch", ts="grid")


# --- flows ---------------------------------------------------------------------------------------
def _field_call(fn):
    def make(d):
        D, p = ints(d, 1, 3), proc(d)
        g = dist(d, D, ("gaussian", "mixture"))
        x = batch(d, D=D)
        return Call(fn, {"denoiser": g.bind(p).denoiser, "process": p, "x": x,
                         "t": time(d, p, B=x.shape[0], positive=True)}, {"process": p, "B": x.shape[0]})
    return make


for _name in ("pf_ode_velocity", "reverse_sde_drift"):
    SPECS[f"diffedu.flows.{_name}"] = spec(_field_call(getattr(flows, _name)), like_x(), denoiser="callable",
                                           process="process", x="batch", t="time_pos")

#: converter -> (the model it takes, by the bound method that gives one)
CONVERTERS = {"denoiser_from_eps": ("eps_model", "eps"), "eps_from_denoiser": ("denoiser", "denoiser"),
              "denoiser_from_score": ("score_model", "score"), "score_from_denoiser": ("denoiser", "denoiser"),
              "denoiser_from_velocity": ("velocity_model", "velocity"),
              "velocity_from_denoiser": ("denoiser", "denoiser")}


def _converter(name):
    arg, kind = CONVERTERS[name]

    def make(d):
        D, p = ints(d, 1, 3), proc(d)
        b = dist(d, D, ("gaussian", "mixture")).bind(p)
        model = flows.velocity_from_denoiser(b.denoiser, p) if kind == "velocity" else getattr(b, kind)
        x = batch(d, D=D)
        return Call(getattr(flows, name), {arg: model, "process": p},
                    {"x": x, "t": time(d, p, B=x.shape[0], positive=True)})
    return spec(make, returns_field(lambda c: (c.ctx["x"], c.ctx["t"])), **{arg: "callable", "process": "process"})


for _name in CONVERTERS:
    SPECS[f"diffedu.flows.{_name}"] = _converter(_name)


# --- calculus --------------------------------------------------------------------------------------
def _smooth_field(d, D):
    M = tensor(d, (D, D), -1.0, 1.0)
    return lambda y: torch.tanh(y @ M.to(y.dtype))


def _calc_call(fn, scalar=False, opts=True):
    def make(d):
        x = batch(d)
        D = x.shape[1]
        f = (lambda y: (torch.tanh(y) ** 2).sum(1)) if scalar else _smooth_field(d, D)
        kw = {"f": f, "x": x}
        if opts:
            kw.update(method=d(st.sampled_from(["exact", "hutchinson"])), n_probes=ints(d, 1, 3),
                      probe=d(st.sampled_from(["rademacher", "gaussian"])), generator=torch.Generator().manual_seed(4))
            if not scalar:
                kw["probes"] = torch.randn((ints(d, 1, 3),) + tuple(x.shape), dtype=x.dtype).sign() if d(st.booleans()) else None
        return Call(fn, kw, {"B": x.shape[0]})
    return make


_HUTCH = {"method": "hutchinson"}
SPECS["diffedu.calculus.jacobian"] = spec(_calc_call(calculus.jacobian, opts=False), lambda out, call: like(
    (call.kw["x"].shape[0],) + (call.kw["x"].shape[1],) * 2, call.kw["x"].dtype)(out, call), f="field", x="batch")
SPECS["diffedu.calculus.divergence"] = spec(
    _calc_call(calculus.divergence), rows_of(), f="field", x="batch", method="choice", n_probes="size", probe="choice",
    generator="generator", probes="probes", bad_with={a: _HUTCH for a in ("n_probes", "probe", "generator", "probes")})
SPECS["diffedu.calculus.laplacian"] = spec(
    _calc_call(calculus.laplacian, scalar=True), rows_of(), f="callable", x="batch", method="choice", n_probes="size",
    probe="choice", generator="generator", bad_with={a: _HUTCH for a in ("n_probes", "probe", "generator")})
SPECS["diffedu.calculus.laplacian"].bad["f"] += (
    lambda v, c, d: [Bad("returns (B, D)", lambda y: y, ValueError)],)


def _probes(d):
    shape = (ints(d, 1, 3), ints(d, 1, 3))
    return Call(calculus.hutchinson_probes, {"shape": shape, "like": batch(d), "n_probes": ints(d, 1, 3),
                                             "probe": d(st.sampled_from(["rademacher", "gaussian"])),
                                             "generator": torch.Generator().manual_seed(5)})


KINDS["probes"] = lambda v, c, d: (k_tensor(torch.ones((2,) + tuple(c.kw["x"].shape), dtype=c.kw["x"].dtype), c, d)
                                   + [Bad("wrong shape", torch.ones(2, c.kw["x"].shape[0] + 1, c.kw["x"].shape[1]), ValueError)])
KINDS["shape"] = lambda v, c, d: [Bad("negative size", (-1, 2), ValueError), Bad("strings", ("a", 2), TypeError),
                                  Bad("floats", (1.5, 2), TypeError), Bad("number", 3.5, TypeError)]
KINDS["like"] = lambda v, c, d: [Bad("list", [1.0], TypeError), Bad("integer dtype", torch.ones(2, dtype=torch.int64), TypeError)]
SPECS["diffedu.calculus.hutchinson_probes"] = spec(
    _probes, lambda out, call: like((call.kw["n_probes"],) + call.kw["shape"], call.kw["like"].dtype)(out, call),
    shape="shape", like="like", n_probes="size", probe="choice", generator="generator")
KINDS["square"] = lambda v, c, d: k_array(v, c, d) + [Bad("not square", torch.ones(2, 3), ValueError)]
SPECS["diffedu.calculus.hutchinson_variance"] = spec(
    lambda d: Call(calculus.hutchinson_variance, {"A": array(d, (ints(d, 1, 4),) * 2),
                                                  "probe": d(st.sampled_from(["rademacher", "gaussian"]))}),
    like((), F64), A="square", probe="choice")


# --- categorical -----------------------------------------------------------------------------------
def probs(d, shape):
    w = array(d, shape, 0.0, 1.0) + 1e-3
    return w / w.sum(-1, keepdims=True)


def _sample_categorical(d):
    lead = d(st.sampled_from([(), (2,), (2, 3)]))
    return Call(categorical.sample_categorical, {"probs": torch.as_tensor(probs(d, lead + (ints(d, 1, 4),))),
                                                 "bits": ints(d, 1, 53), "generator": torch.Generator().manual_seed(6)})


def _check_categorical(out, call):
    p = call.kw["probs"]
    assert out.shape == p.shape[:-1] and out.dtype == torch.long and bool(((out >= 0) & (out < p.shape[-1])).all())


BITS = k_int(1, 53)
SPECS["diffedu.categorical.sample_categorical"] = spec(_sample_categorical, _check_categorical, probs="probs",
                                                       bits=BITS, generator="generator")


def _law_check(out, call):
    like((torch.as_tensor(call.kw["probs"]).shape[-1],), F64)(out, call)
    assert bool((out >= -1e-12).all()) and abs(float(out.sum()) - 1) < 1e-9


def _bits(d):
    return d(st.sampled_from([ints(d, 1, 8), 24, 53]))


SPECS["diffedu.categorical.gumbel_max_probs"] = spec(
    lambda d: Call(categorical.gumbel_max_probs, {"probs": probs(d, (ints(d, 1, 4),)), "bits": _bits(d)}),
    _law_check, probs="probs", bits=BITS)


def _masked_step_check(out, call):
    law, q = out
    _law_check(law, call)
    assert 0 <= q <= 1


SPECS["diffedu.categorical.masked_step_law"] = spec(
    lambda d: Call(categorical.masked_step_law, {"probs": probs(d, (ints(d, 1, 4),)), "q": reals(d, 0.05, 1.0),
                                                 "bits": _bits(d)}),
    _masked_step_check, probs="probs", q=k_real(0.0, 1.0, strict=False), bits=BITS)
SPECS["diffedu.categorical.masked_step_law"].bad["q"] += (lambda v, c, d: [Bad("zero", 0.0, ValueError)],)
SPECS["diffedu.categorical.entropy"] = spec(
    lambda d: Call(categorical.entropy, {"p": probs(d, (ints(d, 1, 3), ints(d, 1, 4))), "dim": -1}),
    lambda out, call: like((call.kw["p"].shape[0],), F64)(out, call), p="probs", dim=k_int(-2, 1))
SPECS["diffedu.categorical.total_variation"] = spec(
    lambda d: Call(categorical.total_variation, {"p": probs(d, (2, 3)), "q": probs(d, (2, 3)), "dim": -1}),
    lambda out, call: like((2,), F64)(out, call), p="probs", q="probs", dim=k_int(-2, 1))
SPECS["diffedu.categorical.zipf"] = spec(
    lambda d: Call(categorical.zipf, {"vocab_size": ints(d, 2, 50), "s": reals(d, 0.0, 3.0)}),
    lambda out, call: like((call.kw["vocab_size"],), F64)(out, call), vocab_size="size2", s="nonneg")


# --- conservativity ------------------------------------------------------------------------------
def _cons_call(fn, D=None):
    def make(d):
        x = batch(d, D=D)
        f = _smooth_field(d, x.shape[1])
        t = d(st.sampled_from([None, 0.5]))
        return Call(fn, {"field": (lambda y, t: f(y)) if t is not None else f, "x": x, "t": t})
    return make


SPECS["diffedu.conservativity.jacobian_at"] = spec(_cons_call(conservativity.jacobian_at), lambda out, call: like(
    (call.kw["x"].shape[0],) + (call.kw["x"].shape[1],) * 2, call.kw["x"].dtype)(out, call), field="field", x="batch")
SPECS["diffedu.conservativity.asymmetry"] = spec(_cons_call(conservativity.asymmetry), rows_of(), field="field",
                                                 x="batch")
SPECS["diffedu.conservativity.curl_2d"] = spec(_cons_call(conservativity.curl_2d, D=2), rows_of(), field="field",
                                               x="batch_d")


def _jac_call(fn):
    return lambda d: Call(fn, {"J": tensor(d, (ints(d, 1, 3),) + (ints(d, 1, 3),) * 2, dtype=fdtype(d))})


KINDS["jac"] = lambda v, c, d: k_tensor(v, c, d) + [Bad("not square", v[:, :, :0], ValueError)]
SPECS["diffedu.conservativity.antisymmetric_part"] = spec(_jac_call(conservativity.antisymmetric_part),
                                                          like(lambda c: c.kw["J"].shape, lambda c: c.kw["J"].dtype), J="jac")
SPECS["diffedu.conservativity.asymmetry_ratio"] = spec(_jac_call(conservativity.asymmetry_ratio),
                                                       like(lambda c: c.kw["J"].shape[:1], lambda c: c.kw["J"].dtype), J="jac")


def _circle_loops(d):
    c = batch(d, D=ints(d, 2, 3))
    return Call(conservativity.circle_loops, {"centers": c if d(st.booleans()) else c[0], "radius": reals(d, 0.1, 2.0),
                                              "n": ints(d, 3, 20), "dims": (0, 1)})


def _loops_shape(c):
    cen = c.kw["centers"]
    return (c.kw["n"] + 1, cen.shape[0] if cen.dim() == 2 else 1, cen.shape[-1])


KINDS["centers"] = lambda v, c, d: [b for b in k_tensor(v, c, d) if b.label != "extra dimension"] + [
    Bad("3-D", v.reshape(1, 1, -1), ValueError)]
SPECS["diffedu.conservativity.circle_loops"] = spec(_circle_loops, like(_loops_shape, lambda c: c.kw["centers"].dtype),
                                                    centers="centers", radius="positive", n="size3", dims="pair")


def _path_call(fn, closed=False, two=False):
    def make(d):
        D, B = ints(d, 2, 3), ints(d, 1, 3)
        f = _smooth_field(d, D)
        if closed:
            path = conservativity.circle_loops(batch(d, B=B, D=D), reals(d, 0.1, 1.0), ints(d, 3, 8))
        else:
            path = tensor(d, (ints(d, 2, 5), B, D), dtype=fdtype(d))
        kw = {"field": f, "t": None, "nodes": ints(d, 1, 4)}
        if two:
            other = path.clone()
            other[1:-1] += 0.1
            kw.update(path_a=path, path_b=other)
        else:
            kw["loop" if closed else "path"] = path
        return Call(fn, kw, {"B": B})
    return make


def _rows_of_path(arg):
    return like(lambda c: (c.kw[arg].shape[1],), lambda c: c.kw[arg].dtype)


KINDS["path"] = lambda v, c, d: (_nonfinite(v, d) + _dtypes(v) + _containers(v)
                                 + [Bad("one vertex", v[:1], ValueError), Bad("4-D", v[None], ValueError)])
KINDS["loop"] = lambda v, c, d: KINDS["path"](v, c, d) + [Bad("not closed", v[:-1], ValueError)]
SPECS["diffedu.conservativity.line_integral"] = spec(_path_call(conservativity.line_integral), _rows_of_path("path"),
                                                     field="callable", path="path", nodes="size")
SPECS["diffedu.conservativity.circulation"] = spec(_path_call(conservativity.circulation, closed=True),
                                                   _rows_of_path("loop"), field="callable", loop="loop", nodes="size")
SPECS["diffedu.conservativity.circulation_ratio"] = spec(_path_call(conservativity.circulation_ratio, closed=True),
                                                         _rows_of_path("loop"), field="callable", loop="loop", nodes="size")
KINDS["path_b"] = lambda v, c, d: KINDS["path"](v, c, d) + [Bad("other end points", v + 1.0, ValueError)]
SPECS["diffedu.conservativity.path_dependence"] = spec(_path_call(conservativity.path_dependence, two=True),
                                                       _rows_of_path("path_a"), field="callable", path_a="path",
                                                       path_b="path_b", nodes="size")
KINDS["matrix2"] = lambda v, c, d: k_array(v, c, d) + [Bad("1 x 1", [[1.0]], ValueError), Bad("not square", [[1.0, 2.0]], ValueError)]
SPECS["diffedu.conservativity.linear_circulation"] = spec(
    lambda d: Call(conservativity.linear_circulation, {"M": array(d, (ints(d, 2, 3),) * 2), "radius": reals(d, 0.1, 3.0)}),
    is_a(float, finite), M="matrix2", radius="positive")


# --- datasets ------------------------------------------------------------------------------------------
SPECS["diffedu.datasets.ring"] = spec(
    lambda d: Call(datasets.ring, {"k": ints(d, 1, 8), "radius": reals(d, 0.1, 3.0), "std": reals(d, 0.01, 1.0)}),
    is_a(mixtures.GaussianMixture), k="size", radius="positive", std="positive")
SPECS["diffedu.datasets.grid_mixture"] = spec(
    lambda d: Call(datasets.grid_mixture, {"n": ints(d, 1, 4), "spacing": reals(d, 0.1, 3.0), "std": reals(d, 0.01, 1.0)}),
    is_a(mixtures.GaussianMixture), n="size", spacing="positive", std="positive")
SPECS["diffedu.datasets.two_gaussians"] = spec(lambda d: Call(datasets.two_gaussians, {}), is_a(mixtures.GaussianMixture))


def _set_sampler(fn, extra):
    def make(d):
        kw = {"n": ints(d, 0, 6), "generator": torch.Generator().manual_seed(7), "dtype": fdtype(d), "device": "cpu"}
        kw.update(extra(d))
        return Call(fn, kw)
    return make


_n2 = lambda out, call: like((call.kw["n"], 2), call.kw["dtype"])(out, call)  # noqa: E731
_SET_BAD = dict(n="count", generator="generator", dtype="dtype", device="device")
SPECS["diffedu.datasets.two_moons"] = spec(_set_sampler(datasets.two_moons, lambda d: {"noise": reals(d, 0.0, 0.3)}),
                                           _n2, noise="nonneg", **_SET_BAD)
SPECS["diffedu.datasets.swiss_roll"] = spec(_set_sampler(datasets.swiss_roll, lambda d: {"noise": reals(d, 0.0, 0.3)}),
                                            _n2, noise="nonneg", **_SET_BAD)
SPECS["diffedu.datasets.checkerboard"] = spec(
    _set_sampler(datasets.checkerboard, lambda d: {"squares": ints(d, 2, 10**6), "half_width": reals(d, 0.5, 3.0)}),
    _n2, squares=k_int(2, 10**6, huge=True), half_width="positive", **_SET_BAD)
SPECS["diffedu.datasets.sampler"] = spec(
    lambda d: Call(datasets.sampler, {"name": d(st.sampled_from(sorted(datasets.SAMPLERS)))}),
    returns_field(lambda c: (3,)), name="choice")
SPECS["diffedu.datasets.load_digits"] = spec(
    lambda d: Call(datasets.load_digits, {"dtype": fdtype(d)}),
    lambda out, call: (like((1797, 64), call.kw["dtype"])(out.images, call), like((1797,), torch.long)(out.labels, call)),
    dtype="dtype")
SPECS["diffedu.datasets.Digits"] = spec(lambda d: Call(datasets.Digits, {"images": torch.zeros(2, 64),
                                                                          "labels": torch.zeros(2, dtype=torch.long)}),
                                        is_a(datasets.Digits))


def _subspace_gaussian(d):
    D = ints(d, 1, 5)
    return Call(datasets.subspace_gaussian, {"D": D, "k": ints(d, 1, D), "seed": ints(d, 0, 2**31), "scale": reals(d, 0.1, 3.0)})


SPECS["diffedu.datasets.subspace_gaussian"] = spec(_subspace_gaussian, is_a(gaussian.Gaussian), D="size", k="size",
                                                   seed="count", scale="positive")
SPECS["diffedu.datasets.subspace_gaussian"].bad["k"] += (lambda v, c, d: [Bad("k > D", c.kw["D"] + 1, ValueError)],)


# --- diagnostics --------------------------------------------------------------------------------------
def _diagnose(d):
    p = proc(d)
    ref = d(st.sampled_from(["ring", "gauss"]))
    ref = datasets.ring(2) if ref == "ring" else gaussian.Gaussian(torch.zeros(2), torch.eye(2))
    n_samples = d(st.sampled_from([0, 4]))
    return Call(diagnostics.diagnose, {
        "D": ref.bind(p).denoiser, "process": p, "reference": ref,
        "train": ref.sample(3, generator=torch.Generator().manual_seed(0), dtype=F64),
        "times": [time(d, p, positive=True, form="float")], "n": 4, "n_jacobian": 2, "n_residual": 2,
        "n_samples": n_samples, "steps": 2, "repeats": 2, "sampler": None, "generator": torch.Generator().manual_seed(8)},
        {"process": p})


def _check_report(out, call):
    assert isinstance(out, diagnostics.Report)
    finite([out.score_error, out.fp_residual, out.gaussian_ev])
    assert out.times.shape == (len(call.kw["times"]),)


SPECS["diffedu.diagnostics.diagnose"] = spec(
    _diagnose, _check_report, examples=0.5, D="field", process="process", reference="dist", train="data_d",
    times="times", n="size2", n_jacobian="size", n_residual="size", n_samples="count", steps="size", repeats="size2",
    sampler="callable", generator="generator", bad_with={"train": {"n_samples": 4}})


def _report(d):
    r = diagnostics.Report(torch.ones(2), torch.ones(2), torch.ones(2), torch.ones(2), torch.full((2,), math.nan),
                           torch.ones(2), {"mmd2": (0.1, 0.0, 0.05), "log_density": (-1.0, 0.0, 0.5)}, 2, 1.0)
    return r


SPECS["diffedu.diagnostics.Report"] = spec(lambda d: Call(diagnostics.Report, {
    "times": torch.ones(2), "noise": torch.ones(2), "score_error": torch.ones(2), "fp_residual": torch.ones(2),
    "asymmetry": torch.ones(2), "gaussian_ev": torch.ones(2)}), is_a(diagnostics.Report))
SPECS["diffedu.diagnostics.Report.summary"] = spec(lambda d: Call(_report(d).summary, {}), is_a(str))
KINDS["metric"] = lambda v, c, d: [Bad("unknown metric", "nonsense", ValueError), Bad("number", 3, (TypeError, ValueError))]
SPECS["diffedu.diagnostics.Report.beyond_floor"] = spec(
    lambda d: Call(_report(d).beyond_floor, {"name": d(st.sampled_from(["mmd2", "log_density"])), "k": reals(d, 0.0, 5.0)}),
    is_a(bool), name="metric", k="nonneg")


# --- dimension --------------------------------------------------------------------------------------
def _spectrum(d):
    return Call(dimension.dimension_from_spectrum, {"spectrum": tensor(d, (ints(d, 1, 3), ints(d, 1, 4)), 0.0, 1.0)})


def _check_dims(out, call):
    dims, gaps = out
    B, D = call.kw["spectrum"].shape
    assert dims.shape == (B,) and gaps.shape == (B, D + 1)
    finite(gaps)


SPECS["diffedu.dimension.dimension_from_spectrum"] = spec(_spectrum, _check_dims, spectrum="tensor")
SPECS["diffedu.dimension.DimensionEstimate"] = spec(
    lambda d: Call(dimension.DimensionEstimate, {"dim": 1, "dims": torch.ones(2, dtype=torch.long),
                                                 "spectra": torch.ones(2, 2), "gaps": torch.ones(2, 2)}),
    is_a(dimension.DimensionEstimate))


def _dim_call(fn):
    def make(d):
        D, p = ints(d, 1, 3), proc(d)
        g = gaussian_dist(d, D)
        method = d(st.sampled_from(["jacobian", "scores"]))
        x = g.sample(ints(d, 1, 3), generator=torch.Generator().manual_seed(9), dtype=fdtype(d))
        return Call(fn, {"score": g.bind(p).score, "x": x, "t": time(d, p, positive=True, form="float"), "process": p,
                         "method": method, "n_probes": None if d(st.booleans()) else ints(d, D, 2 * D + 2),
                         "generator": torch.Generator().manual_seed(10)}, {"process": p, "B": x.shape[0], "D": D})
    return make


def _check_spectrum(out, call):
    like(tuple(call.kw["x"].shape))(out, call)


KINDS["n_probes_d"] = lambda v, c, d: k_int(c.ctx["D"])(v, c, d)
_DIM_BAD = dict(score="field", x="batch", t="time1_pos", process="process", method="choice", n_probes="n_probes_d",
                generator="generator")
_SCORES = {"method": "scores"}
SPECS["diffedu.dimension.normalised_spectrum"] = spec(_dim_call(dimension.normalised_spectrum), _check_spectrum,
                                                      bad_with={"n_probes": _SCORES, "generator": _SCORES}, **_DIM_BAD)
SPECS["diffedu.dimension.intrinsic_dimension"] = spec(_dim_call(dimension.intrinsic_dimension), is_a(dimension.DimensionEstimate),
                                                      bad_with={"n_probes": _SCORES, "generator": _SCORES}, **_DIM_BAD)


# --- fokker_planck -----------------------------------------------------------------------------------
def _fp_op(fn, scalar=False):
    def make(d):
        x = batch(d)
        f = _smooth_field(d, x.shape[1])
        field_ = (lambda y, t: (torch.tanh(y) ** 2).sum(1) * (1 + t)) if scalar else (lambda y, t: f(y) * (1 + t))
        return Call(fn, {("scalar_field" if scalar else "field"): field_, "x": x, "t": reals(d, 0.0, 1.0),
                         "method": d(st.sampled_from(["exact", "hutchinson"])), "n_probes": ints(d, 1, 3),
                         "probe": d(st.sampled_from(["rademacher", "gaussian"])),
                         "generator": torch.Generator().manual_seed(11)})
    return make


_FP_OPTS = dict(method="choice", n_probes="size", probe="choice", generator="generator",
                bad_with={a: _HUTCH for a in ("n_probes", "probe", "generator")})
SPECS["diffedu.fokker_planck.div"] = spec(_fp_op(fp.div), rows_of(), field="field", x="batch", **_FP_OPTS)
SPECS["diffedu.fokker_planck.laplacian"] = spec(_fp_op(fp.laplacian, scalar=True), rows_of(), scalar_field="callable",
                                                x="batch", **_FP_OPTS)


def _residual(fn, which):
    def make(d):
        D, p = ints(d, 1, 2), proc(d)
        g = gaussian_dist(d, D, singular=False)
        x = batch(d, D=D)
        return Call(fn, {which: getattr(g.bind(p), "log_prob" if which == "log_p" else "score"), "process": p,
                         "method": d(st.sampled_from(["exact", "hutchinson"])), "n_probes": ints(d, 1, 2),
                         "probe": "rademacher", "generator": torch.Generator().manual_seed(12)},
                    {"x": x, "t": time(d, p, B=x.shape[0], positive=True)})
    return spec(make, returns_field(lambda c: (c.ctx["x"], c.ctx["t"])), **{which: "callable", "process": "process"},
                **_FP_OPTS)


SPECS["diffedu.fokker_planck.log_density_residual"] = _residual(fp.log_density_residual, "log_p")
SPECS["diffedu.fokker_planck.score_residual"] = _residual(fp.score_residual, "score")


def _time_derivative(d):
    B = ints(d, 1, 3)
    t = tensor(d, (B,), 0.0, 1.0).requires_grad_(True)
    y = torch.sin(t)[:, None] * tensor(d, (B, ints(d, 1, 3)))
    return Call(fp.time_derivative, {"y": y, "t": t}, {"B": B})


KINDS["y_of_t"] = lambda v, c, d: [Bad("list", [1.0], TypeError), Bad("string", "y", TypeError),
                                   Bad("other rows", torch.zeros(c.ctx["B"] + 1, 1), ValueError)]
KINDS["t_leaf"] = lambda v, c, d: [Bad("list", [0.5], TypeError), Bad("no grad", v.detach(), ValueError),
                                   Bad("2-D", v.detach()[:, None].requires_grad_(True), ValueError)]
SPECS["diffedu.fokker_planck.time_derivative"] = spec(
    _time_derivative, lambda out, call: like(tuple(call.kw["y"].shape), call.kw["y"].dtype)(out, call),
    y="y_of_t", t="t_leaf")


def _fp_grid(d):
    p = proc(d)
    n = ints(d, 5, 12)
    grid_ = np.linspace(-4.0, 4.0, n)
    p0 = np.exp(-0.5 * grid_**2)
    if d(st.booleans()):
        p0 = p0[:, None] * p0[None, :]
    lo = time(d, p, form="float") * 0.5
    ts = sorted({lo, lo + (p.t_max - lo) * reals(d, 0.1, 1.0)})
    return Call(fp.solve_fp_grid, {"p0": p0, "grid": grid_, "process": p, "ts": ts, "max_dt": None}, {"process": p})


KINDS["density"] = lambda v, c, d: [Bad("NaN", np.where(np.arange(v.size).reshape(v.shape) == 0, np.nan, v), ValueError),
                                    Bad("negative", -v, ValueError), Bad("string", "abc", TypeError),
                                    Bad("complex", v + 1j, TypeError), Bad("wrong shape", v.ravel()[:-1], ValueError)]
KINDS["grid1d"] = lambda v, c, d: [Bad("decreasing", v[::-1].copy(), ValueError),
                                   Bad("not uniform", v ** 3, ValueError),
                                   Bad("NaN", np.r_[v[:-1], np.nan], ValueError), Bad("string", "abc", TypeError),
                                   Bad("complex", v + 0j, TypeError), Bad("2 points", v[:2], ValueError),
                                   Bad("2-D", v[None], ValueError)]
KINDS["ts_up"] = lambda v, c, d: [Bad("decreasing", [v[-1] + 0.01, v[0]], ValueError) if len(v) > 1 else None,
                                  Bad("NaN", [math.nan], ValueError), Bad("above t_max", [c.ctx["process"].t_max * 2], ValueError),
                                  Bad("string", "abc", TypeError), Bad("complex", [0.5j], TypeError), Bad("empty", [], ValueError)]
KINDS["max_dt"] = lambda v, c, d: k_real(0.0, strict=True)(v, c, d) + [Bad("too many steps", 1e-12, ValueError)]
SPECS["diffedu.fokker_planck.solve_fp_grid"] = spec(
    _fp_grid, lambda out, call: (finite(out), out.shape == (len(call.kw["ts"]),) + np.shape(call.kw["p0"])),
    p0="density", grid="grid1d", process="process", ts="ts_up", max_dt="max_dt")


def _density_on_grid(d):
    p, D = proc(d), ints(d, 1, 2)
    g = dist(d, D, ("gaussian", "mixture"))
    return Call(fp.density_on_grid, {"dist": g, "process": p, "grid": np.linspace(-3, 3, ints(d, 3, 9)),
                                     "t": time(d, p, positive=singular(g), form="float")}, {"process": p, "dist": g})


KINDS["dist12"] = lambda v, c, d: KINDS["dist"](v, c, d) + [Bad("3-D", gaussian.Gaussian(np.zeros(3), np.eye(3)), ValueError)]
SPECS["diffedu.fokker_planck.density_on_grid"] = spec(
    _density_on_grid, lambda out, call: (finite(out), out.shape == (len(call.kw["grid"]),) * call.kw["dist"].dim),
    dist="dist12", process="process", grid=lambda v, c, d: [b for b in KINDS["grid1d"](v, c, d) if b.label not in (
        "decreasing", "not uniform", "2 points")], t="time1_dist")
SPECS["diffedu.fokker_planck.grid_mesh"] = spec(
    lambda d: Call(fp.grid_mesh, {"grid": array(d, (ints(d, 1, 6),))}),
    lambda out, call: (finite(out), out.shape == (len(call.kw["grid"]) ** 2, 2)),
    grid=lambda v, c, d: [Bad("NaN", np.r_[v, np.nan], ValueError), Bad("string", "abc", TypeError),
                          Bad("2-D", v[None], ValueError), Bad("empty", v[:0], ValueError)])


def _perturb(d):
    D, p = ints(d, 2, 3), proc(d)
    g = gaussian_dist(d, D, singular=False)
    x = batch(d, D=D)
    return Call(fp.perturb_score, {"score": g.bind(p).score, "kind": d(st.sampled_from(fp.PERTURBATIONS)),
                                   "size": reals(d, -1.0, 1.0)}, {"x": x, "t": time(d, p, B=x.shape[0])})


SPECS["diffedu.fokker_planck.perturb_score"] = spec(_perturb, returns_field(lambda c: (c.ctx["x"], c.ctx["t"])),
                                                    score="callable", kind="choice", size="real")


def _residual_rms(d):
    D, p = ints(d, 1, 2), proc(d)
    g = gaussian_dist(d, D, singular=False)
    return Call(fp.residual_rms, {"score": g.bind(p).score, "process": p, "data": g.sample,
                                  "ts": [time(d, p, positive=True, form="float") for _ in range(ints(d, 1, 2))],
                                  "n": ints(d, 1, 4), "method": d(st.sampled_from(["exact", "hutchinson"])),
                                  "generator": torch.Generator().manual_seed(13), "dtype": fdtype(d)}, {"process": p})


SPECS["diffedu.fokker_planck.residual_rms"] = spec(
    _residual_rms, lambda out, call: like((len(call.kw["ts"]),), F64)(out, call), score="field", process="process",
    data="callable", ts="times", n="size", method="choice", generator="generator", dtype="dtype")


def _ode_sde_gap(d):
    D, p = ints(d, 1, 2), proc(d)
    g = gaussian_dist(d, D, singular=False)
    return Call(fp.ode_sde_gap, {"denoiser": g.bind(p).denoiser, "process": p, "data": g.sample, "n": ints(d, 1, 4),
                                 "ode_steps": ints(d, 1, 3), "sde_steps": ints(d, 1, 3), "floor": d(st.booleans()),
                                 "generator": torch.Generator().manual_seed(14), "dtype": fdtype(d)}, {"process": p})


def _check_gap(out, call):
    assert isinstance(out, fp.GapReport)
    finite([out.w2_ode_sde, out.w2_ode_data, out.w2_sde_data, out.x_ode, out.x_sde, out.x_data])
    assert math.isfinite(out.w2_floor) == call.kw["floor"]


SPECS["diffedu.fokker_planck.ode_sde_gap"] = spec(_ode_sde_gap, _check_gap, names={"denoiser": ("D",)},
                                                  denoiser="field", process="process",
                                                  data="callable", n="size", ode_steps="size", sde_steps="size",
                                                  generator="generator", dtype="dtype")
SPECS["diffedu.fokker_planck.GapReport"] = spec(lambda d: Call(fp.GapReport, dict(
    w2_ode_sde=0.0, w2_ode_data=0.0, w2_sde_data=0.0, w2_floor=0.0, x_ode=torch.zeros(1, 1), x_sde=torch.zeros(1, 1),
    x_data=torch.zeros(1, 1))), is_a(fp.GapReport))


# --- gauge ---------------------------------------------------------------------------------------------
def antisym(d, D):
    A = array(d, (D, D))
    return A - A.T


def _rotation(fn):
    def make(d):
        D, p = ints(d, 2, 3), proc(d)
        g = gaussian_dist(d, D, singular=False)
        x = batch(d, D=D)
        return Call(fn, {"gaussian": g, "process": p, "strength": reals(d, -2.0, 2.0),
                         "A": antisym(d, D) if d(st.booleans()) else None},
                    {"x": x, "t": time(d, p, B=x.shape[0]), "D": D})
    return spec(make, returns_field(lambda c: (c.ctx["x"], c.ctx["t"])), gaussian="gaussian", process="process",
                strength="real", A="antisym")


KINDS["antisym"] = lambda v, c, d: k_array(np.zeros((c.ctx["D"],) * 2), c, d) + [
    Bad("symmetric", np.eye(c.ctx["D"]), ValueError), Bad("wrong shape", np.zeros((c.ctx["D"] + 1,) * 2), ValueError)]
SPECS["diffedu.gauge.gauge_rotation"] = _rotation(gauge.gauge_rotation)
SPECS["diffedu.gauge.plain_rotation"] = _rotation(gauge.plain_rotation)


def _rotation_matrix(d):
    D = ints(d, 2, 4)
    plane = d(st.permutations(range(D)))[:2]
    return Call(gauge.rotation_matrix, {"dim": D, "plane": tuple(plane), "dtype": fdtype(d)})


SPECS["diffedu.gauge.rotation_matrix"] = spec(
    _rotation_matrix, lambda out, call: like((call.kw["dim"],) * 2, call.kw["dtype"])(out, call),
    dim="size2", plane="pair", dtype="dtype")
KINDS["spd"] = lambda v, c, d: k_cov(v, c, d) + [Bad("singular", np.zeros_like(v), ValueError)]
SPECS["diffedu.gauge.linear_gauge_defect"] = spec(
    lambda d: Call(gauge.linear_gauge_defect, {"M": array(d, (2, 2)), "cov": spd(d, 2)}), is_a(float, finite),
    M="array", cov="spd")


def _affine(d):
    D = ints(d, 1, 3)
    M, c = -0.5 * np.eye(D) + 0.3 * antisym(d, D), tensor(d, (D,))
    Mt = torch.as_tensor(M)
    return Call(gauge.affine_flow_moments, {
        "velocity": lambda x, t: x @ Mt.to(x).T + c.to(x), "mean": array(d, (D,)), "cov": spd(d, D),
        "t_from": reals(d, 0.0, 1.0), "t_to": reals(d, 0.0, 1.0), "rtol": 1e-6, "atol": 1e-9, "max_calls": 100_000})


def _check_moments(out, call):
    D = len(call.kw["mean"])
    finite(out)
    assert out[0].shape == (D,) and out[1].shape == (D, D)


SPECS["diffedu.gauge.affine_flow_moments"] = spec(
    _affine, _check_moments, velocity="field", mean="array", cov="cov", t_from="real", t_to="real", rtol="positive",
    atol="positive", max_calls="size")


def _rotated_scores(d):
    D, p = ints(d, 2, 3), proc(d)
    x = batch(d, D=D)
    return Call(gauge.rotated_scores, {"gaussian": gaussian_dist(d, D, singular=False), "process": p,
                                       "strength": reals(d, -2.0, 2.0)},
                {"x": x, "t": time(d, p, B=x.shape[0], positive=True)})


def _check_rotated(out, call):
    for fields in out:
        assert set(fields) == {"exact", "gauge", "plain"}
        for f in fields.values():
            returns_field(lambda c: (c.ctx["x"], c.ctx["t"]))(f, call)


SPECS["diffedu.gauge.rotated_scores"] = spec(_rotated_scores, _check_rotated, gaussian="gaussian", process="process",
                                             strength="real")


def _flow_summary(d):
    # VP-like processes only: under VE and EDM the plain rotation turns about sigma_t^2 / 2 radians (thousands for
    # EDM's sigma_max = 80), so the moment ODE takes minutes at any tolerance (the maths, not a hang)
    p = d(st.sampled_from([PROCESSES[0], PROCESSES[1], PROCESSES[4]]))
    return Call(gauge.gauge_flow_summary, {"gaussian": gaussian_dist(d, 2, singular=False), "process": p,
                                           "strength": reals(d, -1.0, 1.0), "t_end": None, "rtol": 1e-3}, {"process": p})


SPECS["diffedu.gauge.gauge_flow_summary"] = spec(
    _flow_summary, lambda out, call: (finite(out), set(out) == {"exact", "gauge", "plain"}), examples=0.5,
    gaussian="gaussian", process="process", strength="real", t_end="time1_pos", rtol="positive")


# --- gaussian_approx -------------------------------------------------------------------------------------
def _explained(d):
    D, p = ints(d, 1, 3), proc(d)
    g = dist(d, D, ("gaussian", "mixture"))
    G = gaussian.Gaussian(g.mean, g.cov + 0.1 * torch.eye(D, dtype=F64))
    return Call(gapprox.explained_variance, {
        "score": g.bind(p).score, "approx": G.bind(p).score, "dist": g, "process": p,
        "ts": [time(d, p, positive=True, form="float") for _ in range(ints(d, 1, 3))], "n": ints(d, 2, 6),
        "generator": torch.Generator().manual_seed(15), "dtype": fdtype(d)}, {"process": p})


SPECS["diffedu.gaussian_approx.explained_variance"] = spec(
    _explained, lambda out, call: like((len(call.kw["ts"]),), F64)(out, call), score="field", approx="field",
    dist="dist", process="process", ts="times", n="size", generator="generator", dtype="dtype")
SPECS["diffedu.gaussian_approx.gaussian_explained_variance"] = spec(
    lambda d: (lambda D, p: Call(gapprox.gaussian_explained_variance, {
        "data": gaussian_dist(d, D), "model": gaussian_dist(d, D, singular=False), "process": p,
        "ts": [time(d, p, positive=True, form="float") for _ in range(ints(d, 1, 3))]}, {"process": p}))(ints(d, 1, 3), proc(d)),
    lambda out, call: like((len(call.kw["ts"]),), F64)(out, call), data="gaussian", model="gaussian",
    process="process", ts="times")


def _teleport(d):
    D, p = ints(d, 1, 3), proc(d)
    g = gaussian_dist(d, D, singular=False)
    x = batch(d, D=D)
    target = g if d(st.booleans()) else g.sample(5, generator=torch.Generator().manual_seed(16), dtype=F64)
    return Call(gapprox.teleport, {"sampler": d(st.sampled_from([samplers.heun, samplers.ddim])), "D": g.bind(p).denoiser,
                                   "process": p, "x": x, "ts": grid(d, p), "target": target,
                                   "t_from": d(st.sampled_from([None, p.t_max]))}, {"process": p, "B": x.shape[0]})


KINDS["target"] = lambda v, c, d: [Bad("string", "abc", TypeError), Bad("NaN data", torch.full((3, 1), math.nan), ValueError),
                                   Bad("one row", torch.zeros(1, 1), ValueError)]
SPECS["diffedu.gaussian_approx.teleport"] = spec(
    _teleport, like_x(), sampler="callable", D="field", process="process", x="batch_d", ts="grid", target="target",
    t_from="time1")


def _teleport_sweep(d):
    D, p = ints(d, 1, 3), proc(d)
    g = gaussian_dist(d, D, singular=False)
    ts = processes.time_grid(p, ints(d, 2, 4))
    N = len(ts) - 1
    return Call(gapprox.teleport_sweep, {"sampler": samplers.ddim, "D": g.bind(p).denoiser, "process": p,
                                         "x": batch(d, D=D), "ts": ts, "target": g,
                                         "skips": list(d(st.permutations(range(N))))[:ints(d, 1, N)]}, {"process": p})


KINDS["skips"] = lambda v, c, d: [Bad("numeric strings", ["1"], TypeError), Bad("floats", [1.5], TypeError),
                                  Bad("bools", [True], TypeError), Bad("number", 1, TypeError),
                                  Bad("too large", [len(c.kw["ts"]) - 1], ValueError), Bad("negative", [-1], ValueError)]
SPECS["diffedu.gaussian_approx.teleport_sweep"] = spec(
    _teleport_sweep, lambda out, call: like((len(call.kw["skips"]),), F64)(out, call), sampler="callable",
    process="process", x="batch_d", target="target", skips="skips",
    ts=lambda v, c, d: [b for b in k_grid(v, c, d)] + [Bad("not from t_max", torch.cat([(v[:1] + v[1:2]) / 2, v[1:]]),
                                                           ValueError)])


# --- hodge -----------------------------------------------------------------------------------------------
def grid2d(d, n=None):
    lo = reals(d, -4.0, 0.0)
    return hodge.Grid2D((lo, lo + reals(d, 1.0, 6.0)), None if d(st.booleans()) else (-2.0, 2.0),
                        ints(d, 5, 9) if n is None else n)


KINDS["lim"] = lambda v, c, d: [Bad("strings", ("-1", "1"), TypeError), Bad("number", 3.0, TypeError),
                                Bad("bools", (False, True), TypeError), Bad("reversed", (1.0, -1.0), ValueError),
                                Bad("NaN", (math.nan, 1.0), ValueError), Bad("three numbers", (0.0, 1.0, 2.0), ValueError)]
SPECS["diffedu.hodge.Grid2D"] = spec(
    lambda d: Call(hodge.Grid2D, {"xlim": (-1.0, reals(d, 0.0, 3.0)), "ylim": (-2.0, 2.0), "n": ints(d, 5, 30)}),
    is_a(hodge.Grid2D), xlim="lim", ylim="lim", n=k_int(5))


def _grid_method(name, **kw_make):
    def make(d):
        g = grid2d(d)
        kw = {k: f(d, g) for k, f in kw_make.items()}
        return Call(getattr(g, name), kw, {"grid": g})
    return make


_FIELD2 = lambda d, g: (lambda M: (lambda y, t=None: torch.tanh(y @ M.to(y).T)))(tensor(d, (2, 2)))  # noqa: E731
SPECS["diffedu.hodge.Grid2D.evaluate"] = spec(
    _grid_method("evaluate", field=_FIELD2, t=lambda d, g: None, dtype=lambda d, g: fdtype(d)),
    lambda out, call: like((call.ctx["grid"].n, call.ctx["grid"].n, 2), F64)(out, call), field="field", dtype="dtype")
SPECS["diffedu.hodge.Grid2D.points"] = spec(
    _grid_method("points", dtype=lambda d, g: fdtype(d)),
    lambda out, call: like((call.ctx["grid"].n ** 2, 2), call.kw["dtype"])(out, call), dtype="dtype")
SPECS["diffedu.hodge.Grid2D.weights"] = spec(_grid_method("weights"),
                                             lambda out, call: like((call.ctx["grid"].n,) * 2, F64)(out, call))
SPECS["diffedu.hodge.Grid2D.mesh"] = spec(_grid_method("mesh"), lambda out, call: [
    like((call.ctx["grid"].n,) * 2, F64)(m, call) for m in out])


def _grid_field(d, g):
    return tensor(d, (g.n, g.n, 2))


def _decompose(d):
    g = grid2d(d)
    field_ = _FIELD2(d, g) if d(st.booleans()) else _grid_field(d, g)
    lp = d(st.sampled_from(["none", "callable", "tensor"]))
    log_p = {"none": None, "callable": lambda y: -0.5 * (y**2).sum(1),
             "tensor": -0.5 * (g.points() ** 2).sum(1).reshape(g.n, g.n)}[lp]
    return Call(hodge.decompose, {"field": field_, "grid": g, "t": None, "log_p": log_p,
                                  "p_floor": reals(d, 1e-15, 0.5), "dtype": fdtype(d)}, {"grid": g})


KINDS["gridfield"] = lambda v, c, d: (_nonfinite(v, d) + _dtypes(v) + _containers(v)
                                      + [Bad("wrong shape", v[1:], ValueError)])
KINDS["gridscalar"] = lambda v, c, d: KINDS["gridfield"](v, c, d) + [Bad("negative", -1.0 - v.abs(), ValueError)]
KINDS["field_or_grid"] = lambda v, c, d: (k_field(v, c, d) if callable(v) else KINDS["gridfield"](v, c, d))
KINDS["log_p"] = lambda v, c, d: [Bad("number", 3, TypeError), Bad("NaN tensor", torch.full((c.ctx["grid"].n,) * 2, math.nan), ValueError),
                                  Bad("wrong shape tensor", torch.zeros(2, 2), ValueError),
                                  Bad("returns (B, 2)", lambda y: y, ValueError)]
SPECS["diffedu.hodge.decompose"] = spec(_decompose, is_a(hodge.Decomposition, lambda out, call: finite(
    [out.phi, out.gradient, out.remainder, out.flux_residual])), field="field_or_grid", grid="grid2d", log_p="log_p",
    p_floor="open_unit", dtype="dtype", bad_with={"dtype": {"field": lambda y: -y}})


def _energy_split(d):
    g = grid2d(d)
    return Call(hodge.decompose(_grid_field(d, g), g).energy_split, {})


SPECS["diffedu.hodge.Decomposition.energy_split"] = spec(_energy_split, lambda out, call: (finite(out), len(out) == 3))
SPECS["diffedu.hodge.Decomposition"] = spec(lambda d: Call(hodge.Decomposition, dict(
    grid=hodge.Grid2D(n=5), phi=torch.zeros(5, 5), gradient=torch.zeros(5, 5, 2), remainder=torch.zeros(5, 5, 2),
    field=torch.zeros(5, 5, 2), p=torch.ones(5, 5), flux_residual=0.0)), is_a(hodge.Decomposition))


def _periodic(d):
    n = ints(d, 2, 8)
    return Call(hodge.helmholtz_hodge_periodic, {"F": tensor(d, (n, n, 2), dtype=fdtype(d)), "length": reals(d, 0.1, 10.0)})


SPECS["diffedu.hodge.helmholtz_hodge_periodic"] = spec(
    _periodic, lambda out, call: (finite(out), out[0].shape == call.kw["F"].shape, out[2].shape == (2,)),
    F="gridfield", length="positive")


def _grid_op(fn, with_p=False, two=False):
    def make(d):
        g = grid2d(d)
        kw = {"F": _grid_field(d, g), "grid": g}
        if two:
            kw["G"] = _grid_field(d, g) + 3.0
        if with_p:
            kw["p"] = tensor(d, (g.n, g.n), 0.1, 1.0) if d(st.booleans()) else None
        return Call(fn, kw, {"grid": g})
    return make


_N2 = lambda c: (c.ctx["grid"].n,) * 2  # noqa: E731
_P_KIND = lambda v, c, d: KINDS["gridscalar"](torch.ones(_N2(c), dtype=F64), c, d)  # noqa: E731
SPECS["diffedu.hodge.grid_jacobian"] = spec(_grid_op(hodge.grid_jacobian), like(lambda c: _N2(c) + (2, 2), F64),
                                            F="gridfield", grid="grid2d")
SPECS["diffedu.hodge.grid_curl"] = spec(_grid_op(hodge.grid_curl), like(_N2, F64), F="gridfield", grid="grid2d")
SPECS["diffedu.hodge.grid_divergence"] = spec(_grid_op(hodge.grid_divergence, with_p=True), like(_N2, F64),
                                              F="gridfield", grid="grid2d", p=_P_KIND)
SPECS["diffedu.hodge.weighted_norm"] = spec(_grid_op(hodge.weighted_norm, with_p=True), is_a(float, finite),
                                            F="gridfield", grid="grid2d", p=_P_KIND)
SPECS["diffedu.hodge.relative_error"] = spec(_grid_op(hodge.relative_error, with_p=True, two=True), is_a(float, finite),
                                             F="gridfield", G="gridfield", grid="grid2d", p=_P_KIND)


# --- interpolants -----------------------------------------------------------------------------------
INTERPOLANTS = {"LinearInterpolant": interpolants.LinearInterpolant, "TrigInterpolant": interpolants.TrigInterpolant}
_COEFS = ("alpha", "beta", "d_alpha", "d_beta", "gamma2", "d_gamma2", "gamma")


def unit_time(d):
    t = reals(d, 0.0, 1.0)
    return t if d(st.booleans()) else torch.tensor(t, dtype=fdtype(d))


def _interp_coef(cls, name):
    def make(d):
        return Call(getattr(cls(reals(d, 0.0, 2.0)), name), {"t": unit_time(d)})
    return spec(make, like((), F64), t="unit_time")


for _n, _cls in INTERPOLANTS.items():
    SPECS[f"diffedu.interpolants.{_n}"] = spec(lambda d, c=_cls: Call(c, {"a": reals(d, 0.0, 2.0)}), is_a(_cls), a="nonneg")
    for _m in _COEFS:
        SPECS[f"diffedu.interpolants.{_n}.{_m}"] = _interp_coef(_cls, _m)
SPECS["diffedu.interpolants.Interpolant"] = spec(lambda d: Call(interpolants.Interpolant, {}), is_a(interpolants.Interpolant))


def bridge(d, D):
    I = d(st.sampled_from(list(INTERPOLANTS.values())))(reals(d, 0.0, 1.0))
    ends = [dist(d, D, ("gaussian", "mixture")) for _ in range(2)]
    ends = [e if isinstance(e, mixtures.GaussianMixture) else gaussian.Gaussian(e.mean, e.cov + 0.1 * torch.eye(D, dtype=F64))
            for e in ends]
    return interpolants.GaussianMixtureInterpolant(I, *ends)


SPECS["diffedu.interpolants.GaussianMixtureInterpolant"] = spec(
    lambda d: (lambda D: Call(interpolants.GaussianMixtureInterpolant, {
        "interpolant": interpolants.LinearInterpolant(reals(d, 0.0, 1.0)), "rho0": gaussian_dist(d, D, singular=False),
        "rho1": mixture(d, D)}))(ints(d, 1, 3)),
    is_a(interpolants.GaussianMixtureInterpolant), interpolant=k_type("string", "linear"), rho0="gaussian", rho1="gaussian")
SPECS["diffedu.interpolants.GaussianMixtureInterpolant"].bad["rho1"] += (
    lambda v, c, d: [Bad("other dimension", gaussian.Gaussian(np.zeros(4), np.ones(4)), ValueError)],)


def _bridge_call(method, x=True, extra=None):
    def make(d):
        D = ints(d, 1, 3)
        b = bridge(d, D)
        kw = {"x": batch(d, D=D)} if x else {}
        kw["t"] = unit_time(d)
        kw.update(extra(d) if extra else {})
        return Call(getattr(b, method), kw, {"bridge": b})
    return make


_GMI = "diffedu.interpolants.GaussianMixtureInterpolant"
for _m in ("score", "velocity"):
    SPECS[f"{_GMI}.{_m}"] = spec(_bridge_call(_m), like_x(), x="batch_d", t="unit_time")
SPECS[f"{_GMI}.log_prob"] = spec(_bridge_call("log_prob"), rows_of(), x="batch_d", t="unit_time")
SPECS[f"{_GMI}.responsibilities"] = spec(_bridge_call("responsibilities"), lambda out, call: like(
    (call.kw["x"].shape[0], call.ctx["bridge"]._logw.numel()), call.kw["x"].dtype)(out, call), x="batch_d", t="unit_time")
SPECS[f"{_GMI}.drift"] = spec(
    _bridge_call("drift", extra=lambda d: {"eps": reals(d, 0.0, 2.0), "direction": d(st.sampled_from(["forward", "backward"]))}),
    like_x(), x="batch_d", t="unit_time", eps="nonneg", direction="choice")
SPECS[f"{_GMI}.components"] = spec(_bridge_call("components", x=False, extra=lambda d: {"dtype": fdtype(d)}),
                                   lambda out, call: (finite(out), all(v.dtype == call.kw["dtype"] for v in out)),
                                   t="unit_time", dtype="dtype")
SPECS[f"{_GMI}.sample"] = spec(
    _bridge_call("sample", x=False, extra=lambda d: {"n": ints(d, 0, 4), "generator": torch.Generator().manual_seed(17),
                                                     "dtype": fdtype(d)}),
    lambda out, call: like((call.kw["n"], call.ctx["bridge"].dim), call.kw["dtype"])(out, call),
    n="count", t="unit_time", generator="generator", dtype="dtype")


def unit_grid(d):
    ts = torch.linspace(0.0, 1.0, ints(d, 2, 5), dtype=F64)
    return ts.flip(0) if d(st.booleans()) else ts


def _ode_trajectory(d):
    D = ints(d, 1, 3)
    b = bridge(d, D)
    return Call(interpolants.ode_trajectory, {"velocity": b.velocity, "x": batch(d, D=D), "ts": unit_grid(d)})


def _traj_check(out, call):
    like((len(call.kw["ts"]),) + tuple(call.kw["x"].shape), call.kw["x"].dtype)(out, call)


SPECS["diffedu.interpolants.ode_trajectory"] = spec(_ode_trajectory, _traj_check, velocity="field", x="batch",
                                                    ts="unit_grid")


def _sde_trajectory(d):
    D = ints(d, 1, 3)
    return Call(interpolants.sde_trajectory, {"bridge": bridge(d, D), "x": batch(d, D=D), "ts": unit_grid(d),
                                              "eps": reals(d, 0.0, 1.0), "generator": torch.Generator().manual_seed(18)})


SPECS["diffedu.interpolants.sde_trajectory"] = spec(_sde_trajectory, _traj_check, bridge=k_type("string", "bridge"),
                                                    x="batch_d", ts="unit_grid", eps="nonneg", generator="generator")


# --- likelihood --------------------------------------------------------------------------------------
def _log_likelihood(d):
    D, p = ints(d, 1, 2), proc(d)
    g = gaussian_dist(d, D, singular=False)
    x = batch(d, B=ints(d, 1, 2), D=D, dtype=F64)
    return Call(likelihood.log_likelihood, {
        "D": g.bind(p).denoiser, "process": p, "x": x, "t_start": None,
        "prior": None if d(st.booleans()) else (lambda z: -0.5 * (z**2).sum(1)),
        "divergence": d(st.sampled_from(["exact", "hutchinson"])), "n_probes": ints(d, 1, 2),
        "generator": torch.Generator().manual_seed(19), "rtol": 1e-3, "atol": 1e-5,
        "method": d(st.sampled_from(["RK45", "RK23"]))}, {"process": p})


KINDS["prior"] = lambda v, c, d: k_callable(v, c, d) + [Bad("returns (B, D)", lambda z: z, ValueError)]
SPECS["diffedu.likelihood.log_likelihood"] = spec(
    _log_likelihood, rows_of(), examples=0.5, D="field", process="process", x="batch", t_start="time1_pos",
    prior="prior", divergence="choice", n_probes="size", generator="generator", rtol="positive", atol="positive",
    method="choice", bad_with={a: {"divergence": "hutchinson"} for a in ("n_probes", "generator")})


# --- memorisation ----------------------------------------------------------------------------------------
def _mem_call(fn, **extra):
    def make(d):
        D = ints(d, 1, 3)
        kw = {"samples": batch(d, D=D), "train": tensor(d, (ints(d, 2, 6), D), dtype=fdtype(d))}
        kw.update({k: f(d) for k, f in extra.items()})
        return Call(fn, kw)
    return make


KINDS["train"] = lambda v, c, d: k_batch_d(v, c, d) + [Bad("one row", v[:1], ValueError)]
SPECS["diffedu.memorisation.nn_distances"] = spec(
    _mem_call(memorisation.nn_distances, chunk=lambda d: ints(d, 1, 5)), like_x("samples", 2), samples="batch",
    train="train", chunk="size")
SPECS["diffedu.memorisation.nn_ratio"] = spec(_mem_call(memorisation.nn_ratio), rows_of("samples"), samples="batch",
                                              train="train")
SPECS["diffedu.memorisation.is_memorised"] = spec(
    _mem_call(memorisation.is_memorised, ratio=lambda d: reals(d, 0.01, 1.0)),
    lambda out, call: out.shape == (call.kw["samples"].shape[0],) and out.dtype == torch.bool, samples="batch",
    train="train", ratio="open_unit")
SPECS["diffedu.memorisation.is_memorised"].bad["ratio"] = (k_real(0.0, 1.0),
                                                          lambda v, c, d: [Bad("zero", 0.0, ValueError)])
SPECS["diffedu.memorisation.memorised_fraction"] = spec(
    _mem_call(memorisation.memorised_fraction, ratio=lambda d: reals(d, 0.01, 1.0)),
    lambda out, call: isinstance(out, float) and 0 <= out <= 1, samples="batch", train="train",
    ratio=SPECS["diffedu.memorisation.is_memorised"].bad["ratio"])


def _emm(d):
    sizes = sorted(set(d(st.lists(st.integers(2, 100), min_size=1, max_size=4))))
    return Call(memorisation.effective_model_memorisation, {
        "sizes": sizes, "fractions": [reals(d, 0.0, 1.0) for _ in sizes], "level": reals(d, 0.01, 1.0)})


KINDS["sizes"] = lambda v, c, d: [Bad("not increasing", list(v) + [v[0]], ValueError), Bad("strings", ["2", "3"], TypeError),
                                  Bad("floats", [2.5], TypeError), Bad("number", 3, TypeError), Bad("empty", [], ValueError)]
KINDS["fractions"] = lambda v, c, d: [Bad("NaN", [math.nan] * len(v), ValueError), Bad("above 1", [1.5] * len(v), ValueError),
                                      Bad("strings", ["0.5"] * len(v), TypeError), Bad("wrong length", list(v) + [0.5], ValueError)]
SPECS["diffedu.memorisation.effective_model_memorisation"] = spec(
    _emm, lambda out, call: isinstance(out, int) and (out == 0 or out in call.kw["sizes"]), sizes="sizes",
    fractions="fractions", level=(k_real(0.0, 1.0), lambda v, c, d: [Bad("zero", 0.0, ValueError)]))
SPECS["diffedu.memorisation.MemorisationSweep"] = spec(
    lambda d: Call(memorisation.MemorisationSweep, {"sizes": [2], "fractions": [0.5], "emm": 0}),
    is_a(memorisation.MemorisationSweep))


def _sweep(d):
    p = proc(d)
    data = tensor(d, (8, ints(d, 1, 2)), dtype=fdtype(d))
    return Call(memorisation.memorisation_sweep, {
        "fit_and_sample": memorisation.empirical_fit_and_sample(p, n_steps=2), "data": data,
        "sizes": sorted(set(d(st.lists(st.integers(2, 8), min_size=1, max_size=2)))), "n_samples": ints(d, 1, 3),
        "generator": torch.Generator().manual_seed(20), "level": reals(d, 0.1, 1.0)})


KINDS["sweep_sizes"] = lambda v, c, d: KINDS["sizes"](v, c, d) + [Bad("more than the data", [1000], ValueError),
                                                                  Bad("below 2", [1], ValueError)]
SPECS["diffedu.memorisation.memorisation_sweep"] = spec(
    _sweep, is_a(memorisation.MemorisationSweep), fit_and_sample="callable", data="batch", sizes="sweep_sizes",
    n_samples="size", generator="generator",
    level=(k_real(0.0, 1.0), lambda v, c, d: [Bad("zero", 0.0, ValueError)]))


def _factory_check(out, call):
    assert callable(out)
    train = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    finite(out(train, 3, torch.Generator().manual_seed(1)))


SPECS["diffedu.memorisation.mlp_fit_and_sample"] = spec(
    lambda d: Call(memorisation.mlp_fit_and_sample, {"process": proc(d), "hidden": ints(d, 1, 8), "depth": ints(d, 1, 2),
                                                     "steps": ints(d, 1, 3), "batch_size": ints(d, 1, 8),
                                                     "lr": reals(d, 1e-4, 1e-2), "n_steps": ints(d, 1, 3),
                                                     "seed": ints(d, 0, 100)}),
    _factory_check, process="process", hidden="size", depth="size", steps="size", batch_size="size", lr="positive",
    n_steps="size", seed="count")
SPECS["diffedu.memorisation.empirical_fit_and_sample"] = spec(
    lambda d: Call(memorisation.empirical_fit_and_sample, {"process": proc(d), "n_steps": ints(d, 1, 4)}),
    _factory_check, process="process", n_steps="size")


# --- metrics -------------------------------------------------------------------------------------------
def _pair(fn, min_rows=1, **extra):
    def make(d):
        D = ints(d, 1, 3)
        kw = {"x": batch(d, B=ints(d, min_rows, 5), D=D), "y": batch(d, B=ints(d, min_rows, 5), D=D)}
        kw.update({k: f(d) for k, f in extra.items()})
        return Call(fn, kw)
    return make


SPECS["diffedu.metrics.w2"] = spec(_pair(metrics.w2), is_a(float, finite), x="data", y="data_d")
SPECS["diffedu.metrics.mmd2"] = spec(_pair(metrics.mmd2, 2, bandwidth=lambda d: reals(d, 0.1, 3.0)), is_a(float, finite),
                                     x="data", y="data_d", bandwidth="positive")
SPECS["diffedu.metrics.median_bandwidth"] = spec(_pair(metrics.median_bandwidth, 2), is_a(float, finite), x="data",
                                                 y="data_d")


def _moment_errors(d):
    D = ints(d, 1, 3)
    return Call(metrics.moment_errors, {"x": batch(d, B=ints(d, 2, 6), D=D), "mean": array(d, (D,)), "cov": spd(d, D)})


SPECS["diffedu.metrics.moment_errors"] = spec(_moment_errors, lambda out, call: (finite(out), len(out) == 2),
                                              x="data", mean="array", cov="cov")
SPECS["diffedu.metrics.moment_errors"].bad["x"] += (lambda v, c, d: [Bad("one row", v[:1], ValueError)],)


def _w2_floor(d):
    g = gaussian_dist(d, ints(d, 1, 2))
    return Call(metrics.w2_noise_floor, {"sample": g.sample, "n": ints(d, 1, 5), "repeats": ints(d, 1, 3),
                                         "generator": torch.Generator().manual_seed(21)})


SPECS["diffedu.metrics.w2_noise_floor"] = spec(
    _w2_floor, lambda out, call: like((call.kw["repeats"],), F64)(out, call), sample="callable", n="size",
    repeats="size", generator="generator")


def _rel_error(d):
    D, p = ints(d, 1, 3), proc(d)
    g = dist(d, D, ("gaussian", "mixture"))
    return Call(metrics.relative_score_error, {
        "score": g.bind(p).score, "exact": g, "process": p,
        "ts": [time(d, p, positive=True, form="float") for _ in range(ints(d, 1, 3))], "n": ints(d, 2, 6),
        "generator": torch.Generator().manual_seed(22), "dtype": fdtype(d)}, {"process": p})


SPECS["diffedu.metrics.relative_score_error"] = spec(
    _rel_error, lambda out, call: like((len(call.kw["ts"]),), call.kw["dtype"])(out, call), score="field", exact="dist",
    process="process", ts="times", n="size", generator="generator", dtype="dtype")


# --- nets ----------------------------------------------------------------------------------------------
def _net_ctor(cls):
    def make(d):
        kw = {"process": proc(d), "dim": ints(d, 1, 3), "hidden": ints(d, 1, 8), "depth": ints(d, 1, 2),
              "n_freq": ints(d, 0, 3), "sigma_data": reals(d, 0.1, 2.0), "generator": torch.Generator().manual_seed(23)}
        if cls is nets.ScoreMLP:
            kw.update(param=d(st.sampled_from(["eps", "denoiser"])), n_labels=d(st.sampled_from([None, 1, 3])),
                      label_dim=ints(d, 1, 4))
        return Call(cls, kw)
    extra = {"param": "choice", "label_dim": "size"} if cls is nets.ScoreMLP else {}
    return spec(make, is_a(cls), process="process", dim="size", hidden="size", depth="size", n_freq="count",
                sigma_data="positive", generator="generator", bad_with={"label_dim": {"n_labels": 2}}, **extra)


def net(d, cls, D):
    kw = {}
    if cls is nets.ScoreMLP:
        kw = {"param": d(st.sampled_from(["eps", "denoiser"])), "n_labels": d(st.sampled_from([None, 2]))}
    p = proc(d)
    m = cls(p, D, hidden=ints(d, 1, 8), depth=ints(d, 1, 2), generator=torch.Generator().manual_seed(24), **kw)
    return m.double() if d(st.booleans()) else m, p


def _net_call(cls, method):
    def make(d):
        D = ints(d, 1, 3)
        m, p = net(d, cls, D)
        x = batch(d, D=D, dtype=next(m.parameters()).dtype)
        kw = {"x": x, "t": time(d, p, B=x.shape[0], positive=True)}
        labelled = cls is nets.ScoreMLP or method in ("forward", "denoiser", "eps")
        if labelled:
            n = getattr(m, "n_labels", None)
            kw["y"] = None if n is None or d(st.booleans()) else d(st.sampled_from(
                [ints(d, 0, n - 1), torch.tensor([ints(d, 0, n - 1) for _ in range(x.shape[0])])]))
        return Call(getattr(m, method), kw, {"process": p, "B": x.shape[0], "n_labels": getattr(m, "n_labels", None)})
    return make


def k_label(v, c, d):
    """y: None, a label in [0, n_labels) or a (B,) tensor of them (only for a conditional network)."""
    n = c.ctx["n_labels"]
    if n is None:
        return [Bad("a label for an unconditional network", 0, ValueError)]
    return [Bad("float", 0.5, TypeError), Bad("numeric string", "1", TypeError), Bad("bool", True, TypeError),
            Bad("out of range", n, ValueError), Bad("negative", -1, ValueError),
            Bad("wrong length", torch.zeros(c.ctx["B"] + 1, dtype=torch.long), ValueError),
            Bad("float tensor", torch.zeros(c.ctx["B"]), TypeError)]


KINDS["net_x"] = lambda v, c, d: k_batch_d(v, c, d) + [Bad("other float dtype", v.to(
    torch.float32 if v.dtype == F64 else F64), TypeError)]
for _cls in (nets.ScoreMLP, nets.EnergyMLP):
    _key = f"diffedu.nets.{_cls.__name__}"
    SPECS[_key] = _net_ctor(_cls)
    for _m in ("score", "forward", "denoiser", "eps"):
        _y = {"y": k_label} if (_cls is nets.ScoreMLP or _m != "score") else {}
        SPECS[f"{_key}.{_m}"] = spec(_net_call(_cls, _m), like_x(), x="net_x", t="time_pos", **_y)
SPECS["diffedu.nets.EnergyMLP.log_prob"] = spec(_net_call(nets.EnergyMLP, "log_prob"), rows_of(), x="net_x",
                                                t="time_pos")


def _train_dsm(d):
    D = ints(d, 1, 2)
    m, p = net(d, d(st.sampled_from([nets.ScoreMLP, nets.EnergyMLP])), D)
    data = tensor(d, (6, D), dtype=next(m.parameters()).dtype)
    return Call(nets.train_dsm, {
        "model": m, "data": data if d(st.booleans()) else gaussian.Gaussian(np.zeros(D), np.ones(D)).sample,
        "steps": ints(d, 1, 2), "batch_size": ints(d, 1, 4), "lr": reals(d, 1e-4, 1e-2), "fp_weight": 0.0,
        "fp_batch": ints(d, 1, 4), "fp_t_min": None, "fp_method": "exact", "t_min": None,
        "weighting": d(st.sampled_from(training.WEIGHTINGS)), "generator": torch.Generator().manual_seed(25),
        "progress": False}, {"process": p})


SPECS["diffedu.nets.train_dsm"] = spec(
    _train_dsm, lambda out, call: like((call.kw["steps"],), F64)(out, call), examples=0.5,
    model=k_type("string", "mlp"), data=lambda v, c, d: [Bad("string", "abc", TypeError),
                                                          Bad("NaN rows", torch.full((3, 1), math.nan), ValueError)],
    steps="size", batch_size="size", lr="positive", fp_weight="nonneg", fp_batch="size", fp_t_min="time1_pos",
    fp_method="choice", t_min="time1_pos", weighting="choice", generator="generator",
    bad_with={a: {"fp_weight": 0.1} for a in ("fp_batch", "fp_t_min", "fp_method")})


# --- subspace ------------------------------------------------------------------------------------------
def bases(d, K=None, D=None, r=None):
    D = ints(d, 2, 4) if D is None else D
    r = ints(d, 1, D - 1) if r is None else r
    K = ints(d, 1, 3) if K is None else K
    return torch.linalg.qr(tensor(d, (K, D, r)) + torch.eye(D, r, dtype=F64))[0]


SPECS["diffedu.subspace.line_bases"] = spec(
    lambda d: Call(subspace.line_bases, {"angles_deg": array(d, (ints(d, 1, 4),), -360.0, 360.0)}),
    lambda out, call: like((len(call.kw["angles_deg"]), 2, 1), F64)(out, call), angles_deg="array")
SPECS["diffedu.subspace.random_bases"] = spec(
    lambda d: (lambda D, r: Call(subspace.random_bases, {
        "n_subspaces": ints(d, 1, max(1, D // r)), "dim": D, "rank": r, "orthogonal": d(st.booleans()),
        "generator": torch.Generator().manual_seed(26)}))(*(lambda D: (D, ints(d, 1, D)))(ints(d, 1, 4))),
    lambda out, call: like((call.kw["n_subspaces"], call.kw["dim"], call.kw["rank"]), F64)(out, call),
    n_subspaces="size", dim="size", rank="size", generator="generator")
SPECS["diffedu.subspace.random_bases"].bad["rank"] += (lambda v, c, d: [Bad("rank > dim", c.kw["dim"] + 1, ValueError)],)


def _sample_subspaces(d):
    D = ints(d, 2, 4)
    return Call(subspace.sample_subspaces, {"mixture": mixtures.LowRankMixture(bases(d, D=D)), "n_per_subspace": ints(d, 0, 4),
                                            "generator": torch.Generator().manual_seed(27), "dtype": fdtype(d)})


def _check_subspace_draws(out, call):
    m, n = call.kw["mixture"], call.kw["n_per_subspace"]
    like((m.K * n, m.dim), call.kw["dtype"])(out[0], call)
    assert out[1].shape == (m.K * n,)


SPECS["diffedu.subspace.sample_subspaces"] = spec(_sample_subspaces, _check_subspace_draws,
                                                  mixture=k_type("string", "molrg"), n_per_subspace="count",
                                                  generator="generator", dtype="dtype")
KINDS["bases"] = lambda v, c, d: [b for b in k_array(v, c, d) if b.label != "extra dimension"] + [
    Bad("4-D", torch.ones(1, 1, 2, 1), ValueError), Bad("rank above D", torch.ones(2, 3), ValueError)]
KINDS["basis"] = lambda v, c, d: (k_array(v, c, d) + [Bad("rank above D", torch.ones(2, 3), ValueError)])
SPECS["diffedu.subspace.principal_angles"] = spec(
    lambda d: (lambda D: Call(subspace.principal_angles, {"U": array(d, (D, ints(d, 1, D))) + np.eye(D, 1),
                                                          "V": array(d, (D, ints(d, 1, D))) + np.eye(D, 1)}))(ints(d, 1, 4)),
    lambda out, call: (finite(out), out.dim() == 1), U="basis", V="basis")
SPECS["diffedu.subspace.subspace_error"] = spec(
    lambda d: (lambda D, r: Call(subspace.subspace_error, {"U": bases(d, 1, D, r)[0], "V": bases(d, 1, D, r)[0]}))(
        *(lambda D: (D, ints(d, 1, D - 1)))(ints(d, 2, 4))),
    like((), F64), U="bases", V="bases")


def _match(d):
    D = ints(d, 2, 4)
    r, K = ints(d, 1, D - 1), ints(d, 1, 3)
    return Call(subspace.match_subspaces, {"estimate": bases(d, K, D, r), "truth": bases(d, K, D, r)})


SPECS["diffedu.subspace.match_subspaces"] = spec(
    _match, lambda out, call: (finite(out[1]), sorted(out[0].tolist()) == list(range(len(call.kw["truth"])))),
    estimate="array", truth="array")


def _fit_subspace(d):
    X = array(d, (ints(d, 1, 6), ints(d, 1, 3)))
    return Call(subspace.fit_subspace, {"X": d(st.sampled_from([torch.as_tensor, np.asarray]))(X),
                                        "rank": ints(d, 1, X.shape[1])})


SPECS["diffedu.subspace.fit_subspace"] = spec(
    _fit_subspace, lambda out, call: like((np.shape(call.kw["X"])[1], call.kw["rank"]), F64)(out, call), X="data",
    rank="size")


def _clustering_kw(d):
    return {"n_clusters": ints(d, 1, 3), "rank": 1, "n_init": ints(d, 1, 2), "max_iter": ints(d, 1, 5),
            "seed": ints(d, 0, 100)}


SPECS["diffedu.subspace.SubspaceClustering"] = spec(
    lambda d: Call(subspace.SubspaceClustering, _clustering_kw(d)), is_a(subspace.SubspaceClustering),
    n_clusters="size", rank="size", n_init="size", max_iter="size", seed="count")


def _fitted(d, method):
    X = tensor(d, (ints(d, 2, 8), ints(d, 1, 3)))
    sc = subspace.SubspaceClustering(**_clustering_kw(d))
    if method == "fit":
        return Call(sc.fit, {"X": X, "y": None})
    sc.fit(X)
    return Call(getattr(sc, method), {"X": tensor(d, (ints(d, 1, 4), X.shape[1]))})


SPECS["diffedu.subspace.SubspaceClustering.fit"] = spec(lambda d: _fitted(d, "fit"), is_a(subspace.SubspaceClustering),
                                                        X="data")
SPECS["diffedu.subspace.SubspaceClustering.predict"] = spec(
    lambda d: _fitted(d, "predict"), lambda out, call: out.shape == (len(call.kw["X"]),) and out.dtype == torch.long,
    X="data_d")
SPECS["diffedu.subspace.SubspaceClustering.residuals"] = spec(
    lambda d: _fitted(d, "residuals"), lambda out, call: like((len(call.kw["X"]), call.fn.__self__.n_clusters), F64)(out, call),
    X="data_d")


def _lrd_kw(d):
    D = ints(d, 2, 3)
    K, r, p = ints(d, 1, 2), ints(d, 1, D - 1), proc(d)
    return {"dim": D, "n_components": K, "rank": r, "process": p,
            "init": bases(d, K, D, r) if d(st.booleans()) else None, "generator": torch.Generator().manual_seed(28),
            "dtype": fdtype(d)}


KINDS["init"] = lambda v, c, d: k_array(torch.ones(c.kw["n_components"], c.kw["dim"], c.kw["rank"]), c, d)
SPECS["diffedu.subspace.LowRankDenoiser"] = spec(
    lambda d: Call(subspace.LowRankDenoiser, _lrd_kw(d)), is_a(subspace.LowRankDenoiser), dim="size",
    n_components="size", rank="size", process="process", init="init", generator="generator", dtype="dtype")


def _lrd_call(method):
    def make(d):
        kw = _lrd_kw(d)
        m = subspace.LowRankDenoiser(**kw)
        if method == "bases":
            return Call(m.bases, {})
        x = batch(d, D=kw["dim"], dtype=kw["dtype"])
        return Call(getattr(m, method), {"x": x, "t": time(d, kw["process"], B=x.shape[0], positive=True)},
                    {"process": kw["process"], "B": x.shape[0]})
    return make


SPECS["diffedu.subspace.LowRankDenoiser.forward"] = spec(_lrd_call("forward"), like_x(), x="batch_d", t="time_pos")
SPECS["diffedu.subspace.LowRankDenoiser.bases"] = spec(_lrd_call("bases"), finite)


def _train_lrd(d):
    D = ints(d, 2, 3)
    return Call(subspace.train_low_rank_denoiser, {
        "X": tensor(d, (ints(d, 2, 6), D)), "n_components": ints(d, 1, 2), "rank": 1, "process": proc(d),
        "steps": ints(d, 1, 2), "batch_size": ints(d, 1, 4), "lr": reals(d, 1e-3, 0.1),
        "t_range": (0.05, reals(d, 0.1, 0.5)), "n_init": 1, "seed": ints(d, 0, 100)})


KINDS["t_range"] = lambda v, c, d: [Bad("strings", ("0.1", "0.2"), TypeError), Bad("reversed", (0.3, 0.1), ValueError),
                                    Bad("NaN", (math.nan, 0.2), ValueError), Bad("above 1", (0.1, 2.0), ValueError),
                                    Bad("number", 0.1, TypeError)]
SPECS["diffedu.subspace.train_low_rank_denoiser"] = spec(
    _train_lrd, is_a(subspace.LowRankDenoiser), X="data", n_components="size", rank="size", process="process",
    steps="size", batch_size="size", lr="positive", t_range="t_range", n_init="size", seed="count")


def _phase(d):
    D = ints(d, 2, 3)
    return Call(subspace.phase_transition, {
        "n_per_subspace": sorted(set(d(st.lists(st.integers(0, 4), min_size=1, max_size=2)))), "dim": D,
        "n_subspaces": ints(d, 1, 2), "rank": 1, "noise": reals(d, 0.0, 0.1), "labels": d(st.booleans()),
        "n_trials": ints(d, 1, 2), "n_init": 1, "seed": ints(d, 0, 100), "threshold": reals(d, 0.01, 1.0)})


KINDS["counts"] = lambda v, c, d: [Bad("numeric strings", ["2"], TypeError), Bad("negative", [-1], ValueError),
                                   Bad("number", 3, TypeError), Bad("floats", [1.5], TypeError)]
SPECS["diffedu.subspace.phase_transition"] = spec(
    _phase, is_a(subspace.PhaseTransition, lambda out, call: finite([out.errors, out.success])),
    n_per_subspace="counts", dim="size", n_subspaces="size", rank="size", noise="nonneg", n_trials="size",
    n_init="size", seed="count", threshold="positive")
SPECS["diffedu.subspace.PhaseTransition"] = spec(
    lambda d: Call(subspace.PhaseTransition, {"n_per_subspace": [1], "errors": torch.zeros(1, 1),
                                              "success": torch.ones(1), "threshold": 0.2}), is_a(subspace.PhaseTransition))


# --- symbolic ------------------------------------------------------------------------------------------
T = symbolic.t
KINDS["expr"] = lambda v, c, d: [Bad("object", object(), TypeError), Bad("tensor", torch.ones(2), TypeError)]
SPECS["diffedu.symbolic.moment_odes"] = spec(
    lambda d: Call(symbolic.moment_odes, {"f": d(st.sampled_from([-T / 2, sp.Integer(0), -sp.Symbol("beta") / 2])),
                                          "g2": d(st.sampled_from([sp.Integer(1), 2 * T, sp.Symbol("beta")]))}),
    lambda out, call: len(out) == 4, f="expr", g2="expr")
SPECS["diffedu.symbolic.ou_kernel"] = spec(
    lambda d: Call(symbolic.ou_kernel, {"beta": d(st.sampled_from([None, 1, sp.Rational(1, 2)])), "x0": None}),
    lambda out, call: len(out) == 2, examples=0.3, deadline=60_000, beta="expr", x0="expr")
SPECS["diffedu.symbolic.vp_kernel"] = spec(
    lambda d: Call(symbolic.vp_kernel, {"beta_min": d(st.sampled_from([None, sp.Rational(1, 10)])), "beta_max": None,
                                        "x0": None}),
    lambda out, call: len(out) == 2, examples=0.3, deadline=60_000, beta_min="expr", beta_max="expr", x0="expr")
SPECS["diffedu.symbolic.drift_and_diffusion"] = spec(
    lambda d: Call(symbolic.drift_and_diffusion, dict(zip(("alpha", "sigma"), symbolic.schedule(
        d(st.sampled_from(["VP", "VE", "EDM", "Linear"])))))),
    lambda out, call: len(out) == 2, examples=0.3, deadline=60_000, alpha="expr", sigma="expr")
SPECS["diffedu.symbolic.schedule"] = spec(
    lambda d: Call(symbolic.schedule, {"name": d(st.sampled_from(["VP", "VPCosine", "VE", "EDM", "Linear"]))}),
    lambda out, call: len(out) == 2, name="choice")
SPECS["diffedu.symbolic.lambdify_t"] = spec(
    lambda d: Call(symbolic.lambdify_t, {"expr": d(st.sampled_from([T**2, sp.exp(-T), sp.Integer(3)]))}),
    lambda out, call: finite(out(np.linspace(0.0, 1.0, 5))), expr="expr")


# --- training ------------------------------------------------------------------------------------------
def _train(d):
    D = ints(d, 1, 3)
    model = torch.nn.Linear(D, D).double()
    labels = d(st.booleans())
    data = tensor(d, (6, D))
    return Call(training.train, {
        "model": model, "loss": lambda m, x0, y, *, generator=None: ((m(x0) - x0) ** 2).mean(), "data": data,
        "steps": ints(d, 1, 3), "batch_size": ints(d, 1, 4), "lr": reals(d, 1e-4, 1e-2),
        "labels": torch.arange(6) if labels else None, "checkpoints": (0,), "generator": torch.Generator().manual_seed(29),
        "progress": False})


KINDS["checkpoints"] = lambda v, c, d: [Bad("negative", (-1,), ValueError), Bad("numeric string", ("1",), TypeError),
                                        Bad("number", 1, TypeError), Bad("beyond steps", (10**6,), ValueError)]
SPECS["diffedu.training.train"] = spec(
    _train, lambda out, call: (like((call.kw["steps"],), F64)(out.losses, call), 0 in out.checkpoints),
    model=k_type("string", "model"), loss="callable", data=lambda v, c, d: [Bad("string", "abc", TypeError),
                                                                            Bad("NaN rows", torch.full((3, 1), math.nan), ValueError)],
    steps="size", batch_size="size", lr="positive", checkpoints="checkpoints", generator="generator",
    labels=lambda v, c, d: [Bad("wrong length", torch.arange(5), ValueError), Bad("list", [0] * 6, (TypeError, ValueError))])
SPECS["diffedu.training.TrainResult"] = spec(lambda d: Call(training.TrainResult, {"losses": torch.zeros(1), "checkpoints": {}}),
                                             is_a(training.TrainResult))


def _dsm_loss(d):
    p = proc(d)
    D = ints(d, 1, 2)
    return Call(training.dsm_loss, {"process": p, "weighting": d(st.sampled_from(training.WEIGHTINGS)), "t_min": None,
                                    "fp_weight": d(st.sampled_from([0.0, 0.1])), "fp_batch": ints(d, 1, 3),
                                    "fp_t_min": None, "fp_method": "exact"},
                {"process": p, "model": nets.ScoreMLP(p, D, hidden=4, depth=1).double(), "x0": tensor(d, (3, D))})


SPECS["diffedu.training.dsm_loss"] = spec(
    _dsm_loss, lambda out, call: finite(out(call.ctx["model"], call.ctx["x0"], None, generator=torch.Generator().manual_seed(0))),
    process="process", weighting="choice", t_min="time1_pos", fp_weight="nonneg", fp_batch="size", fp_t_min="time1_pos",
    fp_method="choice")


def _sample_times(d):
    p = proc(d)
    return Call(training.sample_times, {"process": p, "n": ints(d, 0, 5), "t_min": None, "like": torch.zeros(1, dtype=fdtype(d)),
                                        "generator": torch.Generator().manual_seed(30)}, {"process": p})


SPECS["diffedu.training.sample_times"] = spec(
    _sample_times, lambda out, call: like((call.kw["n"],), call.kw["like"].dtype)(out, call), process="process",
    n="count", t_min="time1_pos", like="like", generator="generator")


# --- discrete: schedules, sequences, samplers, the ELBO ------------------------------------------------
from diffedu import langevin, score_matching  # noqa: E402  (new modules: specs below)

SCHEDULES = {"LinearMask": lambda d: dd.LinearMask(), "CosineMask": lambda d: dd.CosineMask(),
             "PowerMask": lambda d: dd.PowerMask(reals(d, 0.2, 4.0))}


def unit_times(d):
    """A float or a tensor of any shape in [0, 1]."""
    return reals(d, 0.0, 1.0) if d(st.booleans()) else tensor(d, d(st.sampled_from([(), (3,), (2, 2)])), 0.0, 1.0)


def _schedule_method(name, method):
    def make(d):
        s = SCHEDULES[name](d)
        arg = "a" if method == "t_of_alpha" else "t"
        return Call(getattr(s, method), {arg: unit_times(d)})

    def check(out, call):
        v = next(iter(call.kw.values()))
        tt = torch.as_tensor(v, dtype=F64)
        assert isinstance(out, torch.Tensor) and out.shape == tt.shape and out.dtype == F64
        # alpha' of PowerMask(p < 1) is -inf at t = 0: the limit
        assert bool((torch.isfinite(out) | ((tt == 0) & (out == -math.inf))).all()), (out, v)
    return spec(make, check, **{("a" if method == "t_of_alpha" else "t"): "unit_time"})


for _n in SCHEDULES:
    _key = f"diffedu.discrete.schedules.{_n}"
    for _m in ("alpha", "d_alpha", "t_of_alpha", "check_t"):
        SPECS[f"{_key}.{_m}"] = _schedule_method(_n, _m)
SPECS["diffedu.discrete.schedules.LinearMask"] = spec(lambda d: Call(dd.LinearMask, {}), is_a(dd.LinearMask))
SPECS["diffedu.discrete.schedules.CosineMask"] = spec(lambda d: Call(dd.CosineMask, {}), is_a(dd.CosineMask))
SPECS["diffedu.discrete.schedules.PowerMask"] = spec(lambda d: Call(dd.PowerMask, {"p": reals(d, 0.1, 5.0)}),
                                                     is_a(dd.PowerMask), p="positive")
SPECS["diffedu.discrete.schedules.MaskSchedule"] = spec(lambda d: Call(dd.MaskSchedule, {}), is_a(dd.MaskSchedule))


def schedule(d):
    return SCHEDULES[d(st.sampled_from(sorted(SCHEDULES)))](d)


SPECS["diffedu.discrete.schedules.check_schedule"] = spec(
    lambda d: Call(dd.schedules.check_schedule, {"schedule": schedule(d)}), is_a(dd.MaskSchedule), schedule="schedule")
SPECS["diffedu.discrete.schedules.all_masked"] = spec(
    lambda d: Call(dd.all_masked, {"n": ints(d, 1, 4), "length": ints(d, 1, 4), "vocab_size": ints(d, 2, 5)}),
    lambda out, call: out.shape == (call.kw["n"], call.kw["length"]) and bool((out == call.kw["vocab_size"]).all()),
    n="size", length="size", vocab_size="size2")


def tokens(d, V, B=None, L=None, mask=False):
    B, L = ints(d, 1, 4) if B is None else B, ints(d, 1, 3) if L is None else L
    return torch.tensor(d(st.lists(st.integers(0, V if mask else V - 1), min_size=B * L, max_size=B * L))).reshape(B, L)


def _mask_tokens(d):
    V = ints(d, 2, 4)
    x0 = tokens(d, V)
    t = reals(d, 0.0, 1.0) if d(st.booleans()) else tensor(d, (x0.shape[0],), 0.0, 1.0)
    return Call(dd.mask_tokens, {"x0": x0, "t": t, "schedule": schedule(d), "vocab_size": V,
                                 "generator": torch.Generator().manual_seed(31)}, {"V": V, "B": x0.shape[0]})


KINDS["unit_time_b"] = lambda v, c, d: k_unit_time(v, c, d) + [Bad("wrong length", torch.full((c.ctx["B"] + 1,), 0.5), ValueError)]
SPECS["diffedu.discrete.schedules.mask_tokens"] = spec(
    _mask_tokens, lambda out, call: out.shape == call.kw["x0"].shape and out.dtype == torch.long,
    x0="tokens0", t="unit_time_b", schedule="schedule", vocab_size="size2", generator="generator")


def seq_dist(d, V=None, L=None):
    V, L = ints(d, 2, 3) if V is None else V, ints(d, 1, 3) if L is None else L
    return dd.SequenceDistribution(probs(d, (V**L,)), V, L)


def _first_hitting_time(d):
    B = ints(d, 1, 3)
    t = reals(d, 0.0, 1.0) if d(st.booleans()) else tensor(d, (B,), 0.0, 1.0)
    n = ints(d, 1, 5) if d(st.booleans()) else torch.tensor([ints(d, 1, 5) for _ in range(B)])
    u = tensor(d, (B,), 0.0, 1.0) if isinstance(t, torch.Tensor) and d(st.booleans()) else None  # one per row of t
    return Call(dd.first_hitting_time, {"t": t, "n_masked": n, "schedule": schedule(d),
                                        "generator": torch.Generator().manual_seed(32), "u": u}, {"B": B})


KINDS["n_masked"] = lambda v, c, d: [Bad("zero", 0, ValueError), Bad("not an integer", 1.5, ValueError),
                                     Bad("string", "2", TypeError), Bad("bool", True, TypeError),
                                     Bad("NaN", torch.tensor([math.nan]), ValueError)]
SPECS["diffedu.discrete.sampling.first_hitting_time"] = spec(
    _first_hitting_time, lambda out, call: (finite(out), bool(((out >= 0) & (out <= 1)).all())), t="unit_time",
    n_masked="n_masked", schedule="schedule", generator="generator",
    u=lambda v, c, d: [Bad("list", [0.5] * c.ctx["B"], TypeError), Bad("wrong length", torch.full((c.ctx["B"] + 1,), 0.5), ValueError),
                       Bad("above 1", torch.full((c.ctx["B"],), 1.5), ValueError), Bad("NaN", torch.full((c.ctx["B"],), math.nan), ValueError)])


def _survival(d):
    a0 = reals(d, 0.0, 0.9)
    return Call(dd.first_hitting_survival, {"alpha": reals(d, a0, 1.0), "n_masked": ints(d, 1, 5), "alpha_from": a0})


KINDS["alpha_from"] = lambda v, c, d: [Bad("string", "0.1", TypeError), Bad("bool", True, TypeError),
                                       Bad("one", 1.0, ValueError), Bad("NaN", math.nan, ValueError)]
KINDS["alpha_sv"] = lambda v, c, d: [Bad("string", "0.5", TypeError), Bad("above 1", 1.5, ValueError),
                                     Bad("NaN", math.nan, ValueError), Bad("complex", torch.tensor(0.5j), TypeError)]
SPECS["diffedu.discrete.sampling.first_hitting_survival"] = spec(
    _survival, lambda out, call: (finite(out), 0 <= float(out) <= 1), alpha="alpha_sv", n_masked="n_masked",
    alpha_from="alpha_from")


def _discrete_sampler(fn, steps=False):
    def make(d):
        dist_ = seq_dist(d)
        x = tokens(d, dist_.V, L=dist_.L, mask=True)
        x[:, 0] = dist_.V  # at least one masked position per row: the denoiser is called
        kw = {"denoiser": dist_.denoiser, "x": x, "vocab_size": dist_.V, "schedule": schedule(d),
              "bits": d(st.sampled_from([24, 53])), "generator": torch.Generator().manual_seed(33)}
        if steps:
            kw["steps"] = ints(d, 1, 4)
        return Call(fn, kw, {"V": dist_.V})
    return make


def _sampled(out, call):
    x = call.kw["x"]
    assert out.shape == x.shape and out.dtype == torch.long
    assert bool((out >= 0).all()) and bool((out <= call.kw["vocab_size"]).all())


KINDS["token_probs"] = lambda v, c, d: k_callable(v, c, d) + [
    Bad("returns (B, L, V + 1)", lambda x, t: torch.ones(*x.shape, c.ctx["V"] + 1), ValueError)]
_DS_BAD = dict(denoiser="token_probs", x="tokens", vocab_size="size2", schedule="schedule", bits=BITS, generator="generator")
SPECS["diffedu.discrete.sampling.sample_first_hitting"] = spec(_discrete_sampler(dd.sample_first_hitting), _sampled, **_DS_BAD)
SPECS["diffedu.discrete.sampling.sample_stepwise"] = spec(_discrete_sampler(dd.sample_stepwise, steps=True), _sampled,
                                                          steps="size", **_DS_BAD)


def _stepwise_law(d):
    dist_ = seq_dist(d)
    return Call(dd.stepwise_law, {"denoiser": dist_.denoiser, "vocab_size": dist_.V, "length": dist_.L,
                                  "schedule": schedule(d), "steps": ints(d, 1, 4)}, {"V": dist_.V})


SPECS["diffedu.discrete.sampling.stepwise_law"] = spec(
    _stepwise_law, lambda out, call: (finite(out), out.shape == (call.kw["vocab_size"] ** call.kw["length"],),
                                      abs(float(out.sum()) - 1) < 1e-9),
    denoiser="token_probs", vocab_size=k_int(2, huge=True), length=k_int(1, huge=True), schedule="schedule", steps="size")


def _elbo_call(fn, extra):
    def make(d):
        dist_ = seq_dist(d)
        kw = {"denoiser": dist_.denoiser, "x0": tokens(d, dist_.V, L=dist_.L), "schedule": schedule(d),
              "vocab_size": dist_.V}
        kw.update(extra(d))
        return Call(fn, kw, {"V": dist_.V})
    return make


_EL_BAD = dict(denoiser="token_probs", x0="tokens0", schedule="schedule", vocab_size="size2")
SPECS["diffedu.discrete.evidence.elbo"] = spec(
    _elbo_call(dd.elbo, lambda d: {"n_t": ints(d, 1, 8)}), lambda out, call: like((call.kw["x0"].shape[0],), F64)(out, call),
    n_t="size", **_EL_BAD)
SPECS["diffedu.discrete.evidence.elbo_integrand"] = spec(
    _elbo_call(dd.elbo_integrand, lambda d: {"t": tensor(d, (ints(d, 1, 3),), 0.05, 1.0),
                                             "per": d(st.sampled_from(["t", "alpha"]))}),
    lambda out, call: like((len(call.kw["t"]), call.kw["x0"].shape[0]), F64)(out, call),
    t="unit_time", per="choice", **_EL_BAD)


def _elbo_mc_check(out, call):
    finite(out)
    assert all(v.shape == (call.kw["x0"].shape[0],) for v in out)


SPECS["diffedu.discrete.evidence.elbo_mc"] = spec(
    _elbo_mc_check and _elbo_call(dd.elbo_mc, lambda d: {"n": ints(d, 2, 6), "generator": torch.Generator().manual_seed(34)}),
    _elbo_mc_check, n=k_int(2), generator="generator", **_EL_BAD)


def _seq_ctor(d):
    V, L = ints(d, 2, 3), ints(d, 1, 3)
    p = probs(d, (V**L,))
    return Call(dd.SequenceDistribution, {"probs": p if d(st.booleans()) else torch.as_tensor(p).reshape((V,) * L),
                                          "vocab_size": V, "length": L})


SPECS["diffedu.discrete.sequences.SequenceDistribution"] = spec(
    _seq_ctor, is_a(dd.SequenceDistribution), probs="probs", vocab_size=k_int(2, huge=True), length=k_int(1, huge=True))
SPECS["diffedu.discrete.sequences.SequenceDistribution"].bad["probs"] += (
    lambda v, c, d: [Bad("wrong length", torch.ones(c.kw["vocab_size"] ** c.kw["length"] + 1)
                         / (c.kw["vocab_size"] ** c.kw["length"] + 1), ValueError)],)


def _markov(d):
    V = ints(d, 2, 3)
    return Call(dd.SequenceDistribution.markov_chain, {"init": probs(d, (V,)), "trans": probs(d, (V, V)),
                                                       "length": ints(d, 1, 3)})


SPECS["diffedu.discrete.sequences.SequenceDistribution.markov_chain"] = spec(
    _markov, is_a(dd.SequenceDistribution), init="probs", trans="probs", length=k_int(1, huge=True))


def _seq_method(method, x=False, t=False, mask=False, n=False):
    def make(d):
        dist_ = seq_dist(d)
        kw = {}
        if x:
            kw["x"] = tokens(d, dist_.V, L=dist_.L, mask=mask)
        if t:
            kw["t"] = None
        if n:
            kw.update(n=ints(d, 1, 4), generator=torch.Generator().manual_seed(35))
        return Call(getattr(dist_, method), kw, {"V": dist_.V, "dist": dist_})
    return make


_SEQ = "diffedu.discrete.sequences.SequenceDistribution"
KINDS["seq_x"] = lambda v, c, d: KINDS["tokens0"](v, c, d) + [Bad("wrong length", torch.cat([v, v], 1), ValueError)]
KINDS["seq_xm"] = lambda v, c, d: KINDS["tokens"](v, c, d) + [Bad("wrong length", torch.cat([v, v], 1), ValueError)]
SPECS[f"{_SEQ}.index"] = spec(_seq_method("index", x=True), lambda out, call: out.shape == (len(call.kw["x"]),), x="seq_x")
SPECS[f"{_SEQ}.log_prob"] = spec(_seq_method("log_prob", x=True),
                                 lambda out, call: out.shape == (len(call.kw["x"]),) and bool((out <= 0).all()), x="seq_x")
SPECS[f"{_SEQ}.sample"] = spec(_seq_method("sample", n=True),
                               lambda out, call: out.shape == (call.kw["n"], call.ctx["dist"].L), n="size",
                               generator="generator")
SPECS[f"{_SEQ}.marginals"] = spec(_seq_method("marginals"), lambda out, call: like(
    (call.ctx["dist"].L, call.ctx["dist"].V), F64)(out, call))
SPECS[f"{_SEQ}.product_of_marginals"] = spec(_seq_method("product_of_marginals"), is_a(dd.SequenceDistribution))
for _m in ("denoiser", "marginal_denoiser"):
    SPECS[f"{_SEQ}.{_m}"] = spec(_seq_method(_m, x=True, t=True, mask=True), lambda out, call: like(
        tuple(call.kw["x"].shape) + (call.ctx["dist"].V,), F64)(out, call), x="seq_xm")


def _chi2(d):
    dist_ = seq_dist(d)
    n = ints(d, 10, 40) * dist_.V**dist_.L  # the likeliest sequence expects >= 10 >= min_expected: dof >= 1
    return Call(dd.sequence_chi2, {"x": dist_.sample(n, generator=torch.Generator().manual_seed(36)),
                                   "dist": dist_, "min_expected": reals(d, 0.1, 5.0)}, {"V": dist_.V})


SPECS["diffedu.discrete.sequences.sequence_chi2"] = spec(
    _chi2, lambda out, call: (finite(out), 0 <= out[2] <= 1), x="seq_x", dist=k_type("string", "table"),
    min_expected="positive")


# --- langevin ------------------------------------------------------------------------------------------
def _langevin_step(d):
    D, p = ints(d, 1, 3), proc(d)
    g = gaussian_dist(d, D, singular=False)
    x = batch(d, D=D)
    return Call(langevin.langevin_step, {"score": g.bind(p).score, "x": x, "t": time(d, p, B=x.shape[0], positive=True),
                                         "step": reals(d, 1e-4, 0.5), "noise": batch(d, B=x.shape[0], D=D, dtype=x.dtype)})


KINDS["noise_like_x"] = lambda v, c, d: k_batch_d(v, c, d)[:-2] + [Bad("other rows", v[:0] if len(v) > 1 else torch.cat([v, v]), ValueError)]
SPECS["diffedu.langevin.langevin_step"] = spec(_langevin_step, like_x(), score="field", x="batch", step="positive",
                                               noise="noise_like_x")
SPECS["diffedu.langevin.gaussian_stationary_variance"] = spec(
    lambda d: (lambda v: Call(langevin.gaussian_stationary_variance, {"v": v, "step": reals(d, 1e-4, 1.9) * v}))(
        reals(d, 0.01, 10.0)),
    lambda out, call: isinstance(out, float) and out >= call.kw["v"], v="positive",
    step=(k_real(0.0, strict=True), lambda v, c, d: [Bad("unstable", 2 * c.kw["v"], ValueError)]))


def _annealed(d):
    call = _sampler_call(langevin.annealed_langevin)(d)
    kw = {k: call.kw[k] for k in ("D", "process", "x", "ts", "generator", "callback")}
    kw.update(n_steps=ints(d, 1, 3), step_scale=reals(d, 0.001, 0.2))
    return Call(langevin.annealed_langevin, kw, call.ctx)


SPECS["diffedu.langevin.annealed_langevin"] = spec(_annealed, like_x(), D="field", process="process", x="batch",
                                                   ts="grid", generator="generator", callback="callback",
                                                   n_steps="size", step_scale="positive")


# --- score_matching ------------------------------------------------------------------------------------
def _sm_call(fn, kind):
    def make(d):
        D, p = ints(d, 1, 3), proc(d)
        g = dist(d, D, ("gaussian", "mixture"))
        x = batch(d, D=D)
        t = time(d, p, B=x.shape[0], positive=True)
        b = g.bind(p)
        kw = {"esm": {"score": b.score, "exact": b.score, "x": x, "t": t},
              "dsm": {"score": b.score, "process": p, "x0": x, "t": t, "eps": batch(d, B=x.shape[0], D=D, dtype=x.dtype)},
              "trace": {"score": b.score, "process": p, "x": x, "t": t}}[kind]
        return Call(fn, kw, {"process": p, "B": x.shape[0]})
    return make


SPECS["diffedu.score_matching.esm_terms"] = spec(_sm_call(score_matching.esm_terms, "esm"), rows_of(),
                                                 score="field", exact="field", x="batch")
SPECS["diffedu.score_matching.dsm_terms"] = spec(_sm_call(score_matching.dsm_terms, "dsm"), rows_of("x0"),
                                                 score="field", process="process", x0="batch", t="time_pos",
                                                 eps="noise_like_x")
SPECS["diffedu.score_matching.posterior_cov_trace"] = spec(_sm_call(score_matching.posterior_cov_trace, "trace"),
                                                           rows_of(), score="field", process="process", x="batch",
                                                           t="time_pos")


def _sm_stat(fn, with_score=False, floor=False):
    def make(d):
        D, p = ints(d, 1, 2), proc(d)
        g = dist(d, D, ("gaussian", "mixture"))
        kw = {"dist": g, "process": p, "n": ints(d, 20, 40) if floor else ints(d, 2, 6),
              "generator": torch.Generator().manual_seed(37), "dtype": fdtype(d)}
        if floor:
            kw.update(weighting=d(st.sampled_from(training.WEIGHTINGS)), t_min=None)
        else:
            kw["t"] = time(d, p, positive=True, form="float")
        if with_score:
            kw["score"] = g.bind(p).score
        return Call(fn, kw, {"process": p})
    return make


_SM_BAD = dict(dist="dist", process="process", generator="generator", dtype="dtype")
SPECS["diffedu.score_matching.dsm_constant"] = spec(_sm_stat(score_matching.dsm_constant), finite, t="time1_pos",
                                                    n="size2", **_SM_BAD)
SPECS["diffedu.score_matching.score_matching_gap"] = spec(
    _sm_stat(score_matching.score_matching_gap, with_score=True), is_a(score_matching.ScoreMatchingGap, finite),
    score="field", t="time1_pos", n="size2", **_SM_BAD)
SPECS["diffedu.score_matching.dsm_floor"] = spec(_sm_stat(score_matching.dsm_floor, floor=True), finite,
                                                 n=k_int(20), weighting="choice", t_min="time1_pos", **_SM_BAD)
SPECS["diffedu.score_matching.ScoreMatchingGap"] = spec(
    lambda d: Call(score_matching.ScoreMatchingGap, {"dsm": 1.0, "esm": 0.0, "gap": 1.0, "gap_se": 0.1}),
    is_a(score_matching.ScoreMatchingGap))


# --- linear_gaussian -----------------------------------------------------------------------------------
from diffedu import linear_gaussian  # noqa: E402

SPECS["diffedu.linear_gaussian.denoiser_gain"] = spec(
    lambda d: (lambda D, p: Call(linear_gaussian.denoiser_gain, {"gauss": gaussian_dist(d, D), "t": time(
        d, p, positive=True, form="float"), "process": p}, {"process": p}))(ints(d, 1, 3), proc(d)),
    lambda out, call: like((call.kw["gauss"].dim,) * 2, F64)(out, call), gauss="gaussian", t="time1_pos",
    process="process")


def _moments(fn):
    def make(d):
        D, p = ints(d, 1, 3), proc(d)
        g = gaussian_dist(d, D)
        t0 = grid(d, p)
        return Call(fn, {"gauss": g, "process": p, "ts": t0, "mean": array(d, (D,)), "cov": spd(d, D)}, {"process": p})
    return spec(make, lambda out, call: (finite(out), out[0].shape == (call.kw["gauss"].dim,)),
                gauss="gaussian", process="process", ts="grid", mean="array", cov="cov")


SPECS["diffedu.linear_gaussian.euler_maruyama_moments"] = _moments(linear_gaussian.euler_maruyama_moments)
SPECS["diffedu.linear_gaussian.ddpm_ancestral_moments"] = _moments(linear_gaussian.ddpm_ancestral_moments)


# --- recent additions: EM mixtures, the memorisation baseline ------------------------------------------
def _fit_mixture(d):
    D = ints(d, 1, 3)
    X = array(d, (ints(d, 3, 10), D))
    return Call(mixtures.fit_gaussian_mixture, {
        "data": d(st.sampled_from([torch.as_tensor, np.asarray]))(X), "n_components": ints(d, 1, 3),
        "reg": reals(d, 1e-4, 0.1), "max_iter": ints(d, 1, 10), "tol": reals(d, 0.0, 1e-2), "n_init": ints(d, 1, 2),
        "generator": torch.Generator().manual_seed(38)})


SPECS["diffedu.mixtures.fit_gaussian_mixture"] = spec(  # noqa: E501
    _fit_mixture, is_a(mixtures.GaussianMixture, lambda out, call: finite([out.means, out.covs, out.weights])),
    data="data", n_components="size", reg="nonneg", max_iter="size", tol="nonneg", n_init="size", generator="generator")
SPECS["diffedu.mixtures.fit_gaussian_mixture"].bad["n_components"] += (
    lambda v, c, d: [Bad("more than the rows", 10**3, ValueError)],)


def _baseline(d):
    g = gaussian_dist(d, ints(d, 1, 2))
    return Call(memorisation.memorisation_baseline, {
        "sample": g.sample, "sizes": sorted(set(d(st.lists(st.integers(2, 6), min_size=1, max_size=2)))),
        "n_samples": ints(d, 1, 5), "n_sets": ints(d, 2, 3), "ratio": reals(d, 0.05, 1.0),
        "generator": torch.Generator().manual_seed(39)})


SPECS["diffedu.memorisation.memorisation_baseline"] = spec(
    _baseline, is_a(memorisation.MemorisationBaseline, lambda out, call: finite([out.fractions, out.stderr])),
    sample="callable", sizes="sweep_sizes", n_samples="size", n_sets="size2",
    ratio=SPECS["diffedu.memorisation.is_memorised"].bad["ratio"], generator="generator")
SPECS["diffedu.memorisation.memorisation_baseline"].bad["sizes"] = (
    lambda v, c, d: [b for b in KINDS["sweep_sizes"](v, c, d) if b.label != "more than the data"],)
SPECS["diffedu.memorisation.MemorisationBaseline"] = spec(
    lambda d: Call(memorisation.MemorisationBaseline, {"sizes": [2], "fractions": torch.zeros(1), "stderr": torch.zeros(1)}),
    is_a(memorisation.MemorisationBaseline))


# --- conditioning on a linear measurement; K-subspaces' steps ----------------------------------------
def _condition(kind):
    def make(d):
        D = ints(d, 1, 3)
        g = dist(d, D, (kind,))
        m = ints(d, 1, D)
        return Call(g.condition, {"A": array(d, (m, D)), "y": array(d, (m,)), "noise_std": reals(d, 0.05, 2.0)},
                    {"dist": g})
    return spec(make, is_a(gaussian.Gaussian if kind == "gaussian" else mixtures.GaussianMixture,
                           lambda out, call: out.dim == call.ctx["dist"].dim),
                A="measurement", y="array", noise_std="positive")


KINDS["measurement"] = lambda v, c, d: k_array(v, c, d) + [Bad("wrong D", np.ones((1, c.ctx["dist"].dim + 1)), ValueError)]
SPECS["diffedu.gaussian.Gaussian.condition"] = _condition("gaussian")
SPECS["diffedu.mixtures.GaussianMixture.condition"] = _condition("mixture")
SPECS["diffedu.mixtures.LowRankMixture.condition"] = _condition("low_rank")


def _k_sub(fn, labels=False, nonzero=False):
    def make(d):
        D = ints(d, 2, 4)
        K, r = ints(d, 1, 3), ints(d, 1, D - 1)
        n = ints(d, K, 8)
        X = array(d, (n, D)) + (3.0 if nonzero else 0.0)
        if labels:
            y = torch.arange(n) % K
            return Call(fn, {"X": X, "labels": y, "n_clusters": K, "rank": r}, {"K": K})
        return Call(fn, {("samples" if fn is subspace.sample_subspace_error else "X"): X, "bases": bases(d, K, D, r)})
    return make


KINDS["labels"] = lambda v, c, d: [Bad("float tensor", v.double(), TypeError), Bad("out of range", v + c.ctx["K"], ValueError),
                                   Bad("negative", v - 1 if int(v.min()) == 0 else -v, ValueError),
                                   Bad("wrong length", v[:-1], ValueError), Bad("strings", ["0"] * len(v), TypeError)]
KINDS["kbases"] = lambda v, c, d: [b for b in KINDS["bases"](v, c, d) if b.label != "rank above D"] + [
    Bad("other D", torch.ones(1, v.shape[1] + 1, 1), ValueError)]
SPECS["diffedu.subspace.assign_subspaces"] = spec(
    _k_sub(subspace.assign_subspaces), lambda out, call: out.shape == (len(call.kw["X"]),) and out.dtype == torch.long,
    X="data", bases="kbases")
SPECS["diffedu.subspace.k_subspaces_step"] = spec(
    _k_sub(subspace.k_subspaces_step), lambda out, call: (finite(out[1]), out[1].shape == call.kw["bases"].shape),
    X="data", bases="kbases")
SPECS["diffedu.subspace.distance_to_subspaces"] = spec(
    _k_sub(subspace.distance_to_subspaces, nonzero=True),
    lambda out, call: like((len(call.kw["X"]),), F64)(out, call), X="data", bases="kbases")
SPECS["diffedu.subspace.sample_subspace_error"] = spec(
    _k_sub(subspace.sample_subspace_error), lambda out, call: like((len(call.kw["bases"]),), F64)(out, call),
    samples="data", bases="kbases")
SPECS["diffedu.subspace.refit_subspaces"] = spec(
    _k_sub(subspace.refit_subspaces, labels=True),
    lambda out, call: like((call.kw["n_clusters"], np.shape(call.kw["X"])[1], call.kw["rank"]), F64)(out, call),
    X="data", labels="labels", n_clusters="size", rank="size", bad_with={"n_clusters": {}})
SPECS["diffedu.subspace.subspace_objective"] = spec(
    _k_sub(subspace.subspace_objective, labels=True), is_a(float, finite), X="data", labels="labels", n_clusters="size",
    rank="size")


def _gauss_gain(method):
    def make(d):
        D, p = ints(d, 1, 3), proc(d)
        g = gaussian_dist(d, D)
        # a law of zero covariance carried to t_to = 0 has no perturbation to share (a ValueError)
        point = method == "perturbation_share" and bool((g.eigvals == 0).all())
        kw = {"t_from": time(d, p, positive=singular(g), form="float"), "t_to": time(d, p, positive=point, form="float"),
              "process": p}
        if method == "perturbation_share":
            kw["k"] = ints(d, 1, g._c.r)
        return Call(getattr(g, method), kw, {"process": p, "dist": g})
    return make


KINDS["k_modes"] = lambda v, c, d: k_int(1, c.ctx["dist"]._c.r)(v, c, d)
SPECS[f"{_G}.flow_gains"] = spec(_gauss_gain("flow_gains"),
                                 lambda out, call: like((call.ctx["dist"]._c.r,), F64)(out, call),
                                 t_from="time1_dist", t_to="time1", process="process")
SPECS[f"{_G}.perturbation_share"] = spec(
    _gauss_gain("perturbation_share"), lambda out, call: (like((), F64)(out, call), 0 <= float(out) <= 1 + 1e-12),
    t_from="time1_dist", t_to="time1", process="process", k="k_modes")


def _leading_share(d):
    D = ints(d, 1, 3)
    g = gaussian_dist(d, D)
    return Call(g.leading_share, {"v": batch(d, D=D, lo=1.0, hi=2.0), "k": ints(d, 1, g._c.r)}, {"dist": g})


SPECS[f"{_G}.leading_share"] = spec(_leading_share, lambda out, call: like((len(call.kw["v"]),), F64)(out, call),
                                    v="batch_d", k="k_modes")
SPECS[f"{_G}.leading_share"].bad["v"] += (lambda v, c, d: [Bad("a zero row", torch.zeros_like(v), ValueError)],)


# --- additions of issues 15-19: grid transport, guidance, inverse problems, likelihood along SDE paths --
from diffedu import grid_transport as gt, guidance, inverse  # noqa: E402


def grid_nodes(d, lo=4):
    return np.linspace(-4.0, 4.0, ints(d, lo, 10))


KINDS["grid4"] = lambda v, c, d: [b for b in KINDS["grid1d"](v, c, d)] + [Bad("3 points", v[:3], ValueError)]
SPECS["diffedu.grid_transport.face_centres"] = spec(
    lambda d: Call(gt.face_centres, {"grid": grid_nodes(d)}),
    lambda out, call: (finite(out), out[0].shape == ((len(call.kw["grid"]) - 1) * len(call.kw["grid"]), 2)), grid="grid4")
SPECS["diffedu.grid_transport.GridSolve"] = spec(lambda d: Call(gt.GridSolve, {
    "density": np.ones((2, 2)), "times": np.zeros(0), "snapshots": np.zeros((0, 2, 2)), "steps": 0}), is_a(gt.GridSolve))


def _sampler_density(d):
    p = d(st.sampled_from([PROCESSES[0], PROCESSES[1], PROCESSES[4]]))
    g = gaussian_dist(d, 2, singular=False)
    grid_ = grid_nodes(d, 5)
    t_start = reals(d, 0.5, 1.0) * p.t_max
    t_end = t_start * reals(d, 0.5, 0.9)
    return Call(gt.sampler_density, {
        "score": g.bind(p).score, "process": p, "grid": grid_, "p_start": fp.density_on_grid(g, p, grid_, t_start),
        "t_start": t_start, "t_end": t_end, "churn": reals(d, 0.0, 1.0), "limiter": d(st.sampled_from(gt.LIMITERS)),
        "cfl": reals(d, 0.1, 1.0), "max_dt": None, "keep": (t_start,) if d(st.booleans()) else (), "dtype": fdtype(d)},
        {"process": p})


KINDS["keep"] = lambda v, c, d: [Bad("strings", ("0.5",), TypeError), Bad("outside", (c.kw["t_start"] + 1.0,), ValueError),
                                 Bad("number", 0.5, TypeError), Bad("NaN", (math.nan,), ValueError)]
KINDS["density2"] = lambda v, c, d: [b for b in KINDS["density"](v, c, d) if b.label != "wrong shape"] + [
    Bad("wrong shape", v[1:], ValueError)]
SPECS["diffedu.grid_transport.sampler_density"] = spec(
    _sampler_density, is_a(gt.GridSolve, lambda out, call: finite([out.density, out.snapshots])),
    score="field", process="process", grid="grid4", p_start="density2", t_start="real", t_end="real", churn="nonneg",
    limiter="choice", cfl=(k_real(0.0, 1.0, strict=False), lambda v, c, d: [Bad("zero", 0.0, ValueError)]),
    max_dt="positive", keep="keep", dtype="dtype")


def _grid_pair(fn, w2=False):
    def make(d):
        n = ints(d, 4, 6)
        p, q = array(d, (n, n), 0.0, 1.0), array(d, (n, n), 0.0, 1.0)
        p[0, 0] = q[0, 0] = 1.0  # some mass
        kw = {"p": p, "q": q}
        kw.update({"grid": np.linspace(-1.0, 1.0, n), "threshold": 1e-9} if w2 else {"cell_area": reals(d, 1e-3, 1.0)})
        return Call(fn, kw)
    return make


KINDS["dens_pair"] = lambda v, c, d: [Bad("NaN", np.where(np.eye(len(v), dtype=bool), np.nan, v), ValueError),
                                      Bad("string", "abc", TypeError), Bad("complex", v + 1j, TypeError),
                                      Bad("other shape", v[1:], ValueError)]
SPECS["diffedu.grid_transport.grid_tv"] = spec(_grid_pair(gt.grid_tv), is_a(float, finite), p="dens_pair", q="dens_pair",
                                               cell_area="positive")
SPECS["diffedu.grid_transport.grid_hellinger"] = spec(
    _grid_pair(gt.grid_hellinger), is_a(float, finite), p="dens_pair", q="dens_pair", cell_area="positive")
SPECS["diffedu.grid_transport.grid_hellinger"].bad["p"] += (lambda v, c, d: [Bad("negative", -v - 1.0, ValueError)],)
SPECS["diffedu.grid_transport.grid_w2"] = spec(_grid_pair(gt.grid_w2, w2=True), is_a(float, finite), p="dens_pair",
                                               q="dens_pair", grid="grid4", threshold="nonneg")


def _gronwall_terms(d):
    p = d(st.sampled_from([PROCESSES[0], PROCESSES[1], PROCESSES[4]]))
    g = gaussian_dist(d, 2, singular=False)
    grid_ = grid_nodes(d, 5)
    t = time(d, p, positive=True, form="float")
    return Call(gt.gronwall_terms, {"score": g.bind(p).score, "process": p, "grid": grid_,
                                    "q": fp.density_on_grid(g, p, grid_, t), "t": t, "mass_floor": reals(d, 1e-4, 0.5),
                                    "dtype": fdtype(d)}, {"process": p})


SPECS["diffedu.grid_transport.gronwall_terms"] = spec(
    _gronwall_terms, lambda out, call: (finite(out), len(out) == 2), score="field", process="process", grid="grid4",
    q="density2", t="time1", mass_floor="unit", dtype="dtype")


def _gronwall_bound(d):
    K = ints(d, 2, 6)
    return Call(gt.gronwall_bound, {"ts": np.linspace(0.1, 1.0, K), "eps": array(d, (K,), 0.0, 1.0),
                                    "Lambda": array(d, (K,), -2.0, 2.0), "g2": array(d, (K,), 0.0, 5.0)})


KINDS["seq_k"] = lambda v, c, d: [Bad("NaN", np.r_[v[:-1], np.nan], ValueError), Bad("string", "abc", TypeError),
                                  Bad("wrong length", v[:-1], ValueError)]
SPECS["diffedu.grid_transport.gronwall_bound"] = spec(
    _gronwall_bound, is_a(float, finite), ts=lambda v, c, d: KINDS["seq_k"](v, c, d) + [
        Bad("decreasing", v[::-1].copy(), ValueError)], eps="seq_k", Lambda="seq_k", g2="seq_k")


def class_model(d, D=None):
    D = ints(d, 1, 2) if D is None else D
    m = mixture(d, D, K=ints(d, 2, 3))
    labels = [0, 1] + [ints(d, 0, 1) for _ in range(m.K - 2)]
    return guidance.ClassConditional(m, labels)


SPECS["diffedu.guidance.ClassConditional"] = spec(
    lambda d: (lambda m: Call(guidance.ClassConditional, {"mixture": m, "labels": [0, 1] + [0] * (m.K - 2)}))(
        mixture(d, ints(d, 1, 2), K=ints(d, 2, 3))),
    is_a(guidance.ClassConditional), mixture=k_type("string", "mixture"),
    labels=lambda v, c, d: [Bad("string", "abc", TypeError), Bad("non-integer", [0.5] * len(v), ValueError),
                            Bad("negative", [-1] * len(v), ValueError), Bad("a class unused", [0] + [2] * (len(v) - 1), ValueError),
                            Bad("wrong length", list(v) + [0], ValueError)])


def _cc_call(method):
    def make(d):
        cm, p = class_model(d), proc(d)
        if method == "given":
            return Call(cm.given, {"c": ints(d, 0, cm.n_classes - 1)}, {"model": cm})
        if method == "sample":
            return Call(cm.sample, {"n": ints(d, 0, 4), "generator": torch.Generator().manual_seed(40), "dtype": fdtype(d),
                                    "device": "cpu"}, {"model": cm})
        x = batch(d, D=cm.dim)
        return Call(getattr(cm, method), {"x": x, "t": time(d, p, B=x.shape[0], positive=singular(cm.mixture)),
                                          "process": p}, {"process": p, "B": x.shape[0], "dist": cm.mixture, "model": cm})
    return make


KINDS["class"] = lambda v, c, d: k_int(0, c.ctx["model"].n_classes - 1)(v, c, d)
_CC = "diffedu.guidance.ClassConditional"
SPECS[f"{_CC}.given"] = spec(_cc_call("given"), is_a(mixtures.GaussianMixture), c="class")
SPECS[f"{_CC}.log_classifier"] = spec(_cc_call("log_classifier"), lambda out, call: like(
    (call.kw["x"].shape[0], call.ctx["model"].n_classes), call.kw["x"].dtype)(out, call), x="batch_d", t="time_dist",
    process="process")
SPECS[f"{_CC}.classifier"] = spec(_cc_call("classifier"), lambda out, call: like(
    (call.kw["x"].shape[0], call.ctx["model"].n_classes), call.kw["x"].dtype)(out, call), x="batch_d", t="time_dist",
    process="process")
SPECS[f"{_CC}.sample"] = spec(_cc_call("sample"), lambda out, call: (
    like((call.kw["n"], call.ctx["model"].dim), call.kw["dtype"])(out[0], call), out[1].shape == (call.kw["n"],)),
    n="count", generator="generator", dtype="dtype", device="device")

KINDS["interval"] = lambda v, c, d: [Bad("number", 0.5, TypeError), Bad("strings", ("0.1", "0.2"), TypeError),
                                     Bad("reversed", (0.5, 0.1), ValueError), Bad("NaN", (math.nan, 0.5), ValueError)]


def _guidance_call(which):
    def make(d):
        cm, p = class_model(d), proc(d)
        c = ints(d, 0, cm.n_classes - 1)
        x = batch(d, D=cm.dim)
        ctx = {"x": x, "t": time(d, p, B=x.shape[0], positive=True), "process": p}
        interval = None if d(st.booleans()) else (0.1 * p.t_max, 0.5 * p.t_max)
        if which == "cfg":
            return Call(guidance.classifier_free_guidance, {
                "D_cond": cm.given(c).bind(p).denoiser, "D_uncond": cm.mixture.bind(p).denoiser, "w": reals(d, 0.0, 3.0),
                "interval": interval}, ctx)
        return Call(guidance.classifier_guidance, {
            "D": cm.mixture.bind(p).denoiser, "log_classifier": lambda y, t: cm.log_classifier(y, t, p)[:, c],
            "process": p, "w": reals(d, 0.0, 3.0), "interval": interval}, ctx)
    return make


SPECS["diffedu.guidance.classifier_free_guidance"] = spec(
    _guidance_call("cfg"), returns_field(lambda c: (c.ctx["x"], c.ctx["t"])), D_cond="callable", D_uncond="callable",
    w="real", interval="interval")
SPECS["diffedu.guidance.classifier_guidance"] = spec(
    _guidance_call("cg"), returns_field(lambda c: (c.ctx["x"], c.ctx["t"])), D="callable", log_classifier="callable",
    process="process", w="real", interval="interval")


def _tilted(fn):
    def make(d):
        cm = class_model(d, D=2 if fn is guidance.tilted_density_grid else None)
        kw = {"model": cm, "c": ints(d, 0, cm.n_classes - 1), "w": reals(d, 0.0, 3.0)}
        if fn is guidance.tilted_log_prob:
            kw["x"] = batch(d, D=cm.dim)
        elif fn is guidance.tilted_sample:
            kw.update(n=ints(d, 0, 4), generator=torch.Generator().manual_seed(41), dtype=fdtype(d), device="cpu",
                      max_proposals=10**6)
        else:
            kw.update(lim=(-4.0, 4.0), n=ints(d, 2, 20))
        return Call(fn, kw, {"model": cm})
    return make


KINDS["model"] = k_type("string", "model")
SPECS["diffedu.guidance.tilted_log_prob"] = spec(_tilted(guidance.tilted_log_prob), rows_of(), model="model", c="class",
                                                 w="nonneg", x="batch_d")
SPECS["diffedu.guidance.tilted_sample"] = spec(
    _tilted(guidance.tilted_sample), lambda out, call: like((call.kw["n"], call.kw["model"].dim), call.kw["dtype"])(out, call),
    model="model", c="class", w="nonneg", n="count", generator="generator", dtype="dtype", device="device",
    max_proposals="size")
SPECS["diffedu.guidance.tilted_density_grid"] = spec(
    _tilted(guidance.tilted_density_grid), lambda out, call: (finite(out), out[2].shape == (call.kw["n"],) * 2),
    model="model", c="class", w="nonneg", n=k_int(2, 2000),
    lim=lambda v, c, d: [Bad("reversed", (1.0, -1.0), ValueError), Bad("string", "abc", TypeError),
                         Bad("NaN", (math.nan, 1.0), ValueError)])


def measurement(d, D):
    m = ints(d, 1, D)
    return inverse.Measurement(array(d, (m, D)), array(d, (m,)), reals(d, 0.1, 1.0))


SPECS["diffedu.inverse.Measurement"] = spec(
    lambda d: (lambda D, m: Call(inverse.Measurement, {"A": array(d, (m, D)), "y": array(d, (m,)),
                                                       "noise_std": reals(d, 0.05, 2.0)}))(3, ints(d, 1, 3)),
    is_a(inverse.Measurement), A="array", y="array", noise_std="positive")
SPECS["diffedu.inverse.Measurement.simulate"] = spec(
    lambda d: (lambda D: Call(inverse.Measurement.simulate, {"A": array(d, (ints(d, 1, D), D)), "x0": array(d, (D,)),
                                                             "noise_std": reals(d, 0.05, 2.0),
                                                             "generator": torch.Generator().manual_seed(42)}))(ints(d, 1, 3)),
    is_a(inverse.Measurement), A="array", x0="array", noise_std="positive", generator="generator")


def _meas_call(method):
    def make(d):
        D = ints(d, 1, 3)
        m = measurement(d, D)
        if method == "posterior":
            return Call(m.posterior, {"prior": dist(d, D, ("gaussian", "mixture", "low_rank"))})
        return Call(getattr(m, method), {"x": batch(d, D=D)}, {"meas": m})
    return make


SPECS["diffedu.inverse.Measurement.tensors"] = spec(
    _meas_call("tensors"), lambda out, call: all(v.dtype == call.kw["x"].dtype for v in out),
    x=lambda v, c, d: [Bad("list", v.tolist(), TypeError), Bad("integer dtype", v.long(), TypeError)])
SPECS["diffedu.inverse.Measurement.log_likelihood"] = spec(_meas_call("log_likelihood"), rows_of(), x="batch_d")
SPECS["diffedu.inverse.Measurement.posterior"] = spec(_meas_call("posterior"), is_a(Distribution),
                                                      prior=k_type("string", "gaussian"))
SPECS["diffedu.inverse.SMCResult"] = spec(lambda d: Call(inverse.SMCResult, {"x": torch.zeros(1, 1), "ess": torch.ones(1),
                                                                             "resampled": 0}), is_a(inverse.SMCResult))


def _inverse_sampler(fn, extra=None):
    def make(d):
        D, p = ints(d, 1, 2), proc(d)
        g = gaussian_dist(d, D, singular=False)
        x = batch(d, D=D)
        kw = {"D": g.bind(p).denoiser, "process": p, "x": x, "ts": grid(d, p), "meas": measurement(d, D),
              "generator": torch.Generator().manual_seed(43), "callback": None}
        kw.update(extra(d) if extra else {})
        return Call(fn, kw, {"process": p, "B": x.shape[0]})
    return make


KINDS["meas"] = lambda v, c, d: [Bad("string", "y", TypeError), Bad("other dimension", inverse.Measurement(
    np.ones((1, v.dim + 1)), np.zeros(1), 1.0), ValueError)]
_INV_BAD = dict(D="field", process="process", x="batch", ts="grid", meas="meas", generator="generator", callback="callback")
SPECS["diffedu.inverse.dps"] = spec(_inverse_sampler(inverse.dps, lambda d: {"zeta": reals(d, 0.0, 1.0)}), like_x(),
                                    zeta="nonneg", **_INV_BAD)
SPECS["diffedu.inverse.pigdm"] = spec(
    _inverse_sampler(inverse.pigdm, lambda d: {"posterior_cov": d(st.sampled_from([None, 0.5])), "sampler": None}),
    like_x(), sampler="callable", **_INV_BAD)
SPECS["diffedu.inverse.twisted_smc"] = spec(
    _inverse_sampler(inverse.twisted_smc, lambda d: {"posterior_cov": d(st.sampled_from([None, 0.0, 0.5])),
                                                     "resample_ess": reals(d, 0.0, 1.0)}),
    is_a(inverse.SMCResult, lambda out, call: finite([out.x, out.ess])), resample_ess="unit", **_INV_BAD)


def _pigdm_denoiser(d):
    D, p = ints(d, 1, 2), proc(d)
    g = gaussian_dist(d, D, singular=False)
    x = batch(d, D=D)
    return Call(inverse.pigdm_denoiser, {"D": g.bind(p).denoiser, "process": p, "meas": measurement(d, D),
                                         "posterior_cov": d(st.sampled_from([None, 0.5]))},
                {"x": x, "t": time(d, p, positive=True, form="float")})


SPECS["diffedu.inverse.pigdm_denoiser"] = spec(
    _pigdm_denoiser, returns_field(lambda c: (c.ctx["x"], c.ctx["t"])), D="callable", process="process",
    meas=lambda v, c, d: [Bad("string", "y", TypeError)],  # its dimension is checked against x when called
    posterior_cov=lambda v, c, d: [Bad("string", "0.5", TypeError), Bad("negative", -1.0, ValueError)],
    bad_with={"posterior_cov": {}})


def _red_diff(d):
    D, p = ints(d, 1, 2), proc(d)
    g = gaussian_dist(d, D, singular=False)
    x = batch(d, D=D)
    return Call(inverse.red_diff, {"D": g.bind(p).denoiser, "process": p, "x": x,
                                   "ts": [time(d, p, positive=True, form="float") for _ in range(ints(d, 1, 3))],
                                   "meas": measurement(d, D), "lam": reals(d, 0.0, 1.0), "lr": reals(d, 1e-3, 0.1),
                                   "betas": (0.9, 0.99), "generator": torch.Generator().manual_seed(44), "callback": None},
                {"process": p, "B": x.shape[0]})


KINDS["betas"] = lambda v, c, d: [Bad("strings", ("0.9", "0.99"), TypeError), Bad("above 1", (1.5, 0.9), ValueError),
                                  Bad("number", 0.9, TypeError)]
SPECS["diffedu.inverse.red_diff"] = spec(_red_diff, like_x(), D="field", process="process", x="batch", ts="times",
                                         meas="meas", lam="nonneg", lr="positive", betas="betas", generator="generator",
                                         callback="callback")


def _red_fixed(d):
    D, p = ints(d, 1, 2), proc(d)
    return Call(inverse.red_diff_fixed_point, {
        "prior": gaussian_dist(d, D, singular=False), "process": p,
        "ts": [time(d, p, positive=True, form="float") for _ in range(ints(d, 1, 3))], "meas": measurement(d, D),
        "lam": reals(d, 0.01, 1.0)}, {"process": p})  # lam = 0 with A of rank < D: no unique fixed point


SPECS["diffedu.inverse.red_diff_fixed_point"] = spec(
    _red_fixed, lambda out, call: like((call.kw["prior"].dim,), F64)(out, call), prior="gaussian", process="process",
    ts="times", meas="meas", lam="nonneg")


def _calibration(fn):
    def make(d):
        D = ints(d, 1, 2)
        # credible levels need a density at t = 0: a non-singular Gaussian (a low-rank one without
        # noise is refused with a ValueError that points at t_eps) or a mixture
        if fn is inverse.mode_weights or d(st.booleans()):
            g = mixture(d, D)
        else:
            g = gaussian_dist(d, D, singular=False)
        kw = {("mixture" if fn is inverse.mode_weights else "dist"): g, "x": batch(d, D=D, dtype=F64)}
        if fn is not inverse.mode_weights:
            kw.update(n=ints(d, 10, 50), generator=torch.Generator().manual_seed(45))
        if fn is inverse.hpd_coverage:
            kw["levels"] = (reals(d, 0.05, 0.95),)
        return Call(fn, kw)
    return make


SPECS["diffedu.inverse.credible_level"] = spec(_calibration(inverse.credible_level), rows_of(), dist="dist",
                                               x="batch_d", n=k_int(10), generator="generator")
SPECS["diffedu.inverse.hpd_coverage"] = spec(
    _calibration(inverse.hpd_coverage), lambda out, call: like((len(call.kw["levels"]),), F64)(out, call), dist="dist",
    x="batch_d", n=k_int(10), generator="generator",
    levels=lambda v, c, d: [Bad("string", "abc", TypeError), Bad("one", (1.0,), ValueError), Bad("NaN", (math.nan,), ValueError)])
SPECS["diffedu.inverse.mode_weights"] = spec(
    _calibration(inverse.mode_weights), lambda out, call: like((call.kw["mixture"].K,), F64)(out, call),
    mixture=k_type("string", "mixture"), x="batch_d")


def _penalty(d):
    D, p = ints(d, 1, 2), proc(d)
    g = gaussian_dist(d, D, singular=False)
    return Call(fp.log_density_penalty, {"log_p": g.bind(p).log_prob, "process": p, "x0": batch(d, B=ints(d, 2, 4), D=D),
                                         "n": ints(d, 2, 4), "t_min": None, "method": "exact",
                                         "generator": torch.Generator().manual_seed(46)}, {"process": p})


SPECS["diffedu.fokker_planck.log_density_penalty"] = spec(
    _penalty, lambda out, call: like(())(out, call), log_p="callable", process="process", x0="batch", n="size2",
    t_min="time1_pos", method="choice", generator="generator")
SPECS["diffedu.gaussian_approx.noise_scale"] = spec(
    lambda d: Call(gapprox.noise_scale, {"target": gaussian_dist(d, ints(d, 1, 3)) if d(st.booleans())
                                         else tensor(d, (5, ints(d, 1, 3)))}),
    lambda out, call: isinstance(out, float) and math.isfinite(out) and out >= 0, target="target")


def _sde_path(d):
    D, p = ints(d, 1, 2), proc(d)
    g = gaussian_dist(d, D, singular=False)
    lo = time(d, p, positive=True, form="float")
    return Call(likelihood.sde_path_log_likelihood, {
        "D": g.bind(p).denoiser, "process": p, "x": batch(d, D=D),
        "ts": (torch.linspace(lo, p.t_max, ints(d, 2, 4), dtype=F64) if p.t_max - lo > 1e-6 * p.t_max
               else torch.tensor([lo * 0.5, lo], dtype=F64)),
        "prior": None, "generator": torch.Generator().manual_seed(47)}, {"process": p})


KINDS["ts_incr"] = lambda v, c, d: [Bad("decreasing", v.flip(0), ValueError), Bad("string", "abc", TypeError),
                                    Bad("NaN", _at(v, d, math.nan), ValueError), Bad("t = 0", torch.cat([v.new_zeros(1), v]), ValueError),
                                    Bad("above t_max", v + 2 * c.ctx["process"].t_max, ValueError),
                                    Bad("complex", v.to(torch.complex128), TypeError), Bad("2-D", v[None], ValueError)]
SPECS["diffedu.likelihood.sde_path_log_likelihood"] = spec(
    _sde_path, rows_of(), D="field", process="process", x="batch", ts="ts_incr", prior="prior", generator="generator")


def _sde_bias(d):
    D, p = ints(d, 1, 2), proc(d)
    g = dist(d, D, ("gaussian", "mixture"))
    return Call(likelihood.sde_path_bias, {"dist": g, "process": p, "x": batch(d, D=D),
                                           "t_start": time(d, p, positive=True, form="float") * 0.99,
                                           "n_time": ints(d, 2, 6), "n_hermite": ints(d, 2, 5)}, {"process": p})


SPECS["diffedu.likelihood.sde_path_bias"] = spec(
    _sde_bias, lambda out, call: like((call.kw["x"].shape[0],), F64)(out, call), dist="dist", process="process",
    x="batch_d", t_start="time1_pos", n_time=k_int(2), n_hermite=k_int(2, huge=True))


# --- additions of issues 15-20, second batch: few-step sampling, flow maps, time grids, ... ------------
from diffedu import few_step, flow_map, timegrids  # noqa: E402

SPECS["diffedu.categorical.masked_sampler_law"] = spec(
    lambda d: Call(categorical.masked_sampler_law, {"probs": probs(d, (ints(d, 1, 4),)), "steps": ints(d, 1, 4),
                                                    "bits": d(st.sampled_from([ints(d, 1, 6), 53]))}),
    _law_check, probs="probs", steps="size", bits=BITS)
SPECS["diffedu.conservativity.asymmetry_hutchinson"] = spec(
    lambda d: (lambda c: Call(conservativity.asymmetry_hutchinson, {**c.kw, "n_probes": ints(d, 1, 4),
                                                                    "generator": torch.Generator().manual_seed(48)}))(
        _cons_call(conservativity.asymmetry)(d)),
    rows_of(), field="field", x="batch", n_probes="size", generator="generator")
SPECS["diffedu.datasets.random_mixture"] = spec(
    lambda d: Call(datasets.random_mixture, {"K": ints(d, 1, 4), "D": ints(d, 1, 6), "seed": ints(d, 0, 1000)}),
    is_a(mixtures.GaussianMixture), K="size", D="size", seed="count")


def _mle(d):
    B, D = ints(d, 3, 8), ints(d, 1, 3)
    x = tensor(d, (B, D)) + torch.arange(B, dtype=F64)[:, None] * 1e-3  # distinct rows
    ref = d(st.booleans())
    return Call(dimension.mle_dimension, {"x": x, "k": ints(d, 2, B - 1), "reference": x.clone() + 0.5 if ref else None})


SPECS["diffedu.dimension.mle_dimension"] = spec(
    _mle, lambda out, call: (isinstance(out[0], float), out[1].shape == (len(call.kw["x"]),)),
    x="batch", k=(k_int(2), lambda v, c, d: [Bad("more than the points", 10**3, ValueError)]))


def _gauge_defect(d):
    D, p = ints(d, 2, 3), proc(d)
    g = gaussian_dist(d, D, singular=False)
    x = batch(d, D=D)
    return Call(gauge.gauge_defect, {"r": gauge.gauge_rotation(g, p), "score": g.bind(p).score, "x": x,
                                     "t": time(d, p, B=x.shape[0])})


SPECS["diffedu.gauge.gauge_defect"] = spec(_gauge_defect, rows_of(), r="field", score="field", x="batch")
SPECS["diffedu.gaussian_approx.ExplainedVariance"] = spec(
    lambda d: Call(gapprox.ExplainedVariance, {"ev": torch.ones(1), "se": torch.zeros(1)}), is_a(gapprox.ExplainedVariance))
SPECS["diffedu.gaussian_approx.explained_variance_se"] = spec(
    lambda d: (lambda c: Call(gapprox.explained_variance_se, {**c.kw, "n": ints(d, 2, 4), "repeats": ints(d, 2, 3)}, c.ctx))(
        _explained(d)),
    is_a(gapprox.ExplainedVariance, lambda out, call: finite([out.ev, out.se])), score="field", approx="field",
    dist="dist", process="process", ts="times", n="size", repeats="size2", generator="generator", dtype="dtype")
SPECS["diffedu.gaussian_approx.RMSDistance"] = spec(
    lambda d: Call(gapprox.RMSDistance, {"rms": 0.0, "se": 0.0}), is_a(gapprox.RMSDistance))
SPECS["diffedu.gaussian_approx.rms_distance"] = spec(
    lambda d: (lambda B, D: Call(gapprox.rms_distance, {"x": batch(d, B=B, D=D), "reference": batch(d, B=B, D=D)}))(
        ints(d, 2, 5), ints(d, 1, 3)),
    is_a(gapprox.RMSDistance, finite), x="batch", reference="batch_d")


def _dps_step(d):
    D, p = ints(d, 1, 2), proc(d)
    g = gaussian_dist(d, D, singular=False)
    x = batch(d, D=D)
    t = max(time(d, p, positive=True, form="float"), 2e-3)  # above the bad-noise cases' t_next = 1e-3
    return Call(inverse.dps_step, {"D": g.bind(p).denoiser, "process": p, "x": x, "t": t,
                                   "t_next": d(st.sampled_from([0.0, 0.5 * t])), "meas": measurement(d, D),
                                   "zeta": reals(d, 0.0, 1.0), "noise": batch(d, B=x.shape[0], D=D, dtype=x.dtype)},
                {"process": p, "B": x.shape[0]})


SPECS["diffedu.inverse.dps_step"] = spec(_dps_step, like_x(), D="field", process="process", x="batch", t="time1_pos",
                                         meas="meas", zeta="nonneg", noise="noise_like_x",
                                         bad_with={"noise": {"t_next": 1e-3}}, names={"t": ("t and t_next",)})
SPECS["diffedu.inverse.isotropic_posterior_var"] = spec(
    lambda d: (lambda p: Call(inverse.isotropic_posterior_var, {"variance": reals(d, 0.01, 4.0), "process": p},
                              {"t": time(d, p, form="float")}))(proc(d)),
    lambda out, call: callable(out) and math.isfinite(out(call.ctx["t"])), variance="positive", process="process")
SPECS["diffedu.likelihood.dequantise"] = spec(
    lambda d: Call(likelihood.dequantise, {"x": batch(d), "bin_width": reals(d, 0.01, 1.0),
                                           "generator": torch.Generator().manual_seed(49)}),
    like_x(), x="batch", bin_width="positive", generator="generator")
SPECS["diffedu.likelihood.bits_per_dim"] = spec(
    lambda d: Call(likelihood.bits_per_dim, {"log_p": tensor(d, (ints(d, 1, 4),), -10.0, 2.0), "dim": ints(d, 1, 64),
                                             "bin_width": reals(d, 0.01, 1.0)}),
    lambda out, call: like(tuple(call.kw["log_p"].shape), F64)(out, call), dim="size", bin_width="positive",
    log_p=lambda v, c, d: [Bad("string", "abc", TypeError), Bad("NaN", torch.tensor([math.nan]), ValueError),
                           Bad("complex", v.to(torch.complex128), TypeError)])


def _mixture_flow(kind, method):
    def make(d):
        D, p = ints(d, 1, 2), d(st.sampled_from([PROCESSES[0], PROCESSES[1], PROCESSES[4]]))
        g = dist(d, D, (kind,))
        x = batch(d, B=ints(d, 1, 2), D=D, dtype=F64)
        t0 = time(d, p, positive=True, form="float")
        kw = {"x": x, "process": p, "rtol": 1e-4, "atol": 1e-6}
        if method == "flow":
            kw.update(t_from=t0, t_to=d(st.sampled_from([0.0, 0.5 * t0])))
        else:
            kw["ts"] = [t0, 0.5 * t0]
        return Call(getattr(g, method), kw, {"process": p, "dist": g, "B": x.shape[0]})
    return make


for _key, _k in (("diffedu.mixtures.GaussianMixture", "mixture"), ("diffedu.mixtures.LowRankMixture", "low_rank")):
    SPECS[f"{_key}.flow"] = spec(_mixture_flow(_k, "flow"), like_x(), x="batch_d", process="process", t_from="real",
                                 t_to="real", rtol="positive", atol="positive")
    SPECS[f"{_key}.flow_path"] = spec(_mixture_flow(_k, "flow_path"), lambda out, call: like(
        (2,) + tuple(call.kw["x"].shape), F64)(out, call), x="batch_d", process="process", ts="times_any", rtol="positive",
        atol="positive")


def _flow_call(fn):
    def make(d):
        D, p = ints(d, 1, 2), d(st.sampled_from([PROCESSES[0], PROCESSES[1], PROCESSES[4]]))
        g = gaussian_dist(d, D, singular=False)
        x = batch(d, B=ints(d, 1, 2), D=D, dtype=F64)
        t0 = time(d, p, positive=True, form="float")
        kw = {"D": g.bind(p).denoiser, "process": p, "x": x, "rtol": 1e-4, "atol": 1e-6, "method": "RK45"}
        if fn is flow_map.pf_ode_path:
            kw["ts"] = [t0, 0.5 * t0, 0.0]
        else:
            kw.update(t_from=t0, t_to=d(st.sampled_from([0.0, 0.5 * t0])))
        if fn is flow_map.flow_jacobian:
            kw["delta"] = reals(d, 1e-4, 1e-2)
        return Call(fn, kw, {"process": p, "B": x.shape[0]})
    return make


_FLOW_BAD = dict(D="field", process="process", x="batch", rtol="positive", atol="positive", method="choice")
SPECS["diffedu.flow_map.pf_ode_path"] = spec(_flow_call(flow_map.pf_ode_path), lambda out, call: like(
    (3,) + tuple(call.kw["x"].shape), F64)(out, call), ts="times_any", **_FLOW_BAD)
SPECS["diffedu.flow_map.pf_ode_flow"] = spec(_flow_call(flow_map.pf_ode_flow), like_x(), t_from="real", t_to="real",
                                             **_FLOW_BAD)
SPECS["diffedu.flow_map.flow_jacobian"] = spec(
    _flow_call(flow_map.flow_jacobian), lambda out, call: like(
        (call.kw["x"].shape[0],) + (call.kw["x"].shape[1],) * 2, F64)(out, call), t_from="real", t_to="real",
    delta="positive", **_FLOW_BAD)


def _flow_terms(d):
    B, D, T = ints(d, 1, 3), ints(d, 1, 2), ints(d, 1, 3)
    p = proc(d)
    g = gaussian_dist(d, D, singular=False)
    return Call(flow_map.flow_map_terms, {"F": g.bind(p).denoiser, "x0": batch(d, B=B, D=D, dtype=F64),
                                          "paths": tensor(d, (B, T, D)), "times": tensor(d, (T,), 0.1, 0.9),
                                          "k": torch.tensor([ints(d, 0, T - 1) for _ in range(B)])})


KINDS["indices"] = lambda v, c, d: [Bad("float", v.double(), ValueError), Bad("out of range", v + 10, ValueError),
                                    Bad("list", v.tolist(), TypeError)]
SPECS["diffedu.flow_map.flow_map_terms"] = spec(
    _flow_terms, rows_of("x0"), F="field", x0="batch", k="indices",
    paths=lambda v, c, d: [Bad("list", v.tolist(), TypeError), Bad("wrong shape", v[:, :, :0], ValueError),
                           Bad("NaN", _at(v, d, math.nan), ValueError)],
    times=lambda v, c, d: [Bad("list", v.tolist(), TypeError), Bad("wrong length", torch.cat([v, v]), ValueError)])


def _consistency(d):
    call = _sampler_call(flow_map.consistency_sampler)(d)
    p = call.kw["process"]
    ts = processes.time_grid(p, ints(d, 1, 3))
    return Call(flow_map.consistency_sampler, {"F": call.kw["D"], "process": p, "x": call.kw["x"], "ts": ts,
                                               "generator": call.kw["generator"], "callback": None}, call.ctx)


SPECS["diffedu.flow_map.consistency_sampler"] = spec(
    _consistency, like_x(), F="field", process="process", x="batch", generator="generator", callback="callback",
    ts=lambda v, c, d: k_grid(v, c, d) + [Bad("not ending at 0", v[:-1] if len(v) > 2 else v[:1], ValueError)],
    names={"F": ("D",)})
SPECS["diffedu.few_step.evodiff"] = spec(_sampler_call(few_step.evodiff), like_x(), **_SAMPLER_BAD)
SPECS["diffedu.few_step.five_step_grid"] = spec(
    lambda d: (lambda nn: Call(few_step.five_step_grid, {"process": proc(d), "n": ints(d, 1, 6), "rho_noise": reals(d, 1.0, 8.0),
                                                         "n_noise": nn, "stop": ints(d, 1, nn - 1),
                                                         "rho_time": reals(d, 0.5, 3.0)}))(ints(d, 2, 10)),
    lambda out, call: like((call.kw["n"] + 1,), F64)(out, call), process="process", n="size", rho_noise="positive",
    n_noise="size2", stop="size", rho_time="positive")


def _grid_logits(d):
    p = proc(d)
    return Call(timegrids.grid_logits, {"process": p, "ts": processes.time_grid(p, ints(d, 2, 5)), "teleport": False},
                {"process": p})


SPECS["diffedu.timegrids.grid_logits"] = spec(
    _grid_logits, lambda out, call: like((len(call.kw["ts"]) - 2,), F64)(out, call), process="process",
    ts=lambda v, c, d: k_grid(v, c, d) + [Bad("not from t_max", v[1:], ValueError)])
SPECS["diffedu.timegrids.grid_from_logits"] = spec(
    lambda d: (lambda p: Call(timegrids.grid_from_logits, {"process": p, "logits": tensor(d, (ints(d, 1, 4),)),
                                                           "t_eps": None, "teleport": False}, {"process": p}))(proc(d)),
    lambda out, call: (like((len(call.kw["logits"]) + 2,), F64)(out, call), bool((out[1:] < out[:-1]).all())),
    process="process", t_eps="time1_pos",
    logits=lambda v, c, d: [Bad("string", "abc", TypeError), Bad("NaN", _at(v, d, math.nan), ValueError),
                            Bad("complex", v.to(torch.complex128), TypeError), Bad("empty", v[:0], ValueError)])


def _grid_errors(d):
    D, p = ints(d, 1, 2), proc(d)
    g = gaussian_dist(d, D, singular=False)
    x = batch(d, D=D, dtype=F64)
    return Call(timegrids.grid_errors, {"sampler": samplers.ddim, "D": g.bind(p).denoiser, "process": p, "x": x,
                                        "ts": processes.time_grid(p, ints(d, 1, 3)), "reference": torch.zeros_like(x),
                                        "teleport": None, "sampler_kw": None}, {"process": p})


SPECS["diffedu.timegrids.grid_errors"] = spec(
    _grid_errors, lambda out, call: like((len(call.kw["x"]),), F64)(out, call), sampler="callable", x="batch",
    reference="batch_d", teleport=k_type("string", "G"))


def _optimise(d):
    D, p = ints(d, 1, 2), proc(d)
    g = gaussian_dist(d, D, singular=False)
    x = batch(d, D=D, dtype=F64)
    return Call(timegrids.optimise_time_grid, {
        "sampler": samplers.ddim, "D": g.bind(p).denoiser, "process": p, "n_steps": ints(d, 3, 4), "x": x,
        "reference": torch.zeros_like(x), "teleport": None, "init": "lambda", "t_eps": None,
        "objective": d(st.sampled_from(["mean", "rms", "median", "p90"])), "generations": ints(d, 0, 1),
        "population": ints(d, 1, 2), "parents": 1, "step": 0.5, "shrink": 0.7, "polish": ints(d, 0, 3),
        "sampler_kw": None, "generator": torch.Generator().manual_seed(51)}, {"process": p})


SPECS["diffedu.timegrids.optimise_time_grid"] = spec(
    _optimise, is_a(timegrids.GridFit, lambda out, call: finite([out.ts, out.history])), sampler="callable",
    D="callable", process="process", n_steps=k_int(3), x="batch", reference="batch_d", objective="choice",
    generations="count", population="size", parents="size", step="positive", shrink="open_unit", polish="count",
    generator="generator", t_eps="time1_pos", teleport=k_type("string", "G"),
    sampler_kw=lambda v, c, d: [Bad("list", [1], TypeError)])
SPECS["diffedu.timegrids.GridFit"] = spec(lambda d: Call(timegrids.GridFit, {
    "ts": torch.ones(2), "error": 0.0, "history": torch.zeros(1), "evaluations": 0}), is_a(timegrids.GridFit))


def _denoiser_speed(d):
    D, p = ints(d, 1, 2), proc(d)
    g = gaussian_dist(d, D, singular=False)
    T = ints(d, 2, 4)
    ts = processes.time_grid(p, T)[:-1][:T]
    return Call(timegrids.denoiser_speed, {"D": g.bind(p).denoiser, "process": p,
                                           "path": tensor(d, (len(ts), ints(d, 1, 3), D)), "ts": ts}, {"process": p})


SPECS["diffedu.timegrids.denoiser_speed"] = spec(
    _denoiser_speed, lambda out, call: like((len(call.kw["ts"]) - 1,), F64)(out, call), D="field", process="process",
    ts="times", path=lambda v, c, d: [Bad("list", v.tolist(), (TypeError, ValueError)), Bad("2-D", v[0], ValueError),
                                      Bad("NaN", _at(v, d, math.nan), ValueError)])


def _flow_map_loss(d):
    p = proc(d)
    T = ints(d, 1, 3)
    return Call(training.flow_map_loss, {"process": p, "times": tensor(d, (T,), 0.1, 0.9) * p.t_max}, {"process": p})


def _check_fm_loss(out, call):
    T, D = len(call.kw["times"]), 2
    model = nets.ScoreMLP(call.kw["process"], D, hidden=4, depth=1, param="denoiser").double()
    x0 = torch.zeros(3, D, dtype=F64)
    finite(out(model, x0, torch.zeros(3, T, D, dtype=F64), generator=torch.Generator().manual_seed(0)))


SPECS["diffedu.training.flow_map_loss"] = spec(
    _flow_map_loss, _check_fm_loss, process="process",
    times=lambda v, c, d: [Bad("list", v.tolist(), TypeError), Bad("t = 0", torch.cat([v.new_zeros(1), v]), ValueError),
                           Bad("NaN", _at(v, d, math.nan), ValueError), Bad("2-D", v[None], ValueError)])


# --- additions of issue 18: uniform-noise discrete diffusion, flow matching; hodge.gradient_part ---------
from diffedu import flow_matching  # noqa: E402
from diffedu.discrete import uniform as du  # noqa: E402


def _probs_rows(out, call, V=None, shape=None):
    """A finite float64 tensor of laws over the last axis (rows sum to 1)."""
    finite(out)
    assert out.dtype == F64, out.dtype
    if shape is not None:
        assert tuple(out.shape) == tuple(shape), (tuple(out.shape), tuple(shape))
    assert bool((out >= -1e-12).all()) and bool(((out.sum(-1) - 1).abs() < 1e-8).all())


def _uni_ctx(d, x=True, t=True):
    dist_ = seq_dist(d)
    kw = {"schedule": schedule(d)}
    if x:
        kw["x"] = tokens(d, dist_.V, L=dist_.L)
    if t:
        kw["t"] = reals(d, 0.05, 0.95)
    return dist_, kw


SPECS["diffedu.discrete.uniform.uniform_kernel"] = spec(
    lambda d: (lambda V: Call(du.uniform_kernel, {"schedule": schedule(d), "t": reals(d, 0.0, 1.0), "vocab_size": V},
                              {"V": V}))(ints(d, 2, 5)),
    lambda out, call: _probs_rows(out, call), schedule="schedule", t="unit_time", vocab_size="size2")


def _uniform_tokens(d):
    V = ints(d, 2, 4)
    x0 = tokens(d, V)
    t = reals(d, 0.0, 1.0) if d(st.booleans()) else tensor(d, (x0.shape[0],), 0.0, 1.0)
    return Call(du.uniform_tokens, {"x0": x0, "t": t, "schedule": schedule(d), "vocab_size": V,
                                    "generator": torch.Generator().manual_seed(51)}, {"V": V, "B": x0.shape[0]})


SPECS["diffedu.discrete.uniform.uniform_tokens"] = spec(
    _uniform_tokens, lambda out, call: (out.shape == call.kw["x0"].shape and out.dtype == torch.long
                                        and bool((out >= 0).all()) and bool((out < call.kw["vocab_size"]).all())),
    x0="tokens0", t="unit_time_b", schedule="schedule", vocab_size="size2", generator="generator")


def _uniform_marginal(d):
    dist_, kw = _uni_ctx(d, x=False)
    return Call(du.uniform_marginal, {"dist": dist_, **kw}, {"V": dist_.V})


SPECS["diffedu.discrete.uniform.uniform_marginal"] = spec(
    _uniform_marginal, lambda out, call: _probs_rows(out, call, shape=(call.kw["dist"].V ** call.kw["dist"].L,)),
    dist=k_type("string", "table"), t="unit_time", schedule="schedule")


def _uniform_factory(fn):
    def make(d):
        dist_, kw = _uni_ctx(d)
        return Call(fn, {"dist": dist_, "schedule": kw["schedule"]}, {"V": dist_.V, "x": kw["x"], "t": kw["t"]})
    return make


def _check_predictor(out, call):
    assert callable(out)
    x = call.ctx["x"]
    _probs_rows(out(x, call.ctx["t"]), call, shape=tuple(x.shape) + (call.ctx["V"],))


for _fn in (du.uniform_denoiser, du.uniform_loo, du.absorbing_denoiser):
    SPECS[f"diffedu.discrete.uniform.{_fn.__name__}"] = spec(_uniform_factory(_fn), _check_predictor,
                                                             dist=k_type("string", "table"), schedule="schedule")


def _uniform_on_probs(fn, extra=None):
    def make(d):
        dist_, kw = _uni_ctx(d)
        kw["probs"] = du.uniform_denoiser(dist_, kw["schedule"])(kw["x"], kw["t"])
        kw.update(extra(d, kw) if extra else {})
        return Call(fn, kw, {"V": dist_.V, "B": kw["x"].shape[0]})
    return make


KINDS["unit_time1"] = lambda v, c, d: [b for b in k_unit_time(v, c, d) if b.label != "above 1 in a tensor"]
KINDS["token_law"] = lambda v, c, d: [Bad("list", v.tolist(), TypeError), Bad("NaN", _at(v, d, math.nan), ValueError),
                                      Bad("negative", -v, ValueError), Bad("wrong V", v[..., :1], ValueError),
                                      Bad("long dtype", v.long(), TypeError)]
KINDS["seq_x0"] = lambda v, c, d: KINDS["tokens0"](v, c, d) + [Bad("wrong length", torch.cat([v, v], 1), ValueError)]
_UNI_BAD = dict(probs="token_law", x="seq_x0", t="unit_time", schedule="schedule")
for _fn in (du.loo_from_denoiser, du.denoiser_from_loo):
    SPECS[f"diffedu.discrete.uniform.{_fn.__name__}"] = spec(
        _uniform_on_probs(_fn), lambda out, call: _probs_rows(out, call, shape=call.kw["probs"].shape), **_UNI_BAD)
SPECS["diffedu.discrete.uniform.uniform_ratios"] = spec(
    _uniform_on_probs(du.uniform_ratios, lambda d, kw: {"param": d(st.sampled_from(du.PARAMS))}),
    lambda out, call: (finite(out), tuple(out.shape) == tuple(call.kw["probs"].shape), bool((out >= 0).all())),
    param="choice", **_UNI_BAD)
SPECS["diffedu.discrete.uniform.uniform_step_probs"] = spec(
    _uniform_on_probs(du.uniform_step_probs, lambda d, kw: {"s": kw["t"] * reals(d, 0.0, 0.99),
                                                            "param": d(st.sampled_from(du.PARAMS))}),
    lambda out, call: _probs_rows(out, call, shape=call.kw["probs"].shape), param="choice",
    s=lambda v, c, d: [Bad("string", "0.1", TypeError), Bad("NaN", math.nan, ValueError), Bad("after t", 0.999, ValueError)],
    **_UNI_BAD)


def _predictor(d, dist_, sched):
    param = d(st.sampled_from(du.PARAMS))
    return (du.uniform_denoiser if param == "denoiser" else du.uniform_loo)(dist_, sched), param


def _uniform_elbo(d):
    dist_, kw = _uni_ctx(d, x=False, t=False)
    pred, param = _predictor(d, dist_, kw["schedule"])
    return Call(du.uniform_elbo, {"predictor": pred, "x0": tokens(d, dist_.V, L=dist_.L), "schedule": kw["schedule"],
                                  "vocab_size": dist_.V, "param": param, "n_t": ints(d, 4, 8)}, {"V": dist_.V})


SPECS["diffedu.discrete.uniform.uniform_elbo"] = spec(
    _uniform_elbo, lambda out, call: (like((call.kw["x0"].shape[0],), F64)(out, call), bool((out <= 1e-9).all())),
    predictor="callable", x0="tokens0", schedule="schedule", vocab_size="size2", param="choice", n_t=k_int(4))


def _uniform_sampler(d):
    dist_, kw = _uni_ctx(d, t=False)
    pred, param = _predictor(d, dist_, kw["schedule"])
    return Call(du.sample_uniform_stepwise, {"predictor": pred, "x": kw["x"], "vocab_size": dist_.V,
                                             "schedule": kw["schedule"], "steps": ints(d, 1, 4), "param": param,
                                             "generator": torch.Generator().manual_seed(52)}, {"V": dist_.V})


SPECS["diffedu.discrete.uniform.sample_uniform_stepwise"] = spec(
    _uniform_sampler, lambda out, call: (out.shape == call.kw["x"].shape and out.dtype == torch.long
                                         and bool((out >= 0).all()) and bool((out < call.kw["vocab_size"]).all())),
    predictor="callable", x="tokens0", vocab_size="size2", schedule="schedule", steps="size", param="choice",
    generator="generator")


def _uniform_law(d):
    dist_, kw = _uni_ctx(d, x=False, t=False)
    pred, param = _predictor(d, dist_, kw["schedule"])
    return Call(du.uniform_stepwise_law, {"predictor": pred, "vocab_size": dist_.V, "length": dist_.L,
                                          "schedule": kw["schedule"], "steps": ints(d, 1, 3), "param": param},
                {"V": dist_.V})


SPECS["diffedu.discrete.uniform.uniform_stepwise_law"] = spec(
    _uniform_law, lambda out, call: _probs_rows(out, call, shape=(call.kw["vocab_size"] ** call.kw["length"],)),
    predictor="callable", vocab_size=k_int(2, huge=True), length=k_int(1, huge=True), schedule="schedule",
    steps="size", param="choice")


def _noise_posterior(d):
    dist_, kw = _uni_ctx(d)
    return Call(du.noise_posterior, {"dist": dist_, **kw}, {"V": dist_.V, "B": kw["x"].shape[0]})


SPECS["diffedu.discrete.uniform.noise_posterior"] = spec(
    _noise_posterior, lambda out, call: (like(tuple(call.kw["x"].shape), F64)(out, call),
                                         bool(((out >= -1e-12) & (out <= 1 + 1e-12)).all())),
    dist=k_type("string", "table"), x="seq_x0", t="unit_time", schedule="schedule")


# flow matching
def _fm_args(d, z=None):
    D, B = ints(d, 1, 3), ints(d, 1, 4)
    interp = d(st.sampled_from(list(INTERPOLANTS.values())))(reals(d, 0.0, 1.0) if z is None else 0.0)
    noisy = float(interp.gamma2(0.5)) > 0
    x0, x1 = batch(d, B=B, D=D, dtype=F64), batch(d, B=B, D=D, dtype=F64)
    t = reals(d, 0.05, 0.95) if d(st.booleans()) else tensor(d, (B,), 0.05, 0.95)
    return {"interpolant": interp, "x0": x0, "x1": x1, "t": t,
            "z": batch(d, B=B, D=D, dtype=F64) if noisy else None}, {"B": B}


KINDS["x1_like_x0"] = lambda v, c, d: k_batch_d(v, c, d) + [Bad("other rows", torch.cat([v, v]), ValueError)]
_FM_BAD = dict(interpolant=k_type("string", "linear"), x0="batch", x1="x1_like_x0", t="unit_time_b")
SPECS["diffedu.flow_matching.conditional_velocity"] = spec(
    lambda d: Call(flow_matching.conditional_velocity, *_fm_args(d)),
    lambda out, call: [like(tuple(call.kw["x0"].shape), F64)(v, call) for v in out], **_FM_BAD)
SPECS["diffedu.flow_matching.fm_terms"] = spec(
    lambda d: (lambda kw, ctx: Call(flow_matching.fm_terms, {"velocity": lambda x, t: -x, **kw}, ctx))(*_fm_args(d)),
    rows_of("x0"), velocity="field", **_FM_BAD)
SPECS["diffedu.flow_matching.ot_coupling"] = spec(
    lambda d: (lambda B, D: Call(flow_matching.ot_coupling, {"x0": batch(d, B=B, D=D, dtype=F64),
                                                             "x1": batch(d, B=B, D=D, dtype=F64)}, {"B": B}))(
        ints(d, 1, 5), ints(d, 1, 3)),
    lambda out, call: sorted(out.tolist()) == list(range(call.kw["x0"].shape[0])), x0="batch", x1="x1_like_x0")


def _fm_bridge(d):
    D = ints(d, 1, 2)
    ends = [dist(d, D, ("gaussian", "mixture")) for _ in range(2)]
    ends = [e if isinstance(e, mixtures.GaussianMixture) else gaussian.Gaussian(e.mean, e.cov + 0.1 * torch.eye(D, dtype=F64))
            for e in ends]
    return interpolants.GaussianMixtureInterpolant(interpolants.LinearInterpolant(reals(d, 0.0, 1.0)), *ends)


def _velocity_variance(d):
    b = _fm_bridge(d)
    x = batch(d, D=b.dim)
    return Call(flow_matching.velocity_variance, {"bridge": b, "x": x, "t": reals(d, 0.05, 0.95)}, {"B": x.shape[0]})


SPECS["diffedu.flow_matching.velocity_variance"] = spec(
    _velocity_variance, lambda out, call: (rows_of()(out, call), bool((out >= -1e-9).all())),
    bridge=k_type("string", "bridge"), x="batch_d", t="unit_time1")
SPECS["diffedu.flow_matching.fm_floor"] = spec(
    lambda d: Call(flow_matching.fm_floor, {"bridge": _fm_bridge(d), "n": ints(d, 200, 260), "t_min": 0.05, "t_max": 0.95,
                                            "generator": torch.Generator().manual_seed(53)}),
    lambda out, call: (finite(out), len(out) == 2, out[0] >= 0 and out[1] >= 0),
    bridge=k_type("string", "bridge"), n=k_int(200), t_min=k_real(0.0, 1.0), t_max=k_real(0.0, 1.0), generator="generator")
SPECS["diffedu.flow_matching.straightness"] = spec(
    lambda d: (lambda M: Call(flow_matching.straightness, {"velocity": lambda x, t: x @ M.to(x).T,
                                                           "x1": batch(d, B=ints(d, 2, 4), D=M.shape[0]), "steps": ints(d, 2, 6)}))(
        tensor(d, (ints(d, 1, 3),) * 2, -1.0, 1.0)),
    lambda out, call: (finite(out), len(out) == 3, out[0] >= 0), velocity="field", steps=k_int(2),
    x1=lambda v, c, d: [b for b in k_batch(v, c, d) if b.label != "no rows"] + [Bad("one path", v[:1], ValueError)])


def _fm_loss(d):
    I = d(st.sampled_from(list(INTERPOLANTS.values())))(reals(d, 0.0, 1.0))
    noisy = float(I.gamma2(0.5)) > 0
    return Call(training.flow_matching_loss, {"interpolant": I, "coupling": d(st.sampled_from(["independent", "ot"])),
                                              "t_min": reals(d, 0.01, 0.3) if noisy else reals(d, 0.0, 0.3)})


def _check_flow_loss(out, call):
    model = nets.VelocityMLP(2, hidden=4, depth=1, n_freq=1).double()
    finite(out(model, torch.zeros(3, 2, dtype=F64), None, generator=torch.Generator().manual_seed(0)))


SPECS["diffedu.training.flow_matching_loss"] = spec(_fm_loss, _check_flow_loss, interpolant=k_type("string", "linear"),
                                                    coupling="choice", t_min=k_real(0.0, 0.49))


def _velocity_mlp(d):
    return Call(nets.VelocityMLP, {"dim": ints(d, 1, 3), "hidden": ints(d, 1, 8), "depth": ints(d, 1, 2),
                                   "n_freq": ints(d, 0, 3), "generator": torch.Generator().manual_seed(54)})


SPECS["diffedu.nets.VelocityMLP"] = spec(_velocity_mlp, is_a(nets.VelocityMLP), dim="size", hidden="size", depth="size",
                                         n_freq="count", generator="generator")


def _vmlp_call(method):
    def make(d):
        m = _velocity_mlp(d)()
        m = m.double() if d(st.booleans()) else m
        x = batch(d, D=m.dim, dtype=m.freqs.dtype)
        t = reals(d, 0.0, 1.0) if d(st.booleans()) else tensor(d, (x.shape[0],), 0.0, 1.0, dtype=x.dtype)
        return Call(getattr(m, method), {"x": x, "t": t}, {"B": x.shape[0]})
    return make


KINDS["vel_t"] = lambda v, c, d: [Bad("numeric string", "0.5", TypeError), Bad("bool", True, TypeError),
                                  Bad("wrong length", torch.full((c.ctx["B"] + 1,), 0.5), ValueError),
                                  Bad("2-D", torch.full((c.ctx["B"], 1), 0.5), ValueError)]
for _m in ("velocity", "forward"):
    SPECS[f"diffedu.nets.VelocityMLP.{_m}"] = spec(_vmlp_call(_m), like_x(), x="net_x", t="vel_t")


def _sde_step(d):
    b = _fm_bridge(d)
    x = batch(d, D=b.dim, dtype=F64)
    t = reals(d, 0.1, 0.9)
    return Call(interpolants.sde_step, {"velocity": b.velocity, "score": b.score, "x": x, "t": t,
                                        "h": -reals(d, 0.0, 0.1), "eps": reals(d, 0.0, 1.0),
                                        "noise": batch(d, B=x.shape[0], D=b.dim, dtype=F64)}, {"B": x.shape[0]})


SPECS["diffedu.interpolants.sde_step"] = spec(
    _sde_step, like_x(), velocity="field", score="field", x="batch", noise="noise_like_x", eps="nonneg",
    t=lambda v, c, d: [Bad("string", "0.5", TypeError), Bad("NaN", math.nan, ValueError), Bad("above 1", 1.5, ValueError)],
    h=lambda v, c, d: [Bad("string", "-0.1", TypeError), Bad("NaN", math.nan, ValueError), Bad("past 0", -2.0, ValueError)],
    bad_with={"score": {"eps": 0.5}})


def _gradient_part(d):
    g = grid2d(d, 5)
    return Call(hodge.gradient_part, {"field": lambda y, t: -y, "grid": g, "log_p": lambda y, t: -0.5 * (y**2).sum(1),
                                      "dtype": fdtype(d)}, {"grid": g, "x": batch(d, D=2, dtype=F64)})


def _check_gradient_part(out, call):
    assert callable(out)
    like_x()(out(call.ctx["x"], 0.5), Call(None, {"x": call.ctx["x"]}))


SPECS["diffedu.hodge.gradient_part"] = spec(_gradient_part, _check_gradient_part, field="callable", grid="grid2d",
                                            log_p="callable", dtype="dtype")


def _rel_velocity_error(d):
    b = _fm_bridge(d)
    M = tensor(d, (b.dim, b.dim), -1.0, 1.0)
    return Call(flow_matching.relative_velocity_error, {"velocity": lambda x, t: x @ M.to(x).T, "bridge": b,
                                                        "t": reals(d, 0.05, 0.95), "n": ints(d, 10, 40),
                                                        "generator": torch.Generator().manual_seed(55)})


SPECS["diffedu.flow_matching.relative_velocity_error"] = spec(
    _rel_velocity_error, lambda out, call: (finite(out), len(out) == 2), velocity="field",
    bridge=k_type("string", "bridge"), t="unit_time1", n=k_int(10), generator="generator")


def _tilted_gaussian(d):
    D = ints(d, 1, 2)
    return Call(guidance.tilted_gaussian, {"cond": gaussian.Gaussian(array(d, (D,)), spd(d, D)),
                                           "uncond": gaussian.Gaussian(array(d, (D,)), spd(d, D)),
                                           "w": reals(d, 0.0, 1.0)})


SPECS["diffedu.guidance.tilted_gaussian"] = spec(
    _tilted_gaussian, is_a(gaussian.Gaussian), cond="gaussian", uncond="gaussian",
    w=lambda v, c, d: [Bad("string", "1", TypeError), Bad("NaN", math.nan, ValueError), Bad("negative", -1.0, ValueError)])


def _normal_angles(d):
    D, p = ints(d, 2, 3), proc(d)
    g = gaussian_dist(d, D, singular=False)
    x = g.sample(ints(d, 1, 3), generator=torch.Generator().manual_seed(56), dtype=F64)
    n = torch.randn(x.shape, generator=torch.Generator().manual_seed(57), dtype=F64)
    return Call(dimension.normal_space_angles, {"score": g.bind(p).score, "x": x, "t": time(d, p, positive=True, form="float"),
                                               "process": p, "normals": n / n.norm(dim=1, keepdim=True)},
                {"process": p, "B": x.shape[0]})


SPECS["diffedu.dimension.normal_space_angles"] = spec(
    _normal_angles, lambda out, call: [like((call.kw["x"].shape[0],))(v, call) for v in out] and all(
        bool(((v >= -1e-9) & (v <= 90 + 1e-9)).all()) for v in out),
    score="field", x="batch_d", t="time1_pos", process="process",
    normals=lambda v, c, d: [Bad("string", "abc", TypeError), Bad("NaN", _at(v, d, math.nan), ValueError),
                             Bad("other rows", torch.cat([v, v]), ValueError), Bad("1-D", v[0], ValueError)],
    names={"x": ("normals",)})  # x of another D disagrees with normals: either may be named


def _paired(d, positive):
    n = ints(d, 2, 6)
    lo = 0.01 if positive else -2.0
    a, b = tensor(d, (n,), lo, 2.0), tensor(d, (n,), lo, 2.0)
    if not positive:  # not both constant
        a[0] += 1.0
    return Call(metrics.paired_log_ratio if positive else metrics.mean_gap, {"a": a, "b": b})


KINDS["values"] = lambda v, c, d: [Bad("string", "abc", TypeError), Bad("NaN", _at(v, d, math.nan), ValueError),
                                   Bad("one value", v[:1], ValueError), Bad("2-D", v[None, None], ValueError)]
SPECS["diffedu.metrics.paired_log_ratio"] = spec(
    lambda d: _paired(d, True), lambda out, call: (finite(out), out[0] > 0, out[1] >= 0),
    a=lambda v, c, d: KINDS["values"](v, c, d) + [Bad("zero", v * 0, ValueError), Bad("other length", v[:-1] if len(v) > 2
                                                                                         else torch.cat([v, v]), ValueError)],
    b="values")
SPECS["diffedu.metrics.mean_gap"] = spec(lambda d: _paired(d, False), finite, a="values", b="values")


# === the registry and the tests ==================================================================
def core_modules():
    """diffedu and its public submodules, without the teaching and course layers."""
    mods = [diffedu]
    for info in pkgutil.walk_packages(diffedu.__path__, "diffedu."):
        parts = info.name.split(".")
        if parts[1] in ("teach", "course") or any(p.startswith("_") for p in parts[1:]):
            continue
        mods.append(importlib.import_module(info.name))
    return mods


#: Public classes that no ``__all__`` lists but that public functions return.
RETURNED_CLASSES = (Bound,)


def _methods(cls):
    """Public methods (functions, class- and static methods) that diffedu itself defines on cls."""
    out = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        owner = next(k for k in cls.__mro__ if name in k.__dict__)
        raw = owner.__dict__[name]
        if owner.__module__.startswith("diffedu.") and (inspect.isfunction(raw) or isinstance(raw, (classmethod, staticmethod))):
            out.append(name)
    return out


def public_callables() -> set:
    """``module.name`` for every callable in a core ``__all__`` (by its defining module), and
    ``module.Class.method`` for the public methods of every public class."""
    found, classes = set(), list(RETURNED_CLASSES)
    for mod in core_modules():
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if callable(obj):
                found.add(f"{obj.__module__}.{obj.__qualname__}")
                if inspect.isclass(obj):
                    classes.append(obj)
    for cls in classes:
        found.add(f"{cls.__module__}.{cls.__qualname__}")
        found.update(f"{cls.__module__}.{cls.__qualname__}.{m}" for m in _methods(cls))
    return found


#: Public callables found by :func:`public_callables`, by module (or class): names separated by spaces.
REGISTRY = {
    "diffedu._core": "Bound",
    "diffedu._core.Bound": "denoiser eps log_prob sample_marginal score",
    "diffedu.calculus": "divergence hutchinson_probes hutchinson_variance jacobian laplacian",
    "diffedu.categorical": ("entropy gumbel_max_probs masked_sampler_law masked_step_law "
                            "sample_categorical total_variation zipf"),
    "diffedu.conservativity": ("antisymmetric_part asymmetry asymmetry_hutchinson asymmetry_ratio "
                               "circle_loops circulation circulation_ratio curl_2d jacobian_at line_integral "
                               "linear_circulation path_dependence"),
    "diffedu.datasets": ("Digits checkerboard grid_mixture load_digits random_mixture ring sampler "
                         "subspace_gaussian swiss_roll two_gaussians two_moons"),
    "diffedu.diagnostics": "Report diagnose",
    "diffedu.diagnostics.Report": "beyond_floor summary",
    "diffedu.dimension": ("DimensionEstimate dimension_from_spectrum intrinsic_dimension mle_dimension "
                          "normal_space_angles normalised_spectrum"),
    "diffedu.discrete.evidence": "elbo elbo_integrand elbo_mc",
    "diffedu.discrete.sampling": ("first_hitting_survival first_hitting_time sample_first_hitting "
                                  "sample_stepwise stepwise_law"),
    "diffedu.discrete.schedules": ("CosineMask LinearMask MaskSchedule PowerMask all_masked check_schedule "
                                   "mask_tokens"),
    "diffedu.discrete.schedules.CosineMask": "alpha check_t d_alpha t_of_alpha",
    "diffedu.discrete.schedules.LinearMask": "alpha check_t d_alpha t_of_alpha",
    "diffedu.discrete.schedules.MaskSchedule": "alpha check_t d_alpha t_of_alpha",
    "diffedu.discrete.schedules.PowerMask": "alpha check_t d_alpha t_of_alpha",
    "diffedu.discrete.sequences": "SequenceDistribution sequence_chi2",
    "diffedu.discrete.sequences.SequenceDistribution": ("denoiser index log_prob marginal_denoiser marginals markov_chain "
                                                        "product_of_marginals sample"),
    "diffedu.few_step": "evodiff five_step_grid",
    "diffedu.flow_map": "consistency_sampler flow_jacobian flow_map_terms pf_ode_flow pf_ode_path",
    "diffedu.flows": ("denoiser_from_eps denoiser_from_score denoiser_from_velocity "
                      "eps_from_denoiser pf_ode_velocity reverse_sde_drift score_from_denoiser "
                      "velocity_from_denoiser"),
    "diffedu.fokker_planck": ("GapReport density_on_grid div grid_mesh laplacian log_density_penalty "
                              "log_density_residual ode_sde_gap perturb_score residual_rms score_residual "
                              "solve_fp_grid time_derivative"),
    "diffedu.gauge": ("affine_flow_moments gauge_defect gauge_flow_summary gauge_rotation "
                      "linear_gauge_defect plain_rotation rotated_scores rotation_matrix"),
    "diffedu.gaussian": "Gaussian cov_ellipse decision_time fit_gaussian rotated_2d",
    "diffedu.gaussian.Gaussian": ("bind condition denoiser eps flow flow_gains flow_path leading_share log_prob "
                                  "low_rank marginal_cov perturbation_share pf_ode_divergence sample "
                                  "sample_marginal score signal_fraction"),
    "diffedu.gaussian_approx": ("ExplainedVariance RMSDistance explained_variance explained_variance_se "
                                "gaussian_explained_variance noise_scale rms_distance teleport teleport_sweep"),
    "diffedu.grid_transport": ("GridSolve face_centres grid_hellinger grid_tv grid_w2 gronwall_bound "
                               "gronwall_terms sampler_density"),
    "diffedu.guidance": ("ClassConditional classifier_free_guidance classifier_guidance "
                         "tilted_density_grid tilted_gaussian tilted_log_prob tilted_sample"),
    "diffedu.guidance.ClassConditional": "classifier given log_classifier sample",
    "diffedu.hodge": ("Decomposition Grid2D decompose gradient_part grid_curl grid_divergence grid_jacobian "
                      "helmholtz_hodge_periodic relative_error weighted_norm"),
    "diffedu.hodge.Decomposition": "energy_split",
    "diffedu.hodge.Grid2D": "evaluate mesh points weights",
    "diffedu.interpolants": ("GaussianMixtureInterpolant Interpolant LinearInterpolant TrigInterpolant "
                             "ode_trajectory sde_step sde_trajectory"),
    "diffedu.interpolants.GaussianMixtureInterpolant": ("components drift log_prob responsibilities sample score velocity"),
    "diffedu.interpolants.Interpolant": "alpha beta d_alpha d_beta d_gamma2 gamma gamma2",
    "diffedu.interpolants.LinearInterpolant": "alpha beta d_alpha d_beta d_gamma2 gamma gamma2",
    "diffedu.interpolants.TrigInterpolant": "alpha beta d_alpha d_beta d_gamma2 gamma gamma2",
    "diffedu.flow_matching": ("conditional_velocity fm_floor fm_terms ot_coupling relative_velocity_error straightness "
                              "velocity_variance"),
    "diffedu.discrete.uniform": ("absorbing_denoiser denoiser_from_loo loo_from_denoiser noise_posterior "
                                 "sample_uniform_stepwise uniform_denoiser uniform_elbo uniform_kernel uniform_loo "
                                 "uniform_marginal uniform_ratios uniform_step_probs uniform_stepwise_law uniform_tokens"),
    "diffedu.inverse": ("Measurement SMCResult credible_level dps dps_step hpd_coverage "
                        "isotropic_posterior_var mode_weights pigdm pigdm_denoiser red_diff "
                        "red_diff_fixed_point twisted_smc"),
    "diffedu.inverse.Measurement": "log_likelihood posterior simulate tensors",
    "diffedu.langevin": "annealed_langevin gaussian_stationary_variance langevin_step",
    "diffedu.likelihood": "bits_per_dim dequantise log_likelihood sde_path_bias sde_path_log_likelihood",
    "diffedu.linear_gaussian": "ddpm_ancestral_moments denoiser_gain euler_maruyama_moments",
    "diffedu.memorisation": ("MemorisationBaseline MemorisationSweep effective_model_memorisation "
                             "empirical_fit_and_sample is_memorised memorisation_baseline "
                             "memorisation_sweep memorised_fraction mlp_fit_and_sample nn_distances "
                             "nn_ratio"),
    "diffedu.metrics": ("mean_gap median_bandwidth mmd2 moment_errors paired_log_ratio relative_score_error w2 "
                        "w2_noise_floor"),
    "diffedu.mixtures": "Empirical GaussianMixture LowRankMixture fit_gaussian_mixture",
    "diffedu.mixtures.Empirical": "bind denoiser eps log_prob sample sample_marginal score",
    "diffedu.mixtures.GaussianMixture": ("bind condition denoiser eps flow flow_path log_prob marginal responsibilities "
                                         "sample sample_marginal sample_with_labels score"),
    "diffedu.mixtures.LowRankMixture": ("bind condition denoiser eps flow flow_path log_prob responsibilities sample "
                                        "sample_marginal sample_with_labels score"),
    "diffedu.nets": "EnergyMLP ScoreMLP VelocityMLP train_dsm",
    "diffedu.nets.VelocityMLP": "forward velocity",
    "diffedu.nets.EnergyMLP": "denoiser eps forward log_prob score",
    "diffedu.nets.ScoreMLP": "denoiser eps forward score",
    "diffedu.processes": "EDM Linear Process VE VP VPCosine time_grid",
    "diffedu.processes.EDM": "alpha check_t coefs d_alpha d_sigma f g2 lam noise sigma snr t_of_lam",
    "diffedu.processes.Linear": "alpha check_t coefs d_alpha d_sigma f g2 lam noise sigma snr t_of_lam",
    "diffedu.processes.Process": "alpha check_t coefs d_alpha d_sigma f g2 lam noise sigma snr t_of_lam",
    "diffedu.processes.VE": "alpha check_t coefs d_alpha d_sigma f g2 lam noise sigma snr t_of_lam",
    "diffedu.processes.VP": "alpha beta check_t coefs d_alpha d_sigma f g2 lam noise sigma snr t_of_lam",
    "diffedu.processes.VPCosine": "alpha check_t coefs d_alpha d_sigma f g2 lam noise sigma snr t_of_lam",
    "diffedu.samplers": ("ddim ddpm_ancestral dpmpp_2m dpmpp_3m euler euler_maruyama heun multistep3 "
                         "predictor_corrector trajectory"),
    "diffedu.score_matching": ("ScoreMatchingGap dsm_constant dsm_floor dsm_terms esm_terms "
                               "posterior_cov_trace score_matching_gap"),
    "diffedu.subspace": ("LowRankDenoiser PhaseTransition SubspaceClustering assign_subspaces "
                         "distance_to_subspaces fit_subspace k_subspaces_step line_bases "
                         "match_subspaces phase_transition principal_angles random_bases "
                         "refit_subspaces sample_subspace_error sample_subspaces subspace_error "
                         "subspace_objective train_low_rank_denoiser"),
    "diffedu.subspace.LowRankDenoiser": "bases forward",
    "diffedu.subspace.SubspaceClustering": "fit predict residuals",
    "diffedu.symbolic": "drift_and_diffusion lambdify_t moment_odes ou_kernel schedule vp_kernel",
    "diffedu.timegrids": "GridFit denoiser_speed grid_errors grid_from_logits grid_logits optimise_time_grid",
    "diffedu.training": "TrainResult dsm_loss flow_map_loss flow_matching_loss sample_times train",
}

#: Abstract base classes: their methods raise NotImplementedError (Process's also need t_max); the
#: same methods are covered on every concrete subclass.
ABSTRACT = {"diffedu.processes.Process": "VP, VPCosine, VE, EDM and Linear",
            "diffedu.discrete.schedules.MaskSchedule": "LinearMask, CosineMask and PowerMask",
            "diffedu.interpolants.Interpolant": "LinearInterpolant and TrigInterpolant"}

#: Registered callables without a spec of their own, and why.
LEFT_OUT = {f"{cls}.{m}": f"abstract method; covered on {who}" for cls, who in ABSTRACT.items() for m in REGISTRY[cls].split()}


def registry() -> set:
    return {f"{group}.{name}" for group, names in REGISTRY.items() for name in names.split()}


def test_registry():
    """A public callable that appears or disappears must be added to (or removed from) REGISTRY,
    with a spec in SPECS or a reason in LEFT_OUT."""
    found, listed = public_callables(), registry()
    assert not found - listed, f"public callables missing from REGISTRY (add them and a spec): {sorted(found - listed)}"
    assert not listed - found, f"REGISTRY lists callables that are gone: {sorted(listed - found)}"
    assert not set(SPECS) & set(LEFT_OUT), sorted(set(SPECS) & set(LEFT_OUT))
    assert (set(SPECS) | set(LEFT_OUT)) == listed, (f"without a spec: {sorted(listed - set(SPECS) - set(LEFT_OUT))}; "
                                                    f"unknown specs: {sorted((set(SPECS) | set(LEFT_OUT)) - listed)}")


VALID = sorted(SPECS)
BAD = [(name, arg) for name in VALID for arg in SPECS[name].bad]


def _valid(name, profile):
    s = SPECS[name]

    @_settings(profile, "valid", s.examples, s.deadline)
    @given(st.data())
    def run(data):
        run_valid(s, data.draw)
    run()


def _bad(name, arg, profile):
    s = SPECS[name]

    @_settings(profile, "bad", s.examples, s.deadline)
    @given(st.data())
    def run(data):
        run_bad(s, arg, data.draw)
    run()


@pytest.mark.parametrize("name", VALID)
def test_valid(name):
    """A valid call returns finite results of the right shape and dtype."""
    _valid(name, "default")


@pytest.mark.parametrize("name, arg", BAD)
def test_bad(name, arg):
    """Every kind of bad value of the argument raises TypeError/ValueError naming it."""
    _bad(name, arg, "default")


@pytest.mark.slow
@pytest.mark.parametrize("name", VALID)
def test_valid_explore(name):
    _valid(name, "explore")


@pytest.mark.slow
@pytest.mark.parametrize("name, arg", BAD)
def test_bad_explore(name, arg):
    _bad(name, arg, "explore")
