"""GIRAFFE's 2D neural renderer: a low-resolution feature image, volume-rendered from feature
fields, upsampled to an RGB image (Niemeyer & Geiger 2021, section 3.3).

Each stage doubles the resolution (nearest neighbour, then a 3x3 convolution and a leaky ReLU)
and adds its own RGB prediction to the bilinearly upsampled RGB of the stage below, so the output
is a sum of RGB images at every scale: the coarse colour stays tied to the 3D features and the
convolutions add detail (the skip connections that keep GIRAFFE's renders consistent in 3D).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class NeuralRenderer(nn.Module):
    """``[B, features, h, w]`` feature image -> ``[B, 3, h * upsample, w * upsample]`` RGB in [0, 1].

    Args:
        features: channels of the feature image.
        upsample: output size over input size, a power of two (1: no upsampling, one RGB head).
        width: channels of the first stage; each further stage halves it (at least 16).

    >>> NeuralRenderer(16, 4, 64)(torch.zeros(2, 16, 8, 8)).shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(self, features: int, upsample: int = 4, width: int = 128) -> None:
        super().__init__()
        stages = int(round(math.log2(upsample)))
        if upsample < 1 or 2 ** stages != upsample:
            raise ValueError(f"NeuralRenderer: upsample must be a power of two, got {upsample}")
        channels = [max(16, width // 2 ** i) for i in range(stages + 1)]
        self.stem = nn.Conv2d(features, channels[0], 1)
        self.convs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], 3, padding=1) for i in range(stages))
        self.to_rgb = nn.ModuleList(nn.Conv2d(c, 3, 3, padding=1) for c in channels)

    @property
    def upsample(self) -> int:
        return 2 ** len(self.convs)

    def forward(self, features: Tensor) -> Tensor:
        h = self.stem(features)
        rgb = self.to_rgb[0](h)
        for conv, to_rgb in zip(self.convs, self.to_rgb[1:]):
            h = F.leaky_relu(conv(F.interpolate(h, scale_factor=2.0, mode="nearest")), 0.2)
            rgb = F.interpolate(rgb, scale_factor=2.0, mode="bilinear", align_corners=False) + to_rgb(h)
        return torch.sigmoid(rgb)
