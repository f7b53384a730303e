"""A learner's view: JupyterLab in headless Debian chromium, driven by Playwright.

One JupyterLab server (127.0.0.1, a random token, its own process group, settings and workspaces
in a temporary folder) serves both tests from a temporary folder: JupyterLab autosaves into the
files it opened, so the lessons themselves are never touched.

1. :func:`test_lesson_runs_saves_and_reopens_with_its_figures` (issue 14, points 1 and 9):
   lesson 01 without its stored outputs, in a 1280 x 800 window. Run All from the Run menu; the
   exercise checks print; no cell shows an error or stderr; no widget label is cut short (the
   "perturbati..." of issue 14); the output area is at least ``plots.SHOWN_WIDTH_PX`` wide and a
   widget's figure is shown at its natural size or scaled down to the area, which the readability
   rule of :mod:`diffedu.teach.plots` assumes; ArrowRight on a "t / t_max" slider redraws the
   plot <img>. Then the notebook is saved, its kernel shut down and the page reloaded: where each
   widget was, the widget area shows a figure (an <img>; the slider's is the last one drawn) and
   "Error displaying widget" appears nowhere. That needs JupyterLab to save widget state, which
   the settings default installed with diffedu turns on (``jupyter-settings/overrides.d``);
   without it (``--LabApp.app_settings_dir`` pointing at an empty folder) every widget reopens as
   "Error displaying widget: model not found" and the test fails.
2. :func:`test_fast_arrow_presses_do_not_queue_redraws` (point 8): lesson 10's interpolant widget
   (a draw takes a few tenths of a second) in a small notebook. Six ArrowRight presses within
   about 0.3 s (25 ms apart), alternating between its two sliders; the page polls the plot <img>
   every 50 ms. The figure changes at most twice (kernel-side: at most two redraws), stops
   changing within a few draw times of the last press, and ends on the values the readouts
   show. The presses alternate because ipywidgets' front end already merges quick changes of
   *one* slider (it keeps one unanswered message per control and folds newer values into the
   next), so six presses on one slider cost two draws even with plain ``ipywidgets.interactive``;
   changes of two sliders are queued one per control and round: plain ``interactive`` draws four
   figures (the test fails), the lesson's widget two.

Both take about a minute together on a busy 2-core machine. They need ``apt-get install -y
chromium`` and ``pip install playwright`` (never ``playwright install``: the tests drive
/usr/bin/chromium). Without them they skip with that message, except under CI (CI=true), where a
missing browser is a failure.
"""

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from diffedu.teach.plots import SHOWN_WIDTH_PX

REPO = Path(__file__).resolve().parents[2]
LESSON = REPO / "lessons" / "01_forward_processes.ipynb"
CHROMIUM = "/usr/bin/chromium"
HOWTO = ("browser test needs Debian chromium and Python Playwright: "
         "`apt-get install -y chromium && pip install playwright` (no `playwright install`)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
NB = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"  # the notebook on show, not one in a hidden tab

pytestmark = pytest.mark.browser


def _require_browser():
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright")
    if missing:
        msg = f"{HOWTO}; missing: {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_lab(tmp: Path, root: Path, extra_args=()):
    """JupyterLab serving ``root``; yields ``(url, token)``. ``extra_args`` go on its command line."""
    port, token = _free_port(), secrets.token_hex(16)
    # render every cell (no windowing), so prompts and outputs of all cells are in the DOM
    settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env = dict(os.environ, OMP_NUM_THREADS="1", JUPYTER_CONFIG_DIR=str(tmp / "cfg"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    env.pop("MPLBACKEND", None)
    log = open(tmp / "lab.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
         "--allow-root", *extra_args],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError((tmp / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url, token
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # our own process group: the server and its kernels
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _require_browser()
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    with start_lab(tmp, root) as (url, token):
        yield url, token, root


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def screenshot_on_failure(page, name, tmp_path):
    try:
        yield
    except BaseException:
        shot = Path(os.environ.get("DIFFEDU_BROWSER_SHOT", str(tmp_path / f"{name}.png")))
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failure: {shot}")
        raise


# --- driving JupyterLab ---------------------------------------------------------------------------
def _accept_dialogs(page):
    for button in page.locator(".jp-Dialog .jp-mod-accept").all():
        if button.is_visible():
            button.click()


def _menu(page, menu, item):
    page.click(f'.lm-MenuBar-itemLabel:text-is("{menu}")')
    page.click(f'.lm-Menu-itemLabel:text-is("{item}")')


def _open(page, url, token, name):
    """Open a notebook, in a workspace of its own (no tab of another test is restored), and wait
    until its kernel is connected ("<kernel name> | Idle")."""
    workspace = re.sub(r"\W", "-", name)
    page.goto(f"{url}/lab/workspaces/{workspace}/tree/{name}?token={token}")
    page.wait_for_selector(NB, timeout=90_000)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000)
    _accept_dialogs(page)
    page.wait_for_function("() => document.body.innerText.includes('| Idle')", timeout=120_000)


def _run_all(page, done, timeout=240):
    """Run All from the Run menu, then wait until ``done()`` holds and no cell is queued. Run All
    before the kernel is ready selects the cells without running them: retry until outputs appear."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(4):
        _accept_dialogs(page)
        _menu(page, "Run", "Run All Cells")
        try:
            page.wait_for_selector(f"{NB} .jp-OutputArea-output", timeout=20_000)
            break
        except PlaywrightTimeout:
            page.wait_for_timeout(3000)
    else:
        pytest.fail("Run All never started executing cells")
    deadline = time.time() + timeout
    while not done() or page.locator(f'{NB} .jp-InputPrompt:has-text("[*]")').count():
        _accept_dialogs(page)
        assert time.time() < deadline, f"Run All did not finish in {timeout} s"
        page.wait_for_timeout(500)


def _plot_src(widget):
    return widget.locator(".jp-OutputArea-output img").first.get_attribute("src")


def _widget_cells(page):
    """``{index among the code cells: plot src}`` of every code cell that shows a widget."""
    return page.evaluate(f"""() => Object.fromEntries([...document.querySelectorAll('{NB} .jp-CodeCell')]
        .map((c, i) => [i, c.querySelector('.widget-interact')])
        .filter(([i, w]) => w !== null)
        .map(([i, w]) => [i, w.querySelector('.jp-OutputArea-output img')?.getAttribute('src') ?? null]))""")


def _stripped_copy(src: Path, root: Path):
    """A copy without stored outputs: every output on the page then comes from this run."""
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, root / src.name)


# --- point 1 (and 9 in the browser) ---------------------------------------------------------------
def run_save_and_reopen(page, url, token, root):
    """Test 1's steps on a fresh copy of lesson 01 in ``root`` (see the module docstring)."""
    _stripped_copy(LESSON, root)
    page.set_viewport_size({"width": 1280, "height": 800})
    _open(page, url, token, LESSON.name)
    last = page.locator(f"{NB} .jp-CodeCell").last  # the last cell prints an exercise check
    _run_all(page, lambda: "Correct" in last.locator(".jp-OutputArea").inner_text())

    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert errors.count() == 0, errors.first.inner_text()
    cut = page.evaluate("""() => [...document.querySelectorAll('.widget-label')]
        .filter(e => e.scrollWidth > e.clientWidth).map(e => e.innerText)""")
    assert cut == [], f"widget labels cut short: {cut}"  # ipywidgets cuts "perturbation" at 80 of 81 px

    before = _widget_cells(page)
    assert len(before) == 2, f"lesson 01 shows two widgets; found {before}"
    sizes = page.evaluate("""() => [...document.querySelectorAll('.widget-interact .jp-OutputArea-output img')]
        .map(i => [i.naturalWidth, i.getBoundingClientRect().width,
                   i.closest('.jp-Cell-outputArea').getBoundingClientRect().width])""")
    area = page.evaluate(f"""() => Math.max(...[...document.querySelectorAll('{NB} .jp-OutputArea-output')]
        .map(e => e.getBoundingClientRect().width))""")
    assert area >= SHOWN_WIDTH_PX, f"the output area is {area} px wide; the readability rule assumes {SHOWN_WIDTH_PX}"
    for natural, shown, _ in sizes:  # one image pixel per CSS pixel, scaled down only to fit
        assert shown == pytest.approx(min(natural, area), abs=2), (natural, shown, area)

    label = page.locator('.widget-label:text-is("t / t_max")').first
    widget = page.locator(".widget-interact", has=label).first
    widget.scroll_into_view_if_needed()
    old = _plot_src(widget)
    handle = widget.locator(".widget-slider", has=label).first.locator(".noUi-handle").first
    handle.focus()
    for _ in range(5):
        handle.press("ArrowRight")
    deadline = time.time() + 60
    while _plot_src(widget) == old:
        assert time.time() < deadline, "moving the slider did not redraw the plot"
        page.wait_for_timeout(300)
    page.wait_for_timeout(1500)  # let a background draw that is still running finish
    drawn = _widget_cells(page)

    _menu(page, "File", "Save Notebook")
    page.wait_for_function("() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
                           timeout=30_000)
    saved = json.loads((root / LESSON.name).read_text())
    _menu(page, "Kernel", "Shut Down Kernel")
    _accept_dialogs(page)
    page.wait_for_function("() => !document.body.innerText.includes('| Idle')", timeout=30_000)

    page.reload()
    page.wait_for_selector(f"{NB} .jp-CodeCell", timeout=90_000)
    _accept_dialogs(page)
    deadline = time.time() + 60
    while True:  # widgets render a moment after the cells
        now = _widget_cells(page)
        if "Error displaying widget" in page.locator("body").inner_text() or (
                set(now) == set(drawn) and all(now.values())) or time.time() > deadline:
            break
        page.wait_for_timeout(500)
    no_state = ("" if WIDGET_STATE in saved["metadata"].get("widgets", {}) else
                " (the lesson was saved without its widgets' state: JupyterLab's saveState is off; "
                "diffedu installs a settings default that turns it on: reinstall it, pip install -e .)")
    assert "Error displaying widget" not in page.locator("body").inner_text(), (
        "a reopened lesson shows 'Error displaying widget' where a figure was" + no_state)
    assert set(now) == set(drawn), f"widgets before saving in code cells {sorted(drawn)}, after reopening {sorted(now)}"
    assert all(now.values()), f"a reopened widget shows no figure: {[i for i, s in now.items() if not s]}"
    assert now == drawn, "a reopened widget does not show the last figure it drew"
    assert not no_state, no_state


def test_lesson_runs_saves_and_reopens_with_its_figures(lab, browser, tmp_path):
    url, token, root = lab
    page = browser.new_page()
    try:
        with screenshot_on_failure(page, "reopen", tmp_path):
            run_save_and_reopen(page, url, token, root)
    finally:
        page.close()


# --- point 8 ---------------------------------------------------------------------------------------
PROBE_SETUP = """\
import ipywidgets as W
import diffedu as de
from diffedu.teach import stochastic_interpolants as lesson

data = de.GaussianMixture([0.3, 0.7], [[-1.5, 0.5], [1.5, -0.5]],
                          [[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.4]]])
normal = de.Gaussian([0.0, 0.0], [1.0, 1.0])
"""
#: How the widget is built: lesson 10's cell (the negative control uses ipywidgets.interactive).
LESSON_WIDGET = "w = lesson.interpolant_widget(data, normal, eps=0.5, a=0.5)\nw"
EPS, A = "eps (SDE noise)", "gamma^2 / (t(1-t))"   # the two sliders' labels, both at 0.5, step 0.25
PROBE = re.compile(r"drawn eps = ([-0-9.]+), a = ([-0-9.]+), redraws = (-?[0-9]+)")


def probe_notebook(root: Path, build: str = LESSON_WIDGET, name: str = "presses.ipynb") -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(PROBE_SETUP + build),
                nbformat.v4.new_code_cell("print(f\"drawn eps = {w.kwargs['eps']:.2f}, a = {w.kwargs['a']:.2f}, "
                                          "redraws = {getattr(w, 'redraws', -1)}\")")]
    nbformat.write(nb, root / name)
    return name


def fast_presses(page, url, token, name, keys, settle_s=2.5):
    """Open ``name`` (a :func:`probe_notebook`) and run it; press ArrowRight on the sliders named
    by ``keys`` (labels, one per press, 25 ms apart) while the page polls the plot <img> every
    50 ms; wait until the figure has not changed for ``settle_s``; run the probe cell again.
    Returns the measurements: presses and their span, image changes, the first change and the
    last one after the first and the last press, the readouts, the values drawn last, redraws."""
    page.set_viewport_size({"width": 1280, "height": 800})
    _open(page, url, token, name)
    probe = page.locator(f"{NB} .jp-CodeCell").nth(1)
    _run_all(page, lambda: "drawn eps" in probe.locator(".jp-OutputArea").inner_text(), timeout=120)
    widget = page.locator(".widget-interact").first
    page.wait_for_function("w => w.querySelector('.jp-OutputArea-output img') !== null",
                           arg=widget.element_handle(), timeout=60_000)
    widget.element_handle().evaluate("""w => {
        const src = () => w.querySelector('.jp-OutputArea-output img')?.getAttribute('src') ?? null;
        window.__changes = []; window.__presses = [];
        let last = src();
        window.__poll = setInterval(() => {
            const s = src();
            if (s !== null && s !== last) { window.__changes.push(performance.now()); last = s; }
        }, 50);
        w.addEventListener('keydown', e => { if (e.key === 'ArrowRight') window.__presses.push(performance.now()); },
                           true);
    }""")
    slider = {k: widget.locator(".widget-slider", has=page.locator(f'.widget-label:text-is("{k}")')).first
              for k in set(keys)}
    handle = {k: s.locator(".noUi-handle").first for k, s in slider.items()}
    for k in keys:
        handle[k].press("ArrowRight")
        page.wait_for_timeout(25)
    deadline = time.time() + 60
    while True:
        t = page.evaluate("() => [performance.now(), window.__changes.slice(-1)[0] ?? null]")
        if t[1] is not None and t[0] - t[1] > settle_s * 1000:
            break
        assert time.time() < deadline, "the figure did not settle within 60 s of the presses"
        page.wait_for_timeout(200)
    changes, presses = page.evaluate("() => { clearInterval(window.__poll); return [window.__changes, window.__presses]; }")
    readout = {k: float(s.locator(".widget-readout").first.inner_text()) for k, s in slider.items()}
    probe.click()
    page.keyboard.press("Control+Enter")  # run it again, in place
    page.wait_for_function(f"c => /{PROBE.pattern}/.test(c.innerText)", arg=probe.element_handle(), timeout=30_000)
    m = PROBE.search(probe.inner_text())
    return {"presses": len(presses), "press_span_s": round((presses[-1] - presses[0]) / 1000, 2),
            "changes": len(changes), "first_change_s": round((changes[0] - presses[0]) / 1000, 2),
            "catch_up_s": round((changes[-1] - presses[-1]) / 1000, 2), "readout": readout,
            "drawn": {EPS: float(m.group(1)), A: float(m.group(2))}, "redraws": int(m.group(3))}


def check_presses(r, keys):
    """What point 8 asks of the measurements of :func:`fast_presses` after the presses ``keys``."""
    assert r["presses"] == len(keys) and r["press_span_s"] < 0.5, r
    assert r["readout"] == {k: 0.5 + 0.25 * keys.count(k) for k in set(keys)}, r
    assert all(r["drawn"][k] == v for k, v in r["readout"].items()), (
        f"the figure does not show the values the readouts show: {r}")
    assert r["changes"] <= 2 and r["redraws"] <= 2, f"one redraw per key press instead of the newest values: {r}"
    # a draw takes about first_change_s; two in a row, and slack for a busy machine
    assert r["catch_up_s"] <= 3 * r["first_change_s"] + 1.0, f"the figure lagged the readouts: {r}"


def test_fast_arrow_presses_do_not_queue_redraws(lab, browser, tmp_path):
    url, token, root = lab
    page = browser.new_page()
    keys = [EPS, A] * 3  # six presses, alternating between the two sliders
    try:
        with screenshot_on_failure(page, "presses", tmp_path):
            r = fast_presses(page, url, token, probe_notebook(root), keys)
            print("fast presses:", r)
            check_presses(r, keys)
    finally:
        page.close()
