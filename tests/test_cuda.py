"""Samplers, flows and calculus on CUDA give the CPU's answers (skipped without a GPU)."""

import pytest
import torch

from diffedu import EDM, VP, Gaussian, GaussianMixture, time_grid
from diffedu import calculus as C
from diffedu import flows as fl
from diffedu import samplers as S

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
F64 = torch.float64


def mixture():
    g = torch.Generator().manual_seed(0)
    means = 2 * torch.randn(4, 3, generator=g, dtype=F64)
    A = torch.randn(4, 3, 3, generator=g, dtype=F64)
    covs = A @ A.transpose(1, 2) / 3 + 0.05 * torch.eye(3, dtype=F64)
    return GaussianMixture(torch.full((4,), 0.25, dtype=F64), means, covs)


@pytest.mark.parametrize("process", [VP(), EDM()], ids=["VP", "EDM"])
@pytest.mark.parametrize("sname", list(S.DETERMINISTIC))
def test_deterministic_samplers_cuda_equals_cpu(sname, process):
    M = mixture()
    x = M.bind(process).sample_marginal(64, process.t_max, generator=torch.Generator().manual_seed(1), dtype=F64)
    ts = time_grid(process, 12)
    D = M.bind(process).denoiser
    cpu = S.DETERMINISTIC[sname](D, process, x, ts)
    gpu = S.DETERMINISTIC[sname](D, process, x.cuda(), ts)
    assert gpu.device.type == "cuda" and gpu.dtype == F64
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)
    path = S.trajectory(S.DETERMINISTIC[sname], D, process, x.cuda(), ts)
    assert path.shape == (13, 64, 3) and path.device.type == "cuda"


@pytest.mark.parametrize("sname", list(S.STOCHASTIC))
def test_stochastic_samplers_on_cuda_seeded_and_right_moments(sname):
    p, G = VP(), Gaussian(torch.tensor([1.0, -1.0], dtype=F64), torch.tensor([0.5, 0.3], dtype=F64))
    x = G.bind(p).sample_marginal(200_000, p.t_max, generator=torch.Generator("cuda").manual_seed(0),
                                  dtype=F64, device="cuda")
    ts = time_grid(p, 200, "lambda")
    kw = {"snr": 0.02} if sname == "predictor_corrector" else {}
    run = lambda: S.STOCHASTIC[sname](G.bind(p).denoiser, p, x, ts,  # noqa: E731
                                      generator=torch.Generator("cuda").manual_seed(3), **kw)
    a, b = run(), run()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a.mean(0).cpu(), G.mean, rtol=0, atol=0.02)
    torch.testing.assert_close(a.var(0).cpu(), torch.tensor([0.5, 0.3], dtype=F64), rtol=0, atol=0.03)
    with pytest.raises(ValueError, match="generator lives on cpu"):
        S.STOCHASTIC[sname](G.bind(p).denoiser, p, x, ts, generator=torch.Generator())


def test_flows_calculus_and_likelihood_cuda_equal_cpu():
    p, M = EDM(), mixture()
    x = M.sample(8, generator=torch.Generator().manual_seed(2), dtype=F64)
    D = M.bind(p).denoiser
    for fn in (fl.pf_ode_velocity, fl.reverse_sde_drift):
        torch.testing.assert_close(fn(x.cuda(), 1.3, D, p).cpu(), fn(x, 1.3, D, p))
    field = lambda z: fl.pf_ode_velocity(D, p, z, 1.3)  # noqa: E731
    torch.testing.assert_close(C.divergence(field, x.cuda()).cpu(), C.divergence(field, x))
    torch.testing.assert_close(C.jacobian(field, x.cuda()).cpu(), C.jacobian(field, x))
    z = C.hutchinson_probes(x.shape, x.cuda(), n_probes=2, generator=torch.Generator("cuda").manual_seed(0))
    assert z.device.type == "cuda"
    prior = lambda y: M.log_prob(y, p.t_max, p)  # noqa: E731
    ll_gpu = S.log_likelihood(D, p, x[:3].cuda(), t_start=0.05, prior=prior, rtol=1e-8, atol=1e-9)
    assert ll_gpu.device.type == "cuda"
    torch.testing.assert_close(ll_gpu.cpu(), M.log_prob(x[:3], 0.05, p), rtol=0, atol=1e-4)


@pytest.mark.parametrize("process", [VP(), EDM()], ids=["VP", "EDM"])
def test_closed_forms_cuda_equal_cpu(process):
    M = mixture()
    G = Gaussian(M.means[0], M.covs[0])
    x = M.bind(process).sample_marginal(32, 0.3 * process.t_max, generator=torch.Generator().manual_seed(4), dtype=F64)
    t = 0.3 * process.t_max
    for dist in (M, G):
        for name in ("score", "denoiser", "log_prob", "eps"):
            f = getattr(dist, name)
            torch.testing.assert_close(f(x.cuda(), t, process).cpu(), f(x, t, process), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(G.flow(x.cuda(), t, 0.1 * t, process).cpu(), G.flow(x, t, 0.1 * t, process))
