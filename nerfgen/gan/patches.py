"""GRAF's multi-scale patch sampler (Schwarz et al. 2020, section 3.1): ``P x P`` rays spread
over a square of random scale and position in the image, and the same square cut from real
images by bilinear sampling, so the discriminator sees generated and real patches alike.

Coordinates: the image spans ``[-1, 1]`` in both axes (x right, y down, ``grid_sample``'s
``align_corners=False`` convention): pixel column ``c`` has its centre at ``(2c + 1) / W - 1``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from nerfgen.gan.config import PatchConfig


def patch_scale_range(config: PatchConfig, step: int) -> tuple[float, float]:
    """``(s_min, s_max)``: the patch scale is drawn uniformly between them at ``step``."""
    s_min = max(config.min_scale, config.max_scale * math.exp(-config.anneal * step))
    return s_min, config.max_scale


def patch_grid(n: int, size: int, scale_range: tuple[float, float], generator: torch.Generator) -> Tensor:
    """``[n, size, size, 2]`` normalised (x, y) positions of ``n`` random patches.

    Each patch is a square of side ``s`` (the whole image at ``s = 1``) with ``s`` uniform in
    ``scale_range``, placed uniformly where it fits inside the image.
    """
    lo, hi = scale_range
    u = torch.rand(n, 3, generator=generator)
    s = lo + (hi - lo) * u[:, 0]
    offset = (2 * u[:, 1:] - 1) * (1 - s)[:, None]  # [n, 2] centre, inside the image
    base = (2 * torch.arange(size, dtype=torch.float32) + 1) / size - 1  # [size] pixel centres of a full patch
    gy, gx = torch.meshgrid(base, base, indexing="ij")
    grid = torch.stack([gx, gy], -1)  # [size, size, 2]
    return grid[None] * s[:, None, None, None] + offset[:, None, None, :]


def grid_pixels(grid: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Continuous pixel coordinates ``px, py [n, P * P]`` of normalised positions ``grid [n, P, P, 2]``."""
    px = (grid[..., 0] + 1) * 0.5 * width
    py = (grid[..., 1] + 1) * 0.5 * height
    return px.flatten(1), py.flatten(1)


def cut_patches(images: Tensor, grid: Tensor) -> Tensor:
    """The patches ``[n, C, P, P]`` of ``images [n, C, H, W]`` at ``grid [n, P, P, 2]`` (bilinear)."""
    return F.grid_sample(images, grid.to(images), mode="bilinear", padding_mode="border", align_corners=False)
