"""The interface every distribution shares (:class:`Distribution`, :class:`Bound`), the process
check and the time coefficients ``alpha_t, sigma_t`` (:func:`coefs`), and the argument
validators (:mod:`diffedu._validate`, re-exported here)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._validate import *  # noqa: F401,F403  (the validators: check_int, check_real, ...)
from ._validate import __all__ as _validators
from ._validate import check_batch
from .processes import Process

__all__ = list(_validators) + ["check_process", "coefs", "Bound", "Distribution"]


def check_process(process):
    """``TypeError`` unless ``process`` is a :class:`diffedu.processes.Process`; returns it."""
    if not isinstance(process, Process):
        raise TypeError(
            f"process must be a diffedu.processes.Process (VP(), EDM(), ...); got {type(process).__name__}"
        )
    return process


def coefs(process, t, x: torch.Tensor, *, positive: bool | str = False, name: str = "t"):
    """``alpha_t, sigma_t`` in x's dtype and device, shaped () or (B, 1) to broadcast with x.

    The process is checked, then :meth:`diffedu.processes.Process.coefs` does the work (t is
    checked against the process's range; ``positive=True`` also requires t > t_min).
    """
    return check_process(process).coefs(t, x, positive=positive, name=name)


# --- the interface every closed-form distribution shares ------------------------------------
@dataclass(frozen=True)
class Bound:
    """A distribution bound to a process: ``(x, t)`` callables for samplers and plots.

    Example: ``D = Gaussian(m, C).bind(VP()).denoiser`` then ``D(x, t)``.
    """

    dist: "Distribution"
    process: "Process"  # noqa: F821

    def score(self, x, t):
        return self.dist.score(x, t, self.process)

    def denoiser(self, x, t):
        return self.dist.denoiser(x, t, self.process)

    def log_prob(self, x, t):
        return self.dist.log_prob(x, t, self.process)

    def eps(self, x, t):
        return self.dist.eps(x, t, self.process)

    def sample_marginal(self, n, t, *, generator=None, **kw):
        return self.dist.sample_marginal(n, t, self.process, generator=generator, **kw)


class Distribution:
    """Data distribution p_0 with exact marginals p_t under any :class:`Process`.

    Subclasses implement ``sample``, ``log_prob``, and one of ``score`` / ``denoiser``; Tweedie's
    formula ``s = (alpha_t D - x) / sigma_t^2`` gives the other.
    """

    dim: int

    def sample(self, n: int, *, generator=None, dtype=None, device=None) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, x, t, process) -> torch.Tensor:
        raise NotImplementedError

    def score(self, x, t, process) -> torch.Tensor:
        r"""Score ``grad_x log p_t(x)``, (B, D), by Tweedie from the denoiser."""
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x)
        return (a * self.denoiser(x, t, process) - x) / s**2

    def denoiser(self, x, t, process) -> torch.Tensor:
        r"""Posterior mean ``E[x_0 | x_t = x]``, (B, D), by Tweedie from the score."""
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x)
        return (x + s**2 * self.score(x, t, process)) / a

    def eps(self, x, t, process) -> torch.Tensor:
        r"""Noise prediction ``eps_hat = (x - alpha_t D) / sigma_t = -sigma_t s(x, t)``, (B, D).

        Computed as ``-sigma_t * score``: at small sigma ``x - alpha_t D`` cancels, and in float32
        that loses the answer whenever the score is computed directly (Gaussians, mixtures)."""
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x)
        return -s * self.score(x, t, process)

    def sample_marginal(self, n, t, process, *, generator=None, dtype=None, device=None):
        r"""Draw ``x_t = alpha_t x_0 + sigma_t eps`` (n, D) with x_0 from :meth:`sample`."""
        x0 = self.sample(n, generator=generator, dtype=dtype, device=device)
        return check_process(process).noise(x0, t, generator=generator)[0]

    def bind(self, process) -> Bound:
        """The distribution bound to ``process``: ``.denoiser(x, t)``, ``.score(x, t)``, ..."""
        return Bound(self, check_process(process))
