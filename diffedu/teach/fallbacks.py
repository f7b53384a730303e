r"""Static fallbacks for the lesson widgets: the figure at a few slider values, as an image grid.

A slider needs a kernel; a static course site, a notebook opened without running it, or a printed
handout has none. :func:`fallback_html` calls a widget's own callback (``interactive.f``, the
plain drawing function of a :mod:`diffedu.teach` module) at a few representative values of each slider,
with every other control at its current value, and returns an HTML grid of PNG images.

Nothing is re-executed at site-build time. When a lesson is regenerated (``diffedu regenerate``
sets ``DIFFEDU_STATIC_FALLBACKS=1`` in the kernel's environment), :func:`register` adds the grid
as a ``text/html`` entry beside the widget's own ``application/vnd.jupyter.widget-view+json``
entry of the same stored output. JupyterLab shows the live widget (it ranks the widget renderer
above HTML); the static site drops the widget MIME type and shows the grid. Without the variable (students in JupyterLab, nbval runs)
nothing is computed: a grid costs a few seconds of CPU per widget.

**Readable frames.** Each frame is the widget's figure as JupyterLab shows it: rendered at the
figure's own dpi with ``bbox_inches="tight"`` (as IPython displays a figure inline), at a lower dpi
only when that is wider than :data:`MAX_WIDTH_PX` (the course site's text column), and shown at
its natural size, one image pixel per CSS pixel. A text of s points in a frame is therefore
``s * frame_dpi(fig) / 72`` pixels tall on the page, which is the readability rule of
:mod:`diffedu.teach.plots` with the site's column for JupyterLab's output area
(``tests/teach/test_readability.py`` checks both on every lesson widget). Earlier frames were
drawn at 56 dpi and shrunk to at most 380 pixels: a lesson-11 title came out at 3 pixels.

Why an image grid rather than ``matplotlib.animation.Animation.to_jshtml``: plain ``<img>``
elements survive JupyterLab's HTML sanitizer (which strips scripts from untrusted outputs),
print on paper, and need no JavaScript on the site.
"""

from __future__ import annotations

import base64
import html
import io
import os

__all__ = ["representative_values", "fallback_frames", "fallback_html", "register", "enabled",
           "frame_dpi", "FALLBACK_CLASS", "MAX_WIDTH_PX"]

FALLBACK_CLASS = "diffedu-fallback"
ENV = "DIFFEDU_STATIC_FALLBACKS"
#: The widest a frame is drawn and shown, in pixels: the room a preview grid has on the course
#: site (alabaster with ``page_width`` 1100 px: 792 px inside a lesson's output, measured in chromium).
MAX_WIDTH_PX = 780


def enabled(environ=None) -> bool:
    """Whether displayed widgets get a static fallback: ``DIFFEDU_STATIC_FALLBACKS`` is 1/true."""
    env = os.environ if environ is None else environ
    return env.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _is_slider(control) -> bool:
    import ipywidgets as W

    return isinstance(control, (W.FloatSlider, W.IntSlider, W.FloatLogSlider, W.SelectionSlider))


def representative_values(slider, n: int = 4) -> list:
    """``n`` values spread over a slider's range, ends included, snapped to its step.

    Float/int sliders: evenly spaced from ``min`` to ``max`` (log-spaced for ``FloatLogSlider``);
    a ``SelectionSlider``: ``n`` options spread over its list. Duplicates are removed.
    """
    import ipywidgets as W

    if n < 2:
        raise ValueError(f"n must be at least 2; got {n}")
    if isinstance(slider, W.SelectionSlider):
        opts = list(slider.options)
        labels = [o[1] if isinstance(o, tuple) else o for o in opts]  # (label, value) pairs
        idx = sorted({round(i * (len(labels) - 1) / (n - 1)) for i in range(n)})
        return [labels[i] for i in idx]
    lo, hi = slider.min, slider.max
    if isinstance(slider, W.FloatLogSlider):
        base = slider.base
        vals = [base ** (lo + (hi - lo) * i / (n - 1)) for i in range(n)]
    else:
        vals = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
        step = slider.step
        if step:
            vals = [min(max(lo + round((v - lo) / step) * step, lo), hi) for v in vals]
        if isinstance(slider, W.IntSlider):
            vals = [int(round(v)) for v in vals]
        else:
            vals = [round(float(v), 10) for v in vals]
    out = []
    for v in vals:
        if v not in out:
            out.append(v)
    return out


def _label(control) -> str:
    return control.description or control._kwarg


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _figure_of(result, before):
    """The Figure a callback drew: its return value (a Figure or an Axes), else the newest pyplot
    figure it opened."""
    from matplotlib.figure import Figure

    if isinstance(result, Figure):
        return result
    fig = getattr(result, "figure", None)  # an Axes
    if isinstance(fig, Figure):
        return fig
    import matplotlib.pyplot as plt

    new = [n for n in plt.get_fignums() if n not in before]
    if new:
        return plt.figure(new[-1])
    raise TypeError(f"the widget callback returned {type(result).__name__}, not a matplotlib Figure")


def _png_width(png: bytes) -> int:
    """The width in pixels of a PNG, from its IHDR chunk."""
    return int.from_bytes(png[16:20], "big")


def _render(fig, dpi) -> bytes:
    """The figure as IPython displays it inline: a PNG at ``dpi``, cropped to its content."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def frame_dpi(fig, max_width: int = MAX_WIDTH_PX) -> float:
    """The dpi a frame of ``fig`` is drawn at: the figure's own dpi (JupyterLab shows an inline
    figure at it), lowered so that the frame is at most ``max_width`` pixels wide."""
    return _frame(fig, max_width)[0]


def _frame(fig, max_width: int = MAX_WIDTH_PX):
    """``(dpi, png)`` of a frame of ``fig`` at :func:`frame_dpi` (drawn once more only when the
    figure is wider than ``max_width`` at its own dpi)."""
    png = _render(fig, fig.dpi)
    natural = _png_width(png)
    if natural <= max_width:
        return float(fig.dpi), png
    dpi = fig.dpi * (max_width - 1) / natural  # the pixel less keeps a rounded-up width within max_width
    return dpi, _render(fig, dpi)


def _png(fig, dpi=None) -> bytes:
    """The figure as a PNG (at :func:`frame_dpi` unless ``dpi`` is given) with a 128-colour
    palette: about a third of the RGBA size, and plots (flat colours, smooth colour maps) look
    the same. Pillow comes with matplotlib."""
    from PIL import Image

    buf = io.BytesIO(_frame(fig)[1] if dpi is None else _render(fig, dpi))
    img = Image.open(buf).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def fallback_frames(widget, *, n_first: int = 4, n_other: int = 2, dpi: float | None = None):
    r"""Render ``widget``'s callback over representative slider values.

    widget: an ``ipywidgets.interactive``. Each slider in turn is moved over
    :func:`representative_values` (``n_first`` values for the first slider, ``n_other`` for the
    rest) while every other control keeps its current value. Returns a list of rows, one per
    slider: ``(slider label, [(caption, png bytes), ...])``; a widget without sliders gets one row
    with its figure as first shown. Each frame is drawn at :func:`frame_dpi` of its figure
    (readable at its natural size), or at ``dpi`` when given.
    """
    import matplotlib.pyplot as plt

    controls = list(getattr(widget, "kwargs_widgets", []))
    current = {c._kwarg: c.get_interact_value() for c in controls}

    def frame(caption, kwargs):
        before = set(plt.get_fignums())
        try:
            return caption, _png(_figure_of(widget.f(**kwargs), before), dpi)
        finally:  # pyplot must not hold (and the inline backend then show) any frame
            for num in set(plt.get_fignums()) - before:
                plt.close(num)

    sliders = [c for c in controls if _is_slider(c)]
    if not sliders:  # menus or check boxes only: the figure as first shown
        return [("as shown", [frame("as shown", current)])]
    return [(_label(s), [frame(f"{_label(s)} = {_fmt(v)}", dict(current, **{s._kwarg: v}))
                         for v in representative_values(s, n_first if k == 0 else n_other)])
            for k, s in enumerate(sliders)]


def fallback_html(widget, **kwargs) -> str:
    """An HTML grid of the widget's figure over representative slider values."""
    controls = list(getattr(widget, "kwargs_widgets", []))
    rows = fallback_frames(widget, **kwargs)
    import ipywidgets as W

    held = ", ".join(f"{html.escape(_label(c))} = {html.escape(_fmt(c.get_interact_value()))}"
                     for c in controls if isinstance(c, W.DOMWidget))  # controls, not fixed(...)
    parts = [f'<div class="{FALLBACK_CLASS}">',
             '<p class="diffedu-fallback-note"><em>Static preview: the figure at a few slider '
             f"values (others held at {held}). Run the notebook to move the sliders.</em></p>"]
    for label, frames in rows:
        parts.append(f'<div class="diffedu-fallback-row" data-slider="{html.escape(label)}" '
                     'style="display:flex;flex-wrap:wrap;gap:6px;margin-bottom:6px">')
        for caption, png in frames:
            src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            cap = html.escape(caption)
            width = _png_width(png)  # shown at its natural size (text readable), never shrunk to fit more in a row
            parts.append(f'<figure style="margin:0;text-align:center;flex:0 0 auto;max-width:100%">'
                         f'<img src="{src}" alt="{cap}" width="{width}" style="max-width:100%;height:auto">'
                         f'<figcaption style="font-size:small">{cap}</figcaption></figure>')
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def register(ip=None, *, force: bool = False) -> bool:
    """Add :func:`fallback_html` as the ``text/html`` formatter of ``ipywidgets.interactive``.

    Does nothing outside IPython or when :func:`enabled` is false (unless ``force``). Returns
    whether the formatter is now registered.
    """
    if not (force or enabled()):
        return False
    if ip is None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython comes with ipywidgets
            return False
        ip = get_ipython()
    if ip is None:
        return False
    import ipywidgets as W

    ip.display_formatter.formatters["text/html"].for_type(W.interactive, fallback_html)
    return True
