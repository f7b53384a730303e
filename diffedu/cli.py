r"""The ``diffedu`` console command.

    diffedu lessons [DEST] [--no-launch] [--student]
        Copy the lessons into DEST (default ./diffedu-lessons) and start JupyterLab there.
        A notebook the learner has changed is never overwritten: a manifest in DEST
        (``.diffedu-lessons.json``) records what was copied, and a file that differs from both
        the record and the shipped lesson is kept (the command says which).
        ``--student`` drops the cells tagged ``solution`` from the copies.
    diffedu regenerate [NOTEBOOK ...]
        Re-execute lessons in place (default: every lesson in the source checkout's lessons/),
        storing outputs and execution counts deterministically for nbval. Equivalent to
        ``jupyter nbconvert --to notebook --execute --inplace
        --ExecutePreprocessor.record_timing=False`` with one thread.
    diffedu index
        Print the README's lesson index, generated from each lesson's metadata.

``python3 -m diffedu.cli ...`` works the same without the console script.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import _paths

__all__ = ["main", "lessons_dir", "lesson_files", "copy_lessons", "student_copy", "lesson_meta",
           "lesson_index", "regenerate"]

MANIFEST = ".diffedu-lessons.json"
META_KEY = "diffedu"
INDEX_START = "<!-- lesson-index:start -->"
INDEX_END = "<!-- lesson-index:end -->"


def lessons_dir() -> Path:
    """Where the lessons are (:func:`diffedu._paths.lessons_dir`)."""
    return _paths.lessons_dir()


def lesson_files(directory: Path | None = None) -> list[Path]:
    """The lesson notebooks ``NN_topic.ipynb`` in teaching order."""
    d = Path(directory) if directory is not None else lessons_dir()
    return sorted(p for p in d.glob("[0-9][0-9]_*.ipynb"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def student_copy(nb: dict) -> dict:
    """A copy of a notebook (as a dict) without the cells tagged ``solution``; the outputs stored
    from the first solution on are cleared too (see :func:`diffedu.student.student_notebook`)."""
    from .student import student_notebook

    return student_notebook(nb)


def copy_lessons(dest, *, student: bool = False, source: Path | None = None, out=print) -> dict:
    """Copy the lessons into ``dest``, never overwriting a notebook the learner changed.

    Returns ``{"copied": [...], "updated": [...], "kept": [...], "unchanged": [...]}`` (file names).
    A file is *kept* when it exists, differs from the new lesson, and differs from what the
    manifest says was copied last time (or there is no record of it).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    mpath = dest / MANIFEST
    manifest = json.loads(mpath.read_text()) if mpath.exists() else {}
    report = {"copied": [], "updated": [], "kept": [], "unchanged": []}
    for src in lesson_files(source):
        data = src.read_bytes()
        if student:
            data = (json.dumps(student_copy(json.loads(data)), indent=1, ensure_ascii=False) + "\n").encode()
        new_sha = hashlib.sha256(data).hexdigest()
        target = dest / src.name
        if not target.exists():
            kind = "copied"
        else:
            have = _sha(target)
            if have == new_sha:
                kind = "unchanged"
            elif manifest.get(src.name) == have:
                kind = "updated"
            else:
                report["kept"].append(src.name)
                out(f"kept {target} (you changed it; the new version was not copied)")
                continue
        if kind != "unchanged":
            target.write_bytes(data)
        manifest[src.name] = new_sha
        report[kind].append(src.name)
    mpath.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    n_new = len(report["copied"]) + len(report["updated"])
    out(f"{n_new} lesson(s) copied to {dest}, {len(report['unchanged'])} already up to date, "
        f"{len(report['kept'])} kept")
    return report


def launch(dest) -> int:
    """Start JupyterLab in ``dest`` (blocks until it stops); returns its exit status."""
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(dest).resolve()}"]
    return subprocess.call(cmd, cwd=dest)


def lesson_meta(path) -> dict:
    """The ``diffedu`` block of a lesson's notebook metadata: number, title, teaches, assumes,
    cpu_seconds. Raises ``ValueError`` naming the file and the missing key."""
    nb = json.loads(Path(path).read_text())
    meta = nb.get("metadata", {}).get(META_KEY)
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: notebook metadata has no '{META_KEY}' block")
    for key in ("number", "title", "teaches", "assumes", "cpu_seconds"):
        if key not in meta:
            raise ValueError(f"{path}: metadata '{META_KEY}' lacks '{key}'")
    return meta


def lesson_index(directory: Path | None = None) -> str:
    """The README's lesson index (a Markdown table), generated from lesson metadata, with the peak
    memory and wall time measured by ``python3 -m diffedu.site measure`` (lessons/costs.json)."""
    from .site import cost_cells, lesson_costs

    files = lesson_files(directory)
    costs = lesson_costs(files[0].parent) if files else {}
    rows = ["| # | lesson | what it teaches | assumes | CPU time | peak memory | measured time |",
            "|---|---|---|---|---|---|---|"]
    for p in files:
        m = lesson_meta(p)
        mem, wall = cost_cells(p.name, costs)
        rows.append(f"| {m['number']:02d} | [{m['title']}](lessons/{p.name}) | {m['teaches']} | "
                    f"{m['assumes']} | about {m['cpu_seconds']} s | {mem} | {wall} |")
    return "\n".join(rows)


def readme_with_index(readme_text: str, index: str) -> str:
    """README text with the block between the lesson-index markers replaced by ``index``."""
    try:
        head, rest = readme_text.split(INDEX_START, 1)
        _, tail = rest.split(INDEX_END, 1)
    except ValueError:
        raise ValueError(f"README lacks the markers {INDEX_START} ... {INDEX_END}") from None
    return f"{head}{INDEX_START}\n{index}\n{INDEX_END}{tail}"


def regenerate(paths=None, *, timeout: int = 600) -> list[Path]:
    """Execute lessons in place with one thread; outputs and counts are stored, timings are not."""
    paths = [Path(p) for p in paths] if paths else lesson_files()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0",
               DIFFEDU_STATIC_FALLBACKS="1")  # widgets store an image grid (diffedu.fallbacks)
    env.pop("MPLBACKEND", None)  # inline figures must be stored
    for p in paths:
        cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
               "--ExecutePreprocessor.record_timing=False", f"--ExecutePreprocessor.timeout={timeout}",
               "--ExecutePreprocessor.kernel_name=python3", str(p)]
        subprocess.run(cmd, check=True, env=env)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="diffedu", description="diffedu lessons and tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p_l = sub.add_parser("lessons", help="copy the lessons into a folder and start JupyterLab there")
    p_l.add_argument("dest", nargs="?", default="diffedu-lessons", help="folder (default: ./diffedu-lessons)")
    p_l.add_argument("--no-launch", action="store_true", help="only copy; do not start JupyterLab")
    p_l.add_argument("--student", action="store_true", help="drop the solution cells from the copies")
    p_r = sub.add_parser("regenerate", help="re-execute lessons in place (stored outputs for nbval)")
    p_r.add_argument("notebooks", nargs="*", help="lesson notebooks (default: all in lessons/)")
    sub.add_parser("index", help="print the README lesson index from lesson metadata")
    args = parser.parse_args(argv)
    if args.command == "lessons":
        copy_lessons(args.dest, student=args.student)
        if args.no_launch:
            return 0
        return launch(args.dest)
    if args.command == "regenerate":
        for p in regenerate(args.notebooks):
            print(f"regenerated {p}")
        return 0
    print(lesson_index())
    return 0


if __name__ == "__main__":
    sys.exit(main())
