"""The ``diffedu`` command: subcommands, launching, the commands the README names, the wheel's lessons."""

import ast
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from diffedu.course import cli, notebooks, site

REPO = Path(__file__).resolve().parents[2]
LESSONS = notebooks.lesson_files(REPO / "lessons")
COURSE = REPO / "diffedu" / "course"


def test_main_no_launch_and_launch(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, cwd=None: calls.append((cmd, cwd)) or 0)
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000, raising=False)  # as root it needs --allow-root
    assert cli.main(["lessons", str(tmp_path / "a"), "--no-launch"]) == 0
    assert sorted(p.name for p in (tmp_path / "a").glob("*.ipynb")) == [p.name for p in LESSONS]
    assert calls == []
    assert cli.main(["lessons", str(tmp_path / "b")]) == 0
    (cmd, cwd), = calls
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"] and Path(cwd) == tmp_path / "b"


def test_student_flag_uses_the_student_copy(tmp_path):
    cli.main(["lessons", str(tmp_path / "s"), "--no-launch", "--student"])
    for p in LESSONS:
        got = json.loads((tmp_path / "s" / p.name).read_text())
        assert got == notebooks.student_notebook(json.loads(p.read_text()))


def test_index_command_prints_the_lesson_table(capsys):
    assert cli.main(["index"]) == 0
    table = notebooks.lesson_table(LESSONS, notebooks.lesson_costs(REPO / "lessons"))
    assert capsys.readouterr().out == table + "\n"
    assert table.count("\n") == len(LESSONS) + 1


def test_regenerate_runs_nbconvert_with_static_fallbacks(monkeypatch):
    runs = []
    monkeypatch.setattr(cli.subprocess, "run", lambda cmd, check, env: runs.append((cmd, env)))
    assert cli.main(["regenerate", str(LESSONS[0])]) == 0
    (cmd, env), = runs
    assert cmd[-1] == str(LESSONS[0]) and "--inplace" in cmd
    assert env["DIFFEDU_STATIC_FALLBACKS"] == "1" and env["OMP_NUM_THREADS"] == "1"
    assert "MPLBACKEND" not in env


def test_site_and_measure_subcommands_call_the_site_module(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(site, "build", lambda out, solutions: calls.append(("build", out, solutions)) or tmp_path)
    monkeypatch.setattr(site, "measure", lambda paths: calls.append(("measure", paths)))
    assert cli.main(["site", "build", "--out", "x", "--solutions"]) == 0
    assert cli.main(["site", "build"]) == 0
    assert cli.main(["measure", "a.ipynb", "b.ipynb"]) == 0
    assert site.main(["measure"]) == 0
    assert calls == [("build", "x", True), ("build", None, False), ("measure", ["a.ipynb", "b.ipynb"]),
                     ("measure", [])]
    with pytest.raises(SystemExit):
        cli.main(["site"])  # a site subcommand is required


@pytest.mark.parametrize("module", ["diffedu.course.cli", "diffedu.course.site"])
def test_modules_run_with_python_m(module):
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True)
    assert "measure" in out.stdout


def _imports(path: Path) -> set[str]:
    """The modules a file imports, relative imports resolved inside diffedu.course."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ["diffedu", "course"][: 2 - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            found |= {mod} | {f"{mod}.{a.name}" for a in node.names}
    return found


def test_site_and_notebooks_do_not_import_the_command():
    assert not any(m.startswith("diffedu.course.cli") for m in _imports(COURSE / "site.py"))
    nb = _imports(COURSE / "notebooks.py")
    assert not any(m.startswith(("diffedu.course.cli", "diffedu.course.site")) for m in nb), nb
    assert "diffedu.course.site" in _imports(COURSE / "cli.py")  # the one arrow between them
    code = ("import sys, diffedu.course.site; assert 'diffedu.course.cli' not in sys.modules; "
            "bad = [m for m in ('matplotlib', 'ipywidgets', 'sphinx') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def _documented_code():
    """The code the README shows (indented blocks and `spans`), binder/postBuild and .ci/run."""
    readme = (REPO / "README.md").read_text()
    code = [ln for ln in readme.splitlines() if ln.startswith("    ")] + re.findall(r"`([^`\n]+)`", readme)
    code += (REPO / "binder" / "postBuild").read_text().splitlines() + (REPO / ".ci" / "run").read_text().splitlines()
    return [ln.split("#", 1)[0] for ln in code]


def test_documented_commands_exist():
    code = _documented_code()
    modules = {m for ln in code for m in re.findall(r"python3? -m (diffedu[\w.]*)", ln)}
    commands = [m.group(0) for ln in code for m in re.finditer(
        r"(?<![\w./\[-])diffedu (?:lessons|regenerate|index|site|measure)(?: [\w./-]+)*", ln)]
    for m in modules:
        assert importlib.util.find_spec(m) is not None, f"python3 -m {m} is documented and does not exist"
    for c in commands:
        args = shlex.split(c)[1:]
        cli.parse_args(args[:1] + (["--no-launch"] if args[0] == "lessons" else []) + args[1:])
    named = {" ".join(shlex.split(c)[:2]) for c in commands}
    assert {f"diffedu {s}" for s in ("lessons", "regenerate", "index", "site", "measure")} <= named


def test_wheel_ships_lessons_and_command_works_without_repo(tmp_path):
    pytest.importorskip("hatchling", reason="building the wheel offline needs hatchling installed")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(REPO)], check=True)
    (whl,) = tmp_path.glob("diffedu-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    for p in LESSONS:
        assert f"diffedu/lessons/{p.name}" in names
    assert "diffedu/course/cli.py" in names
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert "diffedu = diffedu.course.cli:main" in zipfile.ZipFile(whl).read(entry[0]).decode()
    unpacked = tmp_path / "site-packages"
    with zipfile.ZipFile(whl) as z:
        z.extractall(unpacked)
    env = dict(os.environ, PYTHONPATH=str(unpacked))
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = subprocess.run([sys.executable, "-m", "diffedu.course.cli", "lessons", "mine", "--no-launch"], cwd=work,
                         env=env, capture_output=True, text=True, check=True).stdout
    assert f"{len(LESSONS)} lesson(s) copied" in out
    where = subprocess.run([sys.executable, "-c", "from diffedu.course.notebooks import lesson_files; "
                            "print(lesson_files()[0].parent)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where) == unpacked / "diffedu" / "lessons"
