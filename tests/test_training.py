"""diffedu.training: the loop (minibatches, labels, checkpoints, errors) and the DSM weightings,
each checked against the loss written out by hand on the same draws."""

import math

import pytest
import torch

from diffedu import VP, EDM, Gaussian
from diffedu.datasets import two_gaussians
from diffedu.nets import ScoreMLP
from diffedu.training import dsm_loss, sample_times, train

F64 = torch.float64


class ExactScore(torch.nn.Module):
    """The exact score of a Gaussian times a learnable scale (1 at the start)."""

    def __init__(self, g, process):
        super().__init__()
        self.g, self.process = g, process
        self.scale = torch.nn.Parameter(torch.ones((), dtype=F64))

    def score(self, x, t):
        return self.scale * self.g.score(x, t, self.process)


@pytest.mark.parametrize("weighting", ["eps", "x0", "score"])
@pytest.mark.parametrize("process", [VP(), EDM()], ids=["VP", "EDM"])
def test_dsm_weightings_are_the_losses_they_name(weighting, process):
    """On the same draws: eps -> |eps_hat - eps|^2, x0 -> |D - x0|^2, score -> |s + eps/sigma|^2."""
    g = Gaussian([0.5, -1.0], [[1.0, 0.3], [0.3, 0.5]])
    model = ExactScore(g, process)
    model.scale.data.fill_(0.8)                       # not the minimiser: every term is non-zero
    x0 = g.sample(64, generator=torch.Generator().manual_seed(0), dtype=F64)
    value = dsm_loss(process, weighting=weighting)(model, x0, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)           # the same draws, by hand
    t = sample_times(process, 64, like=x0, generator=gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=F64)
    a, s = process.alpha(t)[:, None], process.sigma(t)[:, None]
    xt = a * x0 + s * eps
    score = model.score(xt, t)
    by_hand = {"eps": ((-s * score) - eps) ** 2,
               "x0": ((xt + s**2 * score) / a - x0) ** 2,
               "score": (score + eps / s) ** 2}[weighting].sum(1).mean()
    torch.testing.assert_close(value, by_hand)


def test_train_fits_the_exact_scale_and_keeps_checkpoints():
    """A one-parameter model ``c * exact score``: DSM's minimiser is c = 1 (the exact score)."""
    p = VP()
    g = Gaussian([0.5, -1.0], [[1.0, 0.3], [0.3, 0.5]])
    model = ExactScore(g, p)
    model.scale.data.fill_(0.3)
    data = g.sample(4000, generator=torch.Generator().manual_seed(0), dtype=F64)
    res = train(model, dsm_loss(p), data, steps=300, batch_size=256, lr=0.05, checkpoints=[0, 150, 300],
                generator=torch.Generator().manual_seed(2))
    assert res.losses.shape == (300,) and torch.isfinite(res.losses).all()
    assert sorted(res.checkpoints) == [0, 150, 300]
    assert float(res.checkpoints[0]["scale"]) == pytest.approx(0.3)
    assert abs(float(model.scale.detach()) - 1.0) < 0.03
    assert float(res.checkpoints[300]["scale"]) == float(model.scale.detach()) and not model.training


def test_train_a_network_with_labels_and_a_sampler():
    p = VP()
    net = ScoreMLP(p, 2, hidden=16, depth=1, generator=torch.Generator().manual_seed(0))
    mix = two_gaussians()
    x, y = mix.sample_with_labels(500, generator=torch.Generator().manual_seed(1), dtype=torch.float32)
    seen = []

    def loss(model, x0, labels, *, generator):
        seen.append(labels)
        return dsm_loss(p)(model, x0, generator=generator)

    res = train(net, loss, x, labels=y, steps=5, batch_size=32, generator=torch.Generator().manual_seed(2))
    assert len(seen) == 5 and all(lab.shape == (32,) for lab in seen)
    res2 = train(net, loss, lambda n, generator=None: mix.sample_with_labels(n, generator=generator, dtype=torch.float32),
                 steps=3, batch_size=8, generator=torch.Generator().manual_seed(2))
    assert res.losses.shape == (5,) and res2.losses.shape == (3,) and seen[-1].shape == (8,)


def test_non_finite_data_or_loss_stops_training_with_a_clear_error():
    p = VP()
    net = ScoreMLP(p, 2, hidden=8, depth=1)
    bad = torch.zeros(10, 2)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="data must be finite; 1 of its 10 rows hold NaN or inf"):
        train(net, dsm_loss(p), bad, steps=3, batch_size=4)

    def nan_loss(model, x0, y, *, generator):
        return dsm_loss(p)(model, x0, generator=generator) * float("nan")
    with pytest.raises(FloatingPointError, match="the loss is nan at step 0"):
        train(net, nan_loss, torch.zeros(10, 2), steps=3, batch_size=4)


def test_bad_input_is_named():
    p = VP()
    net = ScoreMLP(p, 2, hidden=8, depth=1)
    x = torch.zeros(10, 2)
    loss = dsm_loss(p)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        train("net", loss, x, steps=1)
    with pytest.raises(TypeError, match="loss must be a callable"):
        train(net, 3, x, steps=1)
    with pytest.raises(TypeError, match="steps must be an integer"):
        train(net, loss, x, steps=True)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        train(net, loss, x, steps=1, batch_size=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        train(net, loss, x, steps=1, lr=0.0)
    with pytest.raises(ValueError, match="checkpoints must be an integer <= 2"):
        train(net, loss, x, steps=2, checkpoints=[5])
    with pytest.raises(ValueError, match="labels must be a tensor with one row per data point"):
        train(net, loss, x, steps=1, labels=torch.zeros(3))
    with pytest.raises(TypeError, match="data must be"):
        train(net, loss, "data", steps=1)
    with pytest.raises(ValueError, match="weighting must be one of"):
        dsm_loss(p, weighting="v")
    with pytest.raises(ValueError, match="t_min must lie"):
        sample_times(p, 3, t_min=2.0, like=x)
    assert math.isfinite(float(loss(net, x, generator=torch.Generator().manual_seed(0)).detach()))


def test_loss_and_times_check_their_arguments():
    """Issue 21 (property tests): dsm_loss took fp_method='nonsense' and an out-of-range fp_t_min (the error
    came at the first step and named t_min); sample_times read like.dtype of a list and passed n=True to
    torch."""
    p = VP()
    with pytest.raises(ValueError, match="fp_method must be one of"):
        dsm_loss(p, fp_method="nonsense")
    with pytest.raises(ValueError, match="fp_t_min must lie in"):
        dsm_loss(p, fp_t_min=-0.1)
    with pytest.raises(ValueError, match="t_min must lie in"):
        dsm_loss(p, t_min=2.0)
    with pytest.raises(TypeError, match="like must be a floating torch.Tensor"):
        sample_times(p, 3, like=[0.0])
    with pytest.raises(TypeError, match="n must be an integer; got bool"):
        sample_times(p, True, like=torch.zeros(1))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        sample_times(p, 3, like=torch.zeros(1), generator=0)


def test_train_checkpoints_must_be_a_sequence():
    """Issue 21 (property tests): checkpoints=1 gave "'int' object is not iterable"."""
    model = torch.nn.Linear(1, 1)
    with pytest.raises(TypeError, match="checkpoints must be a sequence of step numbers; got int"):
        train(model, lambda m, x0, y, generator=None: (m(x0) ** 2).mean(), torch.zeros(4, 1), steps=1, checkpoints=1)
