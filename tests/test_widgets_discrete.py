"""Lesson 08-10 plots, sliders and exercise checkers: sliders redraw, checkers grade."""

import matplotlib
import pytest
import torch

from diffedu import Gaussian, GaussianMixture
from diffedu import discrete as dd
from diffedu import exercises_discrete as ex
from diffedu import interpolants as di
from diffedu import widgets_discrete as dw

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def chain():
    trans = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]], dtype=torch.float64)
    return dd.SequenceDistribution.markov_chain(torch.tensor([0.5, 0.3, 0.2]), trans, 3)


def bar_heights(fig):
    return [round(p.get_height(), 12) for p in fig.axes[0].patches]


def line_data(fig, k=1):
    return fig.axes[0].lines[k].get_ydata().copy()


def test_truncation_widget_redraws_with_each_slider():
    w = dw.truncation_widget(vocab_size=4, log10_q=-6.5)
    assert w.auto_display  # the returned (non-pyplot) figure is shown only with auto_display
    first = bar_heights(w.result)
    assert len(first) == 3 * 4
    w.children[1].value = -4.0  # log10 q: the float32 bars move toward the ideal ones
    second = bar_heights(w.result)
    assert second != first
    ideal = torch.tensor(second[:4])
    f32 = torch.tensor(second[4:8])
    assert (f32 - ideal).abs().max() < (torch.tensor(first[4:8]) - ideal).abs().max()
    w.children[0].value = 7  # vocabulary size
    assert len(bar_heights(w.result)) == 3 * 7


def test_float32_law_is_colder_than_the_ideal():
    tok = dw.zipf_tokens(6)
    eff24, _ = dw.unmasked_token_law(tok, 1e-7, 24)
    eff53, rate53 = dw.unmasked_token_law(tok, 1e-7, 53)
    assert float(dd.entropy(eff24)) < float(dd.entropy(tok)) - 0.1
    assert torch.allclose(eff53, tok, atol=1e-12) and abs(rate53 - 1e-7) < 1e-18
    assert eff24[0] > tok[0]  # the likeliest token gains


def test_stepwise_widget_moves_toward_the_target(chain):
    w = dw.stepwise_widget(chain, steps=2)
    assert w.auto_display
    gap2 = abs(line_data(w.result) - line_data(w.result, 0)).sum()
    w.children[0].value = 40
    gap40 = abs(line_data(w.result) - line_data(w.result, 0)).sum()
    assert gap40 < gap2 / 5


def test_elbo_integrands_collapse_in_alpha(chain):
    axs = dw.plot_elbo_integrands(chain, chain.seqs[5], [dd.LinearMask(), dd.CosineMask()])
    lt, lc = axs[0].lines[0].get_ydata(), axs[0].lines[1].get_ydata()
    assert abs(lt - lc).max() > 0.1  # against t they differ
    (a0, y0), (a1, y1) = ((ln.get_xdata(), ln.get_ydata()) for ln in axs[1].lines)
    order = a1.argsort()
    import numpy as np
    assert np.allclose(np.interp(a0, a1[order], y1[order]), y0, atol=2e-3)  # against alpha: one curve


def test_interpolant_widget_redraws_with_eps_and_gamma():
    r0 = GaussianMixture([0.5, 0.5], [[-1.5, 0.0], [1.5, 0.0]], [[0.2, 0.2], [0.2, 0.2]])
    r1 = Gaussian([0.0, 0.0], [1.0, 1.0])
    w = dw.interpolant_widget(r0, r1, eps=0.0, a=0.0)
    assert w.auto_display
    p0 = w.result.axes[0].lines[0].get_xydata().copy()
    w.children[0].value = 1.5
    p1 = w.result.axes[0].lines[0].get_xydata().copy()
    assert abs(p0 - p1).max() > 0.05
    w.children[1].value = 1.0
    p2 = w.result.axes[0].lines[0].get_xydata().copy()
    assert abs(p2 - p1).max() > 0.05


def test_checkers_grade_and_accept_unanswered(chain, capsys):
    assert ex.check_first_hit_alpha_prob(0.8**4, 4, 0.2)
    assert not ex.check_first_hit_alpha_prob(0.2**4, 4, 0.2)
    assert ex.check_first_hit_alpha_prob(None, 4, 0.2).status == "unanswered"
    m = chain.marginals()
    x = torch.tensor([0, 1, 2])
    good = float(sum(torch.log(m[i, v]) for i, v in enumerate(x.tolist())))
    assert ex.check_marginal_elbo(good, chain, x)
    assert not ex.check_marginal_elbo(float(chain.log_prob(x[None])), chain, x)
    assert ex.check_one_step_prob(float(m[0, 0] * m[1, 1] * m[2, 2]), chain, x)
    br = di.GaussianMixtureInterpolant(di.LinearInterpolant(0.5), Gaussian([1.0], [0.5]), Gaussian([0.0], [1.0]))
    assert ex.check_interpolant_variance(0.25 * 0.5 + 0.25 + 0.5 * 0.25, br, 0.5)
    xv = torch.tensor([[0.3]], dtype=torch.float64)
    assert ex.check_interpolant_velocity(br.velocity(xv, 0.3), br, xv, 0.3)
    assert not ex.check_interpolant_velocity(-br.velocity(xv, 0.3), br, xv, 0.3)
    g = Gaussian([0.0, 0.0], [[0.5, 0.1], [0.1, 0.3]])
    from diffedu import VP
    from diffedu.calculus import divergence
    from diffedu.flows import pf_ode_velocity
    xg = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    div = divergence(lambda z: pf_ode_velocity(g.bind(VP()).denoiser, VP(), z, 0.4), xg)
    assert torch.allclose(div, div[0].expand(3))  # constant in x for Gaussian data
    assert ex.check_pf_divergence(float(div[0]), g, VP(), 0.4)
    assert ex.check_hutchinson_term(1 - 2 - 3 + 4, [[1, 2], [3, 4]], [1, -1])
    assert not ex.check_hutchinson_term(5, [[1, 2], [3, 4]], [1, -1])
    assert "not answered yet" in capsys.readouterr().out


def test_likelihood_widget_error_shrinks_with_tolerance():
    from diffedu import VP
    mix = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [[0.3, 0.2], [0.2, 0.3]])
    pts = torch.stack([torch.linspace(-2, 2, 5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)], 1)
    w = dw.likelihood_widget(mix, VP(), pts, log10_rtol=-2.0)
    assert w.auto_display
    gap = lambda f: abs(f.axes[0].lines[1].get_ydata() - f.axes[0].lines[0].get_ydata()).max()
    coarse = gap(w.result)
    w.children[0].value = -6.0
    assert gap(w.result) < coarse / 100 and gap(w.result) < 1e-4
    w.children[1].value = 1  # one Hutchinson probe: noisy
    assert gap(w.result) > 1e-3
