"""What every radiance field provides to the renderer."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RadianceField(nn.Module):
    """A field over a box: ``field(positions, directions) -> (sigma, rgb)``.

    Subclasses implement :meth:`density` and :meth:`forward`. Points outside ``aabb`` have zero
    density. Fields know nothing about rays or cameras.

    Args:
        aabb: ``[6]`` the box the field covers (``xmin, ymin, zmin, xmax, ymax, zmax``).
    """

    def __init__(self, aabb: Tensor) -> None:
        super().__init__()
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).clone())

    def normalize(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """``positions [n, 3]`` -> points in ``[0, 1]^3`` (clamped) and an inside mask ``[n]``."""
        lo, hi = self.aabb[:3], self.aabb[3:]
        unit = (positions - lo) / (hi - lo)
        inside = ((unit >= 0) & (unit <= 1)).all(-1)
        return unit.clamp(0.0, 1.0), inside

    def density(self, positions: Tensor) -> Tensor:
        """``positions [n, 3]`` -> ``sigma [n]``."""
        raise NotImplementedError

    def forward(self, positions: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
        """``positions [n, 3]``, unit ``directions [n, 3]`` -> ``sigma [n]``, ``rgb [n, 3]`` in [0, 1]."""
        raise NotImplementedError
