r"""Lesson 12 (is a learned score a gradient? conservativity and gauge freedom): its plots, the
gauge slider, the exercise checkers and the two cached models.

The maths lives in the core: :mod:`diffedu.conservativity` (Jacobian asymmetry, curl,
circulation, :func:`~diffedu.conservativity.linear_circulation`), :mod:`diffedu.hodge` (the
density-weighted Helmholtz-Hodge decomposition), :mod:`diffedu.gauge` (gauge and plain rotations,
:func:`~diffedu.gauge.rotated_scores`, :func:`~diffedu.gauge.gauge_flow_summary`,
:func:`~diffedu.gauge.linear_gauge_defect`), :func:`diffedu.gaussian.cov_ellipse`, and
:mod:`diffedu.nets` (the free ``ScoreMLP`` and the energy ``EnergyMLP``, ``train_dsm``).

Lesson 12 trains the two models on :func:`gauge_data`. Training both takes about a minute on
a 2-core CPU, more than a lesson may run, so the weights are cached in
``data/gauge_models.pt`` (float32 state dicts plus the training settings);
:func:`train_gauge_models` regenerates them, and a slow test checks that a fresh training run
is as good as the cache.
"""

from __future__ import annotations

import torch

from .. import gauge
from .._paths import data_path, writable_data_path
from ..conservativity import asymmetry_ratio, linear_circulation
from ..datasets import ring
from ..gaussian import Gaussian, cov_ellipse
from ..hodge import Decomposition
from ..nets import EnergyMLP, ScoreMLP, train_dsm
from ..processes import VP, Process, time_grid
from ..samplers import heun, trajectory
from . import plots, widgets
from .checks import Feedback, check_close, check_implementation, say, unanswered

__all__ = [
    "gauge_data", "gauge_models", "train_gauge_models", "MODEL_FILE", "GAUGE_CONFIG",
    "plot_decomposition", "plot_cov_ellipse", "plot_gauge_flows", "gauge_widget",
    "check_asymmetry", "check_circulation_of_rotation", "check_gauge_matrix", "check_gauge_defect",
]

MODEL_FILE = "gauge_models.pt"
#: Settings of the cached gauge-lesson models (changing them needs ``train_gauge_models(save=True)``).
GAUGE_CONFIG = dict(k=6, radius=2.0, std=0.25, hidden=64, depth=3, steps=4000, batch_size=256, seed=0)


# --- the two trained models ------------------------------------------------------------------
def gauge_data():
    """The data of lesson 12: a ring of 6 Gaussians (exact scores, :func:`diffedu.datasets.ring`), and VP."""
    c = GAUGE_CONFIG
    return ring(c["k"], c["radius"], c["std"]), VP()


def _new_models(process, generator):
    c = GAUGE_CONFIG
    free = ScoreMLP(process, 2, hidden=c["hidden"], depth=c["depth"], generator=generator)
    energy = EnergyMLP(process, 2, hidden=c["hidden"], depth=c["depth"], generator=generator)
    return free, energy


def train_gauge_models(*, save: bool = False):
    r"""Train the free and the energy model of lesson 12 by DSM (:func:`diffedu.nets.train_dsm`).

    Same seed, data and settings (:data:`GAUGE_CONFIG`) for both. ``save=True`` writes
    ``data/gauge_models.pt`` (a source checkout is needed). About a minute on 2 CPU cores.
    Returns ``(free, energy)`` in eval mode.
    """
    c = GAUGE_CONFIG
    data, process = gauge_data()
    free, energy = _new_models(process, torch.Generator().manual_seed(c["seed"]))
    for model in (free, energy):
        g = torch.Generator().manual_seed(c["seed"] + 1)
        train_dsm(model, data.sample, steps=c["steps"], batch_size=c["batch_size"], generator=g)
        model.eval()
    if save:
        torch.save({"config": dict(c), "free": free.state_dict(), "energy": energy.state_dict()},
                   writable_data_path(MODEL_FILE))
    return free, energy


def gauge_models():
    """The cached ``(free, energy)`` models of lesson 12 (float32, eval mode, no gradients kept).

    Raises ``FileNotFoundError`` when ``data/gauge_models.pt`` is missing and ``ValueError``
    when it was trained with other settings than :data:`GAUGE_CONFIG`.
    """
    path = data_path(MODEL_FILE)
    state = torch.load(path, weights_only=True)
    if state["config"] != GAUGE_CONFIG:
        raise ValueError(f"{path} was trained with {state['config']}, not {GAUGE_CONFIG}: retrain it "
                         "with train_gauge_models(save=True)")
    _, process = gauge_data()
    free, energy = _new_models(process, None)
    free.load_state_dict(state["free"])
    energy.load_state_dict(state["energy"])
    for m in (free, energy):
        m.eval()
        m.requires_grad_(False)
    return free, energy


# --- plots -----------------------------------------------------------------------------------
def plot_decomposition(dec: Decomposition, axs=None, *, stride: int = 5, titles=None, p_min: float = 1e-3):
    r"""Three panels: the field, its gradient part and the remainder, over contours of p.

    dec: a :class:`~diffedu.hodge.Decomposition` (:func:`diffedu.hodge.decompose`). ``stride``
    thins the arrows; arrows are drawn only where ``p >= p_min`` (p scaled to maximum 1): where p
    is near 0 the weighted problem barely constrains phi, and the remainder there is ill-posed.
    Returns the three Axes.
    """
    if not isinstance(dec, Decomposition):
        raise TypeError(f"dec must be a diffedu.hodge.Decomposition; got {type(dec).__name__}")
    axs = plots._axs(axs, 3, (13.5, 4.2))
    X, Y = (a.numpy() for a in dec.grid.mesh())
    p = dec.p.numpy()
    titles = titles or ("field", "gradient part grad(phi)", "remainder r, div(p r) = 0")
    sl = (slice(None, None, stride), slice(None, None, stride))
    for ax, V, title in zip(axs, (dec.field, dec.gradient, dec.remainder), titles):
        ax.contourf(X, Y, p, levels=12, cmap="Greys", alpha=0.6)
        v = V.numpy().copy()
        v[p < p_min] = float("nan")                        # masked: no arrow where p ~ 0
        ax.quiver(X[sl], Y[sl], v[..., 0][sl], v[..., 1][sl], color="C0")
        ax.set_title(title, fontsize="small")
        ax.set_aspect("equal")
    return axs


def plot_cov_ellipse(cov, ax=None, *, mean=(0.0, 0.0), n_std: float = 2.0, **line_kw):
    """The ``n_std``-standard-deviation ellipse of a 2-D covariance (2, 2) about ``mean``
    (:func:`diffedu.gaussian.cov_ellipse`). Returns the Axes."""
    ax = plots._ax(ax)
    pts = cov_ellipse(cov, mean, n_std=n_std)
    ax.plot(pts[:, 0].numpy(), pts[:, 1].numpy(), **line_kw)
    return ax


def plot_gauge_flows(gaussian, process, strength: float, t: float, axs=None, *, n_paths: int = 12,
                     n_steps: int = 30, seed: int = 0, lim=(-3.0, 3.0)):
    r"""Lesson 12's gauge picture, three panels.

    1 and 2: the fields ``s + r`` at time t with r the gauge rotation (``-strength A s``) and the
    plain rotation (``strength A (x - m_t)``) (:func:`diffedu.gauge.rotated_scores`), over the
    density p_t. 3: PF-ODE paths (Heun, ``n_steps``) from the same starting points with the exact
    and the gauge-rotated score: the paths differ, and the final 2-sigma ellipses of the exact,
    gauge and plain flows, from :func:`diffedu.gauge.gauge_flow_summary`, show that only the plain
    rotation changes the distribution. Returns the three Axes.
    """
    axs = plots._axs(axs, 3, (9.2, 3.6))
    scores, dens = gauge.rotated_scores(gaussian, process, strength)
    for ax, name in zip(axs[:2], ("gauge", "plain")):
        plots.plot_density_2d(gaussian, process, t, ax, lim=lim, n=80, cmap="Greys")
        plots.plot_vector_field(scores[name], t, ax, lim=lim, n=13, color="C0" if name == "gauge" else "C3")
        ax.set_title(f"score + {name} rotation at t = {t:.3g}", fontsize="small")
    gen = torch.Generator().manual_seed(seed)
    x_T = gaussian.sample_marginal(n_paths, process.t_max, process, generator=gen, dtype=torch.float64)
    ts = time_grid(process, n_steps)
    ax = axs[2]
    for name, color, alpha in (("gauge", "C0", 0.6), ("exact", "0.2", 0.9)):
        plots.plot_trajectories(trajectory(heun, dens[name], process, x_T, ts), ax, color=color, alpha=alpha)
    summary = gauge.gauge_flow_summary(gaussian, process, strength)
    for name, color, ls in (("exact", "k", "-"), ("gauge", "C0", "--"), ("plain", "C3", "-")):
        C, err = summary[name]
        plot_cov_ellipse(C, ax, mean=gaussian.mean, color=color, ls=ls, lw=1.6,
                         label=f"{name}: cov error {err:.1e}" if name != "exact" else "exact 2-sigma ellipse")
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title("PF-ODE paths (dark: exact, blue: gauge)\nand final ellipses", fontsize="small")
    return axs


def _draw_gauge(strength, t_frac, *, gaussian, process, lim):
    axs = plots.new_axes(3, figsize=(9.2, 3.6))
    return plot_gauge_flows(gaussian, process, strength, max(t_frac, 0.02) * process.t_max, axs, lim=lim)[0].figure


def gauge_widget(gaussian: Gaussian, process: Process, *, lim=(-3.0, 3.0), strength: float = 1.0):
    r"""Sliders for the rotation strength and ``t / t_max`` over :func:`plot_gauge_flows`."""
    if not isinstance(gaussian, Gaussian) or gaussian.dim != 2:
        raise TypeError("gaussian must be a two-dimensional diffedu.Gaussian")
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process; got {type(process).__name__}")
    return widgets.interactive(
        _draw_gauge,
        strength=widgets.float_slider(strength, 0.0, 3.0, 0.25, "rotation strength"),
        t_frac=widgets.float_slider(0.3, 0.02, 1.0, 0.02, "t / t_max"),
        gaussian=gaussian, process=process, lim=tuple(lim),
    )


# --- exercise checkers -----------------------------------------------------------------------
def check_asymmetry(answer, M, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = ``||M - M^T||_F / ||M||_F`` for the matrix M (:func:`diffedu.conservativity.asymmetry_ratio`)."""
    M = torch.as_tensor(M, dtype=torch.float64)
    return check_close(answer, asymmetry_ratio(M[None])[0], name="asymmetry ratio", rtol=rtol)


def check_circulation_of_rotation(answer, strength: float, radius: float, *, rtol: float = 1e-4) -> Feedback:
    r"""``answer`` = the circulation of ``r(x) = strength A x`` (A the rotation generator) around the
    circle of ``radius``, counter-clockwise (:func:`diffedu.conservativity.linear_circulation`)."""
    expected = linear_circulation(strength * gauge.rotation_matrix(2), radius)
    return check_close(answer, expected, name="circulation", rtol=rtol)


def check_gauge_matrix(answer, cov, *, tol: float = 1e-8) -> Feedback:
    r"""``answer`` = a nonzero (D, D) matrix M such that ``r(x) = M x`` is a gauge field of
    ``N(0, cov)``, i.e. ``div(p M x) = 0`` everywhere (:func:`diffedu.gauge.linear_gauge_defect`
    is 0). Any such M is right."""
    name = "gauge matrix"
    if unanswered(answer):
        return say("unanswered", name, "")
    C = torch.as_tensor(cov, dtype=torch.float64)
    try:
        M = torch.as_tensor(answer, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return say("wrong", name, f"expected a matrix, got a {type(answer).__name__}")
    if M.shape != C.shape:
        return say("wrong", name, f"shape {tuple(M.shape)}, expected {tuple(C.shape)}")
    if float(M.abs().max()) == 0:
        return say("wrong", name, "M = 0 is a gauge field, but a trivial one: give a nonzero M")
    defect = gauge.linear_gauge_defect(M, C)
    if defect <= tol:
        return say("correct", name, "C^{-1} M is antisymmetric, so div(p M x) = 0 everywhere")
    if abs(float(asymmetry_ratio(M[None])[0]) - 2.0) <= tol:  # ratio 2: M itself is antisymmetric
        return say("wrong", name, "M itself is antisymmetric (a plain rotation): that is a gauge field "
                                  "only for an isotropic C. Write div(p M x) for p = N(0, C) as section 5 "
                                  "does: which matrix made of C and M has to be antisymmetric?")
    return say("wrong", name, f"C^{{-1}} M is not antisymmetric (relative symmetric part {defect:.2g})")


def _gauge_defect_inputs(generator, dtype, shape):
    B, D = shape
    M = torch.randn(D, D, generator=generator, dtype=dtype)
    c = torch.randn(D, generator=generator, dtype=dtype)
    m = torch.randn(D, generator=generator, dtype=dtype)
    return {"r": lambda x, t: torch.sin(x) @ M.T * (1 + t) + c,
            "score": lambda x, t: -(x - m) / (0.5 + t),
            "x": torch.randn(B, D, generator=generator, dtype=dtype),
            "t": float(torch.rand((), generator=generator))}


def check_gauge_defect(answer):
    r"""``answer(r, score, x, t)`` = ``div(p r) / p = div r + r . score`` at each row of x: (B,).
    Checked on fresh fields and points against :func:`diffedu.gauge.gauge_defect`."""
    return check_implementation(answer, gauge.gauge_defect, _gauge_defect_inputs, name="gauge check")
