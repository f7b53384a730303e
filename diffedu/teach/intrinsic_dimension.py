r"""Lesson 13 (what the score knows about dimension): its spectrum plots, the dimension slider and
the exercise checkers.

The maths lives in the core: :mod:`diffedu.dimension` (the normalised score spectrum by the
Jacobian or by Stanczuk et al.'s stacked scores, the every-gap rule
:func:`~diffedu.dimension.dimension_from_spectrum`, :func:`~diffedu.dimension.intrinsic_dimension`),
:func:`diffedu.datasets.subspace_gaussian` (data on a random k-dimensional subspace) and the
closed-form scores of :class:`~diffedu.gaussian.Gaussian` and :class:`~diffedu.mixtures.Empirical`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..datasets import subspace_gaussian
from ..dimension import (DimensionEstimate, dimension_from_spectrum, intrinsic_dimension,
                         normalised_spectrum)
from ..gaussian import Gaussian
from ..processes import EDM
from . import plots, widgets
from .checks import Feedback, check_close, say, unanswered

__all__ = ["plot_spectra_vs_noise", "plot_spectrum", "dimension_widget", "check_tangent_level",
           "check_dimension"]


def plot_spectra_vs_noise(score, x, process, ts, ax=None, *, method: str = "jacobian"):
    r"""Normalised spectra (:func:`diffedu.dimension.normalised_spectrum`, median over the points
    x (B, D)) against the noise level ``sigma_t / alpha_t``, one line per singular value, at the
    times ``ts``. Normal directions stay near 1, tangent ones fall like ``sigma^2 / lambda`` as the
    noise shrinks. Returns the Axes.
    """
    ax = plots._ax(ax)
    noise, rows = [], []
    for t in ts:
        mu = normalised_spectrum(score, x, float(t), process, method=method,
                                 generator=torch.Generator().manual_seed(0))
        rows.append(mu.median(0).values.numpy())
        noise.append(float(process.sigma(float(t)) / process.alpha(float(t))))
    rows = np.array(rows)
    for i in range(rows.shape[1]):
        ax.plot(noise, rows[:, i], "o-", ms=3, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("noise level sigma_t / alpha_t")
    ax.set_ylabel("normalised singular values")
    return ax


def plot_spectrum(est: DimensionEstimate, ax=None, *, k_true: int | None = None):
    r"""Bars of the median normalised spectrum of a :class:`~diffedu.dimension.DimensionEstimate`,
    the reference level 1, and (red) the largest gap, which gives the estimate. Returns the Axes."""
    if not isinstance(est, DimensionEstimate):
        raise TypeError(f"est must be a diffedu.dimension.DimensionEstimate; got {type(est).__name__}")
    ax = plots._ax(ax)
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
    t = 10.0**log10_sigma             # EDM: sigma_t = t
    est = intrinsic_dimension(g.bind(process).score, x0, t, process, method=method, generator=gen)
    ax = plot_spectrum(est, plots.new_axes(figsize=(5.6, 3.8)), k_true=k)
    ax.set_title(ax.get_title() + f"  (D = {D}, sigma = {t:.3g})", fontsize="small")
    return ax.figure


def dimension_widget(D: int = 8, *, method: str = "jacobian", n_points: int = 16, seed: int = 0):
    r"""Sliders for the noise level (log10 sigma, EDM) and the dimension k of a random subspace of
    R^D (:func:`diffedu.datasets.subspace_gaussian`) over :func:`plot_spectrum` of the estimate."""
    if isinstance(D, bool) or not isinstance(D, int) or D < 2:
        raise ValueError(f"D must be an integer >= 2; got {D!r}")
    return widgets.interactive(
        _draw_dimension,
        log10_sigma=widgets.float_slider(-1.5, -3.0, 0.5, 0.25, "log10 sigma"),
        k=widgets.int_slider(min(3, D), 1, D, "true dimension k"),
        D=D, method=method, n_points=n_points, seed=seed,
    )


# --- exercise checkers -----------------------------------------------------------------------
def check_tangent_level(answer, eigval: float, sigma: float, *, rtol: float = 1e-4) -> Feedback:
    r"""``answer`` = the normalised singular value of the score Jacobian in a tangent direction of
    variance ``eigval`` at EDM noise ``sigma`` (alpha = 1): the normalised spectrum
    (:func:`diffedu.dimension.normalised_spectrum`) of the line ``N(0, eigval)``."""
    process = EDM()
    line = Gaussian([0.0], [float(eigval)])
    expected = normalised_spectrum(line.bind(process).score, torch.zeros(1, 1, dtype=torch.float64),
                                   float(sigma), process)[0, 0]
    return check_close(answer, expected, name=f"tangent level (lambda={eigval:g}, sigma={sigma:g})", rtol=rtol)


def check_dimension(answer, spectrum) -> Feedback:
    r"""``answer`` = the dimension that the largest gap of the normalised ``spectrum`` (D,) gives,
    counting the gap from the reference level 1 to the top value
    (:func:`diffedu.dimension.dimension_from_spectrum`)."""
    name = "dimension"
    if unanswered(answer):
        return say("unanswered", name, "")
    mu = torch.as_tensor(spectrum, dtype=torch.float64).reshape(1, -1)
    expected = int(dimension_from_spectrum(mu)[0][0])
    try:
        a = int(answer)
    except (TypeError, ValueError):
        return say("wrong", name, f"expected an integer, got a {type(answer).__name__}")
    if a == expected:
        return say("correct", name, f"k = {a}: {mu.shape[1] - a} normal direction(s) above the largest gap")
    if a == mu.shape[1] - expected:
        return say("wrong", name, f"{a} counts the normal directions (the values above the largest gap): "
                                  "which directions does the dimension count?")
    return say("wrong", name, "sort the values, prepend 1, and find the largest drop between neighbours")
