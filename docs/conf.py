# Sphinx configuration of the diffedu course site; built by `python3 -m diffedu.site build`.
#
# Sphinx + MyST-NB because both build offline from pip-installed packages: MyST-NB renders the
# lessons' stored outputs (nb_execution_mode = "off", nothing re-executed), whereas Jupyter Book 2
# fetches its site template at build time. Every asset a page loads is local: MathJax 3 comes
# from the PyPI package sphinx-mathjax-offline, and no widget JavaScript is loaded (widgets show
# their stored image-grid fallback instead, see diffedu/fallbacks.py).
from pathlib import Path

project = "diffedu"
author = "diffedu developers"
copyright = "diffedu developers, MIT licence"

extensions = ["myst_nb", "sphinx-mathjax-offline"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

nb_execution_mode = "off"        # render the stored outputs; never run a kernel
nb_ipywidgets_js = {}            # no require.js / widget manager from a CDN
nb_merge_streams = True
# The site has no kernel: show a widget's static fallback (text/html), never the widget view.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None),
                              ("html", "application/vnd.jupyter.widget-state+json", None)]

html_theme = "alabaster"         # ships with Sphinx; loads no web fonts
html_theme_options = {"description": "The mathematics of diffusion models, lesson by lesson",
                      "fixed_sidebar": True, "page_width": "1100px"}
html_static_path = [str(Path(__file__).resolve().parent / "_static")]
html_css_files = ["diffedu.css"]
html_title = "diffedu lessons"
html_show_sourcelink = False
html_copy_source = False         # the notebooks are in the repository; keep the site small
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
