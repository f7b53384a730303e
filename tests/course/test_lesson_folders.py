"""``diffedu lessons``: a folder keeps its kind, "you changed it" means its sources, JupyterLab options.

Issue 14, points 5 (student and instructor folders are sticky), 6 (a lesson only run and saved
still gets the new version; a kept lesson gets its new version beside it) and 7 (JupyterLab as
root and on a remote machine). JupyterLab is never started here: ``subprocess.call`` is mocked.
"""

import json
import shlex
import sys
from pathlib import Path

import nbformat
import pytest

from diffedu.course import cli
from diffedu.course import notebooks as nbs

LAB = ["--allow-root", "--port", "8890", "--ip", "0.0.0.0", "--no-browser"]


def shipped(d: Path, version="v1") -> Path:
    """Two lessons, each with a solution cell, as a course release ``version`` ships them."""
    d.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(("01_a.ipynb", "02_b.ipynb")):
        nb = nbformat.v4.new_notebook()
        result = nbformat.v4.new_output("execute_result", {"text/plain": "1"}, execution_count=1)
        nb.cells = [nbformat.v4.new_markdown_cell(f"# Lesson {i + 1} ({version})"),
                    nbformat.v4.new_code_cell(f"x = '{version}'", execution_count=1, outputs=[result]),
                    nbformat.v4.new_code_cell("answer_1 = None"),
                    nbformat.v4.new_code_cell("answer_1 = 42", metadata={"tags": ["solution"]})]
        nbformat.write(nb, d / name)
    return d


def load(p: Path) -> dict:
    return json.loads(p.read_text())


def sources(p: Path) -> list[str]:
    return ["".join(c["source"]) for c in load(p)["cells"]]


def run_and_save(p: Path) -> None:
    """What JupyterLab's Run All and autosave do: new outputs, counts and widget state, same cells."""
    nb = load(p)
    for k, c in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        c["execution_count"] = 10 + k
        c["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"run {k}\n"}]
        c["metadata"]["scrolled"] = True
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"m1": {}}}}
    p.write_text(json.dumps(nb, indent=2))


def edit(p: Path, text="my answer") -> None:
    nb = load(p)
    nb["cells"][2]["source"] = f"answer_1 = '{text}'"
    p.write_text(json.dumps(nb, indent=1))


def has_solutions(p: Path) -> bool:
    return any(nbs.is_solution(c) for c in load(p)["cells"])


def kind_in_manifest(d: Path) -> str:
    return load(d / nbs.MANIFEST)["kind"]


@pytest.fixture
def lessons_from(monkeypatch):
    """Make ``diffedu lessons`` copy from a given folder of shipped lessons."""
    def use(src: Path):
        monkeypatch.setattr(cli, "copy_lessons", lambda dest, **kw: nbs.copy_lessons(dest, source=src, **kw))
    return use


# --- 5: a folder remembers its kind -------------------------------------------------------------
def test_a_new_folder_is_an_instructor_folder_and_says_so(tmp_path, capsys):
    r = nbs.copy_lessons(tmp_path / "i", source=shipped(tmp_path / "src"))
    assert r["kind"] == "instructor" and kind_in_manifest(tmp_path / "i") == "instructor"
    assert has_solutions(tmp_path / "i" / "01_a.ipynb")
    assert "(instructor copies: solutions included)" in capsys.readouterr().out
    assert nbs.folder_kind(tmp_path / "i") == "instructor" and nbs.folder_kind(tmp_path / "none") is None


def test_a_student_folder_stays_a_student_folder(tmp_path, lessons_from, capsys):
    src = shipped(tmp_path / "src")
    lessons_from(src)
    dest = tmp_path / "class"
    assert cli.main(["lessons", str(dest), "--student", "--no-launch"]) == 0
    shipped(src, "v2")  # a corrected course ships; the student runs the command without --student
    assert cli.main(["lessons", str(dest), "--no-launch"]) == 0
    for name in ("01_a.ipynb", "02_b.ipynb"):
        assert not has_solutions(dest / name), "a student folder got the solution versions"
        assert "x = 'v2'" in sources(dest / name)
    assert kind_in_manifest(dest) == "student"
    assert "(student copies: solutions left out)" in capsys.readouterr().out


def test_asking_for_the_other_kind_refuses_and_names_the_flag(tmp_path, lessons_from, capsys):
    lessons_from(shipped(tmp_path / "src"))
    dest = tmp_path / "class"
    cli.main(["lessons", str(dest), "--student", "--no-launch"])
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    capsys.readouterr()
    assert cli.main(["lessons", str(dest), "--instructor", "--no-launch"]) == 2
    err = capsys.readouterr().err
    assert "holds student copies" in err and "--change-kind" in err
    assert shlex.join(["diffedu", "lessons", str(dest), "--instructor", "--change-kind"]) in err
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before, "a refusal must change nothing"
    assert cli.main(["lessons", str(dest), "--change-kind", "--no-launch"]) == 2
    assert "--student or --instructor" in capsys.readouterr().err
    with pytest.raises(nbs.FolderKindError, match="change_kind=True") as info:
        nbs.copy_lessons(dest, student=False, source=tmp_path / "src")
    assert (info.value.have, info.value.want) == ("student", "instructor")
    with pytest.raises(SystemExit):
        cli.main(["lessons", str(dest), "--student", "--instructor"])


def test_change_kind_changes_it_and_says_what_it_did(tmp_path, lessons_from, capsys):
    lessons_from(shipped(tmp_path / "src"))
    dest = tmp_path / "class"
    cli.main(["lessons", str(dest), "--student", "--no-launch"])
    edit(dest / "02_b.ipynb")
    capsys.readouterr()
    assert cli.main(["lessons", str(dest), "--instructor", "--change-kind", "--no-launch"]) == 0
    out = capsys.readouterr().out
    assert f"{dest}: changing from student to instructor copies (solutions included)" in out
    assert kind_in_manifest(dest) == "instructor"
    assert has_solutions(dest / "01_a.ipynb")
    assert not has_solutions(dest / "02_b.ipynb") and "answer_1 = 'my answer'" in sources(dest / "02_b.ipynb")
    assert has_solutions(dest / "02_b.new.ipynb"), "the instructor version goes beside the kept lesson"
    assert "kept" in out and "02_b.new.ipynb" in out
    assert cli.main(["lessons", str(dest), "--no-launch"]) == 0  # and it stays an instructor folder
    assert kind_in_manifest(dest) == "instructor"


def test_a_folder_copied_before_kinds_were_recorded_is_judged_by_its_lessons(tmp_path):
    """diffedu 0.2's manifest held {name: sha256 of the bytes} and no kind."""
    src = shipped(tmp_path / "src")
    dest = tmp_path / "old"
    dest.mkdir()
    old = {}
    for p in nbs.lesson_files(src):
        data = nbs.notebook_bytes(nbs.student_notebook(load(p)))
        (dest / p.name).write_bytes(data)
        old[p.name] = nbs._sha(data)
    (dest / nbs.MANIFEST).write_text(json.dumps(old))
    assert nbs.folder_kind(dest) == "student"
    shipped(src, "v2")
    r = nbs.copy_lessons(dest, source=src, out=lambda msg: None)
    assert r["kind"] == "student" and r["updated"] == ["01_a.ipynb", "02_b.ipynb"]
    assert not has_solutions(dest / "01_a.ipynb") and kind_in_manifest(dest) == "student"


def test_python_m_diffedu_student_is_gone():
    import importlib.util

    assert importlib.util.find_spec("diffedu.student") is None  # test_cli checks no document names it


# --- 6: "you changed it" compares sources -------------------------------------------------------
def test_source_digest_ignores_outputs_counts_and_metadata(tmp_path):
    p = shipped(tmp_path) / "01_a.ipynb"
    before = nbs.source_digest(p.read_bytes())
    run_and_save(p)
    assert nbs.source_digest(p.read_bytes()) == before
    edit(p)
    assert nbs.source_digest(p.read_bytes()) != before
    nb = load(p)
    nb["cells"][0]["cell_type"] = "raw"
    assert nbs.source_digest(json.dumps(nb).encode()) != nbs.source_digest(p.read_bytes())
    assert nbs.source_digest(b"not json") is None
    with pytest.raises(TypeError, match="data"):
        nbs.source_digest(str(p))


def test_a_lesson_only_run_and_saved_gets_the_corrected_version(tmp_path):
    src = shipped(tmp_path / "src")
    dest = tmp_path / "work"
    nbs.copy_lessons(dest, student=True, source=src)
    run_and_save(dest / "01_a.ipynb")  # opened, Run All, autosaved
    run_and_save(dest / "02_b.ipynb")
    unchanged = nbs.copy_lessons(dest, source=src)  # nothing new shipped: their runs stay
    assert unchanged["unchanged"] == ["01_a.ipynb", "02_b.ipynb"]
    assert load(dest / "01_a.ipynb")["cells"][1]["outputs"][0]["text"] == "run 0\n"
    shipped(src, "v2")
    r = nbs.copy_lessons(dest, source=src)
    assert r["updated"] == ["01_a.ipynb", "02_b.ipynb"] and r["kept"] == [] and r["beside"] == []
    assert "x = 'v2'" in sources(dest / "01_a.ipynb")
    assert not (dest / "01_a.new.ipynb").exists()


def test_a_changed_lesson_is_kept_and_its_new_version_written_beside_it(tmp_path, capsys):
    src = shipped(tmp_path / "src")
    dest = tmp_path / "work"
    nbs.copy_lessons(dest, student=True, source=src)
    edit(dest / "01_a.ipynb")
    mine = (dest / "01_a.ipynb").read_bytes()
    shipped(src, "v2")
    capsys.readouterr()
    r = nbs.copy_lessons(dest, source=src)
    assert r["kept"] == ["01_a.ipynb"] and r["beside"] == ["01_a.new.ipynb"] and r["updated"] == ["02_b.ipynb"]
    assert (dest / "01_a.ipynb").read_bytes() == mine
    assert "x = 'v2'" in sources(dest / "01_a.new.ipynb") and not has_solutions(dest / "01_a.new.ipynb")
    out = capsys.readouterr().out
    assert f"kept {dest / '01_a.ipynb'} (you changed its code or text)" in out
    assert f"the new version is beside it: {dest / '01_a.new.ipynb'}" in out
    assert [p.name for p in nbs.lesson_files(dest)] == ["01_a.ipynb", "02_b.ipynb"], "a .new file is no lesson"
    # v3 ships: the version beside it, which the learner did not touch, follows
    shipped(src, "v3")
    assert nbs.copy_lessons(dest, source=src, out=lambda m: None)["beside"] == ["01_a.new.ipynb"]
    assert "x = 'v3'" in sources(dest / "01_a.new.ipynb")
    # the learner works in the .new copy too: neither is overwritten, and it says so
    edit(dest / "01_a.new.ipynb", "more work")
    shipped(src, "v4")
    capsys.readouterr()
    r = nbs.copy_lessons(dest, source=src)
    assert r["kept"] == ["01_a.ipynb"] and r["beside"] == []
    assert "answer_1 = 'more work'" in sources(dest / "01_a.new.ipynb")
    assert "(you changed both): the new version was not copied" in capsys.readouterr().out


def test_a_file_that_is_not_a_notebook_is_kept(tmp_path):
    src = shipped(tmp_path / "src")
    dest = tmp_path / "work"
    nbs.copy_lessons(dest, source=src)
    (dest / "02_b.ipynb").write_text("{ broken")
    shipped(src, "v2")
    assert nbs.copy_lessons(dest, source=src, out=lambda m: None)["kept"] == ["02_b.ipynb"]
    assert (dest / "02_b.ipynb").read_text() == "{ broken"
    (dest / nbs.MANIFEST).write_text("{ broken")  # an unreadable manifest reads as none
    assert nbs.copy_lessons(dest, source=src, out=lambda m: None)["unchanged"] == ["01_a.ipynb"]


# --- 7: JupyterLab options, root ------------------------------------------------------------------
@pytest.fixture
def calls(monkeypatch):
    made = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, cwd=None: made.append((cmd, cwd)) or 0)
    return made


def test_options_after_double_dash_go_to_jupyterlab(tmp_path, calls, monkeypatch, lessons_from):
    lessons_from(shipped(tmp_path / "src"))
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0, raising=False)
    assert cli.main(["lessons", str(tmp_path / "d"), "--student", "--", *LAB]) == 0
    (cmd, cwd), = calls
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"] and cmd[4:] == LAB
    assert cmd[3] == f"--ServerApp.root_dir={(tmp_path / 'd').resolve()}" and Path(cwd) == tmp_path / "d"
    args = cli.parse_args(["lessons", "x", "--no-launch", "--", "--port", "1", "--", "y"])
    assert args.lab_args == ["--port", "1", "--", "y"] and args.dest == "x" and args.no_launch
    assert cli.parse_args(["lessons"]).lab_args == []
    with pytest.raises(SystemExit):
        cli.parse_args(["index", "--", "--port", "1"])


def test_as_root_without_allow_root_it_says_what_to_add(tmp_path, calls, monkeypatch, capsys, lessons_from):
    lessons_from(shipped(tmp_path / "src"))
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0, raising=False)
    dest = str(tmp_path / "d")
    assert cli.main(["lessons", dest, "--", "--port", "8890"]) == 1
    assert calls == [], "JupyterLab must not be started as root without --allow-root"
    err = capsys.readouterr().err
    assert "refuses to run as root" in err
    assert shlex.join(["diffedu", "lessons", dest, "--", "--port", "8890", "--allow-root"]) in err
    assert "--ip 0.0.0.0" in err and "--no-browser" in err
    assert cli.launch(dest, ["--ServerApp.allow_root=True"]) == 0 and len(calls) == 1


def test_not_root_needs_no_allow_root(tmp_path, calls, monkeypatch):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000, raising=False)
    assert cli.launch_refusal(tmp_path) is None
    assert cli.launch(tmp_path) == 0
    (cmd, _), = calls
    assert cmd[3:] == [f"--ServerApp.root_dir={tmp_path.resolve()}"]
    with pytest.raises(TypeError, match="lab_args"):
        cli.launch(tmp_path, "--allow-root")


def test_without_jupyterlab_it_says_what_to_install(tmp_path, calls, monkeypatch):
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name: None if name == "jupyterlab" else real(name))
    assert 'pip install "diffedu[lessons]"' in cli.launch_refusal(tmp_path)
    assert cli.launch(tmp_path, ["--allow-root"]) == 1 and calls == []
