r"""Plots, sliders, tables and checkers of the lesson "Guidance" (lessons/15_guidance.ipynb).

The maths lives in :mod:`diffedu.guidance` (class-conditional mixtures, the exact classifier,
classifier and classifier-free guidance, the tilted target and its exact sampler), the samplers
in :mod:`diffedu.samplers`, the distances in :mod:`diffedu.metrics` and the mode weights in
:func:`diffedu.inverse.mode_weights`. This module runs guided samplers side by side and draws
them; every number it prints comes from those functions.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import guidance, metrics
from ..gaussian import Gaussian, fit_gaussian
from ..inverse import mode_weights
from ..mixtures import GaussianMixture
from ..processes import VP, time_grid
from ..samplers import euler_maruyama, heun
from .checks import check_close, check_implementation, unanswered
from .plots import new_axes, plot_images
from .widgets import interactive, selection_slider

__all__ = [
    "INTERVALS",
    "SAMPLERS",
    "cfg_widget",
    "check_classifier_guidance",
    "check_tilted_gaussian",
    "digit_class_model",
    "format_distances",
    "format_interval_table",
    "guidance_stats",
    "guided_samples",
    "interval_samples",
    "interval_widget",
    "noise_time",
    "plot_classes",
    "plot_guided",
    "plot_images",
    "tilted_distances",
]

F64 = torch.float64
#: The two samplers driven by the guided field: Heun on the PF-ODE and Euler-Maruyama on the reverse SDE.
SAMPLERS = ("PF-ODE", "reverse SDE")


def noise_time(process, level: float) -> float:
    """The time at which the noise level ``sigma_t / alpha_t`` equals ``level``."""
    return float(process.t_of_lam(torch.tensor(-math.log(level), dtype=F64)))


def _grid(lim, n):
    """The mesh (X, Y as NumPy arrays, for matplotlib) and its points (n*n, 2) as a float64 tensor."""
    c = torch.linspace(lim[0], lim[1], n, dtype=F64)
    X, Y = torch.meshgrid(c, c, indexing="xy")
    return X.numpy(), Y.numpy(), torch.stack([X.reshape(-1), Y.reshape(-1)], 1)


def plot_classes(model, process, levels, *, c=0, lim=(-4.0, 4.0), n=120, axs=None):
    r"""At each noise level ``sigma/alpha`` of ``levels``: the exact classifier ``p_t(c | x)`` (colour, 0 to 1)
    and the contours of ``p_t(x | c)`` for every class. Returns the Axes."""
    if axs is None:
        axs = new_axes(len(levels), figsize=(3.0 * len(levels), 3.2), pyplot=True)
    X, Y, pts = _grid(lim, n)
    for ax, r in zip(np.atleast_1d(axs), levels):
        t = noise_time(process, r)
        prob = model.classifier(pts, t, process)[:, c].reshape(n, n).numpy()
        ax.pcolormesh(X, Y, prob, cmap="RdBu", vmin=0, vmax=1, shading="auto")
        for k in range(model.n_classes):
            dens = model.given(k).log_prob(pts, t, process).exp().reshape(n, n).numpy()
            ax.contour(X, Y, dens, levels=4, colors="k" if k == c else "0.4", linewidths=0.7)
        ax.set_title(f"sigma/alpha = {r:g}", fontsize="medium")
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    return axs


# --- guided sampling --------------------------------------------------------------------------------
def guided_samples(model, c, w, process, x_T, *, interval=None, ode_steps=40, sde_steps=200, seed=0,
                   samplers=SAMPLERS):
    r"""Samples of classifier-free guidance at weight w with the exact denoisers of ``p(x | c)`` and p(x):
    ``{"PF-ODE": Heun with ode_steps, "reverse SDE": Euler-Maruyama with sde_steps}``, both from ``x_T``.
    ``interval``: noise levels ``(lo, hi)`` in sigma/alpha where w applies (w = 1 elsewhere)."""
    iv = None if interval is None else (noise_time(process, interval[0]), noise_time(process, interval[1]))
    D = guidance.classifier_free_guidance(model.given(c).bind(process).denoiser,
                                          model.mixture.bind(process).denoiser, w, interval=iv)
    out = {}
    if "PF-ODE" in samplers:
        out["PF-ODE"] = heun(D, process, x_T, time_grid(process, ode_steps))
    if "reverse SDE" in samplers:
        out["reverse SDE"] = euler_maruyama(D, process, x_T, time_grid(process, sde_steps),
                                            generator=torch.Generator().manual_seed(seed))
    return out


def guidance_stats(model, c, x):
    r"""What guidance does to samples x of class c: ``modes`` (the mean responsibility of each component of
    ``p(x | c)``), ``diversity`` (the trace of their covariance) with ``diversity_se`` (its standard error:
    the trace is the mean squared distance to the mean, so the sd of those distances over sqrt(n)),
    ``confidence`` (the mean exact ``p(c | x)`` at t = 0) and ``other`` (the fraction where another class
    is more likely)."""
    vp = VP()
    x = x.double()
    prob = model.classifier(x, 0.0, vp)[:, c]
    sq = (x - x.mean(0)).pow(2).sum(1)
    return {"modes": mode_weights(model.given(c), x), "diversity": float(torch.cov(x.T).trace()),
            "diversity_se": float(sq.std() / math.sqrt(len(x))),
            "confidence": float(prob.mean()), "other": float((prob < 0.5).double().mean())}


def tilted_distances(model, c, ws, process, x_T, *, bandwidth=0.5, seed=0, repeats=3, ode_steps=40, sde_steps=200):
    r"""For each w: the unbiased MMD^2 (Gaussian kernel of ``bandwidth``) between the tilted target
    ``q_0 ∝ p(x|c)^w p(x)^(1-w)`` (exact draws, :func:`diffedu.guidance.tilted_sample`) and what CFG
    samples with the PF-ODE and the reverse SDE, next to its floor (fresh exact draws of q_0 against
    the reference, mean and sd over ``repeats``), and :func:`guidance_stats` of each.
    Returns ``{w: {"floor": (mean, sd), "tilted": stats, "PF-ODE": (mmd2, stats), "reverse SDE": ...}}``."""
    n = x_T.shape[0]
    out = {}
    for i, w in enumerate(ws):
        ref = guidance.tilted_sample(model, c, w, n, generator=torch.Generator().manual_seed(seed + 100 + i), dtype=F64)
        fresh = [guidance.tilted_sample(model, c, w, n, generator=torch.Generator().manual_seed(seed + 200 + 10 * i + k),
                                        dtype=F64) for k in range(repeats)]
        fl = torch.tensor([metrics.mmd2(f, ref, bandwidth=bandwidth) for f in fresh])
        row = {"floor": (float(fl.mean()), float(fl.std())), "tilted": guidance_stats(model, c, fresh[0])}
        for name, x in guided_samples(model, c, w, process, x_T, ode_steps=ode_steps, sde_steps=sde_steps,
                                      seed=seed + i).items():
            row[name] = (metrics.mmd2(x, ref, bandwidth=bandwidth), guidance_stats(model, c, x))
        out[w] = row
    return out


def format_distances(table, n):
    """The distances of :func:`tilted_distances` as text (mode weights: the first component of the class)."""
    se = math.sqrt(0.25 / n)
    head = (f"MMD^2 to the tilted target (floor: fresh exact draws, mean +- sd); weight of the first mode of "
            f"the class (+- {se:.2f} for {n} draws); diversity tr Cov")
    cols = (f"{'w':>4}{'floor':>17}{'PF-ODE':>10}{'rev. SDE':>10}   {'mode weight  tilted / ODE / SDE':>34}"
            f"   {'diversity  tilted / ODE / SDE':>31}")
    lines = [head, cols]
    for w, r in table.items():
        fm, fs = r["floor"]
        t, o, s = r["tilted"], r["PF-ODE"][1], r["reverse SDE"][1]
        lines.append(f"{w:>4g}{fm:>+10.4f} +- {fs:.4f}{r['PF-ODE'][0]:>10.4f}{r['reverse SDE'][0]:>10.4f}   "
                     f"{float(t['modes'][0]):>20.2f} / {float(o['modes'][0]):.2f} / {float(s['modes'][0]):.2f}"
                     f"   {t['diversity']:>17.2f} / {o['diversity']:.2f} / {s['diversity']:.2f}")
    return "\n".join(lines)


def plot_guided(w, *, model, c, process, x_T, lim=(-4.0, 4.0), n=150, axs=None):
    r"""Two panels at weight w: the CFG samples of the PF-ODE (left) and of the reverse SDE (right) over the
    tilted target ``q_0`` (filled contours, by quadrature) and the contours of ``p(x | c)``."""
    if axs is None:
        axs = new_axes(2, figsize=(8.4, 4.0), pyplot=True)
    xs, ys, dens = guidance.tilted_density_grid(model, c, w, lim=lim, n=n)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    cond = model.given(c).log_prob(torch.stack([X.reshape(-1), Y.reshape(-1)], 1), 0.0, VP()).exp().reshape(n, n)
    X, Y, dens, cond = X.numpy(), Y.numpy(), dens.numpy(), cond.numpy()
    samples = guided_samples(model, c, w, process, x_T)
    for ax, (name, x) in zip(axs, samples.items()):
        ax.contourf(X, Y, dens, levels=10, cmap="Greens")
        ax.contour(X, Y, cond, levels=4, colors="k", linewidths=0.6)
        xx = x.detach().numpy()
        ax.plot(xx[:, 0], xx[:, 1], ".", color="C1", ms=2, alpha=0.6)
        st = guidance_stats(model, c, x)
        ax.set_title(f"{name}, w = {w:g}: first mode {float(st['modes'][0]):.2f}", fontsize="medium")
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_aspect("equal")
    axs[0].set_xlabel("green: tilted target; black: p(x | c)", fontsize="small")
    return axs


def _draw_guided(w, *, model, c, process, x_T, lim):
    axs = new_axes(2, figsize=(8.4, 4.0))
    plot_guided(w, model=model, c=c, process=process, x_T=x_T, lim=lim, axs=axs)
    return axs[0].figure


def cfg_widget(model, c, process, x_T, *, ws=(0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0), lim=(-4.0, 4.0)):
    """Slider over the guidance weight w: :func:`plot_guided`."""
    return interactive(_draw_guided, w=selection_slider(list(ws), 1.0, "guidance weight w"), model=model, c=c,
                       process=process, x_T=x_T, lim=lim)


# --- the guidance interval ---------------------------------------------------------------------------
#: Guidance intervals in noise level sigma/alpha (None: w = 1 everywhere; (0, inf): everywhere).
INTERVALS = {"no guidance (w = 1)": None, "every noise level": (1e-4, 1e4), "high noise (1 to 100)": (1.0, 100.0),
             "middle (0.2 to 1)": (0.2, 1.0), "low noise (0.01 to 0.2)": (0.01, 0.2)}


def interval_samples(model, c, w, process, x_T, intervals=None):
    """PF-ODE samples of CFG at weight w restricted to each interval of ``intervals`` (default
    :data:`INTERVALS`): ``{label: (B, D)}``."""
    out = {}
    for label, iv in (intervals or INTERVALS).items():
        out[label] = guided_samples(model, c, 1.0 if iv is None else w, process, x_T, interval=iv,
                                    samplers=("PF-ODE",))["PF-ODE"]
    return out


def format_interval_table(model, c, samples, *, exact=None):
    """One line per interval: the class's mode weights, diversity, confidence and other-class fraction."""
    n = next(iter(samples.values())).shape[0]
    rows = dict(samples)
    if exact is not None:
        rows = {"p(x | c) itself (exact draws)": exact, **rows}
    lines = [f"{n} samples each; a mode weight has standard error about {math.sqrt(0.25 / n):.2f}",
             f"{'guidance applied':<30}{'first mode':>11}{'diversity':>16}{'p(c|x)':>9}{'other class':>13}"]
    for label, x in rows.items():
        s = guidance_stats(model, c, x)
        lines.append(f"{label:<30}{float(s['modes'][0]):>11.2f}{s['diversity']:>8.2f} +- {s['diversity_se']:.2f}"
                     f"{s['confidence']:>9.3f}{s['other']:>13.3f}")
    return "\n".join(lines)


def _draw_interval(interval, *, model, c, w, process, x_T, lim):
    iv = INTERVALS[interval]
    x = guided_samples(model, c, 1.0 if iv is None else w, process, x_T, interval=iv, samplers=("PF-ODE",))["PF-ODE"]
    ax = new_axes(figsize=(5.6, 5.0))
    X, Y, pts = _grid(lim, 150)
    ax.pcolormesh(X, Y, model.classifier(pts, 0.0, VP())[:, c].reshape(150, 150).numpy(), cmap="RdBu", vmin=0, vmax=1,
                  shading="auto", alpha=0.5)
    ax.contour(X, Y, model.given(c).log_prob(pts, 0.0, VP()).exp().reshape(150, 150).numpy(), levels=4, colors="k",
               linewidths=0.6)
    xx = x.detach().numpy()
    ax.plot(xx[:, 0], xx[:, 1], ".", color="C1", ms=2, alpha=0.6)
    s = guidance_stats(model, c, x)
    ax.set_title(f"w = {w:g}, {interval}:\nfirst mode {float(s['modes'][0]):.2f}, diversity {s['diversity']:.2f}, "
                 f"other class {s['other']:.3f}", fontsize="medium")
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    return ax.figure


def interval_widget(model, c, w, process, x_T, *, lim=(-4.0, 4.0)):
    """Slider over where guidance is applied (:data:`INTERVALS`): the PF-ODE samples over the exact
    classifier at t = 0 and the contours of ``p(x | c)``."""
    labels = list(INTERVALS)
    return interactive(_draw_interval, interval=selection_slider(labels, labels[1], "guidance applied at"),
                       model=model, c=c, w=w, process=process, x_T=x_T, lim=lim)


# --- digits ------------------------------------------------------------------------------------------
def digit_class_model(images, labels, *, shrinkage=0.1):
    r"""A class-conditional model of the digits: one Gaussian per digit (:func:`diffedu.gaussian.fit_gaussian`
    with ``shrinkage``), weighted by the class frequencies: a :class:`diffedu.guidance.ClassConditional`."""
    comps = [fit_gaussian(images[labels == k].double(), shrinkage=shrinkage) for k in range(10)]
    w = torch.bincount(labels, minlength=10).double()
    mix = GaussianMixture(w / w.sum(), torch.stack([g.mean for g in comps]), torch.stack([g.cov for g in comps]))
    return guidance.ClassConditional(mix, list(range(10)))


# --- exercises ---------------------------------------------------------------------------------------
def _cg_inputs(generator, dtype, shape):
    _, D = shape
    W = torch.randn(D, D, generator=generator, dtype=dtype) / math.sqrt(D)
    u = torch.randn(D, generator=generator, dtype=dtype)
    return {"D": lambda x, t: 0.5 * x @ W.T + t,                                        # a linear "denoiser"
            "log_classifier": lambda x, t: -torch.nn.functional.softplus(-(x @ u) * (1 + t)),   # log sigmoid
            "process": VP(), "x": torch.randn(shape, generator=generator, dtype=dtype),
            "t": float(0.1 + 0.8 * torch.rand((), generator=generator)),
            "w": float(4 * torch.rand((), generator=generator))}


def _cg_reference(D, log_classifier, process, x, t, w):
    return guidance.classifier_guidance(D, log_classifier, process, w)(x, t)


def check_classifier_guidance(answer):
    r"""``answer(D, log_classifier, process, x, t, w)`` = the classifier-guided denoiser
    ``D(x, t) + w (sigma_t^2 / alpha_t) grad_x log_classifier(x, t)`` (the gradient by autograd of the
    (B,) log-probabilities). Checked on fresh inputs against :func:`diffedu.guidance.classifier_guidance`."""
    return check_implementation(answer, _cg_reference, _cg_inputs, name="classifier guidance")


def check_tilted_gaussian(mean, var, cond: Gaussian, uncond: Gaussian, w: float):
    r"""``mean``, ``var`` = the mean and variance of ``q ∝ cond^w uncond^(1-w)`` for 1-D Gaussians; the
    expected values come from :func:`diffedu.guidance.tilted_gaussian`."""
    q = guidance.tilted_gaussian(cond, uncond, w)
    answer = None if unanswered(mean) or unanswered(var) else [mean, var]
    return check_close(answer, [float(q.mean[0]), float(q.cov[0, 0])], rtol=1e-4,
                       name=f"(mean, variance) of the tilted law at w = {w:g}")
