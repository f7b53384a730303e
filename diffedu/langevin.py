r"""Langevin dynamics: sampling a density from its score alone, and annealing it over noise levels.

The Langevin diffusion ``dx = grad log p(x) dt + sqrt(2) dW`` leaves p invariant: its
Fokker-Planck equation is ``d_t q = -div(q grad log p) + Laplacian q``, and at ``q = p`` the
right-hand side is ``-div(grad p) + Laplacian p = 0`` (and q converges to p for a smooth,
log-concave-enough p). Its Euler-Maruyama step with step size h,

    x <- x + h s(x) + sqrt(2 h) z,       z ~ N(0, I),

needs only the score ``s = grad log p``: the normalising constant never appears. The step is
biased at finite h: for ``p = N(mu, v)`` the chain is an AR(1) process whose stationary variance
is ``v / (1 - h / (2 v))`` instead of v (:func:`gaussian_stationary_variance`).

A learned score is only accurate where there is data, and Langevin dynamics mixes slowly between
separated modes. *Annealed* Langevin dynamics (Song and Ermon 2019, "Generative modeling by
estimating gradients of the data distribution", Alg. 1) runs a few steps at each noise level of a
decreasing grid, targeting p_t with the score of p_t: at high noise p_t is smooth and unimodal,
and each level starts from samples of the one before. The step size follows the noise,
``h_t = step_scale * sigma_t^2`` (their ``alpha_i = eps sigma_i^2 / sigma_L^2``). Lesson 04
("Learning the score") derives both.
"""

from __future__ import annotations

import math

import torch

from ._core import (as_times, check_batch, check_callable, check_generator, check_int, check_output, check_positive,
                    check_process, coefs, shape_checked)

__all__ = ["langevin_step", "gaussian_stationary_variance", "annealed_langevin"]


def langevin_step(score, x, t, step: float, noise) -> torch.Tensor:
    r"""One Langevin step on p_t: ``x + step * s(x, t) + sqrt(2 step) * noise``: (B, D).

    score: ``s(x, t) -> (B, D)``; x, noise: (B, D), the noise drawn by the caller (so a test, or
    two methods, can use the same draws); step: h > 0.
    """
    check_callable(score, "score")
    x = check_batch(x)
    noise = check_batch(noise, x.shape[1], name="noise")
    if noise.shape != x.shape:
        raise ValueError(f"noise must have x's shape {tuple(x.shape)}; got {tuple(noise.shape)}")
    h = check_positive(step, "step")
    return x + h * check_output(score(x, t), x, "score") + math.sqrt(2 * h) * noise


def gaussian_stationary_variance(v: float, step: float) -> float:
    r"""The stationary variance of Langevin steps on ``N(mu, v)``: ``v / (1 - h / (2 v))``.

    With ``s(x) = -(x - mu) / v`` the step is ``x - mu <- (1 - h/v)(x - mu) + sqrt(2h) z``, an AR(1)
    process with stationary variance ``2h / (1 - (1 - h/v)^2) = v / (1 - h/(2v))``; it exists for
    ``0 < h < 2 v`` and tends to v as h -> 0 (the discretisation bias of the step).
    """
    v, h = check_positive(v, "v"), check_positive(step, "step")
    if h >= 2 * v:
        raise ValueError(f"step must be < 2 v = {2 * v:g} for the chain to be stable; got {h:g}")
    return v / (1 - h / (2 * v))


def annealed_langevin(D, process, x, ts, *, n_steps: int = 10, step_scale: float = 0.05, generator=None,
                      callback=None) -> torch.Tensor:
    r"""Annealed Langevin dynamics (Song and Ermon 2019, Alg. 1) with a denoiser: (B, D) at ts[-1].

    D: a denoiser ``D(x, t)`` (the score is ``(alpha_t D - x) / sigma_t^2``, Tweedie); x: (B, D)
    start (draws of p at ``ts[0]``); ts: (N+1,) strictly decreasing times, as from
    :func:`~diffedu.processes.time_grid`. At each ``t_i`` with sigma > 0, ``n_steps`` Langevin
    steps on ``p_{t_i}`` with ``h_i = step_scale * sigma_{t_i}^2``; a grid ending at 0 ends with
    the denoiser's jump ``x = D(x, ts[-2])`` (Jolicoeur-Martineau et al. 2021's final denoising
    step). ``callback(i, t, x)`` after each level, as the samplers' one.
    """
    D = shape_checked(check_callable(D, "D", "a denoiser D(x, t) -> (B, D)"), "D")
    process = check_process(process)
    x = check_batch(x)
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    step_scale = check_positive(step_scale, "step_scale")
    check_generator(generator, x.device)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a callable callback(i, t, x) or None; got {type(callback).__name__}")
    ts = as_times(ts)
    if ts.numel() < 2 or not (ts[1:] < ts[:-1]).all() or not torch.isfinite(ts).all():
        raise ValueError("ts must be a strictly decreasing (N+1,) grid of finite times, N >= 1")
    process.check_t(ts, "ts")
    jump = float(ts[-1]) == 0.0
    levels = ts[:-1].tolist() if jump else ts.tolist()
    for i, t in enumerate(levels):
        a, s = coefs(process, t, x)
        a, s = float(a), float(s)
        h = step_scale * s * s
        for _ in range(n_steps):
            d = D(x, t)
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + h * (a * d - x) / (s * s) + math.sqrt(2 * h) * noise
        if callback is not None:
            callback(i, t, x)
    if jump:
        x = D(x, levels[-1])
        if callback is not None:
            callback(len(levels), 0.0, x)
    return x
