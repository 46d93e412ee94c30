r"""The discriminator (DCGAN-style, as GRAF and GIRAFFE use) and the adversarial losses:
the non-saturating GAN loss and the R1 penalty on real images (Mescheder et al. 2018),

.. math::
    L_D = \mathrm{softplus}(-D(x)) + \mathrm{softplus}(D(G(z))) + \tfrac{\gamma}{2}\|\nabla_x D(x)\|^2,
    \qquad L_G = \mathrm{softplus}(-D(G(z))).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class Discriminator(nn.Module):
    """``[B, 3, S, S]`` images in [-1, 1] -> ``[B]`` logits: stride-2 4x4 convolutions with leaky
    ReLUs down to 4x4, then a 4x4 convolution to one logit.

    Args:
        side: input side, a power of two >= 8 (GRAF: the patch size; GIRAFFE: the image size).
        width: channels of the first layer, doubling per layer up to ``8 * width``.
        group: with ``group >= 2``, the 4x4 features get one more channel before the last
            convolution: their standard deviation over groups of ``group`` images of the batch
            (StyleGAN's minibatch standard deviation), so a batch of look-alikes is told from
            real variety (a generator collapsing to one colour is caught); 0: none.

    >>> Discriminator(16, 8)(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2])
    """

    def __init__(self, side: int, width: int = 64, group: int = 0) -> None:
        super().__init__()
        downs = int(round(math.log2(side / 4)))
        if side < 8 or 4 * 2 ** downs != side:
            raise ValueError(f"Discriminator: side must be a power of two >= 8, got {side}")
        channels = [3] + [min(width * 2 ** i, 8 * width) for i in range(downs)]
        self.convs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], 4, 2, 1) for i in range(downs))
        self.out = nn.Conv2d(channels[-1] + (group >= 2), 1, 4, 1, 0)
        self.side, self.group = side, group

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[-2:] != (self.side, self.side):
            raise ValueError(f"Discriminator takes {self.side}x{self.side} images, got {list(images.shape)}")
        h = images
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
        if self.group >= 2:
            h = torch.cat([h, minibatch_std(h, self.group)], 1)
        return self.out(h).view(-1)


def minibatch_std(features: Tensor, group: int) -> Tensor:
    """``[B, 1, H, W]``: the standard deviation of ``features [B, C, H, W]`` across each group of
    ``group`` images (the whole batch when it does not divide into groups), averaged over
    channels and positions, broadcast over each group's images."""
    b = features.shape[0]
    g = group if b % group == 0 else b
    std = (features.view(g, b // g, *features.shape[1:]).var(0, unbiased=False) + 1e-8).sqrt()  # [B/g, C, H, W]
    return std.mean((1, 2, 3)).view(1, b // g, 1, 1, 1).expand(g, -1, 1, *features.shape[2:]).reshape(
        b, 1, *features.shape[2:])


def r1_penalty(logits: Tensor, images: Tensor) -> Tensor:
    r""":math:`\mathbb{E}\,\|\nabla_x D(x)\|^2` of real ``images`` (which require grad) and
    their ``logits``; differentiable (for the discriminator's update)."""
    (grad,) = torch.autograd.grad(logits.sum(), images, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Non-saturating discriminator loss (without the penalty)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss."""
    return F.softplus(-fake_logits).mean()
