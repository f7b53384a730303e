"""Argument validators shared by every module: one way to say what a bad argument is.

A wrong type raises ``TypeError``, a wrong value ``ValueError``; both name the argument, what it
got and what it needs. ``True`` is not an integer here. This module imports nothing else from
diffedu, so every module (:mod:`diffedu.processes` included) can use it; :mod:`diffedu._core`
re-exports it with the distribution interface.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = ["check_batch", "as_param", "as_real_tensor", "as_times", "check_weights", "check_int", "check_n",
           "check_real", "check_positive", "check_callable", "field_at", "check_choice", "check_probs",
           "check_generator", "check_dtype", "check_device", "resolve_device", "check_coordinates", "check_output",
           "shape_checked"]


def check_batch(x, dim: int | None = None, name: str = "x", *, finite: bool = True) -> torch.Tensor:
    """Check that ``x`` is a real floating tensor of shape (B, D) (D = ``dim`` when given) and,
    with ``finite`` (the default), holds no NaN or inf.

    The finiteness check runs on CPU tensors only: on a GPU it would synchronise with the host
    at every call, and the samplers call the closed forms at every step (``docs/input-checks.md``).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, D); got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a real floating dtype; got {x.dtype}")
    if x.dim() != 2 or (dim is not None and x.shape[1] != dim):
        need = f"(B, {dim})" if dim is not None else "(B, D)"
        raise ValueError(f"{name} must have shape {need}; got {tuple(x.shape)}")
    if finite and x.device.type == "cpu" and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(1).sum())
        raise ValueError(f"{name} must be finite; {bad} of its {x.shape[0]} rows hold NaN or inf")
    return x


def as_real_tensor(value, name: str, what: str = "array-like of numbers") -> torch.Tensor:
    """A float64 CPU tensor of the real numbers in ``value`` (a tensor, a NumPy array, a number or
    a nested sequence). ``TypeError`` for strings, complex or bool values and ragged sequences:
    casting them would drop the imaginary part or turn True into 1.0 without a word."""
    if isinstance(value, torch.Tensor):
        if value.dtype.is_complex or value.dtype == torch.bool:
            raise TypeError(f"{name} must be {what}, real and not bool; got a {value.dtype} tensor")
        return value.detach().to("cpu", torch.float64)
    try:
        a = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"{name} must be {what}; got {type(value).__name__}") from e
    if a.dtype.kind in "cb":
        raise TypeError(f"{name} must be {what}, real and not bool; got {type(value).__name__} of {a.dtype}")
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be {what}; got {type(value).__name__}")
    return torch.as_tensor(a.astype(np.float64))


def as_times(ts, name: str = "ts") -> torch.Tensor:
    """Times as a 1-D float64 CPU tensor (T,), T >= 1, from a tensor or a sequence of real numbers
    (one number becomes (1,)); the caller checks them against its process."""
    t = as_real_tensor(ts, name, "a 1-D tensor or sequence of times")
    t = t.reshape(1) if t.dim() == 0 else t
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of times; got shape {tuple(t.shape)}")
    return t


def as_param(value, name: str, shape: tuple | None = None) -> torch.Tensor:
    """A float64 CPU copy of a parameter, checked for type, shape and NaN/inf."""
    t = as_real_tensor(value, name).clone()
    if shape is not None:
        if len(shape) != t.dim() or any(s is not None and s != d for s, d in zip(shape, t.shape)):
            want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}; got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return t


def check_weights(weights, K: int | None = None, name: str = "weights") -> torch.Tensor:
    w = as_param(weights, name, (K,))
    if (w < 0).any():
        raise ValueError(f"{name} must be non-negative; got minimum {float(w.min())}")
    if abs(float(w.sum()) - 1) > 1e-6:
        raise ValueError(f"{name} must sum to 1; got sum {float(w.sum())}")
    return w


def check_int(value, name: str, *, minimum: int | None = 0, maximum: int | None = None) -> int:
    """An integer argument: ``TypeError`` unless an ``int`` (``True``/``False`` are not integers
    here), ``ValueError`` outside ``[minimum, maximum]``. Returns it as an ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}; got {value}")
    return value


def check_n(n, name: str = "n") -> int:
    """A count: a non-negative integer (:func:`check_int` with ``minimum=0``)."""
    return check_int(n, name, minimum=0)


def check_real(value, name: str, *, minimum: float | None = None, maximum: float | None = None,
               strict: bool = False, finite: bool = True) -> float:
    """A real number: ``TypeError`` unless an int or float (not a bool, a string or a tensor with
    more than one entry), ``ValueError`` if NaN, infinite (when ``finite``) or outside
    ``[minimum, maximum]`` (open bounds when ``strict``). Returns it as a ``float``."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} {value!r}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}; got {value!r}")
    if maximum is not None and (value >= maximum if strict else value > maximum):
        raise ValueError(f"{name} must be {'<' if strict else '<='} {maximum}; got {value!r}")
    return value


def check_positive(value, name: str) -> float:
    """A positive finite real number (:func:`check_real` with ``minimum=0, strict=True``)."""
    return check_real(value, name, minimum=0.0, strict=True)


def check_callable(f, name: str, what: str = "a callable f(x, t) -> (B, D)"):
    """``TypeError`` unless ``f`` is callable; the message says what is expected."""
    if not callable(f):
        raise TypeError(f"{name} must be {what}; got {type(f).__name__}")
    return f


def check_output(value, x: torch.Tensor, name: str) -> torch.Tensor:
    """``ValueError`` unless a user callable ``name`` returned a tensor of x's shape (a field);
    a shape check only, so it costs nothing on a GPU."""
    if not isinstance(value, torch.Tensor) or value.shape != x.shape:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must return a tensor of x's shape {tuple(x.shape)}; got {got}")
    return value


def shape_checked(f, name: str):
    """``f(z, t)``, checking on its first call only that it returns z's shape (a (B, 1) result would
    otherwise broadcast silently); later calls go straight through (no sync with a GPU)."""
    first = True

    def checked(z, t):
        nonlocal first
        d = f(z, t)
        if first:
            check_output(d, z, name)
            first = False
        return d
    return checked


def field_at(field, t, name: str = "field"):
    """``x -> field(x)`` when ``t`` is None, else ``x -> field(x, t)`` (fields are ``f(x, t)``)."""
    check_callable(field, name, "a callable field f(x) or f(x, t) -> (B, D)")
    return field if t is None else (lambda x: field(x, t))


def check_coordinates(value, name: str, dim: int, count: int | None = None) -> tuple:
    """Distinct coordinate indices in ``0..dim-1`` (``count`` of them when given): a tuple of ints.

    ``TypeError`` unless a sequence of integers (bools and strings are not), ``ValueError`` for
    repeats, indices out of range or the wrong number of them."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of coordinate indices; got {type(value).__name__} {value!r}")
    idx = tuple(check_int(i, f"{name} (each a coordinate index)", minimum=None) for i in value)
    if (count is not None and len(idx) != count) or not idx or len(set(idx)) != len(idx) \
            or any(not 0 <= i < dim for i in idx):
        how = f"{count} different" if count is not None else "distinct"
        raise ValueError(f"{name} must be {how} coordinates of 0..{dim - 1}; got {tuple(value)!r}")
    return idx


def check_choice(value, name: str, choices) -> str:
    """``ValueError`` unless ``value`` is one of ``choices`` (a string option)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}; got {value!r}")
    return value


def check_probs(probs, name: str = "probs") -> torch.Tensor:
    """Probabilities along the last dimension: finite, non-negative, summing to 1 (to 1e-6).

    Array-likes become float64 tensors; integer tensors are cast to float64."""
    if not isinstance(probs, torch.Tensor) or probs.dtype.is_complex or probs.dtype == torch.bool:
        probs = as_real_tensor(probs, name, "array-like of probabilities")
    if not probs.is_floating_point():
        probs = probs.to(torch.float64)
    if probs.dim() < 1 or probs.shape[-1] < 1:
        raise ValueError(f"{name} must have a last dimension of categories; got shape {tuple(probs.shape)}")
    if not torch.isfinite(probs).all() or (probs < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    s = probs.sum(-1)
    if ((s - 1).abs() > 1e-6).any():
        raise ValueError(f"{name} must sum to 1 along the last dimension; got sums in "
                         f"[{float(s.min()):.6g}, {float(s.max()):.6g}]")
    return probs


def check_generator(generator, device=None) -> None:
    """A generator must be None or a ``torch.Generator`` on the device where it must draw (any
    device when ``device`` is None: the draws' device is not known yet)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    if device is None:
        return
    device = torch.device(device)
    if generator.device.type != device.type:
        raise ValueError(f"generator lives on {generator.device} but must draw on {device}; "
                         f"pass torch.Generator(device='{device.type}')")


def check_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """A floating ``torch.dtype`` (not a string, a NumPy type or an integer dtype)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.is_complex:
        raise TypeError(f"{name} must be a floating dtype (a torch.dtype such as torch.float64); got {dtype!r}")
    return dtype


def check_device(device, name: str = "device") -> torch.device:
    """A ``torch.device``, or a string or index naming one (``"cpu"``, ``"cuda:0"``)."""
    if isinstance(device, torch.device):
        return device
    if isinstance(device, bool) or not isinstance(device, (str, int)):
        raise TypeError(f"{name} must be a torch.device or a string such as 'cpu'; got {type(device).__name__} {device!r}")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"{name} must name a device such as 'cpu' or 'cuda:0'; got {device!r}") from e


def resolve_device(generator, device, dtype):
    """Device and dtype for new samples; the generator must live on that device."""
    if device is None and isinstance(generator, torch.Generator):
        device = generator.device
    device = check_device("cpu" if device is None else device)
    check_generator(generator, device)
    dtype = torch.get_default_dtype() if dtype is None else check_dtype(dtype)
    return device, dtype
