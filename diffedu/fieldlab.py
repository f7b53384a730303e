r"""Plots, widgets and cached models for lessons 11 (conservativity, gauge) and 12 (dimension).

Plain drawing functions (they take an optional ``ax`` and return it, never call ``plt.show()``)
and ipywidgets wrappers around them, following :mod:`diffedu.plotting` and
:mod:`diffedu.widgets`: the callback returns a fresh bare figure (pyplot never holds it), shown
because the ``interactive`` is built with ``auto_display=True``, so a test moves a slider and
checks that the plotted data changed.

Lesson 11 trains a free MLP score (:class:`~diffedu.nets.ScoreMLP`) and an energy-parameterised
one (:class:`~diffedu.nets.EnergyMLP`) on :func:`lesson11_data`. Training both takes about
a minute on a 2-core CPU, more than a lesson may run, so the weights are cached in
``data/lesson11_models.pt`` (float32 state dicts plus the training settings);
:func:`train_lesson11_models` regenerates them, and a slow test checks that a fresh training run
is as good as the cache.
"""

from __future__ import annotations

import math
import ipywidgets as W
import numpy as np
import torch

from . import fields as F
from . import plotting as P
from ._paths import data_path, writable_data_path
from .gaussian import Gaussian
from .processes import EDM, VP, Process, time_grid

__all__ = [
    "lesson11_data", "train_lesson11_models", "lesson11_models", "MODEL_FILE", "LESSON11_CONFIG",
    "plot_decomposition", "plot_cov_ellipse", "gauge_flow_summary", "plot_gauge_flows", "gauge_widget",
    "subspace_gaussian", "plot_spectra_vs_noise", "plot_spectrum", "dimension_widget",
]

MODEL_FILE = "lesson11_models.pt"
#: Settings of the cached lesson-11 models (changing them needs ``train_lesson11_models(save=True)``).
LESSON11_CONFIG = dict(k=6, radius=2.0, std=0.25, hidden=64, depth=3, steps=4000, batch_size=256, seed=0)

_SHOW = {"auto_display": True}  # interactive's options: display the returned (non-pyplot) figure
_SLIDER = dict(continuous_update=False, style={"description_width": "initial"},
               layout=W.Layout(width="420px"))


# --- lesson 11: the two trained models ------------------------------------------------------
def lesson11_data():
    """The data of lesson 11: a ring of 6 Gaussians (exact scores), and the VP process."""
    from .datasets import ring

    c = LESSON11_CONFIG
    return ring(c["k"], c["radius"], c["std"]), VP()


def _new_models(process, generator):
    from .nets import EnergyMLP, ScoreMLP

    c = LESSON11_CONFIG
    free = ScoreMLP(process, 2, hidden=c["hidden"], depth=c["depth"], generator=generator)
    energy = EnergyMLP(process, 2, hidden=c["hidden"], depth=c["depth"], generator=generator)
    return free, energy


def train_lesson11_models(*, save: bool = False):
    r"""Train the free and the energy model of lesson 11 by DSM (:func:`diffedu.nets.train_dsm`).

    Same seed, data and settings (:data:`LESSON11_CONFIG`) for both. ``save=True`` writes
    ``data/lesson11_models.pt``. About a minute on 2 CPU cores. Returns ``(free, energy)``.
    """
    from .nets import train_dsm

    c = LESSON11_CONFIG
    data, process = lesson11_data()
    gen = torch.Generator().manual_seed(c["seed"])
    free, energy = _new_models(process, gen)
    for model in (free, energy):
        g = torch.Generator().manual_seed(c["seed"] + 1)
        train_dsm(model, data.sample, steps=c["steps"], batch_size=c["batch_size"], generator=g)
        model.eval()
    if save:
        torch.save({"config": dict(c), "free": free.state_dict(), "energy": energy.state_dict()},
                   writable_data_path(MODEL_FILE))
    return free, energy


def lesson11_models():
    """The cached ``(free, energy)`` models of lesson 11 (float32, eval mode, no gradients kept)."""
    path = data_path(MODEL_FILE)
    state = torch.load(path, weights_only=True)
    if state["config"] != LESSON11_CONFIG:
        raise ValueError(f"{path} was trained with {state['config']}, not {LESSON11_CONFIG}: retrain it")
    _, process = lesson11_data()
    free, energy = _new_models(process, None)
    free.load_state_dict(state["free"])
    energy.load_state_dict(state["energy"])
    for m in (free, energy):
        m.eval()
        m.requires_grad_(False)
    return free, energy


# --- lesson 11: plots ------------------------------------------------------------------------
def plot_decomposition(dec: F.Decomposition, axs=None, *, stride: int = 5, titles=None):
    r"""Three panels: the field, its gradient part and the remainder, over contours of p.

    dec: a :class:`~diffedu.fields.Decomposition`. ``stride`` thins the arrows. Returns the axes.
    """
    if not isinstance(dec, F.Decomposition):
        raise TypeError(f"dec must be a diffedu.fields.Decomposition; got {type(dec).__name__}")
    axs = P.new_axes(3, figsize=(13.5, 4.2)) if axs is None else axs
    X, Y = (a.numpy() for a in dec.grid.mesh())
    p = dec.p.numpy()
    titles = titles or ("field", "gradient part grad(phi)", "remainder r, div(p r) = 0")
    sl = (slice(None, None, stride), slice(None, None, stride))
    for ax, V, title in zip(axs, (dec.field, dec.gradient, dec.remainder), titles):
        ax.contourf(X, Y, p, levels=12, cmap="Greys", alpha=0.6)
        v = V.numpy()
        ax.quiver(X[sl], Y[sl], v[..., 0][sl], v[..., 1][sl], color="C0")
        ax.set_title(title, fontsize="small")
        ax.set_aspect("equal")
    return axs


def plot_cov_ellipse(cov, ax, *, mean=(0.0, 0.0), n_std: float = 2.0, **line_kw):
    """The ``n_std``-standard-deviation ellipse of a 2-D covariance (2, 2) about ``mean``."""
    C = torch.as_tensor(cov, dtype=torch.float64)
    ev, U = torch.linalg.eigh(0.5 * (C + C.T))
    th = torch.linspace(0, 2 * math.pi, 121, dtype=torch.float64)
    circ = torch.stack([torch.cos(th), torch.sin(th)], 1) * ev.clamp_min(0).sqrt() * n_std
    pts = circ @ U.T + torch.as_tensor(mean, dtype=torch.float64)
    ax.plot(pts[:, 0].numpy(), pts[:, 1].numpy(), **line_kw)
    return ax


def _rotated_scores(gaussian, process, strength):
    from .flows import denoiser_from_score

    gauge = F.gauge_rotation(gaussian, process, strength)
    plain = F.plain_rotation(gaussian, process, strength)
    out = {"exact": lambda x, t: gaussian.score(x, t, process),
           "gauge": lambda x, t: gaussian.score(x, t, process) + gauge(x, t),
           "plain": lambda x, t: gaussian.score(x, t, process) + plain(x, t)}
    return out, {k: denoiser_from_score(s, process) for k, s in out.items()}


def gauge_flow_summary(gaussian, process, strength: float, *, t_end: float | None = None, rtol: float = 1e-6):
    r"""Final covariances of the PF-ODE run from ``p_T`` with the gauge-rotated and the plainly
    rotated score (:func:`~diffedu.fields.affine_flow_moments`, no samples), and the exact one.

    Returns ``{name: (cov (D, D), relative error against the exact marginal covariance)}`` at
    ``t_end`` (default: the time where sigma/alpha = 0.02).
    """
    from .flows import pf_ode_velocity

    t_end = float(process.t_of_lam(math.log(50.0))) if t_end is None else float(t_end)
    T = float(process.t_max)
    exact = gaussian.marginal_cov(t_end, process)
    _, dens = _rotated_scores(gaussian, process, strength)
    out = {"exact": (exact, 0.0)}       # the exact flow carries p_T to p_t by construction
    for name in ("gauge", "plain"):
        D = dens[name]
        _, C = F.affine_flow_moments(lambda x, t, D=D: pf_ode_velocity(D, process, x, t),
                                     gaussian.mean * process.alpha(T), gaussian.marginal_cov(T, process),
                                     T, t_end, rtol=rtol, atol=rtol * 1e-3)
        out[name] = (C, float((C - exact).norm() / exact.norm()))
    return out


def plot_gauge_flows(gaussian, process, strength: float, t: float, axs=None, *, n_paths: int = 12,
                     n_steps: int = 30, seed: int = 0, lim=(-3.0, 3.0)):
    r"""Lesson 11's gauge picture, three panels.

    1 and 2: the fields ``s + r`` at time t with r the gauge rotation (``-strength A s``) and the
    plain rotation (``strength A (x - m_t)``), over the density p_t. 3: PF-ODE paths (Heun,
    ``n_steps``) from the same starting points with the exact and the gauge-rotated score: the
    paths differ, and the final 2-sigma ellipses of the exact, gauge and plain flows, computed
    by :func:`gauge_flow_summary`, show that only the plain rotation changes the distribution.
    """
    from .samplers import heun, trajectory

    axs = P.new_axes(3, figsize=(14.0, 4.4)) if axs is None else axs
    scores, dens = _rotated_scores(gaussian, process, strength)
    for ax, name in zip(axs[:2], ("gauge", "plain")):
        P.plot_density_2d(gaussian, process, t, ax, lim=lim, n=80, cmap="Greys")
        P.plot_vector_field(scores[name], t, ax, lim=lim, n=13, color="C0" if name == "gauge" else "C3")
        ax.set_title(f"score + {name} rotation at t = {t:.3g}", fontsize="small")
    gen = torch.Generator().manual_seed(seed)
    x_T = gaussian.sample_marginal(n_paths, process.t_max, process, generator=gen, dtype=torch.float64)
    ts = time_grid(process, n_steps)
    ax = axs[2]
    for name, color, alpha in (("gauge", "C0", 0.6), ("exact", "0.2", 0.9)):
        P.plot_trajectories(trajectory(heun, dens[name], process, x_T, ts), ax, color=color, alpha=alpha)
    summary = gauge_flow_summary(gaussian, process, strength)
    for name, color, ls in (("exact", "k", "-"), ("gauge", "C0", "--"), ("plain", "C3", "-")):
        C, err = summary[name]
        plot_cov_ellipse(C, ax, mean=gaussian.mean, color=color, ls=ls, lw=1.6,
                         label=f"{name}: cov error {err:.1e}" if name != "exact" else "exact 2-sigma ellipse")
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    ax.legend(fontsize="x-small", loc="lower right")
    ax.set_title("PF-ODE paths (dark: exact, blue: gauge) and final ellipses", fontsize="small")
    return axs


def _draw_gauge(strength, t_frac, *, gaussian, process, lim):
    t = max(t_frac, 0.02) * process.t_max
    axs = plot_gauge_flows(gaussian, process, strength, t, lim=lim)
    return axs[0].figure


def gauge_widget(gaussian: Gaussian, process: Process, *, lim=(-3.0, 3.0), strength: float = 1.0):
    r"""Sliders for the rotation strength and ``t / t_max`` over :func:`plot_gauge_flows`."""
    if not isinstance(gaussian, Gaussian) or gaussian.dim != 2:
        raise TypeError("gaussian must be a two-dimensional diffedu.Gaussian")
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process; got {type(process).__name__}")
    return W.interactive(
        _draw_gauge, _SHOW,
        strength=W.FloatSlider(value=strength, min=0.0, max=3.0, step=0.25, description="rotation strength",
                               **_SLIDER),
        t_frac=W.FloatSlider(value=0.3, min=0.02, max=1.0, step=0.02, description="t / t_max", **_SLIDER),
        gaussian=W.fixed(gaussian), process=W.fixed(process), lim=W.fixed(tuple(lim)),
    )


# --- lesson 12: spectra and dimension -------------------------------------------------------
def subspace_gaussian(D: int, k: int, *, seed: int = 0, scale: float = 1.0) -> Gaussian:
    r"""A Gaussian on a random k-dimensional subspace of R^D: ``N(0, F F^T)`` with F (D, k) drawn
    from ``seed``, columns scaled so the tangent variances are of order ``scale^2``."""
    if not (isinstance(D, int) and isinstance(k, int) and 1 <= k <= D):
        raise ValueError(f"need integers 1 <= k <= D; got D={D!r}, k={k!r}")
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(D, k, generator=g, dtype=torch.float64))
    s = scale * torch.linspace(1.0, 0.5, k, dtype=torch.float64)
    return Gaussian.low_rank(torch.zeros(D, dtype=torch.float64), Q * s)


def plot_spectra_vs_noise(score, x, process, ts, ax=None, *, method: str = "jacobian"):
    r"""Normalised spectra (median over the points x) against the noise level ``sigma_t / alpha_t``.

    One line per singular value; normal directions stay near 1, tangent ones fall like
    ``sigma^2 / lambda`` as the noise shrinks.
    """
    ax = P.new_axes() if ax is None else ax
    noise, rows = [], []
    for t in ts:
        mu = F.normalised_spectrum(score, x, float(t), process, method=method,
                                   generator=torch.Generator().manual_seed(0))
        rows.append(mu.median(0).values.numpy())
        noise.append(float(torch.exp(-process.lam(float(t)))))
    rows = np.array(rows)
    for i in range(rows.shape[1]):
        ax.plot(noise, rows[:, i], "o-", ms=3, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("noise level sigma_t / alpha_t")
    ax.set_ylabel("normalised singular values")
    return ax


def plot_spectrum(est: F.DimensionEstimate, ax=None, *, k_true: int | None = None):
    r"""Bars of the median normalised spectrum of a :class:`~diffedu.fields.DimensionEstimate`,
    the reference level 1, and the largest gap (red) that gives the estimate."""
    ax = P.new_axes() if ax is None else ax
    mu = est.spectra.median(0).values.numpy()
    D = len(mu)
    ax.bar(np.arange(1, D + 1), mu, color="C0")
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    i = D - est.dim                   # normal directions above the gap
    top = 1.0 if i == 0 else mu[i - 1]
    bottom = mu[i] if i < D else 0.0
    ax.plot([i + 0.5, i + 0.5], [max(bottom, 1e-8), top], color="C3", lw=3)
    ax.set_yscale("log")
    ax.set_ylim(1e-6, 2.0)
    ax.set_xlabel("index (descending)")
    ax.set_ylabel("sigma^2 x singular value")
    truth = "" if k_true is None else f", true k = {k_true}"
    ax.set_title(f"estimated k = {est.dim}{truth}", fontsize="small")
    return ax


def _draw_dimension(log10_sigma, k, *, D, method, n_points, seed):
    process = EDM()
    g = subspace_gaussian(D, k, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x0 = g.sample(n_points, generator=gen, dtype=torch.float64)
    t = 10.0**log10_sigma
    est = F.intrinsic_dimension(lambda x, tt: g.score(x, tt, process), x0, t, process, method=method,
                                generator=gen)
    ax = P.new_axes(figsize=(5.6, 3.8))
    plot_spectrum(est, ax, k_true=k)
    ax.set_title(ax.get_title() + f"  (D = {D}, sigma = {t:.3g})", fontsize="small")
    return ax.figure


def dimension_widget(D: int = 8, *, method: str = "jacobian", n_points: int = 16, seed: int = 0):
    r"""Sliders for the noise level (log10 sigma, EDM) and the subspace dimension k in R^D: the
    normalised score-Jacobian spectrum and the dimension the largest gap gives."""
    if not (isinstance(D, int) and D >= 2):
        raise ValueError(f"D must be an integer >= 2; got {D!r}")
    return W.interactive(
        _draw_dimension, _SHOW,
        log10_sigma=W.FloatSlider(value=-1.5, min=-3.0, max=0.5, step=0.25, description="log10 sigma",
                                  **_SLIDER),
        k=W.IntSlider(value=3, min=1, max=D, step=1, description="true dimension k", **_SLIDER),
        D=W.fixed(D), method=W.fixed(method), n_points=W.fixed(n_points), seed=W.fixed(seed),
    )


# Static fallbacks (as in diffedu.widgets): with DIFFEDU_STATIC_FALLBACKS=1, which `diffedu
# regenerate` sets, every displayed interactive also stores an image grid of its figure.
from .teach import fallbacks as _fallbacks  # noqa: E402

_fallbacks.register()
