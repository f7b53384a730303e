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
