"""diffedu.teach.few_step_sampling (lesson 17): the cached optimised grids (valid, better than their
starting grids where fitted and on fresh starts, reproduced by a slow refit), the error table, the
grid widget and the checkers of the exercises."""

import itertools
import math

import ipywidgets as W
import matplotlib
import pytest
import torch

import diffedu as de
from diffedu.flow_map import flow_map_terms
from diffedu.teach import few_step_sampling as lesson
from diffedu.timegrids import grid_errors, grid_from_logits

F64 = torch.float64


@pytest.fixture(scope="module")
def ring_starts():
    return lesson.starts("ring", 300, 99, rtol=1e-8)


def test_cached_grids_are_valid_grids_fitted_with_the_lesson_settings():
    grids = lesson.load_grids()
    p = de.EDM()
    c = lesson.GRID_CONFIG
    expected = {f"{name}/{s}/{calls}/{tele}" for name in c["problems"] for s in c["samplers"] for calls in c["calls"]
                for tele in ("plain", "teleport") if lesson.steps_for(s, calls) >= (3 if tele == "plain" else 2)}
    assert set(grids) == expected
    for key, entry in grids.items():
        name, s, calls, tele = key.split("/")
        ts = torch.tensor(entry["ts"], dtype=F64)
        assert ts.numel() == lesson.steps_for(s, int(calls)) + 1, key
        assert bool((ts[1:] < ts[:-1]).all()) and float(ts[-1]) == 0.0 and abs(float(ts[-2]) - p.t_eps) < 1e-12, key
        assert float(ts[0]) <= p.t_max and (tele == "teleport" or float(ts[0]) == p.t_max), key
        h = entry["history"]
        assert all(b <= a for a, b in itertools.pairwise(h)) and entry["fit_error"] <= h[0] * (1 + 1e-12), key
        if tele == "teleport" and f"{name}/{s}/{calls}/plain" in grids:   # teleporting never hurts where fitted
            assert entry["fit_error"] <= grids[f"{name}/{s}/{calls}/plain"]["fit_error"] * (1 + 1e-12), key
    with pytest.raises(ValueError, match="no cached grid"):
        lesson.cached_grid("ring", "heun", 3)
    with pytest.raises(ValueError, match="name"):
        lesson.problem("moons")


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m"])
def test_optimised_grids_beat_karras_and_lambda_on_fresh_starts(ring_starts, sampler):
    x, ref = ring_starts
    dist, p = lesson.problem("ring")
    D = dist.bind(p).denoiser
    smp = lesson.SAMPLERS[sampler]
    ours = grid_errors(smp, D, p, x, lesson.cached_grid("ring", sampler, 5), ref).log()
    for spacing in ("karras", "lambda"):
        d = ours - grid_errors(smp, D, p, x, de.time_grid(p, 5, spacing), ref).log()
        assert float(d.mean()) < -4 * float(d.std()) / math.sqrt(d.numel()), (sampler, spacing)


def test_error_table_and_its_printout(ring_starts, capsys):
    x, ref = ring_starts
    table = lesson.error_table("ring", x[:50], ref[:50], samplers=["ddim", "heun"], calls=(3, 5))
    assert ("heun", "optimised", 3) not in table and ("heun", "teleport + optimised", 3) in table
    assert set(lesson.GRIDS) == {k[1] for k in table if k[0] == "ddim"}
    assert all(v.shape == (50,) and bool(torch.isfinite(v).all()) for v in table.values())
    lesson.print_error_table(table)
    out = capsys.readouterr().out
    assert "median error" in out and "nan" in out  # the missing plain Heun grid at 3 calls
    ax = lesson.plot_error_vs_calls(table, "ddim")
    assert len(ax.lines) == len(lesson.GRIDS)
    matplotlib.pyplot.close("all")


def test_grid_widget(ring_starts):
    x, ref = ring_starts
    p = lesson.problem("ring")[1]
    ts = de.time_grid(p, 8)[:-1]
    w = lesson.grid_widget("ring", x[:40], ref[:40], p.lam(ts[1:]), torch.linspace(1, 2, 7))
    ctl = {c.description: c for c in w.children if isinstance(c, W.ValueWidget)}
    assert set(ctl) == {"sampler", "denoiser calls"} and ctl["sampler"].value == "dpmpp_2m"
    ctl["denoiser calls"].value = 3
    ctl["sampler"].value = "heun"
    ax0, ax1 = w.result.axes[:2]
    assert "heun, 3 calls" in ax0.get_title()
    assert len(ax1.lines) == len(lesson.GRIDS) - 1       # no plain optimised Heun grid at 3 calls
    matplotlib.pyplot.close("all")


def test_plot_flow_map():
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(0))
    axs = lesson.plot_flow_map(x, torch.arange(30) % 8, torch.rand(30) + 0.1, torch.rand(30) + 0.01)
    assert len(axs) == 3 and "steep" in axs[1].get_title()
    matplotlib.pyplot.close("all")


def test_checkers_accept_the_library_and_refuse_wrong_methods(capsys):
    assert lesson.check_grid_from_logits(
        lambda process, logits: grid_from_logits(process, logits).to(logits.dtype)).status == "correct"
    assert lesson.check_grid_from_logits(
        lambda process, logits: grid_from_logits(process, logits.flip(0)).to(logits.dtype)).status == "wrong"
    assert lesson.check_flow_map_terms(flow_map_terms).status == "correct"
    assert lesson.check_flow_map_terms(
        lambda F, x0, paths, times, k: ((F(paths[:, 0], times[:1].expand(len(k))) - x0) ** 2).sum(1)).status == "wrong"
    assert lesson.check_flow_map_terms(None).status == "unanswered"
    capsys.readouterr()


def test_three_step_grid_checker(capsys):
    p = de.EDM()
    assert lesson.check_three_step_grid(lesson.cached_grid("ring", "ddim", 3), n=200).status == "correct"
    assert lesson.check_three_step_grid(de.time_grid(p, 3, "karras"), n=200).status == "wrong"
    assert lesson.check_three_step_grid([p.t_max, 1.0, 0.0]).status == "wrong"
    assert lesson.check_three_step_grid([p.t_max, 200.0, p.t_eps, 0.0]).status == "wrong"
    assert lesson.check_three_step_grid(None).status == "unanswered"
    assert "t_1 must lie" in capsys.readouterr().out


@pytest.mark.slow
def test_refit_reproduces_the_cache():
    """A reduced refit (the ring, two samplers at 5 calls; about 30 s) gives the cached grids."""
    config = dict(lesson.GRID_CONFIG, problems=("ring",), samplers=("ddim", "dpmpp_2m"), calls=(5,))
    grids, cached = lesson.fit_grids(config), lesson.load_grids()
    for key, entry in grids.items():
        torch.testing.assert_close(torch.tensor(entry["ts"]), torch.tensor(cached[key]["ts"]), rtol=1e-6, atol=1e-9)
        assert entry["fit_error"] == pytest.approx(cached[key]["fit_error"], rel=1e-6)
