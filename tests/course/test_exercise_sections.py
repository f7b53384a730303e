r"""Each lesson's exercises run in a fresh kernel after only the cells their section names.

A student who jumps to the exercises must not meet a NameError. The mechanism, in every lesson:

* the code cells the exercises need (always the import cell, then the cells that define what
  the exercises use: ``vp``, ``x``, ``chain``, ...) carry the cell tag ``exercise-setup``;
* the markdown cell that opens ``## Exercises`` says, right under the heading, which cells those
  are, in the words :func:`run_first` makes from the tags, e.g. "**Run first:** the import cell
  at the top and the first code cell of section 1. The exercises use nothing else from the
  lesson." (a test keeps the sentence and the tags in step).

The test builds, for each lesson, a notebook of the tagged cells followed by every code cell
after the ``## Exercises`` heading (solutions in place), runs it in one fresh kernel with
nbclient and checks that no cell raises and that every checker says "Correct". Random draws
differ from a full run (the generator has drawn less), which the checkers do not mind: they
compute the expected value from the same inputs.
"""

import json
import re
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
LESSONS = sorted((REPO / "lessons").glob("[0-9][0-9]_*.ipynb"))
TAG = "exercise-setup"
HEADING = re.compile(r"^## Exercises[ \t]*$", re.MULTILINE)
SECTION = re.compile(r"^## (\d+)\.", re.MULTILINE)
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]


def _src(cell):
    return "".join(cell["source"])


def exercises_index(cells) -> int:
    """The index of the markdown cell holding the ``## Exercises`` heading."""
    found = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and HEADING.search(_src(c))]
    assert len(found) == 1, "a lesson has one '## Exercises' heading"
    return found[0]


def setup_cells(cells) -> list[int]:
    return [i for i, c in enumerate(cells) if TAG in c.get("metadata", {}).get("tags", [])]


def _join(words):
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def run_first(cells) -> str:
    """The sentence that names the tagged cells: each by its place among the code cells of its
    numbered section (``## 3. ...``); a cell before the first section is the import cell."""
    places, section, k = {}, None, 0
    for i, c in enumerate(cells):
        if c["cell_type"] == "markdown":
            heads = SECTION.findall(_src(c))
            if heads:
                section, k = heads[-1], 0
            continue
        k += 1
        if TAG in c.get("metadata", {}).get("tags", []):
            places.setdefault(section, []).append(k)
    parts = []
    for section, ks in places.items():
        if section is None:
            assert ks == [1], "before the first section only the import cell can be named"
            parts.append("the import cell at the top")
        else:
            plural = "s" if len(ks) > 1 else ""
            parts.append(f"the {_join([ORDINALS[k - 1] for k in ks])} code cell{plural} of section {section}")
    return f"**Run first:** {_join(parts)}. The exercises use nothing else from the lesson."


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_exercise_section_names_its_cells(path):
    cells = json.loads(path.read_text())["cells"]
    ex, tagged = exercises_index(cells), setup_cells(cells)
    first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    assert tagged and tagged[0] == first_code, "the import cell is always needed: tag it exercise-setup"
    assert tagged[-1] < ex and all(cells[i]["cell_type"] == "code" for i in tagged)
    text = _src(cells[ex])
    after = text[HEADING.search(text).end():].lstrip("\n")
    assert after.startswith(run_first(cells)), (
        f"{path.name}: the exercises should open with\n{run_first(cells)}\n(made from the cells tagged {TAG!r})")


def _exercise_notebook(cells):
    ex = exercises_index(cells)
    chosen = [cells[i] for i in setup_cells(cells)] + [c for c in cells[ex + 1:] if c["cell_type"] == "code"]
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(_src(c)) for c in chosen]
    return nb


def test_exercises_run_in_a_fresh_kernel_after_the_named_cells(tmp_path, monkeypatch):
    """All lessons, one fresh kernel each, one after the other (about a minute and a half here)."""
    from diffedu.course import site

    monkeypatch.delenv("MPLBACKEND", raising=False)  # kernels inherit it and would lose inline figures
    failures, times = [], {}
    for path in LESSONS:
        cells = json.loads(path.read_text())["cells"]
        nb = _exercise_notebook(cells)
        t0 = time.perf_counter()
        try:  # in a child process, killed and rerun if nbclient hangs on a widget cell (nbclient#312)
            nb = site.execute_notebook(nb, tmp_path, timeout=90, attempts=4)
        except site.NotebookRunError as exc:
            failures.append(f"{path.name}: {str(exc)[:1500]}")
            continue
        finally:
            times[path.stem[:2]] = round(time.perf_counter() - t0, 1)
        said = "".join(o.get("text", "") for c in nb.cells for o in c.outputs if o.get("name") == "stdout")
        checks = [line for line in said.splitlines() if line.startswith(("Correct", "Not yet"))]
        n_solutions = sum("solution" in c.get("metadata", {}).get("tags", []) for c in cells)
        if len(checks) != n_solutions or not all(line.startswith("Correct") for line in checks):
            failures.append(f"{path.name}: {n_solutions} solutions, and the checkers said {checks}")
    print("seconds per lesson:", times)
    assert not failures, "\n\n".join(failures)
