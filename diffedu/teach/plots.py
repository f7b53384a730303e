r"""Plots that several lessons share: pure functions that draw into an Axes and return it.

Every ``plot_*`` takes the objects it draws (a process, a distribution, a field, a trajectory)
and ``ax=None`` (``axs=None`` for a figure of several panels); it never calls ``plt.show()`` and
keeps no state, so lessons, widgets and tests call the same code. It returns its Axes (an array
for several). With ``ax=None`` a new pyplot figure is made (:func:`new_axes` with
``pyplot=True``), which a lesson cell shows inline; a widget passes the Axes of a bare
:class:`matplotlib.figure.Figure` from ``new_axes()`` instead, which pyplot never holds, so no
figure piles up while a slider redraws a hundred times. A plot used by one lesson only lives in
that lesson's module (:mod:`diffedu.teach`).

**Readable text (the rule every widget's figure meets).** JupyterLab shows an inline figure at
the figure's dpi, one image pixel per CSS pixel (matplotlib's default 100 dpi: matplotlib-inline
no longer sets 72), cropped to its content (``bbox_inches="tight"``), and scales a figure wider
than the output area down to the area's width: 844 px in a 1280 x 800 window with the file
browser open (JupyterLab 4.6, measured in headless chromium). A text of ``s`` points in a figure
``W`` pixels wide is therefore shown ``s * dpi / 72 * min(1, SHOWN_WIDTH_PX / W)`` pixels tall,
and every text a widget's figure draws (titles, axis and tick labels, legends, annotations) must
come out at :data:`READABLE_PX` or more. For a figure that fits (at most 8.4 inches wide at
100 dpi) ``"x-small"`` (6.9 pt, 9.6 px) is the smallest size that passes; a wider figure needs
larger text. The static previews (:mod:`diffedu.teach.fallbacks`) meet the same rule at the
course site's column width. ``tests/teach/test_readability.py`` checks both on the figure of
every lesson widget, built with the lesson's own arguments.

Times on shared axes are drawn as ``t / t_max`` so processes with different ranges (EDM runs to
80) fit side by side; noise levels are the EDM-equivalent ``sigma_t / alpha_t = exp(-lambda_t)``.
"""

from __future__ import annotations

import math

import matplotlib.figure
import matplotlib.ticker
import numpy as np
import torch

from ..processes import Process

__all__ = [
    "SHOWN_WIDTH_PX", "READABLE_PX", "new_axes", "plot_schedules", "plot_log_snr", "plot_density_1d", "plot_density_2d",
    "plot_vector_field", "plot_trajectories", "plot_error_vs_steps", "plot_samples", "plot_images",
]


#: The width, in CSS pixels, of JupyterLab's output area that the readability rule assumes: a
#: 1280 x 800 window with the file browser open gives 844 px (JupyterLab 4.6).
SHOWN_WIDTH_PX = 840
#: The smallest height, in pixels, at which a figure's text is shown (see the module docstring).
READABLE_PX = 9.0


def new_axes(ncols: int = 1, *, figsize=None, pyplot: bool = False):
    """A new figure with ``ncols`` Axes; returns one Axes, or an array of them for ``ncols > 1``.

    ``pyplot=False`` (the default) builds a bare :class:`matplotlib.figure.Figure`, which
    IPython still displays inline but pyplot never holds on to.
    """
    figsize = figsize or (4.8 * ncols, 3.6)
    if pyplot:
        import matplotlib.pyplot as plt

        fig, axs = plt.subplots(1, ncols, figsize=figsize, squeeze=False)
    else:
        fig = matplotlib.figure.Figure(figsize=figsize, layout="constrained")
        axs = fig.subplots(1, ncols, squeeze=False)
    return axs[0, 0] if ncols == 1 else axs[0]


def _ax(ax):
    """The given Axes, or one on a new pyplot figure (shown inline by a lesson cell)."""
    return new_axes(pyplot=True) if ax is None else ax


def _axs(axs, ncols, figsize):
    """The given Axes array, or ``ncols`` Axes on a new pyplot figure."""
    return new_axes(ncols, figsize=figsize, pyplot=True) if axs is None else axs


def _name(process: Process) -> str:
    return type(process).__name__


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _fractions(process: Process, n: int = 400, *, endpoint_eps: float = 1e-4) -> torch.Tensor:
    """Times ``t = u t_max`` for u in [eps, 1], float64 (eps keeps lambda finite)."""
    return torch.linspace(endpoint_eps, 1.0, n, dtype=torch.float64) * process.t_max


#: Markers that tell processes apart where their curves coincide (VE's and EDM's alpha = 1;
#: EDM's sigma / 80 and the linear interpolant's sigma / 0.999 are both about t / t_max).
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def plot_schedules(processes, ax=None, *, n: int = 400, n_marks: int = 8):
    r"""``alpha_t`` (solid) and ``sigma_t / max(sigma)`` (dashed) against ``t / t_max``.

    processes: a list of :class:`~diffedu.processes.Process`. sigma is divided by its largest
    value so VE (sigma up to 50) and EDM (up to 80) share the axis with VP; the legend says by
    how much. Curves of different processes can coincide (VE's and EDM's alpha are both 1; EDM's
    and the linear interpolant's scaled sigma are both about t / t_max), so each process also has
    its own marker, ``n_marks`` of them per curve at positions staggered between processes: a
    curve drawn over another leaves the other's markers in view.
    """
    ax = _ax(ax)
    procs = list(processes)
    step = max(n // n_marks, 1)
    for i, p in enumerate(procs):
        t = _fractions(p, n)
        u = _np(t / p.t_max)
        s = _np(p.sigma(t))
        style = dict(color=f"C{i}", marker=_MARKERS[i % len(_MARKERS)], ms=5,
                     markevery=((i * step) // max(len(procs), 1), step))
        ax.plot(u, _np(p.alpha(t)), **style, label=f"{_name(p)}: alpha")
        ax.plot(u, s / s.max(), "--", **style, mfc="none", label=f"{_name(p)}: sigma / {s.max():.3g}")
    ax.set_xlabel("t / t_max")
    ax.set_ylabel("alpha_t,  sigma_t / max sigma")
    ax.legend(fontsize="x-small")
    return ax


def plot_log_snr(processes, ax=None, *, n: int = 400, mark=None):
    r"""Half log-SNR ``lambda_t = log(alpha_t / sigma_t)`` against ``t / t_max``.

    mark: optional ``t / t_max`` at which to draw a vertical line (the widgets' current time).
    """
    ax = _ax(ax)
    for i, p in enumerate(processes):
        t = _fractions(p, n)
        ax.plot(_np(t / p.t_max), _np(p.lam(t)), color=f"C{i}", label=_name(p))
    if mark is not None:
        ax.axvline(mark, color="k", lw=0.8, ls=":")
    ax.set_xlabel("t / t_max")
    ax.set_ylabel("lambda_t = log(alpha_t / sigma_t)")
    ax.legend(fontsize="small")
    return ax


def plot_density_1d(dist, process: Process, t, ax=None, *, lim=(-4.0, 4.0), n: int = 400,
                    label=None, **line_kw):
    r"""The marginal density ``p_t(x)`` of a 1-D distribution on ``[lim[0], lim[1]]``.

    dist: any diffedu distribution with ``dim == 1`` and ``log_prob(x, t, process)``.
    At t = 0 a distribution with a density is drawn as is.
    """
    if dist.dim != 1:
        raise ValueError(f"dist must be one-dimensional; got dim={dist.dim}")
    ax = _ax(ax)
    x = torch.linspace(*lim, n, dtype=torch.float64)[:, None]
    dens = torch.exp(dist.log_prob(x, t, process))
    ax.plot(_np(x[:, 0]), _np(dens), label=label, **line_kw)
    ax.set_xlabel("x")
    ax.set_ylabel("p_t(x)")
    return ax


def _grid(lim, n):
    g = torch.linspace(lim[0], lim[1], n, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    return X, Y, torch.stack([X.reshape(-1), Y.reshape(-1)], 1)


def plot_density_2d(dist, process: Process, t, ax=None, *, lim=(-4.0, 4.0), n: int = 120,
                    cmap: str = "viridis", log: bool = False):
    r"""The marginal density ``p_t`` of a 2-D distribution as an image on ``lim x lim``.

    log=True draws ``log p_t`` (clipped 12 nats below its maximum) to show the tails.
    """
    if dist.dim != 2:
        raise ValueError(f"dist must be two-dimensional; got dim={dist.dim}")
    ax = _ax(ax)
    X, Y, pts = _grid(lim, n)
    lp = dist.log_prob(pts, t, process).reshape(n, n)
    img = lp.clamp_min(lp.max() - 12) if log else torch.exp(lp)
    ax.imshow(_np(img), origin="lower", extent=(*lim, *lim), cmap=cmap, aspect="equal")
    ax.set_xlabel("x_1")
    ax.set_ylabel("x_2")
    return ax


def plot_vector_field(field, t, ax=None, *, lim=(-4.0, 4.0), n: int = 15, normalize: bool = False,
                      **quiver_kw):
    r"""Arrows of a 2-D field ``field(x, t)`` (e.g. a score or a PF-ODE velocity) on a grid.

    field: callable ``(x (B, 2), t) -> (B, 2)``. normalize=True draws unit arrows (direction only).
    """
    ax = _ax(ax)
    X, Y, pts = _grid(lim, n)
    v = field(pts, t).detach().to(torch.float64)
    if v.shape != pts.shape:
        raise ValueError(f"field must return shape {tuple(pts.shape)}; got {tuple(v.shape)}")
    if normalize:
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    ax.quiver(_np(X), _np(Y), _np(v[:, 0].reshape(n, n)), _np(v[:, 1].reshape(n, n)), **quiver_kw)
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    return ax


def plot_trajectories(traj, ax=None, *, dims=(0, 1), max_paths: int = 50, color="C1", alpha=0.6,
                      ends: bool = True):
    r"""Paths of a trajectory ``(N+1, B, D)`` projected on two coordinates ``dims``.

    The start (first row) is marked with a dot, the end (last row) with a cross.
    For D = 1 (or ``dims=(0,)``) the coordinate is drawn against the step index.
    """
    traj = torch.as_tensor(traj)
    if traj.dim() != 3:
        raise ValueError(f"traj must have shape (N+1, B, D); got {tuple(traj.shape)}")
    ax = _ax(ax)
    tr = _np(traj[:, :max_paths].to(torch.float64))
    if len(dims) == 1 or tr.shape[2] == 1:
        d = dims[0]
        ax.plot(np.arange(tr.shape[0]), tr[:, :, d], color=color, alpha=alpha, lw=0.8)
        ax.set_xlabel("step")
        ax.set_ylabel(f"x_{d + 1}")
        return ax
    i, j = dims
    ax.plot(tr[:, :, i], tr[:, :, j], color=color, alpha=alpha, lw=0.8)
    if ends:
        ax.plot(tr[0, :, i], tr[0, :, j], ".", color=color, ms=4)
        ax.plot(tr[-1, :, i], tr[-1, :, j], "x", color="k", ms=4)
    ax.set_xlabel(f"x_{i + 1}")
    ax.set_ylabel(f"x_{j + 1}")
    return ax



def plot_error_vs_steps(steps, errors: dict, ax=None, *, orders=(1, 2), anchor: str | None = None,
                        xlabel: str = "number of steps N"):
    r"""Error against cost on log-log axes, with reference slopes ``x^-p``.

    steps: (S,) step counts shared by every method, or a dict ``{method name: (S,) costs}``
    giving each method its own x values (e.g. denoiser calls: Heun makes two per step).
    errors: ``{method name: (S,) errors}``. orders: reference slopes to draw, anchored at the
    last point of ``anchor`` (default: the first method). A method of order p follows the
    ``x^-p`` line. xlabel: the x axis label.
    """
    ax = _ax(ax)
    if not errors:
        raise ValueError("errors must map at least one method name to its errors")
    if isinstance(steps, dict):
        missing = set(errors) - set(steps)
        if missing:
            raise ValueError(f"steps (a dict of x values) has no entry for {sorted(missing)}")
        xs = {name: np.asarray(_np(steps[name]), dtype=float) for name in errors}
    else:
        xs = dict.fromkeys(errors, np.asarray(_np(steps), dtype=float))
    for i, (name, err) in enumerate(errors.items()):
        err = np.asarray(_np(err), dtype=float)
        if err.shape != xs[name].shape:
            raise ValueError(f"errors[{name!r}] must have shape {xs[name].shape}; got {err.shape}")
        ax.loglog(xs[name], err, "o-", color=f"C{i}", label=name, ms=3)
    key = anchor or next(iter(errors))
    ref, x = np.asarray(_np(errors[key]), dtype=float), xs[key]
    for p in orders:
        ax.loglog(x, ref[-1] * (x / x[-1]) ** (-p), "k:", lw=0.8)
        ax.annotate(f"slope -{p}", (x[0], ref[-1] * (x[0] / x[-1]) ** (-p)), fontsize="small")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no crowded 2x10^1, 3x10^1, ...
    ax.set_xlabel(xlabel)
    ax.set_ylabel("error")
    ax.legend(fontsize="x-small")
    return ax


def plot_samples(x, ax=None, *, dims=(0, 1), max_points: int = 2000, **scatter_kw):
    """Scatter plot of samples (B, D) on coordinates ``dims`` (a histogram when D = 1)."""
    x = torch.as_tensor(x)
    if x.dim() != 2:
        raise ValueError(f"x must have shape (B, D); got {tuple(x.shape)}")
    ax = _ax(ax)
    xs = _np(x[:max_points].to(torch.float64))
    if xs.shape[1] == 1:
        ax.hist(xs[:, 0], bins=60, density=True, alpha=0.5, **scatter_kw)
        return ax
    scatter_kw.setdefault("s", 3)
    scatter_kw.setdefault("alpha", 0.5)
    ax.scatter(xs[:, dims[0]], xs[:, dims[1]], **scatter_kw)
    ax.set_aspect("equal")
    return ax


def plot_images(images, axs=None, *, titles=None, shape=(8, 8), ncols: int | None = None):
    """Flattened images (n, prod(shape)) as small grey panels, ``ncols`` per row (default: one
    row). Returns the Axes array, (nrows, ncols) (a new pyplot figure of the right size when
    ``axs`` is None)."""
    imgs = _np(images)
    n = imgs.shape[0]
    ncols = ncols or n
    nrows = math.ceil(n / ncols)
    if axs is None:
        import matplotlib.pyplot as plt

        _, axs = plt.subplots(nrows, ncols, figsize=(1.1 * ncols, 1.2 * nrows), squeeze=False,
                              layout="constrained")
    axs = np.atleast_1d(axs)
    for i, ax in enumerate(axs.reshape(-1)):
        ax.set_axis_off()
        if i < n:
            ax.imshow(imgs[i].reshape(shape), cmap="gray_r", interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize="x-small")
    return axs
