"""Any folder of images as a GAN training set: decoded once, square, in memory as uint8.

Every image under the folder (recursive, sorted by relative path) is converted to RGB (alpha
composited over white), centre-cropped to a square and resized to ``size`` x ``size``. The
decoded array is cached beside the images as ``.nerfgen_cache_{size}.npy`` with a JSON stamp
(the digest of the file list, sizes and modification times) and reused while the stamp matches;
a read-only folder is simply not cached. Training images are handed out as float tensors in
[-1, 1], ``[B, 3, S, S]`` (the GAN convention); a deterministic held-out split is kept apart.

>>> data = ImageCollection.from_folder("data/clevr", 64)  # doctest: +SKIP
>>> batch = data.sample(16, torch.Generator().manual_seed(0))  # [16, 3, 64, 64] in [-1, 1]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from nerfgen.data.errors import DatasetError
from nerfgen.files import atomic_write, read_json, write_json

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
"""File name endings read as images (any case)."""
LABELS_NAME = "labels.json"
CACHE_FORMAT = 1
"""Bump when decoding changes, so old caches are decoded again."""


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every image file under ``folder`` (recursive), sorted by relative path."""
    folder = Path(folder)
    found = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def load_square(path: Path, size: int) -> np.ndarray:
    """One image as uint8 [size, size, 3]: RGB over white, centre-cropped to a square, resized.

    Raises:
        DatasetError: naming ``path`` when it cannot be decoded.
    """
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side))
            if side != size:
                im = im.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc


def held_out_split(n: int, held_out: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic split of ``n`` images: every k-th (k = round(1 / held_out)) is held out.

    At least one image is held out when ``n >= 2`` and ``held_out > 0``; none when ``held_out = 0``.

    Returns:
        (train indices [n_train], held-out indices [n_held]), int64, ascending, disjoint, covering.
    """
    if not 0.0 <= held_out <= 0.5:
        raise ValueError(f"held_out must be in [0, 0.5], got {held_out}")
    index = torch.arange(n)
    if held_out == 0.0 or n < 2:
        return index, index[:0]
    k = max(2, round(1.0 / held_out))
    held = index % k == k - 1
    if not held.any():
        held[-1] = True
    return index[~held], index[held]


def _digest(root: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _cache_paths(root: Path, size: int) -> tuple[Path, Path]:
    return root / f".nerfgen_cache_{size}.npy", root / f".nerfgen_cache_{size}.json"


def _read_cache(root: Path, size: int, stamp: dict) -> np.ndarray | None:
    array_path, stamp_path = _cache_paths(root, size)
    try:
        if json.loads(stamp_path.read_text()) != stamp:
            return None
        images = np.load(array_path, allow_pickle=False)
    except (OSError, ValueError, EOFError, RecursionError):  # a damaged cache is decoded again
        return None
    if images.dtype != np.uint8 or images.shape != (stamp["count"], size, size, 3):
        return None
    return images


def _write_cache(root: Path, size: int, stamp: dict, images: np.ndarray) -> None:
    """Array first, stamp second (a reader never trusts an array its stamp does not describe);
    silently nothing when the folder cannot be written."""
    array_path, stamp_path = _cache_paths(root, size)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, images)

    try:
        stamp_path.unlink(missing_ok=True)
        atomic_write(array_path, write)
        write_json(stamp_path, stamp)
    except OSError:
        pass


def decode_folder(root: str | os.PathLike, size: int) -> tuple[list[Path], np.ndarray]:
    """The images under ``root`` (see :func:`list_images`) as uint8 [N, size, size, 3], through the cache."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected a folder of images)")
    if int(size) < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    files = list_images(root)
    if not files:
        raise DatasetError(f"{root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)}, recursively)")
    stamp = {"format": CACHE_FORMAT, "size": int(size), "count": len(files), "files_digest": _digest(root, files)}
    images = _read_cache(root, size, stamp)
    if images is None:
        images = np.empty((len(files), size, size, 3), dtype=np.uint8)
        for i, p in enumerate(files):
            images[i] = load_square(p, size)
        _write_cache(root, size, stamp, images)
    return files, images


class ImageCollection:
    """Square training images in memory, with a held-out split.

    Attributes:
        root: The folder the images came from.
        files: [N] image paths, in the order of ``images``.
        images: uint8 [N, S, S, 3].
        labels: The folder's ``labels.json`` (e.g. ground truth of a rendered set), or None.
        train: int64 [N_train] indices of the training images.
        held_out: int64 [N_held] indices kept out of training (for evaluation).
    """

    def __init__(self, root: Path, files: list[Path], images: torch.Tensor, labels: dict | None = None,
                 held_out: float = 0.1):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
            raise ValueError(f"images must be uint8 [N, S, S, 3], got {images.dtype} {list(images.shape)}")
        if len(files) != images.shape[0]:
            raise ValueError(f"{len(files)} files for {images.shape[0]} images")
        self.root, self.files, self.images, self.labels = Path(root), list(files), images, labels
        self.train, self.held_out = held_out_split(images.shape[0], held_out)

    @classmethod
    def from_folder(cls, path: str | os.PathLike, size: int, held_out: float = 0.1) -> ImageCollection:
        """Every png/jpg/jpeg/webp/bmp under ``path`` (see the module docstring) at ``size`` x ``size``."""
        root = Path(path)
        files, images = decode_folder(root, size)
        labels = None
        if (root / LABELS_NAME).is_file():
            try:
                labels = read_json(root / LABELS_NAME)
            except ValueError as exc:
                raise DatasetError(str(exc)) from None
            if not isinstance(labels, dict):
                raise DatasetError(f"{root / LABELS_NAME}: expected a JSON object")
        return cls(root, files, torch.from_numpy(images), labels, held_out)

    @property
    def size(self) -> int:
        """Image side S in pixels."""
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def images_at(self, indices, device: torch.device | str | None = None) -> torch.Tensor:
        """Images at ``indices`` [B] as float32 [B, 3, S, S] in [-1, 1] (on ``device``, default CPU)."""
        indices = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= len(self)):
            raise IndexError(f"indices must be in [0, {len(self)}), got [{int(indices.min())}, {int(indices.max())}]")
        return self._gather(indices, device)

    def _gather(self, indices: torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
        x = self.images[indices].to(device).permute(0, 3, 1, 2)  # [B, 3, S, S] uint8
        return x.float() / 127.5 - 1.0

    def sample(self, batch: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """``batch`` training images drawn uniformly with replacement: float32 [B, 3, S, S] in [-1, 1]."""
        if int(batch) < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        pick = torch.randint(len(self.train), (int(batch),), generator=generator)
        return self._gather(self.train[pick], device)  # in range by construction: nothing to check
