"""diffedu.teach.models: the cached digit network loads at every checkpoint and matches its
settings; a slow test retrains its first 2,000 steps and compares them with the cache."""

import pytest
import torch

import diffedu as de
from diffedu.memorisation import nn_distances
from diffedu.teach import models


def _nearest(model, train_digits, n=200):
    with torch.no_grad():
        x = de.heun(model.denoiser, model.process, torch.randn(n, 64, generator=torch.Generator().manual_seed(8)),
                    de.time_grid(model.process, 40))
    return float(nn_distances(x, train_digits)[:, 0].mean())


def test_the_cache_loads_at_every_checkpoint_and_learns():
    steps = models.digit_checkpoints()
    assert steps == list(models.DIGIT_CONFIG["checkpoints"])
    train_digits, held_out, y_train, y_held = models.digit_split()
    assert train_digits.shape == (models.N_TRAIN, 64) and held_out.shape == (1797 - models.N_TRAIN, 64)
    assert len(set(map(tuple, train_digits.tolist())) & set(map(tuple, held_out.tolist()))) <= 5  # a split, not a copy
    init = models.new_digit_model(generator=torch.Generator().manual_seed(models.DIGIT_CONFIG["seed"]))
    for k, v in models.load_digit_model(0).state_dict().items():
        assert torch.equal(v, init.state_dict()[k])
    nearest = [_nearest(models.load_digit_model(s), train_digits) for s in steps]
    assert all(a > b for a, b in zip(nearest, nearest[1:])), nearest  # samples approach the data
    blob = torch.load(models.data_path(models.DIGIT_FILE), weights_only=True)
    losses = blob["losses"]
    assert losses.shape == (models.DIGIT_CONFIG["steps"],) and float(losses[-500:].mean()) < float(losses[:500].mean())


def test_a_cache_trained_with_other_settings_or_a_missing_step_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="step must be one of the cached checkpoints"):
        models.load_digit_model(123)
    monkeypatch.setitem(models.DIGIT_CONFIG, "hidden", 7)
    with pytest.raises(ValueError, match="retrain it with python3 -m diffedu.teach.models digits"):
        models.load_digit_model()


def test_the_command_says_how_to_use_it(capsys):
    assert models.main(["nothing"]) == 2
    assert "python3 -m diffedu.teach.models digits" in capsys.readouterr().out


@pytest.mark.slow
def test_retraining_the_first_2000_steps_matches_the_cache():
    """A reduced configuration: the cache's settings for 2,000 steps (about a minute on one core).
    The cache was made on another machine, so the weights need not agree bit for bit: the loss
    curve must agree to 3 % over steps 1,500-2,000, and the retrained network's samples must sit
    between the cached checkpoints at 1,000 and 4,000 steps in distance to the training digits."""
    config = dict(models.DIGIT_CONFIG, steps=2000, checkpoints=(2000,))
    model, result = models.train_digit_model(config)
    cached = torch.load(models.data_path(models.DIGIT_FILE), weights_only=True)["losses"]
    new, old = float(result.losses[1500:2000].mean()), float(cached[1500:2000].mean())
    assert abs(new - old) < 0.03 * old, (new, old)
    train_digits = models.digit_split()[0]
    near = _nearest(model, train_digits)
    assert _nearest(models.load_digit_model(4000), train_digits) < near < _nearest(models.load_digit_model(1000), train_digits)
