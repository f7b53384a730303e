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
    red = [ln for ln in ax.lines if ln.get_color() == "C3"]
    assert len(red) == 1 and red[0].get_xdata()[0] == 6 - 5 + 0.5  # between the one normal and the tangent values
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] < 0     # the scale the rule reads, 0 in view
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


def _gap_rule(spectrum, lower=True, upper=True):
    B = spectrum.shape[0]
    parts = ([torch.ones(B, 1, dtype=spectrum.dtype)] if upper else []) + [spectrum]
    parts += [torch.zeros(B, 1, dtype=spectrum.dtype)] if lower else []
    padded = torch.cat(parts, 1)
    return spectrum.shape[1] - torch.argmax(padded[:, :-1] - padded[:, 1:], 1) - (0 if upper else 1)


def test_gap_rule_checker_accepts_the_rule_and_catches_a_missing_reference_level(capsys):
    assert lesson.check_gap_rule(_gap_rule)
    fb = lesson.check_gap_rule(lambda spectrum: _gap_rule(spectrum, lower=False))   # no dimension 0
    assert not fb and "spectrum" in fb.message
    assert not lesson.check_gap_rule(lambda spectrum: _gap_rule(spectrum, upper=False))  # no full dimension
    assert not lesson.check_gap_rule(lambda spectrum: _gap_rule(spectrum).double())      # wrong dtype
    assert lesson.check_gap_rule(None).status == "unanswered"
    capsys.readouterr()


def test_dimension_vs_noise_plot_draws_one_line_per_score():
    ax = lesson.plot_dimension_vs_noise([0.01, 0.1, 1.0], {"a": [0.0, 1.0, 0.5], "b": [1.0, 1.0, 0.0]}, k_true=2)
    assert len(ax.lines) == 2
    assert np.allclose(ax.lines[1].get_ydata(), [1.0, 1.0, 0.0])
    assert ax.get_xscale() == "log" and "k = 2" in ax.get_ylabel()


def _sphere_fractions(net, noise=(0.1, 0.2, 0.5), n=32):
    pts = lesson.sphere_training_set()[:n]
    vp = VP()
    out = []
    for r in noise:
        t = float(vp.t_of_lam(-np.log(r)))
        est = intrinsic_dimension(lambda x, t: net.score(x.float(), t).double(), pts, t, vp)
        out.append(float((est.dims == 2).double().mean()))
    return out


def test_cached_sphere_model_loads_and_reads_the_sphere_dimension():
    net = lesson.sphere_model()
    assert not any(p.requires_grad for p in net.parameters())
    assert min(_sphere_fractions(net, noise=(0.1, 0.2), n=16)) == 1.0
    pts = lesson.sphere_training_set()
    assert pts.shape == (4000, 3) and torch.allclose(pts.norm(dim=1), torch.ones(4000, dtype=DT))


def test_cached_energy_sphere_model_is_a_gradient_and_reads_the_sphere_at_fine_scales():
    net = lesson.sphere_model("energy")
    assert type(net).__name__ == "EnergyMLP" and not any(p.requires_grad for p in net.parameters())
    assert min(_sphere_fractions(net, noise=(0.02, 0.1), n=16)) == 1.0


def test_sphere_model_trained_with_other_settings_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="kind must be"):
        lesson.sphere_model("both")
    monkeypatch.setitem(lesson.SPHERE_CONFIG, "steps", 1)
    with pytest.raises(ValueError, match="SPHERE_CONFIG"):
        lesson.sphere_model()
    with pytest.raises(ValueError, match="SPHERE_CONFIG"):
        lesson.sphere_model("energy")


@pytest.mark.slow
@pytest.mark.parametrize("kind,noise", [("free", (0.04, 0.1, 0.2, 0.5)), ("energy", (0.02, 0.1, 0.5))])
def test_retrained_sphere_model_matches_the_cache(kind, noise):
    """Retrains a sphere network with the cached settings (free about 40 s, energy about a minute on
    one core) and compares its dimension readings and its score with the cache's; run ``python3 -m
    diffedu.teach.intrinsic_dimension sphere`` when this fails after a change to training."""
    new, old = lesson.train_sphere_model(kind), lesson.sphere_model(kind)
    assert np.allclose(_sphere_fractions(new, noise), _sphere_fractions(old, noise), atol=0.15)
    vp = VP()
    t = float(vp.t_of_lam(-np.log(0.1)))
    x = vp.noise(lesson.sphere_training_set()[:512].float(), t, generator=torch.Generator().manual_seed(0))[0]
    s_new, s_old = new.score(x, t).detach(), old.score(x, t).detach()
    assert float((s_new - s_old).norm(dim=1).mean() / s_old.norm(dim=1).mean()) < 0.05


def _high_reading(net, k, r, n=4):
    vp = VP()
    pts = lesson.high_sphere_sets(k)[0][:n]
    sc = lambda x, t: net.score(x.float(), t).double()  # noqa: E731
    return intrinsic_dimension(sc, pts, float(vp.t_of_lam(-np.log(r))), vp).dims.tolist()


def test_high_sphere_sets_share_one_subspace():
    a, b = lesson.high_sphere_sets(5, 2)
    assert a.shape == b.shape == (2000, 100) and not torch.equal(a, b)
    assert torch.allclose(a.norm(dim=1), torch.ones(2000, dtype=DT))
    assert int(torch.linalg.matrix_rank(torch.cat([a[:50], b[:50]]))) == 6       # one 6-D span
    assert torch.equal(lesson.high_sphere_sets(5)[0], a)


def test_cached_high_sphere_models_read_the_span_not_the_sphere():
    nets = lesson.high_sphere_models()
    assert sorted(nets) == [5, 10] and not any(p.requires_grad for p in nets[5].parameters())
    assert _high_reading(nets[5], 5, 0.3) == [6] * 4


@pytest.mark.slow
def test_retrained_high_sphere_model_matches_the_cache():
    """Retrains the k = 5 network of R^100 (about 100 s on one core) and compares its readings and
    score with the cache; ``python3 -m diffedu.teach.intrinsic_dimension sphere100`` retrains the file."""
    new, old = lesson.train_high_sphere_models((5,))[5], lesson.high_sphere_models()[5]
    for r in (0.1, 0.3, 1.0):
        assert _high_reading(new, 5, r, 8) == _high_reading(old, 5, r, 8)
    vp = VP()
    t = float(vp.t_of_lam(-np.log(0.3)))
    x = vp.noise(lesson.high_sphere_sets(5)[0][:256].float(), t, generator=torch.Generator().manual_seed(0))[0]
    s_new, s_old = new.score(x, t).detach(), old.score(x, t).detach()
    assert float((s_new - s_old).norm(dim=1).mean() / s_old.norm(dim=1).mean()) < 0.05
