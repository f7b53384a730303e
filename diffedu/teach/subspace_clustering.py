r"""Lesson 08 (subspace clustering): its slider and checkers.

The maths lives in the core: :mod:`diffedu.subspace` (line bases, sampling with exact counts,
principal angles and the subspace error, PCA fits, K-subspaces, the low-rank denoiser and its
DSM training, the phase transition) and :class:`diffedu.LowRankMixture` (the closed-form
denoiser of a mixture of low-rank Gaussians). This module draws lines found by K-subspaces
against the truth, holds the slider over the number of samples and the noise, and checks the
exercises.
"""

from __future__ import annotations

import torch

from ..mixtures import LowRankMixture
from ..subspace import (SubspaceClustering, fit_subspace, line_bases, match_subspaces, sample_subspaces,
                        subspace_error)
from . import plots
from .checks import Feedback, check_close, check_denoiser
from .widgets import float_slider, int_slider, interactive

__all__ = ["subspace_widget", "check_subspace_error", "check_denoiser", "check_close"]

_HALF = 3.0  # half-width of the plotted square; lines are drawn from -_HALF to _HALF


def _draw_line(ax, direction, **kw):
    """The line through 0 along the unit (2,) ``direction``, across the plotted square."""
    ends = torch.tensor([-_HALF, _HALF], dtype=torch.float64)[:, None] * direction
    ax.plot(*ends.T.numpy(), **kw)


# --- K-subspaces in the plane ---------------------------------------------------------------------
def plot_subspace_fit(n_per_subspace: int, noise: float, ax=None, *, angles=(10.0, 70.0, 135.0), seed: int = 0,
                      n_init: int = 10):
    r"""K lines in the plane at ``angles`` (degrees), ``n_per_subspace`` seeded points on each
    (plus noise of variance ``noise`` off the line); the lines found by K-subspaces without labels
    (coloured, :class:`~diffedu.subspace.SubspaceClustering`) against the truth (dashed). The title
    gives the largest subspace error with labels (PCA of each group) and without (K-subspaces).
    Returns the Axes.
    """
    U = line_bases(angles)
    K = U.shape[0]
    X, y = sample_subspaces(LowRankMixture(U, noise=float(noise)), int(n_per_subspace),
                            generator=torch.Generator().manual_seed(seed))
    ax = plots._ax(ax)
    for k in range(K):
        _draw_line(ax, U[k, :, 0], ls="--", color="0.5", lw=1)
    ax.set_xlim(-_HALF, _HALF)
    ax.set_ylim(-_HALF, _HALF)
    ax.set_aspect("equal")
    if X.shape[0] == 0:
        ax.set_title("no samples", fontsize="small")
        return ax
    est = SubspaceClustering(K, 1, n_init=n_init, seed=seed).fit(X)
    perm, err_u = match_subspaces(est.bases_, U)
    err_l = subspace_error(torch.stack([fit_subspace(X[y == k], 1) for k in range(K)]), U)
    for k in range(K):
        j = int(perm[k])
        _draw_line(ax, est.bases_[j, :, 0], color=f"C{k}", lw=2)
        ax.scatter(*X[est.labels_ == j].T.numpy(), s=10, color=f"C{k}")
    ax.set_title(f"n = {n_per_subspace}, noise = {noise:.3g}: max error with labels "
                 f"{float(err_l.max()):.2f}, K-subspaces {float(err_u.max()):.2f}", fontsize="x-small")
    return ax


def _draw_subspace_fit(n_per_subspace, noise, *, angles, seed, n_init):
    ax = plots.new_axes(figsize=(4.8, 4.4))
    return plot_subspace_fit(n_per_subspace, noise, ax, angles=angles, seed=seed, n_init=n_init).figure


def subspace_widget(*, angles=(10.0, 70.0, 135.0), seed: int = 0):
    """Sliders: samples per subspace and noise variance; draws :func:`plot_subspace_fit`."""
    return interactive(_draw_subspace_fit, n_per_subspace=int_slider(5, 1, 60, "samples per subspace"),
                       noise=float_slider(0.01, 0.0, 0.3, 0.01, "noise variance"), angles=tuple(angles),
                       seed=seed, n_init=10)


# --- exercise checkers ---------------------------------------------------------------------
def check_subspace_error(answer, U, V, *, rtol: float = 1e-6) -> Feedback:
    """``answer`` = ``||P_U - P_V||_F / sqrt(2d)`` for the subspaces spanned by U and V
    (exercise 1); the expected value is :func:`diffedu.subspace.subspace_error`."""
    return check_close(answer, subspace_error(U, V), name="subspace error", rtol=rtol)
