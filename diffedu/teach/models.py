r"""Cached trained models that several lessons use: the digit score network.

Training the digit network takes minutes, more than a lesson may run, so its weights are cached
in ``data/digit_model.pt`` with checkpoints along training (the learning lesson shows its
samples; the generalisation lessons read its checkpoints). The cache records the settings it was
trained with (:data:`DIGIT_CONFIG`); :func:`load_digit_model` refuses a cache trained with other
settings. Regenerate it with

    python3 -m diffedu.teach.models digits

which runs :func:`train_digit_model` with ``save=True`` (about 10 minutes on one core). A slow
test retrains a reduced configuration and checks it against the cache's own metrics.

The network is a :class:`~diffedu.nets.ScoreMLP` (denoiser parametrisation, EDM preconditioning)
trained by :func:`~diffedu.training.train` with :func:`~diffedu.training.dsm_loss` on the first
:data:`N_TRAIN` digits of :func:`~diffedu.datasets.load_digits` (a fixed random split, so the
rest is held out: a sample that copies a training digit can be told from one that is merely
close to the data).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from .._paths import data_path, writable_data_path
from ..datasets import load_digits
from ..nets import ScoreMLP
from ..processes import VP
from ..training import dsm_loss, train

__all__ = ["DIGIT_CONFIG", "DIGIT_FILE", "N_TRAIN", "digit_split", "new_digit_model", "train_digit_model",
           "load_digit_model", "digit_checkpoints", "load_npz_cache"]

DIGIT_FILE = "digit_model.pt"
#: Digits the network is trained on; the other 1797 - N_TRAIN are held out.
N_TRAIN = 1500
#: Settings of the cached digit network (changing them needs ``train_digit_model(save=True)``).
DIGIT_CONFIG = dict(hidden=512, depth=3, n_freq=4, weighting="x0", steps=20000, batch_size=256, lr=2e-3,
                    checkpoints=(0, 250, 1000, 4000, 20000), seed=0, split_seed=0)


def digit_split(seed: int | None = None):
    r"""The digits (1797, 64) float32 in [0, 1] split at random into ``(train, held_out, train_labels,
    held_out_labels)`` with :data:`N_TRAIN` training images, from ``seed`` (default the config's)."""
    d = load_digits(dtype=torch.float32)
    g = torch.Generator().manual_seed(DIGIT_CONFIG["split_seed"] if seed is None else seed)
    perm = torch.randperm(d.images.shape[0], generator=g)
    tr, te = perm[:N_TRAIN], perm[N_TRAIN:]
    return d.images[tr], d.images[te], d.labels[tr], d.labels[te]


def new_digit_model(config=None, generator=None) -> ScoreMLP:
    """An untrained digit network with the architecture of ``config`` (default :data:`DIGIT_CONFIG`)."""
    c = DIGIT_CONFIG if config is None else config
    train_set = digit_split()[0]
    return ScoreMLP(VP(), 64, hidden=c["hidden"], depth=c["depth"], n_freq=c["n_freq"], param="denoiser",
                    sigma_data=float(train_set.std()), generator=generator)


def train_digit_model(config=None, *, save: bool = False, progress: bool = False):
    r"""Train the digit network with ``config`` (default :data:`DIGIT_CONFIG`): ``(model, result)``.

    result is the :class:`~diffedu.training.TrainResult` (losses and the checkpoints' weights).
    ``save=True`` writes ``data/digit_model.pt`` (a source checkout only)."""
    c = dict(DIGIT_CONFIG if config is None else config)
    g = torch.Generator().manual_seed(c["seed"])
    model = new_digit_model(c, generator=g)
    train_set = digit_split()[0]
    result = train(model, dsm_loss(model.process, weighting=c["weighting"]), train_set, steps=c["steps"],
                   batch_size=c["batch_size"], lr=c["lr"], checkpoints=c["checkpoints"], generator=g,
                   progress=progress)
    if save:  # step 0 is not stored: the seed remakes it exactly (new_digit_model with the seed)
        half = {s: {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in w.items()}
                for s, w in result.checkpoints.items() if s != 0}
        torch.save({"config": c, "checkpoints": half, "losses": result.losses.float()},
                   writable_data_path(DIGIT_FILE))
    return model, result


def _load():
    blob = torch.load(data_path(DIGIT_FILE), map_location="cpu", weights_only=True)
    if blob["config"] != dict(DIGIT_CONFIG):
        raise ValueError(f"{DIGIT_FILE} was trained with {blob['config']}, not {DIGIT_CONFIG}: retrain it "
                         "with python3 -m diffedu.teach.models digits")
    return blob


def digit_checkpoints() -> list[int]:
    """The training steps at which the network's weights are available (0: the initial network)."""
    return [0] + sorted(int(s) for s in _load()["checkpoints"])


def load_digit_model(step: int | None = None) -> ScoreMLP:
    r"""The cached digit network after ``step`` training steps (default: the last checkpoint),
    float32, eval mode, no gradients kept. Its weights are stored in float16 (the cache is
    small); they are loaded back into float32."""
    blob = _load()
    steps = [0] + sorted(blob["checkpoints"])
    step = steps[-1] if step is None else step
    if step not in steps:
        raise ValueError(f"step must be one of the cached checkpoints {steps}; got {step!r}")
    if step == 0:
        model = new_digit_model(generator=torch.Generator().manual_seed(DIGIT_CONFIG["seed"]))
    else:
        model = new_digit_model()
        model.load_state_dict({k: v.float() for k, v in blob["checkpoints"][step].items()})
    model.eval()
    model.requires_grad_(False)
    return model


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["digits"]:
        print("usage: python3 -m diffedu.teach.models digits   (retrains data/digit_model.pt)")
        return 2
    train_digit_model(save=True, progress=True)
    print(f"wrote {writable_data_path(DIGIT_FILE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def load_npz_cache(name: str, path, config: dict, config_name: str, remake: str) -> tuple[dict, dict]:
    """A lesson's ``.npz`` cache: ``(arrays, settings)``, the arrays by key and the settings stored as
    its JSON ``config`` entry. path: default ``data/<name>`` (FileNotFoundError names a missing file).
    The default file must have been made with ``config`` (ValueError naming ``config_name`` and the
    ``remake`` command otherwise); a file given by path may hold other settings (a test's reduced run)."""
    path = data_path(name) if path is None else Path(path)
    with np.load(path) as z:
        arrays = {k: np.array(z[k]) for k in z.files if k != "config"}
        settings = json.loads(str(z["config"]))
    if path == data_path(name) and settings != json.loads(json.dumps(config)):
        raise ValueError(f"{name} was made with {settings}, not {config_name}: remake it with {remake}")
    return arrays, settings
