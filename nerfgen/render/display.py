"""Turning renders into pictures: colour-mapped depth."""

from __future__ import annotations

import torch
from torch import Tensor


def colorize_depth(depth: Tensor, opacity: Tensor) -> Tensor:
    """``[H, W]`` depth -> ``[H, W, 3]`` colour (near warm, far cool; empty pixels black)."""
    valid = opacity > 0.5
    lo = float(depth[valid].min()) if bool(valid.any()) else 0.0
    hi = float(depth[valid].max()) if bool(valid.any()) else 1.0
    t = ((depth - lo) / max(hi - lo, 1e-6)).clamp(0, 1)
    rgb = torch.stack([1.0 - t, 1.0 - (2 * t - 1).abs(), t], -1)
    return rgb * valid[..., None]
