"""EM for a Gaussian mixture (diffedu.mixture_fit): it recovers a known mixture from its samples,
its log-likelihood never decreases, and the result is a zoo mixture with exact log-densities."""

import pytest
import torch

from diffedu import VP, GaussianMixture
from diffedu.mixture_fit import fit_gaussian_mixture


def test_em_recovers_a_known_mixture_and_climbs():
    true = GaussianMixture([0.5, 0.3, 0.2], [[-3.0, 0.0], [3.0, 1.0], [0.0, 4.0]],
                           [[[0.5, 0.2], [0.2, 0.4]], [[0.3, 0.0], [0.0, 0.6]], [[0.4, -0.1], [-0.1, 0.2]]])
    x = true.sample(6000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fit, hist = fit_gaussian_mixture(x, 3, iters=200, generator=torch.Generator().manual_seed(1))
    assert (hist[1:] - hist[:-1] > -1e-9).all()                   # EM never goes down
    order = torch.argsort(fit.means[:, 0])
    assert torch.allclose(fit.means[order], true.means[torch.tensor([0, 2, 1])], atol=0.05)
    assert torch.allclose(fit.weights[order], true.weights[torch.tensor([0, 2, 1])], atol=0.02)
    assert torch.allclose(fit.covs[order], true.covs[torch.tensor([0, 2, 1])], atol=0.05)
    exact = float(true.log_prob(x, 0.0, VP()).mean())
    assert abs(float(fit.log_prob(x, 0.0, VP()).mean()) - exact) < 0.01 and hist[-1] >= exact - 1e-3


def test_em_input_checks():
    x = torch.randn(10, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="K"):
        fit_gaussian_mixture(x, 11)
    with pytest.raises(ValueError, match="reg"):
        fit_gaussian_mixture(x, 2, reg=0.0)
