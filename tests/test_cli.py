"""The ``diffedu`` command: copying lessons safely, student copies, launching, the wheel's lessons."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from diffedu import cli

REPO = Path(__file__).resolve().parent.parent
LESSONS = cli.lesson_files(REPO / "lessons")


def fake_lessons(d: Path, text="v1"):
    d.mkdir(parents=True, exist_ok=True)
    for name in ("01_a.ipynb", "02_b.ipynb"):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(f"x = '{text}'"),
                    nbformat.v4.new_code_cell("x = 'answer'", metadata={"tags": ["solution"]})]
        nbformat.write(nb, d / name)
    (d / "sanitize.cfg").write_text("[x]\n")
    return d


def test_lessons_dir_in_source_checkout():
    assert cli.lessons_dir() == REPO / "lessons"
    assert [p.name[:2] for p in LESSONS] == [f"{i + 1:02d}" for i in range(len(LESSONS))]


def test_copy_never_overwrites_a_changed_notebook(tmp_path, capsys):
    src = fake_lessons(tmp_path / "src")
    dest = tmp_path / "work"
    r = cli.copy_lessons(dest, source=src)
    assert r["copied"] == ["01_a.ipynb", "02_b.ipynb"]
    assert not (dest / "sanitize.cfg").exists()
    assert cli.copy_lessons(dest, source=src)["unchanged"] == ["01_a.ipynb", "02_b.ipynb"]
    # the learner edits lesson 1; then a new version of the course ships
    mine = (dest / "01_a.ipynb").read_text().replace("v1", "my notes")
    (dest / "01_a.ipynb").write_text(mine)
    fake_lessons(src, text="v2")
    capsys.readouterr()
    r = cli.copy_lessons(dest, source=src)
    assert r["kept"] == ["01_a.ipynb"] and r["updated"] == ["02_b.ipynb"]
    assert (dest / "01_a.ipynb").read_text() == mine
    assert "v2" in (dest / "02_b.ipynb").read_text()
    assert f"kept {dest / '01_a.ipynb'}" in capsys.readouterr().out
    # a file that was there before any copy (no record) and differs is kept too
    (dest / ".diffedu-lessons.json").unlink()
    (dest / "02_b.ipynb").write_text("{}")
    assert cli.copy_lessons(dest, source=src)["kept"] == ["01_a.ipynb", "02_b.ipynb"]


def test_student_copy_drops_solutions(tmp_path):
    src = fake_lessons(tmp_path / "src")
    cli.copy_lessons(tmp_path / "s", source=src, student=True)
    nb = json.loads((tmp_path / "s" / "01_a.ipynb").read_text())
    assert ["".join(c["source"]) for c in nb["cells"]] == ["x = 'v1'"]


def test_main_no_launch_and_launch(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, cwd=None: calls.append((cmd, cwd)) or 0)
    assert cli.main(["lessons", str(tmp_path / "a"), "--no-launch"]) == 0
    assert sorted(p.name for p in (tmp_path / "a").glob("*.ipynb")) == [p.name for p in LESSONS]
    assert calls == []
    assert cli.main(["lessons", str(tmp_path / "b")]) == 0
    (cmd, cwd), = calls
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"] and Path(cwd) == tmp_path / "b"


def test_index_command(capsys):
    assert cli.main(["index"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| # | lesson |") and out.count("\n") == len(LESSONS) + 2


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_student_copy_runs_top_to_bottom(lesson, tmp_path):
    nb = nbformat.reads(json.dumps(cli.student_copy(json.loads(lesson.read_text()))), as_version=4)
    n_sol = len(nbformat.read(lesson, as_version=4).cells) - len(nb.cells)
    assert n_sol >= 2, "every lesson has at least two solution cells"
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert text.count("not answered yet") >= 2
    assert "Correct" not in text


def test_wheel_ships_lessons_and_command_works_without_repo(tmp_path):
    pytest.importorskip("hatchling", reason="building the wheel offline needs hatchling installed")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(REPO)], check=True)
    (whl,) = tmp_path.glob("diffedu-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    for p in LESSONS:
        assert f"diffedu/lessons/{p.name}" in names
    site = tmp_path / "site"
    with zipfile.ZipFile(whl) as z:
        z.extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site))
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = subprocess.run([sys.executable, "-m", "diffedu.cli", "lessons", "mine", "--no-launch"], cwd=work,
                         env=env, capture_output=True, text=True, check=True).stdout
    assert f"{len(LESSONS)} lesson(s) copied" in out
    where = subprocess.run([sys.executable, "-c", "from diffedu.cli import lessons_dir; print(lessons_dir())"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where) == site / "diffedu" / "lessons"


def test_core_imports_without_ui_modules():
    code = ("import sys, diffedu, diffedu.exercises, diffedu.cli; "
            "bad = [m for m in ('matplotlib', 'ipywidgets') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
