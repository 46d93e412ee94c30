r"""The MLPs of an instant-ngp field fused into one kernel on a CPU, and their pure-torch twin.

The density network maps the hash-grid features through ReLU layers to ``1 + geo`` outputs: the
raw density (before its activation) and ``geo`` geometry features; the colour network maps
``[SH of the direction, geometry features]`` through ReLU layers to 3 outputs and a sigmoid.
:func:`ngp_mlp` runs both for a tile of samples at a time in the compiled kernel
(``cuda/src/mlp_cpu.cpp``: AVX2 + FMA where the build targets it, a portable micro-kernel
otherwise and for float64), forward and backward, and falls back to :func:`ngp_mlp_torch` (the
same layers as ``torch.nn.functional.linear``) elsewhere: CUDA tensors (where tiny-cuda-nn's
FullyFusedMLP is the fused path, see :mod:`nerfgen.fields.ngp`) or without the kernels.

>>> w = [torch.randn(16, 8), torch.randn(8, 16 + 15), torch.randn(3, 8)]
>>> b = [torch.zeros(16), torch.zeros(8), torch.zeros(3)]
>>> density, rgb = ngp_mlp(torch.randn(5, 8), torch.randn(5, 16), w, b, n_density=1)
>>> density.shape, rgb.shape
(torch.Size([5]), torch.Size([5, 3]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.ops import _backend


def _serves(enc: Tensor, *tensors: Tensor) -> bool:
    return _backend.kernels_serve(enc, *tensors, dtypes=(torch.float32, torch.float64))


def ngp_mlp_torch(enc: Tensor, sh: Tensor, weights: list[Tensor], biases: list[Tensor], n_density: int
                  ) -> tuple[Tensor, Tensor]:
    """The pure-torch twin of :func:`ngp_mlp`."""
    h = enc
    for layer in range(n_density):
        h = F.linear(h, weights[layer], biases[layer])
        if layer < n_density - 1:
            h = torch.relu(h)
    x = torch.cat([sh, h[:, 1:]], -1)
    for layer in range(n_density, len(weights)):
        x = F.linear(x, weights[layer], biases[layer])
        if layer < len(weights) - 1:
            x = torch.relu(x)
    return h[:, 0], torch.sigmoid(x)


def ngp_mlp(enc: Tensor, sh: Tensor, weights: list[Tensor], biases: list[Tensor], n_density: int
            ) -> tuple[Tensor, Tensor]:
    """Density and colour networks of an NGP field, fused.

    Args:
        enc: ``[n, in]`` hash-grid features.
        sh: ``[n, sh_dim]`` spherical harmonics of the view directions.
        weights, biases: the layers as ``torch.nn.Linear`` holds them (``[out, in]``, ``[out]``):
            first the density network's ``n_density``, then the colour network's.
        n_density: layers of the density network.

    Returns:
        ``density [n]`` (the raw output, before the density activation) and ``rgb [n, 3]``,
        differentiable in ``enc`` and every weight and bias.
    """
    if _serves(enc, sh, *weights, *biases):
        return torch.ops.nerfgen.ngp_mlp_fwd(enc.contiguous(), sh.contiguous(), list(weights), list(biases), n_density)
    return ngp_mlp_torch(enc, sh, weights, biases, n_density)


def ngp_density(enc: Tensor, weights: list[Tensor], biases: list[Tensor]) -> Tensor:
    """``[n]`` raw density of the density network alone (its output column 0); the fused kernel
    serves it when no gradient is needed (marching, grid updates), else the torch layers."""
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (enc, *weights, *biases))
    if not needs_grad and _serves(enc, *weights, *biases):
        return torch.ops.nerfgen.ngp_density_fwd(enc.contiguous(), list(weights), list(biases))
    h = enc
    for layer, (w, b) in enumerate(zip(weights, biases)):
        h = F.linear(h, w, b)
        if layer < len(weights) - 1:
            h = torch.relu(h)
    return h[:, 0]


def fused_mlp_avx2() -> bool | None:
    """Whether the compiled fused MLP uses AVX2 + FMA (None: the kernels are not loaded)."""
    if not _backend.backend_available("cpu"):
        return None
    return bool(torch.ops.nerfgen.ngp_mlp_avx2())
