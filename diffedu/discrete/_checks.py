"""Argument checks shared by the masked-diffusion modules (token tensors, denoiser outputs)."""

from __future__ import annotations

import torch

from .._core import check_generator, check_int

_F64 = torch.float64

__all__ = ["check_tokens", "check_denoised", "check_cpu_generator", "check_int"]


def check_cpu_generator(generator, device="cpu"):
    """The samplers here draw on the CPU."""
    check_generator(generator, device)


def check_tokens(x, vocab_size, name="x", allow_mask=True):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, shape (B, L); got {type(x).__name__}")
    if x.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"{name} must have an integer dtype (token ids); got {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (B, L); got {tuple(x.shape)}")
    top = vocab_size if allow_mask else vocab_size - 1
    if x.numel() and (int(x.min()) < 0 or int(x.max()) > top):
        what = f"0..{vocab_size - 1} or the mask id {vocab_size}" if allow_mask else f"0..{vocab_size - 1}"
        raise ValueError(f"{name} must hold token ids in {what}; got values in [{int(x.min())}, {int(x.max())}]")
    return x.long()


def check_denoised(probs, B, L, V):
    if not isinstance(probs, torch.Tensor) or probs.shape != (B, L, V):
        got = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise ValueError(f"denoiser must return probabilities of shape ({B}, {L}, {V}); got {got}")
    return probs.to(_F64).cpu()
