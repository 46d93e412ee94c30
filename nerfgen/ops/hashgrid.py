"""Multiresolution hash-grid encoding (instant-ngp), pure-torch reference.

Level :math:`l` has resolution :math:`N_l`; a point's 8 surrounding vertices are looked up in a
table of :math:`T` feature vectors by the spatial hash
:math:`h(x) = (x_0 \pi_0 \oplus x_1 \pi_1 \oplus x_2 \pi_2) \bmod T` (or by dense indexing where
the level's grid fits in the table) and interpolated trilinearly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Spatial-hash primes of instant-ngp, the second one wrapped to int32 (low bits are what count).
_PRIMES = (1, 2654435761 - 2**32, 805459861)


def level_resolutions(n_levels: int, base_resolution: int, max_resolution: int) -> list[int]:
    """Geometric series of grid resolutions from ``base_resolution`` to ``max_resolution``."""
    if n_levels == 1:
        return [base_resolution]
    growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / (n_levels - 1))
    return [int(math.floor(base_resolution * growth**level)) for level in range(n_levels)]


def level_strides(resolutions: list[int], log2_table_size: int) -> Tensor:
    """Per-level, per-axis multipliers ``[n_levels, 3]`` (int32) of the vertex index.

    Levels whose vertices fit in the table use collision-free dense indexing with power-of-two
    strides (so the XOR below equals a sum); finer levels use the spatial hash.
    """
    rows = []
    for res in resolutions:
        bits = max(1, math.ceil(math.log2(res + 1)))
        rows.append((1, 1 << bits, 1 << (2 * bits)) if 3 * bits <= log2_table_size else _PRIMES)
    return torch.tensor(rows, dtype=torch.int32)


def hash_grid_indices(
    positions: Tensor, resolutions: Tensor, strides: Tensor, log2_table_size: int
) -> tuple[Tensor, Tensor]:
    """Table rows and trilinear weights of the 8 vertices around each point, for each level.

    Args:
        positions: ``[n, 3]`` in ``[0, 1]``.
        resolutions: ``[n_levels]`` float grid resolutions.
        strides: ``[n_levels, 3]`` int32 from :func:`level_strides`.
        log2_table_size: ``log2(T)``; level ``l`` owns rows ``[l T, (l + 1) T)``.

    Returns:
        ``indices [n, n_levels, 8]`` int32 and ``weights [n, n_levels, 8]`` (differentiable in
        ``positions``). Vertex ``c`` has offset bits ``(c >> 2 & 1, c >> 1 & 1, c & 1)``.
    """
    n, n_levels = positions.shape[0], resolutions.shape[0]
    scaled = positions[:, None, :] * resolutions[None, :, None]  # [n, L, 3]
    corner = scaled.detach().floor()
    frac = scaled - corner
    corner = corner.to(torch.int32)
    mask = (1 << log2_table_size) - 1
    axis_hash = []
    axis_weight = []
    for axis in range(3):
        c = corner[..., axis]
        s = strides[:, axis]
        axis_hash.append(torch.stack([c * s, (c + 1) * s], -1))  # [n, L, 2]
        f = frac[..., axis]
        axis_weight.append(torch.stack([1 - f, f], -1))
    hashed = axis_hash[0][..., :, None, None] ^ axis_hash[1][..., None, :, None] ^ axis_hash[2][..., None, None, :]
    level_offset = (torch.arange(n_levels, dtype=torch.int32, device=positions.device) << log2_table_size)
    indices = (hashed & mask) + level_offset[None, :, None, None, None]
    weights = axis_weight[0][..., :, None, None] * axis_weight[1][..., None, :, None] * axis_weight[2][..., None, None, :]
    return indices.view(n, n_levels, 8), weights.view(n, n_levels, 8)


class _Interpolate(torch.autograd.Function):
    """``out[n, l] = sum_c weights[n, l, c] * table[indices[n, l, c]]`` with a scatter backward."""

    @staticmethod
    def forward(ctx, table: Tensor, indices: Tensor, weights: Tensor) -> Tensor:
        n, n_levels, _ = indices.shape
        feats = table.index_select(0, indices.reshape(-1)).view(n, n_levels, 8, table.shape[1])
        ctx.save_for_backward(table, indices, weights)
        return torch.einsum("nlcf,nlc->nlf", feats, weights)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        table, indices, weights = ctx.saved_tensors
        n_feat = table.shape[1]
        grad_table = grad_weights = None
        if ctx.needs_input_grad[0]:
            contrib = weights[..., None] * grad_out[:, :, None, :]  # [n, L, 8, F]
            flat = (indices.long()[..., None] * n_feat + torch.arange(n_feat, device=table.device)).reshape(-1)
            grad_table = torch.zeros(table.numel(), dtype=table.dtype, device=table.device)
            grad_table.scatter_add_(0, flat, contrib.reshape(-1))
            grad_table = grad_table.view_as(table)
        if ctx.needs_input_grad[2]:
            feats = table.index_select(0, indices.reshape(-1)).view(*indices.shape, n_feat)
            grad_weights = torch.einsum("nlcf,nlf->nlc", feats, grad_out)
        return grad_table, None, grad_weights


def hash_grid_encode(
    positions: Tensor, table: Tensor, resolutions: Tensor, strides: Tensor, log2_table_size: int
) -> Tensor:
    """Encode ``positions [n, 3]`` in ``[0, 1]`` with a hash grid.

    Args:
        positions: ``[n, 3]``.
        table: ``[n_levels * T, n_features]`` learnable features.
        resolutions: ``[n_levels]`` float.
        strides: ``[n_levels, 3]`` int32 from :func:`level_strides`.
        log2_table_size: ``log2(T)``.

    Returns:
        ``[n, n_levels * n_features]``, level-major. Differentiable in ``table`` and ``positions``.
    """
    indices, weights = hash_grid_indices(positions, resolutions, strides, log2_table_size)
    return _Interpolate.apply(table, indices, weights).reshape(positions.shape[0], -1)
