"""Differentiable augmentation of what the discriminator sees (DiffAugment, Zhao et al. 2020), with
ADA's adaptive strength (Karras et al. 2020): real and generated images get the same kinds of random
translation and cutout, each applied to an image with probability ``p``, so the discriminator cannot
memorise a small set and the generator still gets gradients through the augmentation. With a
``target``, ``p`` follows how sure the discriminator is of the real images: it rises while
:math:`E[\\mathrm{sign}(D(x))]` is above the target (overfitting) and falls below it.

>>> g = torch.Generator().manual_seed(0)
>>> augment(torch.zeros(4, 3, 16, 16), ("translation", "cutout"), 1.0, g).shape
torch.Size([4, 3, 16, 16])
"""

from __future__ import annotations

import torch
from torch import Tensor

from nerfgen.gan.config import AugmentConfig

TRANSLATION = 0.125
"""Largest shift, as a fraction of the side (DiffAugment's)."""
CUTOUT = 0.25
"""Side of the square cut out, as a fraction of the side."""


def translate(images: Tensor, apply: Tensor, generator: torch.Generator) -> Tensor:
    """Shift the images where ``apply [B]`` by whole pixels, up to :data:`TRANSLATION` of the side in
    x and y, the edge pixels repeated into the gap."""
    b, _, h, w = images.shape
    shift = torch.randint(-int(TRANSLATION * w), int(TRANSLATION * w) + 1, (b, 2), generator=generator)
    shift = shift * apply[:, None].long()
    ys = (torch.arange(h)[None] - shift[:, 1:2]).clamp(0, h - 1)  # [B, H]
    xs = (torch.arange(w)[None] - shift[:, 0:1]).clamp(0, w - 1)  # [B, W]
    index = (ys[:, :, None] * w + xs[:, None, :]).to(images.device)  # [B, H, W]
    flat = images.flatten(2)
    return flat.gather(2, index.flatten(1)[:, None].expand(-1, images.shape[1], -1)).view_as(images)


def cutout(images: Tensor, apply: Tensor, generator: torch.Generator) -> Tensor:
    """Set a square of :data:`CUTOUT` of the side, anywhere, to 0 (mid-grey in [-1, 1]) where ``apply [B]``."""
    b, _, h, w = images.shape
    size_y, size_x = max(1, int(CUTOUT * h)), max(1, int(CUTOUT * w))
    corner = torch.rand(b, 2, generator=generator)
    y0 = (corner[:, 0] * (h - size_y + 1)).long()
    x0 = (corner[:, 1] * (w - size_x + 1)).long()
    ys, xs = torch.arange(h), torch.arange(w)
    inside = ((ys[None, :, None] >= y0[:, None, None]) & (ys[None, :, None] < (y0 + size_y)[:, None, None])
              & (xs[None, None, :] >= x0[:, None, None]) & (xs[None, None, :] < (x0 + size_x)[:, None, None]))
    keep = ~(inside & apply[:, None, None])
    return images * keep[:, None].to(images)


def augment(images: Tensor, policy: tuple[str, ...], p: float, generator: torch.Generator) -> Tensor:
    """``images [B, C, H, W]`` with each of ``policy`` applied to each image with probability ``p``
    (the draws come from ``generator``; differentiable in ``images``)."""
    for name in policy:
        apply = torch.rand(images.shape[0], generator=generator) < p
        if not apply.any():
            continue
        images = translate(images, apply, generator) if name == "translation" else cutout(images, apply, generator)
    return images


def adapt(p: float, real_logits: Tensor, config: AugmentConfig, images: int) -> float:
    """ADA's update of ``p`` after a step that showed the discriminator ``images`` real images:
    up (or down) by ``images / config.adapt_images`` as :math:`E[\\mathrm{sign}(D(x))]` is above
    (or below) ``config.target``; unchanged without a target."""
    if config.target <= 0:
        return p
    overfit = float(torch.sign(real_logits.detach()).mean())
    step = images / config.adapt_images
    return min(config.max_probability, max(0.0, p + (step if overfit > config.target else -step)))


__all__ = ["adapt", "augment", "cutout", "translate"]
