r"""Multiresolution hash-grid encoding (instant-ngp): compiled kernel and pure-torch twin.

Level :math:`l` has resolution :math:`N_l`; a point's 8 surrounding vertices are looked up in a
table of :math:`T` feature vectors by the spatial hash
:math:`h(x) = (x_0 \pi_0 \oplus x_1 \pi_1 \oplus x_2 \pi_2) \bmod T` (or by dense indexing where
the level's grid fits in the table) and interpolated trilinearly.

:func:`hash_grid_encode` runs the C++/OpenMP kernel (``cuda/src/hashgrid_cpu.cpp``, and
``hashgrid.cu`` in a CUDA build) when it is available for the tensors given, else the torch twin
:func:`hash_grid_encode_torch`; both have the same signature and results (to float rounding).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nerfgen.ops import _backend

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


def _hash_grid_encode_torch(
    positions: Tensor, table: Tensor, resolutions: Tensor, strides: Tensor, log2_table_size: int
) -> Tensor:
    """Encode ``positions [n, 3]`` in ``[0, 1]`` with a hash grid (pure-torch twin of the kernel).

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
    return _Interpolate.apply(table, indices, weights).reshape(positions.shape[0], indices.shape[1] * table.shape[1])


hash_grid_encode_torch = _hash_grid_encode_torch


def hash_grid_encode(
    positions: Tensor, table: Tensor, resolutions: Tensor, strides: Tensor, log2_table_size: int
) -> Tensor:
    r"""Encode ``positions [n, 3]`` in ``[0, 1]`` with a hash grid.

    .. math::
        \mathrm{out}_{n, l} = \sum_{c=0}^{7} w_c(x_n N_l)\, \mathrm{table}[h_l(\lfloor x_n N_l \rfloor + c)]

    Runs the compiled kernel (float32/float64 on CPU, CUDA in a CUDA build) when it is available,
    else :func:`hash_grid_encode_torch`. The kernel path has first derivatives only (no double
    backward); use :func:`hash_grid_encode_torch` where second derivatives are needed.

    Args:
        positions: ``[n, 3]``.
        table: ``[n_levels * T, n_features]`` learnable features.
        resolutions: ``[n_levels]`` float.
        strides: ``[n_levels, 3]`` int32 from :func:`level_strides`.
        log2_table_size: ``log2(T)``.

    Returns:
        ``[n, n_levels * n_features]``, level-major. Differentiable in ``table`` and ``positions``.

    >>> res = level_resolutions(4, 16, 128)
    >>> table = torch.zeros(4 << 10, 2, requires_grad=True)
    >>> out = hash_grid_encode(torch.rand(5, 3), table, torch.tensor(res, dtype=torch.float32),
    ...                        level_strides(res, 10), 10)
    >>> out.shape
    torch.Size([5, 8])
    """
    _check_hash_grid_args(positions, table, resolutions, strides, log2_table_size)
    if _kernel_serves(positions, table):
        return torch.ops.nerfgen.hash_grid_fwd(
            positions.contiguous(),
            table.contiguous(),
            resolutions.to(torch.float32).contiguous(),
            strides.to(torch.int32).contiguous(),
            log2_table_size,
        )
    return _hash_grid_encode_torch(positions, table, resolutions, strides, log2_table_size)


def _check_hash_grid_args(
    positions: Tensor, table: Tensor, resolutions: Tensor, strides: Tensor, log2_table_size: int
) -> None:
    n_levels = resolutions.shape[0] if resolutions.dim() == 1 else -1
    if positions.dim() != 2 or positions.shape[1] != 3:
        raise ValueError(f"hash_grid_encode: positions must be [n, 3], got {tuple(positions.shape)}")
    if n_levels < 1:
        raise ValueError(f"hash_grid_encode: resolutions must be [n_levels], got {tuple(resolutions.shape)}")
    if tuple(strides.shape) != (n_levels, 3):
        raise ValueError(f"hash_grid_encode: strides must be [{n_levels}, 3], got {tuple(strides.shape)}")
    if table.dim() != 2 or table.shape[0] != n_levels << log2_table_size:
        raise ValueError(
            f"hash_grid_encode: table must be [n_levels << log2_table_size, F] = [{n_levels << log2_table_size}, F],"
            f" got {tuple(table.shape)}"
        )
    devices = {t.device for t in (positions, table, resolutions, strides)}
    if len(devices) != 1:
        raise ValueError(f"hash_grid_encode: all tensors must be on one device, got {sorted(map(str, devices))}")


def _kernel_serves(positions: Tensor, table: Tensor) -> bool:
    """Whether the compiled kernel handles these tensors (dtype first: it never builds for others)."""
    if positions.dtype not in (torch.float32, torch.float64) or table.dtype != positions.dtype:
        return False
    return _backend.backend_available(positions.device)
