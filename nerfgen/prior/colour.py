"""Colour of the foreground of images over white: to check that samples have the prompted colour.

>>> img = torch.ones(1, 3, 8, 8); img[:, :, 2:6, 2:6] = torch.tensor([0.8, 0.1, 0.1])[:, None, None]
>>> round(foreground_hue(img)[0].item(), 2)
0.0
"""

from __future__ import annotations

import torch
from torch import Tensor

HUES = {"red": 0.0, "orange": 0.075, "yellow": 0.15, "green": 0.33, "cyan": 0.51, "blue": 0.63,
        "purple": 0.78, "pink": 0.92}
"""Hue (in turns) of the chromatic named colours of :data:`scenes.objects.COLOURS`, as rendered."""


def foreground_mask(images: Tensor, threshold: float = 0.3) -> Tensor:
    """``[B, H, W]`` bool: pixels of ``images [B, 3, H, W]`` in [0, 1] farther than ``threshold``
    (RGB distance) from the white background."""
    return (1 - images).norm(dim=1) > threshold


def mean_foreground(images: Tensor, threshold: float = 0.3) -> Tensor:
    """``[B, 3]`` mean colour of each image's foreground (white where there is none)."""
    mask = foreground_mask(images, threshold).unsqueeze(1).float()  # [B, 1, H, W]
    total = mask.sum(dim=(2, 3)).clamp(min=1)
    mean = (images * mask).sum(dim=(2, 3)) / total
    return torch.where(mask.sum(dim=(2, 3)) > 0, mean, torch.ones_like(mean))


def rgb_to_hsv(rgb: Tensor) -> Tensor:
    """``[..., 3]`` RGB in [0, 1] -> HSV with hue in turns [0, 1)."""
    r, g, b = rgb.unbind(-1)
    v, _ = rgb.max(-1)
    c = v - rgb.min(-1).values
    s = torch.where(v > 0, c / v.clamp(min=1e-8), torch.zeros_like(v))
    safe = c.clamp(min=1e-8)
    h = torch.where(v == r, ((g - b) / safe) % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    return torch.stack([torch.where(c > 0, h % 1.0, torch.zeros_like(h)), s, v], -1)


def foreground_hue(images: Tensor, threshold: float = 0.3) -> Tensor:
    """``[B]`` hue (turns) of each image's mean foreground colour."""
    return rgb_to_hsv(mean_foreground(images, threshold))[:, 0]


def hue_distance(hue: Tensor, target: float) -> Tensor:
    """Circular distance in turns (0 to 0.5)."""
    d = (hue - target) % 1.0
    return torch.minimum(d, 1 - d)


def nearest_hue_name(hue: Tensor) -> list[str]:
    """Name in :data:`HUES` nearest to each hue ``[B]``."""
    names = list(HUES)
    d = torch.stack([hue_distance(hue, HUES[n]) for n in names], -1)  # [B, n]
    return [names[i] for i in d.argmin(-1).tolist()]


def hue_fraction(images: Tensor, target: float, tolerance: float = 0.08, threshold: float = 0.3,
                 min_saturation: float = 0.25) -> Tensor:
    """Fraction ``[B]`` of each image's coloured foreground pixels (saturation above
    ``min_saturation``) whose hue lies within ``tolerance`` turns of ``target``."""
    hsv = rgb_to_hsv(images.permute(0, 2, 3, 1))  # [B, H, W, 3]
    mask = foreground_mask(images, threshold) & (hsv[..., 1] > min_saturation)
    near = (hue_distance(hsv[..., 0], target) < tolerance) & mask
    return near.sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1)
