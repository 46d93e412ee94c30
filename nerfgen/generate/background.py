"""What lies behind a generated object: a network of the view direction, or a colour."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nerfgen.fields.encodings import SHEncoding, mlp

BACKGROUND_FILE = "background.safetensors"
"""The background network's weights in a run directory (when it has one)."""


class Background(nn.Module):
    """Background colour per ray.

    Args:
        mode: ``mlp`` (a small network of the spherical harmonics of the ray direction, so the
            background cannot depend on where the ray starts and stays at infinity), ``white``,
            ``black`` or ``random`` (one random colour per image, so the object cannot blend
            into a fixed backdrop).
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        if mode == "mlp":
            self.encoding = SHEncoding()
            self.net = mlp(SHEncoding.out_dim, 32, 1, 3)

    def forward(self, directions: Tensor, n_images: int, generator: torch.Generator) -> Tensor:
        """``directions [n_images * P, 3]`` (image-major) -> colours ``[n_images * P, 3]`` in [0, 1]."""
        if self.mode == "mlp":
            return torch.sigmoid(self.net(self.encoding(directions)))
        if self.mode == "random":
            colors = torch.rand(n_images, 3, generator=generator).to(directions)
            return colors.repeat_interleave(directions.shape[0] // n_images, 0)
        return torch.full_like(directions, 1.0 if self.mode == "white" else 0.0)

    def display_color(self) -> Tensor:
        """``[3]`` the colour previews and orbit videos use (white unless the background is black)."""
        return torch.zeros(3) if self.mode == "black" else torch.ones(3)
