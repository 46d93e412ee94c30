"""A deformation field (D-NeRF, TiNeuVox): a static canonical scene and a map from each instant into it.

A point ``x`` at time ``t`` is moved to ``x + dx(x, t)`` in the canonical space, where an
instant-ngp hash-grid field (:class:`~nerfgen.fields.NGPField`) gives density and colour. The
deformation ``dx`` is a small MLP on space-time feature planes (TiNeuVox's time-aware voxels,
here K-Planes' factorisation, :class:`~nerfgen.fields.planes.PlaneEncoding`), whose last layer
starts at zero: a fresh field is static. Its planes carry K-Planes' regularisers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from nerfgen.fields.base import Conditioning, FieldOutput, RadianceField
from nerfgen.fields.encodings import mlp
from nerfgen.fields.kplanes import space_time
from nerfgen.fields.ngp import NGPField, NGPFieldConfig
from nerfgen.fields.planes import PlaneEncoding

_CANONICAL = ("n_levels", "n_features", "log2_table_size", "base_resolution", "max_resolution", "hidden",
              "geo_features", "color_layers")


@dataclass
class DeformFieldConfig:
    """Hyper-parameters of :class:`DeformField`: the canonical hash grid's (as instant-ngp's, named
    as :class:`~nerfgen.fields.NGPFieldConfig`'s) and the deformation's."""

    n_levels: int = 16
    n_features: int = 2
    log2_table_size: int = 17
    base_resolution: int = 16
    max_resolution: int = 2048
    hidden: int = 64
    geo_features: int = 15
    color_layers: int = 2
    deform_resolution: int = 32
    """Space resolution of the coarsest level of the deformation's planes."""
    deform_scales: list[int] = field(default_factory=lambda: [1, 2])
    """Each deformation level's space resolution as a multiple of ``deform_resolution``."""
    time_resolution: int = 16
    """Grid points along time of the deformation's planes."""
    deform_features: int = 8
    """Channels of each deformation plane."""
    deform_hidden: int = 64
    """Width of the deformation MLP (one hidden layer)."""
    deform_lr: float = 0.1
    """The deformation's learning rate as a share of the run's (``lr``, set for the hash grid):
    at the full rate the deformation follows the fine levels' noisy position gradients and the
    run diverges."""
    space_tv: float = 0.0
    plane_tv: float = 1e-4
    time_smoothness: float = 0.01
    time_l1: float = 1e-4

    def validate(self, source: str) -> None:
        if self.deform_resolution < 2 or self.time_resolution < 2 or min(self.deform_scales, default=0) < 1:
            raise ValueError(f"{source}: deform_resolution and time_resolution must be >= 2 and deform_scales >= 1")
        if min(self.space_tv, self.plane_tv, self.time_smoothness, self.time_l1) < 0:
            raise ValueError(f"{source}: regulariser weights must be >= 0")
        if not self.deform_lr > 0:
            raise ValueError(f"{source}: deform_lr must be > 0, got {self.deform_lr}")

    def canonical(self) -> NGPFieldConfig:
        """The canonical field's config."""
        return NGPFieldConfig(**{k: getattr(self, k) for k in _CANONICAL})


class DeformField(RadianceField):
    """A canonical hash-grid field seen through a deformation (module docstring).

    Conditioning: ``time`` (required), and an object transform.
    """

    accepts = frozenset({"transform", "time"})

    def __init__(self, aabb: Tensor, config: DeformFieldConfig | None = None) -> None:
        super().__init__(aabb)
        cfg = config or DeformFieldConfig()
        self.config = cfg
        self.canonical = NGPField(aabb, cfg.canonical())
        self.deform_encoding = PlaneEncoding(cfg.deform_resolution, cfg.deform_scales, cfg.time_resolution,
                                             cfg.deform_features)
        self.deform_net = mlp(self.deform_encoding.out_dim, cfg.deform_hidden, 1, 3)
        torch.nn.init.zeros_(self.deform_net[-1].weight)
        torch.nn.init.zeros_(self.deform_net[-1].bias)

    @property
    def contraction(self) -> str:  # the canonical field sees the points, in the same space
        return self.canonical.contraction

    @contraction.setter
    def contraction(self, value: str) -> None:
        self.canonical.contraction = value

    def deformation(self, positions: Tensor, cond: Conditioning | None) -> Tensor:
        """``[n, 3]``: where each point at its time is in the canonical space, minus where it is."""
        coords, _ = space_time(self, positions, cond)
        scale = (self.aabb[3:] - self.aabb[:3]) * 0.5
        return self.deform_net(self.deform_encoding(coords)) * scale

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        positions, _ = self.local(positions, None, cond)
        return self.canonical.density(positions + self.deformation(positions, cond))

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        positions, directions = self.local(positions, directions, cond)
        return self.canonical(positions + self.deformation(positions, cond), directions)

    def lr_scales(self) -> dict[str, float]:
        return {"deform_": self.config.deform_lr}

    def regularizers(self) -> dict[str, Tensor]:
        cfg = self.config
        return self.deform_encoding.regularizers(cfg.space_tv, cfg.plane_tv, cfg.time_smoothness, cfg.time_l1)

