"""diffedu.teach.plots (the shared plots): each draws the right data into the Axes it is given and
returns it, or a new one when given none."""

import math

import matplotlib.figure
import numpy as np
import pytest
import torch
from scipy.integrate import trapezoid  # numpy.trapezoid needs numpy 2; the pyproject allows 1.24

import diffedu as de
from diffedu.teach import plots as P


@pytest.fixture
def ax():
    return matplotlib.figure.Figure().subplots()


def mix1():
    return de.GaussianMixture([0.3, 0.7], [[-2.0], [1.5]], [[0.2], [0.5]])


def test_new_axes_is_not_held_by_pyplot():
    import matplotlib.pyplot as plt

    n = len(plt.get_fignums())
    a = P.new_axes()
    axs = P.new_axes(3)
    assert len(plt.get_fignums()) == n
    assert len(axs) == 3 and a.figure is not axs[0].figure


def test_returns_given_axes_or_new_one(ax):
    procs = [de.VP(), de.EDM()]
    assert P.plot_schedules(procs, ax) is ax
    assert P.plot_log_snr(procs) is not None


def test_schedules_draw_alpha_exactly(ax):
    p = de.VP()
    P.plot_schedules([p], ax)
    u, a = ax.lines[0].get_data()
    np.testing.assert_allclose(a, p.alpha(torch.as_tensor(u) * p.t_max).numpy(), rtol=1e-12)
    _, s = ax.lines[1].get_data()
    assert s.max() == pytest.approx(1.0)


def test_schedules_keep_coinciding_curves_visible(ax):
    """VE's and EDM's alpha are both 1 and EDM's sigma / 80 is the interpolant's sigma / 0.999 to
    0.1%: each of the 8 curves has a marker of its own, at positions no other curve of the same
    shape marks, so a curve drawn over another leaves the other's markers in view."""
    procs = [de.VP(), de.VE(), de.EDM(), de.Linear()]
    P.plot_schedules(procs, ax)
    lines = ax.lines
    assert len(lines) == 8 and len(ax.get_legend().get_texts()) == 8
    styles = {(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in lines}
    assert len(styles) == 8
    coinciding = 0
    for i, a in enumerate(lines):
        for b in lines[i + 1:]:
            (xa, ya), (xb, yb) = a.get_data(), b.get_data()
            if np.abs(ya - yb).max() < 2e-3:
                coinciding += 1
                assert a.get_marker() != b.get_marker()
                ma = set(np.arange(len(xa))[a.get_markevery()[0]::a.get_markevery()[1]])
                mb = set(np.arange(len(xb))[b.get_markevery()[0]::b.get_markevery()[1]])
                assert ma and mb and not ma & mb, "markers of coinciding curves at the same places"
    assert coinciding == 2  # VE/EDM alpha, EDM/Linear sigma


def test_log_snr_is_lambda(ax):
    p = de.EDM()
    P.plot_log_snr([p], ax, mark=0.5)
    u, lam = ax.lines[0].get_data()
    np.testing.assert_allclose(lam, -np.log(u * 80.0), rtol=1e-10)


def test_density_1d_integrates_to_one(ax):
    P.plot_density_1d(mix1(), de.VP(), 0.3, ax, lim=(-8, 8), n=2001)
    x, y = ax.lines[0].get_data()
    assert trapezoid(y, x) == pytest.approx(1.0, abs=1e-4)


def test_density_rejects_wrong_dimension(ax):
    with pytest.raises(ValueError, match="dim"):
        P.plot_density_1d(de.Gaussian(torch.zeros(2), torch.ones(2)), de.VP(), 0.3, ax)
    with pytest.raises(ValueError, match="dim"):
        P.plot_density_2d(mix1(), de.VP(), 0.3, ax)


def test_density_2d_image_matches_log_prob(ax):
    g = de.Gaussian(torch.zeros(2), torch.tensor([2.0, 0.5]))
    P.plot_density_2d(g, de.VE(), 0.5, ax, lim=(-3, 3), n=31)
    img = ax.images[0].get_array()
    assert img.shape == (31, 31)
    # the peak is at the mean, the grid centre
    assert np.unravel_index(np.argmax(img), img.shape) == (15, 15)
    assert float(img.max()) == pytest.approx(math.exp(float(g.log_prob(torch.zeros(1, 2), 0.5, de.VE()))))


def test_vector_field_arrows(ax):
    g = de.Gaussian(torch.zeros(2), torch.ones(2))
    P.plot_vector_field(g.bind(de.EDM()).score, 1.0, ax, n=5, lim=(-2, 2))
    q = ax.collections[0]
    # score of N(0, 2 I) at (x, y) is -(x, y) / 2
    np.testing.assert_allclose(q.U, -q.X.reshape(-1) / 2 if q.U.ndim == 1 else -q.X / 2)
    with pytest.raises(ValueError, match="shape"):
        P.plot_vector_field(lambda x, t: x[:, :1], 1.0, ax)


def test_trajectories(ax):
    traj = torch.randn(11, 4, 3, generator=torch.Generator().manual_seed(0))
    P.plot_trajectories(traj, ax, dims=(0, 2))
    x, y = ax.lines[0].get_data()
    np.testing.assert_allclose(x, traj[:, 0, 0].numpy())
    np.testing.assert_allclose(y, traj[:, 0, 2].numpy())
    with pytest.raises(ValueError, match="N\\+1, B, D"):
        P.plot_trajectories(traj[0], ax)


def test_error_vs_steps(ax):
    steps = np.array([4, 8, 16, 32])
    errs = {"first": 1.0 / steps, "second": 1.0 / steps**2}
    P.plot_error_vs_steps(steps, errs, ax)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    np.testing.assert_allclose(ax.lines[1].get_data()[1], errs["second"])
    # the order-1 reference line through the last point of the first method
    np.testing.assert_allclose(ax.lines[2].get_data()[1], errs["first"])
    with pytest.raises(ValueError, match="shape"):
        P.plot_error_vs_steps(steps, {"bad": [1.0, 2.0]}, ax)


def test_error_vs_calls_gives_each_method_its_x(ax):
    steps = np.array([4, 8, 16])
    errs = {"euler": 1.0 / steps, "heun": 1.0 / steps**2}
    P.plot_error_vs_steps({"euler": steps, "heun": 2 * steps}, errs, ax, anchor="heun", xlabel="denoiser calls")
    np.testing.assert_allclose(ax.lines[1].get_data()[0], 2 * steps)
    assert ax.get_xlabel() == "denoiser calls"
    np.testing.assert_allclose(ax.lines[2].get_data()[0], 2 * steps)  # reference slopes on heun's x
    with pytest.raises(ValueError, match="no entry"):
        P.plot_error_vs_steps({"euler": steps}, errs, ax)


def test_samples(ax):
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(1))
    P.plot_samples(x, ax)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), x.numpy())


def test_every_plot_makes_its_own_axes_when_given_none():
    import matplotlib.pyplot as plt

    g = de.Gaussian(torch.zeros(2), torch.ones(2))
    traj = torch.zeros(3, 2, 2)
    made = [P.plot_schedules([de.VP()]), P.plot_log_snr([de.VP()]), P.plot_density_1d(mix1(), de.VP(), 0.3),
            P.plot_density_2d(g, de.VP(), 0.3, n=11), P.plot_vector_field(g.bind(de.VP()).score, 0.5, n=3),
            P.plot_trajectories(traj), P.plot_error_vs_steps([1, 2], {"a": [1.0, 0.5]}),
            P.plot_samples(torch.zeros(4, 2))]
    assert len({id(a.figure) for a in made}) == len(made)
    assert all(a.figure.number in plt.get_fignums() for a in made)  # pyplot figures, shown by a cell


def test_images_grid():
    imgs = torch.arange(5 * 64, dtype=torch.float64).reshape(5, 64)
    axs = P.plot_images(imgs, titles=list("abcde"), ncols=3)
    assert axs.shape == (2, 3)
    np.testing.assert_allclose(axs[0, 1].images[0].get_array(), imgs[1].reshape(8, 8).numpy())
    assert axs[1, 1].get_title() == "e" and not axs[1, 2].images
    given = matplotlib.figure.Figure().subplots(1, 2)
    assert P.plot_images(imgs[:2], given, shape=(4, 16)).shape == (2,)
    assert given[1].images[0].get_array().shape == (4, 16)
