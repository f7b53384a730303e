r"""The ``diffedu`` console command.

    diffedu lessons [DEST] [--no-launch] [--student]
        Copy the lessons into DEST (default ./diffedu-lessons) and start JupyterLab there.
        A notebook the learner has changed is never overwritten: a manifest in DEST
        (``.diffedu-lessons.json``) records what was copied, and a file that differs from both
        the record and the shipped lesson is kept (the command says which).
        ``--student`` drops the cells tagged ``solution`` from the copies.
    diffedu regenerate [NOTEBOOK ...]
        Re-execute lessons in place (default: every lesson in the source checkout's lessons/),
        storing outputs and execution counts deterministically for nbval, and the widgets'
        static fallbacks for the site. Equivalent to ``jupyter nbconvert --to notebook --execute
        --inplace --ExecutePreprocessor.record_timing=False`` with one thread.
    diffedu index
        Print the README's lesson index (:func:`diffedu.course.notebooks.lesson_table`).
    diffedu site build [--out DIR] [--solutions]
        Build the offline course site (:func:`diffedu.course.site.build`).
    diffedu measure [NOTEBOOK ...]
        Measure each lesson's wall time and peak memory into lessons/costs.json
        (:func:`diffedu.course.site.measure`).

``python3 -m diffedu.course.cli ...`` works the same without the console script.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from . import site
from .notebooks import copy_lessons, lesson_costs, lesson_files, lesson_table

__all__ = ["main", "parser", "launch", "regenerate"]


def launch(dest) -> int:
    """Start JupyterLab in ``dest`` (blocks until it stops); returns its exit status."""
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(dest).resolve()}"]
    return subprocess.call(cmd, cwd=dest)


def regenerate(paths=None, *, timeout: int = 600) -> list[Path]:
    """Execute lessons in place with one thread; outputs and counts are stored, timings are not.

    The kernels get ``DIFFEDU_STATIC_FALLBACKS=1``, so every widget stores its image-grid
    fallback (:mod:`diffedu.teach.fallbacks`) for the site.
    """
    paths = [Path(p) for p in paths] if paths else lesson_files()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0",
               DIFFEDU_STATIC_FALLBACKS="1")
    env.pop("MPLBACKEND", None)  # inline figures must be stored
    for p in paths:
        cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
               "--ExecutePreprocessor.record_timing=False", f"--ExecutePreprocessor.timeout={timeout}",
               "--ExecutePreprocessor.kernel_name=python3", str(p)]
        subprocess.run(cmd, check=True, env=env)
    return paths


def _lessons(args) -> int:
    copy_lessons(args.dest, student=args.student)
    return 0 if args.no_launch else launch(args.dest)


def _regenerate(args) -> int:
    for p in regenerate(args.notebooks):
        print(f"regenerated {p}")
    return 0


def _index(args) -> int:
    print(lesson_table(lesson_files(), lesson_costs()))
    return 0


def parser() -> argparse.ArgumentParser:
    """The command's argument parser; each subcommand sets ``run(args) -> exit status``."""
    top = argparse.ArgumentParser(prog="diffedu", description="diffedu lessons and course tools")
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("lessons", help="copy the lessons into a folder and start JupyterLab there")
    p.add_argument("dest", nargs="?", default="diffedu-lessons", help="folder (default: ./diffedu-lessons)")
    p.add_argument("--no-launch", action="store_true", help="only copy; do not start JupyterLab")
    p.add_argument("--student", action="store_true", help="drop the solution cells from the copies")
    p.set_defaults(run=_lessons)
    p = sub.add_parser("regenerate", help="re-execute lessons in place (stored outputs for nbval)")
    p.add_argument("notebooks", nargs="*", help="lesson notebooks (default: all in lessons/)")
    p.set_defaults(run=_regenerate)
    sub.add_parser("index", help="print the README lesson index from lesson metadata").set_defaults(run=_index)
    p = sub.add_parser("site", help="the offline course site")
    site.add_build_command(p.add_subparsers(dest="site_command", required=True))
    site.add_measure_command(sub)
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
