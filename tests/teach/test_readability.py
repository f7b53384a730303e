r"""Every lesson widget's figure has readable text, in JupyterLab and in its static preview.

The rule (stated in :mod:`diffedu.teach.plots`): JupyterLab shows an inline figure at the
figure's dpi (100, matplotlib's default), one image pixel per CSS pixel, cropped to its content
(``bbox_inches="tight"``), and scales a figure wider than the output area down to the area's
width, ``SHOWN_WIDTH_PX`` = 840 CSS pixels (a 1280 x 800 window with the file browser open; the
browser test measures it). A text of ``s`` points in a figure ``W`` pixels wide is then shown

    s * dpi / 72 * min(1, SHOWN_WIDTH_PX / W)  pixels tall,

and must be at least ``READABLE_PX`` = 9 pixels. A static preview frame
(:mod:`diffedu.teach.fallbacks`) is drawn at ``frame_dpi(fig)`` and shown at its natural size,
so the same text is ``s * frame_dpi / 72`` pixels there, with the same bound.

Every text that is drawn counts: titles, axis and tick labels, legends, annotations, colour-bar
labels. They are found by recording ``Text.draw`` while the figure is saved, so hidden texts and
tick labels outside the axis range do not count.

Each widget is built from its teaching module with the arguments its lesson passes; where the
lesson computes them at length, from a cheaper run of the same computation (the lesson-04
penalty reports from 200 samples instead of 1000: the numbers in the titles keep their format).
A lesson that calls a widget not listed here, or a lesson's teaching module that defines one,
fails :func:`test_every_lesson_widget_is_measured`. The same test checks that every control shows its
whole label (``description_width="initial"``; ipywidgets' default cuts "perturbation" to
"perturbati...").
"""

import functools
import importlib
import io
import json
import math
import pkgutil
import re
from pathlib import Path

import ipywidgets as W
import matplotlib.text
import pytest
import torch

import diffedu as de
import diffedu.teach
from diffedu import datasets
from diffedu import discrete as dd
from diffedu import samplers as S
from diffedu import timegrids
from diffedu.teach import fallbacks
from diffedu.teach.plots import READABLE_PX, SHOWN_WIDTH_PX

REPO = Path(__file__).resolve().parents[2]
F64 = torch.float64


# --- the lessons' arguments ----------------------------------------------------------------------
def _gen():
    return torch.Generator().manual_seed(0)


PROCESSES = {"VP": de.VP(), "VE": de.VE(), "EDM": de.EDM(), "Linear": de.Linear()}
MIX_1D = de.GaussianMixture([0.3, 0.7], [[-2.0], [1.5]], [[0.1], [0.4]])
MIX_2D = de.GaussianMixture([0.4, 0.35, 0.25], [[-1.5, -1.0], [1.5, -0.5], [0.0, 1.8]],
                            [[[0.30, 0.20], [0.20, 0.30]], [[0.20, -0.10], [-0.10, 0.40]], [[0.50, 0.0], [0.0, 0.05]]])


def _errors():  # lesson 03, section 3: errors and denoiser calls
    vp = de.VP()
    k = torch.arange(1, 9, dtype=F64)
    g8 = de.Gaussian(torch.linspace(-1, 1, 8, dtype=F64), 3 * k**-1.5)
    x8 = g8.sample_marginal(8, vp.t_max, vp, generator=_gen(), dtype=F64)
    steps = [8, 16, 32, 64, 128]
    methods = {"Euler": S.euler, "DDIM": S.ddim, "Heun": S.heun, "DPM-Solver++(2M)": S.dpmpp_2m}
    errors = {name: [] for name in methods}
    calls = {name: [] for name in methods}
    for n in steps:
        grid = de.time_grid(vp, n + 1, "karras")[:-1]
        exact = g8.flow(x8, vp.t_max, float(grid[-1]), vp)
        for name, sampler in methods.items():
            seen = []
            out = sampler(lambda x, t: (seen.append(t), g8.bind(vp).denoiser(x, t))[1], vp, x8, grid)
            errors[name].append(float((out - exact).norm(dim=1).max()))
            calls[name].append(len(seen))
    return steps, errors, calls


def _teleport_args():  # lesson 07, sections 1 and 2
    vp, ring = de.VP(), datasets.ring()
    x_T = ring.sample_marginal(300, vp.t_max, vp, generator=_gen(), dtype=F64)
    return de.dpmpp_2m, ring.bind(vp).denoiser, vp, x_T[:150], de.time_grid(vp, 20), de.Gaussian(ring.mean, ring.cov)


def _ev_history_args():  # lesson 07, section 2 (two checkpoints and 2 x 20 draws instead of five and 3 x 150)
    from diffedu.teach import gaussian_teleportation as lesson
    from diffedu.teach import models

    vp, train = de.VP(), models.digit_split()[0]
    G, emp = de.fit_gaussian(train), de.Empirical(train.double())
    refs = {"Gaussian": G.bind(vp).score, "mixture of 10": G.bind(vp).score, "training set": emp.bind(vp).score}
    levels = [0.03, 0.06, 0.1, 0.18, 0.32, 0.56, 1.0, 1.8, 3.2]
    nets = {s: models.load_digit_model(s) for s in (250, 20000)}
    return lesson.ev_history(nets, refs, emp, vp, levels, n=20, repeats=2), levels, 0.84


def _chain():  # lesson 09, section 1
    trans = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]], dtype=F64)
    return dd.SequenceDistribution.markov_chain(torch.tensor([0.5, 0.3, 0.2]), trans, 4)


def _line():  # lesson 11, section 3
    return torch.stack([torch.linspace(-2.5, 2.5, 21, dtype=F64), torch.linspace(-1.5, 0.0, 21, dtype=F64)], 1)


#: (lesson, widget function, how the lesson builds it): every widget cell of every lesson.
def _error_map_args():
    """What lesson 04 passes: the score errors of a small network at its checkpoints, the noise
    levels, the loss curve and its floor (a few training steps stand in for the lesson's 2,000)."""
    from diffedu.nets import ScoreMLP
    from diffedu.teach import learning_the_score as lesson
    from diffedu.training import dsm_loss, train

    p, ring = de.VP(), datasets.ring()
    net = ScoreMLP(p, 2, hidden=16, depth=1, param="denoiser", generator=torch.Generator().manual_seed(0))
    run = train(net, dsm_loss(p), ring.sample, steps=20, batch_size=64, checkpoints=[0, 10, 20],
                generator=torch.Generator().manual_seed(1))
    levels = [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]
    return lesson.error_history(net, run.checkpoints, ring, p, levels, n=100), levels, run.losses, 0.48


def _guidance_args():  # lesson 15, sections 1 and 3
    vp = de.VP()
    mix = de.GaussianMixture([0.3, 0.3, 0.4], [[-2.0, 1.0], [0.0, 0.3], [1.5, -0.8]],
                             [[[0.3, 0.0], [0.0, 0.3]], [[0.35, 0.1], [0.1, 0.25]], [[0.5, -0.15], [-0.15, 0.4]]])
    from diffedu import guidance

    return guidance.ClassConditional(mix, [0, 0, 1]), vp, torch.randn(500, 2, generator=_gen(), dtype=F64)


def _inverse_args():  # lesson 16, section 1
    from diffedu import inverse

    prior = de.GaussianMixture([0.25, 0.25, 0.3, 0.2], [[-2.0, 0.0], [2.0, 0.3], [0.0, 2.0], [0.3, -1.6]],
                               [[[0.3, 0.1], [0.1, 0.4]], [[0.4, -0.1], [-0.1, 0.3]], [[0.5, 0.0], [0.0, 0.15]],
                                [[0.2, 0.05], [0.05, 0.3]]])
    return prior, {"inpainting": inverse.Measurement([[1.0, 0.0]], [0.1], 0.2),
                   "blur": inverse.Measurement([[0.5, 0.5]], [0.9], 0.15)}


def _few_step_args():  # lesson 17, section 2 (200 starts instead of 400, 16 path times instead of 48)
    from diffedu.teach import few_step_sampling as fs

    ring, edm = fs.problem("ring")
    x, ref = fs.starts("ring", 200, 11, rtol=1e-7)
    ts = torch.logspace(math.log10(edm.t_max), math.log10(0.002), 16, dtype=F64)
    speed = timegrids.denoiser_speed(ring.bind(edm).denoiser, edm, ring.flow_path(x[:50], ts, edm, rtol=1e-6), ts)
    lam = edm.lam(ts)
    return "ring", x, ref, (lam[1:] + lam[:-1]) / 2, speed


def _flow_matching_args():  # lesson 14, sections 2 and 3 (20 training steps and n_err=100 stand in for 1,500 and 2,000)
    from diffedu.nets import VelocityMLP
    from diffedu.teach import flow_matching as lesson
    from diffedu.training import flow_matching_loss, train

    data, bridge = lesson.flow_data()
    net = VelocityMLP(2, hidden=64, depth=3, generator=torch.Generator().manual_seed(0))
    run = train(net, flow_matching_loss(), data.sample, steps=20, batch_size=64, checkpoints=[0, 10, 20],
                generator=torch.Generator().manual_seed(1))
    maps = lesson.error_maps(net, run.checkpoints, bridge, [0.1, 0.3, 0.5, 0.7, 0.9], n_err=100)
    cached = lesson.load_flow_models()
    fields = {"independent": lesson.as_field(net), "minibatch OT": lesson.as_field(cached["minibatch OT"]),
              "reflow": lesson.as_field(cached["reflow"])}
    return (maps, run.losses, 4.203), (fields, bridge, torch.randn(600, 2, generator=_gen(), dtype=F64))


CASES = [
    ("01", "marginal_density_widget", lambda m: m.marginal_density_widget(MIX_1D, PROCESSES, lim=(-6, 6))),
    ("01", "marginal_density_widget", lambda m: m.marginal_density_widget(MIX_2D, PROCESSES, lim=(-4, 4), t_frac=0.2)),
    ("02", "gaussian_flow_widget", lambda m: m.gaussian_flow_widget(de.VP())),
    ("03", "error_vs_steps_widget", lambda m: (lambda s, e, c: m.error_vs_steps_widget(s, e, calls=c))(*_errors())),
    ("04", "error_map_widget", lambda m: m.error_map_widget(*_error_map_args())),
    ("05", "fp_grid_widget", lambda m: m.fp_grid_widget(datasets.two_gaussians(), de.VP())),
    ("05", "perturbation_widget", lambda m: m.perturbation_widget(datasets.two_gaussians(), de.VP())),
    ("05", "gap_widget", lambda m: m.gap_widget(m.load_gap_runs())),
    ("06", "memorisation_widget",
     lambda m: m.memorisation_widget(datasets.ring().sample(1024, generator=_gen(), dtype=F64)[:64], de.VP(), max_M=64)),
    ("07", "teleport_widget", lambda m: m.teleport_widget(*_teleport_args())),
    ("07", "ev_widget", lambda m: m.ev_widget(*_ev_history_args())),
    ("08", "subspace_widget", lambda m: m.subspace_widget()),
    ("09", "stepwise_widget", lambda m: m.stepwise_widget(_chain(), steps=4)),
    ("09", "truncation_widget", lambda m: m.truncation_widget(vocab_size=6, log10_q=-6.5)),
    ("10", "interpolant_widget",
     lambda m: m.interpolant_widget(de.GaussianMixture([0.3, 0.7], [[-1.5, 0.5], [1.5, -0.5]],
                                                       [[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.4]]]),
                                    de.Gaussian([0.0, 0.0], [1.0, 1.0]), eps=0.5, a=0.5)),
    ("11", "likelihood_widget", lambda m: m.likelihood_widget(MIX_2D, de.VP(), _line(), log10_rtol=-3.0, n_probes=0)),
    ("12", "gauge_widget",
     lambda m: m.gauge_widget(de.Gaussian([0.3, -0.2], [[1.0, 0.45], [0.45, 0.3]]), de.VP())),
    ("13", "dimension_widget", lambda m: m.dimension_widget(8)),
    ("14", "velocity_error_widget", lambda m: m.velocity_error_widget(*_flow_matching_args()[0])),
    ("14", "few_step_widget", lambda m: m.few_step_widget(*_flow_matching_args()[1])),
    ("15", "cfg_widget", lambda m: (lambda mod, vp, x: m.cfg_widget(mod, 0, vp, x))(*_guidance_args())),
    ("15", "interval_widget", lambda m: (lambda mod, vp, x: m.interval_widget(mod, 0, 4.0, vp, x))(*_guidance_args())),
    ("16", "method_widget", lambda m: m.method_widget(*_inverse_args())),
    ("17", "grid_widget", lambda m: m.grid_widget(*_few_step_args())),
    ("18", "posterior_widget", lambda m: m.posterior_widget(_chain(), [0, 0, 2, 0], position=2, t=0.2)),
]
LESSONS = {p.name[:2]: p for p in sorted((REPO / "lessons").glob("[0-9][0-9]_*.ipynb"))}
IDS = [f"{num}-{name}-{sum(1 for c in CASES[:i] if c[:2] == (num, name)) + 1}"
       for i, (num, name, _) in enumerate(CASES)]


def _module(num):
    """The teaching module of lesson ``num``: lessons/05_fokker_planck.ipynb -> diffedu.teach.fokker_planck."""
    return importlib.import_module(f"diffedu.teach.{LESSONS[num].stem[3:]}")


# --- measuring ------------------------------------------------------------------------------------
def drawn_texts(fig, monkeypatch):
    """``(texts, width)``: every Text artist drawn when ``fig`` is displayed inline (saved as a PNG
    at its dpi, ``bbox_inches="tight"``) and the PNG's width in pixels."""
    drawn = {}
    draw = matplotlib.text.Text.draw

    def recording(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn[id(self)] = self
        return draw(self, renderer)

    with monkeypatch.context() as m:
        m.setattr(matplotlib.text.Text, "draw", recording)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    return list(drawn.values()), int.from_bytes(buf.getvalue()[16:20], "big")


def shown_px(size_pt, dpi, width=None, shown_width=SHOWN_WIDTH_PX):
    """The height in pixels at which a text of ``size_pt`` points is shown (module docstring)."""
    return size_pt * dpi / 72 * (1.0 if width is None else min(1.0, shown_width / width))


def smallest(texts, px_of):
    """``(px, text)`` of the smallest drawn text, by the size function ``px_of(points)``."""
    return min((px_of(t.get_fontsize()), t.get_text()) for t in texts)


@functools.cache
def _built(i):
    num, _, build = CASES[i]
    return build(_module(num))


# --- tests -----------------------------------------------------------------------------------------
def test_the_rule_flags_what_the_issue_reported():
    """The numbers behind the rule: the old lesson-11 figure (14 x 4.4 in, 1378 px shown in 840)
    had its legend at 5.9 px and titles at 7.1 px; an old preview frame (56 dpi, shrunk to 380 px
    of 784) had titles at 3 px. ``x-small`` in a figure that fits is 9.6 px."""
    assert round(shown_px(6.94, 100, 1378), 1) == 5.9 and round(shown_px(8.33, 100, 1378), 1) == 7.1
    assert round(shown_px(8.33, 56, 784, shown_width=380), 1) == 3.1
    assert round(shown_px(6.94, 100, 800), 1) == 9.6 >= READABLE_PX > 7.1


def test_every_lesson_widget_is_measured():
    """Each ``lesson.xxx_widget(`` call of a lesson, and each ``*_widget`` a teaching module
    defines, is a case here (a new widget must be added, with its lesson's arguments)."""
    called = set()
    for num, path in LESSONS.items():
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                called |= {(num, n) for n in re.findall(r"\blesson\.(\w+_widget)\(", "".join(cell["source"]))}
    measured = {(num, name) for num, name, _ in CASES}
    assert called and called <= measured, f"widgets the lessons call but this test does not build: {called - measured}"
    topics = {p.stem[3:] for p in LESSONS.values()}  # a teaching module whose lesson is not here yet waits for it
    defined = set()
    for info in pkgutil.iter_modules(diffedu.teach.__path__):
        if info.name not in topics:
            continue
        mod = importlib.import_module(f"diffedu.teach.{info.name}")
        defined |= {(mod.__name__, n) for n in dir(mod) if n.endswith("_widget") and callable(getattr(mod, n))
                    and getattr(getattr(mod, n), "__module__", None) == mod.__name__}
    assert defined == {(_module(num).__name__, name) for num, name in measured}


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_widget_text_is_readable_inline_and_in_the_preview(i, monkeypatch):
    w = _built(i)
    fig = w.result
    texts, width = drawn_texts(fig, monkeypatch)
    assert texts, "no text drawn: the figure has no title, labels or ticks?"
    px, text = smallest(texts, lambda s: shown_px(s, fig.dpi, width))
    assert px >= READABLE_PX, (f"{IDS[i]}: {text!r} is shown {px:.1f} px tall in JupyterLab (figure {width} px "
                               f"wide at {fig.dpi:g} dpi, shown in {SHOWN_WIDTH_PX} px); the rule asks "
                               f"{READABLE_PX:g} px: larger text or a narrower figure")
    dpi = fallbacks.frame_dpi(fig)
    px, text = smallest(texts, lambda s: shown_px(s, dpi))
    assert px >= READABLE_PX, f"{IDS[i]}: {text!r} is {px:.1f} px tall in the static preview (drawn at {dpi:.0f} dpi)"
    controls = [c for c in w.kwargs_widgets if isinstance(c, W.DOMWidget)]  # not the fixed(...) arguments
    assert controls
    for control in controls:  # the whole label, never cut to "perturbati..."
        assert control.style.description_width == "initial", (IDS[i], control.description)
