"""Density activations."""

from __future__ import annotations

import torch
from torch import Tensor


class _TruncExp(torch.autograd.Function):
    """``exp(x)`` whose gradient is clamped at ``exp(15)`` (instant-ngp / torch-ngp)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15))


def trunc_exp(x: Tensor) -> Tensor:
    """Exponential with a bounded gradient, for densities."""
    return _TruncExp.apply(x)
