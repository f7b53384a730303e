r"""Flow matching: learning the velocity of an interpolant by regression, couplings, and rectification.

Draw a data point x0 ~ rho_0 and an end point x1 ~ rho_1 (here a standard normal), pair them by a
coupling, and join them by an interpolant (:mod:`diffedu.interpolants`; data at t = 0):

    x_t = alpha(t) x0 + beta(t) x1 + gamma(t) z,      u = alpha'(t) x0 + beta'(t) x1 + gamma'(t) z.

The *conditional velocity* u is how fast this one path moves. The marginal velocity is its
conditional expectation, ``b(x, t) = E[u | x_t = x]`` (Albergo et al. 2023, Thm. 2.6), and for any
field v the square loss splits into a part that v can remove and a part it cannot:

    E |v(x_t, t) - u|^2 = E |v(x_t, t) - b(x_t, t)|^2 + E tr Cov[u | x_t]                  (1)

(expand around b; the cross term vanishes because E[u - b | x_t] = 0). So b is the unique
minimiser of the *conditional flow matching* loss ``E_t E |v(x_t, t) - u|^2`` (Lipman et al. 2023;
Liu et al. 2023, rectified flow; Albergo and Vanden-Eijnden 2023), and the loss of the exact b is
the floor ``E_t E tr Cov[u | x_t]`` no network goes below: the spread of the directions of all the
paths that cross x at time t. With Gaussian-mixture ends the inner covariance is exact (law of
total covariance over the pairs of components, :func:`velocity_variance`).

The coupling decides which x1 goes with which x0. *Independent* pairs give crossing paths, whose
averaged velocity bends them. A *minibatch optimal-transport* coupling (Tong et al. 2024; Pooladian
et al. 2023) pairs each minibatch by the exact OT assignment for the squared distance
(:func:`ot_coupling`, POT's network simplex), so paths cross less and the learned flow is straighter.
*Reflow* (Liu et al. 2023) trains a new flow on the pairs (x0, x1) that a trained flow produces
(x1 -> x0 by its ODE); those pairs never cross, so the new flow is straighter again, but it learns
the first flow's distribution, errors included. Straightness (:func:`straightness`, Liu et al.
eq. 3) measures how far the ODE's velocity strays from the straight line of its own end points;
a straight flow is solved exactly by one Euler step. Lesson 14.
"""

from __future__ import annotations

import math

import torch

from ._core import (as_real_tensor, check_batch, check_callable, check_generator, check_int, check_real,
                    shape_checked)
from .interpolants import GaussianMixtureInterpolant, Interpolant, ode_trajectory

__all__ = ["conditional_velocity", "fm_terms", "ot_coupling", "velocity_variance", "fm_floor", "straightness",
           "relative_velocity_error"]

_F64 = torch.float64


def _check_interpolant(interpolant):
    if not isinstance(interpolant, Interpolant):
        raise TypeError(f"interpolant must be a diffedu.interpolants.Interpolant (LinearInterpolant(a), "
                        f"TrigInterpolant(a)); got {type(interpolant).__name__}")
    return interpolant


def _times(t, like):
    """t (float, 0-d or (B,)) as a (B, 1) float64 column in [0, 1] for a batch like."""
    tt = as_real_tensor(t, "t", "a time in [0, 1] or a (B,) tensor of times")
    if tt.dim() > 1 or (tt.dim() == 1 and tt.shape[0] != like.shape[0]):
        raise ValueError(f"t must be a float, 0-d or ({like.shape[0]},); got shape {tuple(tt.shape)}")
    if torch.isnan(tt).any() or (tt < 0).any() or (tt > 1).any():
        raise ValueError("t must lie in [0, 1] (data at 0, the other end at 1)")
    return tt.expand(like.shape[0]).clone() if tt.dim() == 0 else tt


def _coefs(interpolant, t, like):
    """(alpha, beta, gamma, alpha', beta', gamma') as (B, 1) columns in like's dtype; gamma' is 0 where gamma = 0."""
    I = interpolant
    a, b, g = I.alpha(t), I.beta(t), I.gamma(t)
    da, db, dg2 = I.d_alpha(t), I.d_beta(t), I.d_gamma2(t)
    dg = torch.where(g > 0, dg2 / (2 * g.clamp(min=1e-300)), torch.zeros_like(g))
    return tuple(v.to(device=like.device, dtype=like.dtype)[:, None] for v in (a, b, g, da, db, dg))


def conditional_velocity(interpolant: Interpolant, x0, x1, t, z=None):
    r"""The point ``x_t = alpha x0 + beta x1 + gamma z`` and its velocity ``u = alpha' x0 + beta' x1 + gamma' z``.

    x0, x1 (and z when gamma > 0): (B, D); t: float, 0-d or (B,) in [0, 1]. Returns ``(x_t, u)``."""
    _check_interpolant(interpolant)
    x0 = check_batch(x0, name="x0")
    x1 = check_batch(x1, x0.shape[1], name="x1")
    if x1.shape != x0.shape:
        raise ValueError(f"x1 must have x0's shape {tuple(x0.shape)}; got {tuple(x1.shape)}")
    a, b, g, da, db, dg = _coefs(interpolant, _times(t, x0), x0)
    xt, u = a * x0 + b * x1, da * x0 + db * x1
    if z is not None:
        z = check_batch(z, x0.shape[1], name="z")
        xt, u = xt + g * z, u + dg * z
    elif bool((g > 0).any()):
        raise ValueError("this interpolant has gamma > 0: pass the latent noise z")
    return xt, u


def fm_terms(velocity, interpolant: Interpolant, x0, x1, t, z=None) -> torch.Tensor:
    r"""``|v(x_t, t) - u|^2`` per row: (B,), the conditional flow matching loss before averaging, eq. (1).

    velocity: a field ``v(x, t) -> (B, D)`` (t passed as a (B,) tensor). The draws are arguments, so
    two fields can be compared on the same ones and a learner's loss checked against this one."""
    check_callable(velocity, "velocity", "a velocity field v(x, t) -> (B, D)")
    xt, u = conditional_velocity(interpolant, x0, x1, t, z)
    tt = _times(t, xt).to(xt.dtype)
    v = shape_checked(velocity, "velocity")(xt, tt)
    return ((v - u) ** 2).sum(1)


def ot_coupling(x0, x1) -> torch.Tensor:
    r"""Minibatch optimal transport: the permutation p that minimises ``sum_i |x0_i - x1_{p(i)}|^2``: (B,) long.

    The exact assignment between the two point clouds (uniform weights, squared Euclidean cost) by
    POT's network simplex (``ot.emd``; Tong et al. 2024). Pair x0[i] with x1[p[i]]. x0, x1: (B, D)."""
    import ot  # POT; imported here so that importing diffedu does not need it

    x0 = check_batch(x0, name="x0")
    x1 = check_batch(x1, x0.shape[1], name="x1")
    if x1.shape[0] != x0.shape[0]:
        raise ValueError(f"x0 and x1 must have the same number of rows; got {x0.shape[0]} and {x1.shape[0]}")
    B = x0.shape[0]
    a = x0.detach().to("cpu", _F64).numpy()
    b = x1.detach().to("cpu", _F64).numpy()
    M = ot.dist(a, b)                                    # squared Euclidean
    w = torch.full((B,), 1.0 / B, dtype=_F64).numpy()
    plan = ot.emd(w, w, M)
    return torch.as_tensor(plan.argmax(1), dtype=torch.long, device=x0.device)


def velocity_variance(bridge: GaussianMixtureInterpolant, x, t) -> torch.Tensor:
    r"""``tr Cov[u | x_t = x]`` for the independent coupling of Gaussian-mixture ends: (B,).

    On the pair of components (i, j), (u, x_t) is jointly Gaussian: ``Cov u = a'^2 C0 + b'^2 C1 + g'^2 I``,
    ``Cov(u, x) = a a' C0 + b b' C1 + g g' I``, ``Cov x = Sigma``, so ``Cov[u | x, ij] = Cov u -
    Cov(u, x) Sigma^-1 Cov(x, u)`` with mean ``m_ij(x) = mu_ij' + Cov(u, x) Sigma^-1 (x - mu_ij)``; over the
    pairs (responsibilities r), ``Cov[u | x] = sum r (Cov_ij + m_ij m_ij^T) - b b^T`` (total covariance).
    x: (B, D); t: a float in (0, 1)."""
    if not isinstance(bridge, GaussianMixtureInterpolant):
        raise TypeError(f"bridge must be a GaussianMixtureInterpolant; got {type(bridge).__name__}")
    x = check_batch(x, bridge.dim)
    I = bridge.interpolant
    tt = check_real(t, "t", minimum=0.0, maximum=1.0)
    a, b = float(I.alpha(tt)), float(I.beta(tt))
    da, db = float(I.d_alpha(tt)), float(I.d_beta(tt))
    g2, dg2 = float(I.gamma2(tt)), float(I.d_gamma2(tt))
    dgdg = dg2**2 / (4 * g2) if g2 > 0 else 0.0                    # gamma'^2
    eye = torch.eye(bridge.dim, dtype=x.dtype)
    c0, c1 = bridge._c0.to(x.dtype), bridge._c1.to(x.dtype)
    cov_u = da**2 * c0 + db**2 * c1 + dgdg * eye                      # (K, D, D)
    _, mu, Sigma, dmu, half_dcov = bridge.components(tt, x.dtype)     # half_dcov = Cov(u, x)
    sol = torch.linalg.solve(Sigma, half_dcov.transpose(-1, -2))      # Sigma^-1 Cov(x, u)
    cond = cov_u - half_dcov @ sol                                    # (K, D, D)
    r = bridge.responsibilities(x, tt)                                # (B, K)
    m = dmu[None] + torch.einsum("kde,bke->bkd", half_dcov @ torch.linalg.inv(Sigma), x[:, None] - mu[None])
    bvec = (r[..., None] * m).sum(1)
    tr = (r * (torch.diagonal(cond, dim1=-2, dim2=-1).sum(-1)[None] + (m**2).sum(-1))).sum(1) - (bvec**2).sum(1)
    return tr


def fm_floor(bridge: GaussianMixtureInterpolant, *, n: int = 20000, t_min: float = 0.0, t_max: float = 1.0,
             generator=None) -> tuple[float, float]:
    r"""The flow matching loss of the exact velocity: ``E_t E_x tr Cov[u | x_t]``, the floor of (1).

    t uniform on ``[t_min, t_max]`` and x_t drawn from the interpolant, n draws in 5 independent
    replicates of 40 strata of t (one jittered t and n/200 points each; t kept a hair inside (0, 1),
    where the covariance may be singular); the inner covariance is exact (:func:`velocity_variance`).
    Returns ``(mean, standard error)``, the error from the spread of the replicates."""
    if not isinstance(bridge, GaussianMixtureInterpolant):
        raise TypeError(f"bridge must be a GaussianMixtureInterpolant; got {type(bridge).__name__}")
    n = check_int(n, "n", minimum=200)
    t_min = check_real(t_min, "t_min", minimum=0.0, maximum=1.0)
    t_max = check_real(t_max, "t_max", minimum=0.0, maximum=1.0)
    if not t_min < t_max:
        raise ValueError(f"t_min must be below t_max; got t_min = {t_min}, t_max = {t_max}")
    check_generator(generator, "cpu")
    m, reps = n // 200, []
    for _ in range(5):
        vals = []
        for k in range(40):
            u = (k + float(torch.rand((), generator=generator, dtype=_F64))) / 40
            t = min(max(t_min + (t_max - t_min) * u, 1e-6), 1 - 1e-6)
            x = bridge.sample(m, t, generator=generator)
            vals.append(float(velocity_variance(bridge, x, t).mean()))
        reps.append(sum(vals) / len(vals))
    r = torch.tensor(reps, dtype=_F64)
    return float(r.mean()), float(r.std() / math.sqrt(len(reps)))


def straightness(velocity, x1, *, steps: int = 100) -> tuple[float, float, torch.Tensor]:
    r"""How far the flow's paths are from straight lines: ``S = E int_0^1 |v(x_t, t) - (x_1 - x_0)|^2 dt``.

    Solves ``dx/dt = v`` from x1 at t = 1 to t = 0 (RK4, ``steps`` steps) and returns the mean over
    the paths of ``int_0^1 |v(x_t, t) - (x_1 - x_0)|^2 dt`` (trapezoid over the grid; Liu et al. 2023,
    eq. 3: 0 exactly when every path is a straight line travelled at constant speed), its standard
    error, and the end points x0 (B, D) (reflow trains on the pairs (x0, x1)). x1: (B, D), B >= 2
    (the standard error needs two paths)."""
    check_callable(velocity, "velocity", "a velocity field v(x, t) -> (B, D)")
    x1 = check_batch(x1, name="x1")
    if x1.shape[0] < 2:
        raise ValueError(f"x1 must hold at least 2 starting points (the standard error needs 2 paths); got {x1.shape[0]}")
    steps = check_int(steps, "steps", minimum=2)
    ts = torch.linspace(1, 0, steps + 1, dtype=_F64)
    traj = ode_trajectory(velocity, x1, ts)                          # (N+1, B, D)
    chord = traj[0] - traj[-1]                                       # x1 - x0 = dx/dt of the straight line
    dev = torch.stack([((velocity(traj[k], float(ts[k])) - chord) ** 2).sum(1) for k in range(steps + 1)])
    per_path = torch.trapezoid(dev, dx=1.0 / steps, dim=0)
    return float(per_path.mean()), float(per_path.std() / math.sqrt(per_path.numel())), traj[-1]


def relative_velocity_error(velocity, bridge: GaussianMixtureInterpolant, t: float, *, n: int = 4000,
                            generator=None) -> tuple[float, float]:
    r"""The rho_t-weighted relative error of a velocity field: ``sqrt(E|v - b|^2 / E|b|^2)``, x ~ rho_t.

    b is the bridge's exact marginal velocity (the minimiser of the flow matching loss for the
    independent coupling). n draws of x_t in 5 independent replicates; returns ``(error, standard
    error)``, the error of the pooled ratio from the spread of the replicates' ratios. velocity: a
    field ``v(x, t) -> (B, D)`` (called with float64 x and a float t); t a float in [0, 1]."""
    check_callable(velocity, "velocity", "a velocity field v(x, t) -> (B, D)")
    if not isinstance(bridge, GaussianMixtureInterpolant):
        raise TypeError(f"bridge must be a GaussianMixtureInterpolant; got {type(bridge).__name__}")
    t = check_real(t, "t", minimum=0.0, maximum=1.0)
    n = check_int(n, "n", minimum=10)
    check_generator(generator, "cpu")
    v_of = shape_checked(velocity, "velocity")
    num, den = [], []
    for _ in range(5):
        x = bridge.sample(n // 5, t, generator=generator)
        b = bridge.velocity(x, t)
        v = v_of(x, t).to(_F64)
        num.append(float(((v - b) ** 2).sum(1).mean()))
        den.append(float((b**2).sum(1).mean()))
    ratios = torch.tensor([math.sqrt(a / max(c, 1e-300)) for a, c in zip(num, den)], dtype=_F64)
    return math.sqrt(sum(num) / max(sum(den), 1e-300)), float(ratios.std() / math.sqrt(5))
