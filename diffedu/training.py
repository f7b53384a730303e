r"""One training loop for the course, and the losses it minimises.

:func:`train` fits any ``torch.nn.Module`` by Adam with a cosine learning-rate decay, drawing
minibatches from a data set (a tensor, optionally with labels) or a sampler, and calls a
``loss(model, x0, y, *, generator)`` that draws whatever else it needs (times, noise). It keeps
copies of the weights at the steps asked for (``checkpoints``), so a lesson can show a model as
training goes on, and shows a tqdm bar with ``progress=True``.

:func:`dsm_loss` is denoising score matching (Vincent 2011): for ``x_t = alpha_t x_0 + sigma_t eps``

    E_t E_{x_0, eps} lambda(t) |s_theta(x_t, t) + eps / sigma_t|^2,

whose minimiser over all functions is the true score ``grad log p_t`` (the conditional score
``-eps / sigma_t`` averages to it, Tweedie). It differs from explicit score matching
``E |s_theta - grad log p_t|^2`` by a constant that does not depend on theta, so both have the same
minimiser. The weighting ``lambda(t)`` chooses how much each noise level counts: ``"eps"``
(``lambda = sigma_t^2``, the noise-prediction loss ``|eps_hat - eps|^2`` of DDPM), ``"x0"``
(``lambda = sigma_t^4 / alpha_t^2``, the denoiser loss ``|D - x_0|^2``) or ``"score"``
(``lambda = 1``, Vincent's, dominated by small noise). Other objectives (flow matching,
distillation) are further ``loss`` functions for the same loop: :func:`flow_matching_loss`
regresses a velocity field on interpolant velocities (lesson 14).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from ._core import (check_batch, check_callable, check_choice, check_generator, check_int, check_positive, check_process,
                    check_real, coefs)
from .flow_map import flow_map_terms

__all__ = ["TrainResult", "train", "dsm_loss", "sample_times", "flow_map_loss", "flow_matching_loss", "WEIGHTINGS"]

#: The weightings of :func:`dsm_loss`: ``lambda(t)`` in units of the score error.
WEIGHTINGS = ("eps", "x0", "score")
#: How :func:`flow_matching_loss` pairs a data point with an end point.
COUPLINGS = ("independent", "ot", "given")


class TrainResult(NamedTuple):
    """What :func:`train` returns.

    losses: (steps,) float64, the loss at each step (detached). checkpoints: ``{step: state_dict}``,
    CPU copies of the model's weights after that many steps (0 is the initial model).
    """

    losses: torch.Tensor
    checkpoints: dict


def _batches(data, labels, batch_size, generator, like):
    """A function ``draw() -> (x0, y)`` of minibatches, in the model's dtype and device."""
    if isinstance(data, torch.Tensor):
        X = check_batch(data, name="data").to(dtype=like.dtype, device=like.device)
        Y = None
        if labels is not None:
            if not isinstance(labels, torch.Tensor) or labels.shape[:1] != X.shape[:1]:
                got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
                raise ValueError(f"labels must be a tensor with one row per data point ({X.shape[0]}); got {got}")
            Y = labels.to(like.device)

        def draw():
            idx = torch.randint(X.shape[0], (batch_size,), generator=generator, device=X.device)
            return X[idx], (None if Y is None else Y[idx])
        return draw
    if callable(data):
        if labels is not None:
            raise ValueError("labels go with a data tensor; a sampler returns (x, y) itself")

        def draw():
            out = data(batch_size, generator=generator)
            x, y = out if isinstance(out, tuple) else (out, None)
            return x.to(dtype=like.dtype, device=like.device), y
        return draw
    raise TypeError(f"data must be a (M, D) tensor or a sampler callable sample(n, generator=...); "
                    f"got {type(data).__name__}")


def _cpu_copy(model):
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train(model: torch.nn.Module, loss: Callable, data, *, steps: int, batch_size: int = 256,
          lr: float = 2e-3, labels=None, checkpoints=(), generator: torch.Generator | None = None,
          progress: bool = False) -> TrainResult:
    r"""Fit ``model`` by minimising ``loss`` with Adam and a cosine learning-rate decay.

    loss: ``loss(model, x0, y, *, generator) -> scalar tensor`` (for example :func:`dsm_loss`);
    x0 (batch_size, D) is a minibatch and y its labels (None without labels). data: a (M, D)
    tensor, drawn with replacement (``labels``: (M, ...) drawn along), or a sampler
    ``data(n, generator=...)`` returning x0 or ``(x0, y)``. ``checkpoints``: step numbers after
    which a CPU copy of the weights is kept (0: before training). ``generator`` draws every
    minibatch and is passed to ``loss``. ``progress=True`` shows a tqdm bar (off in lessons).
    Returns :class:`TrainResult`; the model is trained in place and left in eval mode.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    check_callable(loss, "loss", "a callable loss(model, x0, y, *, generator) -> scalar")
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = check_positive(lr, "lr")
    if isinstance(checkpoints, (str, bytes)) or not hasattr(checkpoints, "__iter__"):
        raise TypeError(f"checkpoints must be a sequence of step numbers; got {type(checkpoints).__name__}")
    keep = sorted({check_int(c, "checkpoints", minimum=0, maximum=steps) for c in checkpoints})
    params = list(model.parameters())
    if not params:
        raise ValueError("model has no parameters to train")
    draw = _batches(data, labels, batch_size, generator, params[0])
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    saved = {0: _cpu_copy(model)} if 0 in keep else {}
    losses = torch.empty(steps, dtype=torch.float64)
    it = range(steps)
    if progress:
        from tqdm.auto import tqdm  # imported only when asked for
        it = tqdm(it, desc="training")
    model.train()
    for i in it:
        x0, y = draw()
        value = loss(model, x0, y, generator=generator)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        sched.step()
        losses[i] = float(value.detach())
        if not math.isfinite(losses[i]):
            raise FloatingPointError(f"the loss is {losses[i]} at step {i}: lower lr, or check the data "
                                     "and the model for NaN or inf")
        if i + 1 in keep:
            saved[i + 1] = _cpu_copy(model)
    model.eval()
    return TrainResult(losses, saved)


def _time_floor(process, t_min, name, ratio):
    """The lowest training time: ``t_min``, or where sigma/alpha = 1/ratio; in (t_min, t_max)."""
    t_lo = float(process.t_of_lam(math.log(ratio))) if t_min is None else check_real(t_min, name)
    if not (process.t_min < t_lo < float(process.t_max)):
        raise ValueError(f"{name} must lie in ({process.t_min}, {process.t_max}); got {t_lo}")
    return t_lo


def sample_times(process, n: int, *, t_min: float | None = None, like: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """n training times, uniform on ``[t_min, t_max]`` in like's dtype/device: (n,).

    ``t_min`` defaults to the time where ``sigma_t / alpha_t = 0.01``."""
    check_process(process)
    n = check_int(n, "n", minimum=0)
    if not isinstance(like, torch.Tensor) or not like.is_floating_point():
        got = f"a {like.dtype} tensor" if isinstance(like, torch.Tensor) else type(like).__name__
        raise TypeError(f"like must be a floating torch.Tensor (the times take its dtype and device); got {got}")
    check_generator(generator, like.device)
    t_lo = _time_floor(process, t_min, "t_min", 100.0)
    t_hi = float(process.t_max)
    u = torch.rand(n, generator=generator, dtype=like.dtype, device=like.device)
    return t_lo + (t_hi - t_lo) * u


def dsm_loss(process, *, weighting: str = "eps", t_min: float | None = None, fp_weight: float = 0.0,
             fp_batch: int = 64, fp_t_min: float | None = None, fp_method: str = "exact") -> Callable:
    r"""Denoising score matching for a model with a ``score(x, t)`` method: a loss for :func:`train`.

    Each call draws t uniform on ``[t_min, t_max]`` (:func:`sample_times`; default t_min where
    sigma/alpha = 0.01) and eps, forms ``x_t = alpha_t x0 + sigma_t eps`` (:meth:`Process.noise`)
    and returns ``mean |sigma_t s(x_t, t) + eps|^2 w(t)`` with ``w = 1`` for ``weighting="eps"``,
    ``sigma_t^2 / alpha_t^2`` for ``"x0"`` and ``1 / sigma_t^2`` for ``"score"`` (the module
    docstring derives them).

    ``fp_weight > 0`` adds ``fp_weight * mean |sigma_t^3 R(x_t, t) / g(t)^2|^2``, the score
    Fokker-Planck residual (:func:`diffedu.fokker_planck.score_residual`; FP-Diffusion, Lai et al.
    2023) on the first ``fp_batch`` points with times redrawn on ``[fp_t_min, t_max]`` (default
    where sigma/alpha = 0.1); ``sigma^3 / g^2`` makes it O(1) across t. A conditional model (one
    with ``n_labels``, :class:`diffedu.nets.ScoreMLP`) is given the minibatch's labels,
    ``s(x_t, t, y)`` (the penalty uses the unconditional score); other models ignore labels.
    """
    check_process(process)
    check_choice(weighting, "weighting", WEIGHTINGS)
    fp_weight = check_real(fp_weight, "fp_weight", minimum=0.0)
    fp_batch = check_int(fp_batch, "fp_batch", minimum=1)
    fp_lo = _time_floor(process, fp_t_min, "fp_t_min", 10.0)
    if t_min is not None:
        _time_floor(process, t_min, "t_min", 100.0)
    check_choice(fp_method, "fp_method", ("exact", "hutchinson"))
    residuals = {}  # the residual operator of each model, built on first use

    def loss(model, x0, y=None, *, generator=None):
        t = sample_times(process, x0.shape[0], t_min=t_min, like=x0, generator=generator)
        xt, eps = process.noise(x0, t, generator=generator)
        a, s = coefs(process, t, x0)
        conditional = y is not None and getattr(model, "n_labels", None) is not None
        sq = ((s * (model.score(xt, t, y) if conditional else model.score(xt, t)) + eps) ** 2).sum(1)
        if weighting == "x0":
            sq = sq * (s / a)[:, 0] ** 2
        elif weighting == "score":
            sq = sq / s[:, 0] ** 2
        value = sq.mean()
        if fp_weight:
            if id(model) not in residuals:
                from .fokker_planck import score_residual  # only the penalty needs it
                residuals[id(model)] = score_residual(model.score, process, method=fp_method, create_graph=True)
            m = min(fp_batch, x0.shape[0])
            tf = sample_times(process, m, t_min=fp_lo, like=x0, generator=generator)
            af, sf = coefs(process, tf, x0[:m])
            xf = af * x0[:m] + sf * eps[:m]         # the same noise, at the penalty's own times
            g2 = process.g2(tf.double()).to(x0.dtype)[:, None]
            R = residuals[id(model)](xf, tf) * sf**3 / g2
            value = value + fp_weight * (R**2).sum(1).mean()
        return value

    return loss


def flow_map_loss(process, times) -> Callable:
    r"""Distillation to the probability-flow map, pairs precomputed: a loss for :func:`train`.

    The target is the exact map to data, ``Phi_{t -> 0}`` (:func:`diffedu.flow_map.pf_ode_path`
    gives it): :func:`train` gets the path ends ``x0`` (M, D) as ``data`` and the paths at
    ``times`` (T,) as ``labels`` (M, T, D), and each call draws one time index k per row (uniform)
    and returns ``mean_b |F(x_b(t_k), t_k) - x0_b|^2`` with ``F = model.denoiser``
    (:func:`diffedu.flow_map.flow_map_terms`): regression of
    every point of an exact trajectory onto its end. Its minimiser is the flow map itself, the
    ideal consistency model (Song et al. 2023, "Consistency models", consistency distillation,
    eq. 7, whose minimiser with an exact ODE teacher is this map; direct regression on teacher
    pairs is Luhman and Luhman 2021). A :class:`~diffedu.nets.ScoreMLP` with
    ``param="denoiser"`` has the consistency models' parametrisation ``c_skip x + c_out F``
    (``F(x, t) -> x / alpha_t`` as ``t -> 0``). times: (T,) in ``(0, t_max]``. Lesson 17.
    """
    process = check_process(process)
    if not isinstance(times, torch.Tensor):
        raise TypeError(f"times must be a 1-D tensor of times (T,); got {type(times).__name__}")
    if times.dim() != 1 or times.numel() < 1 or not times.is_floating_point():
        raise ValueError(f"times must be a non-empty 1-D floating tensor (T,); got shape {tuple(times.shape)}, "
                         f"{times.dtype}")
    process.check_t(times, "times")
    if bool((times <= process.t_min).any()):
        raise ValueError(f"times must be > {process.t_min}: the model's input is the half log-SNR, infinite at "
                         "t = 0 (the map from t = 0 is the identity)")
    times = times.detach().clone()

    def loss(model, x0, y=None, *, generator=None):
        if not isinstance(y, torch.Tensor) or y.dim() != 3 or y.shape[0] != x0.shape[0] or \
                y.shape[1] != times.numel() or y.shape[2] != x0.shape[1]:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"labels must be the paths (M, T, D) = (M, {times.numel()}, {x0.shape[1]}) at "
                             f"times; got {got}")
        k = torch.randint(times.numel(), (x0.shape[0],), generator=generator, device=x0.device)
        return flow_map_terms(model.denoiser, x0, y, times.to(x0.device), k).mean()

    return loss


def flow_matching_loss(interpolant=None, *, coupling: str = "independent", t_min: float = 0.0) -> Callable:
    r"""Conditional flow matching for a model with a ``velocity(x, t)`` method: a loss for :func:`train`.

    Each call draws t uniform on ``[t_min, 1 - t_min]``, end points x1 ~ N(0, I) (one per data point),
    pairs them with the minibatch x0 by ``coupling``, and returns the mean of
    ``|v(x_t, t) - u|^2`` with ``x_t = alpha x0 + beta x1 + gamma z``, ``u = alpha' x0 + beta' x1 + gamma' z``
    (:func:`diffedu.flow_matching.fm_terms`; its minimiser is the marginal velocity
    ``b = E[u | x_t]``, its floor ``E tr Cov[u | x_t]``). interpolant: default
    ``LinearInterpolant(0)``, ``x_t = (1 - t) x0 + t x1`` (rectified flow). coupling:
    ``"independent"``; ``"ot"``, x1 permuted by the exact minibatch OT assignment
    (:func:`diffedu.flow_matching.ot_coupling`); ``"given"``, x1 are the labels (``train(...,
    labels=x1)``: reflow trains on the pairs a flow produced). With gamma > 0, gamma' is infinite
    at the ends: use t_min > 0.
    """
    from .flow_matching import fm_terms, ot_coupling   # flow_matching imports interpolants, not training
    from .interpolants import Interpolant, LinearInterpolant

    interpolant = LinearInterpolant(0.0) if interpolant is None else interpolant
    if not isinstance(interpolant, Interpolant):
        raise TypeError(f"interpolant must be a diffedu.interpolants.Interpolant; got {type(interpolant).__name__}")
    check_choice(coupling, "coupling", COUPLINGS)
    t_min = check_real(t_min, "t_min", minimum=0.0, maximum=0.49)
    noisy = float(interpolant.gamma2(0.5)) > 0

    def loss(model, x0, y=None, *, generator=None):
        n = x0.shape[0]
        if coupling == "given":
            if not isinstance(y, torch.Tensor) or y.shape != x0.shape:
                raise ValueError("coupling='given' needs the paired end points as labels: train(..., labels=x1)")
            x1 = y.to(dtype=x0.dtype, device=x0.device)
        else:
            x1 = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            if coupling == "ot":
                x1 = x1[ot_coupling(x0, x1)]
        t = t_min + (1 - 2 * t_min) * torch.rand(n, generator=generator, dtype=torch.float64, device=x0.device)
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device) if noisy else None
        return fm_terms(model.velocity, interpolant, x0, x1, t, z).mean()

    return loss
