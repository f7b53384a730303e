"""diffedu.dimension: the dimension of rank-k Gaussians, hyperplanes and a circle from the score."""

import math

import pytest
import torch

from diffedu import EDM, VP, Empirical, Gaussian
from diffedu import dimension as dim

DT = torch.float64
PI = math.pi


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def aniso():
    return Gaussian([0.3, -0.2], [[1.0, 0.45], [0.45, 0.3]])


# --- intrinsic dimension ---------------------------------------------------------------------
@pytest.mark.parametrize("D,k", [(10, 3), (6, 5), (8, 1), (5, 5)])
@pytest.mark.parametrize("method", ["jacobian", "scores"])
def test_dimension_of_rank_k_gaussians_including_hyperplanes(D, k, method, gen):
    proc = EDM()
    g = Gaussian.low_rank(torch.zeros(D), torch.randn(D, k, generator=gen, dtype=DT))
    x0 = g.sample(12, generator=gen, dtype=DT)
    est = dim.intrinsic_dimension(lambda x, t: g.score(x, t, proc), x0, 0.01, proc, method=method, generator=gen)
    assert est.dim == k
    assert (est.dims == k).all()
    assert est.spectra.shape == (12, D) and est.gaps.shape == (12, D + 1)


def test_dimension_from_spectrum_looks_at_every_gap():
    spectra = torch.tensor([[1.0, 1.0, 1.0, 1e-3],      # a curve in R^4: 3 normals
                            [1.0, 1e-3, 5e-4, 1e-4],    # a hyperplane: co-dimension 1
                            [1e-2, 5e-3, 1e-3, 1e-4],   # full dimension: no normal direction
                            [1.0, 0.99, 0.97, 0.95]],   # a point mass: every direction normal
                           dtype=DT)
    dims, gaps = dim.dimension_from_spectrum(spectra)
    assert dims.tolist() == [1, 3, 4, 0]
    assert gaps.shape == (4, 5) and torch.allclose(gaps.sum(1), torch.ones(4, dtype=DT))  # 1 down to 0


def test_a_point_mass_has_dimension_zero():
    """An isotropic Gaussian of tiny variance seen at a larger noise: every direction is normal."""
    proc = EDM()
    g = Gaussian(torch.zeros(5), torch.full((5,), 1e-8))
    est = dim.intrinsic_dimension(lambda x, t: g.score(x, t, proc), torch.zeros(3, 5, dtype=DT), 0.1, proc)
    assert est.dim == 0 and (est.dims == 0).all()


@pytest.mark.parametrize("k", [1, 2, 5])
def test_mle_dimension_of_spheres(k, gen):
    """Levina-Bickel on uniform k-spheres embedded in R^40: within 5% of k (3000 points)."""
    z = torch.randn(3000, k + 1, generator=gen, dtype=DT)
    Q, _ = torch.linalg.qr(torch.randn(40, k + 1, generator=gen, dtype=DT))
    x = (z / z.norm(dim=1, keepdim=True)) @ Q.T
    est, per_point = dim.mle_dimension(x, 10)
    assert abs(est - k) < 0.05 * k and per_point.shape == (3000,)
    est_ref, _ = dim.mle_dimension(x[:100], 10, reference=x[100:])
    assert abs(est_ref - k) < 0.1 * k
    with pytest.raises(ValueError, match="reference"):
        dim.mle_dimension(x[:5], 10)


def test_dimension_of_a_circle_from_an_empirical_score(gen):
    th = torch.rand(2000, generator=gen, dtype=DT) * 2 * PI
    pts = torch.stack([torch.cos(th), torch.sin(th), torch.zeros_like(th)], 1)
    emp = Empirical(pts)
    est = dim.intrinsic_dimension(lambda x, t: emp.score(x, t, EDM()), pts[:16], 0.05, EDM())
    assert est.dim == 1


# --- bad input -------------------------------------------------------------------------------
def test_bad_input_is_named():
    proc = VP()
    with pytest.raises(ValueError, match="method must be"):
        dim.intrinsic_dimension(lambda x, t: x, torch.zeros(2, 2, dtype=DT), 0.1, proc, method="pca")
    with pytest.raises(ValueError, match="n_probes"):
        dim.intrinsic_dimension(lambda x, t: x, torch.zeros(2, 2, dtype=DT), 0.1, proc, method="scores", n_probes=1)
    with pytest.raises(ValueError, match="t must lie"):
        dim.intrinsic_dimension(lambda x, t: x, torch.zeros(2, 2, dtype=DT), 5.0, proc)


def test_arguments_are_checked():
    """Issue 21 (property tests): t = 0 gave an all-zero spectrum (scaled by sigma_0^2 = 0); NaN spectra a
    dimension; a wrong-shape score torch's reshape error; no points an IndexError from torch.mode."""
    g, p = Gaussian(torch.zeros(2), torch.eye(2)), VP()
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="t must be > 0.0 here"):
        dim.normalised_spectrum(g.bind(p).score, x, 0.0, p)
    with pytest.raises(ValueError, match="spectrum must be finite"):
        dim.dimension_from_spectrum(torch.tensor([[1.0, math.nan]]))
    with pytest.raises(TypeError, match="spectrum must be a torch.Tensor"):
        dim.dimension_from_spectrum([[1.0, 0.0]])
    with pytest.raises(ValueError, match="score must return a tensor of x's shape"):
        dim.normalised_spectrum(lambda y, t: torch.cat([y, y], 1), x, 0.1, p, method="scores")
    with pytest.raises(ValueError, match="x must hold at least one point"):
        dim.intrinsic_dimension(g.bind(p).score, x[:0], 0.1, p)
    with pytest.raises(TypeError, match="n_probes .* must be an integer; got bool"):
        dim.normalised_spectrum(g.bind(p).score, x, 0.1, p, method="scores", n_probes=True)


# --- normal directions -----------------------------------------------------------------------
def test_normal_space_angles_of_a_gradient_vanish_on_a_subspace(gen):
    """Exact score of a rank-2 Gaussian in R^5: the 3 leading singular vectors on both sides span
    the orthogonal complement of the data's subspace (found independently by eigh of the covariance)."""
    proc = EDM()
    g = Gaussian.low_rank(torch.zeros(5), torch.randn(5, 2, generator=gen, dtype=DT))
    x0 = g.sample(6, generator=gen, dtype=DT)
    _, vecs = torch.linalg.eigh(g.cov)
    normals = vecs[:, :3].expand(6, 5, 3)                 # eigenvalue 0: the normal space
    left, right = dim.normal_space_angles(g.bind(proc).score, x0, 0.01, proc, normals)
    assert left.shape == right.shape == (6,)
    assert left.max() < 1e-5 and right.max() < 1e-5
    tangent = vecs[:, 3:4].expand(6, 5, 1)                # a tangent direction: 90 degrees from the normals
    assert torch.allclose(dim.normal_space_angles(g.bind(proc).score, x0, 0.01, proc, tangent)[0],
                          torch.full((6,), 90.0, dtype=DT), atol=1e-6)


def test_normal_space_angles_of_a_rotated_field_split_left_from_right():
    """s(x) = M x with M = [[-a, -c], [0, -b]] (not symmetric for c != 0): the leading left and
    right singular vectors are the top eigenvectors of M M^T and M^T M (numpy, independently); the
    angles to the normal e1 differ, and both are 0 for c = 0."""
    import numpy as np

    proc = EDM()
    x = torch.zeros(1, 2, dtype=DT)
    for a, b, c in ((100.0, 1.0, 20.0), (50.0, 2.0, 0.0)):
        M = torch.tensor([[-a, -c], [0.0, -b]], dtype=DT)
        left, right = dim.normal_space_angles(lambda y, t: y @ M.T, x, 0.1, proc, torch.tensor([[1.0, 0.0]], dtype=DT))
        Mn = M.numpy()
        want = []
        for S in (Mn @ Mn.T, Mn.T @ Mn):
            w, V = np.linalg.eigh(S)
            want.append(math.degrees(math.acos(min(1.0, abs(V[0, -1])))))
        assert float(left[0]) == pytest.approx(want[0], abs=1e-8) and float(right[0]) == pytest.approx(want[1], abs=1e-8)
        assert (abs(want[0] - want[1]) > 5.0) == (c > 0)


def test_normal_space_angles_checks_its_arguments():
    g, p = Gaussian(torch.zeros(2), torch.eye(2)), VP()
    x = torch.zeros(3, 2, dtype=DT)
    with pytest.raises(TypeError, match="normals must be a torch.Tensor"):
        dim.normal_space_angles(g.bind(p).score, x, 0.1, p, [[1.0, 0.0]])
    with pytest.raises(ValueError, match="normals must have shape"):
        dim.normal_space_angles(g.bind(p).score, x, 0.1, p, torch.ones(2, 2, dtype=DT))
    with pytest.raises(ValueError, match="normals must be finite"):
        dim.normal_space_angles(g.bind(p).score, x, 0.1, p, torch.full((3, 2), math.nan, dtype=DT))
    with pytest.raises(ValueError, match="t must be > 0.0 here"):
        dim.normal_space_angles(g.bind(p).score, x, 0.0, p, torch.ones(3, 2, dtype=DT))
    with pytest.raises(ValueError, match="x must hold at least one point"):
        dim.normal_space_angles(g.bind(p).score, x[:0], 0.1, p, torch.ones(0, 2, dtype=DT))
