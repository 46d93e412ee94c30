"""Typed configuration of dynamic reconstruction (``nerfgen train`` on a capture with times);
``configs/kplanes.yaml``, ``configs/deform.yaml`` and friends map onto it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from nerfgen.dynamic.flow import FlowLossConfig
from nerfgen.reconstruct.config import TrainConfig


def dynamic_field(name: str) -> bool:
    """Whether the registered field ``name`` takes a time."""
    from nerfgen.fields import FIELDS

    return name in FIELDS and "time" in FIELDS[name][0].accepts


@dataclass
class DynamicConfig(TrainConfig):
    """Everything that decides a dynamic run: a reconstruction's keys, with a field that takes
    time (``kplanes``, ``deform``) and, on an occupancy grid, grids per bin of time
    (``grid.time_bins``)."""

    flow: FlowLossConfig = dataclasses.field(default_factory=FlowLossConfig)
    """Neural Scene Flow Fields' terms (field ``nsff``): temporal photometric consistency, cycle
    consistency, ...; all 0 by default."""

    def validate(self, source: str) -> None:
        TrainConfig.validate(self, source)
        if self.flow.enabled and self.field != "nsff":
            raise ValueError(f"{source}: flow: the scene-flow terms need the scene-flow field (field: nsff), "
                             f"got field {self.field!r}")
        if not dynamic_field(self.field):
            raise ValueError(f"{source}: field: a dynamic run needs a field that takes time (kplanes, deform, nsff), "
                             f"got {self.field!r}")
        if self.sampler == "occupancy" and self.grid.time_bins < 1:
            raise ValueError(f"{source}: grid.time_bins: a dynamic scene's occupancy grid needs at least 1 bin of "
                             f"time (1: one grid for all of time), got {self.grid.time_bins}")
        if self.forward_facing or self.sampler == "proposal":
            raise ValueError(f"{source}: dynamic runs support bounded scenes on an occupancy grid or stratified "
                             "sampling (not forward_facing or the proposal sampler)")
