"""diffedu.teach.memorisation (lesson 06): the slider redraws the memorising denoiser, the
checkers accept right methods and reject wrong ones, the plots draw what they say, and the caches
(data/emm_ring.npz, data/memorisation_labels.npz) load and are consistent (slow tests regenerate
two entries of each)."""

import numpy as np
import pytest
import torch

from diffedu import VP
from diffedu.memorisation import effective_model_memorisation, memorised_fraction, nn_ratio
from diffedu.teach import memorisation as lesson


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_memorisation_widget_and_checker():
    data = torch.randn(30, 2, generator=gen(), dtype=torch.float64)
    w = lesson.memorisation_widget(data, VP())
    assert w.auto_display  # the returned (non-pyplot) figure is shown only with auto_display
    assert [c.description for c in w.children[:2]] == ["M (training points)", "log10 sigma"]
    before = w.result.axes[0].collections[1].get_offsets().copy()
    w.children[1].value = 0.8  # more noise: the denoised points move towards the mean
    after = w.result.axes[0].collections[1].get_offsets()
    assert not np.allclose(before, after)
    assert "memorised" in w.result.axes[0].get_title()
    w.children[0].value = 12
    assert w.result.axes[0].get_title().startswith("M = 12,")
    assert len(w.result.axes[0].collections[2].get_offsets()) == 12
    assert lesson.check_nn_ratio(nn_ratio)
    assert not lesson.check_nn_ratio(lambda samples, train: 1 / nn_ratio(samples, train))
    assert lesson.check_nn_ratio(None).status == "unanswered"
    with pytest.raises(TypeError, match="process"):
        lesson.memorisation_widget(data, "VP")


def test_plot_memorising_denoiser_draws_into_a_given_axes():
    train = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    ax = lesson.plots.new_axes()
    assert lesson.plot_memorising_denoiser(train, VP(), -2.0, ax, n=50) is ax
    den = ax.collections[1].get_offsets()
    # at sigma/alpha = 0.01 every denoised point is a training point
    assert np.abs(np.linalg.norm(den[:, None] - train.numpy()[None], axis=-1).min(1)).max() < 1e-6
    assert ax.get_title() == "M = 3, sigma/alpha = 0.01: memorised 100%"
    with pytest.raises(TypeError, match="process"):
        lesson.plot_memorising_denoiser(train, "VP", 0.0)


def test_cached_emm_sweep_is_consistent():
    z = lesson.load_emm_ring()
    sizes, fr = z.sizes, z.fractions
    assert fr.shape == (len(z.widths), len(sizes)) and (fr >= 0).all() and (fr <= 1).all()
    assert z.config["sizes"] == sizes and z.config["widths"] == z.widths
    for row in fr:  # small sets are memorised, large ones are not
        assert row[0] >= 0.9 and row[-1] < 0.3
        assert 2 <= effective_model_memorisation(sizes, row) < 32


def test_load_emm_ring_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        lesson.load_emm_ring(tmp_path / "missing.npz")


@pytest.mark.slow
def test_cached_emm_sweep_regenerates():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import emm_sweep
    z = lesson.load_emm_ring()
    for w, m in ((32, 4), (32, 64)):
        got = emm_sweep.run_one(w, m)
        assert abs(got - z.fractions[z.widths.index(w), z.sizes.index(m)]) <= 0.1, (w, m, got)


def _baseline(train_sets, fresh):
    f = torch.tensor([memorised_fraction(x, tr) for tr, x in zip(train_sets, fresh)], dtype=train_sets.dtype)
    return torch.stack([f.mean(), f.std() / len(f) ** 0.5])


def test_check_baseline_accepts_the_method_and_rejects_slips():
    assert lesson.check_baseline(_baseline)
    pooled = lambda train_sets, fresh: torch.stack([_baseline(train_sets, fresh)[0],  # noqa: E731
                                                    _baseline(train_sets, fresh)[0] * 0])
    assert not lesson.check_baseline(pooled)
    swapped = lambda train_sets, fresh: _baseline(fresh, train_sets)  # noqa: E731
    assert not lesson.check_baseline(swapped)
    assert lesson.check_baseline(None).status == "unanswered"


def test_plot_memorisation_curves_draws_rows_baseline_and_band():
    ax = lesson.plots.new_axes()
    sizes = [2, 4, 8]
    out = lesson.plot_memorisation_curves(sizes, [[1.0, 0.8, 0.2], [1.0, 1.0, 0.5]], ["a", "b"], ax,
                                          errors=[[0.0, 0.02, 0.02], [0.0, 0.0, 0.03]], baseline=[0.3, 0.35, 0.2],
                                          baseline_se=[0.02, 0.02, 0.01])
    assert out is ax
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fresh data (a perfect model)", "a", "b"]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and np.allclose(dashed[0].get_ydata(), [0.3, 0.35, 0.2])
    assert len(ax.collections) >= 1 and ax.get_xscale() == "log"


def test_run_labels_conditions():
    x, y, n = lesson.run_labels("unique", 10, 0)
    assert x.shape == (10, 2) and torch.equal(y, torch.arange(10)) and n == 10
    x2, y2, n2 = lesson.run_labels("class", 10, 0)
    assert torch.equal(x, x2) and n2 == 8 and ((y2 >= 0) & (y2 < 8)).all()
    assert lesson.run_labels("none", 10, 0)[1] is None
    _, y3, n3 = lesson.run_labels("random", 10, 0)
    assert n3 == 8 and ((y3 >= 0) & (y3 < 8)).all()
    with pytest.raises(ValueError, match="condition"):
        lesson.run_labels("all", 10, 0)


def test_cached_label_runs_are_consistent():
    z = lesson.load_label_runs()
    C, S = z.conditions, z.seeds
    assert C == ["none", "class", "random", "unique"] and z.fractions.shape == z.w2.shape == (len(C), len(S))
    assert z.samples.shape == (len(C), z.config["n_samples"], 2)
    # the result the lesson states: unique labels memorise, no labels do not
    f = z.fractions
    se = f.std(1, ddof=1) / np.sqrt(len(S))
    i, j = C.index("unique"), C.index("none")
    assert f[i].mean() - f[j].mean() > 3 * np.hypot(se[i], se[j])
    assert z.train(0).shape == (z.config["label_M"], 2)
    axs = lesson.plot_label_samples(z)
    assert len(axs) == len(C) and axs[-1].get_title().startswith("unique labels")


def test_load_label_runs_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        lesson.load_label_runs(tmp_path / "missing.npz")


@pytest.mark.slow
def test_cached_label_runs_regenerate():
    """Retrains two of the 20 cached conditional runs (about a minute) and compares."""
    z = lesson.load_label_runs()
    for cond in ("none", "unique"):
        got = lesson.label_run(cond, 0)
        i = z.conditions.index(cond)
        assert abs(got["fraction"] - z.fractions[i, 0]) <= 0.1, (cond, got["fraction"])
        assert abs(got["w2"] - z.w2[i, 0]) <= 0.15, (cond, got["w2"])


def test_cached_digit_sweep_is_consistent():
    z = lesson.load_digit_sweep()
    assert z.fractions.shape == z.ratio_median.shape == (len(z.widths), len(z.sizes))
    assert z.samples.shape == (len(z.widths), len(z.sizes), 16, 64)
    assert (z.fractions >= 0).all() and (z.fractions <= 1).all()
    assert z.train(z.sizes[0]).shape == (z.sizes[0], 64)
    assert torch.equal(z.train(10)[:5], z.train(5))             # nested training sets
    wide = z.fractions[z.widths.index(max(z.widths))]          # the widest copies small sets, not the largest
    assert wide[0] >= 0.9 and wide[-1] < 0.1


def test_load_digit_sweep_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        lesson.load_digit_sweep(tmp_path / "missing.npz")


@pytest.mark.slow
def test_cached_digit_sweep_regenerates():
    """Retrains two of the twelve cached digit runs (about a minute) and compares."""
    z = lesson.load_digit_sweep()
    for w, m in ((64, 2), (512, z.sizes[-1])):
        got = lesson.digit_run(w, m)
        assert abs(got["fraction"] - z.fractions[z.widths.index(w), z.sizes.index(m)]) <= 0.1, (w, m, got["fraction"])


def test_cached_ring_sweep_is_consistent():
    z = lesson.load_ring_sweep()
    shape = (len(z.widths), len(z.seeds), len(z.sizes))
    assert z.fractions.shape == z.w2.shape == shape and z.config["sizes"] == z.sizes
    assert (z.fractions >= 0).all() and (z.fractions <= 1).all() and (z.w2 > 0).all()
    assert (z.fractions[:, :, 0].max(1) >= 0.99).all()          # two training points are copied (in most runs)
    assert (z.fractions[:, :, -1] < 0.3).all()                  # the largest set is not
    assert torch.equal(z.train(8, 1)[:4], z.train(4, 1))         # nested training sets


def test_load_ring_sweep_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        lesson.load_ring_sweep(tmp_path / "missing.npz")


@pytest.mark.slow
def test_cached_ring_sweep_regenerates():
    """Retrains two of the 66 cached ring runs (about half a minute) and compares."""
    z = lesson.load_ring_sweep()
    for w, m in ((32, 4), (32, 64)):
        got = lesson.ring_run(w, m, 0)
        i, j = z.widths.index(w), z.sizes.index(m)
        assert abs(got["fraction"] - z.fractions[i, 0, j]) <= 0.1, (w, m, got["fraction"])
        assert abs(got["w2"] - z.w2[i, 0, j]) <= 0.15, (w, m, got["w2"])
