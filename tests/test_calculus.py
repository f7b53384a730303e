"""Differential operators against exact Jacobians, traces and Laplacians."""

import math

import pytest
import torch

from diffedu import VP, Gaussian
from diffedu import calculus as C

F64 = torch.float64
A = torch.tensor([[1.0, 2.0, -1.0], [0.5, -3.0, 0.2], [4.0, 0.1, 2.5]], dtype=F64)


def linear(x):
    return x @ A.T


def nonlinear(x):
    return torch.stack([x[:, 0] * x[:, 1], torch.sin(x[:, 2]) + x[:, 0] ** 2, x[:, 1] ** 3 * x[:, 2]], 1)


def x_batch(b=4):
    return torch.randn(b, 3, generator=torch.Generator().manual_seed(0), dtype=F64)


def test_jacobian_linear_and_finite_differences():
    x = x_batch()
    torch.testing.assert_close(C.jacobian(linear, x), A.expand(4, 3, 3))
    J = C.jacobian(nonlinear, x)
    h = 1e-6
    fd = torch.stack([(nonlinear(x + h * e) - nonlinear(x - h * e)) / (2 * h) for e in torch.eye(3, dtype=F64)], 2)
    torch.testing.assert_close(J, fd, rtol=1e-6, atol=1e-6)


def test_divergence_exact_is_trace():
    x = x_batch()
    torch.testing.assert_close(C.divergence(linear, x), torch.full((4,), float(A.trace()), dtype=F64))
    J = C.jacobian(nonlinear, x)
    torch.testing.assert_close(C.divergence(nonlinear, x), J.diagonal(dim1=1, dim2=2).sum(1))


def test_divergence_of_gaussian_score_is_minus_trace_of_precision():
    p = VP()
    G = Gaussian(torch.zeros(3, dtype=F64), torch.tensor([0.5, 1.0, 2.0], dtype=F64))
    x, t = x_batch(), 0.3
    cov_t = G.marginal_cov(t, p)
    div = C.divergence(lambda z: G.score(z, t, p), x)
    torch.testing.assert_close(div, torch.full((4,), -float(torch.linalg.inv(cov_t).trace()), dtype=F64))


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(probe):
    """Mean of n probe estimates of tr(A) lies within 4 exact standard errors of tr(A)."""
    n = 4000
    x = x_batch(2)
    est = C.divergence(linear, x, method="hutchinson", n_probes=n, probe=probe,
                       generator=torch.Generator().manual_seed(0))
    S = 0.5 * (A + A.T)
    if probe == "rademacher":  # Var z^T A z = 2 sum_{i != j} S_ij^2
        var = 2 * float((S**2).sum() - (S.diagonal() ** 2).sum())
    else:  # Gaussian: 2 ||S||_F^2
        var = 2 * float((S**2).sum())
    assert ((est - float(A.trace())).abs() < 4 * math.sqrt(var / n)).all(), est
    # a single Rademacher probe is exact for a diagonal field
    diag = C.divergence(lambda z: z * torch.tensor([1.0, 2.0, 3.0], dtype=F64), x, method="hutchinson",
                        generator=torch.Generator().manual_seed(1))
    if probe == "rademacher":
        torch.testing.assert_close(diag, torch.full((2,), 6.0, dtype=F64))


def test_hutchinson_variance_matches_exact_expectations():
    """The closed form against exact averages over the probes: every sign vector (Rademacher),
    a 3-point Gauss-Hermite rule per axis (Gaussian; exact for polynomials of degree <= 5)."""
    import itertools

    import numpy as np

    def var_over(points, weights):
        q = torch.einsum("pi,ij,pj->p", points, A, points)
        m = (weights * q).sum()
        return (weights * (q - m) ** 2).sum()

    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=3)), dtype=F64)
    rad = var_over(signs, torch.full((8,), 1 / 8, dtype=F64))
    nodes, w = np.polynomial.hermite_e.hermegauss(3)
    w = w / w.sum()
    pts = torch.tensor(list(itertools.product(nodes, repeat=3)), dtype=F64)
    wts = torch.tensor([a * b * c for a, b, c in itertools.product(w, repeat=3)], dtype=F64)
    gauss = var_over(pts, wts)
    torch.testing.assert_close(C.hutchinson_variance(A, "rademacher"), rad)
    torch.testing.assert_close(C.hutchinson_variance(A, "gaussian"), gauss)
    # S = [[1, 1], [1, 3]]: 2 |S|_F^2 = 24, minus 2 (1 + 9) with Rademacher probes
    assert float(C.hutchinson_variance([[1.0, 2.0], [0.0, 3.0]])) == 4.0
    with pytest.raises(ValueError, match="probe"):
        C.hutchinson_variance(A, "uniform")
    with pytest.raises(ValueError, match="A must be a square matrix"):
        C.hutchinson_variance(torch.ones(2, 3))


def test_hutchinson_seeded_and_probes_argument():
    x = x_batch()
    a = C.divergence(nonlinear, x, method="hutchinson", n_probes=3, generator=torch.Generator().manual_seed(5))
    b = C.divergence(nonlinear, x, method="hutchinson", n_probes=3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    z = C.hutchinson_probes(x.shape, x, n_probes=3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(C.divergence(nonlinear, x, method="hutchinson", probes=z), a)


def test_laplacian_exact_and_hutchinson():
    x = x_batch()
    torch.testing.assert_close(C.laplacian(lambda z: (z**2).sum(1), x), torch.full((4,), 6.0, dtype=F64))
    p = VP()
    G = Gaussian(torch.ones(3, dtype=F64), torch.tensor([0.5, 1.0, 2.0], dtype=F64))
    t = 0.2
    ref = -float(torch.linalg.inv(G.marginal_cov(t, p)).trace())
    lap = C.laplacian(lambda z: G.log_prob(z, t, p), x)
    torch.testing.assert_close(lap, torch.full((4,), ref, dtype=F64))
    # log p of a diagonal Gaussian has a diagonal Hessian: Rademacher Hutchinson is exact
    lap_h = C.laplacian(lambda z: G.log_prob(z, t, p), x, method="hutchinson",
                        generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(lap_h, lap)


def test_create_graph_allows_second_derivatives():
    x = x_batch().requires_grad_(True)
    div = C.divergence(nonlinear, x, create_graph=True)  # = x1 + 3 x1^2 (from d/dx0 and d/dx2)
    assert div.requires_grad


def test_bad_inputs():
    x = x_batch()
    with pytest.raises(ValueError, match="method"):
        C.divergence(linear, x, method="trace")
    with pytest.raises(ValueError, match="same shape"):
        C.divergence(lambda z: z[:, :2], x)
    with pytest.raises(ValueError, match="scalar field"):
        C.laplacian(linear, x)
    with pytest.raises(ValueError, match="probe"):
        C.divergence(linear, x, method="hutchinson", probe="uniform")
    with pytest.raises(ValueError, match="n_probes"):
        C.divergence(linear, x, method="hutchinson", n_probes=0)
    with pytest.raises(ValueError, match="generator lives on cpu"):
        C.hutchinson_probes((2, 3), torch.zeros(2, 3, device="meta"), generator=torch.Generator())
    with pytest.raises(ValueError, match="x must have shape"):
        C.jacobian(linear, torch.zeros(3, dtype=F64))


def test_arguments_are_checked():
    """Issue 21 (property tests): each of these raised something unclear (or nothing)."""
    x = torch.zeros(3, 2, dtype=torch.float64)
    for op in (C.jacobian, C.divergence, C.laplacian):
        with pytest.raises(TypeError, match="f must be a"):  # was "'int' object is not callable"
            op(3, x)
    with pytest.raises(TypeError, match="n_probes must be an integer; got bool"):
        C.divergence(torch.sin, x, method="hutchinson", n_probes=True)
    with pytest.raises(ValueError, match="probes must be finite"):  # gave a NaN divergence
        C.divergence(torch.sin, x, method="hutchinson", probes=torch.full((1, 3, 2), math.nan, dtype=torch.float64))
    with pytest.raises(TypeError, match="probes must be a floating torch.Tensor"):
        C.divergence(torch.sin, x, method="hutchinson", probes=[[[1.0, 1.0]] * 3])
    with pytest.raises(ValueError, match="shape"):  # torch's "negative dimension"
        C.hutchinson_probes((-1, 2), x)
    with pytest.raises(TypeError, match="like must be a floating torch.Tensor"):  # 'list' has no .device
        C.hutchinson_probes((3, 2), [1.0])
    with pytest.raises(ValueError, match="A must be finite"):  # gave a NaN variance
        C.hutchinson_variance([[1.0, math.nan], [0.0, 1.0]])
    with pytest.raises(TypeError, match="A must be array-like of numbers"):
        C.hutchinson_variance("abc")
