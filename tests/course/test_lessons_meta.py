"""Lesson notebooks follow the house rules, and their metadata feeds the README's lesson index."""

import ast
import json
import re
from pathlib import Path

import pytest

from diffedu.course import notebooks

REPO = Path(__file__).resolve().parents[2]
LESSONS = notebooks.lesson_files(REPO / "lessons")
IDS = [p.stem for p in LESSONS]
CHECK = re.compile(r"\b\w+\.check_\w+\(")  # an answer checker: lesson.check_xxx(answer_k, ...)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def load(p):
    return json.loads(p.read_text())


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def src(c):
    return "".join(c["source"])


def tags(c):
    return c.get("metadata", {}).get("tags", [])


def test_lessons_exist_and_are_numbered_in_order():
    assert len(LESSONS) >= 1
    nums = [notebooks.lesson_meta(p)["number"] for p in LESSONS]
    assert nums == list(range(1, len(LESSONS) + 1))
    assert [int(p.name[:2]) for p in LESSONS] == nums


def test_readme_index_is_generated_from_metadata():
    readme = REPO / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not in this checkout")
    text = readme.read_text()
    table = notebooks.lesson_table(LESSONS, notebooks.lesson_costs(REPO / "lessons"))
    assert notebooks.readme_with_index(text, table) == text, (
        "README lesson index is stale: paste the output of `diffedu index` between the lesson-index markers")


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_opening_cell_states_scope_and_run_time(path):
    nb = load(path)
    first = src(nb["cells"][0])
    assert nb["cells"][0]["cell_type"] == "markdown"
    for phrase in ("What it teaches", "What it assumes", "Run time"):
        assert phrase in first
    # the run time is costs.json's, written by diffedu measure: tests/course/test_run_time_headers.py


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_first_code_cell_imports_and_seeds(path):
    cell = src(code_cells(load(path))[0])
    tree = ast.parse(cell)
    assert any(isinstance(n, (ast.Import, ast.ImportFrom)) and "diffedu" in ast.unparse(n) for n in tree.body)
    others = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    assert len(others) == 1 and "torch.Generator().manual_seed(" in ast.unparse(others[0])


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_lessons_define_no_functions_or_classes(path):
    """Lessons call the library. The one exception: a solution cell of an exercise where the
    learner writes a method (checked by ``check_implementation``) defines that function."""
    for c in code_cells(load(path)):
        tree = ast.parse(src(c))
        learners = {id(n) for n in tree.body if isinstance(n, ast.FunctionDef)} if "solution" in tags(c) else set()
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) or id(node) in learners, (
                f"{path.name}: lessons call the library, they do not define {node.name}")


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_exercises_have_solutions_and_checks(path):
    cells = code_cells(load(path))
    sol = [i for i, c in enumerate(cells) if "solution" in tags(c)]
    assert len(sol) >= 2
    for i in sol:
        tree = ast.parse(src(cells[i]))
        names = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name)}
        names |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}  # a method the learner writes
        # the learner's cell before it leaves the answer (a value or a function) as None, the cell
        # after checks it
        answer = sorted(n for n in names if re.search(rf"^{n} = None", src(cells[i - 1]), re.M))
        assert answer, f"solution cell {i} must define the name that the cell before it sets to None"
        assert CHECK.search(src(cells[i + 1])) and answer[0] in src(cells[i + 1])
    assert CHECK.search(src(cells[-1])), "a lesson ends with its exercises"


def widget_cells(path):
    """Cells that make a widget (``lesson.xxx_widget(...)``, ``interact``) or store one."""
    return [c for c in code_cells(load(path))
            if any(WIDGET_VIEW in o.get("data", {}) for o in c["outputs"])
            or re.search(r"\.\w+_widget\(|\binteract(?:ive)?\(", src(c))]


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_widget_cells_ignore_output(path):
    for c in widget_cells(path):  # nbval cannot compare what a widget draws
        assert src(c).startswith("# NBVAL_IGNORE_OUTPUT"), f"{path.name}: {src(c)[:60]!r}"


def test_widget_cells_are_recognised():
    assert sum(len(widget_cells(p)) for p in LESSONS) > 0, "no widget cell found: update widget_cells"


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_stored_outputs_are_complete(path):
    cells = code_cells(load(path))
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1)), (
        "store lessons executed top to bottom: diffedu regenerate")
    for c in cells:
        for o in c["outputs"]:
            assert o["output_type"] != "error"
            assert o.get("name") != "stderr", f"{path.name}: stderr output {o.get('text')!r}"
        assert "ExecuteTime" not in c.get("metadata", {}) and "execution" not in c.get("metadata", {})
