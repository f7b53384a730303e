"""Test-wide settings: a non-interactive matplotlib backend and one thread.

Agg is set here only (never exported as MPLBACKEND, which kernels would inherit and lose their
inline figures). OMP_NUM_THREADS is set before any kernel starts, so nbval's lesson kernels
also run single-threaded and print the same numbers as the stored outputs.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")
