"""Reading and validating ``transforms*.json`` files (shared by both formats).

Every check raises :class:`DatasetError` naming the JSON file and what was expected.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nerfgen.data.errors import DatasetError, DatasetWarning

__all__ = ["Frame", "ParsedScene", "SfMPoints", "read_json", "get_number", "parse_frames", "drop_missing"]


@dataclass
class Frame:
    """One frame of a transforms file, validated.

    Attributes:
        image: Image file path (json folder + ``file_path``, ``.png`` added when it has no suffix).
        c2w: Camera-to-world pose, OpenGL convention, float64. ``[3, 4]``.
        raw: The frame's JSON object (for per-frame intrinsics).
        index: Position of the frame in the file's ``frames`` list.
        source: The JSON file the frame came from.
        depth: Depth ``.npy`` path when the frame has ``depth_file_path``.
        mask: Foreground mask image (white = object) when the format has one (IDR/NeuS ``mask/``).
    """

    image: Path
    c2w: np.ndarray  # [3, 4]
    raw: dict[str, Any]
    index: int
    source: Path
    depth: Path | None = None
    mask: Path | None = None


@dataclass
class SfMPoints:
    """Triangulated structure-from-motion points of a capture (COLMAP ``points3D``).

    Attributes:
        xyz: Point positions in the scene's (loaded) world coordinates. ``[p, 3]`` float64.
        error: Mean reprojection error of each point, pixels. ``[p]`` float64.
        visible: Per frame of the split (same order as ``ParsedScene.frames``), the indices into
            ``xyz`` of the points observed in that image. A list of ``[k_i]`` int64 arrays.
    """

    xyz: np.ndarray
    error: np.ndarray
    visible: list[np.ndarray]


@dataclass
class ParsedScene:
    """What a capture's files say about one split, before images are decoded.

    Attributes:
        frames: Frames of the split whose images exist.
        intrinsics: Per frame ``(fx, fy, cx, cy, d0, d1, d2, d3)``, pixels at full resolution: the
            distortion is OpenCV's ``(k1, k2, p1, p2)``, or ``(k1, k2, k3, k4)`` for a fisheye frame. ``[n, 8]``.
        sizes: Per frame full-resolution ``(width, height)``. ``[n, 2]`` int64.
        aabb: Finest-cascade scene box ``(xmin, ymin, zmin, xmax, ymax, zmax)``. ``[6]``.
        cascades: Number of occupancy-grid cascades.
        white_background: Whether evaluation composites alpha on white.
        source: The file the capture was read from (first one, for Blender ``"all"``), for messages.
        fisheye: Per frame, whether the lens is OpenCV's fisheye (equidistant) model. ``[n]`` bool;
            None means no fisheye frame.
        bounds: Per frame ``(near, far)`` scene depth bounds when the format stores them (LLFF). ``[n, 2]``.
        points: SfM points when the format carries them (COLMAP), else None.
        layout: What the format knows of the scene's shape: ``"object"`` (a bounded box around an
            object), ``"forward"`` (forward-facing, LLFF), ``"unbounded"`` or ``None`` (decide from the cameras).
    """

    frames: list[Frame]
    intrinsics: np.ndarray  # [n, 8]
    sizes: np.ndarray  # [n, 2] (width, height)
    aabb: np.ndarray  # [6]
    cascades: int
    white_background: bool
    source: Path
    fisheye: np.ndarray | None = None  # [n] bool
    bounds: np.ndarray | None = None  # [n, 2]
    points: SfMPoints | None = None
    layout: str | None = None

    @property
    def width(self) -> int:
        """Largest full-resolution width."""
        return int(self.sizes[:, 0].max())

    @property
    def height(self) -> int:
        """Largest full-resolution height."""
        return int(self.sizes[:, 1].max())


def read_json(path: Path) -> dict[str, Any]:
    """Reads a JSON object, turning I/O and syntax errors into :class:`DatasetError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot read as UTF-8 text ({err})") from err
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deep to read, expected a transforms file") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: expected a JSON object at the top level, got {type(meta).__name__}")
    return meta


def get_number(
    obj: dict[str, Any],
    key: str,
    where: str,
    default: float | None = None,
    positive: bool = False,
) -> float | None:
    """A finite number ``obj[key]`` (``default`` when absent).

    Args:
        obj: JSON object to read from.
        key: Key to read.
        where: Prefix for error messages, e.g. ``"path/transforms.json: frame 3"``.
        default: Value when the key is absent.
        positive: Require the value to be > 0.

    Returns:
        The value as a float, or ``default``.
    """
    if key not in obj:
        return default
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DatasetError(f"{where} '{key}' must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise DatasetError(f"{where} '{key}' must be > 0, got {value!r}")
    return float(value)


def _parse_pose(frame: dict[str, Any], where: str) -> np.ndarray:
    """Validates ``transform_matrix`` (4x4 or 3x4, finite) and returns it as ``[3, 4]``."""
    if "transform_matrix" not in frame:
        raise DatasetError(f"{where} has no 'transform_matrix'")
    raw = frame["transform_matrix"]
    try:
        matrix = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{where} 'transform_matrix' must be a 4x4 (or 3x4) list of numbers") from None
    if matrix.ndim != 2 or matrix.shape not in ((4, 4), (3, 4)):
        shape = "x".join(map(str, matrix.shape)) if matrix.ndim else "a scalar"
        raise DatasetError(f"{where} 'transform_matrix' must be 4x4 (or 3x4), got {shape}")
    if not np.isfinite(matrix).all():
        raise DatasetError(f"{where} 'transform_matrix' must be finite, got NaN or inf")
    if matrix.shape == (4, 4) and not np.allclose(matrix[3], [0, 0, 0, 1], atol=1e-4):
        raise DatasetError(f"{where} 'transform_matrix' last row must be [0, 0, 0, 1], got {matrix[3].tolist()}")
    return matrix[:3]


def _frame_path(frame: dict[str, Any], key: str, where: str, folder: Path, suffix: str) -> Path:
    value = frame[key]
    if not isinstance(value, str) or not value:
        raise DatasetError(f"{where} '{key}' must be a non-empty string, got {value!r}")
    path = folder / value
    return path if path.suffix else path.with_name(path.name + suffix)


def parse_frames(meta: dict[str, Any], path: Path) -> list[Frame]:
    """Validates ``meta["frames"]``: non-empty list of objects with a path and a pose.

    Args:
        meta: The parsed JSON object.
        path: The JSON file (for messages and relative paths).

    Returns:
        One :class:`Frame` per entry, in file order.
    """
    frames = meta.get("frames")
    if frames is None:
        raise DatasetError(f"{path}: expected a 'frames' list, found no 'frames' key")
    if not isinstance(frames, list) or not frames:
        raise DatasetError(f"{path}: 'frames' must be a non-empty list, got {frames!r:.60}")
    with_depth = [isinstance(f, dict) and "depth_file_path" in f for f in frames]
    if any(with_depth) and not all(with_depth):
        first = with_depth.index(not with_depth[0])
        raise DatasetError(
            f"{path}: either every frame or none has 'depth_file_path'; frame 0 and frame {first} differ"
        )
    parsed = []
    for i, frame in enumerate(frames):
        where = f"{path}: frame {i}"
        if not isinstance(frame, dict):
            raise DatasetError(f"{where} must be a JSON object, got {type(frame).__name__}")
        if "file_path" not in frame:
            raise DatasetError(f"{where} has no 'file_path'")
        image = _frame_path(frame, "file_path", where, path.parent, ".png")
        depth = _frame_path(frame, "depth_file_path", where, path.parent, ".npy") if with_depth[i] else None
        parsed.append(Frame(image, _parse_pose(frame, where), frame, i, path, depth))
    return parsed


def drop_missing(frames: list[Frame]) -> list[Frame]:
    """Drops frames whose image file does not exist, with one warning naming them all."""
    kept = [f for f in frames if f.image.is_file()]
    missing = [f for f in frames if not f.image.is_file()]
    if missing:
        sources = sorted({str(f.source) for f in missing})
        names = ", ".join(str(f.raw["file_path"]) for f in missing)
        warnings.warn(
            f"{', '.join(sources)}: skipping {len(missing)} of {len(frames)} frames whose image "
            f"file is missing: {names}",
            DatasetWarning,
            stacklevel=5,
        )
    return kept
