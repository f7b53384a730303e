r"""Differential operators on batched fields by autograd: Jacobian, divergence, Laplacian.

A *field* maps x (B, D) to (B, D) row by row (row b of the output depends only on row b of the
input), so ``sum_b f(x)_b`` has the per-sample Jacobians as its gradient blocks. A *scalar
field* maps (B, D) to (B,). The probability-flow likelihood (:func:`diffedu.samplers.log_likelihood`),
the Fokker-Planck residual and the conservativity checks all use these.

Hutchinson's estimator (Hutchinson 1989; FFJORD, Grathwohl et al. 2019):
``div f(x) = tr J(x) = E_z[z^T J(x) z]`` for any probe z with ``E[z z^T] = I``; Rademacher
probes give the smallest variance, ``2 sum_{i != j} J_ij^2`` (with a symmetric part).
"""

from __future__ import annotations

import torch

from ._core import as_param, check_batch, check_callable, check_choice, check_generator, check_int

__all__ = ["jacobian", "divergence", "laplacian", "hutchinson_probes", "hutchinson_variance"]

_METHODS = ("exact", "hutchinson")
_PROBES = ("rademacher", "gaussian")


def _leaf(x):
    return check_batch(x).detach().requires_grad_(True)


def _out(y, x, name="f"):
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name} must map x {tuple(x.shape)} to the same shape (a field); got {got}")
    return y


def jacobian(f, x, *, create_graph: bool = False):
    r"""Per-sample Jacobians ``J[b, i, j] = d f_i(x_b) / d x_bj``: (B, D, D).

    f: field (B, D) -> (B, D); x: (B, D). D backward passes, one per output coordinate.
    """
    check_callable(f, "f", "a field f(x) (B, D) -> (B, D)")
    with torch.enable_grad():
        xl = _leaf(x)
        y = _out(f(xl), xl)
        rows = [torch.autograd.grad(y[:, i].sum(), xl, retain_graph=True, create_graph=create_graph)[0]
                for i in range(y.shape[1])]
    return torch.stack(rows, 1)


def _check_probes(probes, x):
    """Given probes: a finite floating (P, B, D) tensor matching x (B, D)."""
    if not isinstance(probes, torch.Tensor) or not probes.is_floating_point():
        got = f"a {probes.dtype} tensor" if isinstance(probes, torch.Tensor) else type(probes).__name__
        raise TypeError(f"probes must be a floating torch.Tensor (P, B, D) or None; got {got}")
    if probes.dim() != 3 or probes.shape[0] < 1 or probes.shape[1:] != x.shape:
        raise ValueError(f"probes must have shape (P, {x.shape[0]}, {x.shape[1]}); got {tuple(probes.shape)}")
    if probes.device.type == "cpu" and not bool(torch.isfinite(probes).all()):
        raise ValueError("probes must be finite (no NaN or inf)")
    return probes


def hutchinson_probes(shape, like: torch.Tensor, *, n_probes: int = 1, probe: str = "rademacher",
                      generator=None):
    """``n_probes`` probe tensors ``(n_probes, *shape)`` with ``E[z z^T] = I`` in like's dtype/device."""
    check_choice(probe, "probe", _PROBES)
    n_probes = check_int(n_probes, "n_probes", minimum=1)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"shape must be a tuple of sizes; got {type(shape).__name__} {shape!r}")
    shape = tuple(check_int(s, "shape (each size)") for s in shape)
    if not isinstance(like, torch.Tensor) or not like.is_floating_point():
        got = f"a {like.dtype} tensor" if isinstance(like, torch.Tensor) else type(like).__name__
        raise TypeError(f"like must be a floating torch.Tensor (the probes take its dtype and device); got {got}")
    check_generator(generator, like.device)
    z = torch.randn((n_probes, *shape), generator=generator, dtype=like.dtype, device=like.device)
    return z.sign() if probe == "rademacher" else z


def hutchinson_variance(A, probe: str = "rademacher") -> torch.Tensor:
    r"""Variance of the one-probe Hutchinson estimate ``z^T A z`` of ``tr A``: a 0-d float64 tensor.

    With ``S = (A + A^T) / 2`` (``z^T A z = z^T S z``), for probes with ``E[z z^T] = I``:

        Var = 2 ||S||_F^2                              (Gaussian z),
        Var = 2 ||S||_F^2 - 2 sum_i S_ii^2 = 2 sum_{i != j} S_ij^2   (Rademacher z = +-1),

    since ``z_i^2 = 1`` removes the diagonal's noise (Hutchinson 1989). A: (D, D). Averaging P
    probes divides it by P. Lesson 05.
    """
    check_choice(probe, "probe", _PROBES)
    A = as_param(A, "A")
    if A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix (D, D); got shape {tuple(A.shape)}")
    S = 0.5 * (A + A.T)
    var = 2 * (S**2).sum()
    if probe == "rademacher":
        var = var - 2 * (torch.diagonal(S) ** 2).sum()
    return var


def divergence(f, x, *, method: str = "exact", n_probes: int = 1, probe: str = "rademacher",
               generator=None, probes=None, create_graph: bool = False):
    r"""Divergence ``div f(x_b) = sum_i d f_i / d x_i`` of a field: (B,).

    method ``"exact"``: D backward passes (the trace of :func:`jacobian`, without storing it).
    method ``"hutchinson"``: the unbiased estimate ``mean_p z_p^T J z_p`` with ``n_probes``
    probes drawn with ``generator`` (or given as ``probes``, (P, B, D)), one vector-Jacobian
    product each.
    """
    check_callable(f, "f", "a field f(x) (B, D) -> (B, D)")
    check_choice(method, "method", _METHODS)
    # checked whatever the method, so a wrong argument is named even where "exact" ignores it
    n_probes = check_int(n_probes, "n_probes", minimum=1)
    check_choice(probe, "probe", _PROBES)
    check_generator(generator, x.device if isinstance(x, torch.Tensor) else None)
    if method == "hutchinson" and probes is not None:
        probes = _check_probes(probes, check_batch(x))
    with torch.enable_grad():
        xl = _leaf(x)
        y = _out(f(xl), xl)
        if method == "exact":
            out = torch.zeros(x.shape[0], dtype=y.dtype, device=y.device)
            for i in range(y.shape[1]):
                g = torch.autograd.grad(y[:, i].sum(), xl, retain_graph=True, create_graph=create_graph)[0]
                out = out + g[:, i]
            return out
        if probes is None:
            probes = hutchinson_probes(x.shape, xl, n_probes=n_probes, probe=probe, generator=generator)
        out = torch.zeros(x.shape[0], dtype=y.dtype, device=y.device)
        for z in probes:
            vjp = torch.autograd.grad((y * z).sum(), xl, retain_graph=True, create_graph=create_graph)[0]
            out = out + (vjp * z).sum(1)
        return out / probes.shape[0]


def laplacian(f, x, *, method: str = "exact", n_probes: int = 1, probe: str = "rademacher",
              generator=None, create_graph: bool = False):
    r"""Laplacian ``Delta f(x_b) = div grad f(x_b)`` of a scalar field f: (B, D) -> (B,): (B,).

    The gradient is taken with ``create_graph=True`` and its divergence by :func:`divergence`
    (exact or Hutchinson).
    """
    check_callable(f, "f", "a scalar field f(x) (B, D) -> (B,)")

    def grad_f(xx):
        val = f(xx)
        if not isinstance(val, torch.Tensor) or val.shape != xx.shape[:1]:
            got = tuple(val.shape) if isinstance(val, torch.Tensor) else type(val).__name__
            raise ValueError(f"f must be a scalar field (B, D) -> ({xx.shape[0]},); got {got}")
        return torch.autograd.grad(val.sum(), xx, create_graph=True)[0]

    return divergence(grad_f, x, method=method, n_probes=n_probes, probe=probe,
                      generator=generator, create_graph=create_graph)
