r"""Points into source views: pure functions a generalizable field is built from.

:func:`project_points` maps world points into every source camera (pixel coordinates, depth,
the point and a direction in each camera's own frame); :func:`sample_maps` reads per-view maps
(encoder features, the images themselves) at those pixel coordinates, bilinearly.

Pixel conventions are nerfgen's (:mod:`nerfgen.cameras.base`): pixel ``(row i, column j)`` covers
``[j, j + 1] x [i, i + 1]``, its centre at ``(j + 0.5, i + 0.5)``. A map of ``h x w`` cells over an
image of ``H x W`` pixels covers the same image, so its cell ``(i, j)`` is centred at
``((j + 0.5) W / w, (i + 0.5) H / h)``: a point that projects onto a pixel centre reads that
pixel's value exactly, at every map resolution whose cells align with the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.cameras import Cameras, distort

GL_TO_CV = (1.0, -1.0, -1.0)
"""OpenGL camera axes (x right, y up, looking down -z) -> OpenCV's (x right, y down, looking down +z)."""


@dataclass
class Projected:
    """World points as ``V`` source cameras see them.

    Attributes:
        uv: ``[V, n, 2]`` continuous pixel coordinates (x right, y down; pixel centres at ``+0.5``).
        depth: ``[V, n]`` distance in front of each camera along its axis (negative behind it).
        local: ``[V, n, 3]`` the points in each camera's frame (OpenCV axes: x right, y down, z ahead).
        directions: ``[V, n, 3]`` the given directions rotated into each camera's frame (OpenCV axes),
            or None.
        inside: ``[V, n]`` bool: in front of the camera and within its image.
    """

    uv: Tensor
    depth: Tensor
    local: Tensor
    directions: Tensor | None
    inside: Tensor


def world_to_camera(c2w: Tensor) -> tuple[Tensor, Tensor]:
    """``c2w [V, 3, 4]`` (OpenGL) -> rotation ``[V, 3, 3]`` and translation ``[V, 3]`` of the maps
    world -> camera in OpenCV axes: ``x_cam = R x + t``."""
    flip = c2w.new_tensor(GL_TO_CV)
    rotation = (c2w[:, :, :3] * flip).transpose(1, 2)  # columns flipped, then transposed: R_cv^T
    return rotation, -(rotation @ c2w[:, :, 3:])[..., 0]


def project_points(cameras: Cameras, points: Tensor, directions: Tensor | None = None) -> Projected:
    r"""Project world ``points [n, 3]`` into every camera of ``cameras`` (``V`` of them).

    With :math:`x_c = R x + t` (OpenCV axes), :math:`u = f_x\, d(x_c/z_c) + c_x`,
    :math:`v = f_y\, d(y_c/z_c) + c_y`, where :math:`d` is the camera's radial-tangential lens
    distortion (:func:`nerfgen.cameras.distort`; fisheye cameras are not supported).

    Args:
        cameras: ``V`` pinhole cameras sharing one image size.
        points: ``[n, 3]`` world points.
        directions: ``[n, 3]`` unit world directions to express in each camera's frame, or None.

    Returns:
        :class:`Projected`.

    >>> cams = Cameras(torch.eye(4)[None, :3], *(torch.tensor([f]) for f in (10.0, 10.0, 8.0, 6.0)), 16, 12)
    >>> project_points(cams, torch.tensor([[0.0, 0.0, -2.0]])).uv
    tensor([[[8., 6.]]])
    """
    if bool(cameras.fisheye.any()):
        raise ValueError("generalizable fields project into pinhole cameras only (a source view is a fisheye camera)")
    rotation, translation = world_to_camera(cameras.c2w.to(points.dtype))
    local = torch.einsum("vij,nj->vni", rotation, points) + translation[:, None]  # [V, n, 3]
    depth = local[..., 2]
    safe = torch.where(depth.abs() < 1e-6, torch.full_like(depth, 1e-6), depth)
    x, y = local[..., 0] / safe, local[..., 1] / safe
    k = cameras.distortion.to(points.dtype)
    if bool((k != 0).any()):
        x, y = distort(x, y, k[:, None].expand(*x.shape, 4))
    fx, fy, cx, cy = (getattr(cameras, n).to(points.dtype)[:, None] for n in ("fx", "fy", "cx", "cy"))
    uv = torch.stack([x * fx + cx, y * fy + cy], -1)
    inside = (depth > 1e-6) & (uv[..., 0] >= 0) & (uv[..., 0] <= cameras.width) & (uv[..., 1] >= 0) \
        & (uv[..., 1] <= cameras.height)
    dirs = None if directions is None else torch.einsum("vij,nj->vni", rotation, directions)
    return Projected(uv, depth, local, dirs, inside)


def sample_maps(maps: Tensor, uv: Tensor, width: int, height: int, padding: str = "zeros") -> Tensor:
    """Bilinear samples of per-view maps at pixel coordinates of their images.

    Args:
        maps: ``[V, C, h, w]`` one map per view, covering the view's ``height x width`` image.
        uv: ``[V, n, 2]`` pixel coordinates in those images (:class:`Projected`).
        width, height: the images' size in pixels.
        padding: what lies beyond the image: ``zeros`` or ``border`` (the edge repeated).

    Returns:
        ``[V, n, C]``.
    """
    grid = torch.stack([uv[..., 0] * (2.0 / width) - 1.0, uv[..., 1] * (2.0 / height) - 1.0], -1)
    out = F.grid_sample(maps, grid[:, :, None].to(maps.dtype), mode="bilinear", padding_mode=padding,
                        align_corners=False)  # [V, C, n, 1]
    return out[..., 0].transpose(1, 2)


__all__ = ["GL_TO_CV", "Projected", "project_points", "sample_maps", "world_to_camera"]
