"""diffedu.teach.intrinsic_dimension (lesson 13): spectrum plots, the dimension slider, the checkers."""

import numpy as np
import pytest
import torch

from diffedu import EDM, VP
from diffedu.datasets import subspace_gaussian
from diffedu.dimension import intrinsic_dimension, normalised_spectrum
from diffedu.teach import intrinsic_dimension as lesson

DT = torch.float64


def _img_data(fig):
    out = []
    for ax in fig.axes:
        out += [np.asarray(l.get_xydata()).ravel() for l in ax.lines]
        out += [np.array([p.get_height() for p in ax.patches])]
    return np.concatenate(out)


def test_dimension_widget_redraws_and_reports_the_estimate():
    w = lesson.dimension_widget(6)
    assert w.auto_display
    assert "estimated k = 3" in w.result.axes[0].get_title()
    before = _img_data(w.result)
    w.children[1].value = 5      # k: a hyperplane in R^6
    assert "estimated k = 5" in w.result.axes[0].get_title()
    assert not np.array_equal(before, _img_data(w.result))
    low = min(p.get_height() for p in w.result.axes[0].patches)
    w.children[0].value = 0.5    # log10 sigma: large noise, the tangent values climb towards 1
    assert "sigma = 3.16" in w.result.axes[0].get_title()
    assert min(p.get_height() for p in w.result.axes[0].patches) > 0.5 > 100 * low
    with pytest.raises(ValueError, match="D must be"):
        lesson.dimension_widget(1)


def test_spectra_plot_draws_the_core_spectra_against_the_noise_level():
    g = subspace_gaussian(5, 2, seed=3)
    x0 = g.sample(4, generator=torch.Generator().manual_seed(0), dtype=DT)
    score = g.bind(EDM()).score
    ax = lesson.plot_spectra_vs_noise(score, x0, EDM(), [0.01, 0.1, 1.0])
    assert len(ax.lines) == 5
    assert np.allclose(ax.lines[0].get_xdata(), [0.01, 0.1, 1.0])  # EDM: sigma / alpha = t
    mu = normalised_spectrum(score, x0, 0.1, EDM()).median(0).values
    assert np.allclose([ln.get_ydata()[1] for ln in ax.lines], mu.numpy())
    vp = lesson.plot_spectra_vs_noise(g.bind(VP()).score, x0, VP(), [0.3])
    assert np.allclose(vp.lines[0].get_xdata(), [float(VP().sigma(0.3) / VP().alpha(0.3))])


def test_spectrum_plot_marks_the_largest_gap():
    g = subspace_gaussian(6, 5, seed=1)
    x0 = g.sample(8, generator=torch.Generator().manual_seed(0), dtype=DT)
    est = intrinsic_dimension(g.bind(EDM()).score, x0, 0.01, EDM())
    ax = lesson.plot_spectrum(est, k_true=5)
    assert ax.get_title() == "estimated k = 5, true k = 5"
    assert np.allclose([p.get_height() for p in ax.patches], est.spectra.median(0).values.numpy())
    assert ax.lines[-1].get_xdata()[0] == 6 - 5 + 0.5  # between the one normal and the tangent values
    with pytest.raises(TypeError, match="est must be"):
        lesson.plot_spectrum("no")


def test_checkers(capsys):
    assert lesson.check_tangent_level(0.01 / 1.01, 1.0, 0.1)
    assert not lesson.check_tangent_level(0.01, 1.0, 0.1)
    assert lesson.check_tangent_level(None, 1.0, 0.1).status == "unanswered"
    spec = [1.0, 0.9, 1e-3, 1e-4]
    assert lesson.check_dimension(2, spec)
    fb = lesson.check_dimension(2, [1.0, 1e-3, 1e-4, 1e-5])
    assert not fb and "normal directions" not in fb.message
    fb = lesson.check_dimension(1, [1.0, 1e-3, 1e-4, 1e-5])
    assert not fb and "normal directions" in fb.message and "D minus" not in fb.message  # a step, not the answer
    assert lesson.check_dimension(4, [0.02, 0.01, 0.005, 0.001])  # full dimension: the gap from 1 to the top
    assert not lesson.check_dimension("two", spec)
    assert lesson.check_dimension(..., spec).status == "unanswered"
    out = capsys.readouterr().out
    assert out.count("\n") >= 9
