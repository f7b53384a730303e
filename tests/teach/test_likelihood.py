"""diffedu.teach.likelihood (lesson 11): the likelihood slider's error follows the solver tolerance
and the estimator, and the divergence and Hutchinson checkers grade."""

import matplotlib.figure
import numpy as np
import pytest
import torch

from diffedu import VP, Gaussian, GaussianMixture
from diffedu.calculus import divergence
from diffedu.flows import pf_ode_velocity
from diffedu.teach import likelihood as lesson

MIX = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [[0.3, 0.2], [0.2, 0.3]])
PTS = torch.stack([torch.linspace(-2, 2, 5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)], 1)


def gap(ax):
    return abs(ax.lines[1].get_ydata() - ax.lines[0].get_ydata()).max()


def test_likelihood_widget_error_shrinks_with_tolerance():
    w = lesson.likelihood_widget(MIX, VP(), PTS, log10_rtol=-2.0)
    assert w.auto_display
    assert [c.description for c in w.children[:2]] == ["log10 rtol", "probes (0 = exact)"]
    coarse = gap(w.result.axes[0])
    w.children[0].value = -6.0
    assert gap(w.result.axes[0]) < coarse / 100 and gap(w.result.axes[0]) < 1e-4
    w.children[1].value = 1  # one Hutchinson probe: noisy
    assert gap(w.result.axes[0]) > 1e-3
    assert "Hutchinson, 1 probe(s)" in w.result.axes[0].get_title()


def test_plot_draws_the_exact_density_at_t_eps_into_the_given_axes():
    ax = matplotlib.figure.Figure().subplots()
    p = VP()
    assert lesson.plot_ode_likelihood(MIX, p, PTS, ax, log10_rtol=-6.0) is ax
    np.testing.assert_allclose(ax.lines[0].get_ydata(), MIX.log_prob(PTS, p.t_eps, p).numpy())
    assert "exact divergence" in ax.get_title()
    with pytest.raises(ValueError, match="n_probes"):
        lesson.plot_ode_likelihood(MIX, p, PTS, ax, n_probes=-1)


def test_pf_divergence(capsys):
    g = Gaussian([0.0, 0.0], [[0.5, 0.1], [0.1, 0.3]])
    xg = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    div = divergence(lambda z: pf_ode_velocity(g.bind(VP()).denoiser, VP(), z, 0.4), xg)
    assert torch.allclose(div, div[0].expand(3))  # constant in x for Gaussian data
    assert lesson.check_pf_divergence(float(div[0]), g, VP(), 0.4)
    assert not lesson.check_pf_divergence(-float(div[0]), g, VP(), 0.4)
    assert lesson.check_pf_divergence(None, g, VP(), 0.4).status == "unanswered"
    assert "not answered yet" in capsys.readouterr().out


def test_hutchinson_term(capsys):
    assert lesson.check_hutchinson_term(1 - 2 - 3 + 4, [[1, 2], [3, 4]], [1, -1])
    assert lesson.check_hutchinson_term(1 + 2 + 3 + 4, [[1, 2], [3, 4]], [1, 1])
    assert not lesson.check_hutchinson_term(5, [[1, 2], [3, 4]], [1, -1])
    assert lesson.check_hutchinson_term(..., [[1, 2], [3, 4]], [1, -1]).status == "unanswered"
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(ValueError, match="jacobian"):
        lesson.check_hutchinson_term(1.0, [1, 2], [1, -1])
    with pytest.raises(ValueError, match="probe"):
        lesson.check_hutchinson_term(1.0, [[1, 2], [3, 4]], [1, -1, 1])


def test_the_lesson_calls_what_all_lists():
    for name in lesson.__all__:
        assert callable(getattr(lesson, name))


def test_probe_spread_and_bits_plots_draw_their_data():
    ax = lesson.plot_probe_spread([1, 4, 16], [0.4, 0.2, 0.1], [0.02, 0.01, 0.005], -0.5)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.4, 0.2, 0.1])      # fitted line through the first point
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.4, 0.2, 0.1])      # the 1/sqrt(P) reference
    ax = lesson.plot_bits_per_dim({"a": (3.0, 0.1), "b": (2.5, 0.05)}, uniform=4.0)
    assert [round(p.get_width(), 6) for p in ax.patches] == [3.0, 2.5]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert ax.lines[-1].get_xdata()[0] == 4.0


def test_check_hutchinson_estimator(capsys):
    def right(f, x, probes):
        x = x.detach().requires_grad_(True)
        y = f(x)
        return torch.stack([(torch.autograd.grad((y * z).sum(), x, retain_graph=True)[0] * z).sum(1)
                            for z in probes]).mean(0).detach()

    def summed_wrong(f, x, probes):          # forgets the average over probes: sums them
        return right(f, x, probes) * probes.shape[0]

    assert lesson.check_hutchinson_estimator(right)
    assert not lesson.check_hutchinson_estimator(summed_wrong)
    assert lesson.check_hutchinson_estimator(None).status == "unanswered"
    assert "not answered yet" in capsys.readouterr().out


def test_digit_points_are_dequantised_held_out_digits_and_the_cache_loads():
    from diffedu.teach import models
    _, held_out, _, _ = models.digit_split()
    y = lesson.digit_test_points()
    assert y.shape == held_out.shape == (297, 64) and y.dtype == torch.float64
    assert ((y - held_out.double()).abs() <= 1 / 32).all()           # within the bin of width 1/16
    assert torch.equal(y, lesson.digit_test_points())                  # seeded
    ll = lesson.load_digit_log_likelihoods()
    assert ll.shape == (297,) and torch.isfinite(ll).all()


def test_cached_digit_likelihoods_reject_other_settings(tmp_path):
    path = tmp_path / "ll.pt"
    torch.save({"config": {"seed": 1}, "log_p": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="DIGIT_LL_CONFIG"):
        lesson.load_digit_log_likelihoods(path)


@pytest.mark.slow
def test_recomputing_some_cached_digit_likelihoods():
    """Recomputes 24 of the 297 cached log-likelihoods with the cache's probes' seed (the cache was
    made with all 297 rows in one solve, so the adaptive steps and probes differ: Hutchinson
    estimates agree within their spread, about 0.06 bits per dimension per digit, not bit for bit)."""
    from diffedu.likelihood import bits_per_dim
    y = lesson.digit_test_points()[:24]
    new = bits_per_dim(lesson.digit_log_likelihoods(y), 64, bin_width=1 / 16)
    old = bits_per_dim(lesson.load_digit_log_likelihoods()[:24], 64, bin_width=1 / 16)
    assert float((new - old).abs().median()) < 0.15
    assert abs(float(new.mean() - old.mean())) < 0.06
