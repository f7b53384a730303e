"""Vector fields and model converters against the Gaussian's exact score, noise and flow."""

import pytest
import torch

from diffedu import EDM, VE, VP, Gaussian, Linear, VPCosine
from diffedu import flows as fl

F64 = torch.float64
PROCESSES = {"VP": VP(), "VPCosine": VPCosine(), "VE": VE(), "EDM": EDM(), "Linear": Linear()}


def gaussian():
    return Gaussian(torch.tensor([1.0, -0.5], dtype=F64), torch.tensor([[0.7, 0.3], [0.3, 0.4]], dtype=F64))


def point(p, frac=0.3):
    """A time inside the process range and a batch drawn from p_t."""
    t = frac * p.t_max
    x = gaussian().bind(p).sample_marginal(5, t, generator=torch.Generator().manual_seed(0), dtype=F64)
    return x, t


@pytest.mark.parametrize("pname", list(PROCESSES))
def test_pf_ode_velocity_is_f_x_minus_half_g2_score(pname):
    p, G = PROCESSES[pname], gaussian()
    x, t = point(p)
    v = fl.pf_ode_velocity(G.bind(p).denoiser, p, x, t)
    ref = p.f(t) * x - 0.5 * p.g2(t) * G.score(x, t, p)
    torch.testing.assert_close(v, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("pname", list(PROCESSES))
def test_pf_ode_velocity_is_the_time_derivative_of_the_exact_flow(pname):
    p, G = PROCESSES[pname], gaussian()
    x, t = point(p)
    h = 1e-5 * p.t_max
    dx = (G.flow(x, t, t + h, p) - G.flow(x, t, t - h, p)) / (2 * h)
    torch.testing.assert_close(fl.pf_ode_velocity(G.bind(p).denoiser, p, x, t), dx, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pname", list(PROCESSES))
def test_reverse_sde_drift(pname):
    p, G = PROCESSES[pname], gaussian()
    x, t = point(p)
    drift = fl.reverse_sde_drift(G.bind(p).denoiser, p, x, t)
    torch.testing.assert_close(drift, p.f(t) * x - p.g2(t) * G.score(x, t, p), rtol=1e-10, atol=1e-10)
    v = fl.pf_ode_velocity(G.bind(p).denoiser, p, x, t)
    torch.testing.assert_close(drift, 2 * v - p.f(t) * x, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("pname", list(PROCESSES))
def test_converters_match_closed_forms_and_round_trip(pname):
    p, G = PROCESSES[pname], gaussian()
    x, t = point(p)
    D = G.bind(p).denoiser
    eps, score = fl.eps_from_denoiser(D, p), fl.score_from_denoiser(D, p)
    vel = fl.velocity_from_denoiser(D, p)
    torch.testing.assert_close(eps(x, t), G.eps(x, t, p))
    torch.testing.assert_close(score(x, t), G.score(x, t, p))
    for back in (fl.denoiser_from_eps(eps, p), fl.denoiser_from_score(score, p),
                 fl.denoiser_from_velocity(vel, p)):
        torch.testing.assert_close(back(x, t), D(x, t), rtol=1e-9, atol=1e-9)
    # per-sample times (B,) broadcast the same way
    tb = torch.full((x.shape[0],), t, dtype=F64)
    torch.testing.assert_close(fl.denoiser_from_velocity(vel, p)(x, tb), D(x, t), rtol=1e-9, atol=1e-9)


def test_linear_interpolant_velocity_gives_x_minus_t_v():
    p, G = Linear(), gaussian()
    x, t = point(p, 0.6)
    v = fl.velocity_from_denoiser(G.bind(p).denoiser, p)
    torch.testing.assert_close(x - t * v(x, t), G.denoiser(x, t, p))
    # v = alpha' D + sigma' eps = eps - D (noise minus data) for alpha = 1 - t, sigma = t
    torch.testing.assert_close(v(x, t), G.eps(x, t, p) - G.denoiser(x, t, p))


def test_converters_reject_non_callables():
    with pytest.raises(TypeError, match="eps_model"):
        fl.denoiser_from_eps(3, VP())
    with pytest.raises(TypeError, match="process"):
        fl.denoiser_from_score(lambda x, t: x, "VP")
    with pytest.raises(ValueError, match="x must have shape"):
        fl.pf_ode_velocity(lambda x, t: x, VP(), torch.zeros(3), 0.5)


@pytest.mark.parametrize("field", [fl.pf_ode_velocity, fl.reverse_sde_drift])
def test_fields_check_the_denoiser_is_callable(field):
    """Issue 21 (property tests): a number gave "'int' object is not callable", naming nothing."""
    with pytest.raises(TypeError, match="denoiser must be a denoiser D"):
        field(3, VP(), torch.zeros(2, 2), 0.5)


def test_fields_check_the_denoiser_output_shape():
    """Issue 21 (property tests): a (B, D + 1) denoiser output failed inside torch's broadcasting."""
    for field in (fl.pf_ode_velocity, fl.reverse_sde_drift):
        with pytest.raises(ValueError, match="denoiser must return a tensor of x's shape"):
            field(lambda x, t: torch.cat([x, x], 1), VP(), torch.zeros(2, 2), 0.5)
