"""Static fallbacks: the widget's own callback over representative slider values, as HTML."""

import base64
import re

import ipywidgets as W
import pytest
import torch
from IPython.core.formatters import DisplayFormatter

import diffedu as de
from diffedu.teach import fallbacks as fb
from diffedu.teach import forward_processes, samplers_and_errors


def test_representative_values_cover_the_range_on_the_step():
    s = W.FloatSlider(min=0.0, max=1.0, step=0.01, value=0.3)
    assert fb.representative_values(s, 4) == [0.0, 0.33, 0.67, 1.0]
    assert fb.representative_values(W.IntSlider(min=1, max=10, step=3, value=4), 3) == [1, 7, 10]
    assert fb.representative_values(W.SelectionSlider(options=[4, 8, 16, 32, 64], value=8), 3) == [4, 16, 64]
    log = fb.representative_values(W.FloatLogSlider(min=-2, max=2, base=10, value=1), 3)
    assert log == pytest.approx([0.01, 1.0, 100.0])
    with pytest.raises(ValueError, match="n must be"):
        fb.representative_values(s, 1)


def test_frames_come_from_the_widget_callback_at_each_value():
    w = samplers_and_errors.error_vs_steps_widget([4, 8, 16, 32], {"euler": torch.tensor([1.0, 0.5, 0.25, 0.125])})
    rows = fb.fallback_frames(w, n_first=2, dpi=20)
    assert [label for label, _ in rows] == ["steps N"]
    caps = [c for c, _ in rows[0][1]]
    assert caps == ["steps N = 4", "steps N = 32"]
    pngs = [p for _, p in rows[0][1]]
    assert all(p.startswith(b"\x89PNG") for p in pngs) and pngs[0] != pngs[1]
    assert w.children[0].value == 16  # the live widget was not moved


def test_frames_leave_no_pyplot_figure_open():
    import matplotlib.pyplot as plt

    def draw(a):
        fig, ax = plt.subplots()
        ax.plot([0, a])
        return fig

    w = W.interactive(draw, a=W.FloatSlider(min=0.0, max=1.0, value=0.5))  # draws once itself
    before = plt.get_fignums()
    rows = fb.fallback_frames(w, dpi=20)
    assert len(rows[0][1]) == 4 and plt.get_fignums() == before


def test_every_slider_gets_a_row_and_other_controls_are_held():
    mix = de.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.2], [0.2]])
    w = forward_processes.marginal_density_widget(mix, {"VP": de.VP(), "VE": de.VE()})
    html = fb.fallback_html(w, n_first=2, dpi=20)
    assert html.startswith(f'<div class="{fb.FALLBACK_CLASS}">')
    assert "process = VP" in html and "<script" not in html
    assert "lim =" not in html and "dist =" not in html  # fixed arguments are not controls
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == 2 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in imgs)


def test_a_widget_without_sliders_shows_its_figure_once():
    import matplotlib.pyplot as plt

    def draw(flag):
        fig, ax = plt.subplots()
        ax.plot([0, 1] if flag else [1, 0])
        return fig

    html = fb.fallback_html(W.interactive(draw, flag=W.Checkbox(value=True)), dpi=20)
    assert html.count("<img") == 1 and "as shown" in html and "flag = True" in html


def test_a_callback_without_a_figure_is_reported():
    w = W.interactive(lambda a: print(a), a=W.FloatSlider(min=0.0, max=1.0, value=0.5))
    with pytest.raises(TypeError, match="not a matplotlib Figure"):
        fb.fallback_frames(w)


def test_registered_formatter_adds_html_beside_the_widget_view(monkeypatch):
    class Shell:  # the part of an IPython shell that register() touches
        display_formatter = DisplayFormatter()

    w = samplers_and_errors.error_vs_steps_widget([4, 8], {"euler": torch.tensor([1.0, 0.5])})
    monkeypatch.delenv(fb.ENV, raising=False)
    assert not fb.register(Shell())  # off unless asked for: students pay nothing
    assert "text/html" not in Shell.display_formatter.format(w)[0]
    monkeypatch.setenv(fb.ENV, "1")
    assert fb.register(Shell())
    data, _ = Shell.display_formatter.format(w)
    assert "application/vnd.jupyter.widget-view+json" in data
    assert fb.FALLBACK_CLASS in data["text/html"]


def test_frames_are_drawn_readable_and_shown_at_their_natural_size():
    """A frame is the figure at its own dpi (as JupyterLab shows it), at a lower dpi only when
    that is wider than the site's column, and the page shows it at its natural width (no more
    56-dpi frames shrunk to 380 px, whose text was 3 to 6 px tall)."""
    from diffedu.teach.plots import new_axes

    narrow, wide = new_axes().figure, new_axes(3, figsize=(12.0, 3.0))[0].figure
    assert fb.frame_dpi(narrow) == narrow.dpi == 100
    assert fb.frame_dpi(wide) < wide.dpi and fb.frame_dpi(wide) == pytest.approx(
        wide.dpi * fb.MAX_WIDTH_PX / fb._png_width(fb._render(wide, wide.dpi)), rel=0.01)
    assert fb.MAX_WIDTH_PX - 3 <= fb._png_width(fb._png(wide)) <= fb.MAX_WIDTH_PX
    w = samplers_and_errors.error_vs_steps_widget([4, 8], {"euler": torch.tensor([1.0, 0.5])})
    html = fb.fallback_html(w, n_first=2)
    for src, width in re.findall(r'src="data:image/png;base64,([^"]+)" alt="[^"]*" width="(\d+)"', html):
        assert int(width) == fb._png_width(base64.b64decode(src)) <= fb.MAX_WIDTH_PX
    assert html.count('width="') == 2 and "max-width:100%;height:auto" in html
