r"""Plots, sliders, cached models and checkers of the lesson "Flow matching" (lessons/14_flow_matching.ipynb).

The maths lives in the core: :mod:`diffedu.flow_matching` (the conditional velocity, the loss and
its floor, minibatch OT pairs, straightness, the error against the exact velocity),
:mod:`diffedu.training` (``flow_matching_loss`` and the training loop), :mod:`diffedu.nets`
(``VelocityMLP``), :mod:`diffedu.interpolants` (the exact marginal velocity of Gaussian-mixture
ends and the ODE solvers) and :mod:`diffedu.flows` (a velocity read as a denoiser and a score).

The minibatch-OT and reflow models are cached in ``data/flow_matching_models.pt`` (their training
takes about a minute, more than a lesson may spend); ``python3 -m diffedu.teach.flow_matching``
retrains them (:func:`train_flow_models`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import flow_matching as fm
from .._paths import data_path, writable_data_path
from ..gaussian import Gaussian
from ..interpolants import GaussianMixtureInterpolant, LinearInterpolant, ode_trajectory
from ..mixtures import GaussianMixture
from ..nets import VelocityMLP
from ..training import flow_matching_loss, train
from .checks import check_close, check_implementation
from .plots import new_axes
from .widgets import interactive, selection_slider

__all__ = ["FM_CONFIG", "MODEL_FILE", "flow_data", "new_velocity_net", "as_field", "train_flow_models",
           "load_flow_models", "error_maps", "plot_error_map", "velocity_error_widget", "few_step_table",
           "plot_few_step", "few_step_widget", "check_fm_loss", "check_reflow_pairs", "check_velocity_variance"]

#: The settings shared by the live network of the lesson and the cached ones.
FM_CONFIG = dict(hidden=64, depth=3, steps=1500, batch_size=256, init_seed=0, train_seed=1,
                 pairs=20000, pair_steps=40, pair_seed=5, reflow_seed=2)
MODEL_FILE = "flow_matching_models.pt"
_F64 = torch.float64


# --- the data, the networks and the cache ----------------------------------------------------------
def flow_data():
    """The lesson's data (a mixture of three Gaussians in 2-D) and its exact bridge to N(0, I) along
    the straight interpolant ``x_t = (1 - t) x0 + t x1``: ``(data, bridge)``."""
    data = GaussianMixture([0.35, 0.35, 0.3], [[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]],
                           [[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.3]], [[0.25, 0.0], [0.0, 0.15]]])
    return data, GaussianMixtureInterpolant(LinearInterpolant(0.0), data, Gaussian([0.0, 0.0], [1.0, 1.0]))


def new_velocity_net() -> VelocityMLP:
    """A fresh ``VelocityMLP`` with the lesson's width, depth and seed (:data:`FM_CONFIG`)."""
    c = FM_CONFIG
    return VelocityMLP(2, hidden=c["hidden"], depth=c["depth"], generator=torch.Generator().manual_seed(c["init_seed"]))


def as_field(net: VelocityMLP):
    """The network as a float64 field ``v(x, t)`` without gradients (for the core's ODE solvers)."""
    def field(x, t):
        with torch.no_grad():
            tt = t.float() if isinstance(t, torch.Tensor) else float(t)
            return net.velocity(x.float(), tt).to(x.dtype)
    return field


def train_flow_models(*, save: bool = False, steps: int | None = None) -> dict:
    r"""Train the lesson's three flows (:data:`FM_CONFIG`; ``steps`` overrides the number of steps).

    ``"independent"``: flow matching on independent pairs, as the lesson trains it live;
    ``"minibatch OT"``: the same with each minibatch paired by exact OT (:func:`diffedu.flow_matching.ot_coupling`);
    ``"reflow"``: the independent network, trained further on the pairs (x0, x1) its own ODE makes
    (``pairs`` draws x1 ~ N(0, I), RK4 with ``pair_steps`` steps to x0; Liu et al. 2023). About a
    minute on one core, most of it in the OT solver. ``save=True`` writes ``data/flow_matching_models.pt``
    (a source checkout is needed). Returns ``{name: (network, losses)}``."""
    c = dict(FM_CONFIG, steps=steps or FM_CONFIG["steps"])
    data, _ = flow_data()
    out = {}
    for name, coupling in (("independent", "independent"), ("minibatch OT", "ot")):
        net = new_velocity_net()
        run = train(net, flow_matching_loss(coupling=coupling), data.sample, steps=c["steps"],
                    batch_size=c["batch_size"], generator=torch.Generator().manual_seed(c["train_seed"]))
        out[name] = (net, run.losses)
    first = out["independent"][0]
    x1 = torch.randn(c["pairs"], 2, generator=torch.Generator().manual_seed(c["pair_seed"]))
    x0 = ode_trajectory(as_field(first), x1, torch.linspace(1, 0, c["pair_steps"] + 1))[-1]
    net = new_velocity_net()
    net.load_state_dict(first.state_dict())
    run = train(net, flow_matching_loss(coupling="given"), x0, labels=x1, steps=c["steps"],
                batch_size=c["batch_size"], generator=torch.Generator().manual_seed(c["reflow_seed"]))
    out["reflow"] = (net, run.losses)
    if save:
        torch.save({"config": c, **{k: {"state": v[0].state_dict(), "losses": v[1].float()} for k, v in out.items()
                                    if k != "independent"}}, writable_data_path(MODEL_FILE))
    return out


def load_flow_models() -> dict:
    """The cached minibatch-OT and reflow networks: ``{"minibatch OT": net, "reflow": net}`` (eval mode)."""
    path = data_path(MODEL_FILE)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob["config"] != FM_CONFIG:
        raise ValueError(f"{path} was trained with {blob['config']}, not {FM_CONFIG}: retrain it with "
                         "python3 -m diffedu.teach.flow_matching")
    out = {}
    for name in ("minibatch OT", "reflow"):
        net = new_velocity_net()
        net.load_state_dict(blob[name]["state"])
        out[name] = net.eval()
    return out


# --- where the learned velocity is wrong, as it trains ---------------------------------------------
def error_maps(net: VelocityMLP, checkpoints: dict, bridge: GaussianMixtureInterpolant, times, *,
               lim: float = 4.0, n: int = 41, n_err: int = 2000, seed: int = 0) -> dict:
    r"""For each checkpoint ``{step: state_dict}`` and time t: ``|v_theta - b|`` on an n x n grid of
    ``[-lim, lim]^2``, the density rho_t there, and the rho_t-weighted relative error with its
    standard error (:func:`diffedu.flow_matching.relative_velocity_error`, same draws for every
    checkpoint). Returns ``{"grid": (n,) axis, (step, t): (err_map, density, rel, rel_se)}``; the
    model is left with its final weights."""
    final = {k: v.clone() for k, v in net.state_dict().items()}
    ax = torch.linspace(-lim, lim, n, dtype=_F64)
    X, Y = torch.meshgrid(ax, ax, indexing="xy")
    pts = torch.stack([X.reshape(-1), Y.reshape(-1)], 1)
    out = {"grid": ax.numpy()}
    try:
        for step in sorted(checkpoints):
            net.load_state_dict(checkpoints[step])
            v = as_field(net)
            for t in times:
                e = ((v(pts, t) - bridge.velocity(pts, t)) ** 2).sum(1).sqrt().reshape(n, n)
                dens = bridge.log_prob(pts, t).exp().reshape(n, n)
                rel, se = fm.relative_velocity_error(v, bridge, t, n=n_err, generator=torch.Generator().manual_seed(seed))
                out[(step, float(t))] = (e.numpy(), dens.numpy(), rel, se)
    finally:
        net.load_state_dict(final)
    return out


def plot_error_map(step, t, *, maps, losses, floor, axs=None):
    r"""Two panels: the error ``|v_theta(x, t) - b(x, t)|`` of the network after ``step`` steps over
    the plane, with contours of rho_t (where the error counts), and the loss curve with its floor
    (the exact velocity's loss). Returns the two Axes."""
    if axs is None:
        axs = new_axes(2, figsize=(9.6, 4.0), pyplot=True)
    grid = maps["grid"]
    err, dens, rel, se = maps[(step, float(t))]
    ax = axs[0]
    im = ax.pcolormesh(grid, grid, err, shading="auto", cmap="magma", vmin=0.0, vmax=3.0)
    ax.contour(grid, grid, dens, levels=4, colors="w", linewidths=0.8)
    ax.figure.colorbar(im, ax=ax, label="|v_theta - b|")
    ax.set_aspect("equal")
    ax.set_xlabel("x_1")
    ax.set_ylabel("x_2")
    ax.set_title(f"step {step}, t = {t:g}: relative error {rel:.2f} +- {se:.2f}", fontsize="medium")
    ax = axs[1]
    lo = np.asarray(losses, dtype=float)
    window = max(1, len(lo) // 50)
    smooth = np.convolve(lo, np.ones(window) / window, mode="valid")
    k = max(1, min(step, len(smooth)))
    ax.plot(np.arange(k) + window, smooth[:k], color="C1", lw=1, label="flow matching loss (running mean)")
    ax.axhline(floor, color="k", ls=":", label=f"floor (exact b) {floor:.2f}")
    ax.set_xlim(0, len(lo))
    ax.set_ylim(floor * 0.9, floor * 1.6)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.legend(fontsize="small")
    return axs


def _draw_error_map(step, t, *, maps, losses, floor):
    axs = new_axes(2, figsize=(9.6, 4.0))
    plot_error_map(step, t, maps=maps, losses=losses, floor=floor, axs=axs)
    return axs[0].figure


def velocity_error_widget(maps: dict, losses, floor: float):
    """Sliders over the training checkpoints and the time t: :func:`plot_error_map`."""
    steps = sorted({k[0] for k in maps if k != "grid"})
    times = sorted({k[1] for k in maps if k != "grid"})
    return interactive(_draw_error_map, step=selection_slider(steps, steps[-1], "training step"),
                       t=selection_slider(times, times[len(times) // 2], "time t"),
                       maps=maps, losses=losses, floor=float(floor))


# --- couplings: straightness and few-step error ----------------------------------------------------
def few_step_table(fields: dict, bridge: GaussianMixtureInterpolant, x1, steps=(1, 2, 4, 8), *,
                   ode_steps: int = 50, n_data: int = 20000, seed: int = 3) -> dict:
    r"""For each field ``{name: v}``, from the same x1: its straightness S
    (:func:`diffedu.flow_matching.straightness`, along its own RK4 ODE, which also gives its end
    points x0), and for each number N of Euler steps the mean distance ``|x0^N - x0|`` to those end
    points (the few-step error against the field's own ODE) and the mean exact log-density of the
    data at x0^N minus that of fresh data (the distribution error against the data; 0 for a perfect
    sampler), each with its standard error. ``steps`` may hold ``"ode"`` for the RK4 end points.
    Returns ``{name: {"S": (S, se), N: (dist, se, gap, se)}}``."""
    x1 = x1.to(_F64)
    fresh = bridge.log_prob(bridge.rho0.sample(n_data, generator=torch.Generator().manual_seed(seed), dtype=_F64), 0.0)
    ref, ref_se = float(fresh.mean()), float(fresh.std()) / math.sqrt(n_data)
    out = {}
    for name, v in fields.items():
        S, S_se, x0 = fm.straightness(v, x1, steps=ode_steps)
        row = {"S": (S, S_se)}
        for N in steps:
            xN = x0 if N == "ode" else ode_trajectory(v, x1, torch.linspace(1, 0, N + 1, dtype=_F64), method="euler")[-1]
            d = (xN - x0).norm(dim=1)
            lp = bridge.log_prob(xN, 0.0)
            row[N] = (float(d.mean()), float(d.std()) / math.sqrt(len(d)), float(lp.mean()) - ref,
                      math.hypot(float(lp.std()) / math.sqrt(len(lp)), ref_se))
        out[name] = row
    return out


def plot_few_step(n_steps, *, fields, bridge, x1, axs=None, lim: float = 3.5, n_paths: int = 60):
    r"""One panel per field: ``n_steps`` Euler steps from the same x1 (grey lines: the paths of the
    first ``n_paths`` points; dots: where all of them land) over contours of the data density
    (the bridge's rho_0)."""
    names = list(fields)
    if axs is None:
        axs = new_axes(len(names), figsize=(3.2 * len(names), 3.4), pyplot=True)
    ax_grid = torch.linspace(-lim, lim, 81, dtype=_F64)
    X, Y = torch.meshgrid(ax_grid, ax_grid, indexing="xy")
    dens = bridge.log_prob(torch.stack([X.reshape(-1), Y.reshape(-1)], 1), 0.0).exp().reshape(81, 81).numpy()
    ts = torch.linspace(1, 0, int(n_steps) + 1, dtype=_F64)
    for ax, name in zip(axs, names):
        traj = ode_trajectory(fields[name], x1.to(_F64), ts, method="euler").numpy()
        ax.contour(ax_grid.numpy(), ax_grid.numpy(), dens, levels=4, colors="C0", linewidths=0.8)
        ax.plot(traj[:, :n_paths, 0], traj[:, :n_paths, 1], color="0.6", lw=0.6)
        ax.scatter(traj[-1, :, 0], traj[-1, :, 1], s=3, color="C3")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xlabel("x_1")
        ax.set_ylabel("x_2")
        ax.set_title(name, fontsize="medium")
    return axs


def _draw_few_step(n_steps, *, fields, bridge, x1):
    axs = new_axes(len(fields), figsize=(3.2 * len(fields), 3.4))
    plot_few_step(n_steps, fields=fields, bridge=bridge, x1=x1, axs=axs)
    return axs[0].figure


def few_step_widget(fields: dict, bridge: GaussianMixtureInterpolant, x1):
    """A slider over the number of Euler steps: :func:`plot_few_step` for every field (the data's
    density contours from the bridge at t = 0)."""
    return interactive(_draw_few_step, n_steps=selection_slider([1, 2, 4, 8, 32], 1, "Euler steps"),
                       fields=fields, bridge=bridge, x1=x1)


# --- exercises ----------------------------------------------------------------------------------
def _fm_inputs(generator, dtype, shape):
    from ..interpolants import TrigInterpolant

    B, D = shape
    A = torch.randn(D, D, generator=generator, dtype=dtype) / math.sqrt(D)
    I = LinearInterpolant(0.0) if float(torch.rand((), generator=generator)) < 0.5 else TrigInterpolant(0.0)
    return {"velocity": lambda x, t: x @ A.T + t[:, None] * torch.sin(x),   # a nonlinear "model"
            "interpolant": I, "x0": torch.randn(shape, generator=generator, dtype=dtype),
            "x1": torch.randn(shape, generator=generator, dtype=dtype),
            "t": 0.05 + 0.9 * torch.rand(B, generator=generator, dtype=dtype)}


def _fm_reference(velocity, interpolant, x0, x1, t):
    return fm.fm_terms(velocity, interpolant, x0, x1, t).mean()


def check_fm_loss(answer):
    r"""``answer(velocity, interpolant, x0, x1, t)`` = the flow matching loss ``mean_b |v(x_t, t) - u|^2``
    with ``x_t = alpha(t) x0 + beta(t) x1``, ``u = alpha'(t) x0 + beta'(t) x1`` (gamma = 0), t a (B,)
    tensor: a 0-d tensor. Checked on fresh inputs against :func:`diffedu.flow_matching.fm_terms`."""
    return check_implementation(answer, _fm_reference, _fm_inputs, name="flow matching loss")


def _reflow_inputs(generator, dtype, shape):
    D = shape[1]
    mu = torch.randn(D, generator=generator, dtype=dtype)
    return {"velocity": lambda x, t: (x - mu) * (0.5 + t) + torch.cos(x),
            "x1": torch.randn(shape, generator=generator, dtype=dtype),
            "steps": int(torch.randint(1, 9, (), generator=generator))}


def _reflow_reference(velocity, x1, steps):
    return ode_trajectory(velocity, x1, torch.linspace(1, 0, steps + 1, dtype=_F64), method="euler")[-1]


def check_reflow_pairs(answer):
    r"""``answer(velocity, x1, steps)`` = x0, the end of ``steps`` equal Euler steps of ``dx/dt = v(x, t)``
    from x1 at t = 1 to t = 0 (the pairs (x0, x1) reflow trains on). Checked on fresh inputs against
    :func:`diffedu.interpolants.ode_trajectory` (``method="euler"``)."""
    return check_implementation(answer, _reflow_reference, _reflow_inputs, name="reflow pairs")


def check_velocity_variance(answer, v: float, t: float):
    r"""``answer`` = ``Var[u | x_t]`` for 1-D data N(0, v), x1 ~ N(0, 1), the straight interpolant, at
    time t (the same at every x). Expected from :func:`diffedu.flow_matching.velocity_variance`."""
    bridge = GaussianMixtureInterpolant(LinearInterpolant(0.0), Gaussian([0.0], [float(v)]), Gaussian([0.0], [1.0]))
    expected = float(fm.velocity_variance(bridge, torch.zeros(1, 1, dtype=_F64), t)[0])
    return check_close(answer, expected, name=f"Var[u | x_t] for N(0, {v:g}) at t = {t:g}", rtol=1e-4)


if __name__ == "__main__":
    import time

    start = time.time()
    models = train_flow_models(save=True)
    print(f"wrote data/{MODEL_FILE} ({', '.join(models)}) in {time.time() - start:.0f} s")
