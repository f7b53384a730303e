"""diffedu.teach.subspace_clustering (lesson 08): the slider redraws the K-subspaces fit, and the
checkers accept right answers, reject wrong ones and say "not answered yet"."""

import numpy as np
import torch

from diffedu import VP, LowRankMixture
from diffedu.subspace import line_bases
from diffedu.teach import subspace_clustering as lesson


def test_subspace_widget_and_checker():
    w = lesson.subspace_widget()
    assert w.auto_display
    assert [c.description for c in w.children[:2]] == ["samples per subspace", "noise variance"]
    t0 = w.result.axes[0].get_title()
    w.children[0].value = 40
    assert w.result.axes[0].get_title() != t0 and "K-subspaces" in t0
    assert w.result.axes[0].get_title().startswith("n = 40, noise = 0.01")
    U = line_bases([10.0, 40.0])
    assert lesson.check_subspace_error(0.5, U[0], U[1])
    assert not lesson.check_subspace_error(0.25, U[0], U[1])
    assert lesson.check_subspace_error(None, U[0], U[1]).status == "unanswered"


def test_plot_subspace_fit_finds_noiseless_lines():
    ax = lesson.plots.new_axes()
    assert lesson.plot_subspace_fit(20, 0.0, ax, angles=(0.0, 90.0)) is ax
    assert ax.get_title() == "n = 20, noise = 0: max error with labels 0.00, K-subspaces 0.00"
    assert len(ax.lines) == 4 and len(ax.collections) == 2  # 2 true lines, 2 found; 2 clusters
    found = np.stack([line.get_xydata()[1] for line in ax.lines[2:]])
    found /= np.linalg.norm(found, axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs(found @ np.array([[1.0, 0.0], [0.0, 1.0]])).max(1), 1.0, atol=1e-12)


def test_check_denoiser_is_the_shared_one():
    lines = LowRankMixture(line_bases([10.0, 70.0]))
    x = torch.tensor([[1.0, 0.2], [-0.5, 0.6]], dtype=torch.float64)
    assert lesson.check_denoiser(lines.denoiser(x, 0.25, VP()), lines, x, 0.25, VP())
    assert not lesson.check_denoiser(x, lines, x, 0.25, VP())
    assert {"check_close", "check_denoiser", "subspace_widget", "check_subspace_error"} <= set(lesson.__all__)
