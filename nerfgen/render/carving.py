"""Space carving: cells that every camera sees as background hold nothing."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.cameras import Cameras, project


@torch.no_grad()
def visual_hull(centers: Tensor, cell_size: float, cameras: Cameras, alphas: Tensor) -> Tensor:
    """Which cells may hold something, given alpha masks (the visual hull, conservatively dilated).

    A cell is carved away when, in some view that sees its centre, its whole projected footprint
    is fully transparent (alpha 0). Footprints are covered by max-pooling each mask to about the
    cell's projected radius and dilating by one pooled pixel.

    Args:
        centers: ``[n_cells, 3]`` cell centres.
        cell_size: edge length of a cell.
        cameras: the views.
        alphas: ``[n_views, H, W]`` uint8 alpha masks.

    Returns:
        ``[n_cells]`` bool, True where the cell lies inside the hull.
    """
    keep = torch.ones(centers.shape[0], dtype=torch.bool)
    radius = 0.5 * math.sqrt(3.0) * cell_size
    for view in range(len(cameras)):
        px, py, depth = project(cameras, view, centers)
        near = float(depth[depth > 0].min()) if bool((depth > 0).any()) else 1.0
        pool = max(1, math.ceil(radius * float(cameras.fx[view]) / max(near, 1e-3)))
        mask = (alphas[view] > 0).float()[None, None]
        pooled = F.max_pool2d(mask, pool, pool, ceil_mode=True)
        pooled = F.max_pool2d(pooled, 3, 1, padding=1)[0, 0] > 0  # [h', w']
        col, row = (px / pool).floor().long(), (py / pool).floor().long()
        seen = (depth > 0) & (px >= 0) & (py >= 0) & (px < cameras.width) & (py < cameras.height)
        col, row = col.clamp(0, pooled.shape[1] - 1), row.clamp(0, pooled.shape[0] - 1)
        keep &= ~seen | pooled[row, col]
    return keep
