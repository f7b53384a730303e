r"""The lesson notebooks as files: finding them, their metadata and costs, student copies, the index.

What both the console command (:mod:`diffedu.course.cli`) and the site
(:mod:`diffedu.course.site`) need lives here; they import this module, not each other.

* Lessons are ``NN_topic.ipynb`` in :func:`diffedu._paths.lessons_dir`, in teaching order
  (:func:`lesson_files`). Each carries a ``diffedu`` block in its notebook metadata
  (:func:`lesson_meta`); ``lessons/costs.json`` holds the measured peak memory and wall time
  (:func:`lesson_costs`, written by ``diffedu measure``).
* Student copies: solutions are code cells tagged ``solution`` (the cell before assigns
  ``answer_k = None``, the cell after calls a ``check_*`` checker). A student copy drops them
  and clears, with no execution count, the stored outputs of the cells that use what a solution
  bound (directly or through another such cell): nbval then runs those cells without comparing
  them, and the checkers print "not answered yet". Every other output stays.
* :func:`copy_lessons` copies lessons into a folder, never overwriting one the learner changed.
* :func:`lesson_table` is the one lesson table: the README's index and the site's front page.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import os
import re
from pathlib import Path

from .. import _paths

__all__ = ["MANIFEST", "META_KEY", "COSTS_FILE", "SOLUTION_TAG", "INDEX_START", "INDEX_END",
           "lesson_files", "lesson_meta", "lesson_costs", "cost_cells", "is_solution",
           "student_notebook", "solution_lines", "notebook_bytes", "copy_lessons", "lesson_table",
           "readme_with_index"]

MANIFEST = ".diffedu-lessons.json"
META_KEY = "diffedu"
COSTS_FILE = "costs.json"
SOLUTION_TAG = "solution"
INDEX_START = "<!-- lesson-index:start -->"
INDEX_END = "<!-- lesson-index:end -->"
_META_KEYS = ("number", "title", "teaches", "assumes", "cpu_seconds")


def _folder(directory, name: str) -> Path:
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path; got {type(directory).__name__}")
    return Path(directory)


# --- finding lessons, their metadata and costs -------------------------------------------------
def lesson_files(directory=None) -> list[Path]:
    """The lesson notebooks ``NN_topic.ipynb`` of ``directory`` in teaching order.

    Default: :func:`diffedu._paths.lessons_dir` (the checkout's ``lessons/`` or the wheel's).
    """
    d = _paths.lessons_dir() if directory is None else _folder(directory, "directory")
    return sorted(d.glob("[0-9][0-9]_*.ipynb"))


def lesson_meta(path) -> dict:
    """The ``diffedu`` block of a lesson's notebook metadata.

    Holds number, title, teaches, assumes and cpu_seconds; raises ``ValueError`` naming the file
    and the missing key.
    """
    nb = json.loads(_folder(path, "path").read_text())
    meta = nb.get("metadata", {}).get(META_KEY)
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: notebook metadata has no '{META_KEY}' block")
    for key in _META_KEYS:
        if key not in meta:
            raise ValueError(f"{path}: metadata '{META_KEY}' lacks '{key}'")
    return meta


def lesson_costs(directory=None) -> dict:
    """Measured costs ``{notebook name: {"wall_s": float, "peak_mb": float}}`` from costs.json.

    Read from ``directory`` (default: the lessons folder); empty when nothing was measured yet.
    """
    d = _paths.lessons_dir() if directory is None else _folder(directory, "directory")
    path = d / COSTS_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("lessons", {})


def cost_cells(name: str, costs: dict) -> tuple[str, str]:
    """The two table cells of one lesson: measured peak memory and wall time, or "not measured"."""
    c = costs.get(name)
    if not c:
        return "not measured", "not measured"
    return f"{c['peak_mb']:.0f} MB", f"{c['wall_s']:.0f} s"


# --- student copies -----------------------------------------------------------------------------
def is_solution(cell: dict) -> bool:
    """Whether a notebook cell (a dict) is tagged ``solution``."""
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def _names(source: str) -> tuple[set, set]:
    """Names a cell reads and names it binds; unparsable cells (magics) read every identifier."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(re.findall(r"[A-Za-z_]\w*", source)), set()
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name)]
    return ({n.id for n in names if isinstance(n.ctx, ast.Load)},
            {n.id for n in names if isinstance(n.ctx, (ast.Store, ast.Del))})


def _source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def _check_notebook(nb) -> None:
    if not isinstance(nb, dict):
        raise TypeError(f"nb must be a notebook as a dict; got {type(nb).__name__}")
    if not isinstance(nb.get("cells"), list):
        raise ValueError("nb must have a list of 'cells'")


def student_notebook(nb: dict) -> dict:
    """A student copy of a notebook (as a dict); the input is not modified.

    Solution cells are dropped; the outputs of cells that read a name a solution bound (directly
    or through another such cell) are cleared, with no execution count.
    """
    _check_notebook(nb)
    out = copy.deepcopy(nb)
    cells, tainted = [], set()
    for cell in out["cells"]:
        if cell["cell_type"] != "code":
            cells.append(cell)
            continue
        reads, binds = _names(_source(cell))
        if is_solution(cell):
            tainted |= binds
            continue
        if reads & tainted:
            cell["outputs"], cell["execution_count"] = [], None
            tainted |= binds
        else:
            tainted -= binds  # rebound from scratch, e.g. the next exercise's `answer = None`
        cells.append(cell)
    out["cells"] = cells
    return out


def solution_lines(nb: dict) -> set[str]:
    """The lines of solution cells that appear nowhere else in the notebook's sources.

    These must not occur anywhere in a student copy (sources, outputs or metadata).
    """
    _check_notebook(nb)

    def lines(cell):
        return {ln.strip() for ln in _source(cell).splitlines()
                if ln.strip() and not ln.strip().startswith("#")}

    sol = set().union(*[lines(c) for c in nb["cells"] if is_solution(c)])
    rest = set().union(*[lines(c) for c in nb["cells"] if not is_solution(c)])
    return sol - rest


def notebook_bytes(nb: dict) -> bytes:
    """A notebook dict as the bytes :func:`copy_lessons` writes (nbformat's JSON layout)."""
    _check_notebook(nb)
    return (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode()


# --- copying lessons into a learner's folder ---------------------------------------------------
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _copy_kind(target: Path, new_sha: str, recorded: str | None) -> str:
    """copied (new file), unchanged, updated (the learner left it as copied) or kept."""
    if not target.exists():
        return "copied"
    have = _sha(target.read_bytes())
    if have == new_sha:
        return "unchanged"
    return "updated" if recorded == have else "kept"


def copy_lessons(dest, *, student: bool = False, source=None, out=print) -> dict:
    """Copy the lessons of ``source`` (default: every lesson) into ``dest``.

    A notebook the learner changed is never overwritten: the manifest ``dest/.diffedu-lessons.json``
    records what was copied, and a file that differs from both the record and the new lesson is
    *kept* (``out`` says so). ``student`` drops the solution cells (:func:`student_notebook`).
    Returns ``{"copied": [...], "updated": [...], "kept": [...], "unchanged": [...]}`` (file names).
    """
    dest = _folder(dest, "dest")
    if not isinstance(student, bool):
        raise TypeError(f"student must be a bool; got {type(student).__name__}")
    dest.mkdir(parents=True, exist_ok=True)
    mpath = dest / MANIFEST
    manifest = json.loads(mpath.read_text()) if mpath.exists() else {}
    report = {"copied": [], "updated": [], "kept": [], "unchanged": []}
    for src in lesson_files(source):
        data = src.read_bytes()
        if student:
            data = notebook_bytes(student_notebook(json.loads(data)))
        kind = _copy_kind(dest / src.name, _sha(data), manifest.get(src.name))
        report[kind].append(src.name)
        if kind == "kept":
            out(f"kept {dest / src.name} (you changed it; the new version was not copied)")
            continue
        if kind != "unchanged":
            (dest / src.name).write_bytes(data)
        manifest[src.name] = _sha(data)
    mpath.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    n_new = len(report["copied"]) + len(report["updated"])
    out(f"{n_new} lesson(s) copied to {dest}, {len(report['unchanged'])} already up to date, "
        f"{len(report['kept'])} kept")
    return report


# --- the lesson table: README index and site front page ----------------------------------------
def _readme_link(path: Path) -> str:
    return f"lessons/{path.name}"


def lesson_table(lessons, costs: dict, *, link=_readme_link) -> str:
    """The lesson table (Markdown) from lesson metadata and measured costs.

    ``lessons``: notebook paths in order; ``costs``: as :func:`lesson_costs` returns;
    ``link(path)``: the link target of a lesson's title (default ``lessons/NN_topic.ipynb``, which
    is right for the README and for a site whose lesson pages sit in ``lessons/``).
    """
    if isinstance(lessons, (str, os.PathLike)):
        raise TypeError("lessons must be a list of notebook paths, not one path")
    if not isinstance(costs, dict):
        raise TypeError(f"costs must be a dict; got {type(costs).__name__}")
    if not callable(link):
        raise TypeError(f"link must be callable (a path -> a link target); got {type(link).__name__}")
    rows = ["| # | lesson | what it teaches | assumes | CPU time | peak memory | measured time |",
            "|---|---|---|---|---|---|---|"]
    for p in map(Path, lessons):
        m = lesson_meta(p)
        mem, wall = cost_cells(p.name, costs)
        rows.append(f"| {m['number']:02d} | [{m['title']}]({link(p)}) | {m['teaches']} | "
                    f"{m['assumes']} | about {m['cpu_seconds']} s | {mem} | {wall} |")
    return "\n".join(rows)


def readme_with_index(readme_text: str, index: str) -> str:
    """README text with the block between the lesson-index markers replaced by ``index``."""
    if not isinstance(readme_text, str) or not isinstance(index, str):
        raise TypeError("readme_text and index must be str")
    try:
        head, rest = readme_text.split(INDEX_START, 1)
        _, tail = rest.split(INDEX_END, 1)
    except ValueError:
        raise ValueError(f"readme_text lacks the markers {INDEX_START} ... {INDEX_END}") from None
    return f"{head}{INDEX_START}\n{index}\n{INDEX_END}{tail}"
