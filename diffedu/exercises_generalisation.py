r"""Checkers for the exercises of lessons 05-07 (memorisation, Gaussian teleportation, subspaces).

Same contract as :mod:`diffedu.exercises`: each prints one line and returns a
:class:`~diffedu.exercises.Feedback`; ``None`` / ``...`` is "not answered yet". The expected
value always comes from the library.
"""

from __future__ import annotations

import torch

from ._core import check_process, coefs
from .exercises import Feedback, check_close, check_denoiser  # re-exported: lessons import this module as ex
from .gaussian import Gaussian
from .memorisation import nn_ratio
from .subspace import subspace_error

__all__ = ["Feedback", "check_close", "check_denoiser", "check_nn_ratio", "check_subspace_error", "check_flow_scale", "check_explained_variance"]


def check_nn_ratio(answer, samples, train, *, rtol: float = 1e-6) -> Feedback:
    """``answer`` (B,) = nearest / second-nearest training distance of each sample (lesson 05)."""
    return check_close(answer, nn_ratio(samples, train), name="nearest-neighbour ratio", rtol=rtol)


def check_subspace_error(answer, U, V, *, rtol: float = 1e-6) -> Feedback:
    """``answer`` = ``||P_U - P_V||_F / sqrt(2d)`` for the subspaces spanned by U and V (lesson 07)."""
    return check_close(answer, subspace_error(U, V), name="subspace error", rtol=rtol)


def check_flow_scale(answer, eigval: float, t_from: float, t_to: float, process, *,
                     rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = the factor by which the exact Gaussian flow scales a mode of variance
    ``eigval`` from ``t_from`` to ``t_to``: ``sqrt((alpha_1^2 lam + sigma_1^2) / (alpha_0^2 lam + sigma_0^2))``
    (lesson 06). Computed by flowing the unit vector with :meth:`Gaussian.flow`."""
    check_process(process)
    if not eigval >= 0:
        raise ValueError(f"eigval must be non-negative; got {eigval!r}")
    G = Gaussian([0.0], [float(eigval)])
    expected = G.flow(torch.ones(1, 1, dtype=torch.float64), t_from, t_to, process)[0, 0]
    return check_close(answer, expected, name=f"flow scale of a mode with variance {eigval:g}", rtol=rtol)


def check_explained_variance(answer, data_var: float, model_var: float, t: float, process, *,
                             rtol: float = 1e-6) -> Feedback:
    r"""``answer`` = EV(t) of the 1-D Gaussian score of ``N(0, model_var)`` for data ``N(0, data_var)``.

    Both scores are linear, ``s = -x / v_d``, ``a = -x / v_m`` with ``v = alpha^2 var + sigma^2``,
    so ``EV = 1 - (1 - v_d / v_m)^2`` (lesson 06)."""
    check_process(process)
    x = torch.zeros(1, 1, dtype=torch.float64)
    a, s = coefs(process, t, x)
    vd, vm = a**2 * data_var + s**2, a**2 * model_var + s**2
    return check_close(answer, 1 - (1 - vd / vm) ** 2, name=f"explained variance at t={t:g}", rtol=rtol)
