"""The images of a capture: a folder of photos or a video's frames, blurry ones left out.

:func:`collect_frames` writes the working copies that structure from motion sees (optionally
downscaled so the longest side is at most ``max_size``) into one folder; :func:`write_pyramid`
adds box-downscaled ``images_2/``, ``images_4/``, ... beside it. Sharpness is the variance of
the image's Laplacian (on a grey copy at most :data:`SHARPNESS_SIZE` pixels on its longest side,
so it does not depend on the resolution); a frame is blurry when its sharpness is below
``blur_ratio`` times the median of its ``blur_window`` neighbours in capture order.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nerfgen.data.errors import DatasetError

__all__ = [
    "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "FrameSet", "blurry", "collect_frames", "sharpness", "write_pyramid",
]  # fmt: skip

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
SHARPNESS_SIZE = 512
"""Longest side (pixels) of the grey copy sharpness is measured on."""

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class FrameSet:
    """The working copies of a capture, in capture order.

    Attributes:
        names: File names in the images folder, one per kept frame.
        sharpness: Variance of the Laplacian of each kept frame. ``[n]``.
        skipped: Names (source file names, or ``frame N`` of a video) left out as blurry.
        size: ``(width, height)`` of the working copies.
        source: The folder or video they came from.
        positions: Where each kept frame was in the source: a video's frame number, a folder's
            image number (sorted by name), counting from 0. ``[n]``.
        source_frames: Frames the source held (a video's, read at every frame; a folder's images).
    """

    names: list[str]
    sharpness: np.ndarray  # [n]
    skipped: list[str]
    size: tuple[int, int]
    source: Path
    positions: np.ndarray | None = None  # [n]
    source_frames: int = 0

    def times(self) -> np.ndarray:
        """``[n]`` each kept frame's time in ``[0, 1]``: its position over the whole clip (the
        source's first frame at 0, its last at 1), what a dynamic capture's frames carry."""
        return self.positions / max(self.source_frames - 1, 1)


def sharpness(image: Image.Image) -> float:
    """Variance of the 4-neighbour Laplacian of a grey copy at most :data:`SHARPNESS_SIZE` wide.

    .. math:: \\operatorname{Var}\\left(\\nabla^2 I\\right),\\quad
        \\nabla^2 I_{y,x} = I_{y-1,x} + I_{y+1,x} + I_{y,x-1} + I_{y,x+1} - 4 I_{y,x}

    >>> flat = Image.new("RGB", (64, 64), (128, 128, 128))
    >>> sharpness(flat)
    0.0
    """
    grey = image.convert("L")
    scale = SHARPNESS_SIZE / max(grey.size)
    if scale < 1:
        grey = grey.resize((max(1, round(grey.width * scale)), max(1, round(grey.height * scale))),
                           Image.Resampling.BOX)
    g = np.asarray(grey, dtype=np.float32)
    if min(g.shape) < 3:
        return 0.0
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def blurry(values: np.ndarray, ratio: float, window: int = 9) -> np.ndarray:
    """Which frames are blurry: sharpness below ``ratio`` times the median of their neighbourhood.

    Args:
        values: Sharpness per frame, in capture order. ``[n]``.
        ratio: Threshold relative to the local median (0 keeps every frame).
        window: Frames in the neighbourhood (centred, clipped at the ends).

    Returns:
        ``[n]`` bool.

    >>> blurry(np.array([10.0, 11.0, 2.0, 10.5, 9.8]), ratio=0.5).tolist()
    [False, False, True, False, False]
    """
    values = np.asarray(values, dtype=np.float64)
    half = max(window, 1) // 2
    local = np.array([np.median(values[max(0, i - half):i + half + 1]) for i in range(len(values))])
    return values < ratio * local


def _working_size(size: tuple[int, int], max_size: int | None) -> tuple[int, int]:
    w, h = size
    if max_size is None or max(w, h) <= max_size:
        return size
    factor = max(w, h) / max_size
    return max(1, round(w / factor)), max(1, round(h / factor))


def _resize(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Box filter for whole factors (what nerfgen's loader does), Lanczos otherwise."""
    if im.size == size:
        return im
    factor = im.width // size[0]
    if factor >= 1 and im.size == (size[0] * factor, size[1] * factor):
        return im.reduce(factor)
    return im.resize(size, Image.Resampling.LANCZOS)


def _save(im: Image.Image, path: Path) -> None:
    im = im if im.mode in ("RGB", "L") else im.convert("RGB")
    im.save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else im.save(path)


def _list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: no images found (expected files ending in {', '.join(IMAGE_SUFFIXES)})")
    return files


def _image_frames(folder: Path, max_size: int | None) -> Iterator[tuple[str, Path, Image.Image, int]]:
    """``(name, source file, decoded image, position)`` per image of a folder, all of one size."""
    first: tuple[Path, tuple[int, int]] | None = None
    for position, path in enumerate(_list_images(folder)):
        try:
            with Image.open(path) as im:
                im.load()
                image = im.copy()
        except Exception as err:  # PIL raises many types for corrupt files
            raise DatasetError(f"{path}: cannot read image ({type(err).__name__}: {err})") from err
        if first is None:
            first = (path, image.size)
        elif image.size != first[1]:
            raise DatasetError(
                f"{folder}: all images must have one size (one camera), but {first[0].name} is "
                f"{first[1][0]}x{first[1][1]} and {path.name} is {image.width}x{image.height}"
            )
        yield path.name, path, image, position


def _ffmpeg_message(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if len(lines) < 2 else f"{lines[0]}: {lines[-1]}"


def _video_frames(path: Path, fps: float | None, counted: list[int] | None = None
                  ) -> Iterator[tuple[str, None, Image.Image, int]]:
    """Frames of a video, one per ``1 / fps`` seconds (all of them when ``fps`` is None), each with
    its frame number; ``counted`` gets the number of frames read."""
    import imageio.v2 as iio

    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: the video file is empty (no frames)")
    try:
        reader = iio.get_reader(path, format="FFMPEG")
        source_fps = float(reader.get_meta_data().get("fps") or 0.0)
    except Exception as err:  # imageio-ffmpeg raises OSError / RuntimeError with ffmpeg's log
        raise DatasetError(f"{path}: cannot read as a video ({_ffmpeg_message(err)})") from err
    step = 1.0 if fps is None or source_fps <= 0 or fps >= source_fps else source_fps / fps
    index, next_keep = 0, 0.0
    try:
        while True:
            try:
                frame = reader.get_next_data()
            except (StopIteration, IndexError):
                break
            except Exception as err:
                raise DatasetError(f"{path}: cannot decode frame {index} ({_ffmpeg_message(err)})") from err
            if index >= next_keep - 1e-6:
                next_keep += step
                yield f"frame {index}", None, Image.fromarray(np.ascontiguousarray(frame[..., :3])), index
            index += 1
    finally:
        reader.close()
        if counted is not None:
            counted.append(index)
    if index == 0:
        raise DatasetError(f"{path}: the video has no frames")


def collect_frames(
    source: Path,
    images_dir: Path,
    fps: float | None = None,
    max_size: int | None = None,
    blur_ratio: float = 0.5,
    blur_window: int = 9,
    progress: Progress | None = None,
) -> FrameSet:
    """Writes the working copies of a capture's frames into ``images_dir`` (which must exist).

    A folder keeps its file names; a video's frames become ``frame_00001.jpg``, ... in order.
    Without ``max_size`` a folder's files are copied byte for byte.

    Args:
        source: A folder of images or a video file.
        images_dir: Where to write the working copies.
        fps: Video only: frames to keep per second of video (default: every frame).
        max_size: Longest side of the working copies (default: the source size).
        blur_ratio: Leave out frames whose sharpness is below this times their neighbours'
            median (0: keep all).
        blur_window: Neighbourhood of that median, in frames.
        progress: Called with ``(done, total)`` per frame (total 0 while a video's is unknown).

    Returns:
        The kept frames.

    Raises:
        DatasetError: No frames, an unreadable image or video frame, images of different sizes;
            the message names the file.
    """
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"{source}: not found (expected a folder of images or a video file)")
    is_video = source.is_file()
    if is_video and source.suffix.lower() not in VIDEO_SUFFIXES:
        raise DatasetError(f"{source}: expected a folder of images or a video ({', '.join(VIDEO_SUFFIXES)})")
    total = 0 if is_video else len(_list_images(source))
    counted: list[int] = []
    frames = _video_frames(source, fps, counted) if is_video else _image_frames(source, max_size)
    labels, names, values, positions, size = [], [], [], [], (0, 0)
    for label, path, image, position in frames:
        positions.append(position)
        size = _working_size(image.size, max_size)
        name = f"frame_{len(names) + 1:05d}.jpg" if is_video else label
        if path is not None and size == image.size:
            shutil.copyfile(path, images_dir / name)
        else:
            image = _resize(image, size)
            _save(image, images_dir / name)
        labels.append(label)
        names.append(name)
        values.append(sharpness(image))
        if progress is not None:
            progress(len(names), total)
    skip = blurry(np.array(values), blur_ratio, blur_window) if blur_ratio > 0 else np.zeros(len(names), bool)
    for name in np.array(names)[skip]:
        (images_dir / name).unlink()
    kept = [n for n, s in zip(names, skip) if not s]
    if is_video:  # renumber so the kept frames stay consecutive
        renamed = [f"frame_{i + 1:05d}.jpg" for i in range(len(kept))]
        for old, new in zip(kept, renamed):
            if old != new:
                (images_dir / old).rename(images_dir / new)
        kept = renamed
    total = counted[0] if is_video else total
    return FrameSet(kept, np.array(values)[~skip], [lb for lb, s in zip(labels, skip) if s], size, source,
                    np.array(positions, dtype=np.int64)[~skip], total)


def write_pyramid(images_dir: Path, names: list[str], factors: tuple[int, ...] = (2, 4, 8)) -> None:
    """Box-downscaled copies ``images_{k}/`` beside ``images_dir``, ``round(W / k) x round(H / k)``."""
    for k in factors:
        (images_dir.parent / f"images_{k}").mkdir()
    for name in names:
        with Image.open(images_dir / name) as im:
            im.load()
            for k in factors:
                size = (max(1, round(im.width / k)), max(1, round(im.height / k)))
                small = im.reduce(k) if im.size == (size[0] * k, size[1] * k) else im.resize(size, Image.Resampling.BOX)
                _save(small, images_dir.parent / f"images_{k}" / name)
