r"""The ``diffedu`` console command.

    diffedu lessons [DEST] [--student | --instructor] [--change-kind] [--no-launch] [-- LAB_OPTIONS]
        Copy the lessons into DEST (default ./diffedu-lessons) and start JupyterLab there.
        A folder holds student copies (``--student``: the cells tagged ``solution`` left out) or
        instructor copies; it remembers which in its manifest (``.diffedu-lessons.json``), and
        running the command again without a flag keeps that kind. Asking for the other kind
        refuses, unless ``--change-kind`` is given too. A lesson whose code or text the learner
        changed is never overwritten: it is kept, and the new version is written beside it as
        ``NN_topic.new.ipynb`` (the command says which). Everything after ``--`` goes to
        ``jupyter lab``, e.g. ``-- --allow-root --ip 0.0.0.0 --port 8890 --no-browser``; as
        root, JupyterLab is only started with ``--allow-root``.
    diffedu regenerate [NOTEBOOK ...]
        Re-execute lessons in place (default: every lesson in the source checkout's lessons/),
        storing outputs and execution counts deterministically for nbval, and the widgets'
        static fallbacks for the site. Equivalent to ``jupyter nbconvert --to notebook --execute
        --inplace --ExecutePreprocessor.record_timing=False`` with one thread.
    diffedu index
        Print the README's lesson index (:func:`diffedu.course.notebooks.lesson_table`).
    diffedu site build [--out DIR] [--solutions]
        Build the offline course site (:func:`diffedu.course.site.build`).
    diffedu measure [NOTEBOOK ...] [--headers-only]
        Measure each lesson's wall time and peak memory into lessons/costs.json and write them
        into the lesson's header line and ``cpu_seconds`` (:func:`diffedu.course.site.measure`);
        ``--headers-only`` rewrites the headers from costs.json without measuring.

``python3 -m diffedu.course.cli ...`` works the same without the console script.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

from . import site
from .notebooks import FolderKindError, copy_lessons, lesson_costs, lesson_files, lesson_table

__all__ = ["main", "parser", "parse_args", "launch", "launch_refusal", "regenerate"]


ROOT_FLAGS = ("--allow-root", "--ServerApp.allow_root=True")
REMOTE_EXAMPLE = ["--ip", "0.0.0.0", "--port", "8888", "--no-browser"]


def _runs_as_root() -> bool:
    geteuid = getattr(os, "geteuid", None)  # absent on Windows
    return geteuid is not None and geteuid() == 0


def launch_refusal(dest, lab_args=()) -> str | None:
    """Why JupyterLab cannot start with these options, and what to add; ``None`` if it can.

    JupyterLab refuses to run as root (a Docker container, a cloud VM) without ``--allow-root``;
    this says so before starting it, with the command to run instead.
    """
    lab_args = _lab_args(lab_args)
    if importlib.util.find_spec("jupyterlab") is None:
        return ('JupyterLab is not installed: pip install "diffedu[lessons]" (or pass --no-launch '
                "to only copy the lessons)")
    if _runs_as_root() and not any(a in ROOT_FLAGS for a in lab_args):
        again = shlex.join(["diffedu", "lessons", str(dest), "--", *lab_args, "--allow-root"])
        remote = shlex.join(["diffedu", "lessons", str(dest), "--", "--allow-root", *REMOTE_EXAMPLE])
        return ("JupyterLab refuses to run as root (as in a Docker container or on a cloud VM) "
                f"unless --allow-root is passed to it. Add it after --:\n    {again}\n"
                f"On a remote machine, also listen on its network address and open no browser, "
                f"then open the URL it prints (with your machine's address):\n    {remote}")
    return None


def _lab_args(lab_args) -> list[str]:
    if isinstance(lab_args, str) or not all(isinstance(a, str) for a in lab_args):
        raise TypeError("lab_args must be a list of str (JupyterLab's command-line options)")
    return list(lab_args)


def launch(dest, lab_args=()) -> int:
    """Start JupyterLab in ``dest`` (blocks until it stops); returns its exit status.

    ``lab_args``: options passed on to ``jupyter lab`` (``--allow-root``, ``--port 8890``,
    ``--ip 0.0.0.0``, ``--no-browser``, ...). When :func:`launch_refusal` finds a reason it
    cannot start, that reason goes to stderr and the status is 1.
    """
    lab_args = _lab_args(lab_args)
    refusal = launch_refusal(dest, lab_args)
    if refusal:
        print(f"diffedu: {refusal}", file=sys.stderr)
        return 1
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(dest).resolve()}", *lab_args]
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


_KIND_FLAG = {"student": "--student", "instructor": "--instructor"}
_KIND_NOTE = {"student": "no solutions", "instructor": "solutions included"}


def _kind_refusal(err: FolderKindError) -> str:
    have, want, flag = err.have, err.want, _KIND_FLAG[err.want]
    again = shlex.join(["diffedu", "lessons", str(err.dest), flag, "--change-kind"])
    return (f"{err.dest} holds {have} copies ({_KIND_NOTE[have]}); {flag} would turn them into "
            f"{want} copies. Nothing was changed. To change the folder's kind, add --change-kind:\n"
            f"    {again}\n(lessons you changed are kept, the {want} versions written beside them), "
            f"or drop {flag} to update it as {have} copies.")


def _lessons(args) -> int:
    student = True if args.student else False if args.instructor else None
    if args.change_kind and student is None:
        print("diffedu: --change-kind needs the kind to change to: --student or --instructor",
              file=sys.stderr)
        return 2
    try:
        copy_lessons(args.dest, student=student, change_kind=args.change_kind)
    except FolderKindError as err:
        print(f"diffedu: {_kind_refusal(err)}", file=sys.stderr)
        return 2
    return 0 if args.no_launch else launch(args.dest, args.lab_args)


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
    p = sub.add_parser("lessons", help="copy the lessons into a folder and start JupyterLab there",
                       usage="diffedu lessons [DEST] [--student | --instructor] [--change-kind] "
                             "[--no-launch] [-- JUPYTERLAB_OPTIONS ...]",
                       epilog="Everything after -- goes to `jupyter lab`: e.g. as root on a remote "
                              "machine, -- --allow-root --ip 0.0.0.0 --port 8888 --no-browser")
    p.add_argument("dest", nargs="?", default="diffedu-lessons", help="folder (default: ./diffedu-lessons)")
    p.add_argument("--no-launch", action="store_true", help="only copy; do not start JupyterLab")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--student", action="store_true",
                      help="student copies: the solution cells left out (a new folder, or with --change-kind)")
    kind.add_argument("--instructor", action="store_true",
                      help="instructor copies, solutions included (the default for a new folder)")
    p.add_argument("--change-kind", action="store_true",
                   help="turn a folder of the other kind into the kind asked for")
    p.set_defaults(run=_lessons, lab_args=[])
    p = sub.add_parser("regenerate", help="re-execute lessons in place (stored outputs for nbval)")
    p.add_argument("notebooks", nargs="*", help="lesson notebooks (default: all in lessons/)")
    p.set_defaults(run=_regenerate)
    sub.add_parser("index", help="print the README lesson index from lesson metadata").set_defaults(run=_index)
    p = sub.add_parser("site", help="the offline course site")
    site.add_build_command(p.add_subparsers(dest="site_command", required=True))
    site.add_measure_command(sub)
    return top


def parse_args(argv=None) -> argparse.Namespace:
    """Parse a command line; for ``lessons``, what follows ``--`` is ``args.lab_args``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = parser()
    lab_args = []
    if "--" in argv:
        cut = argv.index("--")
        argv, lab_args = argv[:cut], argv[cut + 1:]
    args = top.parse_args(argv)
    if lab_args and args.command != "lessons":
        top.error("options after -- go to JupyterLab: only `diffedu lessons` takes them")
    if args.command == "lessons":
        args.lab_args = lab_args
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
