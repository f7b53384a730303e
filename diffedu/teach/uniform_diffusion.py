r"""Lesson 18 (uniform-noise discrete diffusion): its plot, slider and exercise checkers.

The maths lives in the core: :mod:`diffedu.discrete.uniform` (the kernel and forward draws, the
exact denoiser and leave-one-out posterior and the conversions between them, the reverse ratios,
the ELBO, the reverse step and the step-wise sampler's exact law, the absorbing reformulation and
the noise posterior) beside the masked process of lesson 09. This module only draws and grades.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import discrete as dd
from .checks import Feedback, check_close, check_implementation
from .plots import new_axes
from .widgets import float_slider, interactive

__all__ = ["plot_posteriors", "posterior_widget", "check_uniform_step", "check_noise_probability"]

_F64 = torch.float64


def plot_posteriors(t, *, dist, x, position, schedule=None, axs=None):
    r"""Two panels at time t for the noisy sequence x (L,): the denoiser ``D_i = P(x_0^i | x_t)`` and the
    leave-one-out posterior ``L_i = P(x_0^i | x_t^{-i})`` at ``position`` (bars over the vocabulary),
    and the probability that each shown token is noise (:func:`~diffedu.discrete.noise_posterior`)."""
    schedule = dd.LinearMask() if schedule is None else schedule
    if axs is None:
        axs = new_axes(2, figsize=(9.2, 3.4), pyplot=True)
    x = torch.as_tensor(x).reshape(1, -1)
    D = dd.uniform_denoiser(dist, schedule)(x, float(t))[0, position].numpy()
    Lo = dd.uniform_loo(dist, schedule)(x, float(t))[0, position].numpy()
    noise = dd.noise_posterior(dist, x, float(t), schedule)[0].numpy()
    V, L = dist.V, dist.L
    ax = axs[0]
    k = np.arange(V)
    ax.bar(k - 0.2, D, width=0.4, color="C0", label="denoiser D (sees its own token)")
    ax.bar(k + 0.2, Lo, width=0.4, color="C1", label="leave-one-out L")
    ax.axvline(int(x[0, position]), color="0.4", ls=":", lw=1)
    ax.set_xticks(k)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"clean token at position {position} (dotted: the token shown)")
    ax.set_ylabel("posterior probability")
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title(f"x_t = {' '.join(str(int(v)) for v in x[0])}, t = {float(t):.2f}", fontsize="medium")
    ax = axs[1]
    ax.bar(np.arange(L), noise, color="C2")
    ax.set_xticks(np.arange(L))
    ax.set_ylim(0, 1)
    ax.set_xlabel("position")
    ax.set_ylabel("P(the shown token is noise)")
    ax.set_title(f"noise rate 1 - alpha_t = {1 - float(schedule.alpha(float(t))):.2f}", fontsize="medium")
    return axs


def _draw_posteriors(t, *, dist, x, position):
    axs = new_axes(2, figsize=(9.2, 3.4))
    plot_posteriors(t, dist=dist, x=x, position=position, axs=axs)
    return axs[0].figure


def posterior_widget(dist: dd.SequenceDistribution, x, position: int, t: float = 0.5):
    """A slider over t: :func:`plot_posteriors` for the noisy sequence x (linear schedule)."""
    return interactive(_draw_posteriors, t=float_slider(t, 0.05, 0.95, 0.05, "time t"), dist=dist,
                       x=torch.as_tensor(x), position=int(position))


# --- exercises --------------------------------------------------------------------------------
def _step_inputs(generator, dtype, shape):
    B, L = shape
    V = 3 + int(torch.randint(0, 3, (), generator=generator))
    scheds = [dd.LinearMask(), dd.CosineMask(), dd.PowerMask(2.0)]
    logits = torch.randn(B, L, V, generator=generator, dtype=dtype)
    t = float(0.2 + 0.7 * torch.rand((), generator=generator))
    return {"probs": torch.softmax(logits, -1), "x": torch.randint(0, V, (B, L), generator=generator),
            "t": t, "s": t * float(0.3 + 0.6 * torch.rand((), generator=generator)),
            "schedule": scheds[int(torch.randint(0, 3, (), generator=generator))]}


def _step_reference(probs, x, t, s, schedule):
    return dd.uniform_step_probs(probs, x, t, s, schedule).to(probs.dtype)


def check_uniform_step(answer):
    r"""``answer(probs, x, t, s, schedule)`` = the reverse step's per-position laws ``p(x_s^i = v | x_t)``:
    (B, L, V) in probs' dtype, with probs the denoiser's prediction. Checked on fresh inputs (three
    schedules, several vocabularies) against :func:`diffedu.discrete.uniform_step_probs`."""
    return check_implementation(answer, _step_reference, _step_inputs, name="uniform-noise reverse step")


def check_noise_probability(answer, probs, shown: int, alpha: float, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = P(the token shown at a single position is noise) for clean-token law ``probs``
    (V,), the shown token ``shown`` and noise rate ``1 - alpha`` (:func:`~diffedu.discrete.noise_posterior`)."""
    p = torch.as_tensor(probs, dtype=_F64)
    one = dd.SequenceDistribution(p, p.numel(), 1)
    expected = dd.noise_posterior(one, torch.tensor([[int(shown)]]), float(dd.LinearMask().t_of_alpha(
        torch.tensor(alpha, dtype=_F64))), dd.LinearMask())[0, 0]
    return check_close(answer, expected, name="probability that the shown token is noise", rtol=rtol)
