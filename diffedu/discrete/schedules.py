r"""Masking schedules and the forward (masking) process of absorbing-state diffusion.

A schedule gives the probability ``alpha_t`` that a token is still unmasked at time t
(``alpha_0 = 1``, ``alpha_1 = 0``), each position independently:

    q(x_t^i = x_0^i) = alpha_t,   q(x_t^i = mask) = 1 - alpha_t.

Sequences have length L over ``{0, ..., V-1}``; the mask token is ``V``. Lesson 09.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._core import as_real_tensor, check_positive
from ._checks import check_cpu_generator, check_int, check_tokens

__all__ = ["MaskSchedule", "LinearMask", "CosineMask", "PowerMask", "check_schedule", "all_masked",
           "mask_tokens"]

_F64 = torch.float64


@dataclass(frozen=True)
class MaskSchedule:
    r"""Unmasked fraction ``alpha_t`` on ``[0, 1]``, decreasing from 1 to 0.

    Subclasses define ``alpha``, ``d_alpha`` and ``t_of_alpha``. ``t`` is a float or tensor;
    results are float64 tensors.
    """

    def alpha(self, t):
        raise NotImplementedError

    def d_alpha(self, t):
        raise NotImplementedError

    def t_of_alpha(self, a):
        raise NotImplementedError

    def check_t(self, t, name="t"):
        """t as a float64 tensor: ``TypeError`` unless a real number or real tensor (not a string,
        a bool or complex), ``ValueError`` unless in [0, 1]."""
        if isinstance(t, torch.Tensor) and not (t.dtype.is_complex or t.dtype == torch.bool):
            tt = t.to(_F64)  # on its own device (checked below on the CPU only)
        else:
            tt = as_real_tensor(t, name, "a time in [0, 1] or a tensor of times")
        if tt.device.type == "cpu" and tt.numel() and (torch.isnan(tt).any() or (tt < 0).any() or (tt > 1).any()):
            raise ValueError(f"{name} must lie in [0, 1] for {self!r}; got values in "
                             f"[{float(tt.min())}, {float(tt.max())}]")
        return tt


@dataclass(frozen=True)
class LinearMask(MaskSchedule):
    r"""``alpha_t = 1 - t`` (MDLM's linear schedule; the ELBO weight is ``1/t``)."""

    def alpha(self, t):
        return 1 - self.check_t(t)

    def d_alpha(self, t):
        return -torch.ones_like(self.check_t(t))

    def t_of_alpha(self, a):
        return 1 - self.check_t(a, "a")


@dataclass(frozen=True)
class CosineMask(MaskSchedule):
    r"""``alpha_t = cos(pi t / 2)`` (Shi et al. 2024, Table 1)."""

    def alpha(self, t):
        t = self.check_t(t)
        return torch.where(t >= 1, torch.zeros_like(t), torch.cos(0.5 * math.pi * t))

    def d_alpha(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * self.check_t(t))

    def t_of_alpha(self, a):
        return 2 / math.pi * torch.arccos(self.check_t(a, "a").clamp(0, 1))


@dataclass(frozen=True)
class PowerMask(MaskSchedule):
    r"""``alpha_t = 1 - t^p`` (p = 1 is :class:`LinearMask`)."""

    p: float = 2.0

    def __post_init__(self):
        check_positive(self.p, "p")

    def alpha(self, t):
        return 1 - self.check_t(t) ** self.p

    def d_alpha(self, t):
        return -self.p * self.check_t(t) ** (self.p - 1)

    def t_of_alpha(self, a):
        return (1 - self.check_t(a, "a")).clamp(min=0) ** (1 / self.p)


def check_schedule(schedule):
    if not isinstance(schedule, MaskSchedule):
        raise TypeError(f"schedule must be a diffedu.discrete.MaskSchedule (LinearMask(), CosineMask(), "
                        f"PowerMask(p)); got {type(schedule).__name__}")
    return schedule


def all_masked(n: int, length: int, vocab_size: int) -> torch.Tensor:
    """The fully masked start, (n, length) long filled with the mask id ``vocab_size``."""
    return torch.full((check_int(n, "n", minimum=1), check_int(length, "length", minimum=1)), check_int(vocab_size, "vocab_size", minimum=2),
                      dtype=torch.long)


def mask_tokens(x0, t, schedule: MaskSchedule, vocab_size: int, *, generator=None) -> torch.Tensor:
    r"""Forward process: mask each token of x0 (B, L) independently with probability ``1 - alpha_t``.

    t: float, 0-d or (B,). Returns x_t (B, L) long with mask id ``vocab_size``.
    """
    schedule = check_schedule(schedule)
    vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
    x0 = check_tokens(x0, vocab_size, "x0", allow_mask=False)
    check_cpu_generator(generator, x0.device)
    tt = schedule.check_t(t)
    a = schedule.alpha(tt).to(x0.device)
    if a.dim() == 1:
        if a.shape[0] != x0.shape[0]:
            raise ValueError(f"t must be a float, 0-d or ({x0.shape[0]},); got shape {tuple(a.shape)}")
        a = a[:, None]
    u = torch.rand(x0.shape, generator=generator, dtype=_F64, device=x0.device)
    return torch.where(u < a, x0, torch.full_like(x0, vocab_size))
