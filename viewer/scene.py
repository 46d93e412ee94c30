"""What the viewer shows: a run (loaded, or training live), where to look from, the training cameras."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from nerfgen.viewer.frames import MODES
from torch import Tensor

import nerfgen

THUMBNAIL = 96
"""Longest side of the training-image thumbnails drawn on the frustums (pixels)."""


@dataclass
class ViewerScene:
    """A scene to view.

    Attributes:
        run: the run (:class:`nerfgen.Run`; its model is shared with training when live).
        train_cameras: the training cameras, when their dataset can be read.
        thumbnails: one ``[h, w, 3]`` uint8 image per training camera (small), or None.
    """

    run: nerfgen.Run
    train_cameras: nerfgen.Cameras | None = None
    thumbnails: list[np.ndarray] | None = None

    @property
    def background(self) -> Tensor:
        """``[3]`` colour behind the scene."""
        return self.run.background

    @property
    def generated(self) -> bool:
        """Whether the run is a GAN generator (GRAF or GIRAFFE): a scene made of codes that the
        objects panel edits, rendered a whole frame at a time, without normals."""
        return self.run.info.kind == "gan"

    @property
    def layout_editable(self) -> bool:
        """Whether the run is a generated scene of several objects (kind ``scene``): a layout that
        the layout panel edits (the objects' fields stay as they are), rendered like any run."""
        return self.run.info.kind == "scene"

    @property
    def modes(self) -> tuple[str, ...]:
        """The render modes this run can show (a GAN run renders no normals)."""
        return tuple(m for m in MODES if m != "normals") if self.generated else MODES

    @property
    def orbit(self) -> nerfgen.Orbit:
        """The run's orbit: centre, up, radius, frame size."""
        return self.run.info.orbit

    @property
    def output_dir(self) -> Path:
        """Where camera paths and their videos are written."""
        return self.run.path

    @classmethod
    def from_run(cls, run: nerfgen.Run, dataset=None) -> ViewerScene:
        """A run; its training cameras come from ``dataset`` (the one training uses, live) or from
        the dataset a reconstruction run trained on, if it is still there (a warning says so when
        it is not). Generated runs have none."""
        if dataset is None and run.info.kind == "reconstruction":
            dataset = _small_training_set(run)
        if dataset is None:
            return cls(run)
        return cls(run, dataset.cameras, thumbnails(dataset, run.background))


def _small_training_set(run: nerfgen.Run):
    """The run's training split loaded at thumbnail size, or None (with a warning)."""
    data = run.info.data
    if not (data and Path(data).exists()):
        warnings.warn(f"training cameras not shown: the run's dataset {data!r} is not there", stacklevel=3)
        return None
    full_side = max(run.info.width, run.info.height) * run.info.downscale  # the files' size
    try:
        return nerfgen.load_dataset(data, "train", downscale=max(1.0, full_side / THUMBNAIL),
                                    format=run.info.config.get("data_format", "auto"))
    except nerfgen.DatasetError as exc:
        warnings.warn(f"training cameras not shown: {exc}", stacklevel=3)
        return None


def thumbnails(dataset, background: Tensor, size: int = THUMBNAIL) -> list[np.ndarray]:
    """Small RGB copies of a dataset's images, alpha composited over ``background``."""
    out = []
    for i in range(len(dataset)):
        image = dataset.image(i).permute(2, 0, 1)[None].float() / 255  # [1, 4, H, W]
        h, w = image.shape[2:]
        scale = min(1.0, size / max(h, w))
        if scale < 1:
            image = torch.nn.functional.interpolate(image, size=(max(1, round(h * scale)), max(1, round(w * scale))),
                                                    mode="area")
        rgb = image[:, :3] * image[:, 3:] + background[None, :, None, None] * (1 - image[:, 3:])
        out.append((rgb[0].clamp(0, 1) * 255 + 0.5).byte().permute(1, 2, 0).numpy())
    return out
