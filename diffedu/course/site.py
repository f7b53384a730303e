r"""The offline course site and the per-lesson cost measurements.

    diffedu site build [--out DIR] [--solutions]       (or python3 -m diffedu.course.site build)
        Build the static site (Sphinx + MyST-NB, config in docs/conf.py) from the lessons' stored
        outputs, without running a kernel. Default output: docs/_build/html. The site shows the
        student version (solution cells removed); ``--solutions`` keeps them. Widgets appear as
        their stored image-grid fallback (:mod:`diffedu.teach.fallbacks`); math is typeset by a
        bundled MathJax; no page loads anything from another machine. Beside the lessons: the
        notation page (docs/notation.md) and one API page per module of the maths core, found
        when the site is built (:func:`core_modules`).
    diffedu measure [NOTEBOOK ...] [--headers-only]    (or python3 -m diffedu.course.site measure)
        Run each lesson once in a fresh kernel (one thread, as nbval and a hub seat run it) and
        record its wall time and the peak resident memory of the kernel process in
        lessons/costs.json, which feeds the lesson table of the README and of the site; then
        write both into each measured lesson's header line and its metadata ``cpu_seconds``
        (:mod:`diffedu.course.headers`). Measure on a quiet machine: the headers say so.
        ``--headers-only`` rewrites the headers from costs.json without measuring.

The site's lesson table is :func:`diffedu.course.notebooks.lesson_table`, as the README's is.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import os
import pkgutil
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import _paths
from ..teach.fallbacks import FALLBACK_CLASS
from .headers import write_run_times
from .notebooks import COSTS_FILE, lesson_costs, lesson_files, lesson_table, student_notebook

__all__ = ["docs_dir", "core_modules", "site_notebook", "index_markdown", "api_pages", "build",
           "measure_one", "measure", "write_headers", "execute_notebook", "NotebookRunError", "add_build_command",
           "add_measure_command", "main"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Subpackages of diffedu that are not the maths core: the teaching layer and the course tools.
NOT_CORE = ("teach", "course")


def docs_dir() -> Path:
    """The repository's docs/ folder (conf.py, the notation page and static assets of the site)."""
    root = _paths.source_root()
    if root is None or not (root / "docs" / "conf.py").is_file():
        raise FileNotFoundError("no docs/conf.py: build the site from a source checkout of diffedu")
    return root / "docs"


def core_modules(package: str = "diffedu") -> list[str]:
    """The public modules of the maths core, found by walking ``package`` (``pkgutil``).

    Every module and subpackage under ``package`` except ``package.teach``, ``package.course``
    and private modules (a name part starting with ``_``), sorted.
    """
    if not isinstance(package, str):
        raise TypeError(f"package must be a module name; got {type(package).__name__}")
    pkg = importlib.import_module(package)
    found = []
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        parts = info.name.split(".")[1:]
        if parts[0] in NOT_CORE or any(p.startswith("_") for p in parts):
            continue
        found.append(info.name)
    return sorted(found)


# --- what the site shows -----------------------------------------------------------------------
def _widget_output(output: dict) -> dict:
    """A widget output as the site shows it: its stored fallback grid, or a note that it has none."""
    data = output.get("data", {})
    html = "".join(data.get("text/html", ""))  # nbformat may store it as a list of lines
    if FALLBACK_CLASS not in html:
        html = ('<p class="diffedu-missing-fallback"><em>An interactive widget is here; run the '
                "notebook to use it (no static preview was stored: regenerate the lesson with "
                "<code>diffedu regenerate</code>).</em></p>")
    out = dict(output)
    out["data"] = {"text/html": html}
    out["metadata"] = {}
    return out


def site_notebook(nb: dict, *, solutions: bool = False) -> dict:
    """The notebook as the site renders it.

    The student copy (unless ``solutions``), widgets replaced by their static fallbacks, and no
    saved widget state (nothing for a widget manager to load).
    """
    nb = student_notebook(nb) if not solutions else json.loads(json.dumps(nb))
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["outputs"] = [_widget_output(o) if WIDGET_VIEW in o.get("data", {}) else o
                           for o in cell["outputs"]]
    return nb


def index_markdown(lessons, costs: dict, *, solutions: bool) -> str:
    """The site's front page (MyST Markdown): the lesson table and the table of contents.

    The table is the README's (:func:`~diffedu.course.notebooks.lesson_table`): its links
    ``lessons/NN_topic.ipynb`` name the staged notebooks, which MyST resolves to their pages.
    """
    version = ("Instructor version: exercise solutions are included." if solutions else
               "Student version: exercise solutions are left out; the checkers say "
               "\"not answered yet\" until you write an answer.")
    toc = "\n".join(["notation"] + [f"lessons/{Path(p).stem}" for p in lessons] + ["input-checks", "api/index"])
    return f"""# diffedu: the mathematics of diffusion models

A course of JupyterLab lessons with a tested library behind every formula. These pages show each
lesson with its stored outputs; the interactive sliders appear as a small grid of the same figure
at a few slider values. To move the sliders, open the lessons in JupyterLab:
`pip install diffedu[lessons] && diffedu lessons` (see the README's "Teaching with diffedu").

{version}

Every lesson and every module uses one [notation](notation.md). The [API reference](api/index.md)
documents each module of the library behind the lessons, and [what it checks](input-checks.md)
says what a bad argument gets.

{lesson_table(lessons, costs)}

Run time and peak memory are measured by `diffedu measure` on a quiet machine (one kernel, one
thread, top to bottom); a busy machine takes longer.

```{{toctree}}
:hidden:
:maxdepth: 1

{toc}
```
"""


def _summary(name: str) -> str:
    """The first paragraph of a module's docstring, read from its source file (not imported)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not (spec.origin or "").endswith(".py"):
        return ""
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _module_table(names) -> str:
    """A reST table: each module's link and the first paragraph of its docstring."""
    rows = "".join(f"   * - :mod:`{m}`\n     - {_summary(m) or '(no docstring)'}\n" for m in names)
    return f".. list-table::\n   :widths: 35 65\n\n{rows}"


def _module_rst(name: str, modules: list[str]) -> str:
    """The reST of one API page: ``automodule``, and for a package its public submodules.

    A package that re-exports names from its public submodules links to where they are
    documented instead of documenting them twice; the names it defines (itself or in private
    modules) are documented on its page.
    """
    children = [m for m in modules if m.rpartition(".")[0] == name]
    members, after = "   :members:\n", ""
    if children:
        pkg = importlib.import_module(name)
        own, elsewhere = [], []
        for n in getattr(pkg, "__all__", None) or []:
            obj = getattr(pkg, n, None)
            home = getattr(obj, "__module__", None)
            if home in modules and home != name:
                elsewhere.append(f":obj:`~{home}.{getattr(obj, '__qualname__', n)}`")
            else:
                own.append(n)
        if getattr(pkg, "__all__", None):
            members = f"   :members: {', '.join(own)}\n" if own else ""
        if elsewhere:
            after += f"\nAlso importable from ``{name}``: {', '.join(elsewhere)}.\n"
        after += f"\n.. rubric:: Submodules\n\n{_module_table(children)}"
    return f".. automodule:: {name}\n{members}   :show-inheritance:\n{after}"


def api_pages(modules) -> dict[str, str]:
    """The API pages (MyST Markdown), ``{file name relative to api/: text}``.

    One page per module (autodoc renders its docstrings), and ``index.md`` listing them with the
    first paragraph of each docstring. Packages with public submodules are imported here, to see
    where the names they export are defined.
    """
    modules = list(modules)
    if not all(isinstance(m, str) for m in modules):
        raise TypeError("modules must be module names (str)")
    pages = {f"{m}.md": f"# {m}\n\n```{{eval-rst}}\n{_module_rst(m, modules)}```\n" for m in modules}
    toc = "\n".join(modules)
    pages["index.md"] = f"""# API reference

The maths core of diffedu, one page per module: every module of the package except the teaching
layer (`diffedu.teach`, what the lessons call to draw and check answers), the course tools
(`diffedu.course`) and private modules. The list is read from the package when the site is built.
The names in `diffedu.__all__` are also importable from `diffedu` itself. All of it uses one
[notation](../notation.md).

```{{eval-rst}}
{_module_table(modules)}```

```{{toctree}}
:hidden:
:maxdepth: 1

{toc}
```
"""
    return pages


def _stage(src: Path, lessons: list[Path], *, solutions: bool) -> None:
    """Write the site's sources into ``src``: lessons, front page, notation page, API pages."""
    (src / "lessons").mkdir()
    for p in lessons:
        nb = site_notebook(json.loads(p.read_text()), solutions=solutions)
        (src / "lessons" / p.name).write_text(json.dumps(nb, ensure_ascii=False))
    costs = lesson_costs(lessons[0].parent)
    (src / "index.md").write_text(index_markdown(lessons, costs, solutions=solutions))
    for page in ("notation.md", "input-checks.md"):
        shutil.copyfile(docs_dir() / page, src / page)
    (src / "api").mkdir()
    for name, text in api_pages(core_modules()).items():
        (src / "api" / name).write_text(text)


def build(out=None, *, solutions: bool = False, lessons_dir=None, quiet: bool = True) -> Path:
    """Build the static site; returns the folder holding ``index.html``.

    Stages the site's sources in a temporary folder and runs ``sphinx-build -b html`` on it with
    ``docs/`` as the configuration folder. No notebook is executed. Default output:
    ``docs/_build/html``. Warnings (docstring formatting in the API pages, say) do not fail it.
    """
    docs = docs_dir()
    lessons = lesson_files(lessons_dir)
    if not lessons:
        raise FileNotFoundError("no lessons to build")
    out = Path(out) if out is not None else docs / "_build" / "html"
    with tempfile.TemporaryDirectory(prefix="diffedu-site-") as tmp:
        src = Path(tmp)
        _stage(src, lessons, solutions=solutions)
        cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(docs), "-E", "-j", "1",
               "-d", str(src / ".doctrees"), str(src), str(out)] + (["-q"] if quiet else [])
        subprocess.run(cmd, check=True)
    return out


# --- running a notebook in a fresh kernel, bounded in time -----------------------------------------
class NotebookRunError(RuntimeError):
    """A notebook run by :func:`execute_notebook` raised in a cell (the message: its source and error), or never finished."""


class _CellError(Exception):
    """A cell raised: ``str`` is the cell's source and the error's name, value and traceback."""


def _run_cells(nb, cwd, timeout: float) -> None:
    """Execute nb's code cells in order in a fresh kernel, storing their outputs (in place).

    jupyter_client's blocking client, one execute request at a time: the reply on the shell channel,
    then the outputs on IOPub until the kernel is idle again (as nbval does). nbclient's async
    client here now and then waited forever for the reply to the cell after one that displays a
    widget (jupyter/nbclient#312; 5 runs of 5 in one lesson), while this did not in the same runs.
    """
    import nbformat
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(cwd))
    try:
        count = 0
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            msg_id = kc.execute(cell.source)
            cell.outputs = []
            while True:  # the outputs, until the kernel is idle after this request
                msg = kc.get_iopub_msg(timeout=timeout)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "status" and content["execution_state"] == "idle":
                    break
                if kind == "clear_output":
                    cell.outputs = []
                elif kind in ("stream", "display_data", "execute_result", "error"):
                    cell.outputs.append(nbformat.v4.output_from_msg(msg))
            while True:
                reply = kc.get_shell_msg(timeout=timeout)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            count += 1
            cell.execution_count = reply["content"].get("execution_count", count)
            if reply["content"]["status"] != "ok":
                c = reply["content"]
                raise _CellError(f"{cell.source}\n\n{c.get('ename')}: {c.get('evalue')}\n" + "\n".join(c.get("traceback", [])))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _execute_child(src: str, dst: str, cwd: str, timeout: float) -> None:  # the child of execute_notebook
    import nbformat

    nb = nbformat.read(src, as_version=4)
    try:
        _run_cells(nb, cwd, timeout)
    except _CellError as exc:
        Path(dst).with_suffix(".error").write_text(str(exc))
    nbformat.write(nb, dst)


def execute_notebook(nb, cwd, *, timeout: float = 300, attempts: int = 3, env=None):
    """Execute a notebook (an nbformat node) in a fresh kernel in a child process; the executed node.

    The child runs the cells with jupyter_client's blocking client (:func:`_run_cells`). A run that
    takes longer than ``timeout`` seconds is killed, kernel included, and started again, up to
    ``attempts`` runs (a guard: nbclient here now and then waited forever on a widget cell,
    jupyter/nbclient#312).
    A cell that raises ends the run with :class:`NotebookRunError` (not retried); the outputs up to
    it are lost. env: the child's environment (default: this process's).
    """
    import nbformat

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.ipynb", Path(tmp) / "out.ipynb"
        nbformat.write(nb, src)
        code = (f"from diffedu.course.site import _execute_child; "
                f"_execute_child({str(src)!r}, {str(dst)!r}, {str(cwd)!r}, {float(timeout)!r})")
        for _ in range(attempts):
            if _run_measured([sys.executable, "-c", code], env, cwd, timeout) is not None:
                break
        else:
            raise NotebookRunError(f"the notebook did not finish within {timeout} s in {attempts} runs")
        if dst.with_suffix(".error").is_file():
            raise NotebookRunError(dst.with_suffix(".error").read_text())
        if not dst.is_file():
            raise NotebookRunError("the notebook's run ended without writing its result")
        return nbformat.read(dst, as_version=4)


# --- measuring what a lesson costs -------------------------------------------------------------
def _run_notebook(path: str) -> None:  # runs inside the child process that measure_one waits for
    import nbformat

    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    _run_cells(nb, Path(path).parent, 1200)
    print(json.dumps({"wall_s": time.perf_counter() - t0}))


#: How long one run of a lesson may take before :func:`measure_one` gives up on it and runs it again.
MEASURE_TIMEOUT_S = 300


def measure_one(path, *, timeout: float = MEASURE_TIMEOUT_S, attempts: int = 3) -> dict:
    """Run one lesson in a fresh kernel; ``{"wall_s", "peak_mb"}``.

    wall_s: time from kernel start to the last cell's end. peak_mb: the largest peak resident set
    size among the measuring process and its children, the kernel included (``wait4``'s rusage,
    which Linux reports as the maximum over the reaped process tree); the kernel dominates it.

    A run that takes longer than ``timeout`` seconds is killed (with its kernel) and started again,
    up to ``attempts`` runs: nbclient now and then waits forever for the reply to a cell that
    displays a widget while the kernel sits idle (jupyter/nbclient#312), and a measurement must
    not hang with it. A lesson that fails to run is not retried.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("MPLBACKEND", None)
    env.pop("DIFFEDU_STATIC_FALLBACKS", None)  # measure what a student's run costs
    code = f"from diffedu.course.site import _run_notebook; _run_notebook({str(Path(path).resolve())!r})"
    for attempt in range(1, attempts + 1):
        done = _run_measured([sys.executable, "-c", code], env, Path(path).parent, timeout)
        if done is not None:
            stdout, returncode, usage = done
            break
    else:
        raise RuntimeError(f"{path} did not finish within {timeout} s in {attempts} runs")
    if returncode != 0:
        raise RuntimeError(f"{path} failed to run (exit status {returncode})")
    wall = json.loads(stdout.decode().strip().splitlines()[-1])["wall_s"]
    return {"wall_s": round(wall, 1), "peak_mb": round(usage.ru_maxrss / 1024, 0)}


def _run_measured(cmd, env, cwd, timeout):
    """Run cmd in a session of its own; ``(stdout, exit code, rusage)``, or None if it ran past
    ``timeout`` seconds (then the whole session, the kernel included, is killed). The child is
    reaped with ``wait4``, whose rusage covers its process tree."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, cwd=str(cwd), start_new_session=True)
    deadline, chunks, fd = time.monotonic() + timeout, [], proc.stdout.fileno()
    while True:
        remaining = deadline - time.monotonic()
        ready = select.select([fd], [], [], remaining)[0] if remaining > 0 else []
        if not ready:
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            proc.stdout.close()
            return None
        data = os.read(fd, 1 << 16)
        if not data:
            break
        chunks.append(data)
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return b"".join(chunks), proc.returncode, usage


def measure(paths=None, *, out=print) -> dict:
    """Measure lessons (default: all) one after another and merge the results into costs.json.

    Each measured lesson's header line and ``cpu_seconds`` are then rewritten from costs.json
    (:func:`diffedu.course.headers.write_run_times`).
    """
    paths = [Path(p) for p in paths] if paths else lesson_files()
    costs_path = paths[0].parent / COSTS_FILE
    data = json.loads(costs_path.read_text()) if costs_path.is_file() else {}
    lessons = data.setdefault("lessons", {})
    for p in paths:
        lessons[p.name] = measure_one(p)
        out(f"{p.name}: {lessons[p.name]['wall_s']} s, {lessons[p.name]['peak_mb']:.0f} MB")
    data["measured_on"] = (f"{os.cpu_count()} CPU cores, {platform.machine()}, Python "
                           f"{platform.python_version()}, one thread per kernel")
    data["lessons"] = dict(sorted(lessons.items()))
    costs_path.write_text(json.dumps(data, indent=1) + "\n")
    write_run_times(paths, data["lessons"], out=out)
    return data


def write_headers(paths=None, *, out=print) -> list[Path]:
    """Rewrite the lessons' (default: all) header lines and ``cpu_seconds`` from costs.json,
    measuring nothing; returns the lessons changed."""
    paths = [Path(p) for p in paths] if paths else lesson_files()
    return write_run_times(paths, lesson_costs(paths[0].parent), out=out)


# --- commands (shared with diffedu.course.cli) -------------------------------------------------
def _build_command(args) -> int:
    t0 = time.perf_counter()
    out = build(args.out, solutions=args.solutions)
    print(f"site built in {time.perf_counter() - t0:.0f} s: {out / 'index.html'}")
    return 0


def _measure_command(args) -> int:
    if args.headers_only:
        changed = write_headers(args.notebooks)
        print(f"{len(changed)} lesson header(s) rewritten from {COSTS_FILE}")
        return 0
    measure(args.notebooks)
    return 0


def add_build_command(subparsers) -> argparse.ArgumentParser:
    """Add ``build [--out DIR] [--solutions]`` to an argparse subparsers object."""
    p = subparsers.add_parser("build", help="build the offline course site from the stored outputs")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default docs/_build/html)")
    p.add_argument("--solutions", action="store_true", help="instructor version: keep solution cells")
    p.set_defaults(run=_build_command)
    return p


def add_measure_command(subparsers) -> argparse.ArgumentParser:
    """Add ``measure [NOTEBOOK ...] [--headers-only]`` to an argparse subparsers object."""
    p = subparsers.add_parser("measure", help="measure wall time and peak memory per lesson; "
                                              "write them into costs.json and the lesson headers")
    p.add_argument("notebooks", nargs="*", help="lesson notebooks (default: all in lessons/)")
    p.add_argument("--headers-only", action="store_true",
                   help=f"measure nothing: rewrite the lessons' run-time header lines from {COSTS_FILE}")
    p.set_defaults(run=_measure_command)
    return p


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m diffedu.course.site",
                                     description="the offline course site and lesson costs")
    sub = parser.add_subparsers(dest="command", required=True)
    add_build_command(sub)
    add_measure_command(sub)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
