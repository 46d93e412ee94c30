"""Typed configuration of dynamic reconstruction (``nerfgen train`` on a capture with times);
``configs/kplanes.yaml``, ``configs/deform.yaml`` and friends map onto it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

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

    unused_keys: ClassVar[dict[str, str]] = {
        "forward_facing": "dynamic runs reconstruct bounded scenes; 'forward_facing' (LLFF captures) applies to "
                          "static reconstruction only",
        "ndc": "dynamic runs reconstruct bounded scenes; 'ndc' (forward-facing captures) applies to static "
               "reconstruction only",
        "proposal": "dynamic runs march occupancy grids per bin of time (or stratified samples); 'proposal' applies "
                    "to static reconstruction only",
    }
    """Keys of a static reconstruction (:class:`TrainConfig`) that dynamic runs have no use for."""

    field: Literal["kplanes", "deform", "nsff"] = "kplanes"
    """A field that takes time (``nerfgen.fields.FIELDS``): K-Planes, a canonical field and its
    deformation, or Neural Scene Flow Fields' static + dynamic fields."""
    sampler: Literal["occupancy", "stratified"] = "occupancy"
    """How rays are sampled: occupancy grids per bin of time (``grid``), or ``stratified``."""
    flow: FlowLossConfig = dataclasses.field(default_factory=FlowLossConfig)
    """Neural Scene Flow Fields' terms (field ``nsff``): temporal photometric consistency, cycle
    consistency, ...; all 0 by default."""

    def check_time(self, source: str) -> None:
        if self.flow.enabled and self.field != "nsff":
            raise ValueError(f"{source}: flow: the scene-flow terms need the scene-flow field (field: nsff), "
                             f"got field {self.field!r}")
        if not dynamic_field(self.field):
            raise ValueError(f"{source}: field: a dynamic run needs a field that takes time (kplanes, deform, nsff), "
                             f"got {self.field!r}")
        if self.sampler == "occupancy" and self.grid.time_bins < 1:
            raise ValueError(f"{source}: grid.time_bins: a dynamic scene's occupancy grid needs at least 1 bin of "
                             f"time (1: one grid for all of time), got {self.grid.time_bins}")
