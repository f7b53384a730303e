r"""Plots, the method widget, the comparison tables and the checkers of the lesson "Inverse
problems against the exact posterior" (lessons/16_inverse_problems.ipynb).

The maths lives in the core: :meth:`diffedu.mixtures.GaussianMixture.condition` (the exact
posterior), :mod:`diffedu.inverse` (DPS, PiGDM, RED-diff, twisted SMC, calibration against the
exact posterior), :mod:`diffedu.metrics` (MMD, moment errors) and
:func:`diffedu.mixtures.fit_gaussian_mixture` (the digit prior). This module runs the methods
side by side (:func:`run_method`, :func:`compare_methods`), formats their tables, draws them,
and caches the 64-D digit comparison, which takes minutes (:func:`compute_digit_results`;
``python3 -m diffedu.teach.inverse_problems digits`` rebuilds ``data/inverse_digits.pt``).
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch

from .. import inverse, metrics
from .._paths import data_path, writable_data_path
from ..gaussian import Gaussian
from ..mixtures import fit_gaussian_mixture
from ..processes import VP, time_grid
from ..samplers import ddpm_ancestral
from .checks import check_implementation
from .plots import _ax, new_axes, plot_images
from .widgets import dropdown, interactive, selection_slider

__all__ = [
    "DIGIT_CONFIG",
    "DIGIT_FILE",
    "METHODS",
    "check_dps_step",
    "check_gaussian_posterior",
    "compare_methods",
    "compute_digit_results",
    "digit_operator",
    "digit_prior",
    "format_digit_table",
    "format_table",
    "load_digit_results",
    "method_metrics",
    "method_widget",
    "plot_digit_posteriors",
    "plot_images",
    "plot_method",
    "plot_posterior",
    "pooled_metrics",
    "run_method",
]

F64 = torch.float64

#: The methods compared, in the tables' order. "exact score" runs the same ancestral sampler with
#: the exact posterior's denoiser: what any method could reach at that number of calls.
METHODS = ("exact score", "DPS", "PiGDM", "twisted SMC", "RED-diff")


# --- running the methods --------------------------------------------------------------------------
def run_method(name, prior, process, meas, n_calls, x_T, *, seed=0, zeta=0.3, posterior_cov=None,
               spacing="lambda"):
    r"""Samples (or, for RED-diff, points) of one method and what else it reports: ``(x (B, D), info)``.

    ``n_calls`` denoiser calls per sample (DPS, PiGDM and twisted SMC also take a vector-Jacobian
    product per call; twisted SMC runs the B rows of x_T as its particles and reports its final
    and smallest effective sample size in ``info``). RED-diff runs B optimisations from the
    zero-filled pseudo-inverse ``A^+ y`` over ``n_calls`` times in decreasing order. Every
    stochastic method draws from ``seed``.
    """
    D = prior.bind(process).denoiser
    gen = torch.Generator().manual_seed(seed)
    ts = time_grid(process, n_calls, spacing)
    if name == "exact score":
        post = meas.posterior(prior)
        return ddpm_ancestral(post.bind(process).denoiser, process, x_T, ts, generator=gen), {}
    if name == "DPS":
        return inverse.dps(D, process, x_T, ts, meas, zeta=zeta, generator=gen), {}
    if name.startswith("PiGDM"):
        return inverse.pigdm(D, process, x_T, ts, meas, posterior_cov=posterior_cov), {}
    if name == "twisted SMC":
        run = inverse.twisted_smc(D, process, x_T, ts, meas, generator=gen)
        return run.x, {"ess": float(run.ess[-1]), "ess_min": float(run.ess.min())}
    if name == "RED-diff":
        start = (torch.linalg.pinv(meas.A) @ meas.y).to(x_T)
        return inverse.red_diff(D, process, start.expand_as(x_T).clone(), ts[:-1], meas, generator=gen), {}
    raise ValueError(f"name must be one of {METHODS} (or 'PiGDM ...'); got {name!r}")


def method_metrics(x, post, ref, bandwidth, *, levels=(0.5, 0.9), n_ref=20000, seed=0):
    r"""How far samples x are from the exact posterior ``post``, in numbers that mean something in
    any dimension: ``mmd2`` (unbiased, fixed bandwidth, against exact draws ``ref``), ``mean_error``
    (``|mean_x - E[x|y]| / sqrt(tr Cov[x|y])``), ``mode_tv`` (half the L1 distance between the mean
    responsibilities and the posterior's weights, :func:`diffedu.inverse.mode_weights`),
    ``coverage`` (of the exact highest-density regions at ``levels``) and ``logp_gap`` (the mean
    exact log-density of x minus the posterior's own, in nats: > 0 too concentrated)."""
    x = x.detach().double()
    vp = VP()
    gen = torch.Generator().manual_seed(seed)
    own = float(post.log_prob(post.sample(n_ref, generator=gen, dtype=F64), 0.0, vp).mean())
    return {"mmd2": metrics.mmd2(x, ref, bandwidth=bandwidth),
            "mean_error": metrics.moment_errors(x, post.mean, post.cov)[0],
            "mode_tv": 0.5 * float((inverse.mode_weights(post, x) - post.weights).abs().sum()),
            "coverage": [float(c) for c in inverse.hpd_coverage(post, x, levels, n=n_ref,
                                                                 generator=torch.Generator().manual_seed(seed))],
            "logp_gap": float(post.log_prob(x, 0.0, vp).mean()) - own}


def compare_methods(prior, process, meas, budgets, *, n=400, seed=0, methods=METHODS, zeta=0.3,
                    spacing="lambda", extra=None):
    r"""The comparison table: ``{(method, n_calls): metrics}`` plus ``("exact draws", 0)``, the metrics of
    n fresh draws of the exact posterior (what each metric reads for a perfect sampler: its noise
    level), ``"floor"``, the MMD^2 of fresh exact draws (mean and standard deviation over 4
    draws), ``"bandwidth"`` and ``"n"``.

    Every method starts from the same ``x_T`` (n draws of p_T); ``extra``: more methods
    ``{name: posterior_cov}`` run as PiGDM variants."""
    post = meas.posterior(prior)
    ref = post.sample(n, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    h = metrics.median_bandwidth(ref)
    floor = torch.tensor([metrics.mmd2(post.sample(n, generator=torch.Generator().manual_seed(seed + 10 + k),
                                                   dtype=F64), ref, bandwidth=h) for k in range(4)])
    x_T = prior.sample_marginal(n, process.t_max, process, generator=torch.Generator().manual_seed(seed + 2),
                                dtype=F64)
    table = {"floor": (float(floor.mean()), float(floor.std())), "bandwidth": h, "n": n}
    fresh = post.sample(n, generator=torch.Generator().manual_seed(seed + 20), dtype=F64)
    table[("exact draws", 0)] = method_metrics(fresh, post, ref, h, seed=seed + 4)   # every metric's noise level
    names = list(methods) + list(extra or {})
    for N in budgets:
        for name in names:
            cov = (extra or {}).get(name)
            x, info = run_method(name, prior, process, meas, N, x_T, seed=seed + 3, zeta=zeta, posterior_cov=cov,
                                 spacing=spacing)
            table[(name, N)] = dict(method_metrics(x, post, ref, h, seed=seed + 4), **info)
    return table


def format_table(table, *, title=""):
    """The comparison as text, one row per method and budget; coverage with its binomial standard error."""
    n = table["n"]
    fm, fs = table["floor"]
    lines = [title] if title else []
    lines.append(f"MMD^2 floor (fresh exact draws) {fm:+.4f} +- {fs:.4f}; {n} samples per method; "
                 f"coverage standard error {math.sqrt(0.25 / n):.3f} (50%), {math.sqrt(0.09 / n):.3f} (90%)")
    lines.append(f"{'method':<22}{'calls':>6}{'MMD^2':>9}{'mean err':>10}{'mode TV':>9}{'cover 50%':>11}"
                 f"{'cover 90%':>11}{'log p gap':>11}")
    for key, r in table.items():
        if not isinstance(key, tuple):
            continue
        name, N = key
        if name == "RED-diff":  # a point, not a sampler: coverage does not apply
            cov = f"{'(a point)':>11}{'':>11}"
        else:
            cov = f"{r['coverage'][0]:>11.2f}{r['coverage'][1]:>11.2f}"
        lines.append(f"{name:<22}{N if N else '-':>6}{r['mmd2']:>9.4f}{r['mean_error']:>10.2f}{r['mode_tv']:>9.2f}{cov}"
                     f"{r['logp_gap']:>+11.2f}")
    return "\n".join(lines)


# --- pictures -------------------------------------------------------------------------------------
def _grid(lim, n):
    """The mesh (X, Y as NumPy arrays, for matplotlib) and its points (n*n, 2) as a float64 tensor."""
    c = torch.linspace(lim[0], lim[1], n, dtype=F64)
    X, Y = torch.meshgrid(c, c, indexing="xy")
    return X.numpy(), Y.numpy(), torch.stack([X.reshape(-1), Y.reshape(-1)], 1)


def plot_posterior(prior, meas, ax=None, *, lim=(-3.5, 3.5), n=160, title=None):
    r"""A 2-D prior (grey contours), the measurement ``A x = y`` within ``2 noise_std`` (a band, for one
    measured row), and the exact posterior's density (filled contours). Returns the Axes."""
    ax = _ax(ax)
    vp = VP()
    X, Y, pts = _grid(lim, n)
    ax.contour(X, Y, prior.log_prob(pts, 0.0, vp).exp().reshape(n, n).numpy(), levels=6, colors="0.6", linewidths=0.8)
    post = meas.posterior(prior)
    ax.contourf(X, Y, post.log_prob(pts, 0.0, vp).exp().reshape(n, n).numpy(), levels=12, cmap="Blues")
    if meas.m == 1:
        a = meas.A[0]
        r = ((pts @ a - meas.y[0]).reshape(n, n) / float(a.norm())).numpy()
        ax.contour(X, Y, r, levels=[-2 * meas.noise_std / float(a.norm()), 2 * meas.noise_std / float(a.norm())],
                   colors="C3", linestyles="--", linewidths=1)
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    ax.set_title(title or "prior (grey), measurement band (red), posterior (blue)", fontsize="medium")
    return ax


def plot_method(x, prior, meas, ax=None, *, lim=(-3.5, 3.5), title=None, points=False):
    """The method's samples (or RED-diff's points) over the exact posterior of :func:`plot_posterior`."""
    ax = plot_posterior(prior, meas, ax, lim=lim, title=title)
    xx = x.detach().double().numpy()
    if points:
        ax.plot(xx[:, 0], xx[:, 1], "o", color="C1", ms=6, mec="k", label="RED-diff points")
    else:
        ax.plot(xx[:, 0], xx[:, 1], ".", color="C1", ms=2, alpha=0.5, label="samples")
    ax.legend(loc="upper left", fontsize="x-small")
    return ax


def _draw_method(method, problem, n_calls, *, prior, problems, n, lim):
    meas = problems[problem]
    post = meas.posterior(prior)
    vp = VP()
    x_T = prior.sample_marginal(n, vp.t_max, vp, generator=torch.Generator().manual_seed(0), dtype=F64)
    x, _ = run_method(method, prior, vp, meas, n_calls, x_T[:8] if method == "RED-diff" else x_T, seed=1)
    ax = new_axes(figsize=(5.6, 5.0))
    if method == "RED-diff":
        title = f"{method}, {n_calls} calls: 8 runs (points, not samples)"
    else:
        cov = inverse.hpd_coverage(post, x, (0.5, 0.9), n=5000, generator=torch.Generator().manual_seed(2))
        title = f"{method}, {n_calls} calls: coverage {float(cov[0]):.2f} / {float(cov[1]):.2f} (ideal 0.50 / 0.90)"
    plot_method(x, prior, meas, ax, lim=lim, title=title, points=method == "RED-diff")
    return ax.figure


def method_widget(prior, problems: dict, *, budgets=(5, 20, 50, 200), n=400, lim=(-3.5, 3.5)):
    """Menus over the method and the measurement, a slider over the number of denoiser calls: the
    method's samples over the exact posterior, titled with their coverage of its 50% and 90% regions."""
    names = list(problems)
    return interactive(_draw_method, method=dropdown(METHODS, "DPS", "method"),
                       problem=dropdown(names, names[0], "measurement"),
                       n_calls=selection_slider(list(budgets), budgets[-1], "denoiser calls"),
                       prior=prior, problems=problems, n=n, lim=lim)


# --- the digits: a fitted mixture prior, cached comparisons ------------------------------------------
DIGIT_FILE = "inverse_digits.pt"
#: Settings of the cached 64-D comparison (changing them needs ``compute_digit_results(save=True)``).
DIGIT_CONFIG = {"n_components": 10, "reg": 0.01, "fit_seed": 0, "problems": {"inpaint": 0.1, "blur": 0.05},
                "digits": (0, 1, 2), "budgets": (50, 500), "n": 200, "spacing": "lambda", "zeta": 0.3, "seed": 0,
                "methods": METHODS, "extra": ("PiGDM (data variance)",), "images": 4}


def digit_prior(config=None):
    r"""The digit prior: :func:`diffedu.mixtures.fit_gaussian_mixture` with the config's K and reg on the
    1,500 training digits of :func:`diffedu.teach.models.digit_split` (under a second on one core)."""
    from .models import digit_split

    c = DIGIT_CONFIG if config is None else config
    train = digit_split()[0].double()
    return fit_gaussian_mixture(train, c["n_components"], reg=c["reg"], generator=torch.Generator().manual_seed(c["fit_seed"]))


def digit_operator(name: str) -> torch.Tensor:
    r"""The measurement matrix A of a digit problem: ``"inpaint"`` keeps the top half (rows 0-3, 32
    pixels), ``"blur"`` averages each 2x2 block (16 numbers, a blur followed by subsampling)."""
    if name == "inpaint":
        return torch.eye(64, dtype=F64)[:32]
    if name == "blur":
        A = torch.zeros(16, 64, dtype=F64)
        for i in range(4):
            for j in range(4):
                for di in range(2):
                    for dj in range(2):
                        A[4 * i + j, (2 * i + di) * 8 + 2 * j + dj] = 0.25
        return A
    raise ValueError(f"name must be 'inpaint' or 'blur'; got {name!r}")


def compute_digit_results(config=None, *, save=False, cells=None, progress=False):
    r"""The 64-D comparison: for each problem, held-out digit, budget and method, :func:`method_metrics`.

    Returns ``{"config", "results": {(problem, digit, method, n_calls): metrics (and twisted SMC's
    ESS)}, "floors": {(problem, digit): (mean, sd)}, "images": {(problem, name): (k, 64) float16},
    "seconds"}``. Each cell draws from its own seeds,
    so ``cells`` (a collection of ``(problem, digit, n_calls)``) recomputes a subset exactly (the
    slow test). ``save=True`` writes :data:`DIGIT_FILE`. About 7 minutes on one core.
    """
    from .models import digit_split

    c = DIGIT_CONFIG if config is None else config
    t0 = time.time()
    prior = digit_prior(c)
    held_out = digit_split()[1].double()
    vp = VP()
    v = float(prior.cov.trace()) / prior.dim
    extra = {"PiGDM (data variance)": inverse.isotropic_posterior_var(v, vp)}
    out = {"config": c, "results": {}, "floors": {}, "images": {}}
    for p_i, (problem, noise) in enumerate(c["problems"].items()):
        A = digit_operator(problem)
        for digit in c["digits"]:
            todo = [N for N in c["budgets"] if cells is None or (problem, digit, N) in cells]
            if not todo:
                continue
            seed = c["seed"] + 1000 * p_i + 10 * digit
            meas = inverse.Measurement.simulate(A, held_out[digit], noise, generator=torch.Generator().manual_seed(seed))
            post = meas.posterior(prior)
            ref = post.sample(c["n"], generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
            h = metrics.median_bandwidth(ref)
            fl = torch.tensor([metrics.mmd2(post.sample(c["n"], generator=torch.Generator().manual_seed(seed + 20 + k),
                                                        dtype=F64), ref, bandwidth=h) for k in range(3)])
            out["floors"][(problem, digit)] = (float(fl.mean()), float(fl.std()))
            x_T = prior.sample_marginal(c["n"], vp.t_max, vp, generator=torch.Generator().manual_seed(seed + 2),
                                        dtype=F64)
            if digit == c["digits"][0]:
                out["images"][(problem, "truth")] = held_out[digit][None].half()
                out["images"][(problem, "measured")] = (torch.linalg.pinv(A) @ meas.y)[None].half()
                out["images"][(problem, "exact posterior")] = post.sample(
                    c["images"], generator=torch.Generator().manual_seed(seed + 3), dtype=F64).half()
            for N in todo:
                for name in list(c["methods"]) + list(c["extra"]):
                    x, info = run_method(name, prior, vp, meas, N, x_T, seed=seed + 5, zeta=c["zeta"],
                                         posterior_cov=extra.get(name), spacing=c["spacing"])
                    out["results"][(problem, digit, name, N)] = dict(
                        method_metrics(x, post, ref, h, n_ref=5000, seed=seed + 6), **info)
                    if digit == c["digits"][0] and N == max(c["budgets"]):
                        out["images"][(problem, name)] = x[:c["images"]].half()
                    if progress:
                        print(f"{problem} digit {digit} {name} {N} calls: {time.time() - t0:.0f} s", flush=True)
    out["seconds"] = time.time() - t0
    if save:
        torch.save(out, writable_data_path(DIGIT_FILE))
    return out


def load_digit_results():
    """The cached 64-D comparison (:data:`DIGIT_FILE`); refuses a cache made with other settings."""
    out = torch.load(data_path(DIGIT_FILE), weights_only=False)
    if out["config"] != DIGIT_CONFIG:
        raise ValueError(f"{DIGIT_FILE} was made with other settings; rebuild it with "
                         "python3 -m diffedu.teach.inverse_problems digits")
    return out


def pooled_metrics(cached, problem, name, N):
    r"""Metrics of one method pooled over the cached digits: means; the pooled coverage with ``se``, its
    binomial standard error for independent samples at the nominal levels, and ``se_digits``, the
    standard error of the mean over the digits (sd of the per-digit coverages over sqrt(#digits)),
    which also holds for correlated samples (twisted SMC's particles share ancestors)."""
    c = cached["config"]
    rows = [cached["results"][(problem, d, name, N)] for d in c["digits"]]
    n = c["n"] * len(rows)
    per_digit = np.array([r["coverage"] for r in rows])
    return {"mmd2": float(np.mean([r["mmd2"] for r in rows])), "mean_error": float(np.mean([r["mean_error"] for r in rows])),
            "mode_tv": float(np.mean([r["mode_tv"] for r in rows])), "logp_gap": float(np.mean([r["logp_gap"] for r in rows])),
            "coverage": [float(v) for v in per_digit.mean(0)], "se": [math.sqrt(p * (1 - p) / n) for p in (0.5, 0.9)],
            "se_digits": [float(v) for v in per_digit.std(0, ddof=1) / math.sqrt(len(rows))]}


def format_digit_table(cached, problem):
    """The cached 64-D comparison for one problem, averaged over its held-out digits."""
    c = cached["config"]
    floors = np.array([cached["floors"][(problem, d)] for d in c["digits"]])
    n = c["n"] * len(c["digits"])
    head = (f"{problem} (noise {c['problems'][problem]}), {len(c['digits'])} held-out digits x {c['n']} samples; "
            f"MMD^2 floor {floors[:, 0].mean():+.4f} +- {math.sqrt((floors[:, 1] ** 2).sum()) / len(floors):.4f}; "
            f"coverage standard error {math.sqrt(0.25 / n):.3f} (50%), {math.sqrt(0.09 / n):.3f} (90%) for independent samples")
    cols = (f"{'method':<22}{'calls':>6}{'MMD^2':>9}{'mean err':>10}{'mode TV':>9}{'cover 50%':>11}"
            f"{'cover 90%':>11}{'log p gap':>11}")
    lines = [head, cols]
    for N in c["budgets"]:
        for name in list(c["methods"]) + list(c["extra"]):
            r = pooled_metrics(cached, problem, name, N)
            cov = (f"{'(a point)':>11}{'':>11}" if name == "RED-diff"
                   else f"{r['coverage'][0]:>11.2f}{r['coverage'][1]:>11.2f}")
            lines.append(f"{name:<22}{N if N else '-':>6}{r['mmd2']:>9.4f}{r['mean_error']:>10.2f}{r['mode_tv']:>9.2f}{cov}"
                         f"{r['logp_gap']:>+11.1f}")
    return "\n".join(lines)


#: Short names of the methods for the image grid's titles.
SHORT = {"truth": "truth", "measured": "A^+ y", "exact posterior": "exact", "exact score": "exact score",
         "DPS": "DPS", "PiGDM": "PiGDM", "PiGDM (data variance)": "PiGDM (v)", "twisted SMC": "SMC",
         "RED-diff": "RED-diff"}


def plot_digit_posteriors(cached, problem, *, sources=("truth", "measured", "exact posterior", "DPS", "PiGDM",
                                                       "PiGDM (data variance)", "twisted SMC", "RED-diff")):
    """The cached images of one problem: a column per source (the held-out digit, the zero-filled
    pseudo-inverse ``A^+ y``, exact posterior draws, each method's samples at the larger budget),
    a row per draw, shown in [0, 1]. Returns the Axes."""
    imgs = cached["images"]
    k = cached["config"]["images"]
    cols = [imgs[(problem, s)].float() for s in sources]
    blank = torch.zeros(64)
    grid = [cols[j][i] if i < len(cols[j]) else blank for i in range(k) for j in range(len(cols))]
    titles = [SHORT.get(s, s) if i == 0 else "" for i in range(k) for s in sources]
    return plot_images(torch.stack(grid).clamp(0, 1), titles=titles, ncols=len(sources))


# --- exercises --------------------------------------------------------------------------------------
def _posterior_inputs(generator, dtype, shape):
    _, D = shape
    m = max(1, D - 1)
    F = torch.randn(D, D, generator=generator, dtype=dtype)
    return {"mean": torch.randn(D, generator=generator, dtype=dtype), "cov": F @ F.T / D + 0.2 * torch.eye(D, dtype=dtype),
            "A": torch.randn(m, D, generator=generator, dtype=dtype), "y": torch.randn(m, generator=generator, dtype=dtype),
            "noise_std": float(0.1 + torch.rand((), generator=generator))}


def _posterior_reference(mean, cov, A, y, noise_std):
    post = Gaussian(mean.double(), cov.double()).condition(A.double(), y.double(), noise_std)
    return torch.cat([post.mean[None], post.cov]).to(mean.dtype)


def check_gaussian_posterior(answer):
    r"""``answer(mean, cov, A, y, noise_std) -> (post_mean (D,), post_cov (D, D))``, the posterior of
    N(mean, cov) given ``y = A x + noise_std n``. Checked on fresh inputs against
    :meth:`diffedu.gaussian.Gaussian.condition`."""
    if answer is None or answer is Ellipsis or not callable(answer):
        return check_implementation(answer, _posterior_reference, _posterior_inputs, name="Gaussian posterior")

    def stacked(**kw):
        m, C = answer(**kw)
        return torch.cat([torch.as_tensor(m)[None], torch.as_tensor(C)])
    return check_implementation(stacked, _posterior_reference, _posterior_inputs, name="Gaussian posterior",
                                tolerances={torch.float32: (2e-3, 1e-5)})


def _dps_inputs(generator, dtype, shape):
    _, D = shape
    m = max(1, D - 1)
    W = torch.randn(D, D, generator=generator, dtype=dtype) / math.sqrt(D)
    t = float(0.2 + 0.6 * torch.rand((), generator=generator))
    return {"D": lambda x, t: torch.tanh(x @ W.T) * (1 - t) + 0.3 * x,   # a smooth nonlinear "denoiser"
            "process": VP(), "x": torch.randn(shape, generator=generator, dtype=dtype), "t": t,
            "t_next": t - 0.1, "A": torch.randn(m, D, generator=generator, dtype=dtype),
            "y": torch.randn(m, generator=generator, dtype=dtype), "zeta": float(0.1 + torch.rand((), generator=generator)),
            "noise": torch.randn(shape, generator=generator, dtype=dtype)}


def _dps_reference(D, process, x, t, t_next, A, y, zeta, noise):
    return inverse.dps_step(D, process, x, t, t_next, inverse.Measurement(A.double(), y.double(), 1.0),
                            zeta=zeta, noise=noise)


def check_dps_step(answer):
    r"""``answer(D, process, x, t, t_next, A, y, zeta, noise)`` = one DPS step: the ancestral step from t to
    t_next with the given noise, minus ``zeta / |r|`` times the gradient of ``|r|^2 = |y - A D(x, t)|^2``
    in x (per sample). Checked on fresh inputs against :func:`diffedu.inverse.dps_step`."""
    return check_implementation(answer, _dps_reference, _dps_inputs, name="DPS step",
                                tolerances={torch.float32: (1e-3, 1e-5)})


def main(argv=None) -> int:
    """``python3 -m diffedu.teach.inverse_problems digits``: rebuild the cached 64-D comparison."""
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["digits"]:
        print("usage: python3 -m diffedu.teach.inverse_problems digits", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    out = compute_digit_results(save=True, progress=True)
    print(f"saved {DIGIT_FILE} in {out['seconds']:.0f} s")
    for problem in DIGIT_CONFIG["problems"]:
        print(format_digit_table(out, problem))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
