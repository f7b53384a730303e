"""diffedu.teach.subspace_clustering (lesson 08): the slider redraws the K-subspaces fit, the line
denoiser's figure shows denoised points on the lines, the K-subspaces-step checker accepts a right
implementation and rejects wrong ones, the cached recovery sweep loads, is consistent and is
reproduced exactly on ten trials, and the cached generation sweep loads and is consistent (a
slow test retrains two of its networks); a tiny generation run measures each model."""

import numpy as np
import pytest
import torch

from diffedu import VP, LowRankMixture
from diffedu.subspace import line_bases
from diffedu.teach import subspace_clustering as lesson


def test_subspace_widget_redraws():
    w = lesson.subspace_widget()
    assert w.auto_display
    assert [c.description for c in w.children[:2]] == ["samples per subspace", "noise variance"]
    t0 = w.result.axes[0].get_title()
    w.children[0].value = 40
    assert w.result.axes[0].get_title() != t0 and "K-subspaces" in t0
    assert w.result.axes[0].get_title().startswith("n = 40, noise = 0.01")


def test_plot_subspace_fit_finds_noiseless_lines():
    ax = lesson.plots.new_axes()
    assert lesson.plot_subspace_fit(20, 0.0, ax, angles=(0.0, 90.0)) is ax
    assert ax.get_title() == "n = 20, noise = 0: max error with labels 0.00, K-subspaces 0.00"
    assert len(ax.lines) == 4 and len(ax.collections) == 2  # 2 true lines, 2 found; 2 clusters
    found = np.stack([line.get_xydata()[1] for line in ax.lines[2:]])
    found /= np.linalg.norm(found, axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs(found @ np.array([[1.0, 0.0], [0.0, 1.0]])).max(1), 1.0, atol=1e-12)


def test_line_denoiser_figure_puts_denoised_points_on_the_lines():
    lines = LowRankMixture(line_bases([10.0, 70.0, 135.0]))
    P = VP()
    t = float(P.t_of_lam(-np.log(0.2)))
    ax = lesson.plot_line_denoiser(lines, P, t, lesson.plots.new_axes(), n=100)
    den = np.asarray(ax.collections[1].get_offsets())
    U = line_bases([10.0, 70.0, 135.0])[:, :, 0].numpy()
    off = np.abs(den @ np.stack([-U[:, 1], U[:, 0]], 0)).min(1)          # distance to the nearest line
    assert np.median(off) < 0.05 and "sigma/alpha = 0.20" in ax.get_title()
    assert sum(1 for line in ax.lines if line.get_linestyle() == "--") == 3


def _my_step(X, bases):
    Xd = X.double()
    residual = (Xd**2).sum(1, keepdim=True) - (torch.einsum("nd,kdr->nkr", Xd, bases) ** 2).sum(-1)
    labels = residual.argmin(1)
    out = []
    for k in range(bases.shape[0]):
        Xk = Xd[labels == k]
        V = torch.linalg.eigh(Xk.T @ Xk)[1][:, -bases.shape[2]:]
        out.append(V @ V.T)
    return torch.stack(out).to(X.dtype)


def test_k_subspaces_step_checker():
    assert lesson.check_k_subspaces_step(_my_step)
    assert not lesson.check_k_subspaces_step(lambda X, bases: (bases @ bases.transpose(1, 2)).to(X.dtype))
    centred = lambda X, bases: _my_step(X - X.mean(0), bases)  # noqa: E731  (centred PCA: not this model's)
    assert not lesson.check_k_subspaces_step(centred)
    assert lesson.check_k_subspaces_step(None).status == "unanswered"


def test_check_denoiser_is_the_shared_one():
    lines = LowRankMixture(line_bases([10.0, 70.0]))
    x = torch.tensor([[1.0, 0.2], [-0.5, 0.6]], dtype=torch.float64)
    assert lesson.check_denoiser(lines.denoiser(x, 0.25, VP()), lines, x, 0.25, VP())
    assert not lesson.check_denoiser(x, lines, x, 0.25, VP())


def test_cached_transition_sweep_is_consistent_and_reproduced():
    """The cache's trials are seeded one by one: re-running the first ten trials of two settings
    gives the cached errors and objectives (a few seconds)."""
    sweep = lesson.load_transition_sweep()
    c = sweep.config
    assert list(sweep.errors) == list(c["settings"]) and sweep.ns == c["ns"]
    for name in sweep.errors:
        assert sweep.errors[name].shape == (len(sweep.ns), c["n_trials"])
    lab = sweep.success("labels, no noise")
    assert (lab[np.array(sweep.ns) < c["rank"]] == 0).all() and (lab[np.array(sweep.ns) >= c["rank"]] == 1).all()
    for name in ("labels, noise 0.01", "no labels (K-subspaces), no noise"):
        again = lesson.transition_setting(name, trials=10)     # a trial's draws run over all sizes in turn
        np.testing.assert_allclose(again.errors.numpy(), sweep.errors[name][:, :10], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(again.objective.numpy(), sweep.objective[name][:, :10], rtol=1e-6, atol=1e-9)


def test_cached_generation_sweep_is_consistent():
    g = lesson.load_generation_sweep()
    S, N = len(g.config["seeds"]), len(g.n_per_subspace)
    for key in ("memorised", "sample_error", "distance"):
        for m in lesson.GENERATION_MODELS:
            v = getattr(g, key)[m]
            assert v.shape == (S, N) and np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()
    assert (g.memorised["training set"] > 0.95).all()      # the exact score copies at every N_k
    assert (g.memorised["low-rank"] < 0.2).all()           # the low-rank denoiser never does
    net = g.memorised["network"].mean(0)
    assert net[0] > 0.95 and net[-1] < 0.4                 # the network copies at N_k = 1, not at 32
    assert g.samples["network"].shape == (N, 16, g.config["dim"])
    axs = lesson.plot_generation(g)
    assert len(axs) == 2 and len(axs[0].get_legend().get_texts()) == 3


def test_generation_run_measures_each_model():
    """A tiny configuration of the generation sweep: the exact training-set score
    copies its points, the low-rank denoiser (30 training steps: not converged) does not copy, and
    every run returns its measures and samples."""
    c = dict(lesson.GENERATION_CONFIG, dim=6, rank=2, hidden=16, depth=1, steps=30, n_samples=40, sampler_steps=10,
             low_rank_steps=30)
    runs = {m: lesson.generation_run(m, 2, 0, c) for m in lesson.GENERATION_MODELS}
    assert runs["training set"]["memorised"] > 0.95
    assert runs["low-rank"]["memorised"] < 0.5                # it samples Gaussians on its subspaces
    for r in runs.values():
        assert r["samples"].shape == (40, 6) and 0 <= r["sample_error"] <= 1
    with pytest.raises(ValueError, match="model"):
        lesson.generation_run("other", 2, 0, c)


def test_loaders_name_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        lesson.load_transition_sweep(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError):
        lesson.load_generation_sweep(tmp_path / "missing.npz")


@pytest.mark.slow
def test_cached_generation_sweep_regenerates():
    """Three network runs of the cache (seed 0 at N_k = 2, memorised, and N_k = 32, not; seed 3, one
    of the two seeds added later, at N_k = 32) retrained (about a minute on one core): memorised
    fraction and sample error within 0.1 of the cache (float results differ across torch versions
    and CPUs)."""
    g = lesson.load_generation_sweep()
    for n_k, seed in ((2, 0), (32, 0), (32, 3)):
        run = lesson.generation_run("network", n_k, seed)
        i, j = g.config["seeds"].index(seed), g.n_per_subspace.index(n_k)
        assert abs(run["memorised"] - g.memorised["network"][i, j]) <= 0.1, (n_k, seed, run["memorised"])
        assert abs(run["sample_error"] - g.sample_error["network"][i, j]) <= 0.1, (n_k, seed, run["sample_error"])
