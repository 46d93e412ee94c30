"""The original NeRF MLP (Mildenhall et al. 2020) with positional encoding."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nerfgen.fields.base import RadianceField
from nerfgen.fields.encodings import FrequencyEncoding


@dataclass
class VanillaFieldConfig:
    """Hyper-parameters of :class:`VanillaField` (the paper's values by default)."""

    depth: int = 8
    """Layers of the trunk."""
    width: int = 256
    """Width of the trunk."""
    skip: int = 4
    """Layer that sees the encoded input again."""
    position_frequencies: int = 10
    """Frequencies of the position encoding."""
    direction_frequencies: int = 4
    """Frequencies of the direction encoding."""


class VanillaField(RadianceField):
    """NeRF's 8x256 ReLU MLP: density from position, colour from position and direction."""

    def __init__(self, aabb: Tensor, config: VanillaFieldConfig | None = None) -> None:
        super().__init__(aabb)
        cfg = config or VanillaFieldConfig()
        self.config = cfg
        self.pos_enc = FrequencyEncoding(cfg.position_frequencies)
        self.dir_enc = FrequencyEncoding(cfg.direction_frequencies)
        dims = [self.pos_enc.out_dim] + [cfg.width] * cfg.depth
        self.trunk = nn.ModuleList(
            nn.Linear(dims[i] + (self.pos_enc.out_dim if i == cfg.skip else 0), dims[i + 1]) for i in range(cfg.depth)
        )
        self.sigma_head = nn.Linear(cfg.width, 1)
        self.feature = nn.Linear(cfg.width, cfg.width)
        self.color_head = nn.Sequential(
            nn.Linear(cfg.width + self.dir_enc.out_dim, cfg.width // 2), nn.ReLU(inplace=True),
            nn.Linear(cfg.width // 2, 3),
        )

    def _trunk(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        unit, inside = self.normalize(positions)
        x = self.pos_enc(unit * 2.0 - 1.0)
        h = x
        for i, layer in enumerate(self.trunk):
            if i == self.config.skip:
                h = torch.cat([h, x], -1)
            h = torch.relu(layer(h))
        sigma = torch.nn.functional.softplus(self.sigma_head(h)[:, 0]) * inside
        return sigma, h

    def density(self, positions: Tensor) -> Tensor:
        return self._trunk(positions)[0]

    def forward(self, positions: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
        sigma, h = self._trunk(positions)
        rgb = torch.sigmoid(self.color_head(torch.cat([self.feature(h), self.dir_enc(directions)], -1)))
        return sigma, rgb
