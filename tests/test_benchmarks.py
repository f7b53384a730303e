"""The benchmark commands run end to end at toy sizes (speed itself is not tested here)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_empirical_benchmark_runs(capsys):
    _load("empirical_denoiser").main(["--B", "8", "--M", "40", "--D", "3", "--sigmas", "0.5", "--reps", "1"])
    out = capsys.readouterr().out
    assert "ours/GEMMs" in out
    row = [line for line in out.splitlines() if line.strip().startswith("3")][0]
    ratio = float(row.split("|")[1].split()[2])
    assert ratio > 0


def test_sampler_precision_benchmark_runs(capsys):
    _load("samplers").main(["precision", "--n", "4"])
    rows = [line for line in capsys.readouterr().out.splitlines() if "diffedu" in line and "N=" in line]
    assert len(rows) == 2 * 3 * 4                      # two modes, three grids, four samplers
    for row in rows:
        err = float(row.split("diffedu")[1].split()[0])
        assert 0 < err < 1e-3                          # float32 rounding, not a broken sampler


def _gaussian_case():
    import torch

    from diffedu import EDM, Gaussian, time_grid

    p = EDM()
    G = Gaussian(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64),
                 torch.diag(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)))
    x = G.bind(p).sample_marginal(6, p.t_max, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return p, G, G.bind(p).denoiser, x, time_grid


def test_peer_adapters_run_the_same_algorithm_on_the_same_grid():
    """Where a peer is installed, its Heun driven by the benchmark's adapter is our Heun (same
    denoiser, start and grid), and diffusers' UniPC converges to the exact flow: the comparisons
    in benchmarks/samplers.py are like for like. Skips where no peer is installed (CI)."""
    import pytest
    import torch

    from diffedu import samplers as S

    bench = _load("samplers")
    K, Df = bench.load_k_diffusion(), bench.load_diffusers()
    if K is None and Df is None:
        pytest.skip("no peer sampler package installed (benchmark environment only)")
    p, G, D, x, time_grid = _gaussian_case()
    ts = time_grid(p, 12)
    ours = S.heun(D, p, x, ts)
    if K is not None:
        torch.testing.assert_close(bench.k_samplers(K)["k.heun"][0](bench.k_model(D), x.clone(), ts), ours,
                                   rtol=1e-12, atol=1e-12)
    if Df is not None:
        peers = bench.diffusers_samplers(Df)
        torch.testing.assert_close(peers["diffusers.heun"][0](D, x.clone(), ts), ours, rtol=1e-12, atol=1e-12)
        errs = []
        for n in (32, 64):
            ts = time_grid(p, n)
            t_eps = float(ts[-2])
            ref = D(G.flow(x, p.t_max, t_eps, p), t_eps)
            errs.append(float((peers["diffusers.unipc3_bh2"][0](D, x.clone(), ts) - ref).norm(dim=1).max()))
        assert errs[1] < errs[0] / 4                   # at least second order on the exact flow
