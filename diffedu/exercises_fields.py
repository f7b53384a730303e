r"""Checkers for the exercises of lessons 11 (conservativity and gauge) and 12 (intrinsic dimension).

Same contract as :mod:`diffedu.exercises`: each checker prints one line and returns a
:class:`~diffedu.exercises.Feedback`; ``None`` or ``...`` means "not answered yet" and does not
raise. Expected values come from :mod:`diffedu.fields` and the closed forms.
"""

from __future__ import annotations

import math

import torch

from . import fields as F
from .exercises import Feedback, _say, _unanswered, check_close

__all__ = ["check_asymmetry", "check_circulation_of_rotation", "check_gauge_matrix",
           "check_tangent_level", "check_dimension"]


def check_asymmetry(answer, M, *, rtol: float = 1e-6) -> Feedback:
    r"""``answer = ||M - M^T||_F / ||M||_F`` for the matrix M (lesson 11)."""
    M = torch.as_tensor(M, dtype=torch.float64)
    return check_close(answer, F.asymmetry_ratio(M[None])[0], name="asymmetry ratio", rtol=rtol)


def check_circulation_of_rotation(answer, strength: float, radius: float, *, rtol: float = 1e-4) -> Feedback:
    r"""``answer`` = circulation of ``r(x) = strength A x`` (A the rotation generator) around the
    circle of ``radius`` about the origin, counter-clockwise: ``2 strength pi radius^2`` (lesson 11)."""
    return check_close(answer, 2 * strength * math.pi * radius**2, name="circulation", rtol=rtol)


def check_gauge_matrix(answer, cov, *, tol: float = 1e-8) -> Feedback:
    r"""``answer`` = a nonzero (D, D) matrix M such that ``r(x) = M x`` is a gauge field of
    ``N(0, cov)``: ``div(p r) = p (tr M - x^T C^{-1} M x) = 0`` for all x, i.e. ``C^{-1} M`` is
    antisymmetric (then ``tr M = 0`` too). Any such M is right (lesson 11)."""
    name = "gauge matrix"
    if _unanswered(answer):
        return _say("unanswered", name, "")
    C = torch.as_tensor(cov, dtype=torch.float64)
    try:
        M = torch.as_tensor(answer, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return _say("wrong", name, f"expected a matrix, got a {type(answer).__name__}")
    if M.shape != C.shape:
        return _say("wrong", name, f"shape {tuple(M.shape)}, expected {tuple(C.shape)}")
    scale = float(M.abs().max())
    if scale == 0:
        return _say("wrong", name, "M = 0 is a gauge field, but a trivial one: give a nonzero M")
    K = torch.linalg.solve(C, M)
    sym = float((K + K.T).abs().max()) / (float(K.abs().max()) + 1e-300)
    if sym <= tol:
        return _say("correct", name, "C^{-1} M is antisymmetric, so div(p M x) = 0 everywhere")
    if float((M + M.T).abs().max()) <= tol * scale:
        return _say("wrong", name, "M itself is antisymmetric (a plain rotation): that is a gauge field "
                                   "only for an isotropic C; try M = A C^{-1}")
    return _say("wrong", name, f"C^{{-1}} M is not antisymmetric (relative symmetric part {sym:.2g})")


def check_tangent_level(answer, eigval: float, sigma: float, *, rtol: float = 1e-4) -> Feedback:
    r"""``answer`` = the normalised singular value ``sigma^2 / (lambda + sigma^2)`` of the score
    Jacobian in a tangent direction of variance ``lambda`` at noise ``sigma`` (alpha = 1; lesson 12)."""
    return check_close(answer, sigma**2 / (eigval + sigma**2),
                       name=f"tangent level (lambda={eigval:g}, sigma={sigma:g})", rtol=rtol)


def check_dimension(answer, spectrum) -> Feedback:
    r"""``answer`` = the dimension that the largest gap of the normalised ``spectrum`` (D,) gives,
    counting the gap from the reference level 1 to the top value (lesson 12)."""
    name = "dimension"
    if _unanswered(answer):
        return _say("unanswered", name, "")
    mu = torch.as_tensor(spectrum, dtype=torch.float64).reshape(1, -1)
    expected = int(F.dimension_from_spectrum(mu)[0][0])
    try:
        a = int(answer)
    except (TypeError, ValueError):
        return _say("wrong", name, f"expected an integer, got a {type(answer).__name__}")
    if a == expected:
        return _say("correct", name, f"k = {a}: {mu.shape[1] - a} normal direction(s) above the largest gap")
    if a == mu.shape[1] - expected:
        return _say("wrong", name, f"{a} counts the normal directions; the dimension is D minus that")
    return _say("wrong", name, "sort the values, prepend 1, and find the largest drop between neighbours")
