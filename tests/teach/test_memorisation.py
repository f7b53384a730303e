"""diffedu.teach.memorisation (lesson 06): the slider redraws the memorising denoiser, the
checker accepts the right ratio and rejects a wrong one, and the cached network sweep of
data/emm_ring.npz loads and is consistent (a slow test regenerates two of its entries)."""

import numpy as np
import pytest
import torch

from diffedu import VP
from diffedu.memorisation import effective_model_memorisation, nn_ratio
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
    x = torch.randn(4, 2, generator=gen(1), dtype=torch.float64)
    assert lesson.check_nn_ratio(nn_ratio(x, data), x, data)
    assert not lesson.check_nn_ratio(1 / nn_ratio(x, data), x, data)
    assert lesson.check_nn_ratio(None, x, data).status == "unanswered"
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
