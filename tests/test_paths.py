"""diffedu._paths finds data/ and lessons/ from a source checkout, an editable install and a wheel."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from diffedu import _paths

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import diffedu, diffedu._paths as P
print(P.PACKAGE_DIR)
print(P.data_path("digits.npz"))
print(P.lessons_dir())
print(P.source_root())
try:
    P.data_path("no-such-file.pt")
except FileNotFoundError as e:
    print("missing:", e)
try:
    P.writable_data_path("x.pt")
    print("writable")
except FileNotFoundError as e:
    print("not writable:", e)
"""


def _probe(cwd, pythonpath=None):
    """Run PROBE in a fresh interpreter in ``cwd``; ``pythonpath`` first on sys.path if given."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)  # ahead of site-packages and the editable install
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_source_checkout_finds_top_level_folders():
    assert _paths.source_root() == ROOT
    assert _paths.data_path("digits.npz") == ROOT / "data" / "digits.npz"
    assert _paths.data_dir() == ROOT / "data"
    assert _paths.lessons_dir() == ROOT / "lessons"
    assert _paths.writable_data_path("fp_gap.pt") == ROOT / "data" / "fp_gap.pt"


def test_missing_file_raises_naming_it():
    with pytest.raises(FileNotFoundError, match="no-such-file.pt") as e:
        _paths.data_path("no-such-file.pt")
    assert str(ROOT / "data") in str(e.value)


@pytest.mark.parametrize("bad", ["", "../pyproject.toml", "/etc/passwd", 3])
def test_bad_names_are_refused(bad):
    with pytest.raises(ValueError, match="name must be a file name"):
        _paths.data_path(bad)


def test_installed_package_from_another_folder(tmp_path):
    """As the test run imports it (a checkout or an editable install), from an unrelated cwd."""
    pkg, data, lessons, root, missing, writable = _probe(tmp_path)
    assert Path(pkg) == ROOT / "diffedu"
    assert Path(data) == ROOT / "data" / "digits.npz"
    assert Path(lessons) == ROOT / "lessons"
    assert Path(root) == ROOT
    assert "no-such-file.pt" in missing
    assert writable == "writable"


def test_wheel_finds_the_folders_it_ships(tmp_path):
    """Build the wheel, unpack it into a site folder of its own, and import diffedu from there."""
    hatch = pytest.importorskip("hatchling.builders.wheel")
    wheel = next(iter(hatch.WheelBuilder(str(ROOT)).build(directory=str(tmp_path / "dist"),
                                                           versions=["standard"])))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    pkg, data, lessons, root, missing, writable = _probe(tmp_path, pythonpath=site)
    assert Path(pkg) == site / "diffedu"
    assert Path(data) == site / "diffedu" / "data" / "digits.npz"
    assert Path(lessons) == site / "diffedu" / "lessons"
    assert root == "None"
    assert "no-such-file.pt" in missing and str(site / "diffedu" / "data") in missing
    assert writable.startswith("not writable:") and "source checkout" in writable
