r"""The offline course site and the per-lesson cost measurements.

    python3 -m diffedu.site build [--out DIR] [--solutions]
        Build the static site of all lessons (Sphinx + MyST-NB, config in docs/conf.py) from
        their stored outputs, without running a kernel. Default output: docs/_build/html.
        The site shows the student version (solution cells removed); ``--solutions`` keeps them.
        Widgets appear as their stored image-grid fallback (diffedu.fallbacks); math is typeset
        by a bundled MathJax; no page loads anything from another machine.
    python3 -m diffedu.site measure [NOTEBOOK ...]
        Run each lesson once in a fresh kernel (one thread, as nbval and a hub seat run it) and
        record its wall time and the peak resident memory of the kernel process in
        lessons/costs.json, which feeds the README's lesson index and the site's index.

The index of the site and the README's lesson index come from the same lesson metadata
(:func:`diffedu.cli.lesson_meta`) and the same measurements (:func:`lesson_costs`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import _paths, cli
from .teach.fallbacks import FALLBACK_CLASS
from .student import student_notebook

__all__ = ["COSTS_FILE", "docs_dir", "lesson_costs", "cost_cells", "site_notebook", "index_markdown",
           "build", "measure_one", "measure", "main"]

COSTS_FILE = "costs.json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def docs_dir() -> Path:
    """The repository's docs/ folder (conf.py and static assets of the site)."""
    root = _paths.source_root()
    if root is None or not (root / "docs" / "conf.py").is_file():
        raise FileNotFoundError("no docs/conf.py: build the site from a source checkout of diffedu")
    return root / "docs"


def lesson_costs(directory=None) -> dict:
    """Measured costs ``{notebook name: {"wall_s": float, "peak_mb": float}}`` from lessons/costs.json.

    Empty when nothing has been measured yet.
    """
    d = Path(directory) if directory is not None else cli.lessons_dir()
    path = d / COSTS_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("lessons", {})


def cost_cells(name: str, costs: dict) -> tuple[str, str]:
    """The two index cells for one lesson: measured peak memory and wall time, or "not measured"."""
    c = costs.get(name)
    if not c:
        return "not measured", "not measured"
    return f"{c['peak_mb']:.0f} MB", f"{c['wall_s']:.0f} s"


def _widget_output(output: dict) -> dict:
    """A widget output as the site shows it: its stored fallback grid, or a note that it has none."""
    data = output.get("data", {})
    html = "".join(data.get("text/html", ""))  # nbformat may store it as a list of lines
    if FALLBACK_CLASS not in html:
        html = ('<p class="diffedu-missing-fallback"><em>An interactive widget is here; run the '
                "notebook to use it (no static preview was stored: regenerate the lesson with "
                "<code>python3 -m diffedu.cli regenerate</code>).</em></p>")
    out = dict(output)
    out["data"] = {"text/html": html}
    out["metadata"] = {}
    return out


def site_notebook(nb: dict, *, solutions: bool = False) -> dict:
    """The notebook as the site renders it: student copy (unless ``solutions``), widgets replaced by
    their static fallbacks, and no saved widget state (nothing for a widget manager to load)."""
    nb = student_notebook(nb) if not solutions else json.loads(json.dumps(nb))
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["outputs"] = [_widget_output(o) if WIDGET_VIEW in o.get("data", {}) else o
                           for o in cell["outputs"]]
    return nb


def index_markdown(lessons, costs: dict, *, solutions: bool) -> str:
    """The site's front page (MyST Markdown): the lesson table from lesson metadata, and the toctree."""
    version = ("Instructor version: exercise solutions are included." if solutions else
               "Student version: exercise solutions are left out; the checkers say "
               "\"not answered yet\" until you write an answer.")
    rows = ["| # | lesson | what it teaches | assumes | CPU time | peak memory | measured wall time |",
            "|---|---|---|---|---|---|---|"]
    for p in lessons:
        m = cli.lesson_meta(p)
        mem, wall = cost_cells(p.name, costs)
        rows.append(f"| {m['number']:02d} | [{m['title']}](lessons/{p.stem}.ipynb) | {m['teaches']} | "
                    f"{m['assumes']} | about {m['cpu_seconds']} s | {mem} | {wall} |")
    toc = "\n".join(f"lessons/{p.stem}" for p in lessons)
    return f"""# diffedu: the mathematics of diffusion models

A course of JupyterLab lessons with a tested library behind every formula. These pages show each
lesson with its stored outputs; the interactive sliders appear as a small grid of the same figure
at a few slider values. To move the sliders, open the lessons in JupyterLab:
`pip install diffedu[lessons] && diffedu lessons` (see the README's "Teaching with diffedu").

{version}

{chr(10).join(rows)}

CPU time is the lesson author's estimate; peak memory and wall time are measured by
`python3 -m diffedu.site measure` (one kernel, one thread).

```{{toctree}}
:hidden:
:maxdepth: 1

{toc}
```
"""


def build(out=None, *, solutions: bool = False, lessons_dir=None, quiet: bool = True) -> Path:
    """Build the static site; returns the folder holding ``index.html``.

    Stages the site notebooks and the generated index in a temporary folder and runs
    ``sphinx-build -b html`` on it with ``docs/`` as the configuration folder. No notebook is
    executed. Default output: ``docs/_build/html``.
    """
    import tempfile

    docs = docs_dir()
    lessons = cli.lesson_files(lessons_dir)
    if not lessons:
        raise FileNotFoundError("no lessons to build")
    costs = lesson_costs(lessons[0].parent)
    out = Path(out) if out is not None else docs / "_build" / "html"
    with tempfile.TemporaryDirectory(prefix="diffedu-site-") as tmp:
        src = Path(tmp)
        (src / "lessons").mkdir()
        for p in lessons:
            nb = site_notebook(json.loads(p.read_text()), solutions=solutions)
            (src / "lessons" / p.name).write_text(json.dumps(nb, ensure_ascii=False))
        (src / "index.md").write_text(index_markdown(lessons, costs, solutions=solutions))
        cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(docs), "-E", "-j", "1",
               "-d", str(src / ".doctrees"), str(src), str(out)] + (["-q"] if quiet else [])
        subprocess.run(cmd, check=True)
    return out


# --- measuring what a lesson costs -------------------------------------------------------------
def _run_notebook(path: str) -> None:  # runs inside the child process that measure_one waits for
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    print(json.dumps({"wall_s": time.perf_counter() - t0}))


def measure_one(path) -> dict:
    """Run one lesson in a fresh kernel; ``{"wall_s", "peak_mb"}``.

    wall_s: time from kernel start to the last cell's end. peak_mb: the largest peak resident set
    size among the measuring process and its children, the kernel included (``wait4``'s rusage,
    which Linux reports as the maximum over the reaped process tree); the kernel dominates it.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("MPLBACKEND", None)
    env.pop("DIFFEDU_STATIC_FALLBACKS", None)  # measure what a student's run costs
    proc = subprocess.Popen([sys.executable, "-c", f"from diffedu.site import _run_notebook; "
                             f"_run_notebook({str(Path(path).resolve())!r})"],
                            stdout=subprocess.PIPE, env=env, cwd=str(Path(path).parent))
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{path} failed to run (exit status {proc.returncode})")
    wall = json.loads(stdout.decode().strip().splitlines()[-1])["wall_s"]
    return {"wall_s": round(wall, 1), "peak_mb": round(usage.ru_maxrss / 1024, 0)}


def measure(paths=None, *, out=print) -> dict:
    """Measure lessons (default: all) one after another and merge the results into costs.json."""
    paths = [Path(p) for p in paths] if paths else cli.lesson_files()
    directory = paths[0].parent
    costs_path = directory / COSTS_FILE
    data = json.loads(costs_path.read_text()) if costs_path.is_file() else {}
    lessons = data.setdefault("lessons", {})
    for p in paths:
        lessons[p.name] = measure_one(p)
        out(f"{p.name}: {lessons[p.name]['wall_s']} s, {lessons[p.name]['peak_mb']:.0f} MB")
    import platform

    data["measured_on"] = (f"{os.cpu_count()} CPU cores, {platform.machine()}, Python "
                           f"{platform.python_version()}, one thread per kernel")
    data["lessons"] = dict(sorted(lessons.items()))
    costs_path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m diffedu.site", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_b = sub.add_parser("build", help="build the offline course site from the stored outputs")
    p_b.add_argument("--out", default=None, help="output folder (default docs/_build/html)")
    p_b.add_argument("--solutions", action="store_true", help="instructor version: keep solution cells")
    p_m = sub.add_parser("measure", help="measure wall time and peak memory per lesson")
    p_m.add_argument("notebooks", nargs="*")
    args = parser.parse_args(argv)
    if args.command == "build":
        t0 = time.perf_counter()
        out = build(args.out, solutions=args.solutions)
        print(f"site built in {time.perf_counter() - t0:.0f} s: {out / 'index.html'}")
        return 0
    measure(args.notebooks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
