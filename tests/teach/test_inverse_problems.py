"""diffedu.teach.inverse_problems (lesson 16): the widget redraws, the tables and their metrics,
the checkers, and the cached 64-D comparison (data/inverse_digits.pt): it loads with the
lesson's settings, holds every cell, and a slow test recomputes part of it and compares."""

import math

import numpy as np
import pytest
import torch

from diffedu import VP, GaussianMixture, inverse
from diffedu.teach import inverse_problems as lesson

F64 = torch.float64
PRIOR = GaussianMixture([0.25, 0.25, 0.3, 0.2], [[-2.0, 0.0], [2.0, 0.3], [0.0, 2.0], [0.3, -1.6]],
                        [[[0.3, 0.1], [0.1, 0.4]], [[0.4, -0.1], [-0.1, 0.3]], [[0.5, 0.0], [0.0, 0.15]],
                         [[0.2, 0.05], [0.05, 0.3]]])
PROBLEMS = {"inpainting": inverse.Measurement([[1.0, 0.0]], [0.1], 0.2),
            "blur": inverse.Measurement([[0.5, 0.5]], [0.9], 0.15)}


def test_method_widget_redraws():
    w = lesson.method_widget(PRIOR, PROBLEMS, budgets=(5, 20), n=100)
    assert [c.description for c in w.children[:3]] == ["method", "measurement", "denoiser calls"]
    before = np.asarray(w.result.axes[0].lines[0].get_xydata())
    w.children[0].value = "twisted SMC"
    after = np.asarray(w.result.axes[0].lines[0].get_xydata())
    assert not np.array_equal(before, after) and "twisted SMC, 20 calls" in w.result.axes[0].get_title()
    w.children[0].value = "RED-diff"
    assert len(w.result.axes[0].lines[0].get_xydata()) == 8 and "points" in w.result.axes[0].get_title()


def test_compare_methods_and_metrics():
    table = lesson.compare_methods(PRIOR, VP(), PROBLEMS["blur"], (5,), n=100)
    text = lesson.format_table(table, title="blur")
    assert "exact draws" in text and "(a point)" in text and len(text.splitlines()) == 3 + 1 + len(lesson.METHODS)
    r = table[("twisted SMC", 5)]
    assert 0 < r["ess"] <= 1 and 0 < r["ess_min"] <= r["ess"] + 1e-12
    for key, m in table.items():
        if isinstance(key, tuple):
            assert all(0 <= c <= 1 for c in m["coverage"]) and m["mode_tv"] >= 0 and m["mean_error"] >= 0
    with pytest.raises(ValueError, match="name"):
        lesson.run_method("nope", PRIOR, VP(), PROBLEMS["blur"], 5, torch.zeros(3, 2, dtype=F64))


def test_digit_operators():
    A = lesson.digit_operator("inpaint")
    assert A.shape == (32, 64) and torch.equal(A @ torch.arange(64.0, dtype=F64), torch.arange(32.0, dtype=F64))
    B = lesson.digit_operator("blur")
    assert B.shape == (16, 64) and torch.allclose(B.sum(1), torch.ones(16, dtype=F64))
    assert torch.allclose(B @ torch.ones(64, dtype=F64), torch.ones(16, dtype=F64))
    with pytest.raises(ValueError, match="name"):
        lesson.digit_operator("deblur")


def test_cached_digit_comparison_is_complete_and_consistent():
    out = lesson.load_digit_results()
    c = out["config"]
    names = list(c["methods"]) + list(c["extra"])
    for problem in c["problems"]:
        for d in c["digits"]:
            assert (problem, d) in out["floors"]
            for N in c["budgets"]:
                for name in names:
                    r = out["results"][(problem, d, name, N)]
                    assert all(0 <= v <= 1 for v in r["coverage"]) and math.isfinite(r["mmd2"])
        text = lesson.format_digit_table(out, problem)
        assert len(text.splitlines()) == 2 + len(names) * len(c["budgets"])
        axs = lesson.plot_digit_posteriors(out, problem)
        assert axs.shape == (c["images"], 8)
        # what the lesson states: the exact score is calibrated at the larger budget, not the smaller
        big, small = lesson.pooled_metrics(out, problem, "exact score", max(c["budgets"])), \
            lesson.pooled_metrics(out, problem, "exact score", min(c["budgets"]))
        assert len(big["se_digits"]) == 2 and all(v >= 0 for v in big["se_digits"])
        assert abs(big["coverage"][0] - 0.5) < 3 * big["se"][0] and small["coverage"][0] > 0.8


@pytest.mark.slow
def test_digit_comparison_recomputes():
    """Recompute the blur problem's first digit at the smaller budget (about 20 s on one core) and compare with
    the cache: the same seeds give the same numbers up to floating-point noise."""
    cached = lesson.load_digit_results()
    c = cached["config"]
    cell = ("blur", c["digits"][0], min(c["budgets"]))
    torch.set_num_threads(1)
    fresh = lesson.compute_digit_results(cells={cell})
    for name in list(c["methods"]) + list(c["extra"]):
        a, b = fresh["results"][(*cell[:2], name, cell[2])], cached["results"][(*cell[:2], name, cell[2])]
        assert a["coverage"] == pytest.approx(b["coverage"], abs=0.03), name
        assert a["mmd2"] == pytest.approx(b["mmd2"], abs=5e-3), name
        assert a["mode_tv"] == pytest.approx(b["mode_tv"], abs=0.03), name
        assert a["logp_gap"] == pytest.approx(b["logp_gap"], abs=0.5), name


def test_checkers():
    assert lesson.check_dps_step(lambda D, process, x, t, t_next, A, y, zeta, noise: inverse.dps_step(
        D, process, x, t, t_next, inverse.Measurement(A.double(), y.double(), 1.0), zeta=zeta, noise=noise))
    no_correction = lambda D, process, x, t, t_next, A, y, zeta, noise: inverse.dps_step(
        D, process, x, t, t_next, inverse.Measurement(A.double(), y.double(), 1.0), zeta=0.0, noise=noise)
    assert lesson.check_dps_step(no_correction).status == "wrong"
    assert lesson.check_dps_step(None).status == "unanswered"

    def posterior(mean, cov, A, y, noise_std):
        S = A @ cov @ A.T + noise_std**2 * torch.eye(A.shape[0], dtype=cov.dtype)
        G = cov @ A.T @ torch.linalg.inv(S)
        return mean + G @ (y - A @ mean), cov - G @ A @ cov
    assert lesson.check_gaussian_posterior(posterior)
    assert lesson.check_gaussian_posterior(lambda mean, cov, A, y, noise_std: (mean, cov)).status == "wrong"
    assert lesson.check_gaussian_posterior(None).status == "unanswered"
