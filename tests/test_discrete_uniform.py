"""diffedu.discrete.uniform: uniform-noise discrete diffusion against brute force over all V^L states,
the ELBO against log p to quadrature precision, the leave-one-out conversions, the absorbing
reformulation, and the step-wise sampler against its exact law and seeded draws (issue 18, point 2)."""

import math

import pytest
import torch
from scipy.stats import chisquare

from diffedu import discrete as dd
from diffedu.discrete import uniform as du

F64 = torch.float64
V, L = 3, 4


@pytest.fixture(scope="module")
def chain():
    trans = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]], dtype=F64)
    return dd.SequenceDistribution.markov_chain(torch.tensor([0.5, 0.3, 0.2]), trans, L)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def _brute_posterior(chain, x, t, sch):
    """P(x0 | x_t) by the definition, one noisy sequence at a time (loops, no shared code)."""
    a = float(sch.alpha(t))
    K = lambda u, v: a * (u == v) + (1 - a) / V  # noqa: E731
    out = torch.zeros(x.shape[0], L, V, dtype=F64)
    for b in range(x.shape[0]):
        w = torch.tensor([float(chain.table[n]) * math.prod(K(int(chain.seqs[n, i]), int(x[b, i])) for i in range(L))
                          for n in range(V**L)], dtype=F64)
        w = w / w.sum()
        for i in range(L):
            for v in range(V):
                out[b, i, v] = w[chain.seqs[:, i] == v].sum()
    return out


def test_kernel_and_forward_draws(chain):
    sch = dd.CosineMask()
    K = du.uniform_kernel(sch, 0.6, V)
    a = float(sch.alpha(0.6))
    torch.testing.assert_close(K, a * torch.eye(V, dtype=F64) + (1 - a) / V)
    torch.testing.assert_close(K.sum(1), torch.ones(V, dtype=F64))
    assert du.uniform_kernel(sch, torch.tensor([0.0, 1.0], dtype=F64), V).shape == (2, V, V)
    x0 = torch.zeros(200_000, 1, dtype=torch.long)
    xt = du.uniform_tokens(x0, 0.6, sch, V, generator=gen(0))
    obs = torch.bincount(xt[:, 0], minlength=V).double().numpy()
    assert chisquare(obs, 200_000 * K[0].numpy()).pvalue > 1e-3
    assert torch.equal(du.uniform_tokens(x0[:5], 0.0, sch, V, generator=gen(1)), x0[:5])


def test_marginal_is_the_pushforward_of_every_sequence(chain):
    sch = dd.LinearMask()
    pt = du.uniform_marginal(chain, 0.35, sch)
    a = float(sch.alpha(0.35))
    Kt = a * torch.eye(V, dtype=F64) + (1 - a) / V
    brute = torch.stack([sum(chain.table[m] * Kt[chain.seqs[m], chain.seqs[n]].prod() for m in range(V**L))
                         for n in range(V**L)])
    torch.testing.assert_close(pt, brute, rtol=1e-12, atol=1e-15)
    assert abs(float(du.uniform_marginal(chain, 1.0, sch).sum()) - 1) < 1e-12
    torch.testing.assert_close(du.uniform_marginal(chain, 1.0, sch), torch.full((V**L,), 1 / V**L, dtype=F64))


def test_denoiser_loo_and_ratios_against_brute_force(chain):
    sch = dd.PowerMask(2.0)
    x = chain.seqs[torch.randperm(V**L, generator=gen(2))[:6]]
    for t in (0.15, 0.6):
        D = du.uniform_denoiser(chain, sch)(x, t)
        torch.testing.assert_close(D, _brute_posterior(chain, x, t, sch), rtol=1e-12, atol=1e-14)
        Lo = du.uniform_loo(chain, sch)(x, t)
        torch.testing.assert_close(du.loo_from_denoiser(D, x, t, sch), Lo, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(du.denoiser_from_loo(Lo, x, t, sch), D, rtol=1e-12, atol=1e-14)
        # the leave-one-out posterior does not look at its own position's noisy token
        for i in range(L):
            for v in range(V):
                y = x.clone()
                y[:, i] = v
                torch.testing.assert_close(du.uniform_loo(chain, sch)(y, t)[:, i], Lo[:, i], rtol=1e-12, atol=1e-14)
        # both parameterisations give the concrete score p_t(x^{i->v}) / p_t(x), eq. (2)
        pt = du.uniform_marginal(chain, t, sch)
        s_d = du.uniform_ratios(D, x, t, sch)
        s_l = du.uniform_ratios(Lo, x, t, sch, param="loo")
        for b in range(x.shape[0]):
            for i in range(L):
                for v in range(V):
                    y = x[b].clone()
                    y[i] = v
                    exact = pt[chain.index(y[None])[0]] / pt[chain.index(x[b:b + 1])[0]]
                    assert abs(float(s_d[b, i, v] / exact) - 1) < 1e-11
                    assert abs(float(s_l[b, i, v] / exact) - 1) < 1e-11


def test_elbo_of_the_exact_denoiser_is_log_p(chain):
    """Eq. (3) with the exact ratios, the expectation over all 81 noisy states and tanh-sinh in alpha:
    log p(x0) within 1e-11, for three schedules (the ELBO does not depend on the schedule), and the
    same through the leave-one-out posterior in the bridge parameterisation."""
    xs = chain.seqs[[0, 13, 40, 77]]
    logp = chain.log_prob(xs)
    for sch in (dd.LinearMask(), dd.CosineMask(), dd.PowerMask(3.0)):
        torch.testing.assert_close(du.uniform_elbo(du.uniform_denoiser(chain, sch), xs, sch, V), logp, rtol=0, atol=1e-11)
    sch = dd.LinearMask()
    torch.testing.assert_close(du.uniform_elbo(du.uniform_loo(chain, sch), xs, sch, V, param="loo"), logp,
                               rtol=0, atol=1e-11)
    coarse = du.uniform_elbo(du.uniform_denoiser(chain, sch), xs, sch, V, n_t=12)
    assert (coarse - logp).abs().max() > 1e-6   # the quadrature is what converges


def test_elbo_gaps_of_the_context_free_and_mismatched_predictors(chain):
    """The context-free denoiser (the exact one of the product of marginals) has ELBO = sum_i log p_i(x^i)
    (it is exact for that law); the cross-entropy denoiser fed to the plug-in bridge (the mismatch of
    Gourevitch et al.) and the leave-one-out posterior fed to the denoiser slot fall below log p."""
    sch = dd.LinearMask()
    xs = chain.seqs[[0, 13, 40]]
    logp = chain.log_prob(xs)
    prod = chain.product_of_marginals()
    torch.testing.assert_close(du.uniform_elbo(du.uniform_denoiser(prod, sch), xs, sch, V), prod.log_prob(xs),
                               rtol=0, atol=1e-11)
    mismatch = du.uniform_elbo(du.uniform_denoiser(chain, sch), xs, sch, V, param="loo")
    swapped = du.uniform_elbo(du.uniform_loo(chain, sch), xs, sch, V, param="denoiser")
    assert (mismatch < logp - 1.0).all() and (swapped < logp - 1.0).all()


def test_absorbing_reformulation(chain):
    """Eq. (4): masking then filling with uniform tokens is the uniform kernel; the denoiser is the
    posterior mixture of masked-diffusion denoisers over the 2^L mask patterns; P(noise | x_t) is the
    mixture's weight on the masked patterns, checked against the joint law of (x0, m, x_t)."""
    sch = dd.CosineMask()
    t = 0.55
    a = float(sch.alpha(t))
    # kernel: P(x_t = v | x0 = u) = P(kept) [v = u] + P(masked) / V
    K = du.uniform_kernel(sch, t, V)
    torch.testing.assert_close(K, a * torch.eye(V, dtype=F64) + (1 - a) * torch.full((V, V), 1 / V, dtype=F64))
    x = chain.seqs[[3, 29, 55, 80]]
    torch.testing.assert_close(du.absorbing_denoiser(chain, sch)(x, t), du.uniform_denoiser(chain, sch)(x, t),
                               rtol=1e-12, atol=1e-14)
    # brute force over (x0, m): P(m^i = 1, x_t = x) / P(x_t = x)
    pm = du.noise_posterior(chain, x, t, sch)
    for b in range(x.shape[0]):
        num, den = torch.zeros(L, dtype=F64), 0.0
        for n in range(V**L):
            for mbits in range(2**L):
                m = [(mbits >> i) & 1 for i in range(L)]
                w = float(chain.table[n])
                for i in range(L):
                    w *= (1 - a) / V if m[i] else a * float(chain.seqs[n, i] == x[b, i])
                den += w
                num += w * torch.tensor(m, dtype=F64)
        torch.testing.assert_close(pm[b], num / den, rtol=1e-10, atol=1e-13)


def test_step_probs_and_the_stepwise_law(chain):
    """One reverse step in both parameterisations (the same numbers for the matching predictor), the
    exact law of the step-wise sampler approaching p_0 as the steps grow (TV ~ 2.5 / N), 20,000 draws
    of the sampler agreeing with that law (chi-square), and the mismatched plug-in staying far off."""
    sch = dd.LinearMask()
    D, Lo = du.uniform_denoiser(chain, sch), du.uniform_loo(chain, sch)
    x = chain.seqs[torch.randperm(V**L, generator=gen(4))[:8]]
    torch.testing.assert_close(du.uniform_step_probs(D(x, 0.7), x, 0.7, 0.4, sch),
                               du.uniform_step_probs(Lo(x, 0.7), x, 0.7, 0.4, sch, param="loo"), rtol=1e-12, atol=1e-14)
    # a step to s = 0 returns the denoiser's marginals; a step of zero length keeps x
    torch.testing.assert_close(du.uniform_step_probs(D(x, 0.7), x, 0.7, 0.0, sch), D(x, 0.7), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(du.uniform_step_probs(D(x, 0.7), x, 0.7, 0.7, sch),
                               torch.nn.functional.one_hot(x, V).to(F64), rtol=1e-12, atol=1e-14)
    tvs = [0.5 * float((du.uniform_stepwise_law(D, V, L, sch, N) - chain.table).abs().sum()) for N in (4, 16, 64)]
    assert tvs[0] > tvs[1] > tvs[2] and tvs[2] < 0.015
    bad = 0.5 * float((du.uniform_stepwise_law(D, V, L, sch, 64, param="loo") - chain.table).abs().sum())
    assert bad > 0.3
    law = du.uniform_stepwise_law(D, V, L, sch, 4)
    start = torch.randint(0, V, (20_000, L), generator=gen(5))
    xs = du.sample_uniform_stepwise(D, start, V, sch, 4, generator=gen(6))
    assert dd.sequence_chi2(xs, dd.SequenceDistribution(law, V, L))[2] > 1e-3
    assert dd.sequence_chi2(xs, chain)[2] < 1e-6


def test_bad_input_names_the_argument(chain):
    sch = dd.LinearMask()
    with pytest.raises(ValueError, match="param"):
        du.uniform_ratios(torch.full((1, L, V), 1 / V, dtype=F64), chain.seqs[:1], 0.5, sch, param="bridge")
    with pytest.raises(TypeError, match="schedule"):
        du.uniform_kernel("linear", 0.5, V)
    with pytest.raises(ValueError, match="x0"):
        du.uniform_tokens(torch.tensor([[V]]), 0.5, sch, V)
    with pytest.raises(ValueError, match="s must come before t"):
        du.uniform_step_probs(torch.full((1, L, V), 1 / V, dtype=F64), chain.seqs[:1], 0.3, 0.6, sch)
    with pytest.raises(TypeError, match="dist"):
        du.uniform_denoiser("chain", sch)
    with pytest.raises(ValueError, match="2\\*\\*16"):
        du.uniform_elbo(lambda x, t: None, torch.zeros(1, 20, dtype=torch.long), sch, V)
