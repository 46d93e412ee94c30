"""K-Planes (Fridovich-Keil et al. 2023): a dynamic radiance field on six space-time feature planes.

A point ``x`` at time ``t`` is encoded by the products of bilinear lookups in the planes xy, xz, yz,
xt, yt, zt at several space resolutions (:class:`~nerfgen.fields.planes.PlaneEncoding`), the levels
concatenated; a small MLP turns that into density and geometry features, a second one (with
spherical harmonics of the view direction) into colour, as instant-ngp's field does. The
regularisers of K-Planes (space total variation, time smoothness, time L1) come from
:meth:`KPlanesField.regularizers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from nerfgen.fields.activations import trunc_exp
from nerfgen.fields.base import Conditioning, FieldOutput, RadianceField
from nerfgen.fields.encodings import SHEncoding, fused_layers, mlp
from nerfgen.fields.planes import PlaneEncoding
from nerfgen.ops.mlp import ngp_density, ngp_mlp


@dataclass
class KPlanesFieldConfig:
    """Hyper-parameters of :class:`KPlanesField` (K-Planes' hybrid model, sized for a CPU)."""

    resolution: int = 64
    """Space resolution of the coarsest level of planes."""
    scales: list[int] = field(default_factory=lambda: [1, 2, 4])
    """Each level's space resolution as a multiple of ``resolution`` (K-Planes: 1, 2, 4, 8)."""
    time_resolution: int = 16
    """Grid points along time (K-Planes: half the capture's frames)."""
    features: int = 16
    """Channels of each plane (K-Planes: 32)."""
    hidden: int = 64
    """Width of both MLPs."""
    geo_features: int = 15
    """Features passed from the density network to the colour network."""
    color_layers: int = 2
    """Hidden layers of the colour network."""
    space_tv: float = 0.0
    """Weight of the space planes' total variation (K-Planes: 1e-4; off by default: on a CPU it
    costs about a third of a step)."""
    plane_tv: float = 1e-4
    """Weight of the time planes' total variation along space."""
    time_smoothness: float = 0.1
    """Weight of the time planes' smoothness (squared second difference along time)."""
    time_l1: float = 1e-4
    """Weight of the time planes' L1 distance from 1 (static where nothing moves)."""

    def validate(self, source: str) -> None:
        if self.resolution < 2 or self.time_resolution < 2 or not self.scales or min(self.scales) < 1:
            raise ValueError(f"{source}: resolution and time_resolution must be >= 2 and scales >= 1, got "
                             f"{self.resolution}, {self.time_resolution}, {self.scales}")
        if min(self.space_tv, self.plane_tv, self.time_smoothness, self.time_l1) < 0:
            raise ValueError(f"{source}: regulariser weights must be >= 0")


def space_time(field: RadianceField, positions: Tensor, cond: Conditioning | None) -> tuple[Tensor, Tensor]:
    """``[n, 4]`` points in the unit box with their times, and the inside mask ``[n]``; one clear
    error when no time is given."""
    if cond is None or cond.time is None:
        raise ValueError(f"{type(field).__name__} is a dynamic field: it needs the time of each point "
                         "(Conditioning.time, in [0, 1])")
    unit, inside = field.normalize(positions)
    t = cond.time.reshape(-1, 1).to(unit.dtype).expand(unit.shape[0], 1)
    return torch.cat([unit, t], -1), inside


class KPlanesField(RadianceField):
    """Six space-time planes, a density MLP and a colour MLP (module docstring).

    Conditioning: ``time`` (required), and an object transform.

    >>> field = KPlanesField(torch.tensor([-1.0, -1, -1, 1, 1, 1]), KPlanesFieldConfig(resolution=8, scales=[1]))
    >>> out = field(torch.zeros(4, 3), torch.tensor([[0.0, 0, 1]]).expand(4, 3), Conditioning(time=torch.tensor([0.5])))
    >>> out.sigma.shape, out.rgb.shape
    (torch.Size([4]), torch.Size([4, 3]))
    """

    accepts = frozenset({"transform", "time"})

    def __init__(self, aabb: Tensor, config: KPlanesFieldConfig | None = None) -> None:
        super().__init__(aabb)
        cfg = config or KPlanesFieldConfig()
        self.config = cfg
        self.encoding = PlaneEncoding(cfg.resolution, cfg.scales, cfg.time_resolution, cfg.features)
        self.density_net = mlp(self.encoding.out_dim, cfg.hidden, 1, 1 + cfg.geo_features)
        self.direction_encoding = SHEncoding()
        self.color_net = mlp(SHEncoding.out_dim + cfg.geo_features, cfg.hidden, cfg.color_layers, 3)

    def mlp_layers(self) -> tuple[list[Tensor], list[Tensor], int]:
        """Weights and biases of the density then colour networks' layers, and how many are the
        density network's (the layout :func:`~nerfgen.ops.mlp.ngp_mlp` takes)."""
        return fused_layers(self.density_net, self.color_net)

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        positions, _ = self.local(positions, None, cond)
        coords, inside = space_time(self, positions, cond)
        weights, biases, n_density = self.mlp_layers()
        raw = ngp_density(self.encoding(coords), weights[:n_density], biases[:n_density])
        return trunc_exp(raw - 1.0) * inside

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        """Both networks in the fused MLP kernel where it serves (:mod:`nerfgen.ops.mlp`), the same
        layers in torch elsewhere."""
        positions, directions = self.local(positions, directions, cond)
        coords, inside = space_time(self, positions, cond)
        raw, rgb = ngp_mlp(self.encoding(coords), self.direction_encoding(directions), *self.mlp_layers())
        return FieldOutput(trunc_exp(raw - 1.0) * inside, rgb)

    def regularizers(self) -> dict[str, Tensor]:
        cfg = self.config
        return self.encoding.regularizers(cfg.space_tv, cfg.plane_tv, cfg.time_smoothness, cfg.time_l1)
