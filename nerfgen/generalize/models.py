"""The generalizable models a run can hold, by name: each has a config class, a builder, and the
orbit its scenes are shown on. A model is an ``nn.Module`` with ``encode(SourceViews) ->
SceneFeatures`` (once per scene), a ``field`` conditioned on those features and a ``sampler``."""

from __future__ import annotations

import torch
from torch import nn

from nerfgen.cameras import Orbit
from nerfgen.generalize.sources import SourceViews

FORWARD_DEGREES = 40.0
"""Source cameras all within this angle of their mean viewing direction: a forward-facing scene."""


def config_class(model: str, source: str = "model") -> type:
    """The config dataclass of generalizable model ``model``."""
    if model == "pixelnerf":
        from nerfgen.generalize.config import GeneralizeConfig

        return GeneralizeConfig
    if model == "mvsnerf":
        from nerfgen.generalize.mvsnerf import MVSNeRFConfig

        return MVSNeRFConfig
    raise ValueError(f"{source}: unknown generalizable model {model!r}; expected pixelnerf or mvsnerf")


def build_model(model: str, config) -> nn.Module:
    """An untrained (or not yet loaded) model of ``config``."""
    if model == "pixelnerf":
        from nerfgen.generalize.pixelnerf import PixelNeRF

        return PixelNeRF(config.pixelnerf, torch.tensor(config.aabb, dtype=torch.float32))
    if model == "mvsnerf":
        from nerfgen.generalize.mvsnerf import MVSNeRF

        return MVSNeRF(config)
    raise ValueError(f"unknown generalizable model {model!r}")


def orbit_of(sources: SourceViews, model: nn.Module) -> Orbit:
    """The circle a scene's videos take: facing it when the source cameras face one way (in front
    of them, at the middle of the model's depth range), else round it."""
    cameras = sources.cameras.to("cpu")
    forward = -cameras.c2w[:, :, 2]
    mean = torch.nn.functional.normalize(forward.mean(0), dim=0)
    spread = torch.rad2deg(torch.arccos((forward @ mean).clamp(-1, 1))).max()
    if len(cameras) > 1 and float(spread) < FORWARD_DEGREES and hasattr(model, "focus_depth"):
        return Orbit.facing(cameras, model.focus_depth(sources))
    return Orbit.from_cameras(cameras)


__all__ = ["build_model", "config_class", "orbit_of"]
