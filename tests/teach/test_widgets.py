"""diffedu.teach.widgets: one widget builder; browser-sent changes are drawn newest-first in the
background (no queue of stale redraws); changes made in Python are drawn at once."""

import json
import sys
import threading
import time
from pathlib import Path

import ipywidgets as W
import matplotlib.figure

from diffedu.teach.plots import new_axes
from diffedu.teach.widgets import LessonInteractive, float_slider, interactive

ROOT = Path(__file__).resolve().parents[2]


def _slow_draw(calls, delay=0.15):
    def draw(v, *, label):
        calls.append(v)
        time.sleep(delay)
        ax = new_axes()
        ax.set_title(f"{label} {v:.2f}")
        return ax.figure
    return draw


def test_python_changes_are_drawn_at_once_and_fixed_values_pinned():
    calls = []
    w = interactive(_slow_draw(calls, 0.0), v=float_slider(0.3, 0.0, 1.0, 0.1, "v"), label="value")
    assert isinstance(w, LessonInteractive) and isinstance(w.result, matplotlib.figure.Figure)
    slider = w.kwargs_widgets[0]
    assert slider.continuous_update is False and len(w.children) == 2  # the slider and the output, no label control
    slider.value = 0.7
    assert calls == [0.3, 0.7] and w.result.axes[0].get_title() == "value 0.70" and w.redraws == 0


def test_browser_changes_drop_stale_values():
    """Six values sent as fast as a held arrow key: update returns at once, the figure catches up
    with at most one stale draw, and it ends on the last value."""
    calls = []
    w = interactive(_slow_draw(calls), v=float_slider(0.0, 0.0, 1.0, 0.1, "v"), label="value")
    slider = w.kwargs_widgets[0]
    t0 = time.perf_counter()
    for k in range(1, 7):
        slider.set_state({"value": k / 10})           # what a message from the front end does
    assert time.perf_counter() - t0 < 0.1              # nothing was drawn in the caller's thread
    deadline = time.time() + 5
    while (w._worker is not None or w._pending is not None) and time.time() < deadline:
        time.sleep(0.02)
    assert calls[0] == 0.0 and calls[-1] == 0.6
    assert w.redraws <= 2 < 6, calls                    # not one redraw per key press
    assert w.result.axes[0].get_title() == "value 0.60"
    (out,) = w.out.outputs
    assert out["output_type"] == "display_data" and "text/plain" in out["data"]


def test_an_error_in_a_background_draw_is_shown_where_the_figure_was():
    def draw(v):
        if v > 0.5:
            raise ValueError("too large for this plot")
        return new_axes().figure

    w = interactive(draw, v=float_slider(0.1, 0.0, 1.0, 0.1, "v"))
    w.kwargs_widgets[0].set_state({"value": 0.9})
    deadline = time.time() + 5
    while w._worker is not None and time.time() < deadline:
        time.sleep(0.02)
    (out,) = w.out.outputs
    assert out["name"] == "stderr" and "too large for this plot" in out["text"]


def test_installing_diffedu_makes_jupyterlab_save_widget_state():
    """The settings default ships in the wheel, to the folder JupyterLab reads overrides.d from."""
    import tomllib

    src = ROOT / "jupyter-settings" / "overrides.d" / "diffedu.json"
    assert json.loads(src.read_text()) == {"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True}}
    shared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    assert shared["jupyter-settings/overrides.d/diffedu.json"] == "share/jupyter/lab/settings/overrides.d/diffedu.json"
    installed = Path(sys.prefix) / "share/jupyter/lab/settings/overrides.d/diffedu.json"
    assert installed.is_file(), "reinstall diffedu (pip install -e .) to put the JupyterLab default in place"
    assert threading.active_count() >= 1
