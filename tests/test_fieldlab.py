"""diffedu.fieldlab and diffedu.exercises_fields: lesson 11/12 plots, widgets, cached models, checkers."""

import math

import matplotlib.figure
import numpy as np
import pytest
import torch

from diffedu import EDM, VP, Gaussian
from diffedu import exercises_fields as exf
from diffedu import fieldlab as fl
from diffedu import fields as F
from diffedu.metrics import relative_score_error

DT = torch.float64


def _img_data(fig):
    """Everything drawn: line data, quiver vectors, bar heights (to see that a slider redrew)."""
    out = []
    for ax in fig.axes:
        out += [np.asarray(l.get_xydata()).ravel() for l in ax.lines]
        out += [np.concatenate([np.ravel(q.U), np.ravel(q.V)]) for q in ax.collections if hasattr(q, "U")]
        out += [np.array([p.get_height() for p in ax.patches])]
    return np.concatenate(out)


# --- cached models --------------------------------------------------------------------------
def _model_errors(free, energy):
    data, proc = fl.lesson11_data()
    ts = [0.3, 0.5, 0.8]  # DSM pins the score down at t >= 0.3 (small-t targets are mostly noise)
    gen = torch.Generator().manual_seed(1)
    err = [relative_score_error(lambda x, t, m=m: m.score(x.float(), t).double(), data, proc, ts, n=500,
                                generator=gen) for m in (free, energy)]
    return err


def test_cached_lesson11_models_load_and_fit_the_data():
    free, energy = fl.lesson11_models()
    e_free, e_energy = _model_errors(free, energy)
    assert e_free.max() < 0.15 and e_energy.max() < 0.15, (e_free, e_energy)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    assert F.asymmetry(energy.score, x, 0.1).max() < 1e-5       # float32 rounding
    assert F.asymmetry(free.score, x, 0.1).median() > 1e-3


@pytest.mark.slow
def test_retrained_lesson11_models_match_the_cache():
    """Retrains both models (about a minute on 2 cores) and checks they fit as well as the cache;
    run ``fl.train_lesson11_models(save=True)`` when this fails after a change to training."""
    new = _model_errors(*fl.train_lesson11_models())
    old = _model_errors(*fl.lesson11_models())
    for a, b in zip(new, old):
        assert a.max() < 0.15
        assert torch.allclose(a, b, rtol=0.5, atol=0.02)


# --- plots and widgets ----------------------------------------------------------------------
def test_plot_decomposition_draws_three_panels():
    grid = F.Grid2D((-2.0, 2.0), None, 21)
    A = F.rotation_matrix(2)
    dec = F.decompose(lambda x: -x + x @ A.T, grid)
    axs = fl.plot_decomposition(dec)
    assert len(axs) == 3 and all(ax.collections for ax in axs)
    with pytest.raises(TypeError, match="dec must be"):
        fl.plot_decomposition("no")


def test_gauge_summary_and_widget_redraws():
    g = Gaussian([0.3, -0.2], [[1.0, 0.45], [0.45, 0.3]])
    s = fl.gauge_flow_summary(g, VP(), 1.0, rtol=1e-6)
    assert s["gauge"][1] < 1e-4 and s["exact"][1] == 0 and s["plain"][1] > 0.05
    w = fl.gauge_widget(g, VP())
    assert isinstance(w.result, matplotlib.figure.Figure) and w.auto_display  # shown in JupyterLab
    before = _img_data(w.result)
    w.children[0].value = 2.0      # strength
    after = _img_data(w.result)
    assert before.shape != after.shape or not np.allclose(before, after)
    with pytest.raises(TypeError, match="gaussian must be"):
        fl.gauge_widget(Gaussian([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]), VP())


def test_dimension_widget_redraws_and_reports_the_estimate():
    w = fl.dimension_widget(6)
    assert w.auto_display
    assert "estimated k = 3" in w.result.axes[0].get_title()
    before = _img_data(w.result)
    w.children[1].value = 5      # k: a hyperplane in R^6
    assert "estimated k = 5" in w.result.axes[0].get_title()
    assert not np.array_equal(before, _img_data(w.result))
    with pytest.raises(ValueError, match="D must be"):
        fl.dimension_widget(1)


def test_spectra_plot_and_subspace_gaussian():
    g = fl.subspace_gaussian(5, 2, seed=3)
    assert torch.linalg.matrix_rank(g.cov) == 2
    x0 = g.sample(4, generator=torch.Generator().manual_seed(0), dtype=DT)
    ax = fl.plot_spectra_vs_noise(lambda x, t: g.score(x, t, EDM()), x0, EDM(), [0.01, 0.1, 1.0])
    assert len(ax.lines) == 5
    with pytest.raises(ValueError, match="1 <= k <= D"):
        fl.subspace_gaussian(3, 4)


# --- checkers -------------------------------------------------------------------------------
def test_checkers(capsys):
    M = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    assert exf.check_asymmetry(float(torch.linalg.norm(M - M.T) / torch.linalg.norm(M)), M)
    assert not exf.check_asymmetry(0.5, M)
    assert exf.check_asymmetry(None, M).status == "unanswered"
    assert exf.check_circulation_of_rotation(2 * 0.5 * math.pi * 4, 0.5, 2.0)
    C = torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=DT)
    A = F.rotation_matrix(2)
    assert exf.check_gauge_matrix(A @ torch.linalg.inv(C), C)
    fb = exf.check_gauge_matrix(A, C)
    assert not fb and "plain rotation" in fb.message
    assert not exf.check_gauge_matrix(torch.zeros(2, 2), C)
    assert not exf.check_gauge_matrix(torch.eye(3), C)
    assert exf.check_tangent_level(0.01 / 1.01, 1.0, 0.1)
    spec = [1.0, 0.9, 1e-3, 1e-4]
    assert exf.check_dimension(2, spec)
    fb = exf.check_dimension(2 + 0, [1.0, 1e-3, 1e-4, 1e-5])
    assert not fb and "normal directions" not in fb.message
    fb = exf.check_dimension(1, [1.0, 1e-3, 1e-4, 1e-5])
    assert not fb and "normal directions" in fb.message
    assert exf.check_dimension(..., spec).status == "unanswered"
    out = capsys.readouterr().out
    assert out.count("\n") >= 12
