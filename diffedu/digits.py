r"""The 8x8 handwritten digits shipped in ``data/digits.npz`` (1,797 images, 10 classes).

Provenance (``data/README.md``): the test set of the UCI "Optical Recognition of Handwritten
Digits" data (Alpaydin and Kaynak, 1998), as bundled with scikit-learn; pixels are counts 0..16
of 4x4 blocks of a 32x32 bitmap. scikit-learn is not needed to load it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ._paths import data_path

__all__ = ["Digits", "load_digits", "data_path"]


class Digits(NamedTuple):
    """images: (1797, 64) floating, pixel / 16 in [0, 1], row-major 8x8; labels: (1797,) long."""

    images: torch.Tensor
    labels: torch.Tensor


def load_digits(*, dtype: torch.dtype = torch.float32) -> Digits:
    """The 1,797 digits as flattened images (B, D) = (1797, 64) in [0, 1], and their labels."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype; got {dtype!r}")
    with np.load(data_path("digits.npz")) as z:
        images, labels = z["images"], z["labels"]
    return Digits(torch.as_tensor(images.astype(np.float64) / 16.0).to(dtype),
                  torch.as_tensor(labels.astype(np.int64)))
