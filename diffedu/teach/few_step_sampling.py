r"""Plots, the slider, the cached grids and the checkers of the lesson "Few-step sampling"
(lessons/17_few_step_sampling.ipynb).

The maths lives in the core: :mod:`diffedu.flow_map` (the exact flow map, its Jacobian, the
consistency sampler, the distillation terms), :mod:`diffedu.timegrids` (optimised grids, the
denoiser's speed along the flow), :mod:`diffedu.few_step` (EVODiff, the five-step recipe),
:mod:`diffedu.training` (``flow_map_loss``), :mod:`diffedu.samplers` and :mod:`diffedu.metrics`.

**The cached grids.** Fitting a grid for every sampler, number of calls and problem takes
minutes (the 64-D mixture most of it), more than a lesson may run, so the fitted grids are
cached in ``data/few_step_grids.json`` with the settings they were fitted with
(:data:`GRID_CONFIG`). Regenerate them with

    python3 -m diffedu.teach.few_step_sampling grids

which runs :func:`fit_grids` with ``save=True`` (about 21 minutes on a busy 2-core CPU);
``benchmarks/samplers.py accuracy`` reads the same file. A slow test refits entries and compares.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import torch

from .. import samplers as S
from .._paths import data_path, writable_data_path
from ..datasets import random_mixture, ring
from ..few_step import evodiff
from ..flow_map import flow_map_terms
from ..gaussian import Gaussian
from ..processes import EDM, time_grid
from ..timegrids import grid_errors, grid_from_logits, optimise_time_grid
from .checks import check_implementation
from .plots import _ax, new_axes
from .widgets import dropdown, interactive, selection_slider

__all__ = [
    "GRIDS",
    "GRID_CONFIG",
    "GRID_FILE",
    "SAMPLERS",
    "cached_grid",
    "check_flow_map_terms",
    "check_grid_from_logits",
    "check_three_step_grid",
    "error_table",
    "fit_grids",
    "grid_widget",
    "load_grids",
    "plot_error_vs_calls",
    "plot_flow_map",
    "plot_grids",
    "print_error_table",
    "problem",
    "starts",
    "steps_for",
]

GRID_FILE = "few_step_grids.json"
#: The samplers of the lesson, by name (DETERMINISTIC's and EVODiff).
SAMPLERS = {**{k: S.DETERMINISTIC[k] for k in ("ddim", "heun", "dpmpp_2m", "dpmpp_3m", "multistep3")},
            "evodiff": evodiff}
#: The grids compared: the course's spacings, the optimised grid and the teleported optimised grid.
GRIDS = ("karras", "lambda", "uniform", "optimised", "teleport + optimised")
#: Settings of the cached grids (changing them needs ``fit_grids(save=True)``).
GRID_CONFIG = dict(problems=("ring", "mix64"), samplers=tuple(SAMPLERS), calls=(3, 5, 10),
                   fit_starts={"ring": 500, "mix64": 200}, fit_seed=3, objective="mean", generations=30,
                   population=12, parents=4, seed=0, rtol=1e-9)


def problem(name: str):
    """``(distribution, process)`` of a named problem: ``"ring"`` (the 8-Gaussian ring in 2-D) or
    ``"mix64"`` (:func:`diffedu.datasets.random_mixture`, the benchmark's 64-D mixture), both under EDM."""
    if name == "ring":
        return ring(), EDM()
    if name == "mix64":
        return random_mixture(), EDM()
    raise ValueError(f"name must be 'ring' or 'mix64'; got {name!r}")


def steps_for(sampler: str, calls: int) -> int:
    """Grid steps N for a number of denoiser calls: Heun takes 2 calls a step (1 for the final jump)."""
    return (calls + 1) // 2 if sampler == "heun" else calls


def starts(name: str, n: int, seed: int, *, rtol: float = 1e-9):
    r"""n starts x ~ p_T of a problem (float64) and where the exact flow takes them, as every sampler's
    final jump does: ``(x, D(Phi_{T -> t_eps}(x), t_eps))``, both (n, D)."""
    dist, p = problem(name)
    x = dist.sample_marginal(n, p.t_max, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    D = dist.bind(p).denoiser
    return x, D(dist.flow(x, p.t_max, p.t_eps, p, rtol=rtol, atol=rtol), p.t_eps)


def _key(name, sampler, calls, teleport):
    return f"{name}/{sampler}/{calls}/{'teleport' if teleport else 'plain'}"


def fit_grids(config=None, *, save: bool = False, progress: bool = False) -> dict:
    r"""Fit the grid of every problem, sampler, number of calls and teleport choice of ``config``
    (default :data:`GRID_CONFIG`) with :func:`diffedu.timegrids.optimise_time_grid` on its own
    starts (``fit_seed``; the lesson and the benchmark measure on other seeds), starting from the
    log-SNR and Karras grids; where the teleported search ends above the plain optimum on the fitting
    starts, the plain grid is kept as the teleport grid (it starts at t_max: no jump), so teleporting
    never hurts on the fitting starts: ``{key: entry}``
    with key ``"problem/sampler/calls/plain|teleport"`` and entry ``{"ts", "fit_error",
    "history"}``. A plain grid of fewer than 3 steps (Heun at 3 calls) has nothing free and is left
    out. ``save=True`` writes ``data/few_step_grids.json`` (a source checkout only)."""
    c = dict(GRID_CONFIG if config is None else config)
    out = {}
    for name in c["problems"]:
        dist, p = problem(name)
        D = dist.bind(p).denoiser
        x, ref = starts(name, c["fit_starts"][name], c["fit_seed"], rtol=c["rtol"])
        G = Gaussian(dist.mean, dist.cov)
        for sname in c["samplers"]:
            for calls in c["calls"]:
                n = steps_for(sname, calls)
                plain = None
                for tele in (False, True):
                    if n < 3 - tele:
                        continue
                    fit = optimise_time_grid(SAMPLERS[sname], D, p, n, x, reference=ref, teleport=G if tele else None,
                                             init=["lambda", "karras"], objective=c["objective"],
                                             generations=c["generations"], population=c["population"],
                                             parents=c["parents"], generator=torch.Generator().manual_seed(c["seed"]))
                    entry = {"ts": fit.ts.tolist(), "fit_error": fit.error, "history": fit.history.tolist()}
                    if tele and plain is not None and plain["fit_error"] < fit.error:
                        entry = dict(plain)             # not teleporting (ts[0] = t_max) is a teleport grid too
                    out[_key(name, sname, calls, tele)] = entry
                    plain = entry
                    if progress:
                        print(f"{_key(name, sname, calls, tele):32s} {fit.error:.4g}", flush=True)
    if save:
        blob = {"config": {k: (dict(v) if isinstance(v, dict) else v) for k, v in c.items()}, "grids": out}
        writable_data_path(GRID_FILE).write_text(json.dumps(blob, indent=1) + "\n")
    return out


def _jsonable(c):
    return json.loads(json.dumps({k: (dict(v) if isinstance(v, dict) else v) for k, v in c.items()}))


def load_grids() -> dict:
    """The cached grids ``{key: entry}`` (:func:`fit_grids`); refuses a cache fitted with other settings."""
    blob = json.loads(data_path(GRID_FILE).read_text())
    if blob["config"] != _jsonable(GRID_CONFIG):
        raise ValueError(f"{GRID_FILE} was fitted with {blob['config']}, not {GRID_CONFIG}: refit it with "
                         "python3 -m diffedu.teach.few_step_sampling grids")
    return blob["grids"]


def cached_grid(name: str, sampler: str, calls: int, teleport: bool = False) -> torch.Tensor:
    """One cached optimised grid: (N+1,) float64 (``ts[0] < t_max`` when teleported)."""
    grids = load_grids()
    key = _key(name, sampler, calls, teleport)
    if key not in grids:
        raise ValueError(f"no cached grid {key!r} (a plain Heun grid at 3 calls has nothing to optimise)")
    return torch.tensor(grids[key]["ts"], dtype=torch.float64)


def _grid(name, sampler, calls, kind, grids):
    """(ts, teleport target or None) of a grid kind, or None when it does not exist."""
    dist, p = problem(name)
    n = steps_for(sampler, calls)
    if kind in ("karras", "lambda", "uniform"):
        return time_grid(p, n, kind), None
    tele = kind.startswith("teleport")
    key = _key(name, sampler, calls, tele)
    if key not in grids:
        return None
    return torch.tensor(grids[key]["ts"], dtype=torch.float64), (Gaussian(dist.mean, dist.cov) if tele else None)


def error_table(name: str, x, reference, *, samplers=None, calls=(3, 5, 10), grids=GRIDS) -> dict:
    r"""Per-start errors ``|x_sampler - reference|`` (:func:`diffedu.timegrids.grid_errors`) of every
    sampler, grid kind and number of calls: ``{(sampler, grid, calls): (B,) errors}`` (grids that do
    not exist, such as a plain optimised Heun grid at 3 calls, are left out)."""
    dist, p = problem(name)
    D = dist.bind(p).denoiser
    out, cached = {}, load_grids()
    for sname in samplers or SAMPLERS:
        for calls_ in calls:
            for kind in grids:
                g = _grid(name, sname, calls_, kind, cached)
                if g is not None:
                    out[(sname, kind, calls_)] = grid_errors(SAMPLERS[sname], D, p, x, g[0], reference, teleport=g[1])
    return out


def print_error_table(table: dict, stat: str = "median") -> None:
    """Print the table of :func:`error_table` (median, or p90) with samplers as rows, grid kinds and
    calls as columns; the standard error of a median is taken as 1.25 sd / sqrt(B)."""
    keys = list(table)
    samplers = list(dict.fromkeys(k[0] for k in keys))
    kinds = list(dict.fromkeys(k[1] for k in keys))
    calls = sorted({k[2] for k in keys})
    print(f"{stat} error against the exact flow; columns: grid @ calls")
    print(f"{'':11s}" + "".join(f"{kind[:10]:>11s}@{c:<2d}" for c in calls for kind in kinds))
    for s in samplers:
        row = f"{s:11s}"
        for c in calls:
            for kind in kinds:
                e = table.get((s, kind, c))
                v = float("nan") if e is None else float(e.median() if stat == "median" else e.quantile(0.9))
                row += f"{v:14.3g}"
        print(row)


# --- plots ------------------------------------------------------------------------------------
def plot_grids(grids: dict, lam_path=None, speed=None, *, process=None, ax=None):
    r"""The grids as rows of ticks on the axis of the noise level sigma/alpha (log scale, noise on the
    left), over the denoiser's speed along the exact flow (:func:`diffedu.timegrids.denoiser_speed`,
    ``speed`` at the midpoints ``lam_path``) when given. grids: ``{label: ts}``."""
    ax = _ax(ax)
    p = process or EDM()
    labels = list(grids)
    for i, label in enumerate(labels):
        ts = torch.as_tensor(grids[label], dtype=torch.float64)
        level = torch.exp(-p.lam(ts[ts > 0])).numpy()
        ax.plot(level, np.full(len(level), i), "|", ms=14, mew=2, color=f"C{i}")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("noise level sigma/alpha (sampling runs left to right)")
    ax.set_ylim(-0.7, len(labels) - 0.3)
    if speed is not None:
        tw = ax.twinx()
        tw.plot(np.exp(-np.asarray(lam_path)), np.asarray(speed), color="0.5", lw=1.2)
        tw.set_ylabel("|dD/dlambda| along the flow", color="0.4")
        tw.set_yscale("log")
    return ax


def plot_error_vs_calls(table: dict, sampler: str, ax=None):
    """Median error (with the 10-90% range as a band) against the number of calls, one line per grid kind."""
    ax = _ax(ax)
    kinds = list(dict.fromkeys(k[1] for k in table if k[0] == sampler))
    for i, kind in enumerate(kinds):
        cs = sorted(c for (s, k, c) in table if s == sampler and k == kind)
        med = [float(table[(sampler, kind, c)].median()) for c in cs]
        lo = [float(table[(sampler, kind, c)].quantile(0.1)) for c in cs]
        hi = [float(table[(sampler, kind, c)].quantile(0.9)) for c in cs]
        ax.plot(cs, med, "o-", color=f"C{i}", label=kind)
        ax.fill_between(cs, lo, hi, color=f"C{i}", alpha=0.12)
    ax.set_yscale("log")
    ax.set_xlabel("denoiser calls")
    ax.set_ylabel("|x - exact| (median, 10-90%)")
    ax.set_title(sampler, fontsize="medium")
    ax.legend(fontsize="small")
    return ax


def _draw_grids(sampler, calls, *, name, x, reference, lam_path, speed):
    dist, p = problem(name)
    grids, errs, cached = {}, {}, load_grids()
    for kind in GRIDS:
        g = _grid(name, sampler, calls, kind, cached)
        if g is None:
            continue
        grids[kind] = g[0]
        errs[kind] = grid_errors(SAMPLERS[sampler], dist.bind(p).denoiser, p, x, g[0], reference, teleport=g[1])
    axs = new_axes(2, figsize=(9.6, 3.8))
    plot_grids(grids, lam_path, speed, process=p, ax=axs[0])
    axs[0].set_title(f"{sampler}, {calls} calls: where the steps fall", fontsize="medium")
    ax = axs[1]
    for i, (kind, e) in enumerate(errs.items()):
        ax.plot(np.sort(e.numpy()), np.linspace(0, 1, len(e)), color=f"C{i}", label=f"{kind} ({float(e.median()):.2g})")
    ax.set_xscale("log")
    ax.set_xlabel("|x - exact flow| per start")
    ax.set_ylabel("fraction of starts")
    ax.set_title("error per start (median in brackets)", fontsize="medium")
    ax.legend(fontsize="small")
    return ax.figure


def grid_widget(name: str, x, reference, lam_path, speed):
    """Menus over the sampler and the number of calls: :func:`plot_grids` and the errors per start of
    every grid kind on the given fresh starts (x and their exact ``reference``)."""
    return interactive(_draw_grids, sampler=dropdown(list(SAMPLERS), "dpmpp_2m", "sampler"),
                       calls=selection_slider([3, 5, 10], 5, "denoiser calls"), name=name, x=x, reference=reference,
                       lam_path=lam_path, speed=speed)


def plot_flow_map(x_T, end, steep, err, *, axs=None):
    r"""Three panels over the starts ``x_T`` (B, 2): where the exact map sends each start (coloured by
    the mode it lands nearest, ``end``: (B,) ints), how steep the map is there (``steep``: the largest
    singular value of its Jacobian, :func:`diffedu.flow_map.flow_jacobian`), and a distilled model's
    error there (``err``). Log colour scales."""
    if axs is None:
        axs = new_axes(3, figsize=(12.0, 3.8), pyplot=True)
    from matplotlib.colors import LogNorm

    xs = np.asarray(x_T)
    axs[0].scatter(xs[:, 0], xs[:, 1], c=np.asarray(end), cmap="tab10", s=4)
    axs[0].set_title("the mode each start flows to", fontsize="medium")
    for ax, v, title in ((axs[1], steep, "steepness of the exact map"), (axs[2], err, "distilled model's error")):
        v = np.asarray(v)
        order = np.argsort(v)                           # the largest values drawn last, on top
        sc = ax.scatter(xs[order, 0], xs[order, 1], c=v[order], cmap="viridis", s=6,
                        norm=LogNorm(vmin=max(v.min(), 1e-3), vmax=v.max()))
        ax.figure.colorbar(sc, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(title, fontsize="medium")
    for ax in axs:
        ax.set_aspect("equal")
        ax.set_xlabel("x_T[0]")
    axs[0].set_ylabel("x_T[1]")
    axs[0].figure.subplots_adjust(wspace=0.5)          # keeps the colour bars off the next panel
    return axs


# --- exercises --------------------------------------------------------------------------------
def _logit_inputs(generator, dtype, shape):
    from ..processes import VP

    B, D = shape
    n = B + 1                                        # the shapes give grids of 5, 2 and 7 steps
    return {"process": VP() if D % 2 else EDM(), "logits": torch.randn(n, generator=generator, dtype=dtype)}


def _grid_reference(process, logits):
    return grid_from_logits(process, logits.to(torch.float64)).to(logits.dtype)


def check_grid_from_logits(answer):
    r"""``answer(process, logits)`` = the grid of the logits: ``lambda`` increments ``L softmax(w)``
    from ``lambda(t_max)`` to ``lambda(t_eps)``, times by ``process.t_of_lam``, ends exact, then 0:
    ``(len(w) + 2,)`` in the logits' dtype. Checked on fresh logits against
    :func:`diffedu.timegrids.grid_from_logits`."""
    return check_implementation(answer, _grid_reference, _logit_inputs, name="grid from logits",
                                tolerances={torch.float32: (1e-4, 1e-6)})


def _terms_inputs(generator, dtype, shape):
    B, D = shape
    T = 4
    A = torch.randn(D, D, generator=generator, dtype=dtype) / math.sqrt(D)
    return {"F": lambda x, t: x @ A.T / (1 + t)[:, None],  # a made-up model of the map to data
            "x0": torch.randn(shape, generator=generator, dtype=dtype),
            "paths": torch.randn(B, T, D, generator=generator, dtype=dtype),
            "times": 0.05 + torch.rand(T, generator=generator, dtype=dtype),
            "k": torch.randint(T, (B,), generator=generator)}


def check_flow_map_terms(answer):
    r"""``answer(F, x0, paths, times, k)`` = per row ``|F(paths[b, k_b], times[k_b]) - x0_b|^2``: (B,).
    Checked on fresh inputs against :func:`diffedu.flow_map.flow_map_terms`."""
    return check_implementation(answer, flow_map_terms, _terms_inputs, name="distillation terms")


def check_three_step_grid(answer, *, n: int = 500, seed: int = 7):
    r"""``answer``: a DDIM grid of 3 steps for the ring, ``[t_max, t_1, t_eps, 0]`` (EDM: t is sigma),
    judged on ``n`` fresh starts (``seed``) by its median error against the exact flow. Correct when
    it is within 5% of the cached optimised grid's (or better)."""
    from .checks import say, unanswered

    name = "a 3-step DDIM grid"
    if unanswered(answer):
        return say("unanswered", name, "")
    dist, p = problem("ring")
    try:
        ts = torch.as_tensor(answer, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        return say("wrong", name, f"expected 4 times, got a {type(answer).__name__}")
    if ts.numel() != 4 or float(ts[0]) != p.t_max or abs(float(ts[2]) - p.t_eps) > 1e-9 or float(ts[3]) != 0.0:
        return say("wrong", name, f"expected [t_max = {p.t_max:g}, t_1, t_eps = {p.t_eps:g}, 0]; got {ts.tolist()}")
    if not p.t_eps < float(ts[1]) < p.t_max:
        return say("wrong", name, f"t_1 must lie between t_eps and t_max; got {float(ts[1]):.4g}")
    x, ref = starts("ring", n, seed, rtol=1e-8)
    D = dist.bind(p).denoiser
    mine = float(grid_errors(S.ddim, D, p, x, ts, ref).median())
    best = float(grid_errors(S.ddim, D, p, x, cached_grid("ring", "ddim", 3), ref).median())
    text = f"median error {mine:.4g} on {n} fresh starts; the cached optimised grid's {best:.4g}"
    return say("correct" if mine <= 1.05 * best else "wrong", name,
               text + ("" if mine <= 1.05 * best else "; look further along the noise levels"))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["grids"]:
        print("usage: python3 -m diffedu.teach.few_step_sampling grids   (refits data/few_step_grids.json)")
        return 2
    fit_grids(save=True, progress=True)
    print(f"wrote {writable_data_path(GRID_FILE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
