r"""Lesson 05 (the Fokker-Planck equation and the ODE-SDE gap): its plots, sliders, checkers
and cached runs.

The maths lives in the core: :mod:`diffedu.fokker_planck` (the density and score residuals,
the grid solver, perturbed scores, ``residual_rms``, ``ode_sde_gap``), :mod:`diffedu.calculus`
(divergences, Hutchinson's estimator and its variance), :mod:`diffedu.metrics` (W2 and its
noise floor, the relative score error) and :mod:`diffedu.nets` (``ScoreMLP``, ``train_dsm``
with the FP penalty). This module draws, holds the sliders, checks the exercises and loads the
four cached models of ``data/fp_runs.pt`` (DSM with FP penalty weight 0, 1, 10, 100;
:func:`fp_run` retrains one, :func:`save_fp_runs` rewrites the file).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from .. import fokker_planck as fp
from .._core import check_process
from .._paths import data_path, writable_data_path
from ..calculus import hutchinson_variance
from ..datasets import two_gaussians
from ..flows import denoiser_from_score
from ..metrics import relative_score_error
from ..nets import ScoreMLP, train_dsm
from ..processes import VP, Process
from . import plots
from .checks import Feedback, check_close
from .widgets import dropdown, float_slider, int_slider, interactive, selection_slider

__all__ = ["plot_fp_grid_1d", "fp_grid_widget", "plot_gap_vs_residual", "perturbation_widget",
           "load_fp_runs", "load_fp_run_metrics", "penalty_widget", "plot_hutchinson", "check_dt_log_p",
           "check_hutchinson_variance"]


# --- plain plots ---------------------------------------------------------------------------
def plot_fp_grid_1d(grid, numeric, exact, ts, ax=None):
    """Grid-solver densities (solid) over closed-form marginals (dashed black), one colour per time.

    grid: (n,); numeric, exact: (T, n); ts: (T,) times. Returns the Axes."""
    ax = plots._ax(ax)
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
    (``indexing="ij"``: first axis x) on the (n,) grid. Returns the two Axes."""
    axs = plots._axs(axs, 2, (8.4, 3.8))
    ext = (grid[0], grid[-1], grid[0], grid[-1])
    vmax = max(float(np.max(numeric)), float(np.max(exact)))
    for ax, img, name in ((axs[0], numeric, "grid solver"), (axs[1], exact, "closed form")):
        ax.imshow(np.asarray(img).T, origin="lower", extent=ext, vmin=0, vmax=vmax, cmap="viridis")
        ax.set_title(f"{name} {title}", fontsize="small")
        ax.set_aspect("equal")
    return axs


def plot_gap_samples(report: fp.GapReport, axs=None, *, lim=(-3.5, 3.5), title=""):
    """ODE and SDE samples of a :class:`~diffedu.fokker_planck.GapReport` over the data, with
    the three W2 distances and the noise floor in the titles. Returns the two Axes."""
    if not isinstance(report, fp.GapReport):
        raise TypeError(f"report must be a GapReport; got {type(report).__name__}")
    axs = plots._axs(axs, 2, (8.4, 4.0))
    panels = ((axs[0], report.x_ode, "PF-ODE", "C0", report.w2_ode_data),
              (axs[1], report.x_sde, "reverse SDE", "C3", report.w2_sde_data))
    for ax, x, name, color, w2 in panels:
        plots.plot_samples(report.x_data, ax, color="0.7", s=2)
        plots.plot_samples(x, ax, color=color, s=2)
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_title(f"{name}: W2 to data {w2:.3f}", fontsize="small")
    floor = "" if np.isnan(report.w2_floor) else f", noise floor {report.w2_floor:.3f}"
    axs[0].figure.suptitle(f"{title}W2(ODE, SDE) = {report.w2_ode_sde:.3f}{floor}", fontsize="small")
    return axs


def plot_gap_vs_residual(results: dict, floor: float, ax=None):
    """W2(ODE, SDE) against the score-residual size, one line per kind of perturbation.

    results: ``{kind: [(residual, gap), ...]}``; floor: the W2 noise floor (grey band below it).
    Returns the Axes."""
    ax = plots._ax(ax)
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
    exact divergence as a black line. Returns the Axes."""
    ax = plots._ax(ax)
    for i, (name, est) in enumerate(estimates.items()):
        e = np.asarray(torch.as_tensor(est).detach().cpu(), dtype=float)
        ax.hist(e, bins=60, density=True, alpha=0.5, color=f"C{i}", label=f"{name}: sd {e.std():.2f}")
    ax.axvline(exact, color="k", lw=1.2, label="exact divergence")
    ax.set_xlabel("one-probe estimate z^T J z")
    ax.legend(fontsize="x-small")
    return ax


# --- widgets -------------------------------------------------------------------------------
def _draw_grid(t_index, *, grid, ts, numeric, exact):
    axs = plots.new_axes(2, figsize=(8.4, 3.8))
    err = float(np.abs(numeric[t_index] - exact[t_index]).max() / exact[t_index].max())
    plot_density_pair_2d(grid, numeric[t_index], exact[t_index], axs, title=f"t = {ts[t_index]:.3g}")
    axs[0].figure.suptitle(f"largest difference / peak = {err:.1e}", fontsize="small")
    return axs[0].figure


def fp_grid_widget(dist, process: Process, *, lim=(-4.0, 4.0), n: int = 81, n_times: int = 11):
    r"""A 2-D density evolved by :func:`~diffedu.fokker_planck.solve_fp_grid` next to the closed
    form, with a slider over ``n_times`` times from 0 to ``t_max`` (solved once, when built)."""
    check_process(process)
    grid = np.linspace(lim[0], lim[1], n)
    ts = np.linspace(0.0, process.t_max, n_times)
    numeric = fp.solve_fp_grid(fp.density_on_grid(dist, process, grid, 0.0), grid, process, ts)
    exact = np.stack([fp.density_on_grid(dist, process, grid, float(t)) for t in ts])
    return interactive(_draw_grid, t_index=int_slider(n_times // 3, 0, n_times - 1, "time index"),
                       grid=grid, ts=ts, numeric=numeric, exact=exact)


def _draw_perturbed(kind, size, *, dist, process, n, seed, ode_steps, sde_steps):
    score = fp.perturb_score(dist.bind(process).score, kind, size)
    rep = fp.ode_sde_gap(denoiser_from_score(score, process), process, dist.sample, n,
                         ode_steps=ode_steps, sde_steps=sde_steps, generator=torch.Generator().manual_seed(seed))
    return plot_gap_samples(rep, plots.new_axes(2, figsize=(8.4, 4.0)), title=f"{kind} {size:.2f}: ")[0].figure


def perturbation_widget(dist, process: Process, *, n: int = 500, seed: int = 0, ode_steps: int = 50,
                        sde_steps: int = 200):
    r"""PF-ODE and reverse-SDE samples with a perturbed exact score
    (:func:`~diffedu.fokker_planck.perturb_score`): a menu for the kind of perturbation and a
    slider for its size; W2 distances in the titles."""
    check_process(process)
    return interactive(_draw_perturbed, kind=dropdown(fp.PERTURBATIONS, "scale", "perturbation"),
                       size=float_slider(0.3, 0.0, 1.0, 0.05, "size"), dist=dist, process=process, n=n,
                       seed=seed, ode_steps=ode_steps, sde_steps=sde_steps)


def _draw_penalty(fp_weight, *, reports):
    axs = plots.new_axes(2, figsize=(8.4, 4.0))
    return plot_gap_samples(reports[fp_weight], axs, title=f"penalty weight {fp_weight:g}: ")[0].figure


def penalty_widget(reports: dict):
    r"""Samples of models trained with several Fokker-Planck penalty weights, a slider over the
    weights. reports: ``{weight: GapReport}``, computed beforehand with
    :func:`~diffedu.fokker_planck.ode_sde_gap` from the cached runs (:func:`load_fp_runs`)."""
    if not isinstance(reports, dict) or not reports or not all(isinstance(r, fp.GapReport)
                                                               for r in reports.values()):
        raise TypeError("reports must be a non-empty dict {weight: GapReport}")
    weights = sorted(reports)
    return interactive(_draw_penalty, fp_weight=selection_slider(weights, weights[0], "FP penalty weight"),
                       reports=dict(reports))


# --- exercise checkers ---------------------------------------------------------------------
def check_dt_log_p(answer, dist, x, t, process, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` (B,) = ``d_t log p_t(x)`` of ``dist``'s marginal, obtained from the
    Fokker-Planck equation (exercise 1). The expected value is the autograd time derivative of
    ``dist.log_prob`` (:func:`diffedu.fokker_planck.time_derivative`)."""
    check_process(process)
    x = torch.as_tensor(x, dtype=torch.float64)
    tt = torch.full((x.shape[0],), float(t), dtype=torch.float64, requires_grad=True)
    expected = fp.time_derivative(dist.log_prob(x, tt, process), tt)
    return check_close(answer, expected, name=f"d_t log p_t at t={float(t):g}", rtol=rtol, atol=1e-10)


def check_hutchinson_variance(answer, A, probe: str = "rademacher", *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = the variance of the one-probe Hutchinson estimate ``z^T A z`` of ``tr A``
    (exercise 2); the expected value is :func:`diffedu.calculus.hutchinson_variance`."""
    return check_close(answer, hutchinson_variance(A, probe),
                       name=f"variance of Hutchinson's estimate ({probe} probes)", rtol=rtol)


# --- the cached runs: DSM with and without the Fokker-Planck penalty ------------------------
#: Settings shared by every cached run (``data/fp_runs.pt``); only the penalty weight differs.
FP_RUN_CONFIG = dict(data="two_gaussians", hidden=64, depth=3, param="denoiser", steps=3000,
                     batch_size=256, lr=2e-3, fp_batch=64, seed=0)
#: Penalty weights of the cached runs.
FP_RUN_WEIGHTS = (0.0, 1.0, 10.0, 100.0)


def _run_model(c: dict, generator=None) -> ScoreMLP:
    return ScoreMLP(VP(), 2, hidden=c["hidden"], depth=c["depth"], param=c["param"], generator=generator)


def fp_run(fp_weight: float, *, steps: int | None = None, seed: int | None = None):
    r"""Train one cached-run model: a :class:`~diffedu.nets.ScoreMLP` on
    :func:`diffedu.datasets.two_gaussians` under VP with penalty weight ``fp_weight`` (settings
    :data:`FP_RUN_CONFIG`), by :func:`diffedu.nets.train_dsm`. Float32, one generator seeded with
    ``seed`` for the weights and every draw. Returns (model, losses (steps,))."""
    c = FP_RUN_CONFIG
    steps = c["steps"] if steps is None else steps
    g = torch.Generator().manual_seed(c["seed"] if seed is None else seed)
    data = two_gaussians()
    model = _run_model(c, g)
    losses = train_dsm(model, lambda n, generator=None: data.sample(n, generator=generator, dtype=torch.float32),
                       steps=steps, batch_size=c["batch_size"], lr=c["lr"], fp_weight=float(fp_weight),
                       fp_batch=c["fp_batch"], generator=g)
    return model, losses


def fp_run_metrics(model) -> dict:
    """What a cached run is checked by: its p_t-weighted relative score error
    (:func:`diffedu.metrics.relative_score_error`, t = 0.1, 0.3, 0.6, 1.0, 2000 points) and its
    score-residual size (:func:`diffedu.fokker_planck.residual_rms`, t = 0.2, 0.5, 0.8, 256 points),
    in float64 with seed 1. Returns ``{"score_error": [...], "residual": [...]}``."""
    m = copy.deepcopy(model).double()
    data, proc = two_gaussians(), m.process
    err = relative_score_error(m.score, data, proc, [0.1, 0.3, 0.6, 1.0], n=2000,
                               generator=torch.Generator().manual_seed(1))
    res = fp.residual_rms(m.score, proc, data.sample, [0.2, 0.5, 0.8], n=256,
                          generator=torch.Generator().manual_seed(1))
    return {"score_error": [float(e) for e in err], "residual": [float(r) for r in res]}


def save_fp_runs(models: dict, path=None) -> Path:
    """Save ``{fp_weight: ScoreMLP}``, :data:`FP_RUN_CONFIG` and each run's :func:`fp_run_metrics`
    to ``path`` (default ``data/fp_runs.pt`` of a source checkout). Returns the path. Remake the
    file with ``save_fp_runs({w: fp_run(w)[0] for w in FP_RUN_WEIGHTS})``."""
    path = writable_data_path("fp_runs.pt") if path is None else Path(path)
    torch.save({"config": dict(FP_RUN_CONFIG),
                "runs": {float(w): m.state_dict() for w, m in models.items()},
                "metrics": {float(w): fp_run_metrics(m) for w, m in models.items()}}, path)
    return path


def load_fp_run_metrics(path=None) -> dict:
    """The metrics stored with the cached runs: ``{fp_weight: fp_run_metrics(...)}``."""
    path = data_path("fp_runs.pt") if path is None else Path(path)
    return torch.load(path, map_location="cpu", weights_only=True)["metrics"]


def load_fp_runs(path=None) -> dict:
    """The cached lesson-04 models ``{fp_weight: ScoreMLP}`` (float32, eval mode), from ``path``
    (default ``data/fp_runs.pt``; FileNotFoundError names it when missing)."""
    path = data_path("fp_runs.pt") if path is None else Path(path)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for w, state in blob["runs"].items():
        m = _run_model(blob["config"])
        m.load_state_dict(state)
        out[float(w)] = m.eval()
    return out
