"""What lies behind a scene: the one place that turns a background name into colours.

Training draws backgrounds with :class:`Background` (a fixed colour, a random colour per ray or per
image, or a network of the view direction); a run is shown and evaluated on a plain colour
(:func:`background_color` of its ``background``, white or black).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nerfgen.fields.encodings import SHEncoding, mlp

BACKGROUNDS = ("random", "white", "black", "mlp")
"""Training backgrounds :class:`Background` draws."""
SHOWN_ON = ("white", "black")
"""Backgrounds a run is shown and evaluated on."""


def background_color(name: str) -> Tensor:
    """``[3]`` the colour a run is shown on: ``white`` or ``black``."""
    if name not in SHOWN_ON:
        raise ValueError(f"unknown display background {name!r}; expected one of {', '.join(SHOWN_ON)}")
    return torch.ones(3) if name == "white" else torch.zeros(3)


def training_background(mode: str, has_alpha: bool, shown_on: str = "black") -> str:
    """Resolve ``auto``: random colours where images have alpha (instant-ngp), else the plain
    colour the run is shown on (``shown_on``: what the images' own backdrop is, so that what the
    field leaves empty renders as the images show it); other modes pass through."""
    if mode != "auto":
        return mode
    return "random" if has_alpha else shown_on


class Background(nn.Module):
    """Background colour per ray.

    Args:
        mode: ``mlp`` (a small network of the spherical harmonics of the ray direction, so the
            background cannot depend on where the ray starts and stays at infinity), ``white``,
            ``black`` or ``random`` (a random colour per group of rays: per ray for a batch of
            pixels, per image for whole renders, so the scene cannot blend into a fixed backdrop).
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in BACKGROUNDS:
            raise ValueError(f"unknown background {mode!r}; expected one of {', '.join(BACKGROUNDS)}")
        self.mode = mode
        if mode == "mlp":
            self.encoding = SHEncoding()
            self.net = mlp(SHEncoding.out_dim, 32, 1, 3)

    def forward(self, directions: Tensor, groups: int, generator: torch.Generator) -> Tensor:
        """``directions [groups * P, 3]`` (group-major) -> colours ``[groups * P, 3]`` in [0, 1]."""
        if self.mode == "mlp":
            return torch.sigmoid(self.net(self.encoding(directions)))
        if self.mode == "random":
            colors = torch.rand(groups, 3, generator=generator).to(directions)
            per_group = directions.shape[0] // groups
            return colors if per_group == 1 else colors.repeat_interleave(per_group, 0)
        return torch.full_like(directions, 1.0 if self.mode == "white" else 0.0)

    @property
    def shown_on(self) -> str:
        """The plain background renders of this scene are shown on: black for black, else white."""
        return "black" if self.mode == "black" else "white"
