"""Typed configuration of generalizable runs; ``configs/pixelnerf.yaml`` maps onto
:class:`GeneralizeConfig` one to one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from nerfgen.engine.config import EngineConfig
from nerfgen.generalize.pixelnerf import PixelNeRFConfig
from nerfgen.scenes.multiview import MultiViewConfig


@dataclass
class FinetuneConfig:
    """Per-scene fine-tuning of a generalizable model (``nerfgen train CAPTURE --init RUN``): each
    step renders one training view from the others (all the others, leave one out)."""

    init: str = ""
    """The generalizable run fine-tuning started from ("" for a run trained on many scenes)."""
    capture: str = ""
    """The capture fine-tuned on."""
    views: int = 0
    """Fine-tune on this many of its training views, evenly spaced (0: all of them)."""
    downscale: float = 1.0
    """Shrink the capture's images by this."""


@dataclass
class GeneralizeConfig(EngineConfig):
    """Everything that decides a generalizable run (the scene collection and output are given
    apart): the engine's keys and these."""

    model: Literal["pixelnerf"] = "pixelnerf"
    """What is trained (MVSNeRF's pretrained weights are imported, not trained: ``generalize mvsnerf``)."""
    pixelnerf: PixelNeRFConfig = dataclasses.field(default_factory=PixelNeRFConfig)
    """The pixelNeRF / GRF model (and its IBRNet-style pooling and colour options)."""
    aabb: tuple[float, float, float, float, float, float] = (-1.25, -1.25, -1.25, 1.25, 1.25, 1.25)
    """The box every scene lies in (samples are taken there)."""
    background: Literal["white", "black"] = "white"
    """What source and target images are composited on, and what empty space renders as."""
    max_steps: int = 100000
    checkpoint_every: int = 500
    eval_every: int = 500
    """Steps between PSNR on held-out scenes from 1 and 3 source views."""
    scenes: MultiViewConfig = dataclasses.field(default_factory=MultiViewConfig)
    """Procedural training scenes (when no collection is given) and the held-out ones."""
    pool: int = 64
    """Procedural scenes held at once; training draws from them."""
    refresh_every: int = 2
    """Steps between a new procedural scene replacing the oldest of the pool (0: a fixed pool)."""
    scenes_per_step: int = 4
    """Scenes each step renders target rays of (the loss is their mean)."""
    rays: int = 512
    """Target rays per step, shared out over its scenes."""
    sources: tuple[int, int] = (1, 3)
    """Source views per scene, uniform in this range (the other views are targets)."""
    collection_size: int = 64
    """Captures of a collection are loaded with their longest side shrunk to this (pixels)."""
    lr: float = 5e-4
    """Peak Adam learning rate."""
    lr_warmup_steps: int = 100
    """Linear warm-up steps."""
    lr_decay: float = 0.33
    """Factor applied at 50%, 75% and 90% of the run."""
    eval_scenes: int = 4
    """Held-out scenes evaluated at each evaluation (written into the run's ``held_out/``)."""
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    """Set in runs fine-tuned on one scene from a generalizable run."""

    def validate(self, source: str) -> None:
        EngineConfig.validate(self, source)
        self.pixelnerf.validate(f"{source}: pixelnerf")
        self.scenes.validate(f"{source}: scenes")
        checks = [
            (1 <= self.sources[0] <= self.sources[1], "sources: expected 1 <= low <= high"),
            (self.sources[1] < self.scenes.views, "sources: the most source views must leave a target view"),
            (self.pool >= 1 and self.refresh_every >= 0, "pool >= 1 and refresh_every >= 0"),
            (self.scenes_per_step >= 1 and self.rays >= self.scenes_per_step, "rays >= scenes_per_step >= 1"),
            (self.collection_size >= 8 and self.eval_scenes >= 1, "collection_size >= 8 and eval_scenes >= 1"),
            (self.lr > 0, "lr > 0"),
            (self.finetune.views >= 0 and self.finetune.downscale >= 1, "finetune: views >= 0 and downscale >= 1"),
            (all(self.aabb[i] < self.aabb[i + 3] for i in range(3)), "aabb: min < max on every axis"),
        ]
        for ok, what in checks:
            if not ok:
                raise ValueError(f"{source}: {what}")
