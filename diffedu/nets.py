r"""Small trainable score models for 2-D and low-D data, and denoising score matching.

Two models share one interface, the fields of the notation page (``docs/notation.md``) with signature ``f(x, t)``
(``score``, ``denoiser``, ``eps``; ``model(x, t)`` is the score):

* :class:`ScoreMLP`, an MLP with a Fourier embedding of the half log-SNR ``lambda_t``. It
  predicts the noise (``param="eps"``, then ``s = -eps_hat / sigma_t``) or the denoiser
  (``param="denoiser"``, EDM preconditioning, Karras et al. 2022, Table 1), both written in
  the EDM variables ``x / alpha_t`` and ``sigma_t / alpha_t`` so one net serves every process.
* :class:`EnergyMLP`, a log-density model ``E(x, t) = log p~_t(x)`` whose score is
  ``grad_x E`` (by autograd). It is *unnormalised*: the log-density Fokker-Planck residual of
  ``E`` carries an extra ``- d_t log Z_t`` (see :mod:`diffedu.fokker_planck`).

:func:`train_dsm` fits either by denoising score matching (Vincent 2011) with the noise
weighting ``E |sigma_t s(x_t, t) + eps|^2``, optionally plus ``fp_weight`` times the mean
squared score Fokker-Planck residual (FP-Diffusion, Lai et al. 2023; Deveney et al. 2023).
Lesson 05 (its cached runs live in :mod:`diffedu.teach.fokker_planck`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._core import check_batch, check_generator, check_int, check_positive, check_process, coefs
from .training import dsm_loss, train

__all__ = ["ScoreMLP", "EnergyMLP", "VelocityMLP", "train_dsm"]


def _t_batch(t, x, process):
    """t as a (B,) tensor in x's dtype and device (keeps the autograd graph of a tensor t), checked
    against the process first (a complex t would be cast, a numeric string read by float())."""
    process.check_t(t)
    if isinstance(t, torch.Tensor):
        tt = t.to(device=x.device, dtype=x.dtype)
        return tt.expand(x.shape[0]) if tt.dim() == 0 else tt
    return x.new_full((x.shape[0],), float(t))


def _init_(module: nn.Module, generator):
    """Re-draw every Linear layer's weights with PyTorch's default law, from ``generator``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 1 / math.sqrt(m.in_features)
            with torch.no_grad():
                m.weight.uniform_(-bound, bound, generator=generator)
                m.bias.uniform_(-bound, bound, generator=generator)


def _mlp(width: int, hidden: int, depth: int, out: int) -> nn.Sequential:
    """``depth`` layers Linear + SiLU of ``hidden`` units from ``width`` inputs, then a Linear to ``out``."""
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, out))


class _TimeMLP(nn.Module):
    """Shared body: ``F(u, lambda_t)``, an MLP on ``[u, Fourier(lambda_t / 8)]`` (and, for a
    conditional network, a learned embedding of the label: ``F(u, lambda_t, y)``)."""

    def __init__(self, process, dim, out, hidden, depth, n_freq, sigma_data, generator, n_labels=None,
                 label_dim=16):
        super().__init__()
        self.process = check_process(process)
        dim, depth = check_int(dim, "dim", minimum=1), check_int(depth, "depth", minimum=1)
        hidden, n_freq = check_int(hidden, "hidden", minimum=1), check_int(n_freq, "n_freq", minimum=0)
        sigma_data = check_positive(sigma_data, "sigma_data")
        if n_labels is not None:
            n_labels = check_int(n_labels, "n_labels", minimum=1)
            label_dim = check_int(label_dim, "label_dim", minimum=1)
        check_generator(generator, "cpu")  # the weights are drawn on the CPU
        self.dim, self.sigma_data, self.n_labels = dim, float(sigma_data), n_labels
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freq, dtype=torch.float32))
        self.net = _mlp(dim + 2 * n_freq + 1 + (0 if n_labels is None else label_dim), hidden, depth, out)
        if generator is not None:
            _init_(self, generator)
        if n_labels is not None:  # row n_labels is "no label" (y = None); drawn after the layers,
            self.labels = nn.Embedding(n_labels + 1, label_dim)  # so an unconditional net is unchanged
            if generator is not None:
                with torch.no_grad():
                    self.labels.weight.normal_(generator=generator)

    def _y(self, y, x):
        """Labels as a (B,) long tensor of embedding rows: y None -> the "no label" row n_labels."""
        if self.n_labels is None:
            if y is not None:
                raise ValueError("y must be None: this network has no label input (build it with n_labels=...)")
            return None
        if y is None:
            return torch.full((x.shape[0],), self.n_labels, dtype=torch.long, device=x.device)
        if isinstance(y, bool) or not (isinstance(y, int) or (isinstance(y, torch.Tensor) and not y.is_floating_point()
                                                             and not y.is_complex() and y.dtype != torch.bool)):
            raise TypeError(f"y must be an integer label or a (B,) integer tensor of labels; got "
                            f"{y.dtype if isinstance(y, torch.Tensor) else type(y).__name__}")
        y = torch.as_tensor(y, dtype=torch.long, device=x.device)
        if y.dim() == 0:
            y = y.expand(x.shape[0])
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must be one label or {x.shape[0]} labels (one per row of x); got shape {tuple(y.shape)}")
        if bool(((y < 0) | (y >= self.n_labels)).any()):
            raise ValueError(f"y must hold labels in [0, {self.n_labels - 1}]; got values from {int(y.min())} to "
                             f"{int(y.max())}")
        return y

    def _x(self, x):
        """x checked: (B, dim), finite, in the network's dtype (a Linear layer refuses any other)."""
        x = check_batch(x, self.dim)
        if x.dtype != self.freqs.dtype:
            raise TypeError(f"x must have the network's dtype {self.freqs.dtype}; got {x.dtype} "
                            f"(convert x with .to({self.freqs.dtype}), or the network with .to(dtype))")
        return x

    def _edm(self, x, t):
        """EDM variables: ``x_e = x / alpha``, ``sigma_e = sigma / alpha`` (B, 1), lambda (B, 1)."""
        x = self._x(x)
        a, s = coefs(self.process, _t_batch(t, x, self.process), x,
                     positive="the network's input is the half log-SNR log(alpha_t / sigma_t), infinite at t = 0")
        se = s / a
        return x / a, se, a, -torch.log(se)

    def _body(self, u, lam, y=None):
        c = lam / 8
        parts = [u, c, torch.sin(c * self.freqs.to(c.dtype)), torch.cos(c * self.freqs.to(c.dtype))]
        if y is not None:
            parts.append(self.labels(y).to(u.dtype))
        return self.net(torch.cat(parts, 1))

    # the notation page's fields, from the score (y: labels, for a network built with n_labels)
    def forward(self, x, t, y=None):
        return self._score_given(x, t, y)

    def _score_given(self, x, t, y):
        if y is None:
            return self.score(x, t)
        if self.n_labels is None:
            self._y(y, x)  # raises: no label input
        return self.score(x, t, y)

    def denoiser(self, x, t, y=None):
        """Tweedie: ``D = (x + sigma_t^2 s) / alpha_t``: (B, D)."""
        x = self._x(x)
        a, s = coefs(self.process, _t_batch(t, x, self.process), x)
        return (x + s**2 * self._score_given(x, t, y)) / a

    def eps(self, x, t, y=None):
        """``eps_hat = -sigma_t s``: (B, D)."""
        x = self._x(x)
        _, s = coefs(self.process, _t_batch(t, x, self.process), x)
        return -s * self._score_given(x, t, y)


class ScoreMLP(_TimeMLP):
    r"""MLP score model ``s_theta(x, t)`` for (B, D) data under one process.

    param ``"eps"``: ``s = -F(c_in x_e, lambda_t) / sigma_t`` (noise prediction);
    param ``"denoiser"``: ``D = c_skip x_e + c_out F(c_in x_e, lambda_t)`` with
    ``c_in = 1/sqrt(se^2 + sd^2)``, ``c_skip = sd^2/(se^2 + sd^2)``, ``c_out = se sd / sqrt(se^2 + sd^2)``
    (``se = sigma_t/alpha_t``, ``sd = sigma_data``, ``x_e = x/alpha_t``; EDM Table 1), and the
    score follows by Tweedie. ``generator`` seeds the initial weights.

    **Labels.** With ``n_labels`` the network is conditional, ``s_theta(x, t, y)``: a learned
    embedding of the label (``label_dim`` numbers) joins the input of F, and ``score``,
    ``denoiser``, ``eps`` and ``model(x, t, y)`` take ``y`` (an integer in ``[0, n_labels)``
    or a (B,) integer tensor). ``y=None`` uses an extra "no label" embedding, the unconditional
    score for classifier-free guidance when training drops labels. Train it with
    :func:`diffedu.training.train` and ``labels=``; :func:`~diffedu.training.dsm_loss` passes the
    minibatch's labels on. A sampler takes a denoiser of (x, t): ``lambda x, t: net.denoiser(x, t, y)``.
    Without ``n_labels`` the network and its initial weights are the unconditional ones.
    """

    def __init__(self, process, dim: int = 2, *, hidden: int = 128, depth: int = 3, n_freq: int = 4,
                 sigma_data: float = 1.0, param: str = "eps", generator: torch.Generator | None = None,
                 n_labels: int | None = None, label_dim: int = 16):
        if param not in ("eps", "denoiser"):
            raise ValueError(f"param must be 'eps' or 'denoiser'; got {param!r}")
        super().__init__(process, dim, dim, hidden, depth, n_freq, sigma_data, generator, n_labels, label_dim)
        self.param = param

    def score(self, x, t, y=None):
        """``grad_x log p_t`` as modelled (given the labels y of a conditional network): (B, D)."""
        xe, se, a, lam = self._edm(x, t)
        sd2 = self.sigma_data**2
        c_in = 1 / torch.sqrt(se**2 + sd2)
        F = self._body(c_in * xe, lam, self._y(y, xe))
        if self.param == "eps":
            return -F / (a * se)  # sigma_t = alpha_t se
        D = (sd2 * c_in**2) * xe + (se * self.sigma_data * c_in) * F
        return (a * D - x) / (a * se) ** 2

    def __repr__(self):
        labels = "" if self.n_labels is None else f", n_labels={self.n_labels}"
        return f"ScoreMLP(dim={self.dim}, param={self.param!r}{labels}, process={self.process!r})"


class EnergyMLP(_TimeMLP):
    r"""Log-density (energy) model ``E(x, t) = log p~_t(x)``, unnormalised; score ``= grad_x E``.

    ``E = -|u|^2 / 2 + F(u, lambda_t) / (c_in se)^2`` with ``u = c_in x_e``, ``x_e = x / alpha_t``,
    ``se = sigma_t / alpha_t``, ``c_in = 1/sqrt(se^2 + sd^2)``: ``F = 0`` is the Gaussian
    ``N(0, (sd^2 + se^2) I)`` in EDM variables, and the learned part's gradient can grow like
    ``1/se^2`` at small noise, as the score of data with well-separated modes does.
    """

    def __init__(self, process, dim: int = 2, *, hidden: int = 128, depth: int = 3, n_freq: int = 4,
                 sigma_data: float = 1.0, generator: torch.Generator | None = None):
        super().__init__(process, dim, 1, hidden, depth, n_freq, sigma_data, generator)

    def log_prob(self, x, t):
        """Unnormalised ``log p~_t(x)``: (B,)."""
        xe, se, a, lam = self._edm(x, t)
        c_in = 1 / torch.sqrt(se**2 + self.sigma_data**2)
        u = c_in * xe
        return (-0.5 * (u**2).sum(1, keepdim=True) + self._body(u, lam) / (c_in * se) ** 2)[:, 0]

    def score(self, x, t):
        """``grad_x log p~_t(x)``: (B, D). Keeps a graph (for training, residuals) when grad is on."""
        x = self._x(x)
        keep = torch.is_grad_enabled()
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.log_prob(xg, t).sum(), xg, create_graph=keep)
        return g

    def __repr__(self):
        return f"EnergyMLP(dim={self.dim}, process={self.process!r})"


class VelocityMLP(nn.Module):
    r"""A velocity field ``v_theta(x, t)`` for flow matching, t in [0, 1] (data at 0): an MLP on
    ``[x, t, sin(pi 2^k t), cos(pi 2^k t)]``, k < n_freq. No process: it is trained by regression on
    interpolant velocities (:func:`diffedu.training.flow_matching_loss`). ``model(x, t)`` is the
    velocity; t a float, 0-d or (B,) tensor. ``generator`` seeds the initial weights (lesson 14).
    """

    def __init__(self, dim: int = 2, *, hidden: int = 128, depth: int = 3, n_freq: int = 4,
                 generator: torch.Generator | None = None):
        super().__init__()
        dim, depth = check_int(dim, "dim", minimum=1), check_int(depth, "depth", minimum=1)
        hidden, n_freq = check_int(hidden, "hidden", minimum=1), check_int(n_freq, "n_freq", minimum=0)
        check_generator(generator, "cpu")
        self.dim = dim
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freq, dtype=torch.float32))
        self.net = _mlp(dim + 2 * n_freq + 1, hidden, depth, dim)
        if generator is not None:
            _init_(self, generator)

    def velocity(self, x, t):
        """``v_theta(x, t)``: (B, D)."""
        x = check_batch(x, self.dim)
        if x.dtype != self.freqs.dtype:
            raise TypeError(f"x must have the network's dtype {self.freqs.dtype}; got {x.dtype}")
        if isinstance(t, bool) or not isinstance(t, (int, float, torch.Tensor)):
            raise TypeError(f"t must be a float, a 0-d or a (B,) tensor; got {type(t).__name__}")
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if tt.dim() > 1 or (tt.dim() == 1 and tt.shape[0] != x.shape[0]) or tt.is_complex():
            raise ValueError(f"t must be a float, 0-d or ({x.shape[0]},); got shape {tuple(tt.shape)}")
        tt = tt.expand(x.shape[0])[:, None]
        emb = torch.cat([tt, torch.sin(tt * self.freqs), torch.cos(tt * self.freqs)], 1)
        return self.net(torch.cat([x, emb], 1))

    def forward(self, x, t):
        return self.velocity(x, t)

    def __repr__(self):
        return f"VelocityMLP(dim={self.dim})"


def train_dsm(model: _TimeMLP, data, *, steps: int = 2000, batch_size: int = 256, lr: float = 2e-3,
              fp_weight: float = 0.0, fp_batch: int = 64, fp_t_min: float | None = None,
              fp_method: str = "exact", t_min: float | None = None, weighting: str = "eps",
              generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    r"""Denoising score matching, optionally with a score Fokker-Planck penalty. Returns losses (steps,).

    One use of the course's training loop: :func:`diffedu.training.train` with
    :func:`diffedu.training.dsm_loss`. data: a (M, D) tensor of training points (minibatches
    drawn with replacement), or a callable ``sample(n, generator=...) -> (n, D)``. Each step draws
    x_0, t uniform on ``[t_min, t_max]`` (:func:`~diffedu.training.sample_times`) and eps, and
    minimises (with the default ``weighting="eps"``)

        L = mean |sigma_t s(alpha_t x_0 + sigma_t eps, t) + eps|^2
            + fp_weight * mean | sigma_t^3 R(x_t, t) / g(t)^2 |^2 ,

    with ``R`` the score FP residual (:func:`diffedu.fokker_planck.score_residual`) on the first
    ``fp_batch`` points, whose times are redrawn on ``[fp_t_min, t_max]`` (default: the time where
    ``sigma_t / alpha_t = 0.1``). The factor ``sigma^3 / g^2`` makes the residual O(1) across t (the
    terms of R grow like ``g^2 / sigma^3`` at small noise). Adam with a cosine learning-rate decay;
    the model's dtype is used throughout. Losses are returned detached (the DSM part, then the
    penalty, summed); a non-finite loss stops training with ``FloatingPointError``.
    """
    if not isinstance(model, _TimeMLP):
        raise TypeError(f"model must be a ScoreMLP or EnergyMLP; got {type(model).__name__}")
    if isinstance(data, torch.Tensor):
        check_batch(data, model.dim, "data")
    loss = dsm_loss(model.process, weighting=weighting, t_min=t_min, fp_weight=fp_weight, fp_batch=fp_batch,
                    fp_t_min=fp_t_min, fp_method=fp_method)
    return train(model, loss, data, steps=steps, batch_size=batch_size, lr=lr, generator=generator,
                 progress=progress).losses
