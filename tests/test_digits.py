"""The shipped 8x8 digits: shape, range, class counts, checksum; bad input."""

import pytest
import torch

from diffedu.digits import data_path, load_digits


def test_digits_shape_range_and_counts():
    d = load_digits()
    assert d.images.shape == (1797, 64) and d.images.dtype == torch.float32
    assert float(d.images.min()) == 0.0 and float(d.images.max()) == 1.0
    counts = torch.bincount(d.labels, minlength=10)
    assert counts.sum() == 1797 and int(counts.min()) == 174 and int(counts.max()) == 183
    assert round(float(load_digits(dtype=torch.float64).images.sum() * 16)) == 561718  # data/README.md


def test_digits_bad_input():
    with pytest.raises(TypeError, match="dtype"):
        load_digits(dtype=torch.int64)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        data_path("nope.npz")


def test_digits_reexported():
    import diffedu
    from diffedu import datasets
    assert datasets.load_digits is load_digits and diffedu.load_digits is load_digits
