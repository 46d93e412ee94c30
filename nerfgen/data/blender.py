"""NeRF-synthetic ("Blender") format: ``transforms_{train,val,test}.json`` in one folder.

Each file holds ``camera_angle_x`` (horizontal field of view, radians) and
``frames`` with ``file_path`` (relative, usually without extension) and a 4x4
OpenGL ``transform_matrix``. Images are RGBA, composited on white for evaluation.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nerfgen.data.errors import DatasetError
from nerfgen.data.images import probe_size
from nerfgen.data.transforms import Frame, ParsedScene, drop_missing, get_number, parse_frames, read_json

__all__ = ["BLENDER_SPLITS", "parse_blender", "split_files"]

BLENDER_SPLITS = ("train", "val", "test")
BLENDER_BOUND = 1.5  # NeRF-synthetic objects fit in [-1.5, 1.5]^3


def split_files(folder: Path, split: str) -> list[Path]:
    """The ``transforms_{split}.json`` files of ``split`` in ``folder`` (``"all"``: train, val and test)."""
    names = BLENDER_SPLITS if split == "all" else (split,)
    return [folder / f"transforms_{name}.json" for name in names if (folder / f"transforms_{name}.json").is_file()]


def parse_blender(folder: Path, split: str, holdout_every: int = 8) -> ParsedScene:
    """Parses the transforms file(s) of one split (``"all"`` joins train, val and test).

    Args:
        folder: Scene folder holding ``transforms_{split}.json``.
        split: ``"train"``, ``"val"``, ``"test"`` (any ``transforms_{split}.json``) or ``"all"``.
        holdout_every: Unused (the files give the split); there for the signature all readers share.

    Returns:
        The parsed split; fx = fy = ``0.5 W / tan(camera_angle_x / 2)``,
        principal point at the image centre, no distortion.
    """
    files = split_files(folder, split)
    if not files:
        raise DatasetError(f"{folder}: expected transforms_{split}.json (NeRF-synthetic format)")
    frames: list[Frame] = []
    angles: list[float] = []
    for path in files:
        meta = read_json(path)
        angle = get_number(meta, "camera_angle_x", f"{path}:", positive=True)
        if angle is None:
            raise DatasetError(f"{path}: expected 'camera_angle_x' (horizontal field of view in radians)")
        if angle >= math.pi:
            raise DatasetError(f"{path}: 'camera_angle_x' must be below pi radians, got {angle}")
        parsed = parse_frames(meta, path)
        frames += parsed
        angles += [angle] * len(parsed)
    angle_of = {id(f): a for f, a in zip(frames, angles)}
    frames = drop_missing(frames)
    if not frames:
        raise DatasetError(f"{files[0]}: no images found for split '{split}'")
    width, height = probe_size([f.image for f in frames], files[0])
    fx = np.array([0.5 * width / math.tan(0.5 * angle_of[id(f)]) for f in frames])
    zeros = np.zeros_like(fx)
    intrinsics = np.stack([fx, fx, zeros + width / 2, zeros + height / 2, zeros, zeros, zeros, zeros], axis=1)
    return ParsedScene(
        frames=frames,
        intrinsics=intrinsics,
        sizes=np.tile(np.array([width, height], dtype=np.int64), (len(frames), 1)),
        aabb=np.array([-BLENDER_BOUND] * 3 + [BLENDER_BOUND] * 3),
        cascades=1,
        white_background=True,
        source=files[0],
        layout="object",
    )
