"""Time in captures: per-frame times of dynamic scenes, and what kind of capture they make.

A capture is dynamic when its frames carry a time:

- D-NeRF's layout: ``transforms_{train,val,test}.json`` as NeRF-synthetic, each frame with
  ``"time"`` in ``[0, 1]`` (``{"file_path": "./train/r_000", "rotation": ..., "time": 0.0,
  "transform_matrix": ...}``; RGBA on white, or RGB without alpha);
- instant-ngp / nerfstudio ``transforms.json`` whose frames carry ``"time"`` in ``[0, 1]``, or a
  ``"timestamp"`` in any unit (seconds, frame numbers), mapped to ``[0, 1]`` over the whole file.

Either every frame of every file of a capture has a time or none has: anything between is one
:class:`~nerfgen.data.DatasetError` naming the file and the frames. :func:`load_timed` loads a
split with :func:`~nerfgen.data.load_dataset` and pairs each loaded image with its time;
:class:`Capture` says whether the cameras form a rig (several views of each instant) or one
camera filming while time runs (monocular).

>>> data = load_timed("data/dnerf/jumpingjacks", "train")   # doctest: +SKIP
>>> data.capture.describe()                                 # doctest: +SKIP
'monocular: 200 frames, one view per time (the camera jumps between views, as in D-NeRF's scenes)'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nerfgen.data.dataset import Dataset, load_dataset
from nerfgen.data.errors import DatasetError
from nerfgen.data.transforms import read_json

__all__ = ["Capture", "TimedDataset", "capture_files", "frame_times", "is_dynamic", "load_timed"]

TIME_KEYS = ("time", "timestamp")
"""Per-frame keys that carry a time: ``time`` in [0, 1] (D-NeRF, nerfstudio), ``timestamp`` in any unit."""
SAME_TIME = 1e-6
"""Frames whose times differ by less than this see the same instant."""
SPLIT_NAMES = ("train", "val", "test")


def capture_files(path: str | Path) -> list[Path]:
    """The transforms files a capture's frames are listed in: a JSON file itself, D-NeRF's /
    NeRF-synthetic's split files (all of them: their times must agree on being there), or
    instant-ngp's ``transforms.json``; empty for formats without per-frame JSON (LLFF, COLMAP, IDR)."""
    path = Path(path)
    if path.is_file():
        return [path] if path.suffix == ".json" else []
    files = [path / f"transforms_{s}.json" for s in SPLIT_NAMES if (path / f"transforms_{s}.json").is_file()]
    if not files and (path / "transforms.json").is_file():
        files = [path / "transforms.json"]
    return files


def _frames(meta: dict[str, Any], source: Path) -> list[dict]:
    frames = meta.get("frames")
    if not isinstance(frames, list):
        raise DatasetError(f"{source}: expected a 'frames' list")
    return [f if isinstance(f, dict) else {} for f in frames]


def _time_key(frame: dict) -> str | None:
    return next((k for k in TIME_KEYS if k in frame), None)


def _check_all_or_none(files: dict[Path, list[dict]]) -> bool:
    """Whether the capture is dynamic; one error when only some frames (or files) carry a time."""
    timed = {path: [_time_key(f) is not None for f in frames] for path, frames in files.items()}
    for path, flags in timed.items():
        if any(flags) and not all(flags):
            have, lack = flags.index(True), flags.index(False)
            raise DatasetError(f"{path}: frame {have} has a 'time' but frame {lack} has none: a capture is either "
                               f"static (no frame has a time) or dynamic (every frame has one)")
    dynamic = [path for path, flags in timed.items() if all(flags) and flags]
    static = [path for path, flags in timed.items() if not any(flags)]
    if dynamic and static:
        raise DatasetError(f"{static[0]}: its frames have no 'time' but those of {dynamic[0].name} have: "
                           f"mixed static and dynamic frames in one capture")
    return bool(dynamic)


def _number(frame: dict, key: str, where: str) -> float:
    value = frame[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DatasetError(f"{where} '{key}' must be a finite number, got {value!r}")
    return float(value)


def frame_times(path: str | Path) -> dict[Path, float] | None:
    """Each listed image's time in ``[0, 1]`` (images as the loaders name them: the JSON's folder
    joined with ``file_path``, ``.png`` added without a suffix), or None for a static capture.

    ``time`` must lie in ``[0, 1]``; ``timestamp`` values are mapped onto it by the smallest and
    largest over every file of the capture (all splits: a held-out frame keeps its place in time).

    Raises:
        DatasetError: a time outside ``[0, 1]`` or not a number, times on some frames only, files
            of one capture that disagree (naming the file and frame).
    """
    files = {p: _frames(read_json(p), p) for p in capture_files(path)}
    if not files or not _check_all_or_none(files):
        return None
    keys = {_time_key(f) for frames in files.values() for f in frames}
    if len(keys) > 1:
        raise DatasetError(f"{next(iter(files))}: frames mix 'time' (in [0, 1]) and 'timestamp'; use one of them")
    key = keys.pop()
    raw: dict[Path, float] = {}
    for source, frames in files.items():
        for i, frame in enumerate(frames):
            value = _number(frame, key, f"{source}: frame {i}")
            if key == "time" and not 0.0 <= value <= 1.0:
                raise DatasetError(f"{source}: frame {i} 'time' must be in [0, 1] (the capture's first instant at 0, "
                                   f"its last at 1), got {value!r}")
            file_path = frame.get("file_path")
            if isinstance(file_path, str) and file_path:
                image = source.parent / file_path
                raw[image if image.suffix else image.with_name(image.name + ".png")] = value
    if key == "timestamp":
        lo, hi = min(raw.values()), max(raw.values())
        raw = {k: (v - lo) / (hi - lo) if hi > lo else 0.0 for k, v in raw.items()}
    return raw


def is_dynamic(path: str | Path) -> bool:
    """Whether the capture at ``path`` has per-frame times (raising on a half-timed one)."""
    return frame_times(path) is not None


@dataclass(frozen=True)
class Capture:
    """How a dynamic capture saw its scene.

    Attributes:
        kind: ``"multi-view"`` (several views of each instant: a rig or several cameras) or
            ``"monocular"`` (one view per instant: one camera filming while time runs).
        frames: frames of the split.
        times: distinct instants.
        rig: multi-view with fixed cameras (every instant seen from the same places).
        moving: monocular with a camera that moves smoothly (a video), rather than jumping between
            views from one instant to the next (D-NeRF's synthetic scenes).
    """

    kind: str
    frames: int
    times: int
    rig: bool = False
    moving: bool = False

    def describe(self) -> str:
        """One line for the user."""
        if self.kind == "multi-view":
            how = "a rig of fixed cameras" if self.rig else "cameras that differ per time"
            return (f"multi-view: {self.frames} frames, {self.frames / self.times:.3g} views at each of {self.times} "
                    f"times ({how})")
        how = "a moving camera" if self.moving else "the camera jumps between views, as in D-NeRF's scenes"
        return f"monocular: {self.frames} frames, one view per time ({how})"

    @classmethod
    def of(cls, times: Tensor, centres: Tensor) -> Capture:
        """The capture of frames at ``times [n]`` seen from camera ``centres [n, 3]``."""
        order = torch.argsort(times)
        t, c = times[order].double(), centres[order].double()
        groups = torch.unique(torch.round(t / SAME_TIME)).numel()
        spread = float((c - c.mean(0)).norm(dim=-1).mean()) or 1.0
        if groups < len(t):
            first = c[torch.abs(t - t[0]) < SAME_TIME]  # the cameras of the first instant
            last = c[torch.abs(t - t[-1]) < SAME_TIME]
            rig = len(first) == len(last) and bool(torch.cdist(first, last).min(1).values.max() < 1e-3 * spread)
            return cls("multi-view", len(t), groups, rig=rig)
        steps = (c[1:] - c[:-1]).norm(dim=-1)
        apart = torch.cdist(c, c)[torch.triu_indices(len(c), len(c), 1).unbind()]  # any two cameras
        moving = len(t) > 2 and float(steps.median()) < 0.5 * float(apart.median())
        return cls("monocular", len(t), groups, moving=moving)


@dataclass
class TimedDataset:
    """A split of a dynamic capture: the posed images and each one's time.

    Attributes:
        dataset: the images and cameras (:class:`~nerfgen.data.Dataset`).
        times: ``[n]`` float32 in ``[0, 1]``, the time of each image.
        capture: what the cameras form (rig or monocular).
    """

    dataset: Dataset
    times: Tensor
    capture: Capture

    def __len__(self) -> int:
        return len(self.dataset)

    def subset(self, indices: list[int]) -> TimedDataset:
        """The images ``indices`` alone, with their times."""
        times = self.times[torch.as_tensor(indices, dtype=torch.long)]
        sub = self.dataset.subset(indices)
        return TimedDataset(sub, times, Capture.of(times, sub.cameras.c2w[:, :, 3]))

    def instants(self) -> Tensor:
        """``[k]`` the distinct times, ascending."""
        return torch.unique(torch.round(self.times.double() / SAME_TIME) * SAME_TIME).float()


def load_timed(path: str | Path, split: str = "train", **options: Any) -> TimedDataset:
    """Load one split of a dynamic capture (:func:`~nerfgen.data.load_dataset` with ``options``)
    and each image's time.

    Raises:
        DatasetError: the capture is static (no frame has a time), or what :func:`frame_times`
            and the loader raise.
    """
    times = frame_times(path)
    if times is None:
        files = capture_files(path)
        where = files[0] if files else Path(path)
        raise DatasetError(f"{where}: no frame has a 'time': a static capture (train it with `nerfgen train`; a dynamic "
                           f"one needs 'time' in [0, 1] or a 'timestamp' on every frame)")
    dataset = load_dataset(path, split, **options)
    missing = [f for f in dataset.filenames if Path(f) not in times]
    if missing:
        raise DatasetError(f"{dataset.source}: no time found for {len(missing)} loaded images, e.g. {missing[0]}")
    values = torch.tensor(np.array([times[Path(f)] for f in dataset.filenames]), dtype=torch.float32)
    return TimedDataset(dataset, values, Capture.of(values, dataset.cameras.c2w[:, :, 3]))
