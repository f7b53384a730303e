"""diffedu.widgets: only the intended controls appear, and moving one redraws the plot."""

import ipywidgets as W
import matplotlib.figure
import numpy as np
import pytest
import torch

import diffedu as de
from diffedu import widgets as dw

PROCS = {"VP": de.VP(), "VE": de.VE(), "EDM": de.EDM(), "Linear": de.Linear()}


def controls(w):
    assert w.auto_display, "interactive shows a returned (non-pyplot) figure only with auto_display"
    return {c.description: c for c in w.children if isinstance(c, W.ValueWidget)}


def line_data(fig, i=1):
    return fig.axes[0].lines[i].get_ydata().copy()


def test_marginal_density_1d_controls_and_redraw():
    m = de.GaussianMixture([0.3, 0.7], [[-2.0], [1.5]], [[0.2], [0.5]])
    w = dw.marginal_density_widget(m, PROCS)
    assert set(controls(w)) == {"process", "t / t_max"}
    fig = w.result
    assert isinstance(fig, matplotlib.figure.Figure)
    before = line_data(fig)
    controls(w)["t / t_max"].value = 0.8
    assert w.result is not fig
    after = line_data(w.result)
    assert not np.allclose(before, after)
    # the plotted curve is the closed-form density at the slider's time
    x = torch.as_tensor(w.result.axes[0].lines[1].get_xdata())[:, None]
    np.testing.assert_allclose(after, torch.exp(m.log_prob(x, 0.8, PROCS["VP"])).numpy(), rtol=1e-10)
    controls(w)["process"].value = "EDM"
    np.testing.assert_allclose(line_data(w.result),
                               torch.exp(m.log_prob(x, 0.8 * 80.0, PROCS["EDM"])).numpy(), rtol=1e-10)


def test_marginal_density_2d_redraws_image():
    m = de.GaussianMixture([0.5, 0.5], [[-1.5, 0.0], [1.5, 1.0]], [[0.3, 0.3], [0.2, 0.6]])
    w = dw.marginal_density_widget(m, {"VP": de.VP()})
    img0 = w.result.axes[0].images[0].get_array().copy()
    controls(w)["t / t_max"].value = 0.9
    assert not np.allclose(img0, w.result.axes[0].images[0].get_array())


def test_marginal_density_bad_input():
    with pytest.raises(ValueError, match="dim"):
        dw.marginal_density_widget(de.Gaussian(torch.zeros(3), torch.ones(3)), PROCS)
    with pytest.raises(TypeError, match="processes"):
        dw.marginal_density_widget(de.Gaussian(torch.zeros(1), torch.ones(1)), {"bad": 1})


def test_gaussian_flow_widget_time_and_spectrum():
    w = dw.gaussian_flow_widget(de.VP(), n_paths=5)
    assert set(controls(w)) == {"t / t_max", "log10 lambda_1", "log10 lambda_2"}
    paths0 = w.result.axes[0].lines[0].get_xydata().copy()
    controls(w)["t / t_max"].value = 0.05
    paths1 = w.result.axes[0].lines[0].get_xydata()
    # same start (seeded), path continued further towards the data
    np.testing.assert_allclose(paths0[0], paths1[0])
    assert not np.allclose(paths0[-1], paths1[-1])
    dec0 = w.result.axes[1].lines[0].get_ydata().copy()
    controls(w)["log10 lambda_1"].value = -1.0
    assert not np.allclose(dec0, w.result.axes[1].lines[0].get_ydata())


def test_flow_paths_end_at_exact_flow():
    g = dw.rotated_gaussian(2.0, 0.1, 45.0)
    p = de.VP()
    x_T = g.sample_marginal(3, p.t_max, p, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    paths = dw.gaussian_flow_paths(g, p, x_T, 0.2, n=10)
    assert paths.shape == (11, 3, 2)
    torch.testing.assert_close(paths[0], x_T)
    torch.testing.assert_close(paths[-1], g.flow(x_T, p.t_max, 0.2, p))
    torch.testing.assert_close(g.cov, torch.tensor([[1.05, 0.95], [0.95, 1.05]], dtype=torch.float64))


def test_error_vs_steps_widget():
    steps = [4, 8, 16, 32]
    errs = {"euler": [1 / s for s in steps], "heun": [1 / s**2 for s in steps]}
    w = dw.error_vs_steps_widget(steps, errs)
    assert set(controls(w)) == {"steps N"}
    controls(w)["steps N"].value = 32
    assert "N = 32" in w.result.axes[0].get_title()
