"""Benchmark diffedu's samplers: convergence orders, per-step overhead, accuracy, precision, GPU.

    python3 benchmarks/samplers.py orders      # measured orders per sampler and process
    python3 benchmarks/samplers.py overhead    # per-step overhead vs k-diffusion and a bare loop
    python3 benchmarks/samplers.py accuracy    # error at 3 / 5 / 10 calls on a 64-D mixture vs peers
    python3 benchmarks/samplers.py precision   # float32-vs-float64 error vs k-diffusion's
    python3 benchmarks/samplers.py gpu         # 2-D (K=8, 10^6) and 64-D (K=16, 10^5) Heun on CUDA
    python3 benchmarks/samplers.py all         # all but gpu (gpu too when CUDA is there)

Peers are optional and never project dependencies: install them in a separate benchmark
environment that reuses the project's CPU torch (the README's Benchmarks section has the
commands: ``python3 -m venv --system-site-packages``, the peers with ``--no-deps``, then the HTTP
packages huggingface_hub imports) and check that torch was not replaced. k-diffusion's
``sampling`` module and smalldiffusion's ``diffusion`` module are loaded without their package
``__init__`` (which pull in torchvision, accelerate, ...); diffusers' schedulers are driven on
exactly our grid (:func:`diffusers_samplers`). A peer that is missing is skipped with a note.
Every ratio is measured in one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffedu import EDM, VE, VP, Gaussian, GaussianMixture, Linear, VPCosine, fit_gaussian, time_grid  # noqa: E402
from diffedu.datasets import random_mixture  # noqa: E402
from diffedu.few_step import FIVE_STEP, evodiff, five_step_grid  # noqa: E402
from diffedu.flow_map import pf_ode_flow  # noqa: E402
from diffedu.gaussian_approx import teleport  # noqa: E402
from diffedu import samplers as S  # noqa: E402


# --- optional peers --------------------------------------------------------------------------
def load_k_diffusion():
    """k_diffusion.sampling without k_diffusion/__init__ (needs torchsde, torchdiffeq, scipy)."""
    if "k_diffusion.sampling" in sys.modules:         # loaded before (the stub package has no spec)
        return sys.modules["k_diffusion.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    pkg = types.ModuleType("k_diffusion")
    pkg.__path__ = [str(root)]
    utils = types.ModuleType("k_diffusion.utils")
    utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
    sys.modules.setdefault("k_diffusion", pkg)
    sys.modules.setdefault("k_diffusion.utils", utils)
    try:
        mspec = importlib.util.spec_from_file_location("k_diffusion.sampling", root / "sampling.py")
        mod = importlib.util.module_from_spec(mspec)
        mspec.loader.exec_module(mod)
        sys.modules["k_diffusion.sampling"] = mod
        return mod
    except ImportError as e:
        print(f"  [k-diffusion skipped: {e}]")
        return None


def load_smalldiffusion():
    """smalldiffusion.diffusion.samples (gradient-estimation sampler) without accelerate."""
    spec = importlib.util.find_spec("smalldiffusion")
    if spec is None:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    stub = "accelerate" not in sys.modules and importlib.util.find_spec("accelerate") is None
    if stub:                                           # only for the duration of the import: other
        acc = types.ModuleType("accelerate")           # peers (diffusers) probe for accelerate
        acc.Accelerator = lambda: types.SimpleNamespace(device="cpu")
        sys.modules["accelerate"] = acc
    try:
        mspec = importlib.util.spec_from_file_location("_sd_diffusion", root / "diffusion.py")
        mod = importlib.util.module_from_spec(mspec)
        mspec.loader.exec_module(mod)
        return mod
    except ImportError as e:
        print(f"  [smalldiffusion skipped: {e}]")
        return None
    finally:
        if stub:
            sys.modules.pop("accelerate", None)


def load_diffusers():
    """diffusers' scheduler classes (UniPC, Heun), or None. Install them in a separate benchmark
    environment (see the module docstring): diffusers pulls huggingface_hub and its HTTP stack."""
    if importlib.util.find_spec("diffusers") is None:
        return None
    try:
        from diffusers import HeunDiscreteScheduler, UniPCMultistepScheduler
    except Exception as e:  # noqa: BLE001  (a broken optional peer is skipped, not fatal)
        print(f"  [diffusers skipped: {type(e).__name__}: {e}]")
        return None
    return types.SimpleNamespace(Heun=HeunDiscreteScheduler, UniPC=UniPCMultistepScheduler)


def diffusers_samplers(Df):
    """name -> (call(D, x, sigmas), NFE for n grid intervals) driving diffusers' schedulers on our grid.

    Every scheduler is built with ``prediction_type="sample"`` (the model returns D) and then given
    exactly our EDM grid ``sigmas`` (N+1 values ending in 0): diffusers' Heun works on x in EDM
    units (its sigmas are interleaved as in its ``set_timesteps``); UniPC works on the VP-scaled
    ``alpha x`` with ``alpha = 1/sqrt(1 + sigma^2)`` and its sigmas are sigma/alpha = our EDM sigma.
    ``set_begin_index(0)`` makes the schedulers index by step, not by matching timesteps.
    UniPC's ``bh1`` variant is left out: with the final sigma 0 its ``B_h = h`` is infinite and
    the last step returns NaN (diffusers 0.42); ``bh2`` (its default) is run at orders 2 and 3.
    """
    def heun(D, x, sig):
        n = sig.numel() - 1
        sch = Df.Heun(prediction_type="sample")
        sch.set_timesteps(n)
        sch.sigmas = torch.cat([sig[:1], sig[1:-1].repeat_interleave(2), sig[-1:]]).cpu()
        sch.set_begin_index(0)
        sl = sch.sigmas.tolist()
        for t in sch.timesteps:
            x = sch.step(D(x, sl[sch.step_index if sch.step_index is not None else 0]), t, x).prev_sample
        return x

    def unipc(order, variant):
        def run(D, x, sig):
            n = sig.numel() - 1
            sch = Df.UniPC(prediction_type="sample", solver_order=order, solver_type=variant)
            sch.set_timesteps(n)
            sch.sigmas = sig.cpu().clone()
            sch.set_begin_index(0)
            sl = sch.sigmas.tolist()
            a = [1.0 / math.sqrt(1.0 + v * v) for v in sl]
            y = x * a[0]                                # VP-scaled sample
            for i, t in enumerate(sch.timesteps):
                y = sch.step(D(y / a[i], sl[i]), t, y).prev_sample
            return y                                    # alpha = 1 at sigma = 0
        return run
    return {
        "diffusers.heun": (heun, lambda n: 2 * n - 1),
        "diffusers.unipc2_bh2": (unipc(2, "bh2"), lambda n: n),
        "diffusers.unipc3_bh2": (unipc(3, "bh2"), lambda n: n),
    }


def k_model(D):
    """k-diffusion's model(x, sigma (B,)) from our EDM denoiser D(x, t)."""
    return lambda x, sigma: D(x, sigma[0])


def k_samplers(K):
    """name -> (call(model, x, sigmas), NFE for n grid intervals)."""
    none = lambda a, b: None  # noqa: E731  (eta = 0: never called; avoids building a Brownian tree)
    q = dict(disable=True)
    return {
        "k.euler": (lambda m, x, s: K.sample_euler(m, x, s, **q), lambda n: n),
        "k.heun": (lambda m, x, s: K.sample_heun(m, x, s, **q), lambda n: 2 * n - 1),
        "k.dpm_2": (lambda m, x, s: K.sample_dpm_2(m, x, s, **q), lambda n: 2 * n - 1),
        "k.lms": (lambda m, x, s: K.sample_lms(m, x, s, **q), lambda n: n),
        "k.dpmpp_2m": (lambda m, x, s: K.sample_dpmpp_2m(m, x, s, **q), lambda n: n),
        "k.dpmpp_3m": (lambda m, x, s: K.sample_dpmpp_3m_sde(m, x, s, eta=0.0, noise_sampler=none, **q),
                       lambda n: n),
    }


def timeit_interleaved(fns, repeat=7):
    """Best time of each callable, the callables taking turns in every round, so that a slow
    spell of a shared machine falls on all of them rather than on one."""
    for f in fns.values():
        f()
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeat):
        for k, f in fns.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            f()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def timeit(fn, repeat=5):
    """Best time of one callable (after a warm-up call)."""
    return timeit_interleaved({"fn": fn}, repeat)["fn"]


# --- orders ----------------------------------------------------------------------------------
def orders(args):
    """Slope of log max-error vs log N at t_eps against Gaussian.flow (karras grids)."""
    A = torch.tensor([[1.0, 0.3, -0.5], [0.2, 0.8, 0.1], [-0.4, 0.6, 1.2]], dtype=torch.float64)
    G = Gaussian(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), A @ A.T / 3 + 0.05 * torch.eye(3, dtype=torch.float64))
    ns = (64, 128, 256, 512)
    procs = {"VP": VP(), "VPCosine": VPCosine(), "VE": VE(), "EDM": EDM(), "Linear": Linear()}
    print(f"measured order (least-squares slope over N = {ns}, karras grid, error at t_eps)")
    print(f"{'sampler':12s}" + "".join(f"{p:>10s}" for p in procs))
    for name, smp in S.DETERMINISTIC.items():
        row = []
        for p in procs.values():
            D = G.bind(p).denoiser
            x = G.bind(p).sample_marginal(8, p.t_max, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
            errs = []
            for n in ns:
                ts = time_grid(p, n + 1, "karras")[:-1]
                errs.append(float((smp(D, p, x, ts) - G.flow(x, p.t_max, float(ts[-1]), p)).norm(dim=1).max()))
            row.append(-np.polyfit(np.log(ns), np.log(errs), 1)[0])
        print(f"{name:12s}" + "".join(f"{v:10.2f}" for v in row))


# --- per-step overhead -----------------------------------------------------------------------
def overhead(args):
    K, Df = load_k_diffusion(), load_diffusers()
    p = EDM()
    n = args.steps
    ts = time_grid(p, n)
    D = lambda x, t: x * 0.5  # noqa: E731  trivial denoiser
    print(f"per-step overhead, trivial denoiser, EDM, {n} steps, float32 (us/step; ratio = diffedu / peer)")
    for B in (10_000, 16):
        x = torch.randn(B, 64, generator=torch.Generator().manual_seed(0))
        ours = {"euler": S.euler, "heun": S.heun, "dpmpp_2m": S.dpmpp_2m, "dpmpp_3m": S.dpmpp_3m,
                "ddpm_ancestral": S.ddpm_ancestral}
        kname = {"euler": "k.euler", "heun": "k.heun", "dpmpp_2m": "k.dpmpp_2m", "dpmpp_3m": "k.dpmpp_3m"}
        ks = k_samplers(K) if K else {}
        sig = ts.to(torch.float32)
        for name, smp in ours.items():
            fns = {"diffedu": lambda: smp(D, p, x, ts, generator=torch.Generator().manual_seed(0))}
            if name in kname and K:
                call = ks[kname[name]][0]
                fns["k-diffusion"] = lambda: call(k_model(D), x, sig)
            if name == "heun" and Df:
                dcall = diffusers_samplers(Df)["diffusers.heun"][0]
                fns["diffusers"] = lambda: dcall(D, x, ts)
            if name == "ddpm_ancestral" and K:
                fns["k.euler_anc"] = lambda: K.sample_euler_ancestral(k_model(D), x, sig, disable=True)
            if B == 16 and name == "euler":
                tl = ts.tolist()

                def bare():
                    y = x
                    for i in range(n - 1):
                        d = D(y, tl[i])
                        y = y + (tl[i + 1] - tl[i]) * ((y - d) / tl[i])
                    return D(y, tl[n - 1])
                fns["bare loop"] = bare
            t = {k: v / n * 1e6 for k, v in timeit_interleaved(fns, repeat=args.repeat).items()}
            line = f"  B={B:6d} {name:15s} diffedu {t['diffedu']:8.1f}"
            for k, v in t.items():
                if k != "diffedu":
                    line += f"   {k} {v:8.1f}   ratio {t['diffedu'] / v:5.2f}"
            print(line)


# --- accuracy at 3, 5 and 10 calls ----------------------------------------------------------
def mixture64(K=8, D=64, seed=0):
    """The 64-D mixture (:func:`diffedu.datasets.random_mixture`, shared with lesson 17)."""
    return random_mixture(K, D, seed=seed)


def reference_flow(D, p, x, t_end, rtol=1e-10, atol=1e-10):
    """The exact PF-ODE map from t_max to t_end by :func:`diffedu.flow_map.pf_ode_flow` (DOP853 in
    log(sigma/alpha)); returns it and the number of denoiser calls."""
    calls = [0]

    def counted(z, t):
        calls[0] += 1
        return D(z, t)
    return pf_ode_flow(counted, p, x, p.t_max, t_end, rtol=rtol, atol=atol), calls[0]


def optimised_grids(args, p, M, D):
    """``{(sampler, calls, teleport): ts}``: the cached grids of lesson 17 (data/few_step_grids.json,
    fitted on 200 starts of seed 3 by diffedu.timegrids.optimise_time_grid), or with ``--refit``
    fitted now with the same settings (restricted to ``--refit-samplers``)."""
    from diffedu.teach import few_step_sampling as F

    if not args.refit:
        grids = F.load_grids()
        return {(s, int(c), tele == "teleport"): torch.tensor(v["ts"], dtype=torch.float64)
                for key, v in grids.items() for name, s, c, tele in [key.split("/")] if name == "mix64"}, "cached"
    config = dict(F.GRID_CONFIG, problems=("mix64",), samplers=tuple(args.refit_samplers.split(",")))
    t0 = time.perf_counter()
    grids = F.fit_grids(config)
    return ({(s, int(c), tele == "teleport"): torch.tensor(v["ts"], dtype=torch.float64)
             for key, v in grids.items() for _, s, c, tele in [key.split("/")]},
            f"refitted in {time.perf_counter() - t0:.0f} s")


def accuracy(args):
    K, SD, Df = load_k_diffusion(), load_smalldiffusion(), load_diffusers()
    p = EDM()
    M = mixture64()
    D = M.bind(p).denoiser
    B = args.n
    x = M.bind(p).sample_marginal(B, p.t_max, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t_eps = p.t_eps  # the grids' t_eps (sigma = 0.002)
    t0 = time.perf_counter()
    ref_eps, nfev = reference_flow(D, p, x, t_eps)
    ref = D(ref_eps, t_eps)  # the final jump, as every sampler here takes it
    print(f"accuracy on a 64-D mixture (K=8), EDM, {B} trajectories; reference: pf_ode_flow, DOP853 rtol 1e-10 "
          f"({nfev} calls, {time.perf_counter() - t0:.0f} s). Error |x_0 - ref| at t = 0: median / p90")
    G = fit_gaussian(M.sample(20_000, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    G_exact = Gaussian(M.mean, M.cov)                   # the optimised teleport grids were fitted with it
    ours = dict(S.DETERMINISTIC, evodiff=evodiff)
    opt, how = optimised_grids(args, p, M, D)
    print(f"  optimised grids: {how}; fitted on other starts (seed 3) than those measured here (seed 1)")
    for nfe in args.calls:
        rows = []
        for name, smp in ours.items():
            n = (nfe + 1) // 2 if name == "heun" else nfe
            for spacing in ("karras", "lambda"):
                out = smp(D, p, x, time_grid(p, n, spacing))
                rows.append((f"{name}/{spacing}", out))
                for t_start in (20.0, 10.0, 5.0):
                    ts = time_grid(p, n, spacing, t_start=t_start)
                    rows.append((f"{name}/{spacing}/tele@{t_start:g}", teleport(smp, D, p, x, ts, G)))
            for tele in (False, True):
                if (name, nfe, tele) in opt:
                    ts = opt[(name, nfe, tele)]
                    out = teleport(smp, D, p, x, ts, G_exact) if tele else smp(D, p, x, ts)
                    rows.append((f"{name}/optimised" + ("+tele" if tele else ""), out))
        if nfe == 5:                                    # Li (2025)'s recipe: DDIM, 5 calls, no final denoising
            rows.append(("five-step recipe (ddim)", FIVE_STEP["sampler"](D, p, x, five_step_grid(p, 5))))
        for spacing in ("karras", "lambda"):            # peers get both grids too (same sigma_min/max)
            if K:
                for name, (call, calls) in k_samplers(K).items():
                    n = next(m for m in range(nfe, 0, -1) if calls(m) <= nfe)
                    sig = time_grid(p, n, spacing)
                    rows.append((f"{name}/{spacing} ({calls(n)} calls)", call(k_model(D), x.clone(), sig)))
            if Df:
                for name, (call, calls) in diffusers_samplers(Df).items():
                    n = next(m for m in range(nfe, 0, -1) if calls(m) <= nfe)
                    if n < 2 and name.startswith("diffusers.unipc"):
                        continue                        # UniPC needs a step before the final one
                    rows.append((f"{name}/{spacing} ({calls(n)} calls)", call(D, x.clone(), time_grid(p, n, spacing))))
            if SD:
                class Model:
                    def rand_input(self, b):
                        return torch.randn(b, 64, dtype=torch.float64)

                    def predict_eps_cfg(self, xt, sig, cond, cfg):
                        s = float(sig.reshape(-1)[0])
                        return (xt - D(xt, s)) / s

                    def eval(self):
                        return self
                sig = time_grid(p, nfe, spacing)
                *_, out = SD.samples(Model(), sig, gam=2.0, xt=x.clone(), batchsize=B)
                # smalldiffusion's last step to sigma = 0 is the Euler step, i.e. x - sigma eps = D
                rows.append((f"smalldiffusion gam=2/{spacing}", out))
        errs = {k: (v - ref).norm(dim=1) for k, v in rows}
        stats = {k: (float(e.median()), float(e.quantile(0.9))) for k, e in errs.items()}
        best = sorted(stats.items(), key=lambda kv: kv[1][0])
        print(f"  {nfe} calls: best 8 by median")
        for k, (m, q) in best[:8]:
            print(f"    {k:38s} {m:.4f} / {q:.4f}")
        fixed = [(k, v) for k, v in best if "optimised" not in k and not k.startswith(("k.", "smalldiffusion", "diffusers."))]
        print(f"  best diffedu on a fixed grid: {fixed[0][0]} {fixed[0][1][0]:.4f} / {fixed[0][1][1]:.4f}")
        opt_rows = [(k, v) for k, v in best if "optimised" in k]
        if opt_rows:
            print("  optimised grids (median / p90)")
            for k, (m, q) in opt_rows:
                print(f"    {k:38s} {m:.4f} / {q:.4f}")
        if nfe == 5:
            m, q = stats["five-step recipe (ddim)"]
            print(f"  five-step recipe as published (DDIM, Karras(1.2) in DDPM time, stops at sigma "
                  f"{float(p.sigma(float(five_step_grid(p, 5)[-1]))):.3f}, no final denoising): {m:.4f} / {q:.4f}")
        peers = [(k, v) for k, v in stats.items() if k.startswith(("k.", "smalldiffusion", "diffusers."))]
        if peers:
            print("  peers")
            for k, (m, q) in sorted(peers, key=lambda kv: kv[1][0]):
                print(f"    {k:38s} {m:.4f} / {q:.4f}")
            bp_m = min(v[0] for _, v in peers)
            bp_q = min(v[1] for _, v in peers)
            bk, (bm, bq) = best[0]
            bpk = min(peers, key=lambda kv: kv[1][0])[0]
            print(f"  ratio best diffedu by median ({bk}) / best peer ({bpk}): median {bm / bp_m:.2f}, "
                  f"p90 {bq / min(peers, key=lambda kv: kv[1][0])[1][1]:.2f}")
            mine = [(k, v) for k, v in stats.items() if not k.startswith(("k.", "smalldiffusion", "diffusers."))]
            both = min(mine, key=lambda kv: max(kv[1][0] / bp_m, kv[1][1] / bp_q))
            print(f"  one diffedu configuration against the best peer in each statistic ({bp_m:.4f} / {bp_q:.4f}): "
                  f"{both[0]} median {both[1][0] / bp_m:.2f}x, p90 {both[1][1] / bp_q:.2f}x")
            # uncertainty over the starts: the same ratios on bootstrap resamples of the trajectories
            # (the peers held fixed: the best by median, the best by p90, in the full sample)
            pk_m = min(peers, key=lambda kv: kv[1][0])[0]
            pk_q = min(peers, key=lambda kv: kv[1][1])[0]
            idx = torch.randint(B, (200, B), generator=torch.Generator().manual_seed(0))
            for label, k in (("best by median", bk), ("one in both", both[0])):
                rm = errs[k][idx].median(1).values / errs[pk_m][idx].median(1).values
                rq = errs[k][idx].quantile(0.9, dim=1) / errs[pk_q][idx].quantile(0.9, dim=1)
                print(f"  bootstrap ({label}, {k}; 200 resamples of the {B} starts): median ratio "
                      f"{float(rm.mean()):.3f} +- {float(rm.std()):.3f}, p90 ratio {float(rq.mean()):.3f} +- {float(rq.std()):.3f}")


# --- float32 vs float64 ----------------------------------------------------------------------
def precision(args):
    """float32 against float64 of the same sampler, for diffedu and k-diffusion, two ways.

    "full": the mixture denoiser itself runs in float32 (what a user gets);
    "arithmetic": the denoiser runs in float64 and is rounded to float32, so the difference is the
    sampler's own float32 arithmetic. Median (and mean) over the trajectories of |x32 - x64|.
    """
    K = load_k_diffusion()
    p = EDM()
    M = mixture64()
    D64 = M.bind(p).denoiser
    modes = {"full": D64, "arithmetic": lambda y, t: D64(y.double(), float(t)).to(y.dtype)}
    x = M.bind(p).sample_marginal(args.n // 2, p.t_max, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pairs = {"euler": "k.euler", "heun": "k.heun", "dpmpp_2m": "k.dpmpp_2m", "dpmpp_3m": "k.dpmpp_3m"}
    ks = k_samplers(K) if K else {}
    print(f"float32 vs float64 of the same sampler, 64-D mixture, EDM karras grid, {x.shape[0]} trajectories: "
          "median (mean) |x32 - x64|; ratio = diffedu / k-diffusion")
    for mode, D in modes.items():
        for n in (10, 50, 200):
            ts = time_grid(p, n)
            for name, kn in pairs.items():
                smp = S.DETERMINISTIC[name]
                e = (smp(D, p, x.float(), ts).double() - smp(D, p, x, ts)).norm(dim=1)
                line = f"  {mode:10s} N={n:3d} {name:10s} diffedu {float(e.median()):.2e} ({float(e.mean()):.2e})"
                if K:
                    call = ks[kn][0]
                    ek = (call(k_model(D), x.float(), ts.float()).double() - call(k_model(D), x, ts)).norm(dim=1)
                    line += (f"   k-diffusion {float(ek.median()):.2e} ({float(ek.mean()):.2e})   ratio "
                             f"{float(e.median() / ek.median()):.2f} ({float(e.mean() / ek.mean()):.2f})")
                print(line)


# --- GPU throughput --------------------------------------------------------------------------
def gpu(args):
    if not torch.cuda.is_available():
        print("gpu: no CUDA device; skipped")
        return
    K, Df = load_k_diffusion(), load_diffusers()
    dev = torch.device("cuda")
    p = EDM()
    ts = time_grid(p, 25)  # 25 Heun intervals, the last an Euler step: 49 calls
    g = torch.Generator().manual_seed(0)
    m2 = GaussianMixture(torch.full((8,), 1 / 8), 4 * torch.randn(8, 2, generator=g), 0.1 + torch.rand(8, 2, generator=g))
    A = torch.randn(16, 64, 64, generator=g, dtype=torch.float64) / 8
    m64 = GaussianMixture(torch.full((16,), 1 / 16), torch.randn(16, 64, generator=g, dtype=torch.float64),
                          A @ A.transpose(1, 2) + 0.05 * torch.eye(64, dtype=torch.float64))
    print(f"GPU: {torch.cuda.get_device_name()}, float32, EDM, 25 Heun intervals (49 calls)")
    for label, M, B in (("2-D K=8", m2, 1_000_000), ("64-D K=16 full", m64, 100_000)):
        D = M.bind(p).denoiser
        x = M.bind(p).sample_marginal(B, p.t_max, generator=torch.Generator(dev).manual_seed(0),
                                      dtype=torch.float32, device=dev)
        t_ours = timeit(lambda: S.heun(D, p, x, ts), repeat=3)
        tl = ts.tolist()
        calls = [t for i in range(24) for t in (tl[i], tl[i + 1])] + [tl[24]]  # Heun's 49 calls

        def den_only():
            for t in calls:
                D(x, t)
        t_den = timeit(den_only, repeat=3)
        line = (f"  {label:15s} B={B:8d} diffedu heun {t_ours:.3f} s ({B / t_ours:,.0f} samples/s), "
                f"denoiser alone {t_den:.3f} s, outside the denoiser {max(0.0, 1 - t_den / t_ours):.1%}")
        if K:
            t_k = timeit(lambda: K.sample_heun(k_model(D), x, ts.float().to(dev), disable=True), repeat=3)
            line += f"; k-diffusion heun {t_k:.3f} s (ratio {t_ours / t_k:.2f})"
        if Df:
            dcall = diffusers_samplers(Df)["diffusers.heun"][0]
            t_d = timeit(lambda: dcall(D, x, ts.to(torch.float32)), repeat=3)
            line += f"; diffusers heun {t_d:.3f} s (ratio {t_ours / t_d:.2f})"
        print(line)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["orders", "overhead", "accuracy", "precision", "gpu", "all"])
    ap.add_argument("--n", type=int, default=2000, help="trajectories for accuracy (default 2000)")
    ap.add_argument("--calls", type=lambda v: [int(c) for c in v.split(",")], default=[3, 5, 10],
                    help="denoiser calls for accuracy (default 3,5,10)")
    ap.add_argument("--refit", action="store_true",
                    help="accuracy: fit the optimised grids now (minutes) instead of reading data/few_step_grids.json")
    ap.add_argument("--refit-samplers", default="dpmpp_2m,dpmpp_3m,multistep3",
                    help="samplers whose grids --refit fits (default dpmpp_2m,dpmpp_3m,multistep3)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    ap.add_argument("--steps", type=int, default=100, help="grid steps for the overhead timing")
    ap.add_argument("--repeat", type=int, default=9, help="timing rounds for overhead (best of)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    todo = ["orders", "overhead", "accuracy", "precision", "gpu"] if args.what == "all" else [args.what]
    for w in todo:
        globals()[w](args)


if __name__ == "__main__":
    main()
