"""Student copies: no solution text anywhere, checkers unanswered, and the copies run under nbval."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffedu import cli, student

REPO = Path(__file__).resolve().parent.parent
LESSONS = cli.lesson_files(REPO / "lessons")
IDS = [p.stem for p in LESSONS]
# nbval on the student copies re-runs lessons: by default only as many as fit in this many seconds
# of the lessons' stated CPU time (lesson 01 always); DIFFEDU_STUDENT_NBVAL_BUDGET=0 runs them all.
BUDGET = float(os.environ.get("DIFFEDU_STUDENT_NBVAL_BUDGET", "25"))


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_student_copy_carries_no_solution_text(path):
    nb = json.loads(path.read_text())
    copy = student.student_notebook(nb)
    n_sol = sum(student.is_solution(c) for c in nb["cells"])
    assert n_sol >= 1 and len(copy["cells"]) == len(nb["cells"]) - n_sol
    assert not any(student.is_solution(c) for c in copy["cells"])
    text = json.dumps(copy)  # sources, outputs and metadata
    src_lines = {ln.strip() for c in copy["cells"] for ln in "".join(c["source"]).splitlines()}
    # a solution line may not be a line of the copy, nor (when long enough to be specific,
    # unlike "t = 0.4", which the question itself states) occur anywhere in it
    leaked = [ln for ln in student.solution_lines(nb)
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
    out = student.student_notebook({"cells": cells, "metadata": {}})["cells"]
    assert [c["source"] for c in out] == srcs[:2] + srcs[3:]
    cleared = [c["source"] for c in out if c["execution_count"] is None]
    assert cleared == ["ex.check_close(answer_1, 2)", "print(B)", "%time z = answer_1"]
    assert all(c["outputs"] == [] for c in out if c["execution_count"] is None)
    assert all(c["outputs"] for c in out if c["execution_count"] is not None)
    assert student.solution_lines({"cells": cells}) == {"B = 2", "answer_1 = B"}


def test_cli_student_flag_uses_the_same_copy(tmp_path):
    cli.main(["lessons", str(tmp_path / "s"), "--no-launch", "--student"])
    for p in LESSONS:
        got = json.loads((tmp_path / "s" / p.name).read_text())
        assert got == student.student_notebook(json.loads(p.read_text()))


def _within_budget():
    chosen, total = [], 0.0
    for p in LESSONS:
        secs = cli.lesson_meta(p)["cpu_seconds"]
        if chosen and BUDGET > 0 and total + secs > BUDGET:
            break
        chosen.append(p)
        total += secs
    return chosen


def test_student_copies_run_under_nbval(tmp_path):
    """Full nbval: cells before the exercises must reproduce the stored outputs; the exercise cells
    (cleared, no execution count) must run without raising, the checkers saying "not answered yet"."""
    paths = student.write_student_copies(tmp_path, _within_budget())
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("MPLBACKEND", None)
    env.pop("DIFFEDU_STATIC_FALLBACKS", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"),
           "--rootdir", str(tmp_path), "--nbval", "--nbval-current-env", "--nbval-cell-timeout=300",
           "--nbval-sanitize-with", str(REPO / "lessons" / "sanitize.cfg"), *map(str, paths)]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert " passed" in res.stdout
