r"""Normalised device coordinates for forward-facing captures (NeRF's LLFF setting).

A forward-facing scene extends from the cameras' near plane to infinity. The projective map

.. math::
    x' = -a_x \frac{x}{z}, \quad y' = -a_y \frac{y}{z}, \quad z' = 1 + \frac{2 n}{z},

with :math:`a_x = 2 f_x / W`, :math:`a_y = 2 f_y / H` and near plane :math:`z = -n` (cameras look
down :math:`-z`), sends the reference camera's frustum from the near plane to infinity onto
:math:`[-1, 1]^3`, and straight lines to straight lines: a ray stays a ray, so any sampler and
field work unchanged in the new space, with depth spent in proportion to disparity.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from nerfgen.cameras.base import Cameras, Rays

__all__ = ["NDCConfig", "ndc_points", "ndc_rays", "ndc_config_for"]


@dataclass
class NDCConfig:
    """The NDC map of a forward-facing scene (``focal_x = 0``: rays stay in world space)."""

    focal_x: float = 0.0
    """``2 fx / W`` of the reference camera (0: NDC off)."""
    focal_y: float = 0.0
    """``2 fy / H`` of the reference camera."""
    near: float = 1.0
    """Distance of the near plane ``z = -near`` that maps to ``z' = -1``."""
    frame: list[float] = dataclasses.field(default_factory=lambda: [1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    """World-to-reference rigid transform, a row-major 3x4 matrix: NDC is taken in the frame of the
    reference camera (identity for LLFF, whose poses are recentred on their average)."""

    @property
    def enabled(self) -> bool:
        """Whether rays are mapped to NDC."""
        return self.focal_x > 0

    def validate(self, source: str) -> None:
        if len(self.frame) != 12:
            raise ValueError(f"{source}: frame: expected 12 numbers (a row-major 3x4 matrix), got {len(self.frame)}")
        if self.focal_x < 0 or self.focal_y < 0 or (self.enabled and not (self.focal_y > 0 and self.near > 0)):
            raise ValueError(f"{source}: expected focal_x, focal_y, near > 0 (or focal_x: 0 for no NDC), "
                             f"got {self.focal_x}, {self.focal_y}, {self.near}")


def ndc_config_for(cameras: Cameras, near: float, frame: Tensor | None = None) -> NDCConfig:
    """The NDC map of a capture: the mean focal lengths of its cameras relative to image size, a
    near plane and the world-to-reference transform ``frame [3, 4]`` (identity when None)."""
    frame = torch.eye(4)[:3] if frame is None else frame
    return NDCConfig(float((2 * cameras.fx / cameras.width).mean()), float((2 * cameras.fy / cameras.height).mean()),
                     float(near), [float(v) for v in frame.reshape(-1)])


def _to_frame(config: NDCConfig, points: Tensor, vectors: bool = False) -> Tensor:
    frame = torch.tensor(config.frame, dtype=points.dtype, device=points.device).view(3, 4)
    out = points @ frame[:, :3].T
    return out if vectors else out + frame[:, 3]


def ndc_points(points: Tensor, config: NDCConfig, in_frame: bool = False) -> Tensor:
    """World ``points [n, 3]`` in front of the cameras -> NDC ``[n, 3]`` (``in_frame``: the
    points are already in the reference frame)."""
    x, y, z = (points if in_frame else _to_frame(config, points)).unbind(-1)
    z = z.clamp(max=-1e-6)
    return torch.stack([-config.focal_x * x / z, -config.focal_y * y / z, 1.0 + 2.0 * config.near / z], -1)


def ndc_rays(rays: Rays, config: NDCConfig) -> Rays:
    """World rays -> NDC rays with unit directions, starting on the near plane (``z' = -1``).

    NDC distance 0 is the near plane; the ray reaches ``z' = 1`` (world infinity) at the length of
    its unnormalised NDC direction, so ray distances in NDC are bounded.
    """
    o, d = _to_frame(config, rays.origins), _to_frame(config, rays.directions, vectors=True)
    dz = d[:, 2].clamp(max=-1e-6)  # forward-facing: every ray looks down -z
    t = -(config.near + o[:, 2]) / dz
    o = o + t[:, None] * d
    oz = o[:, 2].clamp(max=-1e-6)
    origins = ndc_points(o, config, in_frame=True)
    directions = torch.stack([
        -config.focal_x * (d[:, 0] / dz - o[:, 0] / oz),
        -config.focal_y * (d[:, 1] / dz - o[:, 1] / oz),
        -2.0 * config.near / oz,
    ], -1)
    return Rays(origins, directions / directions.norm(dim=-1, keepdim=True))
