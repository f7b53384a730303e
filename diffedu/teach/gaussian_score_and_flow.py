r"""Lesson 02 (the Gaussian score and the exact flow): the signal-fraction plot, the plot of what
the denoiser's prediction shows of each mode along the flow, the flow slider and the exercise
checkers.

The maths is in the core, :mod:`diffedu.gaussian`: the score, the Tweedie denoiser and the exact
PF-ODE map (``Gaussian.score``, ``denoiser``, ``flow``, ``flow_path``), the share of each mode's
variance that comes from the data (``Gaussian.signal_fraction``), the time at which it is 1/2
(``decision_time``), how a perturbation travels along the flow (``flow_gains``,
``leading_share``, ``perturbation_share``) and the rotated 2-D Gaussian (``rotated_2d``); the time
grids are :func:`diffedu.processes.time_grid`.
"""

from __future__ import annotations

import torch

from .._core import check_process
from ..gaussian import Gaussian, decision_time, rotated_2d
from ..processes import EDM, VE, VP, Linear, Process, time_grid
from . import plots
from . import widgets as _w
from .checks import Feedback, check_close, check_denoiser, check_implementation

__all__ = ["plot_mode_decisions", "plot_mode_predictions", "gaussian_flow_widget", "check_gaussian_score",
           "check_denoiser", "check_decision_time"]


# --- plots ------------------------------------------------------------------------------------
def _eigvals(eigvals) -> torch.Tensor:
    ev = torch.as_tensor(eigvals, dtype=torch.float64).reshape(-1)
    if ev.numel() == 0 or not torch.isfinite(ev).all() or (ev <= 0).any():
        raise ValueError(f"eigvals must be a non-empty sequence of positive numbers; got {eigvals!r}")
    return ev


def plot_mode_decisions(eigvals, process: Process, ax=None, *, n: int = 400, mark=None):
    r"""The signal fraction of each Gaussian eigen-mode against the noise level.

    For data ``N(mu, U diag(lambda_k) U^T)``, mode k of ``x_t = alpha_t x_0 + sigma_t eps`` has
    variance ``alpha_t^2 lambda_k + sigma_t^2``, of which the share
    ``d_k(t) = alpha_t^2 lambda_k / (alpha_t^2 lambda_k + sigma_t^2)``
    (:meth:`~diffedu.gaussian.Gaussian.signal_fraction`) comes from the data: the squared
    correlation of the mode of x_t with that of x_0 under the forward coupling. (Along the
    deterministic PF-ODE the end point is fixed from the start; ``sqrt(d_k)`` is the share of its
    final value that the denoiser's prediction shows at t.) It crosses 1/2 at
    :func:`~diffedu.gaussian.decision_time`, where ``(sigma_t / alpha_t)^2 = lambda_k`` (dotted
    lines): high-variance modes cross first (at larger noise).

    eigvals: (K,) positive eigenvalues. x axis: ``sigma_t / alpha_t = exp(-lambda_t)`` on a log
    scale, decreasing to the right as sampling proceeds. mark: a noise level ``sigma/alpha`` to
    mark (black line). Returns the Axes.
    """
    ev = _eigvals(eigvals)
    check_process(process)
    ax = plots._ax(ax)
    gauss = Gaussian(torch.zeros_like(ev), ev)  # diagonal: signal_fraction keeps the order of eigvals
    t = plots._fractions(process, n, endpoint_eps=1e-3)
    ratio = torch.exp(-process.lam(t))
    frac = torch.stack([gauss.signal_fraction(float(tk), process) for tk in t])  # (n, K)
    t_half = decision_time(ev, process)
    for k, lam_k in enumerate(ev.tolist()):
        color = f"C{k % 10}"
        ax.plot(plots._np(ratio), plots._np(frac[:, k]), color=color, label=f"lambda = {lam_k:.3g}")
        if 0 < float(t_half[k]) <= process.t_max:
            ax.axvline(float(torch.exp(-process.lam(t_half[k]))), color=color, ls=":", lw=0.8)
    if mark is not None:
        ax.axvline(mark, color="k", lw=1.2)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("noise level sigma_t / alpha_t (sampling runs left to right)")
    ax.set_ylabel("signal fraction d_k(t)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize="small")
    return ax


#: Colours of the modes in :func:`plot_mode_predictions` (distinct for up to 6 modes).
_MODE_COLORS = ("C0", "C1", "C2", "C3", "C4", "C5")


def plot_mode_predictions(noise_levels, pred, final, eigvals, *, modes=(0, 3, 15, 63), path_modes=(0, 63),
                          n_paths: int = 6, axs=None):
    r"""What the denoiser's prediction shows of each mode along exact PF-ODE paths (two panels).

    noise_levels: (T,) ``sigma_t / alpha_t`` along the paths (decreasing); pred: (T, B, K) the
    prediction ``D(x_t, t)`` in the data's eigen-coordinates (centred); final: (B, K) the paths'
    end points at t = 0 in the same coordinates; eigvals: (K,). Left: for ``path_modes``, the
    prediction of each of ``n_paths`` paths in units of the mode's standard deviation,
    ``D_k / sqrt(lambda_k)``; the paths differ, and each settles on its own final value (marked
    at the right edge). Right: ``D_k(x_t) / y_k(0)`` for ``modes`` on the first path; it is the
    same for every path, ``sqrt(d_k(t))`` (the lesson checks this), and crosses ``1/sqrt 2`` at the
    dotted line ``sigma_t / alpha_t = sqrt(lambda_k)``. Returns the two Axes.
    """
    r = plots._np(torch.as_tensor(noise_levels))
    pred, final = torch.as_tensor(pred), torch.as_tensor(final)
    ev = _eigvals(eigvals)
    if pred.dim() != 3 or final.shape != pred.shape[1:] or ev.numel() != pred.shape[2] or len(r) != pred.shape[0]:
        raise ValueError(f"need noise_levels (T,), pred (T, B, K), final (B, K), eigvals (K,); got "
                         f"{len(r)}, {tuple(pred.shape)}, {tuple(final.shape)}, {ev.numel()}")
    if len(modes) > len(_MODE_COLORS) or len(path_modes) > len(_MODE_COLORS):
        raise ValueError(f"at most {len(_MODE_COLORS)} modes per panel (one colour each)")
    axs = plots._axs(axs, 2, (11.0, 4.0))
    ax = axs[0]
    for c, k in enumerate(path_modes):
        sd = float(ev[k]) ** 0.5
        ys = plots._np(pred[:, :n_paths, k] / sd)
        ax.plot(r, ys, color=_MODE_COLORS[c], lw=1, alpha=0.8)
        ax.plot([r[-1]] * ys.shape[1], plots._np(final[:n_paths, k] / sd), "o", color=_MODE_COLORS[c], ms=4,
                label=f"mode {k + 1} (lambda = {float(ev[k]):.3g}); dots: final values")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("sigma_t / alpha_t (sampling runs left to right)")
    ax.set_ylabel("prediction D_k(x_t) / sqrt(lambda_k)")
    ax.set_title(f"{n_paths} paths: each settles on its own value", fontsize="medium")
    ax.legend(fontsize="x-small")
    ax = axs[1]
    for c, k in enumerate(modes):
        ax.plot(r, plots._np(pred[:, 0, k] / final[0, k]), color=_MODE_COLORS[c],
                label=f"mode {k + 1}, lambda = {float(ev[k]):.3g}")
        ax.axvline(float(ev[k]) ** 0.5, ls=":", color=_MODE_COLORS[c])
    ax.axhline(2**-0.5, color="0.6", lw=0.8)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("sigma_t / alpha_t (sampling runs left to right)")
    ax.set_ylabel("D_k(x_t) / final value (every path)")
    ax.set_title("the share of its final value the prediction shows", fontsize="medium")
    ax.legend(fontsize="x-small")
    return axs


# --- widget -----------------------------------------------------------------------------------
def _path_times(process: Process, t: float, n: int = 60) -> torch.Tensor:
    """``n + 1`` times from t_max down to t, uniform in lambda (one time when t is t_max)."""
    if t >= process.t_max:
        return torch.tensor([float(process.t_max)], dtype=torch.float64)
    return time_grid(process, n + 1, "lambda", t_eps=t)[:-1]


def _draw_flow(t_frac, log10_lam1, log10_lam2, *, process, angle, n_paths, seed, lim):
    lam1, lam2 = 10.0**log10_lam1, 10.0**log10_lam2
    gauss = rotated_2d(lam1, lam2, angle)
    t = max(t_frac * process.t_max, 1e-4 * process.t_max)
    gen = torch.Generator().manual_seed(seed)
    x_T = gauss.sample_marginal(n_paths, process.t_max, process, generator=gen, dtype=torch.float64)
    axs = plots.new_axes(2, figsize=(9.6, 4.0))
    plots.plot_density_2d(gauss, process, t, axs[0], lim=lim, n=90)
    plots.plot_trajectories(gauss.flow_path(x_T, _path_times(process, t), process), axs[0], color="w", alpha=0.8)
    axs[0].set_title(f"p_t and exact PF-ODE paths down to t = {t:.3g}", fontsize="small")
    ratio = float(torch.exp(-process.lam(t)))
    plot_mode_decisions([lam1, lam2], process, axs[1], mark=ratio)
    axs[1].set_title(f"sigma/alpha = {ratio:.3g}", fontsize="small")
    return axs[0].figure


def gaussian_flow_widget(process: Process, *, angle: float = 30.0, n_paths: int = 40, seed: int = 0,
                         lim=(-4.0, 4.0)):
    r"""A 2-D Gaussian's marginal and exact flow, with sliders for time and the covariance spectrum.

    Sliders: ``t / t_max`` and the base-10 logs of the two eigenvalues (the first eigenvector
    at ``angle`` degrees). Left: p_t with the exact PF-ODE paths of ``n_paths`` seeded starts
    from ``t_max`` down to t; right: each mode's signal fraction (:func:`plot_mode_decisions`).
    """
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process; got {type(process).__name__}")
    return _w.interactive(
        _draw_flow,
        t_frac=_w.float_slider(0.5, 0.0, 1.0, 0.01, "t / t_max"),
        log10_lam1=_w.float_slider(0.5, -2.0, 1.0, 0.1, "log10 lambda_1"),
        log10_lam2=_w.float_slider(-1.5, -2.0, 1.0, 0.1, "log10 lambda_2"),
        process=process, angle=angle, n_paths=n_paths, seed=seed, lim=tuple(lim),
    )


# --- exercise checkers ------------------------------------------------------------------------
_PROCESSES = (VP(), VE(), EDM(), Linear())


def _score_inputs(generator, dtype, shape):
    """One case: a process drawn from the four, x of ``shape``, a time in (0.05, 0.95) t_max, and a
    Gaussian N(mean, cov) with a random positive-definite cov, all in x's dtype."""
    B, D = shape
    process = _PROCESSES[int(torch.randint(len(_PROCESSES), (), generator=generator))]
    A = torch.randn(D, D, generator=generator, dtype=torch.float64)
    cov = A @ A.T / D + 0.1 * torch.eye(D, dtype=torch.float64)
    return {"x": torch.randn(shape, generator=generator, dtype=dtype),
            "t": float(0.05 + 0.9 * torch.rand((), generator=generator, dtype=torch.float64)) * process.t_max,
            "process": process, "mean": torch.randn(D, generator=generator, dtype=dtype), "cov": cov.to(dtype)}


def _gaussian_score(x, t, process, mean, cov):
    return Gaussian(mean, cov).score(x, t, process)


def check_gaussian_score(answer) -> Feedback:
    r"""``answer(x, t, process, mean, cov)`` = the score of the marginal p_t of ``N(mean, cov)``:
    ``-(alpha_t^2 cov + sigma_t^2 I)^{-1} (x - alpha_t mean)``, (B, D) in x's dtype.

    x: (B, D); t: a float; mean: (D,); cov: (D, D). Checked on fresh inputs (four processes,
    several shapes, float32 and float64) against :meth:`diffedu.gaussian.Gaussian.score`."""
    return check_implementation(answer, _gaussian_score, _score_inputs, name="Gaussian score")


def check_decision_time(answer, eigval: float, process, *, rtol: float = 1e-3) -> Feedback:
    r"""``answer`` = the time at which a mode of variance ``eigval`` has signal fraction 1/2.

    That is where ``sigma_t^2 / alpha_t^2 = eigval``, i.e. ``lambda_t = -1/2 log(eigval)``
    (:func:`diffedu.gaussian.decision_time`).
    """
    expected = decision_time(eigval, check_process(process))
    return check_close(answer, expected, name=f"time of signal fraction 1/2 for a mode of variance {eigval:g}",
                       rtol=rtol)
