"""Cameras for generation: random views on a sphere around the object, and the prompt suffix
each view gets for text-only priors.

Angles follow :class:`nerfgen.prior.Views`: +z up, a camera at elevation ``e``, azimuth ``a`` and
distance ``r`` sits at ``r (cos e cos a, cos e sin a, sin e)`` looking at the origin.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nerfgen.cameras import Cameras, Rays, look_at, pixel_rays
from nerfgen.generate.config import CameraConfig
from nerfgen.prior import Views

VIEW_SUFFIXES = ("front view", "side view", "back view", "overhead view")
"""DreamFusion's view-dependent prompt suffixes, indexed by :func:`view_suffix_index`."""
FRONT_HALF_ANGLE = 45.0
"""Azimuths within this many degrees of 0 are the front; within it of 180, the back."""
OVERHEAD_ELEVATION = 60.0
"""Elevations at or above this many degrees are overhead views."""


def sample_views(config: CameraConfig, n: int, generator: torch.Generator) -> tuple[Views, Tensor]:
    """``n`` random views: azimuth uniform in [-180, 180), elevation uniform by area in
    ``config.elevation``, distance and field of view uniform in their ranges.

    Returns:
        The views (``[n]`` each, degrees) and the horizontal fields of view ``[n]`` in degrees.
    """
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    lo, hi = (math.sin(math.radians(e)) for e in config.elevation)
    elevation = torch.rad2deg(torch.asin(lo + (hi - lo) * u[:, 1]))
    azimuth = 360.0 * u[:, 0] - 180.0
    distance = config.distance[0] + (config.distance[1] - config.distance[0]) * u[:, 2]
    fov = config.fov[0] + (config.fov[1] - config.fov[0]) * u[:, 3]
    return Views(elevation.float(), azimuth.float(), distance.float()), fov.float()


def view_positions(views: Views) -> Tensor:
    """``[n, 3]`` camera centres of ``views``."""
    e, a = torch.deg2rad(views.elevation), torch.deg2rad(views.azimuth)
    return views.distance[:, None] * torch.stack([e.cos() * a.cos(), e.cos() * a.sin(), e.sin()], -1)


def view_cameras(views: Views, fov: Tensor, resolution: int) -> Cameras:
    """Square pinhole cameras at ``views`` looking at the origin, +z up.

    Args:
        views: ``[n]`` angles and distances.
        fov: ``[n]`` horizontal fields of view in degrees.
        resolution: image side in pixels.
    """
    up = torch.tensor([0.0, 0.0, 1.0])
    c2w = torch.stack([look_at(p, torch.zeros(3), up) for p in view_positions(views).cpu()])
    focal = 0.5 * resolution / torch.tan(0.5 * torch.deg2rad(fov.cpu().float()))
    half = torch.full_like(focal, resolution / 2)
    return Cameras(c2w=c2w, fx=focal, fy=focal.clone(), cx=half, cy=half.clone(), width=resolution, height=resolution)


def camera_rays(cameras: Cameras) -> Rays:
    """Rays through every pixel centre of every camera: ``[n_cams * H * W]``, image-major, row-major."""
    h, w, n = cameras.height, cameras.width, len(cameras)
    py, px = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    cam = torch.arange(n).repeat_interleave(h * w)
    return pixel_rays(cameras, cam, px.reshape(-1).repeat(n), py.reshape(-1).repeat(n))


def view_suffix_index(views: Views) -> Tensor:
    """``[n]`` index into :data:`VIEW_SUFFIXES`: overhead above :data:`OVERHEAD_ELEVATION`, else
    front / back within :data:`FRONT_HALF_ANGLE` of azimuth 0 / 180, else side.

    >>> view_suffix_index(Views(torch.tensor([0.0, 0, 0, 70]), torch.tensor([10.0, 90, -170, 0]), torch.ones(4)))
    tensor([0, 1, 2, 3])
    """
    azimuth = (views.azimuth + 180.0) % 360.0 - 180.0
    side = torch.ones_like(azimuth, dtype=torch.long)
    index = torch.where(azimuth.abs() <= FRONT_HALF_ANGLE, 0, torch.where(azimuth.abs() >= 180 - FRONT_HALF_ANGLE, 2, side))
    return torch.where(views.elevation >= OVERHEAD_ELEVATION, 3, index)


def preview_views(config: CameraConfig, n: int = 4, elevation: float = 15.0) -> tuple[Views, Tensor]:
    """``n`` evenly spaced azimuths from the front at one elevation, mid distance and field of view."""
    azimuth = torch.arange(n, dtype=torch.float32) * (360.0 / n)
    distance = torch.full((n,), sum(config.distance) / 2)
    return Views(torch.full((n,), elevation), azimuth, distance), torch.full((n,), sum(config.fov) / 2)
