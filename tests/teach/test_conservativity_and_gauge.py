"""diffedu.teach.conservativity_and_gauge (lesson 12): cached models, plots, the gauge slider and
the checkers."""

import math

import matplotlib.figure
import numpy as np
import pytest
import torch

from diffedu import VP, Gaussian
from diffedu import conservativity as dc
from diffedu import gauge as dg
from diffedu import hodge as dh
from diffedu.gaussian import cov_ellipse
from diffedu.metrics import relative_score_error
from diffedu.teach import conservativity_and_gauge as lesson

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
    data, proc = lesson.gauge_data()
    ts = [0.3, 0.5, 0.8]  # DSM pins the score down at t >= 0.3 (small-t targets are mostly noise)
    gen = torch.Generator().manual_seed(1)
    return [relative_score_error(lambda x, t, m=m: m.score(x.float(), t).double(), data, proc, ts, n=500,
                                 generator=gen) for m in (free, energy)]


def test_cached_gauge_models_load_and_fit_the_data():
    free, energy = lesson.gauge_models()
    e_free, e_energy = _model_errors(free, energy)
    assert e_free.max() < 0.15 and e_energy.max() < 0.15, (e_free, e_energy)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    assert dc.asymmetry(energy.score, x, 0.1).max() < 1e-5       # float32 rounding
    assert dc.asymmetry(free.score, x, 0.1).median() > 1e-3
    assert not any(p.requires_grad for p in free.parameters())


def test_models_trained_with_other_settings_are_refused(monkeypatch):
    monkeypatch.setitem(lesson.GAUGE_CONFIG, "steps", 1)
    with pytest.raises(ValueError, match="retrain it"):
        lesson.gauge_models()


@pytest.mark.slow
def test_retrained_gauge_models_match_the_cache():
    """Retrains both models (about a minute on 2 cores) and checks they fit as well as the cache;
    run ``lesson.train_gauge_models(save=True)`` when this fails after a change to training."""
    new = _model_errors(*lesson.train_gauge_models())
    old = _model_errors(*lesson.gauge_models())
    for a, b in zip(new, old):
        assert a.max() < 0.15
        assert torch.allclose(a, b, rtol=0.5, atol=0.02)


# --- plots and widgets ----------------------------------------------------------------------
def test_plot_decomposition_draws_three_panels():
    grid = dh.Grid2D((-2.0, 2.0), None, 21)
    A = dg.rotation_matrix(2)
    dec = dh.decompose(lambda x: -x + x @ A.T, grid)
    axs = lesson.plot_decomposition(dec)
    assert len(axs) == 3 and all(ax.collections for ax in axs)
    q = next(c for c in axs[1].collections if hasattr(c, "U"))  # the gradient part's arrows
    assert np.allclose(np.ravel(q.U), dec.gradient[::5, ::5, 0].numpy().ravel())   # p = 1: nothing masked
    log_p = lambda y: -2.0 * (y**2).sum(1)                       # noqa: E731  p ~ 0 near the corners
    dec_p = dh.decompose(lambda x: -x + x @ A.T, grid, log_p=log_p)
    axs = lesson.plot_decomposition(dec_p, p_min=1e-3)
    q = next(c for c in axs[2].collections if hasattr(c, "U"))  # the remainder's arrows
    p = dec_p.p[::5, ::5].numpy() / float(dec_p.p.max())
    hidden, keep = np.ma.getmaskarray(np.ma.masked_array(q.U, mask=q.Umask)).ravel(), np.ravel(p) >= 1e-3
    assert (~keep).any() and keep.any() and np.array_equal(hidden, ~keep)      # no arrow where p < 1e-3
    assert np.allclose(np.ma.getdata(q.U).ravel()[keep], dec_p.remainder[::5, ::5, 0].numpy().ravel()[keep])
    with pytest.raises(TypeError, match="dec must be"):
        lesson.plot_decomposition("no")


def test_plot_cov_ellipse_draws_the_core_ellipse():
    C = torch.tensor([[1.0, 0.45], [0.45, 0.3]], dtype=DT)
    ax = lesson.plot_cov_ellipse(C, mean=(0.3, -0.2), color="k")
    assert np.allclose(ax.lines[0].get_xydata(), cov_ellipse(C, (0.3, -0.2)).numpy())


def test_gauge_widget_redraws_and_shows_the_core_summary():
    g = Gaussian([0.3, -0.2], [[1.0, 0.45], [0.45, 0.3]])
    w = lesson.gauge_widget(g, VP())
    assert isinstance(w.result, matplotlib.figure.Figure) and w.auto_display  # shown in JupyterLab
    before = _img_data(w.result)
    w.children[0].value = 2.0      # strength
    after = _img_data(w.result)
    assert before.shape != after.shape or not np.allclose(before, after)
    s = dg.gauge_flow_summary(g, VP(), 2.0)
    legend = [t.get_text() for t in w.result.axes[2].get_legend().get_texts()]
    assert f"plain: cov error {s['plain'][1]:.1e}" in legend
    w.children[1].value = 0.5      # t / t_max: the fields are drawn at another time
    assert "t = 0.5" in w.result.axes[0].get_title()
    with pytest.raises(TypeError, match="gaussian must be"):
        lesson.gauge_widget(Gaussian([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]), VP())
    with pytest.raises(TypeError, match="process must be"):
        lesson.gauge_widget(g, "VP")


# --- checkers -------------------------------------------------------------------------------
def test_checkers(capsys):
    M = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    assert lesson.check_asymmetry(float(torch.linalg.norm(M - M.T) / torch.linalg.norm(M)), M)
    assert not lesson.check_asymmetry(0.5, M)
    assert lesson.check_asymmetry(None, M).status == "unanswered"
    assert lesson.check_circulation_of_rotation(2 * 0.5 * math.pi * 4, 0.5, 2.0)
    assert not lesson.check_circulation_of_rotation(0.5 * math.pi * 4, 0.5, 2.0)
    C = torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=DT)
    A = dg.rotation_matrix(2)
    assert lesson.check_gauge_matrix(A @ torch.linalg.inv(C), C)
    assert lesson.check_gauge_matrix(3 * A @ torch.linalg.inv(C), C)   # any multiple
    fb = lesson.check_gauge_matrix(A, C)
    assert not fb and "plain rotation" in fb.message
    assert "which matrix" in fb.message and "A C^{-1}" not in fb.message  # one step, not the answer
    fb = lesson.check_gauge_matrix(torch.eye(2), C)
    assert not fb and "not antisymmetric" in fb.message
    assert not lesson.check_gauge_matrix(torch.zeros(2, 2), C)
    assert not lesson.check_gauge_matrix(torch.eye(3), C)
    assert not lesson.check_gauge_matrix("M", C)
    assert lesson.check_gauge_matrix(..., C).status == "unanswered"
    out = capsys.readouterr().out
    assert out.count("\n") >= 12


def _gauge_defect(r, score, x, t):
    x = x.detach().requires_grad_(True)
    rx = r(x, t)
    div = sum(torch.autograd.grad(rx[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(x.shape[1]))
    return (div + (rx * score(x, t)).sum(1)).detach()


def test_gauge_defect_checker_accepts_the_method_and_catches_typical_slips(capsys):
    assert lesson.check_gauge_defect(_gauge_defect)
    assert not lesson.check_gauge_defect(lambda r, score, x, t: _gauge_defect(r, score, x, t)
                                         - (r(x, t) * score(x, t)).sum(1))          # div r alone
    assert not lesson.check_gauge_defect(lambda r, score, x, t: (r(x, t) * score(x, t)).sum(1))  # no divergence
    fb = lesson.check_gauge_defect(lambda r, score, x, t: _gauge_defect(r, score, x, t)[:, None])
    assert not fb and "shape" in fb.message
    assert lesson.check_gauge_defect(None).status == "unanswered"
    capsys.readouterr()
