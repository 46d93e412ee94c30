"""Decoding images (and depth maps) into preallocated uint8 / float32 arrays."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from nerfgen.data.errors import DatasetError

__all__ = ["probe_size", "probe_sizes", "decode_into", "plain_border", "pyramid_source", "load_depths"]

Size = tuple[int, int]  # (width, height)

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def _workers(n: int) -> int:
    return max(1, min(n, 8, os.cpu_count() or 1))


def _parallel(fn: Callable[[int], bool], n: int) -> list[bool]:
    with ThreadPoolExecutor(max_workers=_workers(n)) as pool:
        return list(pool.map(fn, range(n)))


def probe_size(paths: Sequence[Path], source: Path) -> Size:
    """Reads image headers and checks that all images have one size.

    Args:
        paths: Image files (at least one).
        source: The JSON file listing them, for error messages.

    Returns:
        The common ``(width, height)``.
    """
    sizes = probe_sizes(paths)
    for path, size in zip(paths, sizes):
        if size != sizes[0]:
            raise DatasetError(
                f"{source}: all images must have the same size, but {paths[0]} is "
                f"{sizes[0][0]}x{sizes[0][1]} and {path} is {size[0]}x{size[1]}"
            )
    return sizes[0]


def probe_sizes(paths: Sequence[Path]) -> list[Size]:
    """Reads each image's header: its ``(width, height)``, sizes free to differ.

    Args:
        paths: Image files.

    Returns:
        One ``(width, height)`` per path, in order.
    """
    sizes = []
    for path in paths:
        try:
            with Image.open(path) as im:
                sizes.append(im.size)
        except Exception as err:  # PIL raises many types for corrupt files
            raise DatasetError(f"{path}: cannot read image header ({err})") from err
    return sizes


def _resize(im: Image.Image, size: Size) -> Image.Image:
    """Area (box) downscaling; alpha is premultiplied by PIL for RGBA."""
    if im.size == size:
        return im
    factor = im.width // size[0]
    if factor >= 1 and (im.width, im.height) == (size[0] * factor, size[1] * factor):
        return im.reduce(factor)
    return im.resize(size, Image.Resampling.BOX)


def decode_into(path: Path, out: np.ndarray, mask: Path | None = None) -> bool:
    """Decodes ``path`` into ``out`` ``[H, W, 4]`` uint8, box-downscaled; returns whether it had alpha.

    With ``mask`` (a grey image of the same size, as DTU / IDR scans ship), the mask becomes the
    alpha channel.
    """
    size = (out.shape[1], out.shape[0])
    try:
        with Image.open(path) as im:
            has_alpha = im.mode in _ALPHA_MODES or "transparency" in im.info
            if has_alpha:
                im = _resize(im if im.mode == "RGBA" else im.convert("RGBA"), size)
            else:
                im = _resize(im if im.mode == "RGB" else im.convert("RGB"), size).convert("RGBA")
            im.load()
            out[...] = np.asarray(im)
    except Exception as err:  # truncated / corrupt data surfaces only while decoding
        raise DatasetError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from err
    if mask is None:
        return has_alpha
    try:
        with Image.open(mask) as im:
            out[..., 3] = np.asarray(_resize(im.convert("L"), size))
    except Exception as err:
        raise DatasetError(f"{mask}: cannot decode mask image ({type(err).__name__}: {err})") from err
    return True


PLAIN_LEVELS = {"black": (0, 16), "white": (239, 255)}
"""Channel values (inclusive) a border pixel must lie within, all three, to count as black or white."""


def plain_border(images: Sequence[np.ndarray], share: float = 0.5) -> tuple[str | None, float]:
    """The plain colour the images' borders show: ``"black"`` or ``"white"`` when more than
    ``share`` of the outermost pixels of all ``images`` (``[H, W, >=3]`` uint8) are, else None.

    Returns:
        The colour (or None) and the share of border pixels that have the commoner plain colour.

    >>> plain_border([np.zeros((4, 5, 4), np.uint8)])
    ('black', 1.0)
    """
    counts, total = dict.fromkeys(PLAIN_LEVELS, 0), 0
    for image in images:
        rgb = image[..., :3]
        ring = np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]])  # [pixels, 3]
        total += len(ring)
        for colour, (lo, hi) in PLAIN_LEVELS.items():
            counts[colour] += int(((ring >= lo) & (ring <= hi)).all(1).sum())
    colour = max(counts, key=counts.get)
    fraction = counts[colour] / max(total, 1)
    return (colour if fraction > share else None), fraction


def pyramid_source(path: Path, size: Size) -> Path:
    """The smallest pyramid level of ``path`` still at least ``size``: ``folder/name`` may have
    siblings ``folder_N/stem.*`` (``images/`` -> ``images_2/``, ``images_4/``, ...), as LLFF and
    ``nerfgen data process`` write them; ``path`` itself when there is none."""
    parent = path.parent
    base = re.sub(r"_\d+$", "", parent.name)
    best, best_pixels = path, None
    for folder in parent.parent.glob(f"{base}_*"):
        if folder == parent or not re.fullmatch(rf"{re.escape(base)}_\d+", folder.name):
            continue
        for candidate in folder.glob(f"{glob.escape(path.stem)}.*"):
            try:
                with Image.open(candidate) as im:
                    w, h = im.size
            except Exception:
                continue
            if w >= size[0] and h >= size[1] and (best_pixels is None or w * h < best_pixels):
                best, best_pixels = candidate, w * h
    if best_pixels is not None:
        try:
            with Image.open(path) as im:
                if im.size[0] * im.size[1] <= best_pixels:
                    return path
        except Exception:
            pass
    return best


def _load_depth_into(path: Path, in_size: Size, out: np.ndarray) -> bool:
    try:
        depth = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DatasetError(f"{path}: cannot read depth .npy file ({type(err).__name__}: {err})") from err
    expected = (in_size[1], in_size[0])
    if depth.shape != expected or not np.issubdtype(depth.dtype, np.floating):
        raise DatasetError(
            f"{path}: depth must be a float array of shape [H, W] = {list(expected)} like its image, "
            f"got {depth.dtype} {list(depth.shape)}"
        )
    # Nearest sample at each output pixel centre: depths of different surfaces never blend.
    rows = ((np.arange(out.shape[0]) + 0.5) * in_size[1] / out.shape[0]).astype(np.int64)
    cols = ((np.arange(out.shape[1]) + 0.5) * in_size[0] / out.shape[1]).astype(np.int64)
    out[...] = depth[np.ix_(rows, cols)]
    return True


def load_depths(paths: Sequence[Path], in_size: Size, out_size: Size) -> np.ndarray:
    """Loads ``.npy`` depth maps, point-sampled at the output pixel centres.

    Args:
        paths: ``.npy`` files, float ``[H, W]`` at the images' full resolution.
        in_size: Full-resolution ``(width, height)``.
        out_size: Output ``(width, height)``.

    Returns:
        Depths ``[n, H_out, W_out]`` float32.
    """
    out = np.empty((len(paths), out_size[1], out_size[0]), dtype=np.float32)
    _parallel(lambda i: _load_depth_into(paths[i], in_size, out[i]), len(paths))
    return out
