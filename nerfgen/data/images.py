"""Decoding images (and depth maps) into preallocated uint8 / float32 arrays."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from nerfgen.data.errors import DatasetError

__all__ = ["probe_size", "load_images", "load_depths"]

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
    sizes = []
    for path in paths:
        try:
            with Image.open(path) as im:
                sizes.append(im.size)
        except Exception as err:  # PIL raises many types for corrupt files
            raise DatasetError(f"{path}: cannot read image header ({err})") from err
    for path, size in zip(paths, sizes):
        if size != sizes[0]:
            raise DatasetError(
                f"{source}: all images must have the same size, but {paths[0]} is "
                f"{sizes[0][0]}x{sizes[0][1]} and {path} is {size[0]}x{size[1]}"
            )
    return sizes[0]


def _resize(im: Image.Image, size: Size) -> Image.Image:
    """Area (box) downscaling; alpha is premultiplied by PIL for RGBA."""
    if im.size == size:
        return im
    factor = im.width // size[0]
    if factor >= 1 and (im.width, im.height) == (size[0] * factor, size[1] * factor):
        return im.reduce(factor)
    return im.resize(size, Image.Resampling.BOX)


def _decode_into(path: Path, out: np.ndarray) -> bool:
    """Decodes ``path`` into ``out`` ``[H, W, 4]`` uint8; returns whether it had alpha."""
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
    return has_alpha


def load_images(paths: Sequence[Path], out_size: Size) -> tuple[np.ndarray, bool]:
    """Decodes images in parallel, box-downscaled to ``out_size``, as RGBA.

    Args:
        paths: Image files, all of one size (see :func:`probe_size`).
        out_size: Output ``(width, height)``.

    Returns:
        ``(images, has_alpha)``: images ``[n, H, W, 4]`` uint8 with alpha 255
        where the source has none; ``has_alpha`` is True when any source image
        has an alpha channel.
    """
    out = np.empty((len(paths), out_size[1], out_size[0], 4), dtype=np.uint8)
    flags = _parallel(lambda i: _decode_into(paths[i], out[i]), len(paths))
    return out, any(flags)


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
