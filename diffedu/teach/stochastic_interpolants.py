r"""Lesson 10 (stochastic interpolants): the paths-and-marginals plot, its sliders, and the
exercise checkers.

The maths is in the core: :mod:`diffedu.interpolants` (the interpolant coefficients, the exact
density, score and velocity of :class:`~diffedu.interpolants.GaussianMixtureInterpolant` between
Gaussian-mixture ends, and the ODE and SDE integrators), and :mod:`diffedu.mixtures` for the exact
law of the data's first coordinate (:meth:`~diffedu.mixtures.GaussianMixture.marginal`).
"""

from __future__ import annotations

import torch

from .. import interpolants as di
from ..mixtures import GaussianMixture
from ..processes import Linear
from . import plots, widgets
from .checks import Feedback, check_close, check_implementation

__all__ = ["plot_interpolant_paths", "interpolant_widget", "check_interpolant_velocity",
           "check_interpolant_variance", "check_sde_step"]

_F64 = torch.float64


def _check_data(rho0):
    if not isinstance(rho0, GaussianMixture) or rho0.dim != 2:
        raise TypeError(f"rho0 must be a two-dimensional diffedu.GaussianMixture; got {rho0!r}")
    return rho0


def plot_interpolant_paths(eps: float, a: float, *, rho0, rho1, n_paths: int = 12, n_hist: int = 1500,
                           steps: int = 100, seed: int = 0, lim=(-4.0, 4.0), axs=None):
    r"""Two panels for ``LinearInterpolant(a)`` (``gamma^2 = a t (1 - t)``) from rho1 to the data rho0.

    Left: ``n_paths`` paths of the backward SDE with noise level eps
    (:func:`diffedu.interpolants.sde_trajectory`, ``steps`` Euler-Maruyama steps) over the exact
    density of x_t at t = 0.5. Right: a histogram of the first coordinate of ``n_hist`` SDE
    samples at t = 0 against the exact first-coordinate law of rho0
    (:meth:`~diffedu.mixtures.GaussianMixture.marginal`). rho0: a 2-D
    :class:`~diffedu.mixtures.GaussianMixture`; rho1: a Gaussian or mixture of the same dimension.
    Returns the two Axes.
    """
    rho0 = _check_data(rho0)
    bridge = di.GaussianMixtureInterpolant(di.LinearInterpolant(a), rho0, rho1)
    g = torch.Generator().manual_seed(seed)
    x1 = rho1.sample(n_hist, generator=g, dtype=_F64)
    traj = di.sde_trajectory(bridge, x1, torch.linspace(1, 0, steps + 1, dtype=_F64), eps, generator=g)
    axs = plots._axs(axs, 2, (9.2, 3.6))
    u = torch.linspace(*lim, 120, dtype=_F64)
    X, Y = torch.meshgrid(u, u, indexing="xy")
    dens = bridge.log_prob(torch.stack([X.reshape(-1), Y.reshape(-1)], 1), 0.5).exp().reshape(X.shape)
    axs[0].contourf(X.numpy(), Y.numpy(), dens.numpy(), levels=12, cmap="Greys")
    for k in range(n_paths):
        axs[0].plot(traj[:, k, 0].numpy(), traj[:, k, 1].numpy(), lw=0.8, color=f"C{k % 10}")
        axs[0].plot(traj[-1, k, 0].numpy(), traj[-1, k, 1].numpy(), "k.", ms=4)
    axs[0].set_xlim(*lim)
    axs[0].set_ylim(*lim)
    axs[0].set_title(f"paths, eps = {eps:g}, gamma^2 = {a:g} t(1-t); shading: rho at t = 0.5", fontsize="small")
    xs = torch.linspace(*lim, 300, dtype=_F64)[:, None]
    pdf = rho0.marginal([0]).log_prob(xs, 0.0, Linear()).exp()  # at t = 0 every process gives rho0
    axs[1].hist(traj[-1, :, 0].numpy(), bins=40, density=True, color="C1", alpha=0.6, label="SDE samples at t = 0")
    axs[1].plot(xs[:, 0].numpy(), pdf.numpy(), "k-", label="exact rho_0")
    axs[1].set_xlabel("first coordinate")
    axs[1].legend(fontsize="small")
    return axs


def _draw_paths(eps, a, *, rho0, rho1):
    axs = plots.new_axes(2, figsize=(9.2, 3.6))
    return plot_interpolant_paths(eps, a, rho0=rho0, rho1=rho1, axs=axs)[0].figure


def interpolant_widget(rho0, rho1, *, eps: float = 0.5, a: float = 0.5):
    """Sliders: the SDE noise level eps and the interpolant's noise amplitude a, ``gamma^2 = a t (1 - t)``,
    over :func:`plot_interpolant_paths`."""
    _check_data(rho0)
    return widgets.interactive(
        _draw_paths,
        eps=widgets.float_slider(eps, 0.0, 3.0, 0.25, "eps (SDE noise)"),
        a=widgets.float_slider(a, 0.0, 2.0, 0.25, "gamma^2 / (t(1-t))"),
        rho0=rho0, rho1=rho1,
    )


# --- exercise checkers -----------------------------------------------------------------------
def check_interpolant_velocity(answer, bridge: di.GaussianMixtureInterpolant, x, t, *,
                               rtol: float = 1e-6) -> Feedback:
    r"""``answer`` (B, D) = the interpolant's velocity ``b(x, t)`` (:meth:`~diffedu.interpolants.GaussianMixtureInterpolant.velocity`)."""
    return check_close(answer, bridge.velocity(torch.as_tensor(x, dtype=_F64), t),
                       name=f"velocity at t={float(t):g}", rtol=rtol, atol=1e-9)


def check_interpolant_variance(answer, bridge: di.GaussianMixtureInterpolant, t, *,
                               rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = the variance of x_t for one-dimensional Gaussian ends: the covariance of the
    single pair (:meth:`~diffedu.interpolants.GaussianMixtureInterpolant.components`)."""
    _, _, cov, _, _ = bridge.components(t)
    if cov.shape != (1, 1, 1):
        raise ValueError(f"check_interpolant_variance needs one-dimensional Gaussian ends; got {bridge!r}")
    return check_close(answer, cov[0, 0, 0], name=f"Var[x_t] at t={float(t):g}", rtol=rtol)


def _sde_inputs(generator, dtype, shape):
    B, D = shape
    mu = torch.randn(D, generator=generator, dtype=dtype)
    return {"velocity": lambda x, t: -(x - mu) * (1 + t), "score": lambda x, t: -x / (1 + t) + torch.sin(x),
            "x": torch.randn(shape, generator=generator, dtype=dtype), "t": float(0.2 + 0.7 * torch.rand((), generator=generator)),
            "h": -float(0.005 + 0.05 * torch.rand((), generator=generator)),
            "eps": float(2 * torch.rand((), generator=generator)), "noise": torch.randn(shape, generator=generator, dtype=dtype)}


def check_sde_step(answer):
    r"""``answer(velocity, score, x, t, h, eps, noise)`` = one Euler-Maruyama step of the backward
    SDE with noise level eps from t to t + h (h < 0). Checked on fresh inputs against
    :func:`diffedu.interpolants.sde_step`."""
    return check_implementation(answer, di.sde_step, _sde_inputs, name="backward SDE step")
