"""diffedu.categorical: the exact law of Gumbel-max sampling with truncated uniforms, against
seeded Monte Carlo, and the masked-step categorical."""

import pytest
import torch
from scipy.stats import chisquare

from diffedu.categorical import (_gumbel_full, _gumbel_split, entropy, gumbel_max_probs, masked_step_law,
                                 sample_categorical, total_variation, zipf)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_float32_rand_lives_on_the_24_bit_grid():
    u = torch.rand(100000, generator=gen(7), dtype=torch.float32).double() * 2**24
    assert torch.equal(u, torch.round(u))


@pytest.mark.parametrize("bits", [8, 10, 11])
def test_truncated_gumbel_closed_form_matches_monte_carlo(bits):
    p = torch.tensor([0.97, 0.02, 0.006, 0.004], dtype=torch.float64)
    closed = gumbel_max_probs(p, bits)
    assert abs(float(closed.sum()) - 1) < 1e-12
    n = 300000
    x = sample_categorical(p.expand(n, 4), bits=bits, generator=gen(bits))
    obs = torch.bincount(x, minlength=4).double().numpy()
    assert chisquare(obs, n * (closed / closed.sum()).numpy()).pvalue > 1e-3
    if bits == 8:  # the truncation is visible: the ideal law is rejected
        assert chisquare(obs, n * p.numpy()).pvalue < 1e-10


def test_split_evaluation_matches_the_full_sum():
    p = torch.tensor([0.995, 0.003, 0.0015, 0.0005], dtype=torch.float64)
    for bits in (9, 12):
        assert (_gumbel_split(p, bits) - _gumbel_full(p, bits)).abs().max() < 4 * 4.0**-bits


def test_float32_lowers_the_entropy_and_float64_does_not():
    tok = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    q = 1e-6  # probability of unmasking in one step
    pi = torch.cat([q * tok, torch.tensor([1 - q], dtype=torch.float64)])
    h = {}
    for bits in (24, 53):
        pe = gumbel_max_probs(pi, bits)[:-1]
        h[bits] = float(entropy(pe / pe.sum()))
    assert h[24] < float(entropy(tok)) - 0.03
    assert abs(h[53] - float(entropy(tok))) < 1e-9


def test_53_bit_sampling_is_unbiased():
    p = torch.tensor([0.97, 0.02, 0.006, 0.004], dtype=torch.float64)
    n = 300000
    x = sample_categorical(p.expand(n, 4), bits=53, generator=gen(53))
    obs = torch.bincount(x, minlength=4).double().numpy()
    assert chisquare(obs, n * p.numpy()).pvalue > 1e-3
    assert torch.allclose(gumbel_max_probs(p, 53), p, atol=1e-12)


def test_masked_step_law_is_the_conditional_of_the_race_against_the_mask():
    tok = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    law, rate = masked_step_law(tok, 0.3, 53)
    torch.testing.assert_close(law, tok, rtol=1e-10, atol=1e-14)
    assert rate == pytest.approx(0.3, rel=1e-10)
    q = 1e-6
    law24, rate24 = masked_step_law(tok, q, 24)
    pe = gumbel_max_probs(torch.cat([q * tok, torch.tensor([1 - q], dtype=torch.float64)]), 24)
    torch.testing.assert_close(law24, pe[:-1] / pe[:-1].sum())
    assert rate24 == pytest.approx(float(pe[:-1].sum()))
    assert float(entropy(law24)) < float(entropy(tok)) - 0.03


def test_zipf_is_normalised_and_decreasing():
    p = zipf(50, 1.1)
    assert p.shape == (50,) and abs(float(p.sum()) - 1) < 1e-12 and (p.diff() < 0).all()
    torch.testing.assert_close(p[0] / p[9], torch.tensor(10.0**1.1, dtype=torch.float64))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="bits"):
        sample_categorical(torch.tensor([0.5, 0.5]), bits=64)
    with pytest.raises(TypeError, match="bits"):
        sample_categorical(torch.tensor([0.5, 0.5]), bits=24.0)
    with pytest.raises(ValueError, match="probs"):
        gumbel_max_probs(torch.tensor([0.5, 0.6]), 8)
    with pytest.raises(ValueError, match="q must"):
        masked_step_law(torch.tensor([0.5, 0.5]), 0.0, 24)
    with pytest.raises(ValueError, match="vocab_size"):
        zipf(1)
    with pytest.raises(TypeError, match="vocab_size"):
        zipf(True)


def test_total_variation_is_the_largest_difference_over_events():
    import itertools

    g = gen(5)
    p = torch.rand(3, 5, generator=g, dtype=torch.float64)
    q = torch.rand(3, 5, generator=g, dtype=torch.float64)
    p, q = p / p.sum(1, keepdim=True), q / q.sum(1, keepdim=True)
    events = [list(A) for r in range(6) for A in itertools.combinations(range(5), r)]
    brute = torch.stack([torch.stack([(p[:, A].sum(1) - q[:, A].sum(1)).abs() for A in events]).max(0).values])[0]
    assert torch.allclose(total_variation(p, q), brute, atol=1e-15)
    assert float(total_variation(p[0], p[0])) == 0.0
    assert float(total_variation([1.0, 0.0], [0.0, 1.0])) == 1.0
    with pytest.raises(ValueError, match="same number of outcomes"):
        total_variation(p, q[:, :4] / q[:, :4].sum(1, keepdim=True))


def test_entropy_and_total_variation_check_their_laws():
    """Issue 21 (property tests): NaN, negative or unnormalised laws gave a number; a bad dim an IndexError."""
    p = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)
    with pytest.raises(ValueError, match="p must be finite and non-negative"):
        entropy(torch.tensor([float("nan"), 1.0]))
    with pytest.raises(ValueError, match="p must sum to 1"):
        entropy([0.5, 0.6])
    with pytest.raises(ValueError, match="q must be finite and non-negative"):
        total_variation(p, torch.tensor([[1.5, -0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="dim must be an axis of p"):
        entropy(p, dim=2)
    with pytest.raises(TypeError, match="dim must be an integer"):
        entropy(p, dim=0.5)
    assert torch.allclose(entropy(p.T, dim=0), entropy(p))  # along another axis
