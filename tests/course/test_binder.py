"""The class environment (binder/, read by repo2docker) declares what pyproject.toml declares."""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
BINDER = REPO / "binder"


def requirement_lines(path):
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln]


def declared(reqs):
    out = {}
    for r in map(Requirement, reqs):
        out[r.name.lower().replace("_", "-")] = str(r.specifier)
    return out


def test_binder_requirements_equal_pyproject_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    want = declared(project["dependencies"] + project["optional-dependencies"]["lessons"])
    lines = requirement_lines(BINDER / "requirements.txt")
    got = declared([ln for ln in lines if not ln.startswith("-")])
    assert got == want, "binder/requirements.txt must list pyproject.toml's dependencies and 'lessons' extra"


def test_cpu_only_torch_choice_is_explained():
    text = (BINDER / "requirements.txt").read_text()
    options = [ln for ln in requirement_lines(BINDER / "requirements.txt") if ln.startswith("-")]
    assert options == [], "no index options are committed; the comment says how to add the CPU index"
    assert "CPU-only" in text and "--extra-index-url" in text and "GPU" in text


def test_postbuild_installs_diffedu_itself_and_python_matches():
    post = BINDER / "postBuild"
    assert os.access(post, os.X_OK), "repo2docker runs binder/postBuild; it must be executable"
    assert "pip install --no-cache-dir --no-deps ." in post.read_text()
    version = (BINDER / "runtime.txt").read_text().strip().removeprefix("python-")
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(version + ".0")


def test_repo2docker_reads_the_binder_folder():
    exe = shutil.which("repo2docker") or str(Path(sys.executable).parent / "repo2docker")
    if not os.path.exists(exe):
        pytest.skip("optional: pip install jupyter-repo2docker to check the Dockerfile it would build")
    res = subprocess.run([exe, "--no-build", "--debug", str(REPO)], capture_output=True, text=True, timeout=120)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in log
    assert "./binder/postBuild" in log
