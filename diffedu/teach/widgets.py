r"""One way to build a lesson's slider: :func:`interactive`, and the controls it styles.

A widget wraps a plain drawing function ``draw(**values) -> Figure``: the callback returns a
fresh bare :class:`matplotlib.figure.Figure` (from :func:`diffedu.teach.plots.new_axes`, which
pyplot never holds, so no figure piles up while a slider moves), and ``interactive`` keeps it in
``.result`` and displays it (``auto_display=True``; without it ``interactive`` shows only pyplot's
figures, i.e. nothing). Tests move a slider and check that the figure's data changed; in a
lesson, end the cell with the widget and mark it ``# NBVAL_IGNORE_OUTPUT``.

:func:`interactive` owns the house style (sliders redraw on release, full-width labels, one
width), pins every argument that is not a control with ``ipywidgets.fixed``, and registers the
static fallbacks (:mod:`diffedu.teach.fallbacks`) once, the first time a widget is built.
"""

from __future__ import annotations

import ipywidgets as W

from . import fallbacks as _fallbacks

__all__ = ["interactive", "float_slider", "int_slider", "selection_slider", "dropdown", "SLIDER_STYLE"]

#: The style every control gets: redraw when the handle is released, labels not cut short, one width.
SLIDER_STYLE = dict(continuous_update=False, style={"description_width": "initial"},
                    layout=W.Layout(width="420px"))

_registered = False


def _register_fallbacks_once():
    global _registered
    if not _registered:
        _registered = _fallbacks.register()


def float_slider(value, min, max, step, description) -> W.FloatSlider:  # noqa: A002 (ipywidgets' names)
    """A float slider in the house style."""
    return W.FloatSlider(value=value, min=min, max=max, step=step, description=description, **SLIDER_STYLE)


def int_slider(value, min, max, description, step: int = 1) -> W.IntSlider:  # noqa: A002
    """An integer slider in the house style."""
    return W.IntSlider(value=value, min=min, max=max, step=step, description=description, **SLIDER_STYLE)


def selection_slider(options, value, description) -> W.SelectionSlider:
    """A slider over a list of values in the house style."""
    return W.SelectionSlider(options=list(options), value=value, description=description, **SLIDER_STYLE)


def dropdown(options, value, description) -> W.Dropdown:
    """A menu in the house style."""
    return W.Dropdown(options=list(options), value=value, description=description,
                      style=SLIDER_STYLE["style"], layout=SLIDER_STYLE["layout"])


def interactive(draw, **controls) -> W.interactive:
    r"""``ipywidgets.interactive(draw, ...)`` in the house style: the one way lessons build widgets.

    ``controls``: for each argument of ``draw``, a control (an ipywidgets ``ValueWidget``: a
    slider, a menu, a check box) or a plain value, which is pinned with ``ipywidgets.fixed`` so no
    stray control appears. ``draw`` returns a Figure (bare, from ``new_axes()``), which the
    widget displays and keeps in ``.result``. Sliders get :data:`SLIDER_STYLE`'s
    ``continuous_update=False`` when they were built without it.
    """
    if not callable(draw):
        raise TypeError(f"draw must be a callable returning a Figure; got {type(draw).__name__}")
    kwargs = {}
    for name, c in controls.items():
        if isinstance(c, W.fixed):
            kwargs[name] = c
        elif isinstance(c, W.ValueWidget):
            if hasattr(c, "continuous_update"):
                c.continuous_update = False
            kwargs[name] = c
        else:
            kwargs[name] = W.fixed(c)
    _register_fallbacks_once()
    return W.interactive(draw, {"auto_display": True}, **kwargs)
