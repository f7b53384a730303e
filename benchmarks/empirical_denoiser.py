"""Benchmark: ``Empirical.denoiser`` against the two plain GEMMs it contains and a naive form.

Reports, in one run and as ratios, the time of the memorising optimal denoiser against

* the two GEMMs it contains, ``(B x D)(D x M)`` and ``(B x M)(M x D)`` (the floor), and
* a naive ``torch.cdist`` + softmax + matmul.

With ``--reduced`` (CUDA) it also times the opt-in ``matmul_precision="high"`` mode (TF32)
against the two TF32 GEMMs and reports its error against float64.

    python3 benchmarks/empirical_denoiser.py                       # CPU, the issue's sizes
    python3 benchmarks/empirical_denoiser.py --device cuda --M 50000 --D 3072 --reduced
"""

from __future__ import annotations

import argparse
import time

import torch

import diffedu as de


def timer(device):
    def run(fn, reps):
        fn()  # warm up (caches, kernels)
        out = []
        for _ in range(reps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            out.append(time.perf_counter() - t0)
        return sorted(out)[len(out) // 2]  # median
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--B", type=int, default=1024)
    ap.add_argument("--M", type=int, default=10_000)
    ap.add_argument("--D", type=int, nargs="+", default=[64, 784])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.1, 0.5, 2.0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--reduced", action="store_true", help="also time matmul_precision='high' (TF32)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    run = timer(device)
    g = torch.Generator(device=device).manual_seed(0)
    p = de.EDM()
    print(f"device={device} B={args.B} M={args.M} float32 threads={torch.get_num_threads()}")
    print(f"{'D':>5} {'sigma':>5} | {'2 GEMMs ms':>10} {'ours ms':>8} {'ours/GEMMs':>10} "
          f"{'naive ms':>8} {'naive/ours':>10}")
    for D in args.D:
        X = torch.randn(args.M, D, generator=g, device=device)
        emp = de.Empirical(X)
        for s in args.sigmas:
            x = X[: args.B] + s * torch.randn(args.B, D, generator=g, device=device)
            W = emp.denoiser  # warm the key cache
            W(x, s, p)
            P = torch.softmax(-torch.cdist(x, X) ** 2 / (2 * s * s), 1)

            def gemms():
                x @ X.T
                P @ X

            def naive():
                return torch.softmax(-torch.cdist(x, X) ** 2 / (2 * s * s), 1) @ X

            t_g = run(gemms, args.reps)
            t_o = run(lambda: emp.denoiser(x, s, p), args.reps)
            t_n = run(naive, args.reps)
            print(f"{D:>5} {s:>5} | {1e3 * t_g:>10.2f} {1e3 * t_o:>8.2f} {t_o / t_g:>10.2f} "
                  f"{1e3 * t_n:>8.2f} {t_n / t_o:>10.2f}")
            if args.reduced:
                emp_r = de.Empirical(X, matmul_precision="high")
                emp_r.denoiser(x, s, p)
                old = torch.get_float32_matmul_precision()
                torch.set_float32_matmul_precision("high")
                try:
                    t_gr = run(gemms, args.reps)
                finally:
                    torch.set_float32_matmul_precision(old)
                t_r = run(lambda: emp_r.denoiser(x, s, p), args.reps)
                ref = de.Empirical(X.double()).denoiser(x.double(), s, p)
                scale = ref.abs().max()
                e32 = float((emp.denoiser(x, s, p).double() - ref).abs().max() / scale)
                e_r = float((emp_r.denoiser(x, s, p).double() - ref).abs().max() / scale)
                print(f"{'':>5} {'tf32':>5} | {1e3 * t_gr:>10.2f} {1e3 * t_r:>8.2f} {t_r / t_gr:>10.2f} "
                      f"   max rel error: strict {e32:.1e}, reduced {e_r:.1e}")


if __name__ == "__main__":
    main()
