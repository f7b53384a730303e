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
* :func:`copy_lessons` copies lessons into a folder of one kind, student or instructor, which the
  folder remembers (:func:`folder_kind`); it never overwrites a lesson whose code or text the
  learner changed (:func:`source_digest`), and writes the new version beside it instead.
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
           "student_notebook", "solution_lines", "notebook_bytes", "KINDS", "BESIDE_SUFFIX",
           "FolderKindError", "source_digest", "beside_name", "folder_kind", "copy_lessons",
           "lesson_table", "readme_with_index"]

MANIFEST = ".diffedu-lessons.json"
META_KEY = "diffedu"
COSTS_FILE = "costs.json"
SOLUTION_TAG = "solution"
#: The two kinds of lesson folder; a folder remembers its kind in its manifest.
KINDS = ("instructor", "student")
#: A kept lesson's new version is written beside it: ``04_topic.ipynb`` -> ``04_topic.new.ipynb``.
BESIDE_SUFFIX = ".new.ipynb"
_KIND_NOTE = {"student": "solutions left out", "instructor": "solutions included"}
INDEX_START = "<!-- lesson-index:start -->"
INDEX_END = "<!-- lesson-index:end -->"
_LESSON_NAME = re.compile(r"\d\d_\w+\.ipynb")
_META_KEYS = ("number", "title", "teaches", "assumes", "cpu_seconds")


def _folder(directory, name: str) -> Path:
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path; got {type(directory).__name__}")
    return Path(directory)


# --- finding lessons, their metadata and costs -------------------------------------------------
def lesson_files(directory=None) -> list[Path]:
    """The lesson notebooks ``NN_topic.ipynb`` of ``directory`` in teaching order.

    ``topic`` is letters, digits and underscores, so a kept lesson's new version beside it
    (``NN_topic.new.ipynb``, :func:`copy_lessons`) is not a lesson.

    Default: :func:`diffedu._paths.lessons_dir` (the checkout's ``lessons/`` or the wheel's).
    """
    d = _paths.lessons_dir() if directory is None else _folder(directory, "directory")
    return sorted(p for p in d.glob("[0-9][0-9]_*.ipynb") if _LESSON_NAME.fullmatch(p.name))


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
    reads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return reads, _cell_binds(tree)


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _cell_binds(tree) -> set:
    """The names a cell binds in the notebook's namespace: assignments, ``def``, ``class`` and
    imports at cell level (a function's or class's own locals are not bound in the notebook)."""
    binds, todo = set(), [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            binds.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            binds |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
        if isinstance(node, _SCOPES):
            if not isinstance(node, ast.Lambda):
                binds.add(node.name)
            todo += node.decorator_list if not isinstance(node, ast.Lambda) else []
            continue
        todo += ast.iter_child_nodes(node)
    return binds


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
class FolderKindError(ValueError):
    """Copies of one kind were asked for in a folder of the other kind, without ``change_kind``.

    ``dest``, ``have`` and ``want`` hold the folder and the two kinds (``"student"`` or
    ``"instructor"``), so a command can say which flag changes it.
    """

    def __init__(self, dest: Path, have: str, want: str):
        self.dest, self.have, self.want = dest, have, want
        super().__init__(f"{dest} holds {have} copies; copying {want} copies into it needs "
                         "change_kind=True")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_digest(data: bytes) -> str | None:
    """A digest of a notebook's sources: each cell's type and source, in order.

    Outputs, execution counts, attachments and metadata (notebook and cell, widget state
    included) do not enter it, so running and saving a notebook leaves it unchanged, while any
    change to its code or text changes it. ``None`` when ``data`` is not a notebook.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"data must be the bytes of a notebook; got {type(data).__name__}")
    try:
        cells = json.loads(data)["cells"]
        pairs = [[c["cell_type"], _source(c)] for c in cells]
    except (ValueError, KeyError, TypeError):
        return None
    return _sha(json.dumps(pairs, ensure_ascii=False).encode())


def beside_name(name: str) -> str:
    """Where the new version of a kept lesson goes: ``04_topic.ipynb`` -> ``04_topic.new.ipynb``."""
    if not isinstance(name, str) or not name.endswith(".ipynb"):
        raise ValueError(f"name must be a notebook file name (*.ipynb); got {name!r}")
    return name[: -len(".ipynb")] + BESIDE_SUFFIX


def _record(data: bytes) -> dict:
    return {"bytes": _sha(data), "sources": source_digest(data)}


def _read_manifest(dest: Path) -> dict:
    """``{"kind": str | None, "files": {name: record}}``; a manifest of diffedu 0.2 or older
    (``{name: sha of the bytes}``) reads with no kind; an unreadable one as no manifest."""
    try:
        data = json.loads((dest / MANIFEST).read_text())
    except (OSError, ValueError):
        return {"kind": None, "files": {}}
    if isinstance(data.get("files"), dict):
        return {"kind": data.get("kind") if data.get("kind") in KINDS else None, "files": data["files"]}
    return {"kind": None, "files": {k: {"bytes": v} for k, v in data.items() if isinstance(v, str)}}


def _has_solutions(path: Path) -> bool | None:
    try:
        cells = json.loads(path.read_bytes())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return any(is_solution(c) for c in cells if isinstance(c, dict))


def folder_kind(dest) -> str | None:
    """Whether ``dest`` holds ``"student"`` or ``"instructor"`` copies; ``None`` if no lessons yet.

    The manifest records it. A folder copied before it did is judged by its lessons: one with a
    solution cell makes it an instructor folder, lessons without any a student folder.
    """
    dest = _folder(dest, "dest")
    recorded = _read_manifest(dest)["kind"]
    if recorded is not None:
        return recorded
    found = [_has_solutions(p) for p in lesson_files(dest)]
    found = [f for f in found if f is not None]
    if not found:
        return None
    return "instructor" if any(found) else "student"


def _copy_state(target: Path, new: bytes, recorded: dict) -> str:
    """copied (no file yet), unchanged, updated (its sources are as copied) or kept (changed).

    Sources, not bytes, tell whether the learner changed a lesson: a lesson that was only run
    and saved is updated. One whose sources already equal the new version's is left as it is,
    unless it is byte for byte what was copied (then it gets the new outputs too).
    """
    if not target.exists():
        return "copied"
    have = target.read_bytes()
    if have == new:
        return "unchanged"
    pristine = recorded.get("bytes") == _sha(have)
    have_sources = source_digest(have)
    if have_sources is not None and have_sources == source_digest(new):
        return "updated" if pristine else "unchanged"
    if pristine or (have_sources is not None and have_sources == recorded.get("sources")):
        return "updated"
    return "kept"


def _put(dest: Path, name: str, data: bytes, files: dict) -> str:
    """Write ``data`` to ``dest/name`` unless the learner changed that file; returns its state."""
    state = _copy_state(dest / name, data, files.get(name, {}))
    if state in ("copied", "updated"):
        (dest / name).write_bytes(data)
    if state != "kept":
        files[name] = _record(data)
    return state


def _keep(dest: Path, name: str, data: bytes, files: dict, report: dict, out) -> None:
    """A lesson the learner changed stays; the new version is written beside it."""
    new = beside_name(name)
    if _put(dest, new, data, files) == "kept":
        out(f"kept {dest / name} and {new} (you changed both): the new version was not copied; "
            f"rename or delete {new} and run this again to get it")
        return
    report["beside"].append(new)
    out(f"kept {dest / name} (you changed its code or text); the new version is beside it: {dest / new}")


def _lesson_data(src: Path, kind: str) -> bytes:
    data = src.read_bytes()
    return notebook_bytes(student_notebook(json.loads(data))) if kind == "student" else data


def _want_kind(dest: Path, student, change_kind: bool) -> tuple[str, str | None]:
    """The kind to copy and the folder's kind before; raises FolderKindError on a silent change."""
    if student is not None and not isinstance(student, bool):
        raise TypeError(f"student must be a bool or None; got {type(student).__name__}")
    if not isinstance(change_kind, bool):
        raise TypeError(f"change_kind must be a bool; got {type(change_kind).__name__}")
    have = folder_kind(dest)
    want = (have or "instructor") if student is None else ("student" if student else "instructor")
    if have is not None and want != have and not change_kind:
        raise FolderKindError(dest, have, want)
    return want, have


def copy_lessons(dest, *, student: bool | None = None, change_kind: bool = False, source=None,
                 out=print) -> dict:
    """Copy the lessons of ``source`` (default: every lesson) into ``dest``.

    Parameters
    ----------
    dest : path
        The learner's folder; made if missing.
    student : bool or None
        ``True``: student copies (:func:`student_notebook`, no solutions); ``False``: instructor
        copies; ``None`` (default): the folder's kind (:func:`folder_kind`), instructor for a new
        folder. The folder remembers its kind in the manifest ``dest/.diffedu-lessons.json``.
    change_kind : bool
        Needed to turn a folder of one kind into the other (else :class:`FolderKindError`).
    source : path, optional
        A folder of lessons (default: :func:`lesson_files`' default).
    out : callable
        Where messages go (default ``print``).

    Returns
    -------
    dict
        ``{"kind": str, "copied", "updated", "kept", "unchanged", "beside": [file names]}``.

    Notes
    -----
    A lesson whose sources (cells' types and text, :func:`source_digest`) the learner changed is
    never overwritten: it is *kept*, and the new version is written beside it
    (:func:`beside_name`, ``out`` says where). A lesson only run and saved is updated.
    """
    dest = _folder(dest, "dest")
    want, have = _want_kind(dest, student, change_kind)
    dest.mkdir(parents=True, exist_ok=True)
    files = _read_manifest(dest)["files"]
    report = {"kind": want, "copied": [], "updated": [], "kept": [], "unchanged": [], "beside": []}
    if have is not None and have != want:
        out(f"{dest}: changing from {have} to {want} copies ({_KIND_NOTE[want]})")
    for src in lesson_files(source):
        data = _lesson_data(src, want)
        state = _put(dest, src.name, data, files)
        report[state].append(src.name)
        if state == "kept":
            _keep(dest, src.name, data, files, report, out)
    manifest = {"format": 2, "kind": want, "files": dict(sorted(files.items()))}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    n_new = len(report["copied"]) + len(report["updated"])
    out(f"{n_new} lesson(s) copied to {dest}, {len(report['unchanged'])} already up to date, "
        f"{len(report['kept'])} kept ({want} copies: {_KIND_NOTE[want]})")
    return report


# --- the lesson table: README index and site front page ----------------------------------------
def _readme_link(path: Path) -> str:
    return f"lessons/{path.name}"


def lesson_table(lessons, costs: dict, *, link=_readme_link) -> str:
    """The lesson table (Markdown) from lesson metadata and measured costs.

    Peak memory and run time are costs.json's (:func:`cost_cells`), as each lesson's header
    states them (:mod:`diffedu.course.headers`); no column is typed by hand.

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
    rows = ["| # | lesson | what it teaches | assumes | peak memory | run time |",
            "|---|---|---|---|---|---|"]
    for p in map(Path, lessons):
        m = lesson_meta(p)
        mem, wall = cost_cells(p.name, costs)
        rows.append(f"| {m['number']:02d} | [{m['title']}]({link(p)}) | {m['teaches']} | "
                    f"{m['assumes']} | {mem} | {wall} |")
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
