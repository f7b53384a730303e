"""diffedu.plotting_fp: plots draw the data they are given; sliders redraw with new data."""

import numpy as np
import pytest
import torch

from diffedu import VP, GaussianMixture
from diffedu import fokker_planck as fp
from diffedu import plotting_fp as pf
from diffedu.datasets import two_gaussians


def _images(fig):
    return [im.get_array().copy() for ax in fig.axes for im in ax.get_images()]


def _offsets(fig):
    return [c.get_offsets().copy() for ax in fig.axes for c in ax.collections]


def test_plot_fp_grid_1d_draws_both_curves():
    g = np.linspace(-3, 3, 61)
    mix = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.1], [0.1]])
    ts = [0.0, 0.3]
    P = fp.solve_fp_grid(fp.density_on_grid(mix, VP(), g, 0.0), g, VP(), ts)
    ex = np.stack([fp.density_on_grid(mix, VP(), g, t) for t in ts])
    ax = pf.plot_fp_grid_1d(g, P, ex, ts)
    assert len(ax.lines) == 4
    np.testing.assert_allclose(ax.lines[1].get_ydata(), ex[0])


def test_fp_grid_widget_redraws():
    w = pf.fp_grid_widget(two_gaussians(), VP(), n=31, n_times=4)
    assert w.auto_display, "interactive shows a returned (non-pyplot) figure only with auto_display"
    first = _images(w.result)
    w.children[0].value = 3
    second = _images(w.result)
    assert len(first) == len(second) == 2
    assert not np.allclose(first[0], second[0])


def test_perturbation_widget_redraws_and_gap_grows():
    w = pf.perturbation_widget(two_gaussians(), VP(), n=200, ode_steps=20, sde_steps=40)
    assert w.auto_display
    w.children[1].value = 1.0
    big = _offsets(w.result)
    gap_big = float(w.result._suptitle.get_text().split("W2(ODE, SDE) = ")[1].split(",")[0])
    w.children[1].value = 0.0
    small = _offsets(w.result)
    gap_small = float(w.result._suptitle.get_text().split("W2(ODE, SDE) = ")[1].split(",")[0])
    assert not np.allclose(big[1], small[1])  # the ODE samples moved
    assert gap_big > 2 * gap_small


def test_penalty_widget_shows_the_chosen_report():
    reps = {}
    for size in (0.0, 0.5):
        score = fp.perturb_score(two_gaussians().bind(VP()).score, "scale", size)
        from diffedu.flows import denoiser_from_score
        reps[size] = fp.ode_sde_gap(denoiser_from_score(score, VP()), VP(), two_gaussians().sample, 100,
                                    ode_steps=10, sde_steps=20, generator=torch.Generator().manual_seed(0))
    w = pf.penalty_widget(reps)
    assert w.auto_display
    np.testing.assert_allclose(_offsets(w.result)[1], reps[0.0].x_ode.numpy())
    w.children[0].value = 0.5
    np.testing.assert_allclose(_offsets(w.result)[1], reps[0.5].x_ode.numpy())
    with pytest.raises(TypeError, match="reports"):
        pf.penalty_widget({0.0: "not a report"})


def test_gap_vs_residual_and_hutchinson_plots():
    ax = pf.plot_gap_vs_residual({"scale": [(0.0, 0.1), (0.2, 0.5)]}, 0.15)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.1, 0.5])
    ax = pf.plot_hutchinson({"rademacher": torch.tensor([1.0, 3.0]), "gaussian": torch.randn(50)}, 2.0)
    assert ax.lines[0].get_xdata()[0] == 2.0
