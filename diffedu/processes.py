r"""Forward noising processes in one notation.

Every process is a frozen value with data at ``t = 0`` and noise at ``t = t_max``:

    x_t = alpha_t x_0 + sigma_t eps,   eps ~ N(0, I),

with half log-SNR ``lambda_t = log(alpha_t / sigma_t)`` and the linear SDE with the same
marginals, ``dx = f(t) x dt + g(t) dW``, where

    f(t) = alpha'_t / alpha_t,
    g(t)^2 = 2 sigma_t sigma'_t - 2 f(t) sigma_t^2.

All derivatives are written analytically (tests check them against autograd and SymPy).
Methods accept a Python float, a 0-d tensor or a (B,) tensor and return a tensor; a
Python float is computed in float64. See ``docs/notation.md`` and lesson 01.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from ._validate import check_batch, check_generator, check_int, check_positive, check_real

__all__ = ["Process", "VP", "VPCosine", "VE", "EDM", "Linear", "time_grid", "SIGMA_RATIO_MIN"]

#: Default smallest noise level before the final jump to t = 0: the ``t_eps`` of every grid
#: is the time where ``sigma_t / alpha_t`` equals this value (EDM's sigma_min), so lambda is
#: finite there and equal to ``log(500)`` for every process.
SIGMA_RATIO_MIN = 0.002


def _tensor(v, name: str = "lam") -> torch.Tensor:
    """Half log-SNRs as a floating tensor (Python numbers become float64): ``TypeError`` unless a
    real number or a real tensor, ``ValueError`` for NaN (+-inf are the ends t = 0 and t = inf).
    CUDA tensors are not checked for NaN (that would synchronise with the host)."""
    if isinstance(v, torch.Tensor):
        if v.dtype.is_complex or v.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers; got a {v.dtype} tensor")
        t = v if v.is_floating_point() else v.to(torch.float64)
    elif isinstance(v, numbers.Real) and not isinstance(v, bool):
        t = torch.as_tensor(float(v), dtype=torch.float64)
    else:
        raise TypeError(f"{name} must be a real number or a tensor; got {type(v).__name__} {v!r}")
    if t.device.type == "cpu" and bool(torch.isnan(t.detach()).any()):
        raise ValueError(f"{name} must not be NaN; got {v!r}")
    return t


@dataclass(frozen=True)
class Process:
    r"""A forward process ``x_t = alpha_t x_0 + sigma_t eps`` on ``[t_min, t_max]``.

    Subclasses define ``alpha``, ``sigma``, ``d_alpha``, ``d_sigma`` and ``t_of_lam``; the
    rest (``lam``, ``f``, ``g2``, ``snr``) follows from them here, so no code elsewhere
    branches on the process type.
    """

    @property
    def t_min(self) -> float:
        return 0.0

    @property
    def t_max(self) -> float:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def alpha(self, t):
        raise NotImplementedError

    def sigma(self, t):
        raise NotImplementedError

    def d_alpha(self, t):
        raise NotImplementedError

    def d_sigma(self, t):
        raise NotImplementedError

    def t_of_lam(self, lam):
        """Inverse of ``lam``: the time at which ``log(alpha_t / sigma_t) = lam``."""
        raise NotImplementedError

    # --- derived quantities -------------------------------------------------------------
    def lam(self, t):
        r"""Half log-SNR, ``lambda_t = log(alpha_t / sigma_t)`` (``+inf`` at t = 0)."""
        t = self._t(t)
        return torch.log(self.alpha(t)) - torch.log(self.sigma(t))

    def snr(self, t):
        """Signal-to-noise ratio ``alpha_t^2 / sigma_t^2 = exp(2 lambda_t)``."""
        t = self._t(t)
        return (self.alpha(t) / self.sigma(t)) ** 2

    def f(self, t):
        r"""Drift coefficient ``f(t) = alpha'_t / alpha_t`` (the drift vector is ``f(t) x``)."""
        t = self._t(t)
        return self.d_alpha(t) / self.alpha(t)

    def g2(self, t):
        r"""Squared diffusion coefficient ``g^2 = 2 sigma sigma' - 2 f sigma^2``."""
        t = self._t(t)
        s = self.sigma(t)
        return 2 * s * self.d_sigma(t) - 2 * self.f(t) * s**2

    @property
    def t_eps(self) -> float:
        r"""The default last time before a sampler's final jump to 0: where ``sigma_t / alpha_t``
        equals :data:`SIGMA_RATIO_MIN` = 0.002 (EDM's sigma_min), so ``lambda = log 500``.

        Every time grid ends ``..., t_eps, 0`` by default (:func:`time_grid`), and the
        likelihood starts there (:func:`diffedu.likelihood.log_likelihood`).
        """
        return float(self.t_of_lam(math.log(1 / SIGMA_RATIO_MIN)))

    def noise(self, x0, t, *, generator=None):
        r"""The forward process in one draw: ``x_t = alpha_t x0 + sigma_t eps``, eps ~ N(0, I).

        x0: (B, D) floating; t: a float, a 0-d or a (B,) tensor in ``[t_min, t_max]``.
        Returns ``(x_t, eps)``, both (B, D) in x0's dtype and device (the noise is what
        denoising score matching regresses on). ``generator`` draws eps.
        """
        x0 = check_batch(x0, name="x0")
        check_generator(generator, x0.device)
        a, s = self.coefs(t, x0)
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        return a * x0 + s * eps, eps

    def coefs(self, t, x: torch.Tensor, *, positive: bool | str = False, name: str = "t"):
        """``alpha_t, sigma_t`` in x's dtype and device, shaped () or (B, 1) to broadcast with x.

        ``t`` may be a float, a 0-d tensor or a (B,) tensor; it is checked against the range
        (and, with ``positive``, required to be > t_min: ``True`` for distributions whose
        marginal is singular at t = 0, or a string saying why, which the error repeats). x must
        be a floating tensor (its values are not read). The coefficients are computed in float64
        and then cast. ``name``: what the errors call t.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = f"a {x.dtype} tensor" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"x must be a floating torch.Tensor (the coefficients take its dtype); got {got}")
        self.check_t(t, name)
        if positive and not (isinstance(t, torch.Tensor) and t.device.type != "cpu"):
            lo = float(t.detach().min()) if isinstance(t, torch.Tensor) and t.numel() else float(t)
            if lo <= self.t_min:
                why = positive if isinstance(positive, str) else "p_0 has no density (its marginal is singular at t = 0)"
                raise ValueError(f"{name} must be > {self.t_min} here: {why}; got {name} = {lo}. A sampler stops at "
                                 f"process.t_eps = {self.t_eps:.3g} and jumps to t = 0 with the denoiser")
        if isinstance(t, torch.Tensor):
            if t.dim() > 1 or (t.dim() == 1 and (x.dim() == 0 or t.shape[0] != x.shape[0])):
                B = x.shape[0] if x.dim() else "B"
                raise ValueError(
                    f"{name} must be a float, a 0-d tensor or a ({B},) tensor; got shape {tuple(t.shape)}"
                )
            tt = t.to(device=x.device, dtype=torch.float64)  # keeps the graph for d/dt by autograd
        else:
            tt = torch.as_tensor(float(t), dtype=torch.float64, device=x.device)
        a, s = self.alpha(tt).to(x.dtype), self.sigma(tt).to(x.dtype)
        if tt.dim() == 1:
            a, s = a[:, None], s[:, None]
        return a, s

    def _t(self, t) -> torch.Tensor:
        """Times as a floating tensor (Python numbers become float64), checked by :meth:`check_t`."""
        self.check_t(t)
        if isinstance(t, torch.Tensor):
            return t if t.is_floating_point() else t.to(torch.float64)
        return torch.as_tensor(float(t), dtype=torch.float64)

    def check_t(self, t, name: str = "t") -> None:
        """``TypeError`` unless ``t`` is a real number or a real tensor; ``ValueError`` when it is
        NaN or outside ``[t_min, t_max]``.

        Below ``t_min`` nothing is tolerated (sigma would be NaN there); above ``t_max`` a float32
        rounding is (``float32(0.999) > 0.999`` is still t_max). CUDA tensors are type-checked but
        not range-checked (that would synchronise with the host)."""
        if isinstance(t, torch.Tensor):
            if t.dtype.is_complex or t.dtype == torch.bool:
                raise TypeError(f"{name} must hold real times; got a {t.dtype} tensor")
            if t.device.type != "cpu" or t.numel() == 0:
                return
            t = t.detach()  # a t that requires grad (differentiating in t) is checked silently
            lo, hi = float(t.min()), float(t.max())
            bad = bool(torch.isnan(t).any())
        elif isinstance(t, numbers.Real) and not isinstance(t, bool):
            lo = hi = float(t)
            bad = math.isnan(lo)
        else:
            raise TypeError(f"{name} must be a real number or a tensor of times; got {type(t).__name__} {t!r}")
        # a float32 t_max (float32(0.999) > 0.999), even cast back to float64, is still t_max
        tol = 4 * torch.finfo(torch.float32).eps * max(1.0, self.t_max)
        if bad or lo < self.t_min or hi > self.t_max + tol:
            raise ValueError(
                f"{name} must lie in [{self.t_min}, {self.t_max}] for {self!r}; "
                f"got values in [{lo}, {hi}]"
            )


def _positive(name, value):
    check_positive(value, name)


@dataclass(frozen=True)
class VP(Process):
    r"""Variance-preserving process with linear beta (DDPM / Song et al. 2021).

    ``beta(t) = beta_min + (beta_max - beta_min) t``, ``alpha_t = exp(-1/2 int_0^t beta)``,
    ``sigma_t = sqrt(1 - alpha_t^2)``, ``t`` in ``[0, 1]``; then ``f = -beta/2``, ``g^2 = beta``.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self):
        _positive("beta_min", self.beta_min)
        _positive("beta_max", self.beta_max)
        if self.beta_max < self.beta_min:
            raise ValueError(f"beta_max must be >= beta_min; got {self.beta_max} < {self.beta_min}")

    @property
    def t_max(self) -> float:
        return 1.0

    def beta(self, t):
        return self.beta_min + (self.beta_max - self.beta_min) * self._t(t)

    def _B(self, t):  # int_0^t beta
        t = self._t(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha(self, t):
        return torch.exp(-0.5 * self._B(t))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(-self._B(t)))

    def d_alpha(self, t):
        return -0.5 * self.beta(t) * self.alpha(t)

    def d_sigma(self, t):
        t = self._t(t)
        return 0.5 * self.beta(t) * self.alpha(t) ** 2 / self.sigma(t)

    def g2(self, t):
        # the generic 2 sigma sigma' - 2 f sigma^2 is 0 * inf = NaN at t = 0; the limit is beta
        return self.beta(t)

    def lam(self, t):
        B = self._B(t)
        return -0.5 * B - 0.5 * torch.log(-torch.expm1(-B))

    def t_of_lam(self, lam):
        lam = _tensor(lam)
        B = torch.nn.functional.softplus(-2 * lam)  # alpha^2 = sigmoid(2 lam)
        db = self.beta_max - self.beta_min
        # root of (db/2) t^2 + beta_min t - B = 0, written without cancellation
        return 2 * B / (self.beta_min + torch.sqrt(self.beta_min**2 + 2 * db * B))


@dataclass(frozen=True)
class VPCosine(Process):
    r"""Variance-preserving cosine schedule (Nichol and Dhariwal 2021), ``s = 0.008``.

    ``alpha_t = cos(pi/2 (t+s)/(1+s)) / cos(pi/2 s/(1+s))``, ``sigma_t = sqrt(1 - alpha_t^2)``.
    alpha reaches 0 at t = 1, where lambda, f and g^2 diverge, so ``t_max`` defaults to 0.9946
    (lambda about -4.78; DPM-Solver uses the same end time for this schedule).
    """

    s: float = 0.008
    t_end: float = 0.9946

    def __post_init__(self):
        _positive("s", self.s)
        check_real(self.t_end, "t_end (where alpha_t > 0)", minimum=0.0, maximum=1.0, strict=True)

    @property
    def t_max(self) -> float:
        return self.t_end

    def _arg(self, t):
        return 0.5 * math.pi * (self._t(t) + self.s) / (1 + self.s)

    @property
    def _c0(self):
        return math.cos(0.5 * math.pi * self.s / (1 + self.s))

    def alpha(self, t):
        return torch.cos(self._arg(t)) / self._c0

    def sigma(self, t):
        # 1 - alpha^2 = (c0^2 - cos^2 a) / c0^2 = sin(a + a0) sin(a - a0) / c0^2, with a - a0 = pi/2 t/(1+s):
        # no cancellation near t = 0, where 1 - alpha^2 in float32 rounds to 0 below t ~ 1e-5
        t = self._t(t)
        a0 = 0.5 * math.pi * self.s / (1 + self.s)
        return torch.sqrt(torch.sin(self._arg(t) + a0) * torch.sin(0.5 * math.pi * t / (1 + self.s))) / self._c0

    def d_alpha(self, t):
        return -0.5 * math.pi / (1 + self.s) * torch.sin(self._arg(t)) / self._c0

    def d_sigma(self, t):
        t = self._t(t)
        return -self.alpha(t) * self.d_alpha(t) / self.sigma(t)

    def g2(self, t):
        # alpha^2 + sigma^2 = 1 gives g^2 = -2 f, finite at t = 0 (the generic form is 0 * inf there)
        return -2 * self.f(t)

    def t_of_lam(self, lam):
        alpha = torch.sqrt(torch.sigmoid(2 * _tensor(lam)))
        return (1 + self.s) * 2 / math.pi * torch.arccos(alpha * self._c0) - self.s


@dataclass(frozen=True)
class VE(Process):
    r"""Variance-exploding process (Song et al. 2021), started at the data.

    ``alpha_t = 1``, ``sigma_t = sigma_min sqrt(r^(2t) - 1)`` with ``r = sigma_max / sigma_min``,
    so ``sigma_0 = 0`` exactly; ``f = 0``, ``g^2 = 2 sigma_min^2 r^(2t) log r``.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def __post_init__(self):
        _positive("sigma_min", self.sigma_min)
        _positive("sigma_max", self.sigma_max)
        if self.sigma_max <= self.sigma_min:
            raise ValueError(
                f"sigma_max must exceed sigma_min; got {self.sigma_max} <= {self.sigma_min}"
            )

    @property
    def t_max(self) -> float:
        return 1.0

    @property
    def _logr(self):
        return math.log(self.sigma_max / self.sigma_min)

    def alpha(self, t):
        return torch.ones_like(self._t(t))

    def sigma(self, t):
        return self.sigma_min * torch.sqrt(torch.expm1(2 * self._logr * self._t(t)))

    def d_alpha(self, t):
        return torch.zeros_like(self._t(t))

    def d_sigma(self, t):
        t = self._t(t)
        return self.sigma_min**2 * self._logr * torch.exp(2 * self._logr * t) / self.sigma(t)

    def g2(self, t):
        return 2 * self.sigma_min**2 * self._logr * torch.exp(2 * self._logr * self._t(t))

    def lam(self, t):
        return -torch.log(self.sigma(t))

    def t_of_lam(self, lam):
        ratio = torch.exp(-_tensor(lam)) / self.sigma_min
        return torch.log1p(ratio**2) / (2 * self._logr)


@dataclass(frozen=True)
class EDM(Process):
    r"""EDM ("sigma is time", Karras et al. 2022): ``alpha_t = 1``, ``sigma_t = t``.

    ``f = 0``, ``g^2 = 2 t``, ``lambda_t = -log t``; ``t`` in ``[0, sigma_max]``.
    """

    sigma_max: float = 80.0

    def __post_init__(self):
        _positive("sigma_max", self.sigma_max)

    @property
    def t_max(self) -> float:
        return float(self.sigma_max)

    def alpha(self, t):
        return torch.ones_like(self._t(t))

    def sigma(self, t):
        return self._t(t).clone()

    def d_alpha(self, t):
        return torch.zeros_like(self._t(t))

    def d_sigma(self, t):
        return torch.ones_like(self._t(t))

    def g2(self, t):
        return 2 * self._t(t)

    def lam(self, t):
        return -torch.log(self._t(t))

    def t_of_lam(self, lam):
        return torch.exp(-_tensor(lam))


@dataclass(frozen=True)
class Linear(Process):
    r"""Linear interpolant (rectified flow) in our time direction: ``alpha_t = 1 - t``, ``sigma_t = t``.

    Rectified-flow papers put data at t = 1 and noise at t = 0; here t -> 1 - t. ``f = -1/(1-t)``
    and ``g^2 = 2 t / (1 - t)`` blow up at t = 1, so ``t_max`` (default 0.999) stays below 1;
    a flow sampler may use the velocity ``alpha' D + sigma' eps_hat``, which is finite there.
    """

    t_end: float = 0.999

    def __post_init__(self):
        check_real(self.t_end, "t_end", minimum=0.0, maximum=1.0, strict=True)

    @property
    def t_max(self) -> float:
        return self.t_end

    def alpha(self, t):
        return 1 - self._t(t)

    def sigma(self, t):
        return self._t(t).clone()

    def d_alpha(self, t):
        return -torch.ones_like(self._t(t))

    def d_sigma(self, t):
        return torch.ones_like(self._t(t))

    def g2(self, t):
        t = self._t(t)
        return 2 * t / (1 - t)

    def lam(self, t):
        t = self._t(t)
        return torch.log1p(-t) - torch.log(t)

    def t_of_lam(self, lam):
        return torch.sigmoid(-_tensor(lam))


_SPACINGS = ("uniform", "lambda", "karras")


def time_grid(process: Process, n: int, spacing: str = "karras", *, t_start: float | None = None,
              t_eps: float | None = None, rho: float = 7.0) -> torch.Tensor:
    r"""Decreasing time grid of ``n + 1`` float64 times from ``t_start`` to 0.

    The first ``n`` points run from ``t_start`` (default ``process.t_max``; a later start is
    for teleportation, which skips the first steps) down to ``t_eps`` (default
    :attr:`Process.t_eps`, where ``sigma_t / alpha_t = 0.002``), and the last point is exactly 0:
    the explicit final jump. For ``n = 1`` the grid is ``[t_start, 0]``.

    spacing:
      * ``"uniform"``: uniform in t;
      * ``"lambda"``: uniform in the half log-SNR (DPM-Solver's "logSNR" grid);
      * ``"karras"``: uniform in ``(sigma/alpha)^(1/rho)`` with ``rho = 7`` (Karras et al. 2022,
        eq. 5, applied to the EDM-equivalent noise level ``sigma_t / alpha_t = exp(-lambda_t)``).
    """
    if not isinstance(process, Process):
        raise TypeError(f"process must be a diffedu Process (VP(), EDM(), ...); got {type(process).__name__}")
    n = check_int(n, "n", minimum=1)
    if spacing not in _SPACINGS:
        raise ValueError(f"spacing must be one of {_SPACINGS}; got {spacing!r}")
    rho = check_positive(rho, "rho")
    t_hi = float(process.t_max) if t_start is None else check_real(t_start, "t_start")
    t_eps = process.t_eps if t_eps is None else check_real(t_eps, "t_eps")
    if not (process.t_min < t_eps < float(process.t_max)):
        raise ValueError(f"t_eps must lie in ({process.t_min}, {process.t_max}); got {t_eps}")
    if not (t_eps < t_hi <= float(process.t_max)):
        raise ValueError(f"t_start must lie in (t_eps = {t_eps:.6g}, t_max = {process.t_max}]; got {t_hi}")
    if n == 1:
        return torch.tensor([t_hi, 0.0], dtype=torch.float64)
    u = torch.linspace(0, 1, n, dtype=torch.float64)
    if spacing == "uniform":
        ts = t_hi + u * (t_eps - t_hi)
    else:
        lam_hi, lam_lo = process.lam(t_hi), process.lam(t_eps)
        if spacing == "lambda":
            lam = lam_hi + u * (lam_lo - lam_hi)
        else:
            s_hi, s_lo = torch.exp(-lam_hi), torch.exp(-lam_lo)
            s = (s_hi ** (1 / rho) + u * (s_lo ** (1 / rho) - s_hi ** (1 / rho))) ** rho
            lam = -torch.log(s)
        ts = process.t_of_lam(lam)
    ts[0], ts[-1] = t_hi, t_eps  # remove round-off at the ends
    return torch.cat([ts, ts.new_zeros(1)])
