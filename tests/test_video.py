"""nerfgen.video.write_video: exact size, quiet, right GIF timing, atomic."""

from __future__ import annotations

import warnings

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image, ImageSequence

from nerfgen.video import gif_delays_ms, mp4_pixel_format, write_video


def gradient_frames(n: int, height: int, width: int) -> list[np.ndarray]:
    """``n`` smooth, distinct uint8 frames [H, W, 3]: red along x, green along y, blue moving."""
    yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    frames = []
    for t in range(n):
        blue = 0.5 + 0.4 * np.sin(2 * np.pi * (0.5 * xx + 0.5 * yy + t / n))
        rgb = np.stack([0.1 + 0.8 * xx, 0.1 + 0.8 * yy, blue], -1)
        frames.append(np.round(rgb * 255).astype(np.uint8))
    return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def write_quietly(capfd, frames, path, fps) -> int:
    """write_video with Python warnings as errors; asserts nothing reached fd 1 or fd 2."""
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        n = write_video(frames, path, fps)
    out, err = capfd.readouterr()
    assert out == "" and err == "", f"write_video printed: stdout={out!r} stderr={err!r}"
    return n


@pytest.mark.parametrize("width, height", [(200, 200), (201, 133)])
def test_mp4_has_the_exact_size_and_content_and_prints_nothing(tmp_path, capfd, width, height):
    frames = gradient_frames(12, height, width)
    path = tmp_path / "renders" / "orbit.mp4"  # parent folder does not exist yet
    assert write_quietly(capfd, iter(frames), path, fps=24) == 12
    video = iio.imread(path)
    assert video.shape == (12, height, width, 3)
    scores = [psnr(got, want) for got, want in zip(video, frames)]
    assert min(scores) > 30, f"PSNR per frame {scores}"
    assert [p.name for p in path.parent.iterdir()] == ["orbit.mp4"], "temporary file left behind"


def test_mp4_pixel_format_is_420_only_for_even_sides():
    assert mp4_pixel_format(200, 200) == "yuv420p"
    assert [mp4_pixel_format(w, h) for w, h in [(201, 200), (200, 133), (201, 133)]] == ["yuv444p"] * 3


@pytest.mark.parametrize("fps", [20, 30])
def test_gif_has_every_frame_its_size_and_the_frame_rate(tmp_path, capfd, fps):
    frames = gradient_frames(9, 20, 24)
    path = tmp_path / "orbit.gif"
    assert write_quietly(capfd, frames, path, fps=fps) == 9
    assert iio.imread(path).shape[:3] == (9, 20, 24)
    with Image.open(path) as im:
        delays = [frame.info["duration"] for frame in ImageSequence.Iterator(im)]
        assert im.info.get("loop") == 0, "the GIF should loop forever"
    assert len(delays) == 9 and all(d % 10 == 0 and d >= 20 for d in delays), delays
    assert abs(sum(delays) - 9 * 1000 / fps) <= 5, f"{delays} ms for 9 frames at {fps} fps"


def test_gif_delays_track_the_frame_rate_in_whole_centiseconds():
    assert gif_delays_ms(6, 30) == [30, 40, 30, 30, 40, 30]
    assert gif_delays_ms(4, 10) == [100] * 4
    assert gif_delays_ms(3, 60) == [20] * 3, "browsers slow delays under 20 ms to 100 ms"


@pytest.mark.parametrize("name, match", [("orbit.avi", r"orbit\.avi.*\.mp4, \.gif"), ("orbit", r"\.mp4, \.gif")],
                         ids=["avi", "no-suffix"])
def test_unsupported_suffix_is_refused(tmp_path, name, match):
    with pytest.raises(ValueError, match=match):
        write_video(gradient_frames(2, 8, 8), tmp_path / name, fps=10)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_bad_frames_are_refused_with_their_index(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    frames = gradient_frames(3, 16, 16) + [np.zeros((16, 18, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"frame 3 is \[16, 18, 3\], frame 0 was \[16, 16, 3\]"):
        write_video(frames, path, fps=10)
    with pytest.raises(ValueError, match=r"frame 1 is float32 \[16, 16, 3\], expected uint8"):
        write_video([frames[0], frames[1].astype(np.float32)], path, fps=10)
    with pytest.raises(ValueError, match=r"frame 0 is uint8 \[16, 16, 4\]"):
        write_video([np.zeros((16, 16, 4), np.uint8)], path, fps=10)
    with pytest.raises(ValueError, match="no frames"):
        write_video(iter([]), path, fps=10)
    with pytest.raises(ValueError, match="fps must be a positive number"):
        write_video(frames[:1], path, fps=0)
    assert not any(tmp_path.iterdir()), "an error left a file behind"


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_failure_mid_way_leaves_no_file(tmp_path, suffix):
    def frames():
        yield from gradient_frames(2, 32, 32)
        raise RuntimeError("render failed")

    path = tmp_path / "videos" / f"orbit{suffix}"
    with pytest.raises(RuntimeError, match="render failed"):
        write_video(frames(), path, fps=10)
    assert not path.exists() and not any(path.parent.iterdir()), list(path.parent.iterdir())


def test_failure_keeps_the_previous_video(tmp_path):
    path = tmp_path / "orbit.mp4"
    write_video(gradient_frames(3, 32, 32), path, fps=10)
    before = path.read_bytes()

    def frames():
        yield from gradient_frames(2, 32, 32)
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError, match="render failed"):
        write_video(frames(), path, fps=10)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["orbit.mp4"]


def test_ffmpeg_failure_raises_its_message_and_leaves_no_file(tmp_path, capfd, monkeypatch):
    from nerfgen import video

    command = video._ffmpeg_command

    def broken_encoder(width, height, fps, output):
        return command(width, height, fps, output)[:-1] + ["-c:v", "no_such_encoder", output]

    monkeypatch.setattr(video, "_ffmpeg_command", broken_encoder)
    path = tmp_path / "orbit.mp4"
    capfd.readouterr()
    with pytest.raises(RuntimeError, match=r"(?s)orbit\.mp4: ffmpeg .*no_such_encoder"):
        write_video(gradient_frames(30, 64, 64), path, fps=10)
    assert capfd.readouterr() == ("", ""), "ffmpeg's message belongs in the error, not on the terminal"
    assert not any(tmp_path.iterdir())
