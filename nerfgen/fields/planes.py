"""Learned space-time feature planes (K-Planes): the encoding and K-Planes' regularisers on it.

:class:`PlaneEncoding` holds the planes of :func:`~nerfgen.ops.planes.plane_layout` in one table and
encodes points ``[n, 4]`` (space in ``[0, 1]^3``, then time in ``[0, 1]``) with
:func:`~nerfgen.ops.planes.plane_encode`. Space planes start uniform in ``[0.1, 0.5]``, time planes
at 1, so a fresh encoding is static (K-Planes' initialisation); the regularisers are

- total variation along space of the space planes (``space_tv``) and of the time planes (``plane_tv``),
- smoothness of the time planes along time, the squared second difference (``time_smoothness``),
- L1 of the time planes' distance from 1, which keeps static parts static (``time_l1``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nerfgen.ops.planes import PAIRS_4D, plane_encode, plane_layout


class PlaneEncoding(nn.Module):
    """Multi-level space-time planes.

    Args:
        resolution: space resolution of the coarsest level.
        scales: each level's space resolution, as multiples of ``resolution``.
        time_resolution: grid points along time (every level).
        features: channels of each plane.
    """

    def __init__(self, resolution: int, scales: list[int], time_resolution: int, features: int) -> None:
        super().__init__()
        levels = [(resolution * s,) * 3 + (time_resolution,) for s in scales]
        layout = plane_layout(levels, PAIRS_4D)
        self.n_levels, self.features = layout.n_levels, features
        self.register_buffer("axes", layout.axes, persistent=False)
        self.register_buffer("sizes", layout.sizes, persistent=False)
        self.register_buffer("offsets", layout.offsets, persistent=False)
        self.planes = [(int(o), int(ru), int(rv), bool(b == 3)) for o, (_, b), (ru, rv)
                       in zip(layout.offsets, layout.axes.tolist(), layout.sizes.tolist())]
        table = torch.empty(layout.rows, features)
        for offset, ru, rv, timed in self.planes:
            rows = table[offset:offset + ru * rv]
            if timed:
                rows.fill_(1.0)
            else:
                rows.uniform_(0.1, 0.5)
        self.table = nn.Parameter(table)
        self.out_dim = self.n_levels * features

    def forward(self, coords: Tensor) -> Tensor:
        """``coords [n, 4]`` in ``[0, 1]`` -> ``[n, n_levels * features]``."""
        return plane_encode(coords, self.table, self.axes, self.sizes, self.offsets, self.n_levels)

    def _grids(self, timed: bool) -> list[Tensor]:
        """Each plane (of time, or of space) as ``[R^v, R^u, C]``: views of one slice of the table
        (the time planes are one block of it), so the regularisers' gradient is one slice's."""
        chosen = [(o, ru, rv) for o, ru, rv, t in self.planes if t == timed]
        if not chosen:
            return []
        start = min(o for o, _, _ in chosen)
        block = self.table[start:max(o + ru * rv for o, ru, rv in chosen)]
        return [block[o - start:o - start + ru * rv].view(rv, ru, self.features) for o, ru, rv in chosen]

    def regularizers(self, space_tv: float, plane_tv: float, time_smoothness: float, time_l1: float
                     ) -> dict[str, Tensor]:
        """K-Planes' regularisers, weighted (those of weight 0 left out): total variation along
        space of the space planes (``space_tv``: they hold most of the entries, so on a CPU it costs
        as much as a third of a step) and of the time planes (``plane_tv``), time smoothness and
        time L1 of the time planes."""
        terms: dict[str, Tensor] = {}
        time = self._grids(True)
        if space_tv > 0:
            space = self._grids(False)
            tv = sum(((g[1:] - g[:-1]) ** 2).mean() + ((g[:, 1:] - g[:, :-1]) ** 2).mean() for g in space)
            terms["space_tv"] = space_tv * tv / len(space)
        if plane_tv > 0 and time:
            terms["plane_tv"] = plane_tv * sum(((g[:, 1:] - g[:, :-1]) ** 2).mean() for g in time) / len(time)
        if time_smoothness > 0 and time:
            smooth = sum(((g[2:] - 2 * g[1:-1] + g[:-2]) ** 2).mean() for g in time if g.shape[0] > 2)
            terms["time_smoothness"] = time_smoothness * smooth / len(time)
        if time_l1 > 0 and time:
            terms["time_l1"] = time_l1 * sum((1.0 - g).abs().mean() for g in time) / len(time)
        return terms
