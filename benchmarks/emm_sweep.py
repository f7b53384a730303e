"""Regenerate data/emm_ring.npz: memorised fraction of a small network's samples against the
training-set size M (lesson 06), for three network widths, one process per (width, M).

    OMP_NUM_THREADS=1 python3 benchmarks/emm_sweep.py data/emm_ring.npz [--workers 14]

Each (width, M) run is independent (memorisation.mlp_fit_and_sample seeds its own generator), so
the runs are spread over processes; tests/teach/test_memorisation.py (slow) re-runs two of them,
and diffedu.teach.memorisation.load_emm_ring loads the file for the lesson.
"""

import argparse
import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

CONFIG = dict(sizes=[2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256], widths=[32, 128, 512], depth=3, steps=3000, batch_size=128,
              lr=3e-3, n_steps=30, n_samples=400, data_seed=0, n_data=1024)


def ring_data(cfg=CONFIG):
    from diffedu import datasets
    return datasets.ring().sample(cfg["n_data"], generator=torch.Generator().manual_seed(cfg["data_seed"]),
                                  dtype=torch.float32)


def run_one(width, M, cfg=CONFIG):
    torch.set_num_threads(1)
    import diffedu as de
    from diffedu.memorisation import memorisation_sweep, mlp_fit_and_sample
    fs = mlp_fit_and_sample(de.VP(), hidden=width, depth=cfg["depth"], steps=cfg["steps"],
                            batch_size=cfg["batch_size"], lr=cfg["lr"], n_steps=cfg["n_steps"], seed=1)
    sweep = memorisation_sweep(fs, ring_data(cfg), [M], n_samples=cfg["n_samples"],
                               generator=torch.Generator().manual_seed(2))
    return sweep.fractions[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    jobs = [(w, m) for w in CONFIG["widths"] for m in CONFIG["sizes"]]
    with ProcessPoolExecutor(args.workers) as pool:
        fr = list(pool.map(run_one, *zip(*jobs)))
    fractions = np.array(fr).reshape(len(CONFIG["widths"]), len(CONFIG["sizes"]))
    np.savez_compressed(args.out, sizes=np.array(CONFIG["sizes"]), widths=np.array(CONFIG["widths"]),
                        fractions=fractions, config=json.dumps(CONFIG))
    print(json.dumps(CONFIG))
    print(fractions.round(3))


if __name__ == "__main__":
    main()
