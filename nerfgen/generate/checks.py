"""Does a generated object look like its phrase? The checks the built-in prior's tests and
benchmarks apply to renders: hue against the named colour, silhouette against the named shape of
the procedural object library (:mod:`nerfgen.scenes.objects`), and the relations of a scene.

>>> [round(float(h)) for h in hue_degrees(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]))]
[0, 120, 240]
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.cameras import Views
from nerfgen.prior.colour import foreground_mask
from nerfgen.scenes.object_views import render_views
from nerfgen.scenes.objects import COLOURS, ObjectSpec, Part, build_object

SIZES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Scales of the library's shape a silhouette is compared at (the prior decides the size)."""
HUE_TOLERANCE = 30.0
"""Degrees a foreground's hue may be from its colour's."""
MIN_CHROMA = 0.25
"""Max minus min channel below which a pixel has no hue to speak of."""


def hue_degrees(rgb: Tensor) -> Tensor:
    """``[n, 3]`` -> hue ``[n]`` in degrees (0 red, 120 green, 240 blue)."""
    r, g, b = rgb.unbind(-1)
    return torch.rad2deg(torch.atan2(3**0.5 * (g - b), 2 * r - g - b)) % 360


def hue_fraction(rgb: Tensor, colour: str) -> float:
    """Fraction of the pixels ``rgb [n, 3]`` whose hue is within :data:`HUE_TOLERANCE` of the
    library colour ``colour``'s and whose chroma is at least :data:`MIN_CHROMA`."""
    if len(rgb) == 0:
        return 0.0
    target = float(hue_degrees(torch.tensor([COLOURS[colour]]))[0])
    gap = (hue_degrees(rgb) - target).abs()
    near = torch.minimum(gap, 360 - gap) < HUE_TOLERANCE
    chroma = rgb.max(-1).values - rgb.min(-1).values
    return float((near & (chroma > MIN_CHROMA)).float().mean())


def shape_ious(masks: Tensor, views: Views, shape: str, fov: float) -> Tensor:
    """``[V]`` IoU of ``masks [V, R, R]`` with the library's ``shape`` seen from ``views`` (fields
    of view ``fov`` degrees), each view at its best of :data:`SIZES`."""
    cameras = torch.stack([views.elevation, views.azimuth, views.distance], -1).numpy()
    best = torch.zeros(masks.shape[0])
    for scale in SIZES:
        images = render_views(build_object(ObjectSpec((Part(shape, "red", scale=scale),))), cameras,
                              masks.shape[-1], fov, 1)
        other = foreground_mask(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255)
        iou = (other & masks).sum((1, 2)) / (other | masks).sum((1, 2)).clamp(min=1)
        best = torch.maximum(best, iou.float())
    return best


def centroid(mask: Tensor) -> Tensor | None:
    """``(row, column)`` of a boolean ``[H, W]`` mask's pixels, or None when it is empty."""
    pixels = torch.nonzero(mask).float()
    return pixels.mean(0) if len(pixels) else None


def touching(a: Tensor, b: Tensor, reach: int = 2) -> bool:
    """Whether boolean masks ``a`` and ``b`` ``[H, W]`` come within ``reach`` pixels of each other."""
    grown = F.max_pool2d(a[None, None].float(), 2 * reach + 1, 1, reach)[0, 0] > 0
    return bool((grown & b).any())
