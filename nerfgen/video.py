"""Videos at exactly the frames' size, written whole or not at all, with nothing printed.

Every video nerfgen writes goes through :func:`write_video`; the suffix picks the format:

- ``.mp4``: H.264 (libx264, from the ffmpeg that imageio-ffmpeg provides) at constant quality
  :data:`MP4_CRF`, never resized. Even width and height give yuv420p, which every player
  decodes; an odd width or height gives yuv444p (H.264 High 4:4:4), which allows any size where
  4:2:0 chroma needs even sides. ffmpeg runs at ``-loglevel error`` with its stderr kept in a
  temporary file: nothing reaches the terminal, and a failure raises with ffmpeg's message.
- ``.gif``: imageio's pillow plugin, looping forever. GIF stores each frame's delay in whole
  centiseconds (Pillow takes milliseconds and truncates to them), so frame ``i`` is shown from
  ``round(100 i / fps)`` cs on: delays of 3 or 4 cs at 30 fps, 33.3 ms on average. Browsers
  slow delays under 2 cs down to 10 cs, so rates above 50 fps play at 50 fps. Pillow merges a
  frame identical to the one before into it (the playing time is kept).

The video is written to a hidden temporary name beside ``path`` and renamed into place at the
end; on any error (a frame that fails to render, ffmpeg failing) the temporary file is removed
and ``path`` is left as it was.

>>> import numpy as np
>>> frames = (np.full((120, 160, 3), 10 * i, np.uint8) for i in range(20))
>>> write_video(frames, "renders/orbit.mp4", fps=30)  # doctest: +SKIP
20
"""

from __future__ import annotations

import math
import numbers
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from itertools import chain
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

from nerfgen.files import atomic_write

SUFFIXES = (".mp4", ".gif")
"""Video formats :func:`write_video` writes, by file suffix (case-insensitive)."""
MP4_CRF = 18
"""x264 constant rate factor: 0 is lossless, 18 about visually lossless, 23 x264's default."""
GIF_MIN_DELAY_CS = 2
"""Shortest GIF frame delay browsers honour, in centiseconds (shorter ones play as 10 cs)."""


def write_video(frames: Iterable[np.ndarray], path: str | Path, fps: float) -> int:
    """Write ``frames`` (uint8 ``[H, W, 3]`` each, all the same shape) as a video at ``path``.

    Frames are consumed one at a time, so ``frames`` can be a generator that renders them.

    Args:
        frames: RGB frames, uint8 ``[H, W, 3]``.
        path: ``.mp4`` or ``.gif`` file; its parent folder is created.
        fps: Frames per second, > 0.

    Returns:
        The number of frames written.

    Raises:
        ValueError: Unsupported suffix, fps not positive, no frames, or a frame that is not uint8
            ``[H, W, 3]`` or not the shape of the first (the error names its index).
        RuntimeError: ffmpeg failed (with its message).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: cannot write a video with suffix {path.suffix!r}; "
                         f"supported: {', '.join(SUFFIXES)}")
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"{path}: fps must be a positive number, got {fps!r}")
    fps = fps if isinstance(fps, Fraction) else float(fps)
    checked = _checked_frames(frames, path)
    first = next(checked, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    frames = chain([first], checked)
    written = 0

    def write(tmp: str) -> None:
        nonlocal written
        if suffix == ".mp4":
            written = _write_mp4(frames, first.shape, tmp, fps, path)
        else:
            written = _write_gif(frames, tmp, fps)

    atomic_write(path, write)
    return written


def _checked_frames(frames: Iterable[np.ndarray], path: Path) -> Iterator[np.ndarray]:
    """``frames`` as C-contiguous arrays, each checked to be uint8 ``[H, W, 3]`` like frame 0."""
    shape = None
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
            raise ValueError(f"{path}: frame {i} is {frame.dtype} {list(frame.shape)}, expected uint8 [H, W, 3]")
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise ValueError(f"{path}: frame {i} is {list(frame.shape)}, frame 0 was {list(shape)}; "
                             "all frames must have the same size")
        yield np.ascontiguousarray(frame)


def mp4_pixel_format(width: int, height: int) -> str:
    """yuv420p (plays everywhere) for even sides, else yuv444p (any size, no resizing)."""
    return "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"


def _ffmpeg_command(width: int, height: int, fps: float, output: str) -> list[str]:
    rate = Fraction(fps).limit_denominator(100_000)  # exact for 30, 24000/1001, ...
    return [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pixel_format", "rgb24", "-video_size", f"{width}x{height}",
        "-framerate", str(rate), "-i", "pipe:0",
        "-an", "-c:v", "libx264", "-preset", "medium", "-crf", str(MP4_CRF),
        "-pix_fmt", mp4_pixel_format(width, height), "-colorspace", "smpte170m", "-color_range", "tv",
        "-movflags", "+faststart", "-f", "mp4", output,
    ]


def _close_quietly(stream) -> None:
    try:
        stream.close()
    except OSError:
        pass  # ffmpeg exited before the buffered bytes were flushed; its exit code tells why


def _write_mp4(frames: Iterable[np.ndarray], shape: tuple[int, ...], tmp: str, fps: float, target: Path) -> int:
    """Pipe ``frames`` (checked, ``shape``) into ffmpeg writing ``tmp``; returns the frame count."""
    height, width = shape[:2]
    written = 0
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(_ffmpeg_command(width, height, fps, tmp), stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            for frame in frames:
                try:
                    proc.stdin.write(frame.data)
                except BrokenPipeError:
                    break  # ffmpeg stopped reading, so it failed; its log says why
                written += 1
            _close_quietly(proc.stdin)
            returncode = proc.wait()
        finally:
            if proc.poll() is None:  # a frame failed (or Ctrl-C) mid-way: abandon the video
                proc.kill()
                proc.wait()
            _close_quietly(proc.stdin)
        if returncode != 0:
            log.seek(0)
            message = log.read().decode(errors="replace").strip()[-2000:] or "no message"
            raise RuntimeError(f"{target}: ffmpeg (libx264, {width}x{height}) failed with exit code "
                               f"{returncode}: {message}")
    return written


def gif_delays_ms(n_frames: int, fps: float) -> list[int]:
    """Per-frame GIF delays in milliseconds, whole centiseconds: frame ``i`` starts at
    ``round(100 i / r)`` cs with ``r = min(fps, 50)``, so the delays average ``1 / r`` seconds
    and none is under :data:`GIF_MIN_DELAY_CS`."""
    rate = min(float(fps), 100.0 / GIF_MIN_DELAY_CS)
    starts = [round(100 * i / rate) for i in range(n_frames + 1)]
    return [10 * (b - a) for a, b in zip(starts, starts[1:])]


def _write_gif(frames: Iterable[np.ndarray], tmp: str, fps: float) -> int:
    """Write ``frames`` (checked) as a looping GIF at ``tmp``; returns the frame count."""
    stack = np.stack(list(frames))  # [n, H, W, 3]; Pillow holds every frame until it saves anyway
    iio.imwrite(tmp, stack, plugin="pillow", extension=".gif", duration=gif_delays_ms(len(stack), fps), loop=0)
    return len(stack)
