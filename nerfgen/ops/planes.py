r"""Factorised plane features (K-Planes / HexPlane): bilinear lookups in 2D feature planes, multiplied.

A point :math:`x \in [0, 1]^D` (space and time, ``D = 4``) is encoded level by level. Level
:math:`l` owns planes :math:`p`, each spanning two coordinates :math:`(a_p, b_p)` at a resolution
:math:`(R^u_p, R^v_p)`; a plane's feature is the bilinear interpolation of its grid of
``C``-vectors (grid points at :math:`u = x_{a_p} (R^u_p - 1)`, the corners of the unit square on
the first and last points), and the level's feature is the product over its planes:

.. math::
    f_l(x) = \prod_{p \in l} \sum_{c=0}^{3} w_c(u, v)\, \mathrm{table}[o_p + v_c R^u_p + u_c]

All planes live in one ``table [rows, C]``: plane :math:`p` owns rows
:math:`[o_p, o_p + R^u_p R^v_p)`, its point :math:`(u, v)` in row :math:`o_p + v R^u_p + u`.
Coordinates are clamped to ``[0, 1]`` (no gradient flows through a clamped one).

:func:`plane_encode` runs the compiled kernel (``cuda/src/planes_cpu.cpp``, ``planes.cu``) when it
serves the tensors, else :func:`plane_encode_torch`, the pure-torch twin of the same signature.

>>> layout = plane_layout([(16, 16, 16, 8)], PAIRS_4D)
>>> table = torch.ones(layout.rows, 4)
>>> plane_encode(torch.rand(5, 4), table, layout.axes, layout.sizes, layout.offsets, layout.n_levels).shape
torch.Size([5, 4])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nerfgen.ops import _backend

PAIRS_4D = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
"""K-Planes' six planes of space-time: xy, xz, yz (space), xt, yt, zt (time)."""
PAIRS_3D = ((0, 1), (0, 2), (1, 2))
"""The three planes of space (a static tri-plane)."""


@dataclass
class PlaneLayout:
    """Where each plane of a multi-level encoding lives in one table.

    Attributes:
        axes: ``[P, 2]`` int32, the coordinates ``(a, b)`` each plane spans (``u`` along ``a``).
        sizes: ``[P, 2]`` int32, each plane's resolution ``(R^u, R^v)`` (at least 2 each).
        offsets: ``[P]`` int64, each plane's first row.
        n_levels: levels; ``P / n_levels`` planes each, level-major.
        rows: rows of the table.
    """

    axes: Tensor
    sizes: Tensor
    offsets: Tensor
    n_levels: int
    rows: int

    def planes_of(self, level: int) -> range:
        """The planes of ``level``."""
        per = self.axes.shape[0] // self.n_levels
        return range(level * per, (level + 1) * per)


def plane_layout(resolutions: list[tuple[int, ...]], pairs: tuple[tuple[int, int], ...] = PAIRS_4D) -> PlaneLayout:
    """The layout of one plane per pair of coordinates at each level, level ``l`` at resolutions
    ``resolutions[l]`` (one per coordinate: ``(R_x, R_y, R_z, R_t)``). The planes that span the
    last coordinate (time) are stored after all the others, in one block of the table (their
    regularisers then touch that block alone)."""
    axes, sizes = [], []
    for res in resolutions:
        for a, b in pairs:
            if min(res[a], res[b]) < 2:
                raise ValueError(f"plane_layout: every resolution must be at least 2, got {res}")
            axes.append((a, b))
            sizes.append((res[a], res[b]))
    last = max(max(pair) for pair in pairs)
    offsets, row = [0] * len(axes), 0
    for p in sorted(range(len(axes)), key=lambda p: last in axes[p]):  # stable: time planes last
        offsets[p] = row
        row += sizes[p][0] * sizes[p][1]
    return PlaneLayout(torch.tensor(axes, dtype=torch.int32), torch.tensor(sizes, dtype=torch.int32),
                       torch.tensor(offsets, dtype=torch.int64), len(resolutions), row)


def _corners(coords: Tensor, a: int, b: int, ru: int, rv: int, offset: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rows ``[n, 4]`` and weights ``[n, 4]`` of the 4 grid points around each point of one plane,
    and the fractions ``(fu, fv)`` (corner ``c``: ``u + (c & 1)``, ``v + (c >> 1)``)."""
    u = coords[:, a].nan_to_num(0.0).clamp(0.0, 1.0) * (ru - 1)
    v = coords[:, b].nan_to_num(0.0).clamp(0.0, 1.0) * (rv - 1)
    iu = u.floor().clamp(max=ru - 2)
    iv = v.floor().clamp(max=rv - 2)
    fu, fv = u - iu, v - iv
    base = offset + iv.long() * ru + iu.long()
    rows = torch.stack([base, base + 1, base + ru, base + ru + 1], -1)
    weights = torch.stack([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv], -1)
    return rows, weights, fu, fv


class _PlaneEncode(torch.autograd.Function):
    """The twin's forward (plane by plane, level by level) and its backward, recomputing each
    level's plane features instead of keeping them."""

    @staticmethod
    def forward(ctx, coords: Tensor, table: Tensor, axes: Tensor, sizes: Tensor, offsets: Tensor, n_levels: int):
        ctx.save_for_backward(coords, table, axes, sizes, offsets)
        ctx.n_levels = n_levels
        levels = [_level_features(coords, table, axes, sizes, offsets, n_levels, level) for level in range(n_levels)]
        out = []
        for feats in levels:
            acc = feats[0]
            for f in feats[1:]:
                acc = acc * f
            out.append(acc)
        return torch.cat(out, -1)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        coords, table, axes, sizes, offsets = ctx.saved_tensors
        n_levels, n_feat = ctx.n_levels, table.shape[1]
        grad_table = torch.zeros_like(table) if ctx.needs_input_grad[1] else None
        grad_coords = torch.zeros_like(coords) if ctx.needs_input_grad[0] else None
        per = axes.shape[0] // n_levels
        inside = ((coords >= 0) & (coords <= 1)).to(coords.dtype)
        for level in range(n_levels):
            g = grad_out[:, level * n_feat:(level + 1) * n_feat]
            feats = _level_features(coords, table, axes, sizes, offsets, n_levels, level)
            for k in range(per):
                others = torch.ones_like(g)
                for j, f in enumerate(feats):
                    if j != k:
                        others = others * f
                grad_f = g * others  # [n, C]
                p = level * per + k
                (a, b), (ru, rv) = axes[p].tolist(), sizes[p].tolist()
                rows, weights, fu, fv = _corners(coords, a, b, ru, rv, int(offsets[p]))
                if grad_table is not None:
                    contrib = weights[..., None] * grad_f[:, None, :]  # [n, 4, C]
                    grad_table.index_add_(0, rows.reshape(-1), contrib.reshape(-1, n_feat))
                if grad_coords is not None:
                    c = table[rows]  # [n, 4, C]
                    d_fu = (c[:, 1] - c[:, 0]) * (1 - fv)[:, None] + (c[:, 3] - c[:, 2]) * fv[:, None]
                    d_fv = (c[:, 2] - c[:, 0]) * (1 - fu)[:, None] + (c[:, 3] - c[:, 1]) * fu[:, None]
                    grad_coords[:, a] += (grad_f * d_fu).sum(-1) * (ru - 1) * inside[:, a]
                    grad_coords[:, b] += (grad_f * d_fv).sum(-1) * (rv - 1) * inside[:, b]
        return grad_coords, grad_table, None, None, None, None


def _level_features(coords: Tensor, table: Tensor, axes: Tensor, sizes: Tensor, offsets: Tensor, n_levels: int,
                    level: int) -> list[Tensor]:
    """``[n, C]`` feature of each plane of ``level``."""
    per = axes.shape[0] // n_levels
    feats = []
    for p in range(level * per, (level + 1) * per):
        (a, b), (ru, rv) = axes[p].tolist(), sizes[p].tolist()
        rows, weights, _, _ = _corners(coords, a, b, ru, rv, int(offsets[p]))
        c = table[rows]  # [n, 4, C]
        w = weights[..., None]
        feats.append(w[:, 0] * c[:, 0] + w[:, 1] * c[:, 1] + w[:, 2] * c[:, 2] + w[:, 3] * c[:, 3])
    return feats


def plane_encode_torch(coords: Tensor, table: Tensor, axes: Tensor, sizes: Tensor, offsets: Tensor,
                       n_levels: int) -> Tensor:
    """Pure-torch twin of :func:`plane_encode` (same signature and results to float rounding)."""
    return _PlaneEncode.apply(coords, table, axes, sizes, offsets, n_levels)


def plane_encode(coords: Tensor, table: Tensor, axes: Tensor, sizes: Tensor, offsets: Tensor,
                 n_levels: int) -> Tensor:
    """Encode ``coords [n, D]`` in ``[0, 1]`` with multi-level factorised planes (module docstring).

    Args:
        coords: ``[n, D]``.
        table: ``[rows, C]`` every plane's features.
        axes, sizes, offsets: the planes (:class:`PlaneLayout`).
        n_levels: levels (``P / n_levels`` planes each, level-major).

    Returns:
        ``[n, n_levels * C]``, level-major; differentiable in ``table`` and ``coords`` (first
        derivatives).
    """
    _check(coords, table, axes, sizes, offsets, n_levels)
    if _kernel_serves(coords, table):
        return torch.ops.nerfgen.plane_fwd(coords.contiguous(), table.contiguous(), axes, sizes, offsets, n_levels)
    return plane_encode_torch(coords, table, axes, sizes, offsets, n_levels)


def _check(coords: Tensor, table: Tensor, axes: Tensor, sizes: Tensor, offsets: Tensor, n_levels: int) -> None:
    n_planes = axes.shape[0] if axes.dim() == 2 else -1
    if coords.dim() != 2 or coords.shape[1] < 2:
        raise ValueError(f"plane_encode: coords must be [n, D >= 2], got {tuple(coords.shape)}")
    if n_planes < 1 or axes.shape[1] != 2 or tuple(sizes.shape) != (n_planes, 2) or tuple(offsets.shape) != (n_planes,):
        raise ValueError(f"plane_encode: axes and sizes must be [P, 2] and offsets [P], got {tuple(axes.shape)}, "
                         f"{tuple(sizes.shape)}, {tuple(offsets.shape)}")
    if n_levels < 1 or n_planes % n_levels:
        raise ValueError(f"plane_encode: {n_planes} planes do not split into {n_levels} levels")
    if table.dim() != 2 or table.dtype != coords.dtype:
        raise ValueError(f"plane_encode: table must be [rows, C] of coords' dtype {coords.dtype}, got "
                         f"{table.dtype} {tuple(table.shape)}")
    devices = {t.device for t in (coords, table, axes, sizes, offsets)}
    if len(devices) != 1:
        raise ValueError(f"plane_encode: all tensors must be on one device, got {sorted(map(str, devices))}")


def _kernel_serves(coords: Tensor, table: Tensor) -> bool:
    """Whether the compiled kernel takes these tensors (dtype first: it never builds for others)."""
    if coords.dtype not in (torch.float32, torch.float64) or table.dtype != coords.dtype or table.shape[1] > 64:
        return False
    return _backend.backend_available(coords.device)
