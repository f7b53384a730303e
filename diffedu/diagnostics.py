r"""A report card for any score model, measured against a distribution whose score is exact.

"Is my model wrong, or just undertrained?" With a reference distribution from the zoo (a
Gaussian mixture, a low-rank mixture, a training set's empirical law) the exact score is known at
every noise level, so a model can be measured where it is wrong, not only by its loss:

    from diffedu.diagnostics import diagnose
    report = diagnose(net.denoiser, process, reference, train=train_set)
    print(report.summary())

Per noise level (``times``, on a ``sigma_t / alpha_t`` axis):

* ``score_error``: the p_t-weighted relative error ``sqrt(E|s_model - s|^2 / E|s|^2)``
  (:func:`diffedu.metrics.relative_score_error`); 0 for the exact model;
* ``fp_residual``: the size of the score Fokker-Planck residual (:func:`diffedu.fokker_planck.residual_rms`):
  0 exactly when the field is the score of *some* diffusion family, whatever its start law;
* ``asymmetry``: the median Jacobian asymmetry ``||J - J^T|| / ||J||`` (:mod:`diffedu.conservativity`):
  0 for a gradient field, so it names a non-conservative part (exact for D <= 64; above, the
  Jacobian-vector-product estimate :func:`~diffedu.conservativity.asymmetry_hutchinson` with
  ``n_probes`` probes, two backward passes per probe whatever D; the residual is computed for D <= 64 only);
* ``gaussian_ev``: the fraction of the model's score explained by the score of the Gaussian with
  the reference's mean and covariance (:func:`diffedu.gaussian_approx.explained_variance`): a
  property of the data for an exact model, near 1 at high noise (Wang and Vastola 2024).

For the model's samples (drawn with ``sampler`` from exact p_T draws), each metric with its noise
floor, the value the same metric takes on a fresh *reference* sample of the same size (what
sampling noise alone gives; its mean and spread over ``repeats`` samples): ``mmd2`` (unbiased, Gaussian kernel, any dimension), ``w2`` (2-D
only: in more dimensions W2 between samples is dominated by its floor), ``mean_error`` and
``cov_error`` (:func:`diffedu.metrics.moment_errors`), ``mode_tv`` (for a mixture: total variation
between the component frequencies, each sample assigned to its most responsible component),
``log_density`` (the mean exact ``log p_{t_eps}`` of the samples minus that of reference samples:
negative when samples fall where the data is not), and with ``train`` the ``memorised`` fraction
(1/3 rule, :mod:`diffedu.memorisation`) whose floor is the fraction of reference samples counted
memorised against the same training set (not 0: see lesson 06).

**Reading a report (the rule the tests check).** The exact model has score errors, asymmetry
and residual at rounding level and every sample metric within its floor. A defect shows in
``score_error`` and in the metric of its kind: a non-gradient part in ``asymmetry``; a field
that is not the score of any diffusion family in ``fp_residual``; a model that copies its
training set in ``memorised`` above its floor. Sample metrics leave their floors only when the
defect changes the law the sampler produces: a gauge field (a rotation along the level sets of
p_t) has a large score error and asymmetry and samples exactly (lesson 12).

**On the digits**, where the only exact score is the training set's own (:class:`~diffedu.Empirical`),
a reference that *is* the training set makes ``score_error`` an error against the memorising
score: a model that generalises is "wrong" by it at small noise, and that is the point; the
memorised fraction says which of the two the model does. Lessons use reduced sizes or a cached
report to stay within their time budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ._core import Distribution, as_times, check_batch, check_callable, check_int, check_process, check_real
from .conservativity import asymmetry, asymmetry_hutchinson
from .flows import score_from_denoiser
from .fokker_planck import residual_rms
from .gaussian import Gaussian
from .gaussian_approx import explained_variance
from .memorisation import memorised_fraction
from .metrics import median_bandwidth, mmd2, moment_errors, relative_score_error, w2
from .mixtures import GaussianMixture
from .processes import time_grid

__all__ = ["Report", "diagnose", "NOISE_LEVELS"]

#: Default noise levels ``sigma_t / alpha_t`` of a report.
NOISE_LEVELS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Report:
    r"""What :func:`diagnose` measured. Per time (T,): ``times``, ``noise`` (sigma/alpha),
    ``score_error``, ``fp_residual``, ``asymmetry`` (NaN when not computed), ``gaussian_ev``.
    ``samples``: ``{metric: (value, floor mean, floor sd)}``, the floor over fresh reference samples;
    ``seconds``: the time the report took."""

    times: torch.Tensor
    noise: torch.Tensor
    score_error: torch.Tensor
    fp_residual: torch.Tensor
    asymmetry: torch.Tensor
    gaussian_ev: torch.Tensor
    samples: dict = field(default_factory=dict)
    dim: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """A short table: the per-noise-level errors, then each sample metric next to its floor."""
        lines = [f"score model report (D = {self.dim})",
                 "sigma/alpha  score error  FP residual  asymmetry  Gaussian EV"]
        for k in range(len(self.times)):
            asym = "        -" if math.isnan(float(self.asymmetry[k])) else f"{float(self.asymmetry[k]):9.2e}"
            lines.append(f"{float(self.noise[k]):11.3g}  {float(self.score_error[k]):11.3g}  "
                         f"{float(self.fp_residual[k]):11.3g}  {asym}  {float(self.gaussian_ev[k]):11.3f}")
        if self.samples:
            lines.append("samples      value   floor (fresh reference samples: mean +- sd)")
            for name in self.samples:
                v, fm, fs = self.samples[name]
                flag = "  <- beyond its floor" if self.beyond_floor(name) else ""
                lines.append(f"{name:11s} {v:9.3g}  {fm:9.3g} +- {fs:.2g}{flag}")
        return "\n".join(lines)

    def beyond_floor(self, name: str, k: float = 3.0) -> bool:
        """Whether sample metric ``name`` lies more than ``k`` floor standard deviations from the
        floor's mean (in the direction of worse, and either way for ``log_density``)."""
        if name not in self.samples:
            raise ValueError(f"name must be one of the report's sample metrics {tuple(self.samples)}; got {name!r}")
        k = check_real(k, "k", minimum=0.0)
        v, fm, fs = self.samples[name]
        if name == "log_density":
            return abs(v - fm) > k * fs
        return v > fm + k * fs


def _model_dtype(D, default):
    """The dtype of the network behind D (a bound method of an nn.Module), else ``default``."""
    owner = getattr(D, "__self__", D)
    if isinstance(owner, torch.nn.Module):
        p = next(owner.parameters(), None)
        if p is not None:
            return p.dtype
    return default


def _sample_metrics(x, reference, process, train, repeats, generator):
    """``{name: (value, floor_mean, floor_sd)}``: each metric of the model samples x, and its mean and
    spread over ``repeats`` fresh reference samples of the same size (the sampling noise alone)."""
    n, dim = x.shape
    ref = reference.sample(n, generator=generator, dtype=torch.float64)
    h = median_bandwidth(ref, x)
    m, C = reference.mean.double(), reference.cov.double()
    t_eps = process.t_eps
    metrics = {"mmd2": lambda z: mmd2(z, ref, bandwidth=h)}
    if dim == 2:
        metrics["w2"] = lambda z: w2(z, ref)
    metrics["mean_error"] = lambda z: moment_errors(z, m, C)[0]
    metrics["cov_error"] = lambda z: moment_errors(z, m, C)[1]
    if isinstance(reference, GaussianMixture) and reference.K > 1:
        def mode_tv(z):
            k = reference.responsibilities(z, t_eps, process).argmax(1)
            freq = torch.bincount(k, minlength=reference.K).double() / z.shape[0]
            return 0.5 * float((freq - reference.weights).abs().sum())
        metrics["mode_tv"] = mode_tv
    lp_ref = float(reference.log_prob(ref, t_eps, process).mean())
    metrics["log_density"] = lambda z: float(reference.log_prob(z, t_eps, process).mean()) - lp_ref
    if train is not None:
        metrics["memorised"] = lambda z: memorised_fraction(z, train)
    fresh = [reference.sample(n, generator=generator, dtype=torch.float64) for _ in range(repeats)]
    out = {}
    for name, f in metrics.items():
        floor = torch.tensor([f(z) for z in fresh], dtype=torch.float64)
        out[name] = (f(x), float(floor.mean()), float(floor.std()) if repeats > 1 else float("nan"))
    return out


def diagnose(D, process, reference: Distribution, *, train=None, times=None, n: int = 1000,
             n_jacobian: int = 32, n_residual: int | None = None, n_samples: int = 1000, steps: int = 100,
             repeats: int = 5, sampler=None, n_probes: int = 8,
             generator: torch.Generator | None = None) -> Report:
    r"""Measure a score model against a reference distribution with an exact score: a :class:`Report`.

    D: the model as a denoiser ``D(x, t) -> (B, D)`` (:mod:`diffedu.flows` converts eps-, score-
    and velocity-models; a network's ``.denoiser`` is evaluated in its own dtype). process: its
    :class:`~diffedu.processes.Process`. reference: the distribution it should have learned, from
    the zoo (``sample``, ``sample_marginal``, ``score``, ``log_prob``, ``mean``, ``cov``).
    train: the (M, D) training set the model saw (for the memorised fraction), or None.
    times: the times of the per-noise-level rows (default: where sigma/alpha is each of
    :data:`NOISE_LEVELS` that the process reaches). n: points per time for the score error and
    the explained variance; n_jacobian: points per time for the asymmetry; n_residual: points per
    time for the FP residual (default 128, or 32 above D = 8); both take D backward passes per
    point and are computed for D <= 64 (NaN above: an exact divergence is too slow there and
    Hutchinson's noise would hide the exact model's zero); n_samples: model samples, drawn with ``sampler`` (default Heun) on
    ``time_grid(process, steps)`` from exact p_T draws (``n_samples=0`` skips every sample metric);
    repeats: fresh reference samples whose metrics give each floor's mean and spread (a metric is
    flagged beyond its floor at 3 standard deviations, :meth:`Report.beyond_floor`). Above D = 64 the
    asymmetry is the Jacobian-vector-product estimate with ``n_probes`` Rademacher probes.
    See the module docstring for what each number means and how to read them together.
    """
    import time

    from .samplers import heun

    t0 = time.perf_counter()
    check_callable(D, "D", "a denoiser D(x, t) -> (B, D)")
    process = check_process(process)
    if not isinstance(reference, Distribution):
        raise TypeError(f"reference must be a diffedu distribution with an exact score (Gaussian, "
                        f"GaussianMixture, LowRankMixture, Empirical); got {type(reference).__name__}")
    n, n_jacobian = check_int(n, "n", minimum=2), check_int(n_jacobian, "n_jacobian", minimum=1)
    n_samples = check_int(n_samples, "n_samples", minimum=0)
    if n_residual is not None:
        n_residual = check_int(n_residual, "n_residual", minimum=1)
    steps, repeats = check_int(steps, "steps", minimum=1), check_int(repeats, "repeats", minimum=2)
    n_probes = check_int(n_probes, "n_probes", minimum=1)
    sampler = heun if sampler is None else check_callable(sampler, "sampler", "a sampler(D, process, x, ts)")
    dim = reference.dim
    if train is not None:
        train = check_batch(train, dim, name="train")
    if times is None:
        lo, hi = float(process.lam(process.t_max)), float(process.lam(process.t_eps))
        times = [float(process.t_of_lam(-math.log(s))) for s in NOISE_LEVELS if lo <= -math.log(s) <= hi]
    ts = as_times(times, "times")
    if not bool(torch.isfinite(ts).all()) or (ts <= process.t_min).any() or (ts > process.t_max).any():
        raise ValueError(f"times must be a non-empty sequence in ({process.t_min}, {process.t_max}]; got {times!r}")
    dtype = _model_dtype(D, torch.float64)

    def model_D(x, t):
        d = D(x.to(dtype), t)
        if not isinstance(d, torch.Tensor) or d.shape != x.shape:  # a shape check only: no sync with a GPU
            got = tuple(d.shape) if isinstance(d, torch.Tensor) else type(d).__name__
            raise ValueError(f"D must return a tensor of x's shape {tuple(x.shape)}; got {got}")
        return d.to(x.dtype)

    score = score_from_denoiser(model_D, process)
    err = relative_score_error(score, reference, process, ts, n=n, generator=generator)
    res = torch.full((len(ts),), float("nan"), dtype=torch.float64)
    asym = torch.full((len(ts),), float("nan"), dtype=torch.float64)
    if dim <= 64:  # both need D backward passes per point (Hutchinson's noise would hide the floor)
        m = n_residual if n_residual is not None else (128 if dim <= 8 else 32)
        res = residual_rms(score, process, reference.sample, ts, n=m, method="exact", generator=generator)
        for k, t in enumerate(ts.tolist()):
            x = reference.sample_marginal(n_jacobian, t, process, generator=generator, dtype=torch.float64)
            asym[k] = float(asymmetry(score, x, t).median())
    else:  # high dimension: the Hutchinson / JVP estimate of the same ratio
        for k, t in enumerate(ts.tolist()):
            x = reference.sample_marginal(n_jacobian, t, process, generator=generator, dtype=torch.float64)
            asym[k] = float(asymmetry_hutchinson(score, x, t, n_probes=n_probes, generator=generator).median())
    G = Gaussian(reference.mean.double(), reference.cov.double()).bind(process)
    ev = explained_variance(lambda x, t: score(x, t).detach(), G.score, reference, process, ts, n=n,
                            generator=generator)
    samples = {}
    if n_samples:
        xT = reference.sample_marginal(n_samples, process.t_max, process, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            x = sampler(model_D, process, xT, time_grid(process, steps))
        samples = _sample_metrics(x, reference, process, train, repeats, generator)
    noise = torch.exp(-process.lam(ts))
    return Report(ts, noise, err, res, asym, ev, samples, dim, time.perf_counter() - t0)
