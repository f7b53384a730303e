"""diffedu.exercises_fp: the lesson-04 checkers accept right answers, reject wrong ones, and
say "not answered yet" to None."""

import torch

from diffedu import VP
from diffedu import exercises_fp as ex
from diffedu.datasets import two_gaussians


def test_check_dt_log_p(capsys):
    mix, proc = two_gaussians(), VP()
    x = mix.sample_marginal(5, 0.3, proc, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.full((5,), 0.3, dtype=torch.float64, requires_grad=True)
    (right,) = torch.autograd.grad(mix.log_prob(x, t, proc).sum(), t)
    assert ex.check_dt_log_p(right, mix, x, 0.3, proc)
    assert not ex.check_dt_log_p(-right, mix, x, 0.3, proc)
    assert not ex.check_dt_log_p(None, mix, x, 0.3, proc)
    out = capsys.readouterr().out
    assert "Correct" in out and "sign is flipped" in out and "not answered yet" in out


def test_check_hutchinson_variance():
    A = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    # S = [[1, 1], [1, 3]]: 2|S|_F^2 = 24; minus 2 (1 + 9) for Rademacher probes
    assert ex.check_hutchinson_variance(4.0, A, "rademacher")
    assert ex.check_hutchinson_variance(24.0, A, "gaussian")
    assert not ex.check_hutchinson_variance(24.0, A, "rademacher")
    assert hasattr(ex, "check_close")  # the base checkers are re-exported
