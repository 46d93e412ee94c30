"""instant-ngp / nerfstudio format: one ``transforms.json`` with all frames.

Intrinsics are global keys (``fl_x, fl_y, cx, cy, w, h``, or ``camera_angle_x/y``;
``k1, k2, p1, p2``, or ``k1..k4`` with ``camera_model: OPENCV_FISHEYE``), each of which a frame
may override; frames may differ in size (``w``, ``h`` must match each image's header). instant-ngp maps a
point to ``p * scale + offset`` (then permutes axes) and calls the unit cube
``[0, 1]^3`` its finest cascade, with ``aabb_scale`` (a power of two) the
extent of the coarsest one. We keep poses in the file's coordinates, so the
finest box is ``((0 - offset) / scale, (1 - offset) / scale)`` per axis and
there are ``1 + log2(aabb_scale)`` cascades.

The file has no train/test split: the frames, sorted by ``file_path`` and with
missing images dropped, are split by holding out every ``holdout_every``-th
(indices 0, k, 2k, ...) for testing.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from nerfgen.data.errors import DatasetError, DatasetWarning
from nerfgen.data.images import probe_sizes
from nerfgen.data.transforms import Frame, ParsedScene, drop_missing, get_number, parse_frames, read_json

__all__ = ["NGP_SPLITS", "parse_instant_ngp"]

NGP_SPLITS = ("train", "test", "val", "all")  # "val" is the same held-out set as "test"
DEFAULT_SCALE = 0.33
DEFAULT_OFFSET = (0.5, 0.5, 0.5)
_INTRINSIC_KEYS = (
    "fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y", "k1", "k2", "k3", "k4", "p1", "p2",
)  # fmt: skip
_SUPPORTED_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "OPENCV_FISHEYE")


def _aabb(meta: dict[str, Any], path: Path) -> tuple[np.ndarray, int]:
    """Finest-cascade box in file coordinates, and the number of cascades."""
    aabb_scale = get_number(meta, "aabb_scale", f"{path}:", default=1.0, positive=True)
    if not aabb_scale.is_integer() or int(aabb_scale) & (int(aabb_scale) - 1):
        raise DatasetError(f"{path}: 'aabb_scale' must be a power of two (1, 2, 4, ...), got {meta['aabb_scale']!r}")
    scale = get_number(meta, "scale", f"{path}:", default=DEFAULT_SCALE, positive=True)
    offset = meta.get("offset", list(DEFAULT_OFFSET))
    if isinstance(offset, (int, float)) and not isinstance(offset, bool):
        offset = [offset] * 3
    try:
        offset_arr = np.asarray(offset, dtype=np.float64)
    except (TypeError, ValueError):
        offset_arr = np.empty(0)
    if offset_arr.shape != (3,) or not np.isfinite(offset_arr).all():
        raise DatasetError(f"{path}: 'offset' must be a number or a list of 3 finite numbers, got {offset!r}")
    aabb = np.concatenate([(0.0 - offset_arr) / scale, (1.0 - offset_arr) / scale])
    return aabb, 1 + int(math.log2(int(aabb_scale)))


def _check_camera_model(meta: dict[str, Any], path: Path) -> bool:
    """Whether the file's cameras are OpenCV fisheye (else pinhole with OpenCV distortion)."""
    model = meta.get("camera_model", "OPENCV")
    if model not in _SUPPORTED_MODELS:
        raise DatasetError(f"{path}: 'camera_model' must be one of {', '.join(_SUPPORTED_MODELS)}, got {model!r}")
    if meta.get("is_fisheye", False):
        raise DatasetError(
            f"{path}: instant-ngp's 'is_fisheye' cameras are not supported, expected pinhole + OpenCV or "
            "'camera_model': 'OPENCV_FISHEYE'"
        )
    return model == "OPENCV_FISHEYE"


def _focal_from_angle(keys: dict[str, Any], key: str, pixels: int, where: str) -> float | None:
    angle = get_number(keys, key, where, positive=True)
    if angle is None:
        return None
    if angle >= math.pi:
        raise DatasetError(f"{where} '{key}' must be below pi radians, got {angle}")
    return 0.5 * pixels / math.tan(0.5 * angle)


def _intrinsics(meta: dict[str, Any], frame: Frame, size: tuple[int, int], fisheye: bool) -> list[float]:
    """``(fx, fy, cx, cy, k1, k2, p1, p2)`` (fisheye: ``k1..k4``) of one frame: global keys, frame overrides."""
    keys = {k: meta[k] for k in _INTRINSIC_KEYS if k in meta}
    keys.update({k: frame.raw[k] for k in _INTRINSIC_KEYS if k in frame.raw})
    where = f"{frame.source}: frame {frame.index}"
    w, h = size
    for key, actual in (("w", w), ("h", h)):
        declared = get_number(keys, key, where, positive=True)
        if declared is not None and declared != actual:
            raise DatasetError(
                f"{where} declares '{key}' = {declared:g} but its image {frame.image} is {w}x{h} (w x h)"
            )
    fx = get_number(keys, "fl_x", where, positive=True)
    fy = get_number(keys, "fl_y", where, positive=True)
    fx = fx if fx is not None else _focal_from_angle(keys, "camera_angle_x", w, where)
    fy = fy if fy is not None else _focal_from_angle(keys, "camera_angle_y", h, where)
    if fx is None and fy is None:
        raise DatasetError(
            f"{where} has no focal length: expected 'fl_x' or 'camera_angle_x' at the top level or in the frame"
        )
    fx, fy = fx or fy, fy or fx
    used, unsupported = ("k1", "k2", "p1", "p2"), ("k3", "k4")
    if fisheye:
        used, unsupported = ("k1", "k2", "k3", "k4"), ("p1", "p2")
    for key in unsupported:
        if get_number(keys, key, where, default=0.0) != 0.0:
            raise DatasetError(f"{where} '{key}' is not supported: expected only {', '.join(used)} distortion")
    return [
        fx,
        fy,
        get_number(keys, "cx", where, default=w / 2),
        get_number(keys, "cy", where, default=h / 2),
        *(get_number(keys, key, where, default=0.0) for key in used),
    ]


def check_split(split: str, holdout_every: int, where: Path, fmt: str) -> None:
    """Raises unless ``split`` is one of :data:`NGP_SPLITS` and ``holdout_every`` an int >= 2 (formats
    whose split is every ``holdout_every``-th frame)."""
    if split not in NGP_SPLITS:
        raise DatasetError(f"{where}: split must be one of {', '.join(NGP_SPLITS)} for {fmt}, got {split!r}")
    if isinstance(holdout_every, bool) or not isinstance(holdout_every, int) or holdout_every < 2:
        raise ValueError(f"holdout_every must be an int >= 2, got {holdout_every!r}")


def _split_indices(n: int, split: str, holdout_every: int, path: Path) -> list[int]:
    """Indices of ``split`` among ``n`` frames; every ``holdout_every``-th is held out (``"all"``: every frame)."""
    if split == "all":
        warnings.warn(f"{path}: no train/test split in the file; split 'all' uses all {n} frames",
                      DatasetWarning, stacklevel=5)
        return list(range(n))
    held_out = split != "train"
    chosen = [i for i in range(n) if (i % holdout_every == 0) == held_out]
    warnings.warn(
        f"{path}: no train/test split in the file; split '{split}' keeps {len(chosen)} of {n} frames "
        f"(sorted by image path, every {holdout_every}th one, indices 0, {holdout_every}, "
        f"{2 * holdout_every}, ..., held out for test/val)",
        DatasetWarning,
        stacklevel=5,
    )
    return chosen


def parse_instant_ngp(path: Path, split: str, holdout_every: int = 8) -> ParsedScene:
    """Parses one split of an instant-ngp ``transforms.json``.

    Args:
        path: The JSON file.
        split: ``"train"`` (all but every ``holdout_every``-th frame),
            ``"test"`` or ``"val"`` (the held-out frames) or ``"all"``.
        holdout_every: Hold out frames 0, k, 2k, ... of the sorted existing frames.

    Returns:
        The parsed split, poses in the file's coordinates.
    """
    check_split(split, holdout_every, path, "transforms.json")
    meta = read_json(path)
    fisheye = _check_camera_model(meta, path)
    aabb, cascades = _aabb(meta, path)
    frames = sorted(parse_frames(meta, path), key=lambda f: str(f.raw["file_path"]))
    frames = drop_missing(frames)
    if not frames:
        raise DatasetError(f"{path}: no images found for split '{split}' (none of the frames' files exist)")
    chosen = _split_indices(len(frames), split, holdout_every, path)
    if not chosen:
        raise DatasetError(f"{path}: no images found for split '{split}' with holdout_every={holdout_every}")
    frames = [frames[i] for i in chosen]
    sizes = probe_sizes([f.image for f in frames])
    intrinsics = np.array([_intrinsics(meta, f, size, fisheye) for f, size in zip(frames, sizes)], dtype=np.float64)
    return ParsedScene(
        frames=frames,
        intrinsics=intrinsics,
        sizes=np.array(sizes, dtype=np.int64),
        aabb=aabb,
        cascades=cascades,
        white_background=False,
        source=path,
        fisheye=np.ones(len(frames), dtype=bool) if fisheye else None,
    )
