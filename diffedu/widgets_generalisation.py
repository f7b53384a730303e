r"""Plots and sliders for the lessons on memorisation and subspace clustering (05, 07).

Each ``plot_*`` function is a plain drawing function returning a fresh Figure (tests call it);
each ``*_widget`` wraps one in ``ipywidgets.interactive`` with the other arguments pinned by
``ipywidgets.fixed``, as :mod:`diffedu.widgets` does (and so gets its static fallback grid).
The figures are bare ``Figure`` objects that pyplot never holds, so each ``interactive`` is built
with ``auto_display=True``: without it, ``interactive`` shows only pyplot's figures and the
returned one would never appear in JupyterLab.
"""

from __future__ import annotations

import math

import ipywidgets as W
import numpy as np
import torch

from . import plotting as P
from .memorisation import memorised_fraction
from .mixtures import Empirical, LowRankMixture
from .processes import Process
from .subspace import SubspaceClustering, fit_subspace, match_subspaces, sample_subspaces, subspace_error
from .widgets import _SLIDER

_SHOW = {"auto_display": True}  # interactive's options: display the returned figure

__all__ = ["plot_memorising_denoiser", "memorisation_widget", "plot_subspace_fit", "subspace_widget",
           "line_bases", "plot_images", "plot_teleport", "teleport_widget"]


def plot_images(images, ax_row=None, *, titles=None, shape=(8, 8), ncols: int | None = None):
    """Flattened images (n, prod(shape)) in one row of small grey panels; returns the Figure."""
    imgs = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    n = imgs.shape[0]
    ncols = ncols or n
    nrows = math.ceil(n / ncols)
    import matplotlib.figure
    fig = matplotlib.figure.Figure(figsize=(1.1 * ncols, 1.2 * nrows), layout="constrained")
    axs = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).reshape(-1)
    for i, ax in enumerate(axs):
        ax.set_axis_off()
        if i < n:
            ax.imshow(imgs[i].reshape(shape), cmap="gray_r", interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize="x-small")
    return fig


# --- lesson 05: the memorising denoiser -------------------------------------------------------
def plot_memorising_denoiser(M: int, log10_sigma: float, *, process: Process, data, seed: int = 0,
                             n: int = 400, lim=(-3.0, 3.0)):
    r"""The exact denoiser of M training points at noise ``sigma/alpha = 10^log10_sigma``.

    data: (N, 2) pool; the first M rows are the training set. Grey: noisy points x_t of the
    training set; orange: D(x_t); black crosses: training points. The title gives the memorised
    fraction (1/3 rule) of the denoised points.
    """
    train = data[:M].to(torch.float64)
    E = Empirical(train)
    t = float(process.t_of_lam(-log10_sigma * math.log(10.0)))
    g = torch.Generator().manual_seed(seed)
    xt = E.sample_marginal(n, t, process, generator=g, dtype=torch.float64)
    den = E.denoiser(xt, t, process)
    a = float(process.alpha(t))
    ax = P.new_axes(figsize=(4.8, 4.4))
    ax.scatter(*(xt / a).T.numpy(), s=4, color="0.7", label="x_t / alpha_t")
    ax.scatter(*den.T.numpy(), s=8, color="C1", label="D(x_t, t)")
    ax.scatter(*train.T.numpy(), marker="x", color="k", s=30, label="training points")
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    ax.legend(fontsize="x-small", loc="lower right")
    frac = memorised_fraction(den, train) if M >= 2 else 1.0
    ax.set_title(f"M = {M}, sigma/alpha = {10**log10_sigma:.3g}: memorised {frac:.0%}", fontsize="small")
    return ax.figure


def memorisation_widget(data, process: Process, *, max_M: int | None = None, seed: int = 0):
    """Sliders: training-set size M and log10 of the noise level; draws :func:`plot_memorising_denoiser`."""
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process; got {type(process).__name__}")
    max_M = max_M or data.shape[0]
    return W.interactive(
        plot_memorising_denoiser, _SHOW,
        M=W.IntSlider(value=min(8, max_M), min=2, max=max_M, description="M (training points)", **_SLIDER),
        log10_sigma=W.FloatSlider(value=-0.5, min=-2.0, max=1.0, step=0.1, description="log10 sigma", **_SLIDER),
        process=W.fixed(process), data=W.fixed(data), seed=W.fixed(seed), n=W.fixed(400),
        lim=W.fixed((-3.0, 3.0)),
    )


# --- lesson 07: subspace clustering in the plane ----------------------------------------------
def line_bases(angles_deg) -> torch.Tensor:
    """Bases (K, 2, 1) of K lines through the origin of the plane at the given angles."""
    th = torch.deg2rad(torch.as_tensor(angles_deg, dtype=torch.float64))
    return torch.stack([torch.cos(th), torch.sin(th)], 1)[:, :, None]


def plot_subspace_fit(n_per_subspace: int, noise: float, *, angles=(10.0, 70.0, 135.0), seed: int = 0,
                      n_init: int = 10):
    r"""K lines in the plane, n points on each (plus noise off the line); the lines found by
    K-subspaces without labels (coloured) against the truth (dashed); the title gives both
    subspace errors, with labels (PCA of each group) and without (K-subspaces)."""
    U = line_bases(angles)
    K = U.shape[0]
    g = torch.Generator().manual_seed(seed)
    X, y = sample_subspaces(LowRankMixture(U, noise=float(noise)), int(n_per_subspace), generator=g)
    ax = P.new_axes(figsize=(4.8, 4.4))
    L = 3.0
    for k in range(K):
        ax.plot(*(torch.tensor([-L, L], dtype=torch.float64)[:, None] * U[k, :, 0]).T.numpy(), "--", color="0.5",
                lw=1)
    if X.shape[0] == 0:
        ax.set_title("no samples", fontsize="small")
        return ax.figure
    est = SubspaceClustering(K, 1, n_init=n_init, seed=seed).fit(X)
    perm, err_u = match_subspaces(est.bases_, U)
    err_l = subspace_error(torch.stack([fit_subspace(X[y == k], 1) for k in range(K)]), U)
    for k in range(K):
        j = int(perm[k])
        ax.plot(*(torch.tensor([-L, L], dtype=torch.float64)[:, None] * est.bases_[j, :, 0]).T.numpy(),
                color=f"C{k}", lw=2)
        ax.scatter(*X[est.labels_ == j].T.numpy(), s=10, color=f"C{k}")
    ax.set_xlim(-L, L)
    ax.set_ylim(-L, L)
    ax.set_aspect("equal")
    ax.set_title(f"n = {n_per_subspace}, noise = {noise:.3g}: max error with labels "
                 f"{float(err_l.max()):.2f}, K-subspaces {float(err_u.max()):.2f}", fontsize="x-small")
    return ax.figure


def subspace_widget(*, angles=(10.0, 70.0, 135.0), seed: int = 0):
    """Sliders: samples per subspace and noise variance; draws :func:`plot_subspace_fit`."""
    return W.interactive(
        plot_subspace_fit, _SHOW,
        n_per_subspace=W.IntSlider(value=5, min=1, max=60, description="samples per subspace", **_SLIDER),
        noise=W.FloatSlider(value=0.01, min=0.0, max=0.3, step=0.01, description="noise variance", **_SLIDER),
        angles=W.fixed(tuple(angles)), seed=W.fixed(seed), n_init=W.fixed(10),
    )


# --- lesson 06: Gaussian teleportation --------------------------------------------------------
def plot_teleport(skip: int, *, sampler, D, process: Process, x, ts, target, lim=(-3.5, 3.5)):
    r"""2-D samples of the full sampler (grey) and with the first ``skip`` steps replaced by the
    exact Gaussian flow (orange), joined by a segment per pair; the title gives the RMS move.

    x: (B, 2) at ``ts[0] = t_max``; ts: (N+1,) grid; target: the :class:`Gaussian` teleported with.
    """
    from .gaussian_approx import teleport_sweep
    from .samplers import teleport

    ts = torch.as_tensor(ts, dtype=torch.float64)
    full = sampler(D, process, x, ts)
    tel = full if skip == 0 else teleport(sampler, D, process, x, ts[skip:], target, t_from=float(ts[0]))
    rms = float(teleport_sweep(sampler, D, process, x, ts, target, [skip])[0])
    ax = P.new_axes(figsize=(4.8, 4.4))
    seg = torch.stack([full, tel], 1).numpy()
    for s_ in seg:
        ax.plot(s_[:, 0], s_[:, 1], color="C1", lw=0.5, alpha=0.6)
    ax.scatter(*full.T.numpy(), s=6, color="0.5", label="full sampler")
    ax.scatter(*tel.T.numpy(), s=6, color="C1", label="teleported")
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    ax.legend(fontsize="x-small", loc="lower right")
    n = ts.numel() - 1
    ax.set_title(f"{skip} of {n} steps skipped (to sigma/alpha = {float(torch.exp(-process.lam(float(ts[skip])))):.3g}): "
                 f"RMS move {rms:.3g}", fontsize="x-small")
    return ax.figure


def teleport_widget(sampler, D, process: Process, x, ts, target):
    """Slider: number of sampler steps skipped by teleportation; draws :func:`plot_teleport`."""
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process; got {type(process).__name__}")
    n = torch.as_tensor(ts).numel() - 1
    return W.interactive(
        plot_teleport, _SHOW,
        skip=W.IntSlider(value=n // 4, min=0, max=n - 1, description="steps skipped", **_SLIDER),
        sampler=W.fixed(sampler), D=W.fixed(D), process=W.fixed(process), x=W.fixed(x), ts=W.fixed(ts),
        target=W.fixed(target), lim=W.fixed((-3.5, 3.5)),
    )
