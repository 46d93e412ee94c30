"""Looking at a generation while it forms: preview sheets of four sides."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import torch
from torch import Tensor

from nerfgen.cameras import Cameras, image_rays, orbit_views, view_cameras
from nerfgen.generate.config import GenerateConfig
from nerfgen.generate.shading import shade, surface_normals
from nerfgen.render import ImageOutput

Render = Callable[[Cameras, int], ImageOutput]
"""``render(cameras, index) -> ImageOutput``: one camera of what is previewed, on a background."""
Density = Callable[[Tensor], Tensor]
"""``density(positions [n, 3]) -> sigma [n]`` of what is previewed."""

PREVIEW_ELEVATION = 15.0
"""Elevation (degrees) of preview and orbit cameras."""


@torch.no_grad()
def render_sheet(render: Render, density: Density, config: GenerateConfig, background: Tensor,
                 n_views: int = 4) -> Tensor:
    """``[2 * R, n_views * R, 3]``: colour on ``background`` above textureless shading (light from
    the camera, normals at the surface points as in training), at azimuths 0, 90, 180, 270, at the
    mid training distance and field of view."""
    cam = config.camera
    views = orbit_views(n_views, PREVIEW_ELEVATION, sum(cam.distance) / 2)
    cameras = view_cameras(views, torch.full((n_views,), sum(cam.fov) / 2), config.preview_resolution)
    cameras = cameras.to(background.device)
    rows: list[list[Tensor]] = [[], []]
    for i in range(n_views):
        image = render(cameras, i)
        rays = image_rays(cameras, i)
        opacity = image.opacity.reshape(-1).to(background.device)
        normals = surface_normals(density, rays.origins, rays.directions, image.depth.reshape(-1),
                                  config.normal_eps)
        gray = shade(image.rgb.reshape(-1, 3).to(background.device), opacity, normals, -rays.directions, "textureless", config.shading.ambient)
        rows[0].append(image.rgb)
        rows[1].append((gray + (1 - opacity[:, None]) * background).view_as(image.rgb).cpu())
    return torch.cat([torch.cat(row, 1) for row in rows], 0)


def write_preview(sheet: Tensor, output: Path, step: int) -> Path:
    """Write ``sheet [H, W, 3]`` (in [0, 1]) as ``output/previews/step_NNNNNN.png`` and
    ``output/preview.png`` (temp name, then rename)."""
    sheet = (sheet.clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()
    path = Path(output) / "previews" / f"step_{step:06d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    for target in (path, Path(output) / "preview.png"):
        tmp = target.with_name(f".{target.name}.tmp.png")
        iio.imwrite(tmp, sheet)
        os.replace(tmp, target)
    return path
