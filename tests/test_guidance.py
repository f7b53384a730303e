"""Tests of diffedu.guidance: the exact classifier, classifier(-free) guidance, the tilted target.

Independent checks: the classifier against Bayes' rule from the class-conditional densities;
classifier guidance (autograd of the exact classifier) against classifier-free guidance (the
difference of two closed-form denoisers), the same field at the same weight; the tilted target's
rejection sampler against its quadrature on a 2-D grid; the guidance interval.
"""

import math

import pytest
import torch

from diffedu import VE, VP, GaussianMixture, heun, time_grid
from diffedu import guidance as G

F64 = torch.float64
MIX = GaussianMixture([0.3, 0.2, 0.5], [[-1.5, 0.0], [1.5, 0.5], [0.5, -1.0]],
                      [[[0.4, 0.1], [0.1, 0.3]], [[0.3, 0.0], [0.0, 0.3]], [[0.5, -0.2], [-0.2, 0.4]]])
MODEL = G.ClassConditional(MIX, [0, 0, 1])


def _x(n=7, seed=0):
    return 2 * torch.randn(n, 2, dtype=F64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("process", [VP(), VE()], ids=["VP", "VE"])
@pytest.mark.parametrize("t_frac", [0.0, 0.1, 0.5])
def test_classifier_is_bayes_rule(process, t_frac):
    t = t_frac * process.t_max
    x = _x()
    logs = torch.stack([MODEL.given(c).log_prob(x, t, process) for c in range(2)], 1) + torch.log(MODEL.prior)
    expect = torch.softmax(logs, 1)
    got = MODEL.classifier(x, t, process)
    assert torch.allclose(got, expect, atol=1e-12)
    assert torch.allclose(got.sum(1), torch.ones(7, dtype=F64))
    assert torch.allclose(MODEL.prior, torch.tensor([0.5, 0.5], dtype=F64))


@pytest.mark.parametrize("w", [0.0, 1.0, 2.5, 7.0])
@pytest.mark.parametrize("c", [0, 1])
def test_classifier_guidance_equals_classifier_free_guidance_with_exact_quantities(w, c):
    """grad log p_t(c | x) (autograd of the exact classifier) = s_c - s (closed forms), so the two
    guided denoisers agree at every x, t and weight."""
    vp = VP()
    Dc, Du = MODEL.given(c).bind(vp).denoiser, MIX.bind(vp).denoiser
    cfg = G.classifier_free_guidance(Dc, Du, w)
    cg = G.classifier_guidance(Du, lambda x, t: MODEL.log_classifier(x, t, vp)[:, c], vp, w)
    x = _x(9, seed=c)
    for t in (0.02, 0.2, 0.6, 1.0):
        assert torch.allclose(cg(x, t), cfg(x, t), atol=1e-9), t
    if w == 0.0:
        assert torch.allclose(cfg(x, 0.3), Du(x, 0.3))
    if w == 1.0:
        assert torch.allclose(cfg(x, 0.3), Dc(x, 0.3))
    with torch.no_grad():                                        # the gradient is taken inside no_grad too
        assert torch.allclose(cg(x, 0.2), cfg(x, 0.2), atol=1e-9)


def test_guidance_interval_uses_the_conditional_model_outside():
    vp = VP()
    Dc, Du = MODEL.given(0).bind(vp).denoiser, MIX.bind(vp).denoiser
    g = G.classifier_free_guidance(Dc, Du, 4.0, interval=(0.2, 0.6))
    full = G.classifier_free_guidance(Dc, Du, 4.0)
    x = _x()
    assert torch.allclose(g(x, 0.1), Dc(x, 0.1)) and torch.allclose(g(x, 0.8), Dc(x, 0.8))
    assert torch.allclose(g(x, 0.4), full(x, 0.4))
    t = torch.tensor([0.1, 0.4, 0.8, 0.2, 0.6, 0.05, 0.5], dtype=F64)   # per-row times
    rows = torch.stack([g(x[i:i + 1], float(t[i]))[0] for i in range(7)])
    assert torch.allclose(g(x, t), rows)
    with pytest.raises(ValueError, match="interval"):
        G.classifier_free_guidance(Dc, Du, 2.0, interval=(0.6, 0.2))
    with pytest.raises(TypeError, match="interval"):
        G.classifier_free_guidance(Dc, Du, 2.0, interval=0.5)


@pytest.mark.parametrize("w", [0.5, 1.0, 3.0])
def test_tilted_sampler_matches_quadrature(w):
    """Exact rejection draws of q_0 ∝ p(x|0)^w p(x)^(1-w) against the midpoint rule on a grid."""
    xs, ys, dens = G.tilted_density_grid(MODEL, 0, w, lim=(-6.0, 6.0), n=300)
    dA = float((xs[1] - xs[0]) * (ys[1] - ys[0]))
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    pts = torch.stack([X, Y], -1)
    mean_q = (dens[..., None] * pts).sum((0, 1)) * dA
    cov_q = (dens[..., None, None] * (pts - mean_q)[..., :, None] * (pts - mean_q)[..., None, :]).sum((0, 1)) * dA
    draws = G.tilted_sample(MODEL, 0, w, 40000, generator=torch.Generator().manual_seed(1), dtype=F64)
    se = cov_q.diagonal().sqrt() / math.sqrt(40000)
    assert ((draws.mean(0) - mean_q).abs() < 4 * se).all()
    assert torch.allclose(torch.cov(draws.T), cov_q, atol=0.03)
    # the unnormalised log-density is the grid's up to a constant
    lq = G.tilted_log_prob(MODEL, 0, w, pts.reshape(-1, 2)).reshape(dens.shape)
    diff = lq - dens.log()
    assert float(diff.max() - diff.min()) < 1e-9
    if w == 1.0:                                                   # q_0 = p(x | c)
        assert torch.allclose(dens, MODEL.given(0).log_prob(pts.reshape(-1, 2), 0.0, VP()).exp().reshape(dens.shape),
                              atol=1e-3)


def test_cfg_at_w_1_samples_the_class_and_at_w_3_not_the_tilted_target():
    """With the exact fields, w = 1 is exact conditional sampling; at w = 3 the PF-ODE lands away from
    the tilted target (the guided field is not the score of a diffusion family) by more than the error
    of the same sampler at w = 1."""
    vp = VP()
    Dc, Du = MODEL.given(0).bind(vp).denoiser, MIX.bind(vp).denoiser
    xT = torch.randn(4000, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    out = {w: heun(G.classifier_free_guidance(Dc, Du, w), vp, xT, time_grid(vp, 60)) for w in (1.0, 3.0)}
    for w, xs in out.items():
        ref = G.tilted_sample(MODEL, 0, w, 40000, generator=torch.Generator().manual_seed(3), dtype=F64)
        err = float((xs.mean(0) - ref.mean(0)).norm())
        if w == 1.0:
            assert err < 0.08
        else:
            assert err > 0.3


@pytest.mark.parametrize("w", [0.0, 0.5, 2.0, 3.0])
def test_tilted_gaussian_against_quadrature(w):
    from diffedu import Gaussian

    cond, uncond = Gaussian([1.0], [0.5]), Gaussian([0.0], [2.0])
    q = G.tilted_gaussian(cond, uncond, w)
    x = torch.linspace(-12, 12, 200001, dtype=F64)[:, None]
    vp = VP()
    lq = w * cond.log_prob(x, 0.0, vp) + (1 - w) * uncond.log_prob(x, 0.0, vp)
    p = torch.softmax(lq, 0)
    mean = (p * x[:, 0]).sum()
    var = (p * (x[:, 0] - mean) ** 2).sum()
    assert float(q.mean) == pytest.approx(float(mean), abs=1e-8)
    assert float(q.cov) == pytest.approx(float(var), rel=1e-6)
    with pytest.raises(ValueError, match="positive definite"):
        G.tilted_gaussian(Gaussian([1.0], [3.0]), uncond, 4.0)    # a class wider than the data, w > 1


def test_bad_inputs():
    vp = VP()
    with pytest.raises(TypeError, match="mixture"):
        G.ClassConditional("mix", [0, 1, 1])
    with pytest.raises(ValueError, match="labels"):
        G.ClassConditional(MIX, [0, 2, 2])                        # class 1 unused
    with pytest.raises(ValueError, match="labels"):
        G.ClassConditional(MIX, [0, 1])
    with pytest.raises(ValueError, match="c must be"):
        MODEL.given(2)
    with pytest.raises(TypeError, match="w"):
        G.classifier_free_guidance(MIX.bind(vp).denoiser, MIX.bind(vp).denoiser, "2")
    with pytest.raises(ValueError, match="w"):
        G.tilted_sample(MODEL, 0, -1.0, 10)
    bad = G.classifier_guidance(MIX.bind(vp).denoiser, lambda x, t: MODEL.log_classifier(x, t, vp), vp, 2.0)
    with pytest.raises(ValueError, match="log_classifier must return"):
        bad(_x(), 0.3)
    with pytest.raises(RuntimeError, match="max_proposals"):
        G.tilted_sample(MODEL, 0, 60.0, 1000, max_proposals=2000)


def test_tilted_sample_of_no_draws():
    """Issue 21 (property tests): n = 0 gave torch.cat's "expected a non-empty list of Tensors"."""
    mix = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.5], [0.5]])
    model = G.ClassConditional(mix, [0, 1])
    out = G.tilted_sample(model, 0, 2.0, 0, dtype=torch.float32)
    assert out.shape == (0, 1) and out.dtype == torch.float32
