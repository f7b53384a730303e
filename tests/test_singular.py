"""t = 0 for distributions without a density, and small argument checks."""

import pytest
import torch

import diffedu as de

X = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", ["denoiser", "score", "log_prob"])
def test_empirical_needs_positive_t(method):
    emp = de.Empirical(X)
    with pytest.raises(ValueError, match="t must be > 0"):
        getattr(emp, method)(X, 0.0, de.VP())
    with pytest.raises(ValueError, match="t must be > 0"):
        getattr(emp, method)(X, torch.tensor([0.5, 0.1, 0.0, 0.2, 0.3], dtype=torch.float64), de.VP())
    assert torch.isfinite(getattr(emp, method)(X, 1e-3, de.VP())).all()


def test_singular_gaussians_need_positive_t_and_regular_ones_do_not():
    F = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    deg = de.Gaussian.low_rank(torch.zeros(3), F)  # noise = 0: a line, no density
    with pytest.raises(ValueError, match="t must be > 0"):
        deg.log_prob(X, 0.0, de.EDM())
    lrm = de.LowRankMixture(F[None].expand(2, 3, 1).clone())
    with pytest.raises(ValueError, match="t must be > 0"):
        lrm.denoiser(X, 0.0, de.EDM())
    full = de.Gaussian(torch.zeros(3), torch.eye(3))
    assert torch.isfinite(full.log_prob(X, 0.0, de.EDM())).all()
    noisy = de.Gaussian.low_rank(torch.zeros(3), F, noise=0.1)
    assert torch.isfinite(noisy.score(X, 0.0, de.EDM())).all()


def test_empirical_copies_points_and_checks_chunks():
    pts = X.clone()
    emp = de.Empirical(pts)
    before = emp.denoiser(X, 0.5, de.EDM())
    pts.mul_(10)  # the caller edits its tensor in place
    assert torch.equal(emp.denoiser(X, 0.5, de.EDM()), before)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="chunk_elems"):
            de.Empirical(X, chunk_elems=bad)
    for bad in (2.5, True, "8"):  # a wrong type is a TypeError (docs/input-checks.md)
        with pytest.raises(TypeError, match="chunk_elems must be an integer"):
            de.Empirical(X, chunk_elems=bad)
    with pytest.raises(ValueError, match="matmul_precision"):
        de.Empirical(X, matmul_precision="fast")


def test_time_grid_and_process_parameters_reject_bad_types():
    with pytest.raises(TypeError, match="process"):
        de.time_grid("VP", 10)
    with pytest.raises(TypeError, match="beta_min"):
        de.VP(beta_min=True)
