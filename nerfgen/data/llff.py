"""LLFF format (forward-facing phone captures): ``poses_bounds.npy`` beside ``images/`` and/or ``images_N/``.

``poses_bounds.npy`` is ``[n, 17]``: per image a 3x5 matrix, row-major, whose first four columns
are the camera-to-world pose in LLFF's ``[down, right, backwards]`` camera axes and whose fifth is
``[H, W, focal]`` of the full-resolution photo, then the near and far scene depths. Images pair
with rows in sorted file-name order. As the NeRF paper does, the poses are recentred on their
average pose and the scene is scaled so the nearest bound is ``1 / 0.75``, which puts every
surface beyond the NDC near plane at distance 1; every 8th image is held out for testing.

Only the largest image folder present is listed (``images/``, else the smallest ``N``);
intrinsics are scaled from the stored full-resolution size to it, and the loader reads a
smaller pyramid level (``images_N/``) when the requested downscale matches one.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nerfgen.data.errors import DatasetError
from nerfgen.data.images import probe_size
from nerfgen.data.instant_ngp import _split_indices, check_split
from nerfgen.data.transforms import Frame, ParsedScene

__all__ = ["parse_llff", "recenter"]

POSES_FILE = "poses_bounds.npy"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".JPG", ".JPEG", ".PNG")
BOUNDS_FACTOR = 0.75  # NeRF's bd_factor: the nearest bound lands at 1 / 0.75


def _image_folder(folder: Path) -> tuple[Path, int]:
    """The largest image folder present and its downscale factor (1 for ``images/``)."""
    found = []
    for sub in folder.iterdir():
        match = re.fullmatch(r"images(?:_(\d+))?", sub.name)
        if sub.is_dir() and match:
            found.append((int(match.group(1) or 1), sub))
    if not found:
        raise DatasetError(f"{folder / POSES_FILE}: expected an images/ or images_N/ folder beside it, found none")
    factor, sub = min(found)
    return sub, factor


def _read_poses(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises several types for bad files
        raise DatasetError(f"{path}: cannot read as a .npy array ({type(err).__name__}: {err})") from err
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] != 17 or len(array) == 0:
        shape = list(array.shape) if isinstance(array, np.ndarray) else type(array).__name__
        raise DatasetError(f"{path}: expected an [n, 17] array (3x5 pose + near, far per image), got {shape}")
    if array.dtype.kind not in "fiu":
        raise DatasetError(f"{path}: expected an array of real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    bad = np.nonzero(~np.isfinite(array).all(1))[0]
    if len(bad):
        raise DatasetError(f"{path}: row {bad[0]} (image {bad[0]}) has NaN or inf values")
    if not (array[:, 15:] > 0).all() or not (array[:, 16] > array[:, 15]).all():
        raise DatasetError(f"{path}: near/far bounds (columns 15, 16) must satisfy 0 < near < far for every image")
    rot = array[:, :15].reshape(-1, 3, 5)[:, :, :3]
    off = np.abs(np.einsum("nji,njk->nik", rot, rot) - np.eye(3)).max((1, 2))
    if (off > 1e-3).any():
        row = int(np.argmax(off > 1e-3))
        raise DatasetError(f"{path}: row {row} (image {row}): the first three columns of its 3x5 pose must be a "
                           f"rotation, got {rot[row].round(4).tolist()}")
    if not (array[:, 4:15:5] > 0).all():
        raise DatasetError(f"{path}: the 5th column [H, W, focal] must be positive for every image")
    return array


def recenter(c2w: np.ndarray) -> np.ndarray:
    """The average pose of ``c2w [n, 3, 4]`` (centre: mean position; axes from the summed
    backward and up axes), as a ``[4, 4]`` matrix; ``inv(avg) @ c2w`` recentres the poses."""
    center = c2w[:, :, 3].mean(0)
    back = c2w[:, :, 2].sum(0)
    back /= np.linalg.norm(back)
    right = np.cross(c2w[:, :, 1].sum(0), back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    avg = np.eye(4)
    avg[:3] = np.stack([right, up, back, center], 1)
    return avg


def parse_llff(folder: Path, split: str, holdout_every: int = 8) -> ParsedScene:
    """Parses one split of an LLFF capture.

    Args:
        folder: Folder with ``poses_bounds.npy`` and image folders.
        split: ``"train"`` (all but every ``holdout_every``-th image), ``"test"``/``"val"`` or ``"all"``.
        holdout_every: Hold out images 0, k, 2k, ... (NeRF's protocol: 8).

    Returns:
        The split with OpenGL poses, recentred and scaled; ``bounds`` the scaled near/far;
        ``layout="forward"``.
    """
    path = folder / POSES_FILE
    check_split(split, holdout_every, path, "LLFF")
    array = _read_poses(path)
    image_dir, factor = _image_folder(folder)
    images = sorted(p for p in image_dir.iterdir() if p.suffix in IMAGE_SUFFIXES)
    if len(images) != len(array):
        raise DatasetError(f"{path}: has {len(array)} poses but {image_dir} has {len(images)} images; "
                           "expected one image per pose (paired in sorted file-name order)")
    poses = array[:, :15].reshape(-1, 3, 5)
    h, w, focal = poses[0, :, 4]
    # LLFF [down, right, back] -> OpenGL [right, up, back].
    c2w = np.concatenate([poses[:, :, 1:2], -poses[:, :, 0:1], poses[:, :, 2:4]], 2)
    bounds = array[:, 15:17].copy()
    scale = 1.0 / (bounds.min() * BOUNDS_FACTOR)
    c2w[:, :, 3] *= scale
    bounds *= scale
    avg = np.linalg.inv(recenter(c2w))
    c2w = np.einsum("ij,njk->nik", avg[:3, :3], c2w)
    c2w[:, :, 3] += avg[:3, 3]
    width, height = probe_size(images, path)
    if abs(width * factor - w) > factor or abs(height * factor - h) > factor:
        raise DatasetError(f"{path}: the stored full-resolution size is {w:g}x{h:g} but {image_dir.name}/ "
                           f"({factor}x smaller) holds {width}x{height} images")
    f = focal * width / w
    frames = [Frame(p, c2w[i], {"file_path": p.name}, i, path) for i, p in enumerate(images)]
    chosen = _split_indices(len(frames), split, holdout_every, path)
    n = len(chosen)
    intrinsics = np.tile(np.array([f, f, width / 2, height / 2, 0, 0, 0, 0], dtype=np.float64), (n, 1))
    near, far = bounds[:, 0].min(), bounds[:, 1].max()
    # A box around the view frustums between the bounds (the NDC field does not use it).
    extent = far * max(width, height) / (2 * f)
    aabb = np.array([-extent, -extent, -far, extent, extent, -near * 0.9])
    return ParsedScene(
        frames=[frames[i] for i in chosen], intrinsics=intrinsics,
        sizes=np.tile(np.array([width, height], dtype=np.int64), (n, 1)), aabb=aabb, cascades=1,
        white_background=False, source=path, bounds=bounds[chosen], layout="forward",
    )
