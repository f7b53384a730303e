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

**No stale redraws.** Each arrow-key press on a slider sends a new value; redrawing every one
of them in turn makes the figure lag the readout by seconds. A change that comes from the
browser is therefore drawn in a background thread that always takes the *latest* value: while
one figure is being drawn, newer values replace each other, and when it is done the newest one
is drawn next (at most one stale figure in flight, never a queue). Changes made in Python (a
test setting ``slider.value``, the first draw, nbval) are drawn at once, as ``interactive``
always does, so ``.result`` holds the new figure when the assignment returns.

**Reopening a saved lesson.** Installing diffedu also installs a JupyterLab settings default
(``share/jupyter/lab/settings/overrides.d/diffedu.json``: the widget manager's ``saveState``),
so a saved notebook keeps its widgets' state, the last figure drawn included, and shows it when
reopened instead of "Error displaying widget: model not found".
"""

from __future__ import annotations

import threading
import traceback

import ipywidgets as W

from . import fallbacks as _fallbacks

__all__ = ["interactive", "LessonInteractive", "float_slider", "int_slider", "selection_slider", "dropdown",
           "SLIDER_STYLE"]

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


def _display_data(obj) -> dict:
    """An output record (``display_data``) of ``obj`` as IPython would display it (a Figure: PNG)."""
    from IPython import get_ipython

    ip = get_ipython()
    if ip is None:  # no kernel (a test): a plain-text record, without creating a shell here
        return {"output_type": "display_data", "data": {"text/plain": repr(obj)}, "metadata": {}}
    data, metadata = ip.display_formatter.format(obj)
    return {"output_type": "display_data", "data": data, "metadata": metadata}


class LessonInteractive(W.interactive):
    """``ipywidgets.interactive`` that draws browser-sent changes in the background, newest first.

    ``redraws`` counts the figures drawn from browser changes (a test reads it); see the module
    docstring for why and how stale values are dropped.
    """

    def __init__(self, *args, **kwargs):
        self._lock = threading.Lock()
        self._pending = None
        self._worker = None
        self.redraws = 0
        super().__init__(*args, **kwargs)

    def _from_browser(self) -> bool:
        """Whether the change being handled was sent by the browser (ipywidgets holds a property
        lock on a widget while it applies state received from the front end)."""
        return any(getattr(w, "_property_lock", None) for w in self.kwargs_widgets)

    def update(self, *args):
        if not self._from_browser():
            return super().update(*args)
        latest = {w._kwarg: w.get_interact_value() for w in self.kwargs_widgets}
        with self._lock:
            self._pending = latest                     # replaces any value not drawn yet
            if self._worker is None:
                self._worker = threading.Thread(target=self._drain, daemon=True)
                self._worker.start()

    def _drain(self):
        """Draw the newest pending values until none is left."""
        while True:
            with self._lock:
                kwargs, self._pending = self._pending, None
                if kwargs is None:
                    self._worker = None
                    return
            try:
                result = self.f(**kwargs)
                self.kwargs, self.result = kwargs, result
                outputs = () if result is None else (_display_data(result),)
            except Exception:  # shown where the figure would be, as interactive does
                outputs = ({"output_type": "stream", "name": "stderr", "text": traceback.format_exc()},)
            self.out.outputs = outputs
            self.redraws += 1


def interactive(draw, **controls) -> LessonInteractive:
    r"""``ipywidgets.interactive(draw, ...)`` in the house style: the one way lessons build widgets.

    ``controls``: for each argument of ``draw``, a control (an ipywidgets ``ValueWidget``: a
    slider, a menu, a check box) or a plain value, which is pinned with ``ipywidgets.fixed`` so no
    stray control appears. ``draw`` returns a Figure (bare, from ``new_axes()``), which the
    widget displays and keeps in ``.result``. Every control gets :data:`SLIDER_STYLE`'s
    ``continuous_update=False`` and full-width label (``description_width="initial"``; the
    ipywidgets default cuts a label longer than about 80 pixels, "perturbation" to
    "perturbati...") when it was built without them.
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
            if hasattr(getattr(c, "style", None), "description_width"):
                c.style.description_width = "initial"   # the whole label, never "perturbati..."
            kwargs[name] = c
        else:
            kwargs[name] = W.fixed(c)
    _register_fallbacks_once()
    return LessonInteractive(draw, {"auto_display": True}, **kwargs)
