"""The offline course site: built from stored outputs, typeset math, every widget fallback, no network;
the notation page and one API page per module of the maths core.

The browser part opens the built pages in headless Debian chromium (Python Playwright), served
from 127.0.0.1, with every request recorded and any request for another host aborted. It skips
with a how-to when chromium or playwright is missing, and fails instead when CI=true.
"""

import functools
import http.server
import json
import os
import re
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from diffedu.course import cli, notebooks, site
from diffedu.teach.fallbacks import FALLBACK_CLASS

REPO = Path(__file__).resolve().parents[2]
LESSONS = notebooks.lesson_files(REPO / "lessons")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CHROMIUM = "/usr/bin/chromium"
HOWTO = ("the browser test needs Debian chromium and Python Playwright: "
         "apt-get install -y chromium && pip install playwright (never `playwright install`)")


def widget_outputs(path):
    nb = json.loads(Path(path).read_text())
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]
            if WIDGET_VIEW in o.get("data", {})]


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_every_stored_widget_has_a_static_fallback(path):
    nb = json.loads(Path(path).read_text())
    for cell in nb["cells"]:
        outs = cell.get("outputs", [])
        if any(WIDGET_VIEW in o.get("data", {}) for o in outs):
            extra = [o for o in outs if "image/png" in o.get("data", {})]
            assert not extra, f"{path.name}: a widget cell stores {len(extra)} stray figure(s); regenerate it"
    for out in widget_outputs(path):
        html = "".join(out["data"].get("text/html", ""))  # nbformat may store it as a list of lines
        assert FALLBACK_CLASS in html and "data:image/png;base64," in html, (
            f"{path.name}: a widget output has no stored static fallback; regenerate the lesson with "
            "`diffedu regenerate`, which stores one (diffedu/teach/fallbacks.py)")


def test_site_notebook_shows_fallbacks_and_drops_widget_state():
    grid = f'<div class="{FALLBACK_CLASS}"><img src="data:image/png;base64,AA=="></div>'
    nb = {"metadata": {"widgets": {"state": {}}}, "nbformat": 4, "nbformat_minor": 5, "cells": [
        {"cell_type": "code", "metadata": {}, "source": "w", "execution_count": 1, "outputs": [
            {"output_type": "execute_result", "execution_count": 1, "metadata": {},
             "data": {WIDGET_VIEW: {"model_id": "x"}, "text/plain": "interactive(...)", "text/html": grid}},
            {"output_type": "display_data", "metadata": {}, "data": {WIDGET_VIEW: {"model_id": "y"}}}]},
        {"cell_type": "code", "metadata": {"tags": ["solution"]}, "source": "answer_1 = 42",
         "execution_count": 2, "outputs": []}]}
    out = site.site_notebook(nb)
    assert "widgets" not in out["metadata"] and len(out["cells"]) == 1
    first, second = out["cells"][0]["outputs"]
    assert first["data"] == {"text/html": grid}
    assert list(second["data"]) == ["text/html"] and "diffedu-missing-fallback" in second["data"]["text/html"]
    assert len(site.site_notebook(nb, solutions=True)["cells"]) == 2


def test_index_shows_the_readme_lesson_table():
    costs = {LESSONS[0].name: {"wall_s": 12.3, "peak_mb": 456.0}}
    md = site.index_markdown(LESSONS, costs, solutions=False)
    table = notebooks.lesson_table(LESSONS, costs)
    assert table in md  # the same rows, header included, as the README index
    for p in LESSONS:
        assert f"[{notebooks.lesson_meta(p)['title']}](lessons/{p.stem}.ipynb)" in md
        assert f"\nlessons/{p.stem}\n" in md  # in the toctree
    assert "| 456 MB | 12 s |" in md
    assert ("not measured" in md) == (len(LESSONS) > 1)
    assert "Student version" in md and "Instructor version" in site.index_markdown(LESSONS, {}, solutions=True)
    assert "\nnotation\n" in md and "\napi/index\n" in md


FAKE = {  # a package with the three floors, private modules and a core subpackage that re-exports
    "__init__.py": '"""The fake core."""', "processes.py": '"""Processes."""', "_core.py": "",
    "teach/__init__.py": "", "teach/plots.py": "", "course/__init__.py": "", "course/site.py": "",
    "_hidden/__init__.py": "", "_hidden/y.py": "", "discrete/_impl/__init__.py": "", "discrete/_impl/x.py": "",
    "discrete/__init__.py": '"""Discrete.\n\nMore."""\nfrom .elbo import elbo\nfrom ._checks import check\n'
                            '__all__ = ["elbo", "check", "own"]\ndef own():\n    """Defined here."""\n',
    "discrete/elbo.py": '"""The ELBO,\nexactly."""\ndef elbo():\n    """The ELBO."""\n',
    "discrete/_checks.py": 'def check():\n    """A check."""\n',
}


@pytest.fixture
def fakecore(tmp_path, monkeypatch):
    for rel, text in FAKE.items():
        (tmp_path / "fakecore" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fakecore" / rel).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fakecore"
    for name in [m for m in sys.modules if m.split(".")[0] == "fakecore"]:
        del sys.modules[name]


def test_core_modules_are_discovered(fakecore):
    assert site.core_modules(fakecore) == ["fakecore.discrete", "fakecore.discrete.elbo", "fakecore.processes"]
    found = site.core_modules()
    assert "diffedu.processes" in found
    assert not [m for m in found if m.startswith(("diffedu.teach", "diffedu.course")) or "._" in m]
    with pytest.raises(TypeError, match="package"):
        site.core_modules(3)


def test_api_pages_document_each_object_once(fakecore):
    pages = site.api_pages(site.core_modules(fakecore))
    assert sorted(pages) == ["fakecore.discrete.elbo.md", "fakecore.discrete.md", "fakecore.processes.md", "index.md"]
    assert ".. automodule:: fakecore.processes\n   :members:\n" in pages["fakecore.processes.md"]
    package = pages["fakecore.discrete.md"]  # its own and its private modules' names; links to the rest
    assert ":members: check, own\n" in package and ":obj:`~fakecore.discrete.elbo.elbo`" in package
    assert "   * - :mod:`fakecore.discrete.elbo`\n     - The ELBO, exactly.\n" in package
    index = pages["index.md"]
    assert "   * - :mod:`fakecore.processes`\n     - Processes.\n" in index and "\nfakecore.discrete\n" in index
    with pytest.raises(TypeError, match="modules"):
        site.api_pages([site])


WIDGETS_AT_BUILD = {}  # lesson name -> widget outputs when the site was built (lessons may change later)


CORE_AT_BUILD = []  # the core modules when the site was built


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """The site, built once by the console command (``diffedu site build --out DIR``)."""
    pytest.importorskip("myst_nb", reason="the site needs Sphinx and MyST-NB: pip install -e '.[test]'")
    WIDGETS_AT_BUILD.update({p.name: len(widget_outputs(p)) for p in LESSONS})
    CORE_AT_BUILD[:] = site.core_modules()
    out = tmp_path_factory.mktemp("site") / "html"
    assert cli.main(["site", "build", "--out", str(out)]) == 0
    return out


def test_built_site_has_the_notation_page_and_an_api_page_per_core_module(built_site):
    notation = (built_site / "notation.html").read_text()
    assert "Time and the forward process" in notation and "pf_ode_velocity" in notation
    checks = (built_site / "input-checks.html").read_text()
    assert "What is deliberately not checked" in checks
    assert notation.count("<table") >= 4 and 'class="math' in notation
    api = {p.stem for p in (built_site / "api").glob("diffedu*.html")}
    assert api == set(CORE_AT_BUILD) and len(api) >= 5
    index = (built_site / "api" / "index.html").read_text()
    for mod in CORE_AT_BUILD:
        page = (built_site / "api" / f"{mod}.html").read_text()
        assert f'id="module-{mod}"' in page, f"autodoc could not import {mod}"
        assert f'href="{mod}.html' in index
    front = (built_site / "index.html").read_text()
    assert 'href="notation.html"' in front and 'href="api/index.html"' in front


def test_built_pages_reference_no_other_host(built_site):
    pages = sorted(built_site.glob("*.html")) + sorted(built_site.glob("*/*.html"))
    assert len(pages) >= len(LESSONS) + len(CORE_AT_BUILD) + 3
    for page in pages:
        text = page.read_text()
        refs = re.findall(r'<(?:script|link|img|iframe|source)\b[^>]*?\b(?:src|href)="([^"]+)"', text)
        remote = [r for r in refs if urlparse(r).scheme in ("http", "https") or r.startswith("//")]
        assert not remote, f"{page.name} loads {remote}"
        if page.parent.name == "lessons" or page.name == "notation.html":
            assert "mathjax/tex-chtml.js" in text
        assert "require.js" not in text and "embed-amd" not in text  # no widget manager from a CDN


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(built_site):
    handler = functools.partial(_Quiet, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _playwright_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {HOWTO}")
        pytest.skip(HOWTO)
    return sync_playwright


@pytest.mark.browser
def test_pages_render_offline_in_chromium(served):
    sync_playwright = _playwright_or_skip()
    requests, blocked, failed = [], [], []

    def route(r):
        url = r.request.url
        requests.append(url)
        host = urlparse(url).hostname
        if url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    pages = ["index.html", "notation.html", "api/diffedu.processes.html"] + [f"lessons/{p.stem}.html" for p in LESSONS]
    report = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            ctx = browser.new_context()
            ctx.route("**/*", route)
            page = ctx.new_page()
            # a request the next navigation aborts (MathJax loads its fonts lazily) is not a missing
            # file: a missing file answers 404, which the response handler records
            page.on("requestfailed", lambda req: "ERR_ABORTED" not in (req.failure or "") and failed.append(
                f"{req.url} ({req.failure})"))
            page.on("response", lambda resp: resp.status >= 400 and failed.append(f"{resp.status} {resp.url}"))
            for rel, lesson in zip(pages, [None, None, None] + LESSONS):
                page.goto(f"{served}/{rel}", wait_until="load")
                if lesson is not None or rel == "notation.html":  # MathJax loads only where there is math
                    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise",
                                           timeout=60_000)
                    page.evaluate("MathJax.startup.promise.then(() => true)")
                page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=60_000)
                page.wait_for_load_state("networkidle", timeout=60_000)
                report[rel] = page.evaluate("""() => ({
                    math: document.querySelectorAll('.math').length,
                    untypeset: Array.from(document.querySelectorAll('.math'))
                                    .filter(e => !e.querySelector('mjx-container')).length,
                    typeset: document.querySelectorAll('mjx-container').length,
                    merror: document.querySelectorAll('mjx-merror').length,
                    grids: document.querySelectorAll('.diffedu-fallback').length,
                    grid_imgs: document.querySelectorAll('.diffedu-fallback img').length,
                    // a preview frame is drawn readable at its natural size (teach.fallbacks.MAX_WIDTH_PX)
                    shrunk: Array.from(document.querySelectorAll('.diffedu-fallback img'))
                                 .filter(i => i.getBoundingClientRect().width < i.naturalWidth - 1)
                                 .map(i => [i.alt, i.naturalWidth, Math.round(i.getBoundingClientRect().width)]),
                    broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
                                 .map(i => i.alt || i.src.slice(0, 60)),
                    missing: document.querySelectorAll('.diffedu-missing-fallback').length,
                })""")
                if rel == "notation.html":
                    r = report[rel]
                    assert r["math"] > 10 and r["untypeset"] == 0 and r["merror"] == 0, (rel, r)
                if lesson is not None:
                    r = report[rel]
                    n_widgets = WIDGETS_AT_BUILD[lesson.name]
                    assert r["math"] > 0 and r["typeset"] >= r["math"] and r["untypeset"] == 0, (rel, r)
                    assert r["merror"] == 0, (rel, r)
                    assert r["grids"] == n_widgets and r["missing"] == 0, (rel, r)
                    assert r["grid_imgs"] >= 2 * n_widgets, (rel, r)
                    assert r["shrunk"] == [], f"{rel}: preview frames shown below their natural size: {r['shrunk']}"
                assert report[rel]["broken"] == [], (rel, report[rel])
        finally:
            browser.close()
    assert blocked == [], f"requests for other hosts: {blocked}"
    assert failed == [], f"failed requests: {failed}"
    assert any("mathjax/tex-chtml.js" in u for u in requests)
    assert any(u.endswith(".woff") for u in requests), "MathJax fonts were not loaded from the site"


def test_measure_counts_the_kernel_memory(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import numpy as np\nx = np.ones(40_000_000)  # 320 MB\nx.sum()")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "01_probe.ipynb"
    nbformat.write(nb, path)
    cost = site.measure_one(path)
    assert cost["peak_mb"] >= 320, cost  # the kernel, a grandchild, is what the number reports
    assert 0 < cost["wall_s"] < 300
