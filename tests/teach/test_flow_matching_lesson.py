"""diffedu.teach.flow_matching (lesson 14): the checkers accept the library's methods and reject
near misses, the cached models load and are as straight as the lesson says, the error maps and
the few-step table on fields whose answers are known, and (slow) a retraining against the cache.

(Named ``..._lesson`` because tests/test_flow_matching.py tests the core module.)"""

import math

import pytest
import torch

from diffedu import flow_matching as fm
from diffedu.interpolants import ode_trajectory
from diffedu.teach import flow_matching as lesson

F64 = torch.float64


def test_fm_loss_checker():
    def right(velocity, interpolant, x0, x1, t):
        return fm.fm_terms(velocity, interpolant, x0, x1, t).mean()

    def linear_only(velocity, interpolant, x0, x1, t):   # the straight interpolant's u = x1 - x0 for every interpolant
        col = t.to(x0.dtype)[:, None]
        return ((velocity((1 - col) * x0 + col * x1, t) - (x1 - x0)) ** 2).sum(1).mean()

    def summed(velocity, interpolant, x0, x1, t):
        return fm.fm_terms(velocity, interpolant, x0, x1, t).sum()

    assert lesson.check_fm_loss(right)
    assert not lesson.check_fm_loss(linear_only)
    assert not lesson.check_fm_loss(summed)
    assert lesson.check_fm_loss(None).status == "unanswered"


def test_reflow_checker():
    def right(velocity, x1, steps):
        return ode_trajectory(velocity, x1, torch.linspace(1, 0, steps + 1, dtype=F64), method="euler")[-1]

    def forward_in_time(velocity, x1, steps):   # the wrong sign of the step
        x, h = x1, 1.0 / steps
        for k in range(steps):
            x = x + h * velocity(x, 1.0 - k * h)
        return x

    def rk4(velocity, x1, steps):
        return ode_trajectory(velocity, x1, torch.linspace(1, 0, steps + 1, dtype=F64))[-1]

    assert lesson.check_reflow_pairs(right)
    assert not lesson.check_reflow_pairs(forward_in_time)
    assert not lesson.check_reflow_pairs(rk4)


def test_velocity_variance_checker():
    v, t = 0.5, 0.3
    cov = t - (1 - t) * v
    exact = v + 1 - cov**2 / ((1 - t) ** 2 * v + t**2)
    assert lesson.check_velocity_variance(exact, v, t)
    assert not lesson.check_velocity_variance(v + 1, v, t)        # the unconditional variance


def test_cached_models_load_and_are_straight():
    _, bridge = lesson.flow_data()
    nets = lesson.load_flow_models()
    assert set(nets) == {"minibatch OT", "reflow"}
    x1 = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    S = {k: fm.straightness(lesson.as_field(n), x1, steps=20)[0] for k, n in nets.items()}
    S_exact = fm.straightness(bridge.velocity, x1, steps=20)[0]
    assert S["reflow"] < S["minibatch OT"] < 0.05 * S_exact
    for n in nets.values():   # both sample the data: the velocity error is no more than the lesson's networks'
        assert fm.relative_velocity_error(lesson.as_field(n), bridge, 0.5, n=1000,
                                          generator=torch.Generator().manual_seed(1))[0] < 1.0


def test_error_maps_and_few_step_table_on_known_fields():
    _, bridge = lesson.flow_data()
    net = lesson.new_velocity_net()
    maps = lesson.error_maps(net, {0: net.state_dict()}, bridge, [0.5], n=11, n_err=100)
    err, dens, rel, se = maps[(0, 0.5)]
    assert err.shape == dens.shape == (11, 11) and 0.5 < rel < 2.0 and se >= 0
    # a constant field is straight: S = 0, every Euler step count lands on the ODE's end point
    c = torch.tensor([0.3, -0.2], dtype=F64)
    x1 = torch.randn(200, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    table = lesson.few_step_table({"const": lambda x, t: c.expand_as(x), "exact": bridge.velocity}, bridge, x1,
                                  steps=(1, 4, "ode"), ode_steps=20, n_data=2000)
    assert table["const"]["S"][0] < 1e-20
    assert table["const"][1][0] < 1e-12 and table["const"][4][0] < 1e-12
    gap, gap_se = table["exact"]["ode"][2:]
    assert abs(gap) < 4 * gap_se + 0.05                        # the exact flow samples the data
    assert table["exact"][1][2] < -1.0                         # one Euler step of the curved flow does not


def test_widgets_draw():
    _, bridge = lesson.flow_data()
    net = lesson.new_velocity_net()
    maps = lesson.error_maps(net, {0: net.state_dict(), 5: net.state_dict()}, bridge, [0.3, 0.7], n=9, n_err=50)
    w = lesson.velocity_error_widget(maps, torch.linspace(5.0, 4.3, 5, dtype=F64), 4.2)
    assert w.result is not None
    x1 = torch.randn(50, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    w = lesson.few_step_widget({"exact": bridge.velocity, "net": lesson.as_field(net)}, bridge, x1)
    assert w.result is not None


@pytest.mark.slow
def test_retraining_reproduces_the_cache():
    """Retrain the three flows with the lesson's settings (about a minute on one core) and compare
    the straightness and the one-step error of the retrained OT and reflow networks with the cache's."""
    new = lesson.train_flow_models()
    cached = lesson.load_flow_models()
    x1 = torch.randn(1000, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    for name in ("minibatch OT", "reflow"):
        S_new, se_new, x0_new = fm.straightness(lesson.as_field(new[name][0]), x1, steps=20)
        S_old, se_old, x0_old = fm.straightness(lesson.as_field(cached[name]), x1, steps=20)
        assert abs(S_new - S_old) < 0.25 * S_old + 3 * math.hypot(se_new, se_old), name
        assert float((x0_new - x0_old).norm(dim=1).mean()) < 0.2, name
