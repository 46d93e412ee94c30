"""Neural Scene Flow Fields (Li et al. 2021): a static field, a dynamic one with 3D scene flow, blended.

A point is seen by two fields: a static instant-ngp field (time plays no part: what never moves)
and a dynamic field on space-time planes (K-Planes' factorisation) that also gives the point's 3D
scene flow to the neighbouring instants of the capture, forward and backward (``frame_dt`` apart).
They are blended by density, GIRAFFE's operator: densities add and colours mix by density, so the
dynamic share of a point is ``sigma_dy / (sigma_st + sigma_dy)``. The flow is what the
scene-flow losses (:mod:`nerfgen.dynamic.flow`) train: the scene at a neighbouring instant, moved
back along it, must render the same image (temporal photometric consistency), and a point moved
forward then backward must come home (cycle consistency).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from nerfgen.fields.activations import trunc_exp
from nerfgen.fields.base import Conditioning, FieldOutput, RadianceField
from nerfgen.fields.encodings import SHEncoding, mlp
from nerfgen.fields.kplanes import space_time
from nerfgen.fields.ngp import NGPField, NGPFieldConfig
from nerfgen.fields.planes import PlaneEncoding

_STATIC = ("n_levels", "n_features", "log2_table_size", "base_resolution", "max_resolution", "hidden",
           "geo_features", "color_layers")


@dataclass
class SceneFlowFieldConfig:
    """Hyper-parameters of :class:`SceneFlowField`: the static hash grid's (named as
    :class:`~nerfgen.fields.NGPFieldConfig`'s), the dynamic planes' and the flow's."""

    n_levels: int = 16
    n_features: int = 2
    log2_table_size: int = 17
    base_resolution: int = 16
    max_resolution: int = 2048
    hidden: int = 64
    geo_features: int = 15
    color_layers: int = 2
    resolution: int = 32
    """Space resolution of the coarsest level of the dynamic field's planes."""
    scales: list[int] = field(default_factory=lambda: [1, 2, 4])
    time_resolution: int = 16
    features: int = 8
    dynamic_hidden: int = 64
    space_tv: float = 0.0
    plane_tv: float = 1e-4
    time_smoothness: float = 0.01
    time_l1: float = 1e-4
    frame_dt: float = 0.0
    """Time between neighbouring frames of the capture (the flows' span); filled from the capture."""
    max_flow: float = 0.25
    """Largest flow along each axis, as a fraction of the box's half size (flows are tanh-bounded)."""
    dynamic_bias: float = -2.0
    """Added to the dynamic density's raw value at the start, so the static field takes what it
    can first."""

    def validate(self, source: str) -> None:
        if not 0 <= self.frame_dt <= 1 or self.max_flow <= 0:
            raise ValueError(f"{source}: frame_dt must be in [0, 1] and max_flow > 0")

    def static(self) -> NGPFieldConfig:
        return NGPFieldConfig(**{k: getattr(self, k) for k in _STATIC})


@dataclass
class DynamicOutput:
    """The dynamic field at ``n`` points: density, colour and scene flow to the next and the
    previous instant (``[n, 3]`` each, world units)."""

    sigma: Tensor
    rgb: Tensor
    forward: Tensor
    backward: Tensor


class SceneFlowField(RadianceField):
    """A static and a dynamic field with scene flow, blended by density (module docstring).

    Conditioning: ``time`` (required), and an object transform.
    """

    accepts = frozenset({"transform", "time"})

    def __init__(self, aabb: Tensor, config: SceneFlowFieldConfig | None = None) -> None:
        super().__init__(aabb)
        cfg = config or SceneFlowFieldConfig()
        self.config = cfg
        self.static_field = NGPField(aabb, cfg.static())
        self.encoding = PlaneEncoding(cfg.resolution, cfg.scales, cfg.time_resolution, cfg.features)
        self.dynamic_net = mlp(self.encoding.out_dim, cfg.dynamic_hidden, 1, 1 + cfg.geo_features + 6)
        self.direction_encoding = SHEncoding()
        self.dynamic_color = mlp(SHEncoding.out_dim + cfg.geo_features, cfg.dynamic_hidden, 1, 3)

    @property
    def contraction(self) -> str:
        return self.static_field.contraction

    @contraction.setter
    def contraction(self, value: str) -> None:
        self.static_field.contraction = value

    @property
    def frame_dt(self) -> float:
        """Time between the instants the flows reach."""
        return self.config.frame_dt

    def _dynamic_trunk(self, positions: Tensor, cond: Conditioning | None) -> tuple[Tensor, Tensor, Tensor]:
        coords, inside = space_time(self, positions, cond)
        h = self.dynamic_net(self.encoding(coords))
        sigma = trunc_exp(h[:, 0] - 1.0 + self.config.dynamic_bias) * inside
        half = (self.aabb[3:] - self.aabb[:3]) * 0.5
        flows = torch.tanh(h[:, -6:]) * (half * self.config.max_flow).repeat(2)
        return sigma, h[:, 1:-6], flows

    def dynamic(self, positions: Tensor, directions: Tensor, cond: Conditioning | None) -> DynamicOutput:
        """The dynamic field alone at ``positions`` at their times."""
        positions, directions = self.local(positions, directions, cond)
        sigma, geo, flows = self._dynamic_trunk(positions, cond)
        rgb = torch.sigmoid(self.dynamic_color(torch.cat([self.direction_encoding(directions), geo], -1)))
        return DynamicOutput(sigma, rgb, flows[:, :3], flows[:, 3:])

    def static(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        """The static field alone (time plays no part)."""
        positions, directions = self.local(positions, directions, cond)
        return self.static_field(positions, directions)

    def flow(self, positions: Tensor, cond: Conditioning | None) -> tuple[Tensor, Tensor]:
        """Scene flow ``[n, 3]`` of each point to the next and the previous instant."""
        positions, _ = self.local(positions, None, cond)
        flows = self._dynamic_trunk(positions, cond)[2]
        return flows[:, :3], flows[:, 3:]

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        positions, _ = self.local(positions, None, cond)
        return self.static_field.density(positions) + self._dynamic_trunk(positions, cond)[0]

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        static = self.static(positions, directions, cond)
        dyn = self.dynamic(positions, directions, cond)
        return blend(static.sigma, static.rgb, dyn.sigma, dyn.rgb)

    def regularizers(self) -> dict[str, Tensor]:
        cfg = self.config
        return self.encoding.regularizers(cfg.space_tv, cfg.plane_tv, cfg.time_smoothness, cfg.time_l1)


def blend(sigma_static: Tensor, rgb_static: Tensor, sigma_dynamic: Tensor, rgb_dynamic: Tensor) -> FieldOutput:
    """Densities add, colours mix by density (the static colour where neither has any)."""
    sigma = sigma_static + sigma_dynamic
    share = (sigma_dynamic / sigma.clamp(min=1e-8))[:, None]
    return FieldOutput(sigma, rgb_static * (1 - share) + rgb_dynamic * share)
