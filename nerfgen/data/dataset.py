"""The :class:`Dataset` container and :func:`load_dataset`, which picks the format."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nerfgen.cameras import Cameras
from nerfgen.data.blender import is_blender, parse_blender
from nerfgen.data.errors import DatasetError
from nerfgen.data.images import load_depths, load_images
from nerfgen.data.instant_ngp import parse_instant_ngp
from nerfgen.data.transforms import ParsedScene

__all__ = ["Dataset", "load_dataset"]


@dataclass
class Dataset:
    """Posed images of one split.

    Attributes:
        cameras: One camera per image, at the loaded (downscaled) resolution.
        images: RGBA images, alpha 255 everywhere when the source has none. ``[n, H, W, 4]`` uint8.
        has_alpha: Whether the source images carry alpha.
        aabb: Scene box of the finest cascade ``(xmin, ymin, zmin, xmax, ymax, zmax)``. ``[6]`` float32.
        cascades: Occupancy-grid cascades; cascade ``c`` spans ``2**c`` times the finest box about its centre.
        filenames: Image path of each frame.
        split: The split loaded (``"train"``, ``"val"``, ``"test"`` or ``"all"``).
        white_background: Whether evaluation composites alpha on white (NeRF-synthetic protocol).
        depths: Ground-truth depth along the ray (inf or 0 for a miss) when the frames carry
            ``depth_file_path``, else None. ``[n, H, W]`` float32.
        source: The absolute path the dataset was loaded from.
    """

    cameras: Cameras
    images: Tensor  # [n, H, W, 4] uint8
    has_alpha: bool
    aabb: Tensor  # [6]
    cascades: int
    filenames: list[str]
    split: str
    white_background: bool
    depths: Tensor | None = None  # [n, H, W]
    source: str = ""

    def __post_init__(self) -> None:
        n, h, w = len(self.cameras), self.cameras.height, self.cameras.width
        if self.images.dtype != torch.uint8 or tuple(self.images.shape) != (n, h, w, 4):
            raise ValueError(
                f"Dataset.images must be uint8 [{n}, {h}, {w}, 4] to match the cameras, "
                f"got {self.images.dtype} {list(self.images.shape)}"
            )
        if tuple(self.aabb.shape) != (6,) or not bool((self.aabb[3:] > self.aabb[:3]).all()):
            raise ValueError(f"Dataset.aabb must be [6] with max > min, got {self.aabb.tolist()}")
        if len(self.filenames) != n:
            raise ValueError(f"Dataset.filenames must have {n} entries, got {len(self.filenames)}")
        if self.depths is not None and tuple(self.depths.shape) != (n, h, w):
            raise ValueError(f"Dataset.depths must be [{n}, {h}, {w}], got {list(self.depths.shape)}")

    def __len__(self) -> int:
        return len(self.cameras)


def _find_scene(path: Path, split: str, holdout_every: int) -> ParsedScene:
    if not path.exists():
        raise DatasetError(f"{path}: dataset path not found")
    if path.is_file():
        return parse_instant_ngp(path, split, holdout_every)
    if is_blender(path, split):
        return parse_blender(path, split)
    if (path / "transforms.json").is_file():
        return parse_instant_ngp(path / "transforms.json", split, holdout_every)
    found = sorted(p.name for p in path.glob("transforms*.json"))
    raise DatasetError(
        f"{path}: expected transforms_{split}.json (NeRF-synthetic) or transforms.json (instant-ngp) "
        f"in this folder, found {', '.join(found) if found else 'no transforms*.json'}"
    )


def _cameras(scene: ParsedScene) -> Cameras:
    """Full-resolution cameras of a parsed split, float32."""
    c2w = torch.from_numpy(np.stack([f.c2w for f in scene.frames])).float()
    k = torch.from_numpy(scene.intrinsics).float()
    return Cameras(
        c2w=c2w,
        fx=k[:, 0].contiguous(),
        fy=k[:, 1].contiguous(),
        cx=k[:, 2].contiguous(),
        cy=k[:, 3].contiguous(),
        width=scene.width,
        height=scene.height,
        distortion=k[:, 4:8].contiguous(),
    )


def load_dataset(
    path: str | Path, split: str = "train", downscale: float = 1, holdout_every: int = 8
) -> Dataset:
    """Loads one split of a NeRF-synthetic or instant-ngp dataset.

    A folder with ``transforms_{split}.json`` is read as NeRF-synthetic
    (``split="all"`` joins train, val and test); otherwise a ``transforms.json``
    in the folder (or ``path`` itself, when it is a file) as instant-ngp /
    nerfstudio, split by holding out every ``holdout_every``-th frame.
    Frames whose image is missing are skipped with one :class:`DatasetWarning`.

    Args:
        path: Scene folder, or an instant-ngp JSON file.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        downscale: Factor >= 1; images are box-filtered to
            ``round(W / downscale) x round(H / downscale)`` and the cameras
            follow (:meth:`Cameras.scaled`).
        holdout_every: instant-ngp only: hold out frames 0, k, 2k, ... for test.

    Returns:
        The loaded split.

    Raises:
        DatasetError: Missing or malformed files, naming the file and what was expected.

    >>> ds = load_dataset("data/nerf_synthetic/lego", "train", downscale=8)  # doctest: +SKIP
    >>> ds.images.shape
    torch.Size([100, 100, 100, 4])
    """
    if isinstance(downscale, bool) or not isinstance(downscale, (int, float)) or not (
        math.isfinite(downscale) and downscale >= 1
    ):
        raise ValueError(f"downscale must be a finite number >= 1, got {downscale!r}")
    scene = _find_scene(Path(path), split, holdout_every)
    cameras = _cameras(scene)
    if downscale != 1:
        cameras = cameras.scaled(downscale)
    out_size = (cameras.width, cameras.height)
    images, has_alpha = load_images([f.image for f in scene.frames], out_size)
    depths = None
    if scene.frames[0].depth is not None:
        depth_files = [f.depth for f in scene.frames]
        depths = torch.from_numpy(load_depths(depth_files, (scene.width, scene.height), out_size))
    return Dataset(
        cameras=cameras,
        images=torch.from_numpy(images),
        has_alpha=has_alpha,
        aabb=torch.from_numpy(scene.aabb).float(),
        cascades=scene.cascades,
        filenames=[str(f.image) for f in scene.frames],
        split=split,
        white_background=scene.white_background,
        depths=depths,
        source=str(Path(path).resolve()),
    )
