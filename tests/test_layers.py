"""The three floors and their one direction (LAYOUT): course -> teach -> core, read from the source.

Every import of every module under ``diffedu/`` is read with ``ast`` (module level and inside
functions alike: a lazy import is still an arrow), resolved to an absolute module name, and
checked:

* the core (everything outside ``diffedu.teach`` and ``diffedu.course``) imports neither of them,
  nor matplotlib, ipywidgets or IPython;
* the teaching layer never imports the course tools, and a lesson's module
  (``diffedu.teach.<topic>``) imports only the shared teaching modules, not another lesson's;
* no modules import each other in a circle;
* ``import diffedu`` loads no plotting or widget package.

The checks are plain functions over a ``{module: imports}`` map, so the tests below also feed
them a wrong-way import and a circle on purpose and see them fail.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "diffedu"
UI_PACKAGES = {"matplotlib", "ipywidgets", "IPython"}
SHARED_TEACH = {"diffedu.teach", "diffedu.teach.plots", "diffedu.teach.widgets", "diffedu.teach.checks",
                "diffedu.teach.fallbacks", "diffedu.teach.models"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of everything the file imports (``from a import b`` yields ``a`` and ``a.b``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names if a.name != "*"}
    return out


def package_imports() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def floor(module: str) -> str:
    if module == "diffedu.course" or module.startswith("diffedu.course."):
        return "course"
    if module == "diffedu.teach" or module.startswith("diffedu.teach."):
        return "teach"
    return "core"


def wrong_way_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Every import that breaks the layering, as readable lines (empty when all is well)."""
    rank = {"core": 0, "teach": 1, "course": 2}
    bad = []
    for mod, imps in sorted(graph.items()):
        for imp in sorted(imps):
            top = imp.split(".")[0]
            if top == "diffedu" and rank[floor(imp)] > rank[floor(mod)]:
                bad.append(f"{mod} ({floor(mod)}) imports {imp} ({floor(imp)})")
            elif floor(mod) == "core" and top in UI_PACKAGES:
                bad.append(f"{mod} (core) imports {imp}, a plotting or widget package")
            elif (floor(mod) == "teach" and mod not in SHARED_TEACH and floor(imp) == "teach"
                  and imp not in SHARED_TEACH and not imp.startswith(mod + ".")
                  and imp.rsplit(".", 1)[0] not in SHARED_TEACH - {"diffedu.teach"}):
                bad.append(f"{mod} (a lesson's module) imports {imp}, another lesson's module")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), among the modules of
    ``graph``; an import of ``a.b.c`` counts as an arrow to the longest module name it starts with."""
    nodes = set(graph)

    def target(imp):
        while imp and imp not in nodes:
            imp = imp.rpartition(".")[0]
        return imp or None

    edges = {m: {t for t in map(target, imps) if t and t != m} for m, imps in graph.items()}
    # a package's __init__ re-exporting its submodules is not a circle with them
    edges = {m: {t for t in ts if not (m.startswith(t + ".") and t in nodes)} for m, ts in edges.items()}
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def test_every_arrow_runs_one_way():
    bad = wrong_way_arrows(package_imports())
    assert not bad, "imports against the layering (course -> teach -> core):\n" + "\n".join(bad)


def test_no_modules_import_each_other_in_a_circle():
    found = cycles(package_imports())
    assert not found, "modules that import each other in a circle: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_floors_exist_and_every_lesson_has_its_module():
    graph = package_imports()
    assert {floor(m) for m in graph} == {"core", "teach", "course"}
    lessons = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
    missing = [p.name for p in lessons if f"diffedu.teach.{p.stem[3:]}" not in graph]
    assert not missing, f"lessons without a teaching module diffedu.teach.<topic>: {missing}"


@pytest.mark.parametrize("case, graph, expect", [
    ("core imports teach", {"diffedu.gaussian": {"diffedu.teach.plots"}}, "diffedu.gaussian (core) imports"),
    ("core imports course lazily", {"diffedu.samplers": {"diffedu.course.cli"}}, "(course)"),
    ("teach imports course", {"diffedu.teach.plots": {"diffedu.course.notebooks"}}, "diffedu.teach.plots (teach)"),
    ("core imports matplotlib", {"diffedu.flows": {"matplotlib.pyplot"}}, "plotting or widget package"),
    ("lesson imports lesson", {"diffedu.teach.likelihood": {"diffedu.teach.fokker_planck"}}, "another lesson"),
])
def test_a_wrong_way_import_is_caught(case, graph, expect):
    """The checker fails on purpose-made wrong-way imports (and passes the allowed ones)."""
    bad = wrong_way_arrows(graph)
    assert len(bad) == 1 and expect in bad[0], (case, bad)
    ok = {"diffedu.course.cli": {"diffedu.teach.fallbacks", "diffedu.gaussian", "matplotlib"},
          "diffedu.teach.likelihood": {"diffedu.teach.plots", "diffedu.teach.widgets.interactive",
                                       "diffedu.likelihood", "ipywidgets"},
          "diffedu.gaussian": {"diffedu._core", "torch"}}
    assert wrong_way_arrows(ok) == []


def test_a_circle_is_caught():
    graph = {"diffedu.a": {"diffedu.b.f"}, "diffedu.b": {"diffedu.c"}, "diffedu.c": {"diffedu.a"},
             "diffedu.d": {"diffedu.a"}, "diffedu.pkg": {"diffedu.pkg.sub"}, "diffedu.pkg.sub": {"diffedu.pkg"}}
    assert cycles(graph) == [["diffedu.a", "diffedu.b", "diffedu.c"]]


def test_the_checker_reads_a_wrong_way_import_from_a_real_file(tmp_path):
    """Write a core module that imports the teaching layer, read it like the package's files."""
    global ROOT
    pkg = tmp_path / "diffedu"
    (pkg / "teach").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "teach" / "__init__.py").write_text("")
    (pkg / "teach" / "plots.py").write_text("import matplotlib\n")
    (pkg / "core_mod.py").write_text("def f():\n    from .teach import plots\n    return plots\n")
    old, ROOT = ROOT, tmp_path
    try:
        graph = {module_name(p): imports_of(p) for p in sorted(pkg.rglob("*.py"))}
    finally:
        ROOT = old
    assert "diffedu.teach.plots" in graph["diffedu.core_mod"]
    assert wrong_way_arrows(graph) == ["diffedu.core_mod (core) imports diffedu.teach (teach)",
                                       "diffedu.core_mod (core) imports diffedu.teach.plots (teach)"]


def test_import_diffedu_loads_no_plotting_package():
    code = ("import sys, diffedu\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(UI_PACKAGES)!r})\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"import diffedu loaded {out.stdout.strip()}"
