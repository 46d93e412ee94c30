"""Typed configuration of reconstruction (``nerfgen train``); ``configs/ngp.yaml`` and friends map onto it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from nerfgen.data.formats import reader_named
from nerfgen.engine.config import EngineConfig
from nerfgen.reconstruct.camera_opt import CameraOptConfig
from nerfgen.reconstruct.depth import DepthLossConfig
from nerfgen.reconstruct.error_map import ErrorMapConfig
from nerfgen.render import ModelSpec


@dataclass
class TrainConfig(ModelSpec, EngineConfig):
    """Everything that decides a reconstruction run (the dataset path and output are given apart):
    the engine's keys (budgets, seed, device, intervals), the model's (field, sampler) and these."""

    carve: bool = True
    """Where training images have alpha, start the occupancy grid from their visual hull."""
    downscale: float = 1.0
    """Divide image width and height by this (intrinsics follow)."""
    data_format: str = "auto"
    """The capture's reader: ``auto`` (found from the folder) or ``nerf-synthetic``, ``instant-ngp``,
    ``llff``, ``colmap``, ``idr`` (and their aliases); a run records the one it used."""
    target_samples: int = 1 << 16
    """Field samples per step; the number of rays adapts to reach it (nerfacc's rule)."""
    init_rays: int = 1024
    """Rays in the first step."""
    max_rays: int = 1 << 15
    """Most rays in one step."""
    lr: float = 1e-2
    """Peak Adam learning rate."""
    lr_warmup_steps: int = 20
    """Linear warm-up from 1% of ``lr``."""
    lr_decay: float = 0.33
    """Factor applied at 50%, 75% and 90% of the run (steps or seconds, whichever is nearer)."""
    weight_decay: float = 1e-6
    """L2 on the MLP weights."""
    background: Literal["auto", "random", "white", "black"] = "auto"
    """Training background: auto (random where images have alpha, else black) | random | white | black."""
    val_views: int = 2
    """Views rendered at each evaluation (``eval_every``): validation PSNR."""
    val_downscale: float = 4.0
    """Extra downscale of validation renders."""
    forward_facing: bool = False
    """Model the scene in NDC (forward-facing captures, as LLFF): rays are mapped by the training
    cameras' mean focal length from a near plane at 3/4 of the nearest scene depth, and the box is
    NDC's ``[-1.5, 1.5]^2 x [-1, 1]``."""
    camera_opt: CameraOptConfig = dataclasses.field(default_factory=CameraOptConfig)
    """Pose refinement of the training cameras (nerfacto's camera optimiser); off by default."""
    depth: DepthLossConfig = dataclasses.field(default_factory=DepthLossConfig)
    """Depth supervision from SfM points (DS-NeRF); off unless ``depth.weight > 0``."""
    error_map: ErrorMapConfig = dataclasses.field(default_factory=ErrorMapConfig)
    """Error-guided ray sampling (instant-ngp's error map, :mod:`nerfgen.reconstruct.error_map`);
    off unless ``error_map.share > 0``."""
    distortion: float = 0.0
    """Weight of mip-NeRF 360's distortion loss on the field's compositing weights along each ray
    (in the ray distances the sampler uses: NDC for forward-facing scenes); it pulls each ray's
    weight into one compact surface and clears floaters. 0: off (the proposal sampler has its own)."""
    train_views: int = 0
    """Train on this many of the training images, evenly spaced in file order (few-view
    training); 0 uses them all."""
    image_memory_mb: int = 1024
    """Decoded training pixels held in memory at most; larger captures are decoded lazily, a
    rotating subset of images at a time."""

    def validate(self, source: str) -> None:
        EngineConfig.validate(self, source)
        ModelSpec.validate(self, source)
        if not self.downscale >= 1:
            raise ValueError(f"{source}: downscale: expected a number >= 1, got {self.downscale}")
        try:
            reader_named(self.data_format)
        except ValueError as exc:
            raise ValueError(f"{source}: data_format: {exc}") from None
        if not 0 < self.init_rays <= self.max_rays or self.target_samples < 1:
            raise ValueError(f"{source}: need 0 < init_rays <= max_rays and target_samples >= 1")
        self.check_time(source)

    def check_time(self, source: str) -> None:
        """A static capture has no time: no field that takes one, no grids per bin of time (a
        capture whose frames carry times trains a dynamic run, :class:`~nerfgen.dynamic.config.DynamicConfig`)."""
        from nerfgen.fields import FIELDS  # fields import render, which imports this module's ModelSpec

        if "time" in FIELDS[self.field][0].accepts:
            raise ValueError(f"{source}: field: {self.field!r} takes a time; it trains on a capture whose frames "
                             f"carry times (a dynamic run), not a static reconstruction")
        if self.grid.time_bins > 0:
            raise ValueError(f"{source}: grid.time_bins: grids per bin of time are for dynamic runs (captures whose "
                             f"frames carry times); a static reconstruction needs 0, got {self.grid.time_bins}")

    def model_spec(self) -> ModelSpec:
        """The :class:`ModelSpec` part of this config."""
        spec = ModelSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ModelSpec)})
        spec.field_options = dict(spec.field_options)
        return spec
