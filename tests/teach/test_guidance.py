"""diffedu.teach.guidance (lesson 15): the sliders redraw, the tables hold the lesson's numbers'
shapes, the checkers accept right answers and name wrong ones."""

import numpy as np
import torch

from diffedu import VP, Gaussian, GaussianMixture
from diffedu import guidance as G
from diffedu.teach import guidance as lesson

F64 = torch.float64
MIX = GaussianMixture([0.3, 0.3, 0.4], [[-2.0, 1.0], [0.0, 0.3], [1.5, -0.8]],
                      [[[0.3, 0.0], [0.0, 0.3]], [[0.35, 0.1], [0.1, 0.25]], [[0.5, -0.15], [-0.15, 0.4]]])
MODEL = G.ClassConditional(MIX, [0, 0, 1])


def x_T(n=200, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _offsets(fig, i):
    return np.asarray(fig.axes[i].lines[0].get_xydata())


def test_cfg_widget_redraws_with_w():
    w = lesson.cfg_widget(MODEL, 0, VP(), x_T())
    assert w.children[0].description == "guidance weight w" and w.children[0].value == 1.0
    before = _offsets(w.result, 0)
    w.children[0].value = 4.0
    after = _offsets(w.result, 0)
    assert not np.allclose(before, after)
    assert "w = 4" in w.result.axes[0].get_title() and "reverse SDE" in w.result.axes[1].get_title()


def test_interval_widget_redraws_with_the_interval():
    w = lesson.interval_widget(MODEL, 0, 4.0, VP(), x_T())
    first = _offsets(w.result, 0)
    w.children[0].value = "middle (0.2 to 1)"
    assert not np.allclose(first, _offsets(w.result, 0))
    assert "middle" in w.result.axes[0].get_title()


def test_tables_and_stats():
    vp = VP()
    table = lesson.tilted_distances(MODEL, 0, [1.0, 3.0], vp, x_T(300), repeats=2, ode_steps=10, sde_steps=20)
    text = lesson.format_distances(table, 300)
    assert len(text.splitlines()) == 4 and "PF-ODE" in text
    st = table[3.0]["PF-ODE"][1]
    assert 0 <= float(st["modes"][0]) <= 1 and abs(float(st["modes"].sum()) - 1) < 1e-9
    assert 0 <= st["other"] <= 1 and st["diversity"] > 0
    samples = lesson.interval_samples(MODEL, 0, 3.0, vp, x_T(100))
    assert set(samples) == set(lesson.INTERVALS)
    assert torch.equal(samples["no guidance (w = 1)"],
                       lesson.guided_samples(MODEL, 0, 1.0, vp, x_T(100), samplers=("PF-ODE",))["PF-ODE"])
    assert "first mode" in lesson.format_interval_table(MODEL, 0, samples)


def test_plot_classes_and_the_digit_model():
    axs = lesson.plot_classes(MODEL, VP(), [1.0, 0.1], n=30)
    assert len(axs) == 2 and axs[0].get_title() == "sigma/alpha = 1"
    images = torch.rand(60, 64, generator=torch.Generator().manual_seed(1), dtype=F64)
    labels = torch.arange(60) % 10
    m = lesson.digit_class_model(images, labels)
    assert m.n_classes == 10 and torch.allclose(m.prior, torch.full((10,), 0.1, dtype=F64))


def test_checkers():
    right = lambda D, log_classifier, process, x, t, w: G.classifier_guidance(D, log_classifier, process, w)(x, t)
    assert lesson.check_classifier_guidance(right)
    no_grad = lambda D, log_classifier, process, x, t, w: D(x, t)
    assert lesson.check_classifier_guidance(no_grad).status == "wrong"
    assert lesson.check_classifier_guidance(None).status == "unanswered"
    cond, uncond = Gaussian([1.0], [0.5]), Gaussian([0.0], [2.0])
    q = G.tilted_gaussian(cond, uncond, 3.0)
    assert lesson.check_tilted_gaussian(float(q.mean), float(q.cov), cond, uncond, 3.0)
    assert not lesson.check_tilted_gaussian(float(q.mean), 0.5, cond, uncond, 3.0)
    assert lesson.check_tilted_gaussian(float(q.mean), None, cond, uncond, 3.0).status == "unanswered"
