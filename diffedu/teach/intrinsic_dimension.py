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

from .._paths import data_path, writable_data_path
from ..datasets import subspace_gaussian
from ..dimension import (DimensionEstimate, dimension_from_spectrum, intrinsic_dimension,
                         normalised_spectrum)
from ..gaussian import Gaussian
from ..nets import EnergyMLP, ScoreMLP
from ..processes import EDM, VP
from ..training import dsm_loss, train
from . import plots, widgets
from .checks import Feedback, check_close, check_implementation, say, unanswered

__all__ = ["plot_spectra_vs_noise", "plot_spectrum", "plot_dimension_vs_noise", "dimension_widget",
           "check_tangent_level", "check_dimension", "check_gap_rule", "sphere_training_set", "sphere_model",
           "train_sphere_model", "SPHERE_CONFIG", "high_sphere_sets", "high_sphere_models", "train_high_sphere_models",
           "HIGH_SPHERE_CONFIG"]


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
    ax.set_ylim(-0.02, 1.05)                 # linear: the scale on which the gap rule compares values
    ax.set_xlabel("noise level sigma_t / alpha_t (log axis)")
    ax.set_ylabel("normalised singular values (linear, as the rule reads them)")
    return ax


def plot_spectrum(est: DimensionEstimate, ax=None, *, k_true: int | None = None):
    r"""Bars of the median normalised spectrum of a :class:`~diffedu.dimension.DimensionEstimate`
    on the linear scale the gap rule uses, the two reference levels 1 and 0, and (red) the largest
    gap, which gives the estimate. Returns the Axes."""
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
    ax.plot([i + 0.5, i + 0.5], [bottom, top], color="C3", lw=3)
    ax.axhline(0.0, color="k", lw=0.8, ls=":")
    ax.set_ylim(-0.03, 1.1)
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


def plot_dimension_vs_noise(noise, fractions: dict, ax=None, *, k_true: int):
    r"""The fraction of points whose estimate is the true ``k_true``, against the noise level, one line
    per score (``fractions``: ``{name: (len(noise),) fractions}``): where each line is high is that
    score's noise window. Returns the Axes."""
    ax = plots._ax(ax)
    for i, (name, fr) in enumerate(fractions.items()):
        ax.plot(noise, np.asarray(fr, dtype=float), "o-", color=f"C{i}", label=name)
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("noise level sigma_t / alpha_t")
    ax.set_ylabel(f"fraction of points with estimate k = {k_true}")
    ax.legend(fontsize="small")
    return ax


# --- exercise checkers -----------------------------------------------------------------------
def _gap_rule_reference(spectrum):
    return dimension_from_spectrum(spectrum)[0]


def _gap_rule_inputs(generator, dtype, shape):
    B, D = shape
    mu = torch.rand(B, D, generator=generator, dtype=dtype).sort(1, descending=True).values
    k = torch.randint(0, D + 1, (B,), generator=generator)          # plant a clear gap in some rows
    for b in range(0, B, 2):
        n_normal = D - int(k[b])
        mu[b, :n_normal] = 0.9 + 0.1 * mu[b, :n_normal]
        mu[b, n_normal:] = 0.1 * mu[b, n_normal:]
    return {"spectrum": mu}


def check_gap_rule(answer):
    r"""``answer(spectrum)`` = the gap rule: for spectra (B, D), descending, the dimension estimates
    (B,) as a ``torch.long`` tensor, every gap considered with the two reference levels 1 above and
    0 below. Checked on fresh spectra (some with a planted gap, some without) against
    :func:`diffedu.dimension.dimension_from_spectrum`."""
    return check_implementation(answer, _gap_rule_reference, _gap_rule_inputs, name="gap rule",
                                shapes=((5, 4), (1, 6), (8, 3)))


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
    return say("wrong", name, "sort the values, put 1 above and 0 below them, and find the largest drop "
                              "between neighbours")


# --- a learned score on the sphere (cached: data/sphere_model.pt) --------------------------------
SPHERE_FILE = "sphere_model.pt"
SPHERE_ENERGY_FILE = "sphere_energy_model.pt"
_SPHERE_FILES = {"free": SPHERE_FILE, "energy": SPHERE_ENERGY_FILE}
#: Settings of the cached sphere network: 4,000 training points on S^2 in R^3 (seeded), a ScoreMLP.
SPHERE_CONFIG = dict(n_points=4000, data_seed=0, hidden=128, depth=3, steps=6000, batch_size=256, lr=2e-3, seed=0,
                     process="VP", weighting="eps")


def sphere_training_set() -> torch.Tensor:
    """The 4,000 training points on the unit sphere S^2 in R^3 (normalised Gaussians, seeded): (4000, 3) float64."""
    g = torch.Generator().manual_seed(SPHERE_CONFIG["data_seed"])
    z = torch.randn(SPHERE_CONFIG["n_points"], 3, generator=g, dtype=torch.float64)
    return z / z.norm(dim=1, keepdim=True)


def _sphere_net(kind="free", generator=None):
    c = SPHERE_CONFIG
    if kind == "energy":
        return EnergyMLP(VP(), 3, hidden=c["hidden"], depth=c["depth"], generator=generator)
    return ScoreMLP(VP(), 3, hidden=c["hidden"], depth=c["depth"], param="denoiser", generator=generator)


def _check_kind(kind):
    if kind not in _SPHERE_FILES:
        raise ValueError(f"kind must be 'free' or 'energy'; got {kind!r}")


def train_sphere_model(kind: str = "free", *, save: bool = False):
    r"""Train a sphere network by DSM (:func:`diffedu.training.dsm_loss`, ``"eps"`` weighting) on
    :func:`sphere_training_set` with the ``SPHERE_CONFIG`` settings: ``kind="free"`` a
    :class:`~diffedu.nets.ScoreMLP` (denoiser parametrisation, VP; about 40 s on one core),
    ``kind="energy"`` an :class:`~diffedu.nets.EnergyMLP` (score = grad_x of a scalar, a gradient by
    construction; about 2 minutes). ``save=True`` writes ``data/sphere_model.pt`` or
    ``data/sphere_energy_model.pt``. Returns the model (float32, eval mode)."""
    _check_kind(kind)
    c = SPHERE_CONFIG
    g = torch.Generator().manual_seed(c["seed"])
    net = _sphere_net(kind, g)
    train(net, dsm_loss(net.process, weighting=c["weighting"]), sphere_training_set().float(), steps=c["steps"],
          batch_size=c["batch_size"], lr=c["lr"], generator=g)
    net.eval()
    if save:
        torch.save({"config": dict(c), "state": net.state_dict()}, writable_data_path(_SPHERE_FILES[kind]))
    return net


def sphere_model(kind: str = "free"):
    """The cached sphere network, ``kind`` ``"free"`` (``data/sphere_model.pt``) or ``"energy"``
    (``data/sphere_energy_model.pt``); ``ValueError`` if trained with other settings."""
    _check_kind(kind)
    path = data_path(_SPHERE_FILES[kind])
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob["config"] != SPHERE_CONFIG:
        raise ValueError(f"{path} was trained with {blob['config']}, not SPHERE_CONFIG: rerun "
                         "python3 -m diffedu.teach.intrinsic_dimension sphere")
    net = _sphere_net(kind)
    net.load_state_dict(blob["state"])
    net.eval()
    net.requires_grad_(False)
    return net


# --- k-spheres in R^100 (cached: data/sphere100_models.pt) ----------------------------------------
HIGH_SPHERE_FILE = "sphere100_models.pt"
#: Settings of the cached R^100 networks: one ScoreMLP per sphere dimension k, on the first set of
#: :func:`high_sphere_sets`.
HIGH_SPHERE_CONFIG = dict(D=100, n_points=2000, ks=(5, 10), hidden=256, depth=3, steps=4000, batch_size=256, lr=2e-3,
                          seed=0, process="VP", weighting="eps")


def high_sphere_sets(k: int, n_sets: int = 1) -> list:
    """``n_sets`` independent sets of 2,000 uniform points on a unit k-sphere inside a random
    (k + 1)-dimensional subspace of R^100 (one basis, seeded by k): a list of (2000, 100) float64
    tensors. The first is the training set of the cached networks."""
    c = HIGH_SPHERE_CONFIG
    gk = torch.Generator().manual_seed(int(k))
    z = torch.randn(c["n_points"], k + 1, generator=gk, dtype=torch.float64)
    basis, _ = torch.linalg.qr(torch.randn(c["D"], k + 1, generator=gk, dtype=torch.float64))
    out = []
    for j in range(n_sets):
        if j:
            z = torch.randn(c["n_points"], k + 1, generator=gk, dtype=torch.float64)
        out.append((z / z.norm(dim=1, keepdim=True)) @ basis.T)
    return out


def _high_net(generator=None):
    c = HIGH_SPHERE_CONFIG
    return ScoreMLP(VP(), c["D"], hidden=c["hidden"], depth=c["depth"], param="denoiser", generator=generator)


def train_high_sphere_models(ks=None, *, save: bool = False) -> dict:
    r"""Train one :class:`~diffedu.nets.ScoreMLP` (denoiser parametrisation, VP) per k in ``ks``
    (default ``HIGH_SPHERE_CONFIG["ks"]``) by DSM on the first set of :func:`high_sphere_sets`
    (about 100 s of one core each). ``save=True`` (all ks only) writes
    ``data/sphere100_models.pt`` (float16 state dicts). Returns ``{k: model}`` (float32, eval mode)."""
    c = HIGH_SPHERE_CONFIG
    ks = tuple(c["ks"]) if ks is None else tuple(ks)
    nets = {}
    for k in ks:
        g = torch.Generator().manual_seed(c["seed"])
        net = _high_net(g)
        train(net, dsm_loss(net.process, weighting=c["weighting"]), high_sphere_sets(k)[0].float(),
              steps=c["steps"], batch_size=c["batch_size"], lr=c["lr"], generator=g)
        nets[k] = net.eval()
    if save:
        if ks != tuple(c["ks"]):
            raise ValueError(f"save=True needs every k of HIGH_SPHERE_CONFIG ({c['ks']}); got {ks}")
        torch.save({"config": dict(c), "states": {k: {n: v.half() for n, v in m.state_dict().items()}
                                                   for k, m in nets.items()}}, writable_data_path(HIGH_SPHERE_FILE))
    return nets


def high_sphere_models() -> dict:
    """The cached R^100 networks ``{k: model}`` (``data/sphere100_models.pt``; float16 weights loaded as
    float32; ``ValueError`` if trained with other settings)."""
    path = data_path(HIGH_SPHERE_FILE)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob["config"] != HIGH_SPHERE_CONFIG:
        raise ValueError(f"{path} was trained with {blob['config']}, not HIGH_SPHERE_CONFIG: rerun "
                         "python3 -m diffedu.teach.intrinsic_dimension sphere100")
    nets = {}
    for k, state in blob["states"].items():
        net = _high_net()
        net.load_state_dict({n: v.float() for n, v in state.items()})
        net.eval()
        net.requires_grad_(False)
        nets[int(k)] = net
    return nets


def main(argv=None) -> int:
    import sys
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["sphere100"]:
        train_high_sphere_models(save=True)
        print(f"wrote {writable_data_path(HIGH_SPHERE_FILE)}")
        return 0
    if not argv or argv[0] != "sphere" or len(argv) > 2 or (len(argv) == 2 and argv[1] not in _SPHERE_FILES):
        print("usage: python3 -m diffedu.teach.intrinsic_dimension sphere [free|energy]   (retrains "
              "data/sphere_model.pt and/or data/sphere_energy_model.pt; both when no kind is given)\n"
              "       python3 -m diffedu.teach.intrinsic_dimension sphere100   (retrains data/sphere100_models.pt)")
        return 2
    for kind in argv[1:] or list(_SPHERE_FILES):
        train_sphere_model(kind, save=True)
        print(f"wrote {writable_data_path(_SPHERE_FILES[kind])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
