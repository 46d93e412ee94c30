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
from nerfgen import TimeConditioned

THUMBNAIL = 96
"""Longest side of the training-image thumbnails drawn on the frustums (pixels)."""


@dataclass
class ViewerScene:
    """A scene to view.

    Attributes:
        run: the run (a :class:`nerfgen.Renderable`; its model is shared with training when live).
        train_cameras: the training cameras, when their dataset can be read.
        thumbnails: one ``[h, w, 3]`` uint8 image per training camera (small), or None.
    """

    run: nerfgen.Renderable
    train_cameras: nerfgen.Cameras | None = None
    thumbnails: list[np.ndarray] | None = None

    @property
    def background(self) -> Tensor:
        """``[3]`` colour behind the scene."""
        return self.run.background

    @property
    def generated(self) -> bool:
        """Whether the run shows one scene of a generator's codes (GRAF or GIRAFFE), which the
        objects panel edits."""
        return isinstance(self.run, nerfgen.CodeEditable)

    @property
    def layout_editable(self) -> bool:
        """Whether the run's objects are placed by a layout (a generated scene of several
        objects) that the layout panel edits (the objects' fields stay as they are)."""
        return isinstance(self.run, nerfgen.LayoutEditable)

    @property
    def time_conditioned(self) -> bool:
        """Whether the run's scene changes over time (the time panel shows and plays it)."""
        return isinstance(self.run, TimeConditioned)

    @property
    def modes(self) -> tuple[str, ...]:
        """The render modes this run can show (normals only where the run renders them)."""
        return MODES if self.run.traits.normals else tuple(m for m in MODES if m != "normals")

    @property
    def orbit(self) -> nerfgen.Orbit:
        """The run's orbit: centre, up, radius, frame size."""
        return self.run.info.orbit

    @property
    def output_dir(self) -> Path:
        """Where camera paths and their videos are written."""
        return self.run.path

    @classmethod
    def from_run(cls, run: nerfgen.Renderable, dataset=None) -> ViewerScene:
        """A run; its training cameras come from ``dataset`` (the one training uses, live) or from
        the capture the run trained on (``traits.training_cameras``), if it is still there (a
        warning says so when it is not); a run seen through source views shows those. Generated
        runs have none."""
        if dataset is None and isinstance(run, nerfgen.SourceViewed):
            from nerfgen.viewer.sources_panel import source_cameras

            return cls(run, *source_cameras(run))
        if dataset is None and run.traits.training_cameras:
            dataset = _small_training_set(run)
        if dataset is None:
            return cls(run)
        return cls(run, dataset.cameras, thumbnails(dataset, run.background))


def _small_training_set(run: nerfgen.Renderable):
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
