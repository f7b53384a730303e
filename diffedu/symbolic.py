r"""SymPy derivations behind the processes: moment ODEs, the OU kernel, and g^2 from alpha, sigma.

For the linear SDE ``dx = f(t) x dt + g(t) dW`` started at ``x_0``, the conditional mean ``m``
and variance ``v`` of ``x_t`` obey (Ito; Sarkka and Solin 2019, eq. 6.2)

    m'(t) = f(t) m(t),         m(0) = x_0,
    v'(t) = 2 f(t) v(t) + g(t)^2,   v(0) = 0.

Solving them gives the transition kernel ``N(alpha_t x_0, sigma_t^2)`` of the forward process;
turning them around gives ``f = alpha'/alpha`` and ``g^2 = (sigma^2)' - 2 f sigma^2`` from a
schedule. Lesson 01 runs these derivations and checks them against :mod:`diffedu.processes`.
"""

from __future__ import annotations

import numbers

import sympy as sp

__all__ = ["t", "moment_odes", "ou_kernel", "vp_kernel", "drift_and_diffusion", "schedule",
           "lambdify_t"]

#: The time symbol used by every expression here.
t = sp.Symbol("t", nonnegative=True)


def _expr(value, name):
    """A SymPy expression from an expression or a number: ``TypeError`` for anything else (an
    object, a tensor); strings are parsed by SymPy, as ``sympify`` does."""
    try:
        return sp.sympify(value, strict=not isinstance(value, str))
    except (sp.SympifyError, TypeError, ValueError) as e:  # a tensor is a ValueError in sympify
        raise TypeError(f"{name} must be a SymPy expression or a number; got {type(value).__name__}") from e


def moment_odes(f, g2):
    r"""The ODEs of the conditional mean and variance of ``dx = f x dt + g dW``.

    f, g2: SymPy expressions in :data:`t`. Returns ``(m, v, eq_m, eq_v)`` with ``m, v`` the
    unknown functions of t and ``eq_m: m' = f m``, ``eq_v: v' = 2 f v + g2``.
    """
    f, g2 = _expr(f, "f"), _expr(g2, "g2")
    m, v = sp.Function("m"), sp.Function("v")
    eq_m = sp.Eq(m(t).diff(t), f * m(t))
    eq_v = sp.Eq(v(t).diff(t), 2 * f * v(t) + g2)
    return m, v, eq_m, eq_v


def _solve(f, g2, x0):
    m, v, eq_m, eq_v = moment_odes(f, g2)
    mean = sp.dsolve(eq_m, m(t), ics={m(0): x0}).rhs
    var = sp.dsolve(eq_v, v(t), ics={v(0): 0}).rhs
    return sp.simplify(mean), sp.simplify(var)


def ou_kernel(beta=None, x0=None):
    r"""Transition kernel of the Ornstein-Uhlenbeck process ``dx = -beta/2 x dt + sqrt(beta) dW``.

    beta: a positive constant (SymPy symbol ``beta`` by default). Returns ``(mean, var)`` with
    ``mean = x_0 exp(-beta t / 2)`` and ``var = 1 - exp(-beta t)``, found by ``sympy.dsolve``.
    """
    beta = sp.Symbol("beta", positive=True) if beta is None else _expr(beta, "beta")
    x0 = sp.Symbol("x_0", real=True) if x0 is None else _expr(x0, "x0")
    return _solve(-beta / 2, beta, x0)


def vp_kernel(beta_min=None, beta_max=None, x0=None):
    r"""Transition kernel of the VP SDE with ``beta(t) = beta_min + (beta_max - beta_min) t``.

    Returns ``(mean, var)``: ``mean = x_0 alpha_t`` with ``alpha_t = exp(-1/2 int_0^t beta)``
    and ``var = 1 - alpha_t^2``, matching :class:`diffedu.processes.VP`.
    """
    b0 = sp.Symbol("beta_min", positive=True) if beta_min is None else _expr(beta_min, "beta_min")
    b1 = sp.Symbol("beta_max", positive=True) if beta_max is None else _expr(beta_max, "beta_max")
    x0 = sp.Symbol("x_0", real=True) if x0 is None else _expr(x0, "x0")
    beta = b0 + (b1 - b0) * t
    return _solve(-beta / 2, beta, x0)


def drift_and_diffusion(alpha, sigma):
    r"""``f`` and ``g^2`` of the linear SDE whose kernel is ``N(alpha_t x_0, sigma_t^2)``.

    The mean ODE gives ``f = alpha'/alpha``; the variance ODE solved for ``g^2`` gives
    ``g^2 = (sigma^2)' - 2 f sigma^2``. alpha, sigma: SymPy expressions in :data:`t`.
    Returns ``(f, g2)``, simplified.
    """
    alpha, sigma = _expr(alpha, "alpha"), _expr(sigma, "sigma")
    g2 = sp.Symbol("g2")
    f = sp.simplify(sp.diff(alpha, t) / alpha)
    _, _, _, eq_v = moment_odes(f, g2)
    v = sp.Function("v")
    eq = eq_v.subs(v(t), sigma**2).doit()
    (sol,) = sp.solve(eq, g2)
    return f, sp.simplify(sol)


_SCHEDULE_PARAMS = {"VP": ("beta_min", "beta_max"), "VPCosine": ("s",), "VE": ("sigma_min", "sigma_max"),
                    "EDM": (), "Linear": ()}


def schedule(name: str, **params):
    r"""``(alpha_t, sigma_t)`` as SymPy expressions for a process named as in :mod:`diffedu.processes`.

    name: "VP", "VPCosine", "VE", "EDM" or "Linear"; params override the defaults of the
    matching class (VP: beta_min, beta_max; VPCosine: s; VE: sigma_min, sigma_max).
    """
    allowed = _SCHEDULE_PARAMS.get(name) if isinstance(name, str) else None
    if allowed is None:
        raise ValueError(f"name must be one of {tuple(_SCHEDULE_PARAMS)}; got {name!r}")
    for key, value in params.items():
        if key not in allowed:
            raise TypeError(f"schedule {name!r} takes the parameters {allowed or 'none'}; got {key!r}")
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, sp.Number)):
            raise TypeError(f"{key} must be a real number; got {type(value).__name__} {value!r}")
    R = sp.Rational
    if name == "VP":
        b0 = sp.nsimplify(params.get("beta_min", R(1, 10)))
        b1 = sp.nsimplify(params.get("beta_max", 20))
        alpha = sp.exp(-(b0 * t + (b1 - b0) * t**2 / 2) / 2)
        return alpha, sp.sqrt(1 - alpha**2)
    if name == "VPCosine":
        s = sp.nsimplify(params.get("s", R(8, 1000)))
        alpha = sp.cos(sp.pi / 2 * (t + s) / (1 + s)) / sp.cos(sp.pi / 2 * s / (1 + s))
        return alpha, sp.sqrt(1 - alpha**2)
    if name == "VE":
        smin = sp.nsimplify(params.get("sigma_min", R(1, 100)))
        smax = sp.nsimplify(params.get("sigma_max", 50))
        return sp.Integer(1), smin * sp.sqrt((smax / smin) ** (2 * t) - 1)
    if name == "EDM":
        return sp.Integer(1), t
    if name == "Linear":
        return 1 - t, t
    raise ValueError(f"name must be one of 'VP', 'VPCosine', 'VE', 'EDM', 'Linear'; got {name!r}")


def lambdify_t(expr):
    """A NumPy function of t for a SymPy expression in :data:`t` (constants broadcast)."""
    import numpy as np

    fn = sp.lambdify(t, _expr(expr, "expr"), "numpy")
    return lambda tt: np.broadcast_to(fn(np.asarray(tt, dtype=float)), np.shape(tt)).astype(float)
