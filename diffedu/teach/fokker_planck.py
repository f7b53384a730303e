r"""Lesson 05 (the Fokker-Planck equation and the ODE-SDE gap): its plots, sliders, checkers
and cached runs.

The maths lives in the core: :mod:`diffedu.fokker_planck` (the density and score residuals,
the grid solver, perturbed scores, ``residual_rms``, ``ode_sde_gap``), :mod:`diffedu.calculus`
(divergences, Hutchinson's estimator and its variance), :mod:`diffedu.metrics` (W2 and its
noise floor, the relative score error) and :mod:`diffedu.nets` (``ScoreMLP``, ``train_dsm``
with the FP penalty), :mod:`diffedu.grid_transport` (the densities the PF-ODE and the reverse SDE
carry with any score, on a grid; distances; the Gronwall bound). This module draws, holds the
sliders, checks the exercises and makes and loads the cached gap runs of ``data/fp_gap.pt``
(free and log-density networks with and without the FP penalty, three seeds, each solved on the
grid: :func:`gap_runs`, ``python3 -m diffedu.teach.fokker_planck gap``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import fokker_planck as fp
from .. import grid_transport as gt
from .._core import check_process
from .._paths import data_path, writable_data_path
from ..calculus import hutchinson_variance
from ..flows import denoiser_from_score
from ..metrics import relative_score_error
from ..mixtures import GaussianMixture
from ..nets import EnergyMLP, ScoreMLP
from ..training import dsm_loss, train
from ..processes import VP, Process
from . import plots
from .checks import Feedback, check_close, check_implementation
from .widgets import dropdown, float_slider, int_slider, interactive

__all__ = ["plot_fp_grid_1d", "fp_grid_widget", "plot_gap_vs_residual", "perturbation_widget",
           "plot_hutchinson", "check_dt_log_p",
           "check_hutchinson_variance", "check_log_density_residual", "plot_gap_densities", "gap_widget",
           "gap_data", "gap_grid", "gap_stop_time", "gap_solve", "gap_runs", "train_gap_model", "load_gap_runs",
           "save_gap_runs", "over_seeds", "GAP_CONFIG"]


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
    r"""Empirical distribution functions of one-probe Hutchinson estimates ``{probe kind: (M,)
    estimates}`` on one axis, with the exact divergence as a black line: a Rademacher estimate takes
    a few values (steps), a Gaussian one a continuum, and both are drawn on the same scale (a
    histogram's density would make the few Rademacher values tall spikes). Returns the Axes."""
    ax = plots._ax(ax)
    for i, (name, est) in enumerate(estimates.items()):
        e = np.sort(np.asarray(torch.as_tensor(est).detach().cpu(), dtype=float))
        ax.step(e, np.arange(1, e.size + 1) / e.size, where="post", color=f"C{i}", lw=1.5,
                label=f"{name}: sd {e.std():.2f}")
    ax.axvline(exact, color="k", lw=1.2, label="exact divergence")
    ax.set_xlabel("one-probe estimate z^T J z")
    ax.set_ylabel("fraction of estimates <= value")
    ax.legend(fontsize="x-small")
    return ax


def plot_gap_densities(grid, densities: dict, axs=None):
    r"""Images of grid densities side by side, ``{title: (n, n) density}`` (``indexing="ij"``), on a
    common colour scale. Returns the Axes."""
    axs = plots._axs(axs, len(densities), (2.6 * len(densities), 2.9))
    ext = (grid[0], grid[-1], grid[0], grid[-1])
    vmax = max(float(np.max(d)) for d in densities.values())
    for ax, (title, d) in zip(axs, densities.items()):
        ax.imshow(np.asarray(d).T, origin="lower", extent=ext, vmin=0, vmax=vmax, cmap="viridis")
        ax.set_title(title, fontsize="small")
        ax.set_xlim(-3, 3)
        ax.set_ylim(-2.5, 3.5)
        ax.set_aspect("equal")
    return axs


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


def _draw_gap(config, *, runs, grid, p_end):
    kind, w = config.split(", penalty ")
    r = runs[(kind, float(w), 0)]
    axs = plots.new_axes(3, figsize=(8.4, 3.2))
    plot_gap_densities(grid, {"PF-ODE": r["ode"], "reverse SDE": r["sde"], "exact p_t": p_end}, axs)
    axs[0].figure.suptitle(f"{kind} network, penalty {float(w):g} (seed 0): TV(ODE, SDE) = {r['tv_ode_sde']:.3f}, "
                           f"TV to p_t {r['tv_ode_p']:.2f} / {r['tv_sde_p']:.2f}", fontsize="small")
    return axs[0].figure


def gap_widget(runs: dict):
    r"""The cached gap runs (:func:`load_gap_runs`): a menu over network kind and penalty weight, and
    the densities the PF-ODE and the reverse SDE carry with that network (seed 0) next to p_t."""
    if not isinstance(runs, dict) or "runs" not in runs:
        raise TypeError("runs must be the dict of load_gap_runs()")
    data, proc = gap_data()
    grid = gap_grid()
    p_end = fp.density_on_grid(data, proc, grid, gap_stop_time(proc))
    options = [f"{k}, penalty {w:g}" for k in GAP_CONFIG["kinds"] for w in GAP_CONFIG["weights"]]
    return interactive(_draw_gap, config=dropdown(options, options[0], "network"), runs=runs["runs"], grid=grid,
                       p_end=p_end)


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


def _residual_reference(log_p, process, x, t):
    return fp.log_density_residual(log_p, process)(x, t)


def _residual_inputs(generator, dtype, shape):
    B, D = shape
    m = torch.randn(D, generator=generator, dtype=dtype)
    c = 0.3 + torch.rand(D, generator=generator, dtype=dtype)
    return {"log_p": lambda x, t: -(((x - m * (1 - t[:, None])) ** 2) / (c + t[:, None])).sum(1) + torch.sin(x).sum(1) * t,
            "process": VP(), "x": torch.randn(B, D, generator=generator, dtype=dtype),
            "t": float(0.1 + 0.8 * torch.rand((), generator=generator))}


def check_log_density_residual(answer):
    r"""``answer(log_p, process, x, t)`` = the log-density Fokker-Planck residual (eq. 2 of lesson 05)
    ``d_t log p + D f + f x . grad log p - g^2/2 (Laplacian log p + |grad log p|^2)`` at each row of
    x (B, D), for ``log_p(x, t)`` with t a (B,) tensor: (B,). Checked on fresh log-densities, points
    and times against :func:`diffedu.fokker_planck.log_density_residual`."""
    return check_implementation(answer, _residual_reference, _residual_inputs, name="log-density FP residual",
                                tolerances={torch.float32: (2e-3, 1e-4)})


def check_hutchinson_variance(answer, A, probe: str = "rademacher", *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = the variance of the one-probe Hutchinson estimate ``z^T A z`` of ``tr A``
    (exercise 2); the expected value is :func:`diffedu.calculus.hutchinson_variance`."""
    return check_close(answer, hutchinson_variance(A, probe),
                       name=f"variance of Hutchinson's estimate ({probe} probes)", rtol=rtol)


# --- the ODE-SDE gap on a grid: thin components, free and log-density networks, with and without the penalty
#: Settings of the cached gap runs (``data/fp_gap.pt``): the data, the networks, the grid.
GAP_CONFIG = dict(hidden=64, depth=3, steps=1000, batch_size=256, lr=2e-3, fp_batch=64, weights=(0.0, 10.0),
                  kinds=("free", "energy"), seeds=(0, 1, 2), n_grid=64, lim=4.5, limiter="vanleer", cfl=0.4,
                  stop_noise=0.1, bound_times=10)
GAP_FILE = "fp_gap.pt"


def gap_data():
    """The data of the gap runs: three thin Gaussian bars (standard deviation 0.1 across, 0.9 along), and VP."""
    return GaussianMixture([0.35, 0.35, 0.3], [[-1.2, 0.0], [1.2, 0.0], [0.0, 1.6]],
                           [[[0.01, 0.0], [0.0, 0.8]], [[0.01, 0.0], [0.0, 0.8]], [[0.8, 0.0], [0.0, 0.01]]]), VP()


def gap_stop_time(process=None) -> float:
    """Where the grid solves stop: sigma/alpha = ``GAP_CONFIG["stop_noise"]`` (0.1, what a 64-cell grid resolves)."""
    process = VP() if process is None else process
    return float(process.t_of_lam(-np.log(GAP_CONFIG["stop_noise"])))


def gap_grid():
    """The (n,) cell centres of the gap solves."""
    c = GAP_CONFIG
    return np.linspace(-c["lim"], c["lim"], c["n_grid"])


def _gap_net(kind, generator=None):
    c = GAP_CONFIG
    if kind == "free":
        return ScoreMLP(VP(), 2, hidden=c["hidden"], depth=c["depth"], param="denoiser", generator=generator)
    return EnergyMLP(VP(), 2, hidden=c["hidden"], depth=c["depth"], generator=generator)


def train_gap_model(kind: str, fp_weight: float, seed: int, *, steps: int | None = None):
    r"""One gap-run network: ``kind`` "free" (a :class:`~diffedu.nets.ScoreMLP` with the score FP
    penalty of :func:`diffedu.training.dsm_loss`) or "energy" (an :class:`~diffedu.nets.EnergyMLP`,
    the scalar log-density network of Deveney et al., with their log-density penalty
    :func:`diffedu.fokker_planck.log_density_penalty`), trained by DSM on :func:`gap_data` for
    ``GAP_CONFIG["steps"]`` steps (short on purpose: the network is left with an error). Returns
    ``(model, losses)``."""
    c = GAP_CONFIG
    data, proc = gap_data()
    g = torch.Generator().manual_seed(int(seed))
    model = _gap_net(kind, g)
    sampler = lambda n, generator=None: data.sample(n, generator=generator, dtype=torch.float32)  # noqa: E731
    if kind == "free":
        loss = dsm_loss(proc, fp_weight=float(fp_weight), fp_batch=c["fp_batch"])
    else:
        dsm = dsm_loss(proc)

        def loss(m, x0, y=None, *, generator=None):
            value = dsm(m, x0, y, generator=generator)
            if fp_weight:
                value = value + fp_weight * fp.log_density_penalty(m.log_prob, proc, x0, n=c["fp_batch"],
                                                                   generator=generator)
            return value
    run = train(model, loss, sampler, steps=c["steps"] if steps is None else steps, batch_size=c["batch_size"],
                lr=c["lr"], generator=g)
    return model.eval(), run.losses


def _field64(model):
    """The model's score as a float64 field (the network runs in float32)."""
    return lambda x, t: model.score(x.float(), t).double()


def gap_solve(score, *, n_grid: int | None = None, bound: bool = True) -> dict:
    r"""Solve the PF-ODE's and the reverse SDE's density equations on the grid with ``score``
    (:func:`diffedu.grid_transport.sampler_density`, from the exact p_T at t = 1 to
    :func:`gap_stop_time`) and measure: total variation between the two and to the exact
    ``p_t``, Hellinger, the grid W2 between the two, and (``bound=True``) the Gronwall bound
    :func:`diffedu.grid_transport.gronwall_bound` from ``GAP_CONFIG["bound_times"]`` snapshots of the
    SDE's density. Returns a dict of floats and the two final densities (float32)."""
    c = GAP_CONFIG
    data, proc = gap_data()
    grid = gap_grid() if n_grid is None else np.linspace(-c["lim"], c["lim"], n_grid)
    h2 = float(grid[1] - grid[0]) ** 2
    t_end = gap_stop_time(proc)
    p_T = fp.density_on_grid(data, proc, grid, 1.0)
    p_end = fp.density_on_grid(data, proc, grid, t_end)
    kw = dict(limiter=c["limiter"], cfl=c["cfl"])
    times = np.exp(np.linspace(np.log(t_end), 0.0, c["bound_times"]))[1:-1] if bound else ()
    ode = gt.sampler_density(score, proc, grid, p_T, 1.0, t_end, churn=0.0, **kw)
    sde = gt.sampler_density(score, proc, grid, p_T, 1.0, t_end, churn=1.0, keep=times, **kw)
    out = {"tv_ode_sde": gt.grid_tv(ode.density, sde.density, h2), "tv_ode_p": gt.grid_tv(ode.density, p_end, h2),
           "tv_sde_p": gt.grid_tv(sde.density, p_end, h2),
           "hel_ode_sde": gt.grid_hellinger(ode.density, sde.density, h2),
           "w2_ode_sde": gt.grid_w2(ode.density, sde.density, grid), "steps_ode": ode.steps, "steps_sde": sde.steps,
           "ode": ode.density.astype(np.float32), "sde": sde.density.astype(np.float32)}
    if bound:
        ts = np.concatenate([[t_end], sde.times[::-1]])
        snaps = np.concatenate([sde.density[None], sde.snapshots[::-1]])
        terms = [gt.gronwall_terms(score, proc, grid, q, float(t)) for t, q in zip(ts, snaps)]
        eps, lam = (np.array(a) for a in zip(*terms))
        g2 = np.array([float(proc.g2(torch.tensor(float(t), dtype=torch.float64))) for t in ts])
        out.update(bound=gt.gronwall_bound(ts, eps, lam, g2), bound_ts=ts, bound_eps=eps, bound_lambda=lam)
    return out


def gap_runs(*, seeds=None, steps: int | None = None, n_grid: int | None = None, progress: bool = False,
             save: bool = False) -> dict:
    r"""Train every gap-run network (``GAP_CONFIG``: kinds x penalty weights x seeds) and solve its
    densities (:func:`gap_solve`); also the exact score's solve (the floor). Returns
    ``{"config", "exact": solve, "runs": {(kind, weight, seed): solve + score_error}}``; ``save=True``
    rewrites ``data/fp_gap.pt`` after every run (about 3 minutes each on one core)."""
    c = GAP_CONFIG
    data, proc = gap_data()
    seeds = c["seeds"] if seeds is None else seeds
    out = {"config": dict(c), "exact": gap_solve(data.bind(proc).score, n_grid=n_grid), "runs": {}}
    for kind in c["kinds"]:
        for w in c["weights"]:
            for seed in seeds:
                model, losses = train_gap_model(kind, w, seed, steps=steps)
                res = gap_solve(_field64(model), n_grid=n_grid)
                res["score_error"] = [float(e) for e in relative_score_error(
                    _field64(model), data, proc, [gap_stop_time(proc), 0.1, 0.3], n=2000,
                    generator=torch.Generator().manual_seed(1))]
                out["runs"][(kind, float(w), int(seed))] = res
                if progress:
                    print(kind, w, seed, {k: round(v, 4) for k, v in res.items() if isinstance(v, float)}, flush=True)
                if save:
                    save_gap_runs(out)
    return out


def save_gap_runs(results: dict, path=None) -> Path:
    """Write :func:`gap_runs`'s results to ``data/fp_gap.pt`` (densities of seed 0 only, float16)."""
    path = writable_data_path(GAP_FILE) if path is None else Path(path)
    slim = {"config": results["config"], "exact": _slim(results["exact"], True), "runs": {}}
    for key, res in results["runs"].items():
        slim["runs"]["|".join(map(str, key))] = _slim(res, key[2] == 0)
    torch.save(slim, path)
    return path


def _slim(res, keep_densities):
    out = {}
    for k, v in res.items():
        if isinstance(v, np.ndarray):
            if k in ("ode", "sde") and not keep_densities:
                continue
            out[k] = torch.as_tensor(v).to(torch.float16 if k in ("ode", "sde") else torch.float64)
        else:
            out[k] = v
    return out


def over_seeds(gap, kind, weight, key) -> tuple[float, float]:
    """One figure of the cached gap runs (:func:`load_gap_runs`) over the seeds of ``GAP_CONFIG``:
    ``(mean, sample standard deviation)`` of ``gap["runs"][(kind, weight, seed)][key]``."""
    v = np.array([gap["runs"][(kind, weight, s)][key] for s in GAP_CONFIG["seeds"]], dtype=float)
    return float(v.mean()), float(v.std(ddof=1))


def load_gap_runs(path=None) -> dict:
    """The cached gap runs (``data/fp_gap.pt``): ``{"config", "exact", "runs": {(kind, weight, seed): {...}}}``;
    densities as float64 NumPy arrays. ``ValueError`` when the file's settings differ from :data:`GAP_CONFIG`."""
    path = data_path(GAP_FILE) if path is None else Path(path)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob["config"] != GAP_CONFIG:
        raise ValueError(f"{path} was made with {blob['config']}, not GAP_CONFIG: rerun "
                         "python3 -m diffedu.teach.fokker_planck gap")

    def unslim(r):
        return {k: (v.double().numpy() if isinstance(v, torch.Tensor) else v) for k, v in r.items()}
    runs = {}
    for key, r in blob["runs"].items():
        kind, w, seed = key.split("|")
        runs[(kind, float(w), int(seed))] = unslim(r)
    return {"config": blob["config"], "exact": unslim(blob["exact"]), "runs": runs}


def main(argv=None) -> int:
    import sys
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["gap"]:
        print("usage: python3 -m diffedu.teach.fokker_planck gap   (retrains and re-solves data/fp_gap.pt)")
        return 2
    gap_runs(progress=True, save=True)
    print(f"wrote {writable_data_path(GAP_FILE)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
