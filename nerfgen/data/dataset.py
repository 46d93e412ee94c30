"""The :class:`Dataset` container and :func:`load_dataset`, which picks the format."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nerfgen.cameras import Cameras
from nerfgen.data.errors import DatasetError
from nerfgen.data.formats import choose_format
from nerfgen.data.images import decode_into, load_depths, plain_border, pyramid_source
from nerfgen.data.store import ImageStore
from nerfgen.data.transforms import ParsedScene, SfMPoints

__all__ = ["Dataset", "load_dataset", "spread_views"]


@dataclass
class Dataset:
    """Posed images of one split.

    Attributes:
        cameras: One camera per image, at the loaded (downscaled) resolution; ``width``/``height``
            are the largest image's (see :meth:`camera` for one image's own size).
        store: The images, RGBA uint8, each at its own size (alpha 255 where the source has none),
            held in memory or decoded lazily (:class:`~nerfgen.data.store.ImageStore`).
        aabb: Scene box of the finest cascade ``(xmin, ymin, zmin, xmax, ymax, zmax)``. ``[6]`` float32.
        cascades: Occupancy-grid cascades; cascade ``c`` spans ``2**c`` times the finest box about its centre.
        filenames: Image path of each frame.
        split: The split loaded (``"train"``, ``"val"``, ``"test"`` or ``"all"``).
        white_background: Whether the run is trained (images without alpha), evaluated and shown on
            white: the format's protocol where images have alpha (white for NeRF-synthetic), else
            what the images' border shows (:func:`~nerfgen.data.images.plain_border`).
        depths: Ground-truth depth along the ray (inf or 0 for a miss) when the frames carry
            ``depth_file_path``, else None. ``[n, H, W]`` float32.
        source: The absolute path the dataset was loaded from.
        sizes: ``(width, height)`` of each loaded image. ``[n, 2]`` int64.
        bounds: Per image ``(near, far)`` scene depths when the format stores them (LLFF). ``[n, 2]``.
        points: SfM points (COLMAP), in the cameras' world coordinates, else None.
        layout: What the format says of the scene: ``"object"``, ``"forward"``, ``"unbounded"`` or None
            (a hint: :func:`~nerfgen.data.scene_layout` decides from the cameras).
        format: The reader that loaded it (:data:`~nerfgen.data.formats.READERS`), e.g. ``"idr"``.
        background_reason: Where ``white_background`` came from when the images have no alpha and
            their border is plain (to say so), else None.
    """

    cameras: Cameras
    store: ImageStore
    aabb: Tensor  # [6]
    cascades: int
    filenames: list[str]
    split: str
    white_background: bool
    depths: Tensor | None = None  # [n, H, W]
    source: str = ""
    sizes: Tensor | None = None  # [n, 2]
    bounds: Tensor | None = None  # [n, 2]
    points: SfMPoints | None = None
    layout: str | None = None
    format: str = ""
    background_reason: str | None = None

    def __post_init__(self) -> None:
        n = len(self.cameras)
        if self.sizes is None:
            self.sizes = torch.tensor([[self.cameras.width, self.cameras.height]] * n, dtype=torch.long)
        if tuple(self.sizes.shape) != (n, 2) or len(self.store) != n:
            raise ValueError(f"Dataset: {n} cameras but {len(self.store)} images / sizes {list(self.sizes.shape)}")
        if tuple(self.aabb.shape) != (6,) or not bool((self.aabb[3:] > self.aabb[:3]).all()):
            raise ValueError(f"Dataset.aabb must be [6] with max > min, got {self.aabb.tolist()}")
        if len(self.filenames) != n:
            raise ValueError(f"Dataset.filenames must have {n} entries, got {len(self.filenames)}")
        h, w = self.cameras.height, self.cameras.width
        if self.depths is not None and tuple(self.depths.shape) != (n, h, w):
            raise ValueError(f"Dataset.depths must be [{n}, {h}, {w}], got {list(self.depths.shape)}")

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def has_alpha(self) -> bool:
        """Whether the source images carry alpha."""
        return self.store.has_alpha

    @property
    def images(self) -> Tensor:
        """All images as one ``[n, H, W, 4]`` uint8 tensor (images of one size only)."""
        return self.store.dense()

    def image(self, i: int) -> Tensor:
        """Image ``i`` at its own size, ``[H_i, W_i, 4]`` uint8."""
        return self.store[i]

    def subset(self, indices: list[int]) -> Dataset:
        """The images ``indices`` of this split alone (few-view training); SfM points keep only
        what those images see."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        points = self.points
        if points is not None:
            points = SfMPoints(points.xyz, points.error, [points.visible[i] for i in indices])
        return dataclasses.replace(
            self, cameras=self.cameras[idx], store=self.store.subset(indices), filenames=[self.filenames[i] for i in indices],
            depths=None if self.depths is None else self.depths[idx], sizes=self.sizes[idx],
            bounds=None if self.bounds is None else self.bounds[idx], points=points,
        )

    def camera(self, i: int) -> Cameras:
        """Camera ``i`` alone, with its own image size."""
        cam = self.cameras[i : i + 1]
        w, h = (int(v) for v in self.sizes[i])
        return dataclasses.replace(cam, width=w, height=h)


def spread_views(n: int, k: int) -> list[int]:
    """``k`` of ``n`` views, evenly spaced from the first to the last (all when ``k >= n``)."""
    if k >= n:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})


def _cameras(scene: ParsedScene, downscale: float) -> tuple[Cameras, np.ndarray]:
    """Cameras of a parsed split at the loaded resolution, float32, and each image's loaded size.

    Each image is scaled on its own: ``round(w / downscale) x round(h / downscale)``, intrinsics by
    the ratio of the new size to the old along each axis (:meth:`Cameras.scaled` for one size).
    """
    full = scene.sizes.astype(np.float64)
    sizes = np.maximum(1, np.round(full / downscale)).astype(np.int64)  # [n, 2]
    ratio = sizes / full
    k = scene.intrinsics.copy()
    k[:, [0, 2]] *= ratio[:, :1]
    k[:, [1, 3]] *= ratio[:, 1:]
    kt = torch.from_numpy(k).float()
    c2w = torch.from_numpy(np.stack([f.c2w for f in scene.frames])).float()
    bad = ~(torch.isfinite(c2w).all(2).all(1) & torch.isfinite(kt).all(1))
    if bool(bad.any()):
        frame = scene.frames[int(bad.nonzero()[0, 0])]
        raise DatasetError(f"{frame.source}: the camera of {frame.image.name} does not fit in float32 (pose "
                           f"{frame.c2w.tolist()}); expected poses and intrinsics of at most about 1e38")
    options = {}
    if scene.fisheye is not None:
        options["fisheye"] = torch.from_numpy(np.asarray(scene.fisheye, dtype=bool))
    cameras = Cameras(
        c2w=c2w,
        fx=kt[:, 0].contiguous(), fy=kt[:, 1].contiguous(), cx=kt[:, 2].contiguous(), cy=kt[:, 3].contiguous(),
        width=int(sizes[:, 0].max()), height=int(sizes[:, 1].max()), distortion=kt[:, 4:8].contiguous(), **options,
    )
    return cameras, sizes


def _plain_background(store: ImageStore, where: Path) -> tuple[bool, str | None]:
    """Images without alpha show their own backdrop: white when most of their border is white,
    else black (what training without alpha composites on); says so when the border is plain."""
    picked = spread_views(len(store), 8)
    colour, share = plain_border([store[i].numpy() for i in picked])
    if colour is None:
        return False, None
    return colour == "white", (f"{where}: the images have no alpha and {share:.0%} of their border is {colour} "
                               f"({len(picked)} of {len(store)} images): trained, evaluated and shown on {colour}")


def _check_downscale(downscale: float) -> None:
    if isinstance(downscale, bool) or not isinstance(downscale, (int, float)) or not (
        math.isfinite(downscale) and downscale >= 1
    ):
        raise ValueError(f"downscale must be a finite number >= 1, got {downscale!r}")


DEFAULT_IMAGE_MEMORY = 1 << 30
"""Decoded pixels a split may hold in memory before its images are decoded lazily (bytes)."""


def load_dataset(
    path: str | Path, split: str = "train", downscale: float = 1, holdout_every: int = 8,
    image_memory: int = DEFAULT_IMAGE_MEMORY, format: str = "auto",
) -> Dataset:
    """Loads one split of a posed-image capture, read by the format ``format`` names or found from the folder.

    - ``transforms_{split}.json``: NeRF-synthetic, ``nerf-synthetic`` (``split="all"`` joins train, val and test);
    - ``transforms.json`` (or ``path`` itself, a JSON file): ``instant-ngp`` / nerfstudio;
    - ``poses_bounds.npy``: ``llff``;
    - ``sparse/0`` + ``images/``: ``colmap``; ``cameras_sphere.npz`` + ``image/`` (+ ``mask/``): ``idr`` (NeuS).

    When several match, the one that carries the most (masks, per-view intrinsics, a scene box,
    near/far bounds) reads it (:func:`~nerfgen.data.formats.choose_format`).

    Formats without a split hold out every ``holdout_every``-th frame (sorted by name) for
    test/val. Frames whose image is missing are skipped with one :class:`DatasetWarning` where the
    format allows it.

    Args:
        path: Scene folder, or an instant-ngp JSON file.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        downscale: Factor >= 1; each image is box-filtered to ``round(W / downscale) x
            round(H / downscale)`` (from a pyramid level ``images_N/`` when one matches) and its
            camera follows.
        holdout_every: Formats without a split: hold out frames 0, k, 2k, ... for test.
        image_memory: Decoded pixels (bytes) held in memory at most; a larger split is decoded
            lazily, a subset of images at a time (:class:`~nerfgen.data.store.ImageStore`).
        format: ``"auto"`` or the reader to use: ``nerf-synthetic`` (``blender``), ``instant-ngp``
            (``transforms``, ``nerfstudio``), ``llff``, ``colmap``, ``idr`` (``neus``, ``dtu``).

    Returns:
        The loaded split.

    Raises:
        DatasetError: Missing or malformed files, naming the file and what was expected.
        ValueError: An unknown ``format`` (listing the choices) or a bad ``downscale``.

    >>> ds = load_dataset("data/nerf_synthetic/lego", "train", downscale=8)  # doctest: +SKIP
    >>> ds.images.shape
    torch.Size([100, 100, 100, 4])
    """
    _check_downscale(downscale)
    choice = choose_format(Path(path), split, format)
    scene = choice.parse(split, holdout_every)
    cameras, sizes = _cameras(scene, downscale)
    sources = [pyramid_source(f.image, tuple(s)) for f, s in zip(scene.frames, sizes)]
    masks = [f.mask for f in scene.frames]
    store = ImageStore(sizes, lambda i, out: decode_into(sources[i], out, masks[i]), image_memory)
    depths = None
    if scene.frames[0].depth is not None:
        if not (sizes == sizes[0]).all():
            raise DatasetError(f"{scene.source}: depth maps need images of one size")
        depth_files = [f.depth for f in scene.frames]
        full = (int(scene.sizes[0, 0]), int(scene.sizes[0, 1]))
        depths = torch.from_numpy(load_depths(depth_files, full, (int(sizes[0, 0]), int(sizes[0, 1]))))
    aabb = torch.from_numpy(scene.aabb).float()
    if not (bool(torch.isfinite(aabb).all()) and bool((aabb[3:] > aabb[:3]).all())):
        raise DatasetError(f"{scene.source}: the scene box it gives, {scene.aabb.tolist()}, is not a finite box "
                           "(expected min < max within float32's range)")
    white, reason = scene.white_background, None
    if not store.has_alpha:
        white, reason = _plain_background(store, Path(path))
    return Dataset(
        cameras=cameras,
        store=store,
        aabb=aabb,
        cascades=scene.cascades,
        filenames=[str(f.image) for f in scene.frames],
        split=split,
        white_background=white,
        depths=depths,
        source=str(Path(path).resolve()),
        sizes=torch.from_numpy(sizes),
        bounds=None if scene.bounds is None else torch.from_numpy(scene.bounds).float(),
        points=scene.points,
        layout=scene.layout,
        format=choice.reader.name,
        background_reason=reason,
    )
