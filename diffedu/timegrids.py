r"""Time grids fitted to the truth: the grid of N steps that makes a sampler's error smallest.

A sampler's error at a fixed number of denoiser calls depends on where its steps fall.
:func:`~diffedu.processes.time_grid` gives the grids of the papers (uniform in t, uniform in
``lambda``, Karras et al.'s ``rho = 7``); :func:`optimise_time_grid` searches for the grid
that minimises a sampler's distance to a reference, the exact flow map
(:meth:`diffedu.Gaussian.flow`, :func:`diffedu.flow_map.pf_ode_flow`), on the given starts.

**The search space.** A grid of N steps runs ``t_max = t_0 > t_1 > ... > t_{N-1} = t_eps > t_N = 0``
(the final jump, as every sampler takes it). Its N - 2 interior times are free. They are
written in the half log-SNR: ``lambda_{k+1} - lambda_k = L softmax(w)_k`` with
``L = lambda(t_eps) - lambda(t_max)`` and logits w (N - 1 of them), so every w is a valid,
strictly decreasing grid with the ends fixed; with ``teleport`` (a Gaussian) the first time is
free too (one more logit): the start x at t_max is carried to ``t_0`` by the exact flow of that
Gaussian (:func:`diffedu.gaussian_approx.teleport`, Wang and Vastola 2024), which costs no call.

**The search.** The samplers cannot be differentiated through their grid (it becomes Python
floats before the loop, so that the loop never waits for a GPU), so the search is
derivative-free and evolutionary, as AutoDiffusion's (Li et al. 2023, "AutoDiffusion:
Training-free optimization of time steps and architectures for automated diffusion model
acceleration", Sec. 3.3: a population of step sequences, crossover and mutation, the best kept).
Here the candidates are the continuous logits w rather than subsets of 1,000 discrete steps, and
the fitness is the error against the exact flow rather than an FID: each generation draws
``population`` children, each one a uniform crossover of two of the ``parents`` best grids so far
plus Gaussian noise of scale ``step`` on every logit; the best ``parents`` of parents and
children survive (elitist); ``step`` shrinks by ``shrink`` after a generation without progress.
Several initial grids start one island each, which evolve apart (the ``population`` children of
a generation are shared between them), so that one good start cannot crowd out the basin of
another. The best grid of all islands is then polished locally by the Nelder-Mead simplex
(Nelder and Mead 1965, :func:`scipy.optimize.minimize`, ``polish`` evaluations): the error
landscape has several basins, and this pair (a global search, a local polish) finds grids whose
errors differ less between seeds than either alone (lesson 17 shows the spread). All draws come
from ``generator``.

A fitted grid is only worth something if it generalises: fit on some starts, measure on fresh
ones (:func:`grid_errors`). Lesson 17 (few-step sampling) and ``benchmarks/samplers.py accuracy``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from ._core import (as_times, check_batch, check_callable, check_choice, check_generator, check_int,
                    check_positive, check_process, check_real, shape_checked)
from .gaussian import Gaussian
from .processes import time_grid

__all__ = ["GridFit", "optimise_time_grid", "grid_errors", "grid_logits", "grid_from_logits", "denoiser_speed",
           "OBJECTIVES"]

#: How :func:`optimise_time_grid` sums the per-start errors ``|x_sampler - x_reference|``.
OBJECTIVES = ("mean", "rms", "median", "p90")


class GridFit(NamedTuple):
    """What :func:`optimise_time_grid` returns.

    ts: (N+1,) float64, strictly decreasing, ``ts[-2] = t_eps``, ``ts[-1] = 0`` (``ts[0] = t_max``
    unless teleporting); error: the objective at ts on the fitting starts (after the polish, so at
    most ``history[-1]``); history: (generations + 1,) float64, the best objective after each
    generation of the evolutionary search (index 0: the best initial grid); evaluations: the
    number of sampler runs, the polish's included.
    """

    ts: torch.Tensor
    error: float
    history: torch.Tensor
    evaluations: int


def _ends(process, t_eps):
    t_eps = process.t_eps if t_eps is None else check_real(t_eps, "t_eps")
    if not process.t_min < t_eps < float(process.t_max):
        raise ValueError(f"t_eps must lie in ({process.t_min}, {process.t_max}); got {t_eps}")
    return float(process.lam(float(process.t_max))), float(process.lam(t_eps)), t_eps


def grid_from_logits(process, logits, *, t_eps: float | None = None, teleport: bool = False) -> torch.Tensor:
    r"""The grid of the logits w: (N+1,) float64 with ``N = len(w) + 1`` (``len(w)`` without teleport).

    ``lambda_{k+1} - lambda_k = L softmax(w)_k``, ``L = lambda(t_eps) - lambda(t_max)``, from
    ``lambda(t_max)``; with ``teleport=True`` the first increment is the teleport jump (not a
    step), so ``ts[0] = t(lambda(t_max) + L softmax(w)_0)``. The ends are exact (``t_max`` or the
    teleport time, then ``t_eps``, then 0).
    """
    process = check_process(process)
    w = as_times(logits, "logits")
    if not torch.isfinite(w).all():
        raise ValueError("logits must be finite")
    lam_hi, lam_lo, t_eps = _ends(process, t_eps)
    if w.numel() < 1 + bool(teleport):
        raise ValueError(f"logits must hold at least {1 + bool(teleport)} values; got {w.numel()}")
    h = (lam_lo - lam_hi) * torch.softmax(w, 0)
    lam = lam_hi + torch.cat([w.new_zeros(1), torch.cumsum(h, 0)])
    ts = process.t_of_lam(lam)
    ts[0], ts[-1] = float(process.t_max), t_eps
    if teleport:
        ts = ts[1:]
    return torch.cat([ts, ts.new_zeros(1)])


def grid_logits(process, ts, *, teleport: bool = False) -> torch.Tensor:
    r"""The logits of a grid (inverse of :func:`grid_from_logits`): ``log`` of its lambda increments.

    ts: (N+1,) strictly decreasing, ending ``..., t_eps, 0``, starting at ``t_max`` (or, with
    ``teleport=True``, anywhere below it: the first logit is then the teleport jump). Returns
    (N - 1,) or, teleporting, (N,) float64."""
    process = check_process(process)
    ts = as_times(ts)
    process.check_t(ts, "ts")
    if ts.numel() < 3 or float(ts[-1]) != 0.0 or not bool((ts[1:] < ts[:-1]).all()):
        raise ValueError(f"ts must be a strictly decreasing grid of at least 2 steps ending at 0; got {ts.tolist()}")
    inner = ts[:-1]
    if teleport:
        inner = torch.cat([inner.new_tensor([float(process.t_max)]), inner])
        if not float(inner[1]) < float(process.t_max):
            inner = torch.cat([inner[:1], inner[2:]])   # no teleport jump: start it at a tiny one
            lam = process.lam(inner)
            h = lam[1:] - lam[:-1]
            return torch.log(torch.cat([h.new_tensor([1e-6 * float(h.sum())]), h]))
    elif float(inner[0]) != float(process.t_max):
        raise ValueError(f"ts must start at t_max = {process.t_max} (or pass teleport=True); got {float(ts[0])}")
    lam = process.lam(inner)
    return torch.log(lam[1:] - lam[:-1])


def _run(sampler, D, process, x, ts, teleport, kw):
    from .gaussian_approx import teleport as _teleport

    with torch.no_grad():
        if teleport is None:
            return sampler(D, process, x, ts, **kw)
        return _teleport(sampler, D, process, x, ts, teleport, t_from=float(process.t_max), **kw)


def grid_errors(sampler, D, process, x, ts, reference, *, teleport: Gaussian | None = None,
                sampler_kw: dict | None = None) -> torch.Tensor:
    r"""Per-start error of a sampler on a grid: ``|x_sampler - reference|`` per row, (B,) float64.

    x: (B, D) at ``t_max``; ts: the grid (``ts[0] = t_max``, or lower with ``teleport``, a
    :class:`~diffedu.Gaussian` whose exact flow carries x from t_max to ``ts[0]``); reference:
    (B, D), where the exact flow takes x (for the samplers' final jump at ``t_eps``:
    ``D(Phi_{t_max -> t_eps}(x), t_eps)``). ``sampler_kw`` go to the sampler."""
    check_callable(sampler, "sampler", "a sampler function sampler(D, process, x, ts)")
    x = check_batch(x)
    reference = check_batch(reference, x.shape[1], "reference")
    if reference.shape != x.shape:
        raise ValueError(f"reference must have x's shape {tuple(x.shape)}; got {tuple(reference.shape)}")
    if teleport is not None and not isinstance(teleport, Gaussian):
        raise TypeError(f"teleport must be a diffedu.Gaussian or None; got {type(teleport).__name__}")
    out = _run(sampler, D, process, x, ts, teleport, dict(sampler_kw or {}))
    return (out - reference).norm(dim=1).to(torch.float64)


def _summary(err: torch.Tensor, objective: str) -> float:
    if not bool(torch.isfinite(err).all()):
        return math.inf
    if objective == "mean":
        return float(err.mean())
    if objective == "rms":
        return float(err.square().mean().sqrt())
    if objective == "median":
        return float(err.median())
    return float(err.quantile(0.9))


def optimise_time_grid(sampler, D, process, n_steps: int, x, *, reference, teleport: Gaussian | None = None,
                       init="lambda", t_eps: float | None = None, objective: str = "mean", generations: int = 20,
                       population: int = 12, parents: int = 4, step: float = 0.5, shrink: float = 0.7,
                       polish: int = 100, sampler_kw: dict | None = None,
                       generator: torch.Generator | None = None) -> GridFit:
    r"""The grid of ``n_steps`` steps on which ``sampler`` lands closest to ``reference``: a :class:`GridFit`.

    sampler: any sampler of :mod:`diffedu.samplers` (signature ``sampler(D, process, x, ts)``);
    D: the denoiser; x: (B, D) starts at ``t_max``; reference: (B, D), where each should land (the
    exact flow, then the final jump: ``D(Phi_{t_max -> t_eps}(x), t_eps)``). n_steps: N, the
    steps of the grid including the final jump (``n_steps`` denoiser calls for the one-call
    samplers, as :func:`~diffedu.processes.time_grid`'s ``n``); at least 3 (2 with ``teleport``),
    below that nothing is free. ``objective`` sums the per-start errors ``|x_N - reference|``:
    ``"mean"``, ``"rms"``, ``"median"`` or ``"p90"`` (the 90th percentile). ``init``: the spacing
    of :func:`~diffedu.processes.time_grid` to start from (``"lambda"``, ``"karras"``,
    ``"uniform"``), a grid tensor, or a list of them (all enter the first pool, the best survive;
    with ``teleport`` a spacing gives the grid of ``n_steps + 1`` steps whose first step is
    teleported, and a grid starting at t_max a tiny first jump). The search (the module docstring; AutoDiffusion's
    evolutionary search with the exact error as fitness) runs ``generations`` generations of
    ``population`` children, then at most ``polish`` evaluations of a Nelder-Mead polish (0: none);
    ``generator`` draws every mutation and crossover. ``teleport``: a
    :class:`~diffedu.Gaussian` (the data's mean and covariance) whose exact flow skips from t_max
    to a first time that is searched too. Judge the result on fresh starts with :func:`grid_errors`.
    """
    check_callable(sampler, "sampler", "a sampler function sampler(D, process, x, ts)")
    check_callable(D, "D", "a denoiser D(x, t) -> (B, D)")
    process = check_process(process)
    tele = teleport is not None
    if tele and not isinstance(teleport, Gaussian):
        raise TypeError(f"teleport must be a diffedu.Gaussian or None; got {type(teleport).__name__}")
    n_steps = check_int(n_steps, "n_steps", minimum=3 - tele)
    x = check_batch(x)
    reference = check_batch(reference, x.shape[1], "reference")
    if reference.shape != x.shape:
        raise ValueError(f"reference must have x's shape {tuple(x.shape)}; got {tuple(reference.shape)}")
    check_choice(objective, "objective", OBJECTIVES)
    generations = check_int(generations, "generations", minimum=0)
    polish = check_int(polish, "polish", minimum=0)
    population = check_int(population, "population", minimum=1)
    parents = check_int(parents, "parents", minimum=1)
    step, shrink = check_positive(step, "step"), check_real(shrink, "shrink", minimum=0.0, maximum=1.0, strict=True)
    check_generator(generator, "cpu")
    if sampler_kw is not None and not isinstance(sampler_kw, dict):
        raise TypeError(f"sampler_kw must be a dict of keyword arguments or None; got {type(sampler_kw).__name__}")
    kw = dict(sampler_kw or {})
    _, _, t_eps = _ends(process, t_eps)
    inits = list(init) if isinstance(init, (list, tuple)) else [init]
    if not inits:
        raise ValueError("init must name at least one grid")
    starts = []
    for one in inits:
        if isinstance(one, str):
            check_choice(one, "init", ("lambda", "karras", "uniform"))
            starts.append(grid_logits(process, time_grid(process, n_steps + tele, one, t_eps=t_eps)))
            continue
        one = as_times(one, "init")
        if one.numel() != n_steps + 1 or abs(float(one[-2]) - t_eps) > 1e-12 * max(1.0, t_eps):
            raise ValueError(f"init must be a grid of n_steps + 1 = {n_steps + 1} times ending at t_eps = "
                             f"{t_eps:.6g}, then 0; got {one.tolist()}")
        starts.append(grid_logits(process, one, teleport=tele))

    evaluations = 0

    def fitness(w):
        nonlocal evaluations
        evaluations += 1
        ts = grid_from_logits(process, w, t_eps=t_eps, teleport=tele)
        if not bool((ts[1:] < ts[:-1]).all()):         # increments below float resolution
            return math.inf
        try:
            err = grid_errors(sampler, D, process, x, ts, reference, teleport=teleport, sampler_kw=kw)
        except (ValueError, FloatingPointError):
            return math.inf
        return _summary(err, objective)

    # one island per initial grid: each evolves on its own, so a good start cannot crowd out
    # the basin of another before either is explored (the best of all islands is returned)
    islands = [{"pool": [(fitness(w), w)], "step": step} for w in starts]
    per = max(1, population // len(islands))
    history = [min(isl["pool"][0][0] for isl in islands)]
    for _ in range(generations):
        for isl in islands:
            best_before = isl["pool"][0][0]
            elite = [w for _, w in isl["pool"]]
            children = []
            for _ in range(per):
                pick = torch.randint(len(elite), (2,), generator=generator)
                a, b = elite[int(pick[0])], elite[int(pick[1])]
                mask = torch.rand(a.shape, generator=generator, dtype=torch.float64) < 0.5
                noise = torch.randn(a.shape, generator=generator, dtype=torch.float64)
                child = torch.where(mask, a, b) + isl["step"] * noise
                children.append((fitness(child), child))
            isl["pool"] = sorted(isl["pool"] + children, key=lambda fw: fw[0])[:parents]
            if not isl["pool"][0][0] < best_before:
                isl["step"] *= shrink
        history.append(min(isl["pool"][0][0] for isl in islands))
    best, w = min((isl["pool"][0] for isl in islands), key=lambda fw: fw[0])
    if polish and w.numel() > 1:                        # local polish of the best grid (Nelder-Mead)
        from scipy.optimize import minimize

        simplex = w.numpy()[None] + 0.25 * np.vstack([np.zeros(w.numel()), np.eye(w.numel())])
        res = minimize(lambda v: fitness(torch.from_numpy(np.array(v))), w.numpy(), method="Nelder-Mead",
                       options={"maxfev": polish, "initial_simplex": simplex, "xatol": 1e-4, "fatol": 1e-10})
        if res.fun < best:
            best, w = float(res.fun), torch.from_numpy(np.array(res.x))
    return GridFit(grid_from_logits(process, w, t_eps=t_eps, teleport=tele), best,
                   torch.tensor(history, dtype=torch.float64), evaluations)


def denoiser_speed(D, process, path, ts) -> torch.Tensor:
    r"""How fast the denoiser's prediction moves along paths, per unit of ``lambda``: (T-1,) float64.

    ``mean_b |D(x_b(t_{k+1}), t_{k+1}) - D(x_b(t_k), t_k)| / |lambda_{k+1} - lambda_k|`` over the rows
    of ``path`` (T, B, D), the exact PF-ODE paths at the times ``ts`` (T,), all with sigma > 0
    (:func:`diffedu.flow_map.pf_ode_path`). The exponential integrators (DDIM, DPM-Solver++)
    are exact where D does not move along the path (their local error is the change of D over a
    step), so a good grid puts its steps where this speed is large. For a Gaussian mode of
    variance v, ``D = mu + c (v + e^{-2 lambda})^{-1/2}`` along the flow, so the speed
    ``c e^{-2 lambda} (v + e^{-2 lambda})^{-3/2}`` peaks where ``(sigma/alpha)^2 = e^{-2 lambda} = 2 v``
    (``tests/test_timegrids.py`` checks it). Lesson 17.
    """
    check_callable(D, "D", "a denoiser D(x, t) -> (B, D)")
    process = check_process(process)
    ts = as_times(ts)
    process.check_t(ts, "ts")
    if ts.numel() < 2 or bool((ts <= process.t_min).any()):
        raise ValueError(f"ts must hold at least two times, all > {process.t_min} (sigma > 0); got {ts.tolist()}")
    if not isinstance(path, torch.Tensor) or path.dim() != 3 or path.shape[0] != ts.numel():
        got = tuple(path.shape) if isinstance(path, torch.Tensor) else type(path).__name__
        raise ValueError(f"path must have shape (T, B, D) with T = len(ts) = {ts.numel()}; got {got}")
    if path.device.type == "cpu" and not bool(torch.isfinite(path).all()):
        raise ValueError("path must be finite (no NaN or inf)")
    D = shape_checked(D, "D")
    with torch.no_grad():
        d = torch.stack([D(path[k], float(t)) for k, t in enumerate(ts.tolist())]).to(torch.float64)
    lam = process.lam(ts)
    return (d[1:] - d[:-1]).norm(dim=2).mean(1) / (lam[1:] - lam[:-1]).abs()
