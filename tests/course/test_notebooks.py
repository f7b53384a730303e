"""diffedu.course.notebooks: finding lessons, metadata and costs, student copies, copying, the table."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from diffedu import _paths
from diffedu.course import notebooks as nbs
from diffedu.course import site

REPO = Path(__file__).resolve().parents[2]
LESSONS = nbs.lesson_files(REPO / "lessons")
IDS = [p.stem for p in LESSONS]
# nbval on the student copies re-runs lessons: by default only as many as fit in this many seconds
# of the lessons' stated CPU time (lesson 01 always); DIFFEDU_STUDENT_NBVAL_BUDGET=0 runs them all.
BUDGET = float(os.environ.get("DIFFEDU_STUDENT_NBVAL_BUDGET", "25"))


def fake_lessons(d: Path, text="v1", meta=True):
    d.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(("01_a.ipynb", "02_b.ipynb")):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(f"x = '{text}'"),
                    nbformat.v4.new_code_cell("x = 'answer'", metadata={"tags": ["solution"]})]
        if meta:
            nb.metadata["diffedu"] = {"number": i + 1, "title": f"Lesson {name[3]}", "teaches": "t",
                                      "assumes": "a", "cpu_seconds": 5}
        nbformat.write(nb, d / name)
    (d / "sanitize.cfg").write_text("[x]\n")
    return d


# --- finding lessons, metadata, costs -------------------------------------------------------------
def test_lessons_are_found_in_the_source_checkout():
    assert nbs.lesson_files() == LESSONS and _paths.lessons_dir() == REPO / "lessons"
    assert [p.name[:2] for p in LESSONS] == [f"{i + 1:02d}" for i in range(len(LESSONS))]


def test_bad_arguments_name_themselves(tmp_path):
    with pytest.raises(TypeError, match="directory"):
        nbs.lesson_files(3)
    with pytest.raises(TypeError, match="dest"):
        nbs.copy_lessons(None)
    with pytest.raises(TypeError, match="student"):
        nbs.copy_lessons(tmp_path, student="yes")
    with pytest.raises(TypeError, match="nb"):
        nbs.student_notebook([])
    with pytest.raises(ValueError, match="cells"):
        nbs.solution_lines({"metadata": {}})
    with pytest.raises(TypeError, match="link"):
        nbs.lesson_table(LESSONS, {}, link="lessons/")
    with pytest.raises(TypeError, match="costs"):
        nbs.lesson_table(LESSONS, None)
    with pytest.raises(TypeError, match="lessons"):
        nbs.lesson_table(LESSONS[0], {})
    with pytest.raises(ValueError, match="markers"):
        nbs.readme_with_index("# no markers", "| table |")


def test_lesson_meta_names_the_missing_key(tmp_path):
    src = fake_lessons(tmp_path, meta=False)
    with pytest.raises(ValueError, match="01_a.ipynb.*no 'diffedu' block"):
        nbs.lesson_meta(src / "01_a.ipynb")
    nb = nbformat.read(src / "01_a.ipynb", as_version=4)
    nb.metadata["diffedu"] = {"number": 1, "title": "A", "teaches": "t", "assumes": "a"}
    nbformat.write(nb, src / "01_a.ipynb")
    with pytest.raises(ValueError, match="lacks 'cpu_seconds'"):
        nbs.lesson_meta(src / "01_a.ipynb")


def test_costs_and_the_lesson_table(tmp_path):
    src = fake_lessons(tmp_path)
    assert nbs.lesson_costs(src) == {}
    (src / nbs.COSTS_FILE).write_text(json.dumps({"lessons": {"01_a.ipynb": {"wall_s": 12.3, "peak_mb": 456.0}}}))
    costs = nbs.lesson_costs(src)
    assert nbs.cost_cells("01_a.ipynb", costs) == ("456 MB", "12 s")
    assert nbs.cost_cells("02_b.ipynb", costs) == ("not measured", "not measured")
    header, rule, *rows = nbs.lesson_table(nbs.lesson_files(src), costs).splitlines()
    assert header.startswith("| # | lesson |") and len(rows) == 2
    assert rows[0] == "| 01 | [Lesson a](lessons/01_a.ipynb) | t | a | 456 MB | 12 s |"  # measured, not typed
    linked = nbs.lesson_table(nbs.lesson_files(src), costs, link=lambda p: f"https://x/{p.stem}")
    assert "[Lesson b](https://x/02_b)" in linked


def test_readme_with_index_replaces_only_the_marked_block():
    text = f"head\n{nbs.INDEX_START}\nold\n{nbs.INDEX_END}\ntail\n"
    assert nbs.readme_with_index(text, "new") == f"head\n{nbs.INDEX_START}\nnew\n{nbs.INDEX_END}\ntail\n"


# --- copying lessons ------------------------------------------------------------------------------
def test_copy_never_overwrites_a_changed_notebook(tmp_path, capsys):
    src = fake_lessons(tmp_path / "src")
    dest = tmp_path / "work"
    r = nbs.copy_lessons(dest, source=src)
    assert r["copied"] == ["01_a.ipynb", "02_b.ipynb"]
    assert not (dest / "sanitize.cfg").exists()
    assert nbs.copy_lessons(dest, source=src)["unchanged"] == ["01_a.ipynb", "02_b.ipynb"]
    # the learner edits lesson 1; then a new version of the course ships
    mine = (dest / "01_a.ipynb").read_text().replace("v1", "my notes")
    (dest / "01_a.ipynb").write_text(mine)
    fake_lessons(src, text="v2")
    capsys.readouterr()
    r = nbs.copy_lessons(dest, source=src)
    assert r["kept"] == ["01_a.ipynb"] and r["updated"] == ["02_b.ipynb"]
    assert (dest / "01_a.ipynb").read_text() == mine
    assert "v2" in (dest / "02_b.ipynb").read_text()
    assert f"kept {dest / '01_a.ipynb'}" in capsys.readouterr().out
    # a file that was there before any copy (no record) and differs is kept too
    (dest / nbs.MANIFEST).unlink()
    (dest / "02_b.ipynb").write_text("{}")
    assert nbs.copy_lessons(dest, source=src)["kept"] == ["01_a.ipynb", "02_b.ipynb"]


def test_student_copy_drops_solutions(tmp_path):
    src = fake_lessons(tmp_path / "src")
    nbs.copy_lessons(tmp_path / "s", source=src, student=True)
    nb = json.loads((tmp_path / "s" / "01_a.ipynb").read_text())
    assert ["".join(c["source"]) for c in nb["cells"]] == ["x = 'v1'"]


# --- student copies -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_student_copy_carries_no_solution_text(path):
    nb = json.loads(path.read_text())
    copy = nbs.student_notebook(nb)
    n_sol = sum(nbs.is_solution(c) for c in nb["cells"])
    assert n_sol >= 1 and len(copy["cells"]) == len(nb["cells"]) - n_sol
    assert not any(nbs.is_solution(c) for c in copy["cells"])
    text = json.dumps(copy)  # sources, outputs and metadata
    src_lines = {ln.strip() for c in copy["cells"] for ln in "".join(c["source"]).splitlines()}
    # a solution line may not be a line of the copy, nor (when long enough to be specific,
    # unlike "t = 0.4", which the question itself states) occur anywhere in it
    leaked = [ln for ln in nbs.solution_lines(nb)
              if ln in src_lines or (len(ln) >= 16 and json.dumps(ln)[1:-1] in text)]
    assert leaked == [], f"{path.name}: solution lines in the student copy: {leaked}"
    assert "Correct (" not in text, "outputs made with the solutions in place must be cleared"
    assert nb == json.loads(path.read_text()), "student_notebook must not modify its input"


def test_only_cells_that_use_a_solution_lose_their_outputs():
    srcs = ["x = 1", "answer_1 = None", "B = 2\nanswer_1 = B", "ex.check_close(answer_1, 2)",
            "y = x + 1", "print(B)", "%time z = answer_1", "answer_1 = None", "answer_1"]
    cells = [{"cell_type": "code", "metadata": {}, "source": s, "outputs": [{"text": s}], "execution_count": i}
             for i, s in enumerate(srcs)]
    cells[2]["metadata"]["tags"] = ["solution"]
    out = nbs.student_notebook({"cells": cells, "metadata": {}})["cells"]
    assert [c["source"] for c in out] == srcs[:2] + srcs[3:]
    cleared = [c["source"] for c in out if c["execution_count"] is None]
    assert cleared == ["ex.check_close(answer_1, 2)", "print(B)", "%time z = answer_1"]
    assert all(c["outputs"] == [] for c in out if c["execution_count"] is None)
    assert all(c["outputs"] for c in out if c["execution_count"] is not None)
    assert nbs.solution_lines({"cells": cells}) == {"B = 2", "answer_1 = B"}


def test_a_solution_that_defines_a_function_clears_the_cells_that_call_it():
    # an implementation exercise: the solution is `def euler_step(...)`, the checker cell reads it
    srcs = ["def euler_step(x, h):\n    v = -x\n    return x + h * v", "lesson.check_euler_step(euler_step)",
            "import math as m\nclass Step:\n    pass", "print(m.pi, Step)", "v = 3\nprint(v)"]
    cells = [{"cell_type": "code", "metadata": {}, "source": s, "outputs": [{"text": "Correct (x)"}],
              "execution_count": i} for i, s in enumerate(srcs)]
    cells[0]["metadata"]["tags"] = ["solution"]
    cells[2]["metadata"]["tags"] = ["solution"]
    out = nbs.student_notebook({"cells": cells, "metadata": {}})["cells"]
    assert [c["source"] for c in out] == [srcs[1], srcs[3], srcs[4]]
    assert [c["outputs"] for c in out[:2]] == [[], []]
    assert out[2]["outputs"], "a cell binding a name the solution's body used locally keeps its outputs"


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_student_copy_runs_top_to_bottom(lesson, tmp_path):
    nb = nbformat.reads(json.dumps(nbs.student_notebook(json.loads(lesson.read_text()))), as_version=4)
    n_sol = len(nbformat.read(lesson, as_version=4).cells) - len(nb.cells)
    assert n_sol >= 2, "every lesson has at least two solution cells"
    nb = site.execute_notebook(nb, tmp_path, timeout=90, attempts=4)  # rerun if nbclient hangs (nbclient#312)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert text.count("not answered yet") >= 2
    assert "Correct" not in text


def _within_budget():
    chosen, total = [], 0.0
    for p in LESSONS:
        secs = nbs.lesson_meta(p)["cpu_seconds"]
        if chosen and BUDGET > 0 and total + secs > BUDGET:
            break
        chosen.append(p)
        total += secs
    return chosen


def test_student_copies_run_under_nbval(tmp_path):
    """Full nbval: cells before the exercises must reproduce the stored outputs; the exercise cells
    (cleared, no execution count) must run without raising, the checkers saying "not answered yet"."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for p in _within_budget():
        shutil.copyfile(p, shipped / p.name)
    work = tmp_path / "work"
    copied = nbs.copy_lessons(work, student=True, source=shipped, out=lambda msg: None)["copied"]
    (work / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("MPLBACKEND", None)
    env.pop("DIFFEDU_STATIC_FALLBACKS", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(work / "pytest.ini"),
           "--rootdir", str(work), "--nbval", "--nbval-current-env", "--nbval-cell-timeout=300",
           "--nbval-sanitize-with", str(REPO / "lessons" / "sanitize.cfg"), *copied]
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert " passed" in res.stdout
