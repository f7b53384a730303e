r"""Plots and sliders of lesson 04 (the Fokker-Planck equation and the ODE-SDE gap).

Plain drawing functions (draw into a given Axes, or a new one from
:func:`diffedu.plotting.new_axes`, and return it), and widgets built on them in the manner of
:mod:`diffedu.widgets`: an ``ipywidgets.interactive`` whose callback returns a fresh bare Figure
(kept in ``.result`` and shown because the widget is built with ``auto_display=True``; pyplot never
holds it), everything that is not a control pinned with ``ipywidgets.fixed``.
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import torch

from . import fokker_planck as fp
from . import plotting as P
from .flows import denoiser_from_score
from .processes import Process

__all__ = ["plot_fp_grid_1d", "plot_density_pair_2d", "plot_gap_samples", "plot_gap_vs_residual",
           "plot_hutchinson", "fp_grid_widget", "perturbation_widget", "penalty_widget"]

_SHOW = {"auto_display": True}  # interactive's options: display the returned (non-pyplot) figure
_SLIDER = dict(continuous_update=False, style={"description_width": "initial"},
               layout=W.Layout(width="420px"))


# --- plain plots ---------------------------------------------------------------------------
def plot_fp_grid_1d(grid, numeric, exact, ts, ax=None):
    """Grid-solver densities (solid) over closed-form marginals (dashed black), one colour per time.

    grid: (n,); numeric, exact: (T, n); ts: (T,) times."""
    ax = P._ax(ax)
    for k, t in enumerate(ts):
        ax.plot(grid, numeric[k], color=f"C{k}", lw=1.6, label=f"grid solver, t = {t:.3g}")
        ax.plot(grid, exact[k], "k--", lw=0.8)
    ax.set_xlabel("x")
    ax.set_ylabel("p_t(x)")
    ax.set_title("dashed: closed-form marginal", fontsize="small")
    ax.legend(fontsize="x-small")
    return ax


def plot_density_pair_2d(grid, numeric, exact, axs=None, *, title=""):
    """Two images side by side: a grid-solver density and the closed-form one, (n, n) each
    (``indexing="ij"``: first axis x)."""
    if axs is None:
        axs = P.new_axes(2, figsize=(8.4, 3.8))
    ext = (grid[0], grid[-1], grid[0], grid[-1])
    vmax = max(float(np.max(numeric)), float(np.max(exact)))
    for ax, img, name in ((axs[0], numeric, "grid solver"), (axs[1], exact, "closed form")):
        ax.imshow(np.asarray(img).T, origin="lower", extent=ext, vmin=0, vmax=vmax, cmap="viridis")
        ax.set_title(f"{name} {title}", fontsize="small")
        ax.set_aspect("equal")
    return axs


def plot_gap_samples(report: fp.GapReport, axs=None, *, lim=(-3.5, 3.5), title=""):
    """ODE and SDE samples of a :class:`~diffedu.fokker_planck.GapReport` over the data, with
    the three W2 distances and the noise floor in the titles."""
    if axs is None:
        axs = P.new_axes(2, figsize=(8.4, 4.0))
    for ax, x, name, color in ((axs[0], report.x_ode, "PF-ODE", "C0"), (axs[1], report.x_sde, "reverse SDE", "C3")):
        P.plot_samples(report.x_data, ax, color="0.7", s=2)
        P.plot_samples(x, ax, color=color, s=2)
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        w = report.w2_ode_data if name == "PF-ODE" else report.w2_sde_data
        ax.set_title(f"{name}: W2 to data {w:.3f}", fontsize="small")
    floor = "" if np.isnan(report.w2_floor) else f", noise floor {report.w2_floor:.3f}"
    axs[0].figure.suptitle(f"{title}W2(ODE, SDE) = {report.w2_ode_sde:.3f}{floor}", fontsize="small")
    return axs


def plot_gap_vs_residual(results: dict, floor: float, ax=None):
    """W2(ODE, SDE) against the score-residual size, one line per kind of perturbation.

    results: ``{kind: [(residual, gap), ...]}``; floor: the W2 noise floor (grey band below it)."""
    ax = P._ax(ax)
    for i, (kind, pts) in enumerate(results.items()):
        r, g = zip(*pts)
        ax.plot(r, g, "o-", color=f"C{i}", label=kind)
    ax.axhspan(0, floor, color="0.85", label="below the W2 noise floor")
    ax.set_xlabel("score FP residual (rms, weighted by sigma^3 / g^2)")
    ax.set_ylabel("W2(PF-ODE samples, SDE samples)")
    ax.legend(fontsize="x-small")
    return ax


def plot_hutchinson(estimates: dict, exact: float, ax=None):
    """Histograms of single-probe Hutchinson estimates ``{probe kind: (M,) estimates}`` with the
    exact divergence as a black line."""
    ax = P._ax(ax)
    for i, (name, est) in enumerate(estimates.items()):
        e = np.asarray(torch.as_tensor(est).detach().cpu(), dtype=float)
        ax.hist(e, bins=60, density=True, alpha=0.5, color=f"C{i}", label=f"{name}: sd {e.std():.2f}")
    ax.axvline(exact, color="k", lw=1.2, label="exact divergence")
    ax.set_xlabel("one-probe estimate z^T J z")
    ax.legend(fontsize="x-small")
    return ax


# --- widgets -------------------------------------------------------------------------------
def _draw_grid(t_index, *, grid, ts, numeric, exact):
    axs = P.new_axes(2, figsize=(8.4, 3.8))
    err = float(np.abs(numeric[t_index] - exact[t_index]).max() / exact[t_index].max())
    plot_density_pair_2d(grid, numeric[t_index], exact[t_index], axs, title=f"t = {ts[t_index]:.3g}")
    axs[0].figure.suptitle(f"largest difference / peak = {err:.1e}", fontsize="small")
    return axs[0].figure


def fp_grid_widget(dist, process: Process, *, lim=(-4.0, 4.0), n: int = 81, n_times: int = 11):
    r"""A 2-D density evolved by :func:`~diffedu.fokker_planck.solve_fp_grid` next to the closed
    form, with a slider over ``n_times`` times from 0 to ``t_max`` (solved once, when built)."""
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process; got {type(process).__name__}")
    grid = np.linspace(lim[0], lim[1], n)
    ts = np.linspace(0.0, process.t_max, n_times)
    numeric = fp.solve_fp_grid(fp.density_on_grid(dist, process, grid, 0.0), grid, process, ts)
    exact = np.stack([fp.density_on_grid(dist, process, grid, float(t)) for t in ts])
    return W.interactive(
        _draw_grid, _SHOW,
        t_index=W.IntSlider(value=n_times // 3, min=0, max=n_times - 1, description="time index", **_SLIDER),
        grid=W.fixed(grid), ts=W.fixed(ts), numeric=W.fixed(numeric), exact=W.fixed(exact),
    )


def _draw_perturbed(kind, size, *, dist, process, n, seed, ode_steps, sde_steps):
    score = fp.perturb_score(dist.bind(process).score, kind, size)
    rep = fp.ode_sde_gap(denoiser_from_score(score, process), process, dist.sample, n,
                         ode_steps=ode_steps, sde_steps=sde_steps, generator=torch.Generator().manual_seed(seed))
    return plot_gap_samples(rep, title=f"{kind} {size:.2f}: ")[0].figure


def perturbation_widget(dist, process: Process, *, n: int = 500, seed: int = 0, ode_steps: int = 50,
                        sde_steps: int = 200):
    r"""PF-ODE and reverse-SDE samples with a perturbed exact score (:func:`~diffedu.fokker_planck.perturb_score`):
    a menu for the kind of perturbation and a slider for its size; W2 distances in the titles."""
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process; got {type(process).__name__}")
    return W.interactive(
        _draw_perturbed, _SHOW,
        kind=W.Dropdown(options=list(fp._KINDS), value="scale", description="perturbation"),
        size=W.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05, description="size", **_SLIDER),
        dist=W.fixed(dist), process=W.fixed(process), n=W.fixed(n), seed=W.fixed(seed),
        ode_steps=W.fixed(ode_steps), sde_steps=W.fixed(sde_steps),
    )


def _draw_penalty(fp_weight, *, reports):
    return plot_gap_samples(reports[fp_weight], title=f"penalty weight {fp_weight:g}: ")[0].figure


def penalty_widget(reports: dict):
    r"""Samples of models trained with several Fokker-Planck penalty weights, a slider over the
    weights. reports: ``{weight: GapReport}``, computed beforehand with
    :func:`~diffedu.fokker_planck.ode_sde_gap` from the cached runs (:func:`diffedu.nets.load_fp_runs`)."""
    if not reports or not all(isinstance(r, fp.GapReport) for r in reports.values()):
        raise TypeError("reports must be a non-empty dict {weight: GapReport}")
    weights = sorted(reports)
    return W.interactive(
        _draw_penalty, _SHOW,
        fp_weight=W.SelectionSlider(options=weights, value=weights[0], description="FP penalty weight", **_SLIDER),
        reports=W.fixed(dict(reports)),
    )
