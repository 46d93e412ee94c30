"""Instant-ngp field: hash-grid density network and a spherical-harmonics colour network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from nerfgen.fields.activations import trunc_exp
from nerfgen.fields.base import Conditioning, FieldOutput, RadianceField
from nerfgen.fields.encodings import HashEncoding, SHEncoding, mlp


@dataclass
class NGPFieldConfig:
    """Hyper-parameters of :class:`NGPField` (instant-ngp's defaults, sized for a CPU)."""

    n_levels: int = 16
    """Hash-grid levels."""
    n_features: int = 2
    """Features per level."""
    log2_table_size: int = 19
    """log2 of the rows per level."""
    base_resolution: int = 16
    """Coarsest grid resolution."""
    max_resolution: int = 2048
    """Finest grid resolution (multiplied by the scene's cascade extent)."""
    hidden: int = 64
    """Width of both MLPs."""
    geo_features: int = 15
    """Features passed from the density network to the colour network."""
    color_layers: int = 2
    """Hidden layers of the colour network."""
    implementation: Literal["auto", "nerfgen", "tcnn"] = "auto"
    """Hash encoding backend: auto | nerfgen | tcnn."""
    blob_density: float = 0.0
    """Density bias of a blob at the box centre, ``blob_density * (1 - r / blob_radius)`` added to the
    raw density before its activation (Magic3D); it falls below zero beyond ``blob_radius``, which
    keeps the box edges empty. 0 turns it off. Text-to-3D starts from this blob."""
    blob_radius: float = 0.5
    """Distance from the box centre (world units) where the blob's bias crosses zero."""


class NGPField(RadianceField):
    """Hash-grid radiance field (Müller et al. 2022).

    Conditioning: an object transform (:class:`Conditioning`); no latent codes.

    >>> field = NGPField(torch.tensor([-1.0, -1, -1, 1, 1, 1]), NGPFieldConfig(log2_table_size=12))
    >>> out = field(torch.zeros(4, 3), torch.tensor([[0.0, 0, 1]]).expand(4, 3))
    >>> out.sigma.shape, out.rgb.shape
    (torch.Size([4]), torch.Size([4, 3]))
    """

    def __init__(self, aabb: Tensor, config: NGPFieldConfig | None = None) -> None:
        super().__init__(aabb)
        cfg = config or NGPFieldConfig()
        self.config = cfg
        self.encoding = HashEncoding(
            cfg.n_levels, cfg.n_features, cfg.log2_table_size, cfg.base_resolution, cfg.max_resolution,
            cfg.implementation,
        )
        self.density_net = mlp(self.encoding.out_dim, cfg.hidden, 1, 1 + cfg.geo_features)
        self.direction_encoding = SHEncoding()
        self.color_net = mlp(SHEncoding.out_dim + cfg.geo_features, cfg.hidden, cfg.color_layers, 3)

    def _geometry(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        unit, inside = self.normalize(positions)
        h = self.density_net(self.encoding(unit))
        raw = h[:, 0] - 1.0
        if self.config.blob_density != 0:
            center = (self.aabb[:3] + self.aabb[3:]) * 0.5
            raw = raw + self.config.blob_density * (1.0 - (positions - center).norm(dim=-1) / self.config.blob_radius)
        sigma = trunc_exp(raw) * inside
        return sigma, h[:, 1:]

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        positions, _ = self.local(positions, None, cond)
        return self._geometry(positions)[0]

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        positions, directions = self.local(positions, directions, cond)
        sigma, geo = self._geometry(positions)
        h = torch.cat([self.direction_encoding(directions), geo], -1)
        return FieldOutput(sigma, torch.sigmoid(self.color_net(h)))
