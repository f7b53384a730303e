r"""Exercise checkers of lesson 04 (the Fokker-Planck equation and the ODE-SDE gap).

Same API as :mod:`diffedu.exercises` (which this module re-exports, so a lesson imports one
``ex``): each checker prints one line and returns a :class:`~diffedu.exercises.Feedback`; an
unanswered ``None`` prints ``not answered yet``. Expected values come from independent
computations (autograd, the closed forms), never from stored strings.
"""

from __future__ import annotations

import torch

from ._core import check_batch, check_process
from .exercises import *  # noqa: F401,F403  (one `ex` namespace in the lesson)
from .exercises import __all__ as _base_all
from .exercises import check_close

__all__ = list(_base_all) + ["check_dt_log_p", "check_hutchinson_variance"]


def check_dt_log_p(answer, dist, x, t, process, *, rtol: float = 1e-6) -> "Feedback":  # noqa: F821
    r"""``answer`` (B,) = ``d_t log p_t(x)`` of ``dist``'s marginal, obtained from the
    Fokker-Planck equation. The expected value is the autograd time derivative of ``log_prob``."""
    check_process(process)
    x = check_batch(torch.as_tensor(x, dtype=torch.float64), dist.dim)
    tt = torch.full((x.shape[0],), float(t), dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(dist.log_prob(x, tt, process).sum(), tt)
    return check_close(answer, expected, name=f"d_t log p_t at t={float(t):g}", rtol=rtol, atol=1e-10)


def check_hutchinson_variance(answer, A, probe: str = "rademacher", *, rtol: float = 1e-6) -> "Feedback":  # noqa: F821
    r"""``answer`` = the variance of the one-probe Hutchinson estimate ``z^T A z`` of ``tr A``.

    With ``S = (A + A^T)/2``: ``2 |S|_F^2`` for Gaussian probes, ``2 |S|_F^2 - 2 sum_i S_ii^2``
    for Rademacher probes (the diagonal terms ``z_i^2 = 1`` carry no noise)."""
    if probe not in ("rademacher", "gaussian"):
        raise ValueError(f"probe must be 'rademacher' or 'gaussian'; got {probe!r}")
    A = torch.as_tensor(A, dtype=torch.float64)
    if A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix; got shape {tuple(A.shape)}")
    S = 0.5 * (A + A.T)
    expected = 2 * (S**2).sum()
    if probe == "rademacher":
        expected = expected - 2 * (torch.diagonal(S) ** 2).sum()
    return check_close(answer, expected, name=f"variance of Hutchinson's estimate ({probe} probes)",
                       rtol=rtol)
