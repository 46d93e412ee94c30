"""From a browser camera to an image: camera conversion, frame sizing, cancellable rendering and
the render modes (rgb, depth, accumulation, normals, split)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

import nerfgen
from nerfgen import Cameras, ImageOutput, colorize_depth, matrix_from_quaternion, quaternion_from_matrix

MODES = ("rgb", "depth", "accumulation", "normals")
"""What a view can show."""
_GL_FROM_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
"""OpenCV camera axes (viser: x right, y down, z forward) <-> OpenGL axes (nerfgen: y up, z back)."""


@dataclass(frozen=True)
class ViewCamera:
    """A browser camera.

    Attributes:
        position: ``[3]`` camera centre in world space.
        wxyz: ``[4]`` orientation quaternion (camera-to-world, OpenCV axes, as viser reports it).
        fov: vertical field of view in radians.
        aspect: canvas width over height.
    """

    position: tuple[float, float, float]
    wxyz: tuple[float, float, float, float]
    fov: float
    aspect: float

    def c2w(self) -> Tensor:
        """``[3, 4]`` camera-to-world pose in nerfgen's OpenGL axes."""
        rot = matrix_from_quaternion(torch.tensor(self.wxyz, dtype=torch.float64)) @ _GL_FROM_CV
        return torch.cat([rot, torch.tensor(self.position, dtype=torch.float64)[:, None]], dim=1).float()

    def cameras(self, width: int, height: int) -> Cameras:
        """This view as one pinhole camera of ``width`` x ``height`` pixels."""
        focal = 0.5 * height / math.tan(0.5 * self.fov)
        return Cameras(c2w=self.c2w()[None], fx=torch.tensor([focal]), fy=torch.tensor([focal]),
                       cx=torch.tensor([width / 2]), cy=torch.tensor([height / 2]), width=width, height=height)


def viser_pose(c2w: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """nerfgen ``[3, 4]`` OpenGL pose -> viser ``(wxyz [4], position [3])`` (OpenCV axes)."""
    rot = c2w[:, :3].double() @ _GL_FROM_CV
    return quaternion_from_matrix(rot).numpy(), c2w[:, 3].double().numpy()


def frame_size(aspect: float, long_side: int) -> tuple[int, int]:
    """``(width, height)`` with the given aspect and longest side."""
    if aspect >= 1:
        return long_side, max(1, round(long_side / aspect))
    return max(1, round(long_side * aspect)), long_side


def preview_side(rays_per_second: float, seconds: float, aspect: float, max_side: int, min_side: int = 32) -> int:
    """Longest side of a frame that renders in about ``seconds`` at ``rays_per_second``."""
    pixels = rays_per_second * seconds
    side = math.sqrt(pixels * aspect) if aspect >= 1 else math.sqrt(pixels / aspect)
    return int(min(max(side, min_side), max_side))


def render_view(
    run: nerfgen.Renderable, cameras: Cameras, background: Tensor, normals: bool = False,
    cancelled: Callable[[], bool] = lambda: False, band_rays: int | None = None, time: float | None = None,
    preview: bool = False,
) -> ImageOutput | None:
    """Render camera 0 of ``cameras`` in bands of about ``band_rays`` rays (default: the run's
    ``traits.band_rays``); returns None as soon as ``cancelled()``
    is true between bands (the camera moved on). A run whose traits ask for whole frames
    (GIRAFFE: its neural renderer is convolutional) is rendered in one call instead. ``time``:
    the instant of a time-conditioned run (None for a static one). ``preview``: a frame shown while
    the camera moves, rendered with the run's coarser march where it has one (``traits.previews``)."""
    options = {} if time is None else {"time": time}
    band_rays = band_rays or run.traits.band_rays
    if preview and run.traits.previews:
        options["preview"] = True
    if run.traits.whole_frames:
        return None if cancelled() else run.render(cameras, 0, background, normals=normals, chunk=band_rays, **options)
    w, h = cameras.width, cameras.height
    rows = max(1, band_rays // w)
    parts = []
    for y0 in range(0, h, rows):
        if cancelled():
            return None
        n = min(rows, h - y0)
        band = Cameras(c2w=cameras.c2w[:1], fx=cameras.fx[:1], fy=cameras.fy[:1], cx=cameras.cx[:1],
                       cy=cameras.cy[:1] - y0, width=w, height=n)
        parts.append(run.render(band, 0, background, normals=normals, chunk=band_rays, **options))
    return ImageOutput(
        rgb=torch.cat([p.rgb for p in parts]), depth=torch.cat([p.depth for p in parts]),
        opacity=torch.cat([p.opacity for p in parts]),
        normals=torch.cat([p.normals for p in parts]) if normals else None,
    )


def mode_image(image: ImageOutput, mode: str) -> Tensor:
    """``[H, W, 3]`` in [0, 1]: colour, colour-mapped depth, accumulation (grey) or world-space
    normals (``(n + 1) / 2``, black where empty)."""
    if mode == "rgb":
        return image.rgb
    if mode == "depth":
        return colorize_depth(image.depth, image.opacity)
    if mode == "accumulation":
        return image.opacity[..., None].expand(*image.opacity.shape, 3)
    if mode == "normals":
        if image.normals is None:
            raise ValueError("normals mode needs an image rendered with normals=True")
        return (image.normals + image.opacity[..., None]) * 0.5  # normals are weighted: |n| ~ opacity
    raise ValueError(f"unknown render mode {mode!r}; expected one of {MODES}")


def compose(image: ImageOutput, mode: str, split_mode: str | None = None, split: float = 0.5) -> np.ndarray:
    """``[H, W, 3]`` uint8 of ``mode``; with ``split_mode`` the columns right of ``split`` (a
    fraction of the width) show that mode instead, with a white line between the two."""
    out = mode_image(image, mode)
    if split_mode is not None:
        w = out.shape[1]
        cut = min(max(round(split * w), 0), w)
        out = torch.cat([out[:, :cut], mode_image(image, split_mode)[:, cut:]], dim=1)
        if 0 < cut < w:
            out[:, cut] = 1.0
    return (out.clamp(0, 1) * 255 + 0.5).byte().numpy()
