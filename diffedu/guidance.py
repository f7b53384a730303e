r"""Conditional generation by guidance: class-conditional mixtures, the exact classifier, and the
guided denoisers that every sampler accepts.

A :class:`ClassConditional` is a Gaussian mixture whose components carry class labels, so

    p(x) = sum_c pi_c p(x | c),   p(x | c) = sum_{k in c} (w_k / pi_c) N(mu_k, Sigma_k),

and every noisy marginal is exact, including the **exact classifier** at every noise level,
``p_t(c | x) = sum_{k in c} r_k(x, t)`` (the mixture's responsibilities summed over the class).

**Classifier guidance** (Dhariwal and Nichol 2021, eq. 10 and Alg. 1 as a score) adds
``w grad_x log p_t(c | x)`` to the score; **classifier-free guidance** (Ho and Salimans 2022,
eq. 6) mixes a conditional and an unconditional model, ``s_w = (1 - w) s + w s_c``. By Bayes'
rule ``grad log p_t(c | x) = s_c - s`` exactly, so with exact quantities the two are **the same
field at the same weight** (``tests/test_guidance.py`` checks it: autograd of the classifier
against the difference of two closed-form scores). Written as denoisers (Tweedie's formula is
affine in the score), the guided field is

    D_w = D + w (sigma_t^2 / alpha_t) grad_x log p_t(c | x) = (1 - w) D + w D_c.

For w != 0, 1 it is the score of ``q_t ∝ p_t(x | c)^w p_t(x)^(1 - w)`` at each t, but these q_t
are not the noisy marginals of one distribution (noising does not commute with powers), so the
PF-ODE and the reverse SDE driven by it sample **different** laws, and neither is the "tilted"
target ``q_0 ∝ p(x | c)^w p(x)^(1 - w)``. :func:`tilted_sample` draws q_0 exactly and
:func:`tilted_density_grid` computes it by quadrature in 2-D, to measure the gap (lesson 15).

The **guidance interval** (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval
improves sample and distribution quality in diffusion models", Sec. 3) applies the weight only
for t in ``[t_lo, t_hi]`` and uses the conditional model (w = 1) elsewhere.
"""

from __future__ import annotations

import math

import torch

from ._core import (
    as_param,
    check_batch,
    check_callable,
    check_int,
    check_n,
    check_process,
    check_real,
    coefs,
    resolve_device,
)
from .gaussian import Gaussian
from .mixtures import GaussianMixture
from .processes import VP

__all__ = [
    "ClassConditional",
    "classifier_free_guidance",
    "classifier_guidance",
    "tilted_density_grid",
    "tilted_gaussian",
    "tilted_log_prob",
    "tilted_sample",
]


class ClassConditional:
    r"""A :class:`~diffedu.mixtures.GaussianMixture` whose components carry class labels.

    mixture: the marginal ``p(x)`` (K components); labels: (K,) integers in ``0..C-1``, every
    class used at least once. ``prior[c] = pi_c = sum_{k in c} w_k``; :meth:`given` is
    ``p(x | c)``; :meth:`log_classifier` is the exact ``log p_t(c | x)`` at every noise level.
    """

    def __init__(self, mixture, labels):
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a diffedu GaussianMixture; got {type(mixture).__name__}")
        lab = as_param(labels, "labels", (mixture.K,))
        if (lab != lab.round()).any() or (lab < 0).any():
            raise ValueError(f"labels must be non-negative integers (one per component); got {labels!r}")
        lab = lab.long()
        C = int(lab.max()) + 1
        if torch.bincount(lab, minlength=C).min() == 0:
            raise ValueError(f"labels must use every class 0..{C - 1} at least once; got {lab.tolist()}")
        self.mixture, self.labels, self.n_classes = mixture, lab, C
        self.dim = mixture.dim
        #: (K, C) one-hot: which class each component belongs to
        self._onehot = torch.nn.functional.one_hot(lab, C).to(torch.float64)

    def __repr__(self):
        return f"ClassConditional(K={self.mixture.K}, classes={self.n_classes}, dim={self.dim})"

    @property
    def prior(self) -> torch.Tensor:
        """Class probabilities ``pi_c``: (C,) float64."""
        return self.mixture.weights @ self._onehot

    def _class(self, c) -> int:
        return check_int(c, "c", minimum=0, maximum=self.n_classes - 1)

    def given(self, c) -> GaussianMixture:
        """``p(x | c)``: the components of class c with weights ``w_k / pi_c``."""
        k = self.labels == self._class(c)
        w = self.mixture.weights[k]
        return GaussianMixture(w / w.sum(), self.mixture.means[k], self.mixture.covs[k])

    def log_classifier(self, x, t, process) -> torch.Tensor:
        r"""``log p_t(c | x)`` for every class: (B, C), in x's dtype.

        ``p_t(c | x) = sum_{k in c} w_k N_k(x) / sum_k w_k N_k(x)`` with
        ``N_k = N(alpha_t mu_k, alpha_t^2 Sigma_k + sigma_t^2 I)``, by log-sum-exp (no underflow
        where one class dominates). Differentiable in x (classifier guidance takes its gradient).
        """
        m = self.mixture
        x = check_batch(x, self.dim)
        a, s = coefs(process, t, x, positive=m._c.singular)
        logits = torch.log_softmax(m._logw_for(x) + m._c.log_normal(x, a, s), dim=1)      # (B, K)
        mask = self._onehot.to(device=x.device, dtype=x.dtype)
        return torch.logsumexp(logits[:, :, None] + torch.log(mask)[None], dim=1)          # (B, C)

    def classifier(self, x, t, process) -> torch.Tensor:
        """``p_t(c | x)``: (B, C), rows summing to 1."""
        return self.log_classifier(x, t, process).exp()

    def sample(self, n, *, generator=None, dtype=None, device=None):
        """n draws of p(x) and their classes: ((n, D), (n,) long)."""
        x, k = self.mixture.sample_with_labels(n, generator=generator, dtype=dtype, device=device)
        return x, self.labels.to(k.device)[k]


def _interval(interval):
    if interval is None:
        return None
    if isinstance(interval, (str, bytes)) or not hasattr(interval, "__len__") or len(interval) != 2:
        raise TypeError(f"interval must be None or a pair (t_lo, t_hi); got {interval!r}")
    lo, hi = check_real(interval[0], "interval (t_lo)"), check_real(interval[1], "interval (t_hi)")
    if not lo <= hi:
        raise ValueError(f"interval must have t_lo <= t_hi; got {interval!r}")
    return lo, hi


def _weight(w, interval, t, x):
    """The weight at time t: w inside the interval (or everywhere), 1 outside; a float or (B, 1)."""
    if interval is None:
        return w
    lo, hi = interval
    if isinstance(t, torch.Tensor) and t.dim() == 1:
        inside = (t >= lo) & (t <= hi)
        return torch.where(inside, w, 1.0).to(device=x.device, dtype=x.dtype)[:, None]
    tf = float(t)
    return w if lo <= tf <= hi else 1.0


def classifier_free_guidance(D_cond, D_uncond, w, *, interval=None):
    r"""The classifier-free guided denoiser ``D_w = D_uncond + w (D_cond - D_uncond)``: a callable (x, t).

    Ho and Salimans (2022), eq. 6, written for denoisers (their ``(1 + w')`` is our w: w = 0 is
    the unconditional model, w = 1 the conditional one, w > 1 guides). D_cond, D_uncond:
    denoisers ``(x, t) -> (B, D)``. ``interval=(t_lo, t_hi)`` applies w only there and w = 1
    (the conditional model) elsewhere (Kynkäänniemi et al. 2024, eq. 2). The result is a denoiser
    for any sampler of :mod:`diffedu.samplers`; it is not the denoiser of any distribution for
    w != 0, 1 (module docstring).
    """
    check_callable(D_cond, "D_cond", "a denoiser D(x, t) -> (B, D)")
    check_callable(D_uncond, "D_uncond", "a denoiser D(x, t) -> (B, D)")
    w = check_real(w, "w")
    interval = _interval(interval)

    def guided(x, t):
        d_u = D_uncond(x, t)
        return d_u + _weight(w, interval, t, x) * (D_cond(x, t) - d_u)
    return guided


def classifier_guidance(D, log_classifier, process, w, *, interval=None):
    r"""The classifier-guided denoiser ``D_w = D + w (sigma_t^2 / alpha_t) grad_x log p_t(c | x)``.

    Dhariwal and Nichol (2021), eq. 10 (their scale s is our w), as a score:
    ``s_w = s + w grad log p_t(c | x)``, turned into a denoiser by Tweedie's formula
    ``D = (x + sigma^2 s) / alpha``. log_classifier: ``(x, t) -> (B,)``, the log-probability of the
    wanted class at time t, differentiable in x (its gradient is taken by autograd, also inside
    ``torch.no_grad``). ``interval`` as in :func:`classifier_free_guidance` (w = 1 outside). With
    the exact classifier and exact denoisers this equals classifier-free guidance at the same w.
    """
    check_callable(D, "D", "a denoiser D(x, t) -> (B, D)")
    check_callable(log_classifier, "log_classifier", "a function (x, t) -> (B,) log p_t(c | x)")
    process = check_process(process)
    w = check_real(w, "w")
    interval = _interval(interval)

    def guided(x, t):
        a, s = coefs(process, t, x, positive="guidance divides by alpha_t and needs sigma_t > 0")
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            lp = log_classifier(xg, t)
            if not isinstance(lp, torch.Tensor) or lp.shape != (x.shape[0],):
                got = tuple(lp.shape) if isinstance(lp, torch.Tensor) else type(lp).__name__
                raise ValueError(f"log_classifier must return a tensor of shape ({x.shape[0]},); got {got}")
            grad, = torch.autograd.grad(lp.sum(), xg)
        return D(x, t) + _weight(w, interval, t, x) * (s**2 / a) * grad.to(x.dtype)
    return guided


# --- the tilted target q_0 ∝ p(x|c)^w p(x)^(1-w) ------------------------------------------------
def _vp():
    """Any process will do at t = 0 (alpha = 1, sigma = 0)."""
    return VP()


def _at_zero(model, x):
    """``(log p(x | c) for every c (B, C), log p(x) (B,))`` at t = 0."""
    p = _vp()
    log_px = model.mixture.log_prob(x, 0.0, p)
    return model.log_classifier(x, 0.0, p) + log_px[:, None] - torch.log(model.prior).to(x)[None], log_px


def _check_model(model, c, w):
    if not isinstance(model, ClassConditional):
        raise TypeError(f"model must be a diffedu.guidance.ClassConditional; got {type(model).__name__}")
    if model.mixture._c.singular:
        raise ValueError("model must have non-singular covariances: the tilted density needs p_0 to have one")
    return model._class(c), check_real(w, "w", minimum=0.0)


def tilted_log_prob(model, c, w, x) -> torch.Tensor:
    r"""The unnormalised log-density of the tilted target, ``w log p(x | c) + (1 - w) log p(x)``: (B,).

    ``q_0 ∝ p(x | c)^w p(x)^(1 - w)`` is what guidance at weight w is meant to sample (the
    guided score at t = 0 is its score). Equivalently ``q_0 ∝ p(x | c) p(c | x)^(w - 1)``.
    model: a :class:`ClassConditional` with non-singular covariances; w >= 0; x: (B, D).
    """
    c, w = _check_model(model, c, w)
    x = check_batch(x, model.dim)
    log_pc, log_px = _at_zero(model, x)
    return w * log_pc[:, c] + (1 - w) * log_px


def tilted_sample(model, c, w, n, *, generator=None, dtype=None, device=None, max_proposals: int = 10**7):
    r"""n exact draws of the tilted target ``q_0 ∝ p(x | c)^w p(x)^(1 - w)``: (n, D).

    Rejection sampling with a bounded ratio, in any dimension. Since ``p(x | c) / p(x) =
    p(c | x) / pi_c <= 1 / pi_c``:

    * w >= 1: ``q_0 ∝ p(x | c) p(c | x)^(w - 1)``; propose from p(x | c), accept with probability
      ``p(c | x)^(w - 1) <= 1``;
    * 0 <= w < 1: ``q_0 ∝ p(x) p(c | x)^w``; propose from p(x), accept with ``p(c | x)^w``.

    Accepted draws are exact (Robert and Casella 2004, Sec. 2.3). ``max_proposals`` bounds the
    work: a ``RuntimeError`` says so when the acceptance rate is too low to get n draws.
    """
    c, w = _check_model(model, c, w)
    n = check_n(n)
    max_proposals = check_int(max_proposals, "max_proposals", minimum=1)
    device, dtype = resolve_device(generator, device, dtype)
    prop = model.given(c) if w >= 1 else model.mixture
    power = w - 1 if w >= 1 else w
    out, got, used = [torch.empty(0, model.dim, dtype=torch.float64, device=device)], 0, 0  # n = 0: no draws
    batch = max(64, 2 * n)
    while got < n:
        if used >= max_proposals:
            raise RuntimeError(f"tilted_sample: {got} of {n} draws after {used} proposals (max_proposals); "
                               f"the acceptance rate at w = {w:g} is too low")
        x = prop.sample(batch, generator=generator, dtype=torch.float64, device=device)
        used += batch
        log_pc = model.log_classifier(x, 0.0, _vp())[:, c]               # log p(c | x) at t = 0
        u = torch.rand(batch, generator=generator, dtype=torch.float64, device=device)
        keep = torch.log(u) < power * log_pc
        out.append(x[keep])
        got += int(keep.sum())
        rate = max(got / used, 1e-6)
        batch = int(min(max(64, 1.2 * (n - got) / rate), 10**6))
    return torch.cat(out)[:n].to(dtype)


def tilted_density_grid(model, c, w, lim=(-4.0, 4.0), n: int = 200):
    r"""The normalised tilted density ``q_0`` on a 2-D grid, by quadrature: ``(xs, ys, density)``.

    xs, ys: (n,) float64 cell centres over ``lim`` (a pair, the same range on both axes, or two
    pairs); density: (n, n) float64 with rows along ys, normalised so that
    ``density.sum() * dx * dy = 1`` (the midpoint rule; choose ``lim`` to hold the mass). Its
    moments and the moments of :func:`tilted_sample` agree to quadrature and Monte Carlo error
    (``tests/test_guidance.py``). model: a 2-D :class:`ClassConditional`.
    """
    c, w = _check_model(model, c, w)
    if model.dim != 2:
        raise ValueError(f"model must be 2-D for a grid; got dim = {model.dim}")
    n = check_int(n, "n", minimum=2, maximum=2000)
    lims = as_param(lim, "lim")
    lims = lims.reshape(1, 2).expand(2, 2) if lims.shape == (2,) else lims
    if lims.shape != (2, 2) or (lims[:, 1] <= lims[:, 0]).any():
        raise ValueError(f"lim must be (lo, hi) or ((xlo, xhi), (ylo, yhi)) with lo < hi; got {lim!r}")
    (x0, x1), (y0, y1) = lims.tolist()
    dx, dy = (x1 - x0) / n, (y1 - y0) / n
    xs = x0 + dx * (torch.arange(n, dtype=torch.float64) + 0.5)
    ys = y0 + dy * (torch.arange(n, dtype=torch.float64) + 0.5)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    lq = tilted_log_prob(model, c, w, torch.stack([X.reshape(-1), Y.reshape(-1)], 1)).reshape(n, n)
    lq = lq - torch.logsumexp(lq.reshape(-1), 0) - math.log(dx * dy)
    return xs, ys, lq.exp()


def tilted_gaussian(cond, uncond, w) -> Gaussian:
    r"""The tilted law of two Gaussians, ``q ∝ N(mu_c, S_c)^w N(mu, S)^(1 - w)``: a Gaussian.

    Its log-density is a sum of quadratics, so with precisions ``P_c = S_c^{-1}``, ``P = S^{-1}``

        Q = w P_c + (1 - w) P,   mean = Q^{-1} (w P_c mu_c + (1 - w) P mu),   cov = Q^{-1},

    defined when Q is positive definite (for w > 1 the unconditional precision enters with a
    negative weight, so a class narrower than the data is needed). cond, uncond: non-singular
    :class:`~diffedu.gaussian.Gaussian` of one dimension; w >= 0. ``tests/test_guidance.py``
    checks it against quadrature (lesson 15, exercise).
    """
    for name, g in (("cond", cond), ("uncond", uncond)):
        if not isinstance(g, Gaussian):
            raise TypeError(f"{name} must be a diffedu Gaussian; got {type(g).__name__}")
    if cond.dim != uncond.dim:
        raise ValueError(f"cond and uncond must have one dimension; got {cond.dim} and {uncond.dim}")
    w = check_real(w, "w", minimum=0.0)
    Pc, P = torch.linalg.inv(cond.cov), torch.linalg.inv(uncond.cov)
    if not (torch.isfinite(Pc).all() and torch.isfinite(P).all()):
        raise ValueError("cond and uncond must have non-singular covariances")
    Q = w * Pc + (1 - w) * P
    if float(torch.linalg.eigvalsh(0.5 * (Q + Q.T)).min()) <= 0:
        raise ValueError(f"w = {w:g} gives a tilted precision that is not positive definite: no normalisable law")
    cov = torch.linalg.inv(Q)
    return Gaussian(cov @ (w * Pc @ cond.mean + (1 - w) * P @ uncond.mean), 0.5 * (cov + cov.T))
