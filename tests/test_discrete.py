"""diffedu.discrete: masked diffusion checked against exact laws and seeded Monte Carlo."""

import math

import pytest
import torch
from scipy.stats import chisquare, kstest

from diffedu.discrete import (CosineMask, LinearMask, PowerMask, SequenceDistribution, all_masked, elbo,
                              elbo_integrand, elbo_mc, first_hitting_survival, first_hitting_time, mask_tokens, sample_first_hitting,
                              sample_stepwise, sequence_chi2, stepwise_law)

V, L = 3, 4
SCHEDULES = [LinearMask(), CosineMask(), PowerMask(2.0), PowerMask(3.0)]


@pytest.fixture(scope="module")
def chain():
    """A sticky Markov chain: neighbouring tokens are strongly correlated."""
    trans = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]], dtype=torch.float64)
    return SequenceDistribution.markov_chain(torch.tensor([0.5, 0.3, 0.2]), trans, L)


def gen(seed):
    return torch.Generator().manual_seed(seed)


# --- the distribution and the forward process ------------------------------------------------
def test_markov_table_matches_chain_rule(chain):
    x = torch.tensor([[0, 0, 1, 2], [2, 2, 2, 2]])
    init = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    trans = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]], dtype=torch.float64)
    want = [math.log(init[0] * trans[0, 0] * trans[0, 1] * trans[1, 2]), math.log(init[2] * trans[2, 2] ** 3)]
    assert torch.allclose(chain.log_prob(x), torch.tensor(want, dtype=torch.float64), atol=1e-12)
    assert abs(float(chain.table.sum()) - 1) < 1e-12


def test_denoiser_is_the_posterior_and_ignores_t(chain):
    x = torch.tensor([[0, V, V, 2], [V, V, V, V], [1, 1, 1, 1]])
    d = chain.denoiser(x, 0.3)
    assert torch.equal(d, chain.denoiser(x, 0.9))
    # brute force: condition the table on the unmasked tokens
    for b in range(x.shape[0]):
        keep = ((x[b] == V) | (chain.seqs == x[b])).all(1)
        w = chain.table * keep
        for i in range(L):
            want = torch.stack([(w * (chain.seqs[:, i] == v)).sum() for v in range(V)]) / w.sum()
            assert torch.allclose(d[b, i], want, atol=1e-12)


def test_mask_tokens_masks_with_probability_one_minus_alpha(chain):
    x0 = chain.sample(20000, generator=gen(0))
    for sched in (LinearMask(), CosineMask()):
        xt = mask_tokens(x0, 0.3, sched, V, generator=gen(1))
        frac = float((xt == V).double().mean())
        assert abs(frac - (1 - float(sched.alpha(0.3)))) < 4 * math.sqrt(0.25 / x0.numel())
        assert torch.equal(xt[xt != V], x0[xt != V])


# --- the ELBO ----------------------------------------------------------------------------------
def test_elbo_is_schedule_independent_and_tight_for_the_exact_denoiser(chain):
    x0 = chain.seqs[::7]
    vals = torch.stack([elbo(chain.denoiser, x0, s, V) for s in SCHEDULES])
    assert (vals - vals[0]).abs().max() < 1e-9
    assert torch.allclose(vals[0], chain.log_prob(x0), atol=1e-9)


def test_elbo_of_the_context_free_denoiser(chain):
    """With marginals as the denoiser the ELBO is sum_i log p_i(x^i), for every schedule,
    and below log p on average (the multi-information is positive)."""
    x0 = chain.seqs
    logm = torch.log(chain.marginals())
    want = logm.gather(1, x0.T).T.sum(1)
    for s in SCHEDULES:
        assert torch.allclose(elbo(chain.marginal_denoiser, x0, s, V), want, atol=1e-9)
    assert float(chain.table @ (chain.log_prob(x0) - want)) > 0.05


def test_monte_carlo_elbo_agrees_across_schedules(chain):
    x0 = chain.seqs[[0, 40, 80]]
    exact = elbo(chain.marginal_denoiser, x0, LinearMask(), V)
    for i, s in enumerate((LinearMask(), CosineMask())):
        m, se = elbo_mc(chain.marginal_denoiser, x0, s, V, 4000, generator=gen(10 + i))
        assert ((m - exact).abs() < 4 * se).all(), (s, m, exact, se)


# --- samplers ----------------------------------------------------------------------------------
def test_first_hitting_time_follows_its_beta_law():
    # from t = 1 with n masked tokens, alpha at the first unmasking is Beta(1, n)
    t = first_hitting_time(torch.ones(20000, dtype=torch.float64), 4, CosineMask(), generator=gen(2))
    assert kstest(CosineMask().alpha(t).numpy(), "beta", args=(1, 4)).pvalue > 0.01
    # from t = 0.6 with 3 masked: (1 - alpha_s) / (1 - alpha_t) is Beta(3, 1)
    s = LinearMask()
    t2 = first_hitting_time(torch.full((20000,), 0.6, dtype=torch.float64), 3, s, generator=gen(3))
    assert (t2 <= 0.6).all()
    ratio = (1 - s.alpha(t2)) / (1 - s.alpha(0.6))
    assert kstest(ratio.numpy(), "beta", args=(3, 1)).pvalue > 0.01


def test_first_hitting_survival_is_the_beta_tail_and_matches_the_sampler():
    from scipy.stats import beta

    a = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0], dtype=torch.float64)
    for n in (1, 4):  # from the fully masked sequence, alpha at the first unmasking is Beta(1, n)
        assert torch.allclose(first_hitting_survival(a, n), torch.as_tensor(beta.sf(a.numpy(), 1, n)), atol=1e-15)
    s = LinearMask()  # Monte Carlo: still masked at alpha = 0.5 after starting from alpha = 0.3 with 3 masked
    t = first_hitting_time(torch.full((40000,), float(s.t_of_alpha(0.3)), dtype=torch.float64), 3, s, generator=gen(4))
    mc = float((s.alpha(t) > 0.5).double().mean())
    assert abs(mc - float(first_hitting_survival(0.5, 3, alpha_from=0.3))) < 4 * (0.25 / 40000) ** 0.5
    with pytest.raises(ValueError, match="alpha must lie"):
        first_hitting_survival(0.1, 2, alpha_from=0.3)
    with pytest.raises(ValueError, match="n_masked must be"):
        first_hitting_survival(0.5, 1.5)


def test_first_hitting_sampler_is_exact_and_the_test_rejects_marginals(chain):
    n = 6000
    x = sample_first_hitting(chain.denoiser, all_masked(n, L, V), V, LinearMask(), generator=gen(4))
    stat, dof, p = sequence_chi2(x, chain)
    assert p > 1e-3, (stat, dof, p)
    # a sampler that draws each position from its marginal: same per-position laws, wrong joint
    y = sample_first_hitting(chain.marginal_denoiser, all_masked(n, L, V), V, LinearMask(), generator=gen(5))
    assert sequence_chi2(y, chain)[2] < 1e-12
    assert sequence_chi2(y, chain.product_of_marginals())[2] > 1e-3
    for i in range(L):  # the per-position marginals alone cannot tell them apart
        obs = torch.bincount(y[:, i], minlength=V).double()
        assert chisquare(obs.numpy(), (n * chain.marginals()[i]).numpy()).pvalue > 1e-3


def test_stepwise_error_shrinks_with_steps(chain):
    tv = [0.5 * float((stepwise_law(chain.denoiser, V, L, LinearMask(), N) - chain.table).abs().sum())
          for N in (1, 4, 16, 64)]
    assert all(a > 3 * b for a, b in zip(tv, tv[1:])), tv  # first order: TV ~ 1/N
    assert tv[-1] < 0.02
    law = stepwise_law(chain.denoiser, V, L, CosineMask(), 1)
    assert torch.allclose(law, chain.product_of_marginals().table, atol=1e-12)  # one step = marginals


def test_stepwise_sampler_draws_its_exact_law(chain):
    n, N = 6000, 3
    x = sample_stepwise(chain.denoiser, all_masked(n, L, V), V, LinearMask(), N, generator=gen(6))
    law = SequenceDistribution(stepwise_law(chain.denoiser, V, L, LinearMask(), N), V, L)
    assert sequence_chi2(x, law)[2] > 1e-3
    assert sequence_chi2(x, chain)[2] < 1e-12


def test_elbo_integrand_per_alpha_is_schedule_free_and_integrates_to_the_elbo(chain):
    """Per unit alpha the integrand is one curve for every schedule; per unit t it integrates
    (trapezoid rule, fine grid) to the ELBO."""
    x0 = chain.seqs[[3, 40]]
    md = chain.marginal_denoiser
    a = torch.linspace(0.02, 0.98, 7, dtype=torch.float64)
    curves = [elbo_integrand(md, x0, s, V, s.t_of_alpha(a), per="alpha") for s in SCHEDULES]
    for c in curves[1:]:
        torch.testing.assert_close(c, curves[0], rtol=1e-10, atol=1e-12)
    t = torch.linspace(0, 1, 4001, dtype=torch.float64)
    rate = elbo_integrand(md, x0, CosineMask(), V, t)
    assert rate.shape == (4001, 2) and (rate <= 0).all()
    torch.testing.assert_close(torch.trapezoid(rate, t, dim=0), elbo(md, x0, CosineMask(), V), rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="per must be"):
        elbo_integrand(md, x0, CosineMask(), V, t, per="s")


# --- bad input ----------------------------------------------------------------------------------
def test_bad_input_names_the_argument(chain):
    with pytest.raises(TypeError, match="x0"):
        mask_tokens(torch.zeros(2, L), 0.5, LinearMask(), V)
    with pytest.raises(ValueError, match="t must lie"):
        mask_tokens(torch.zeros(2, L, dtype=torch.long), 1.5, LinearMask(), V)
    with pytest.raises(TypeError, match="schedule"):
        elbo(chain.denoiser, chain.seqs[:2], "linear", V)
    with pytest.raises(ValueError, match="steps"):
        sample_stepwise(chain.denoiser, all_masked(2, L, V), V, LinearMask(), 0)
    with pytest.raises(ValueError, match="x must hold token ids"):
        chain.denoiser(torch.full((1, L), V + 1))
    with pytest.raises(ValueError, match="trans"):
        SequenceDistribution.markov_chain([0.5, 0.5], [[0.5, 0.5]], 3)
    with pytest.raises(TypeError, match="generator"):
        sample_first_hitting(chain.denoiser, all_masked(2, L, V), V, LinearMask(), generator=0)
    with pytest.raises(ValueError, match="denoiser must return"):
        sample_first_hitting(lambda x, t: torch.ones(1), all_masked(2, L, V), V, LinearMask())


def test_markov_chain_checks_the_table_size_before_building_it():
    """Issue 21 (property tests): markov_chain(init, trans, length=10**12) built the V ** length table in a loop
    (the process was killed for memory); the constructor's logarithmic check now runs first."""
    with pytest.raises(ValueError, match=r"vocab_size \*\* length must be at most 2\*\*20"):
        SequenceDistribution.markov_chain(torch.ones(2) / 2, torch.ones(2, 2) / 2, 10**12)


def test_schedules_and_samplers_check_their_arguments():
    """Issue 21 (property tests): schedules took t = True (as 1.0), a complex t (cast), a string (torch's
    'invalid data type') and any t in alpha (LinearMask().alpha(5) was -4); n_masked = 1.5 passed; a string
    probs or min_expected failed inside torch; marginal_denoiser indexed a wrong-length x (IndexError); a
    non-callable denoiser was found only when called; a test with every cell pooled gave a NaN p-value."""
    s = LinearMask()
    with pytest.raises(TypeError, match="t must be a time in"):
        s.alpha(True)
    with pytest.raises(TypeError, match="t must be a time in"):
        CosineMask().d_alpha("0.5")
    with pytest.raises(TypeError, match="t must be a time in .* real and not bool"):
        s.check_t(torch.tensor(0.5 + 0j))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        s.alpha(5.0)
    with pytest.raises(ValueError, match=r"a must lie in \[0, 1\]"):
        PowerMask(2.0).t_of_alpha(-0.5)
    with pytest.raises(TypeError, match="p must be a real number; got str"):
        PowerMask("2")
    with pytest.raises(ValueError, match="n_masked must be an integer >= 1"):
        first_hitting_time(0.5, 1.5, s)
    with pytest.raises(TypeError, match="probs must be array-like of probabilities; got str"):
        SequenceDistribution("abc", 2, 1)
    dist = SequenceDistribution(torch.tensor([0.5, 0.5]), 2, 1)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1\)"):
        dist.marginal_denoiser(torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="denoiser must be a"):
        sample_first_hitting(3, all_masked(1, 1, 2), 2, s)
    with pytest.raises(TypeError, match="min_expected must be a real number; got str"):
        sequence_chi2(torch.zeros(5, 1, dtype=torch.long), dist, min_expected="5")
    with pytest.raises(ValueError, match="every cell pools into one"):
        sequence_chi2(torch.zeros(2, 1, dtype=torch.long), dist)


def test_first_hitting_time_with_given_uniforms():
    """Issue 18 (lesson 09's exercise): passing the uniforms reproduces the generator's draws, and under
    the linear schedule (alpha = 1 - t) the time is t * U^(1/n) in closed form."""
    t = torch.tensor([1.0, 0.7, 0.4], dtype=torch.float64)
    n = torch.tensor([4, 2, 1])
    u = torch.rand(3, generator=gen(5), dtype=torch.float64)
    torch.testing.assert_close(first_hitting_time(t, n, CosineMask(), u=u),
                               first_hitting_time(t, n, CosineMask(), generator=gen(5)))
    torch.testing.assert_close(first_hitting_time(t, n, LinearMask(), u=u), t * u ** (1 / n.double()))
    with pytest.raises(ValueError, match="one uniform per row"):
        first_hitting_time(t, n, LinearMask(), u=u[:2])
    with pytest.raises(ValueError, match="u must lie"):
        first_hitting_time(t, n, LinearMask(), u=u + 1)
    with pytest.raises(TypeError, match="u must be"):
        first_hitting_time(t, n, LinearMask(), u=[0.5, 0.5, 0.5])
