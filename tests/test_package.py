"""Packaging: lazy imports, unpinned dependencies, lessons and data shipped in the wheel."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BLOCKER = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
import diffedu, torch
from diffedu import processes, gaussian, mixtures
{extra}
p = diffedu.VP()
g = diffedu.Gaussian(torch.zeros(2), torch.eye(2))
x = torch.randn(3, 2)
assert g.denoiser(x, 0.5, p).shape == (3, 2)
print('core ok')
"""

UI_MODULES = {"sympy", "tqdm", "matplotlib", "ipywidgets", "IPython", "ot", "jupyterlab"}


def test_numerical_core_imports_without_ui_packages():
    """The core runs where only torch, numpy and scipy exist (a GPU machine's image)."""
    extra = ""
    for mod in ("samplers", "flows", "calculus"):
        if (ROOT / "diffedu" / f"{mod}.py").exists():
            extra += f"from diffedu import {mod}\n"
    code = BLOCKER.format(blocked=sorted(UI_MODULES), extra=extra)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "core ok" in out.stdout


def test_dependencies_have_lower_bounds_only():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(meta["dependencies"])
    for extra in meta.get("optional-dependencies", {}).values():
        deps += extra
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in meta["dependencies"]}
    assert {"torch", "numpy", "scipy", "sympy", "matplotlib", "ipywidgets", "tqdm", "pot"} <= names
    for d in deps:
        assert "==" not in d and "<" not in d and "~=" not in d, f"pinned or capped dependency: {d}"


@pytest.mark.slow
def test_wheel_ships_lessons_and_data(tmp_path):
    hatch = pytest.importorskip("hatchling.builders.wheel")
    builder = hatch.WheelBuilder(str(ROOT))
    wheel = next(iter(builder.build(directory=str(tmp_path), versions=["standard"])))
    names = zipfile.ZipFile(wheel).namelist()
    lessons = sorted(p.name for p in (ROOT / "lessons").glob("*.ipynb"))
    for name in lessons:
        assert f"diffedu/lessons/{name}" in names
    data = [p.name for p in (ROOT / "data").iterdir() if p.is_file()]
    for name in data:
        assert f"diffedu/data/{name}" in names
    assert "diffedu/processes.py" in names
