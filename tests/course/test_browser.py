"""A learner's view: JupyterLab in headless Debian chromium runs lesson 02 and a slider redraws.

Starts JupyterLab on 127.0.0.1 with a random token in its own process group, opens a temporary
copy of lesson 02 (JupyterLab autosaves into the file it opened), runs all cells from the Run
menu, presses ArrowRight on the "t / t_max" slider and waits until the plot <img> inside the
widget changes. Then checks that no cell shows an error or stderr output.

Needs ``apt-get install -y chromium`` and ``pip install playwright`` (never ``playwright
install``: the test drives /usr/bin/chromium). Without them it skips with that message, except
under CI (CI=true), where a missing browser is a failure.
"""

import os
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

REPO = Path(__file__).resolve().parents[2]
LESSON = REPO / "lessons" / "02_gaussian_score_and_flow.ipynb"
CHROMIUM = "/usr/bin/chromium"
HOWTO = ("browser test needs Debian chromium and Python Playwright: "
         "`apt-get install -y chromium && pip install playwright` (no `playwright install`)")

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


@pytest.fixture
def lab(tmp_path):
    _require_browser()
    root = tmp_path / "lab"
    root.mkdir()
    # a copy without stored outputs: every output on the page then comes from this run
    nb = nbformat.read(LESSON, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, root / LESSON.name)
    port, token = _free_port(), secrets.token_hex(16)
    # render every cell (no windowing), so prompts and outputs of all cells are in the DOM
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env = dict(os.environ, OMP_NUM_THREADS="1", JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"))
    env.pop("MPLBACKEND", None)
    log = open(tmp_path / "lab.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
         "--allow-root"],
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
                    raise RuntimeError((tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url, token, root
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # our own process group: the server and its kernels
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _accept_dialogs(page):
    for button in page.locator(".jp-Dialog .jp-mod-accept").all():
        if button.is_visible():
            button.click()


def _menu(page, menu, item):
    page.click(f'.lm-MenuBar-itemLabel:text-is("{menu}")')
    page.click(f'.lm-Menu-itemLabel:text-is("{item}")')


def _plot_src(widget):
    return widget.locator(".jp-OutputArea-output img").first.get_attribute("src")


def test_lesson_02_runs_and_slider_redraws(lab, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    url, token, _ = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/{LESSON.name}?token={token}")
            page.wait_for_selector(".jp-Notebook", timeout=90_000)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000)
            _accept_dialogs(page)
            # the kernel is connected once the status bar reads "<kernel name> | Idle"; Run All
            # before that selects the cells without running them, so retry until outputs appear
            page.wait_for_function("() => document.body.innerText.includes('| Idle')", timeout=120_000)
            for attempt in range(4):
                _accept_dialogs(page)
                _menu(page, "Run", "Run All Cells")
                try:
                    page.wait_for_selector(".jp-Notebook .jp-OutputArea-output", timeout=20_000)
                    break
                except PlaywrightTimeout:
                    page.wait_for_timeout(3000)
            else:
                pytest.fail("Run All never started executing cells")
            # the last cell prints an exercise check: once it did and no cell is queued, all ran
            last = page.locator(".jp-Notebook .jp-CodeCell").last
            deadline = time.time() + 240
            while "Correct" not in last.locator(".jp-OutputArea").inner_text() or \
                    page.locator('.jp-InputPrompt:has-text("[*]")').count():
                _accept_dialogs(page)
                assert time.time() < deadline, "Run All did not finish in 240 s"
                page.wait_for_timeout(500)

            label = page.locator('.widget-label:text-is("t / t_max")')
            widget = page.locator(".widget-interact", has=label).first
            widget.scroll_into_view_if_needed()
            page.wait_for_function(
                "w => w.querySelector('.jp-OutputArea-output img') !== null", arg=widget.element_handle(),
                timeout=60_000)
            before = _plot_src(widget)
            slider = widget.locator(".widget-slider", has=label).first
            handle = slider.locator(".noUi-handle").first
            handle.focus()
            for _ in range(5):
                handle.press("ArrowRight")
            deadline = time.time() + 60
            while _plot_src(widget) == before:
                assert time.time() < deadline, "moving the slider did not redraw the plot"
                page.wait_for_timeout(300)

            errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
            assert errors.count() == 0, errors.first.inner_text()
        except Exception:
            shot = Path(os.environ.get("DIFFEDU_BROWSER_SHOT", str(tmp_path / "failure.png")))
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failure: {shot}")
            raise
        finally:
            browser.close()
