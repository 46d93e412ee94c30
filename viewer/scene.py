"""What the viewer shows: a model, its background, where to look from, and the training cameras."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nerfgen.cameras import Cameras
from nerfgen.data import Dataset, DatasetError, load_dataset
from nerfgen.engine.model import RadianceModel, load_model
from nerfgen.engine.video import orbit_spec, run_background

THUMBNAIL = 96
"""Longest side of the training-image thumbnails drawn on the frustums (pixels)."""


@dataclass
class ViewerScene:
    """A scene to view.

    Attributes:
        model: the radiance field and its occupancy grid (shared with training when live).
        background: ``[3]`` colour behind the scene.
        orbit: the run's orbit spec (``nerfgen.engine.video.orbit_spec``): centre, up, radius, size.
        output_dir: where camera paths and their videos are written.
        train_cameras: the training cameras, when their dataset can be read.
        thumbnails: one ``[h, w, 3]`` uint8 image per training camera (small), or None.
    """

    model: RadianceModel
    background: Tensor
    orbit: dict
    output_dir: Path
    train_cameras: Cameras | None = None
    thumbnails: list[np.ndarray] | None = None

    @classmethod
    def from_run(cls, run_dir: str | Path) -> ViewerScene:
        """A trained run directory; training cameras come from the dataset it trained on, if it
        is still there (a warning says so when it is not)."""
        run = load_model(run_dir)
        background = run_background(run.meta)
        cameras, thumbs = None, None
        data = run.meta.get("data")
        if data and Path(data).exists():
            try:
                full_side = max(run.meta["width"], run.meta["height"]) * run.config.downscale  # the files' size
                scale = max(1.0, full_side / THUMBNAIL)
                small = load_dataset(data, "train", downscale=scale)
                cameras, thumbs = small.cameras, thumbnails(small, background)
            except DatasetError as exc:
                warnings.warn(f"training cameras not shown: {exc}", stacklevel=2)
        else:
            warnings.warn(f"training cameras not shown: the run's dataset {data!r} is not there", stacklevel=2)
        return cls(run.model, background, run.meta["orbit"], Path(run_dir), cameras, thumbs)

    @classmethod
    def from_trainer(cls, trainer) -> ViewerScene:
        """The model a :class:`nerfgen.engine.trainer.Trainer` is training, live."""
        ds: Dataset = trainer.dataset
        background = torch.ones(3) if ds.white_background else torch.zeros(3)
        return cls(trainer.model, background, orbit_spec(ds.cameras), trainer.output, ds.cameras,
                   thumbnails(ds, background))


def thumbnails(dataset: Dataset, background: Tensor, size: int = THUMBNAIL) -> list[np.ndarray]:
    """Small RGB copies of a dataset's images, alpha composited over ``background``."""
    images = dataset.images.permute(0, 3, 1, 2).float() / 255  # [n, 4, H, W]
    h, w = images.shape[2:]
    scale = min(1.0, size / max(h, w))
    if scale < 1:
        images = torch.nn.functional.interpolate(images, size=(max(1, round(h * scale)), max(1, round(w * scale))),
                                                 mode="area")
    rgb = images[:, :3] * images[:, 3:] + background[None, :, None, None] * (1 - images[:, 3:])
    return list((rgb.clamp(0, 1) * 255 + 0.5).byte().permute(0, 2, 3, 1).numpy())
