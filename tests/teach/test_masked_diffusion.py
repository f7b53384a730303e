"""diffedu.teach.masked_diffusion (lesson 09): sliders redraw, plots draw the core's numbers, checkers grade."""

import numpy as np
import pytest
import torch
from scipy.integrate import trapezoid  # numpy.trapezoid needs numpy 2; the pyproject allows 1.24

from diffedu import discrete as dd
from diffedu.categorical import entropy, masked_step_law, zipf
from diffedu.teach import masked_diffusion as lesson


@pytest.fixture(scope="module")
def chain():
    trans = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]], dtype=torch.float64)
    return dd.SequenceDistribution.markov_chain(torch.tensor([0.5, 0.3, 0.2]), trans, 3)


def bar_heights(fig):
    return [round(p.get_height(), 12) for p in fig.axes[0].patches]


def line_data(fig, k=1):
    return fig.axes[0].lines[k].get_ydata().copy()


def test_truncation_widget_redraws_with_each_slider():
    w = lesson.truncation_widget(vocab_size=4, log10_q=-6.5)
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


def test_truncation_bars_are_the_core_laws():
    ax = lesson.plot_truncated_unmasking(5, -7.0, ax=None)
    heights = np.array([p.get_height() for p in ax.patches])
    assert np.allclose(heights[:5], zipf(5).numpy())
    assert np.allclose(heights[5:10], masked_step_law(zipf(5), 1e-7, 24)[0].numpy())
    assert np.allclose(heights[10:], zipf(5).numpy(), atol=1e-12)  # 53 bits: the ideal law


def test_float32_law_is_colder_than_the_ideal():
    tok = zipf(6)
    ax = lesson.plot_entropy_vs_q(tok, [-7.0, -4.0])
    h24, h53 = ax.lines[0].get_ydata(), ax.lines[1].get_ydata()
    assert h24[0] < float(entropy(tok)) - 0.1  # float32 uniforms at q = 1e-7: colder
    assert np.allclose(h53, float(entropy(tok)), atol=1e-9)


def test_stepwise_widget_moves_toward_the_target(chain):
    w = lesson.stepwise_widget(chain, steps=2)
    assert w.auto_display
    gap2 = abs(line_data(w.result) - line_data(w.result, 0)).sum()
    w.children[0].value = 40
    gap40 = abs(line_data(w.result) - line_data(w.result, 0)).sum()
    assert gap40 < gap2 / 5
    law = dd.stepwise_law(chain.denoiser, chain.V, chain.L, dd.LinearMask(), 40)
    assert f"{float(dd.total_variation(law, chain.table)):.4f}" in w.result.axes[0].get_title()
    with pytest.raises(TypeError, match="dist must be"):
        lesson.stepwise_widget("chain")


def test_elbo_integrands_collapse_in_alpha(chain):
    axs = lesson.plot_elbo_integrands(chain, chain.seqs[5], [dd.LinearMask(), dd.CosineMask()])
    assert len(axs) == 2
    lt, lc = axs[0].lines[0].get_ydata(), axs[0].lines[1].get_ydata()
    assert abs(lt - lc).max() > 0.1  # against t they differ
    (a0, y0), (a1, y1) = ((ln.get_xdata(), ln.get_ydata()) for ln in axs[1].lines)
    order = a1.argsort()
    assert np.allclose(np.interp(a0, a1[order], y1[order]), y0, atol=2e-3)  # against alpha: one curve
    # the area under the curve against t is the ELBO (the context-free denoiser by default)
    t = axs[0].lines[0].get_xdata()
    elbo = float(dd.elbo(chain.marginal_denoiser, chain.seqs[5:6], dd.LinearMask(), chain.V)[0])
    assert trapezoid(lt, t) == pytest.approx(elbo, rel=2e-2)


def test_checkers_grade_and_accept_unanswered(chain, capsys):
    assert lesson.check_first_hit_alpha_prob(0.8**4, 4, 0.2)
    assert not lesson.check_first_hit_alpha_prob(0.2**4, 4, 0.2)
    assert lesson.check_first_hit_alpha_prob(None, 4, 0.2).status == "unanswered"
    m = chain.marginals()
    x = torch.tensor([0, 1, 2])
    good = float(sum(torch.log(m[i, v]) for i, v in enumerate(x.tolist())))
    assert lesson.check_marginal_elbo(good, chain, x)
    assert not lesson.check_marginal_elbo(float(chain.log_prob(x[None])), chain, x)
    assert lesson.check_one_step_prob(float(m[0, 0] * m[1, 1] * m[2, 2]), chain, x)
    assert not lesson.check_one_step_prob(float(chain.table[chain.index(x[None])][0]), chain, x)
    assert lesson.check_one_step_prob(..., chain, x).status == "unanswered"
    assert "not answered yet" in capsys.readouterr().out


def test_the_lesson_api_is_exported():
    for name in lesson.__all__:
        assert callable(getattr(lesson, name))


# --- issue 18: section 7 (the float32 drop at V = 50,257) and exercise 4 -----------------------------
def test_first_hitting_checker():
    def right(t, n_masked, schedule, u):
        return schedule.t_of_alpha(1 - (1 - schedule.alpha(t)) * u ** (1 / n_masked))

    def linear_only(t, n_masked, schedule, u):        # right for alpha = 1 - t only
        return t * u ** (1 / n_masked)

    def last_not_first(t, n_masked, schedule, u):     # the last of n tokens, not the first
        return schedule.t_of_alpha(1 - (1 - schedule.alpha(t)) * (1 - (1 - u) ** (1 / n_masked)))

    assert lesson.check_first_hitting_time(right)
    assert not lesson.check_first_hitting_time(linear_only)
    assert not lesson.check_first_hitting_time(last_not_first)


def test_gumbel_cache_matches_its_config_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    table = lesson.load_gumbel_table()
    c = lesson.GUMBEL_CONFIG
    assert len(table["q"]["24"]) == len(c["log10_qs"]) and len(table["steps"]["53"]) == len(c["steps"])
    assert abs(table["H"] - float(entropy(zipf(c["vocab_size"], c["s"])))) < 1e-12
    ax = lesson.plot_sampler_entropy(table)
    assert len(ax.lines) == 3


@pytest.mark.slow
def test_gumbel_cache_recomputed():
    """Recompute the one-step entropies and the sampler's at N = 1, 4, 16 (both bit counts; about a
    minute on one core) and compare with the cache to 1e-9 nats."""
    new = lesson.gumbel_table(steps=[1, 4, 16])
    old = lesson.load_gumbel_table()
    for b in ("24", "53"):
        assert np.allclose(new["q"][b], old["q"][b], rtol=0, atol=1e-9)
        assert np.allclose(new["steps"][b], old["steps"][b][:3], rtol=0, atol=1e-9)
