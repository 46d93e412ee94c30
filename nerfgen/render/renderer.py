"""Render rays through a field: sample, query, composite."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nerfgen.fields import RadianceField
from nerfgen.ops import volume_render
from nerfgen.render.normals import density_normals
from nerfgen.render.occupancy import OccGridEstimator


@dataclass
class RenderOutput:
    """What rendering a batch of rays produces.

    Attributes:
        rgb: ``[n_rays, 3]`` colour composited over the background.
        depth: ``[n_rays]`` expected ray distance of the visible surface (0 where empty).
        opacity: ``[n_rays]`` accumulated weight (1 - final transmittance).
        n_samples: number of field samples that were shaded.
        normals: ``[n_rays, 3]`` weight-averaged unit normals of the density (not renormalised,
            so their length is about the opacity), when asked for; else None.
    """

    rgb: Tensor
    depth: Tensor
    opacity: Tensor
    n_samples: int
    normals: Tensor | None = None


def render_rays(
    field: RadianceField,
    estimator: OccGridEstimator,
    origins: Tensor,
    directions: Tensor,
    background: Tensor,
    stratified: bool = False,
    normals: bool = False,
) -> RenderOutput:
    r"""Volume-render rays: :math:`C = \sum_i T_i \alpha_i c_i + (1 - \sum_i T_i \alpha_i) c_{bg}`.

    Args:
        field: the radiance field.
        estimator: occupancy grid that places samples.
        origins: ``[n_rays, 3]``.
        directions: ``[n_rays, 3]`` unit.
        background: ``[3]`` or ``[n_rays, 3]`` colour behind the scene.
        stratified: jitter sample positions (training).
        normals: also composite density normals (:func:`density_normals`, central differences
            1/2048 of the field's box apart).

    Returns:
        :class:`RenderOutput`; differentiable in the field's parameters.
    """
    n_rays = origins.shape[0]

    def sigma_fn(t_starts: Tensor, t_ends: Tensor, ray_indices: Tensor) -> Tensor:
        mids = origins[ray_indices] + directions[ray_indices] * ((t_starts + t_ends) * 0.5)[:, None]
        return field.density(mids)

    samples = estimator.sampling(origins, directions, sigma_fn=sigma_fn, stratified=stratified)
    ri = samples.ray_indices
    mids_t = (samples.t_starts + samples.t_ends) * 0.5
    positions = origins[ri] + directions[ri] * mids_t[:, None]
    sigmas, colors = field(positions, directions[ri])
    n_color = colors.shape[-1]
    if normals:  # composited in the same pass as the colour
        eps = float((field.aabb[3:] - field.aabb[:3]).max()) / 2048
        colors = torch.cat([colors, density_normals(field.density, positions, eps)], -1)
    out = volume_render(samples.t_starts, samples.t_ends, sigmas, colors, ri, n_rays,
                        estimator.config.early_stop_eps)
    opacity = out.opacity
    rgb = out.color[:, :n_color] + (1.0 - opacity[:, None]) * background
    depth = out.depth / opacity.clamp(min=1e-6)
    normal_map = out.color[:, n_color:] if normals else None
    return RenderOutput(rgb=rgb, depth=depth, opacity=opacity, n_samples=len(samples), normals=normal_map)


@torch.no_grad()
def render_rays_chunked(
    field: RadianceField,
    estimator: OccGridEstimator,
    origins: Tensor,
    directions: Tensor,
    background: Tensor,
    chunk: int = 1 << 14,
    normals: bool = False,
) -> RenderOutput:
    """:func:`render_rays` over many rays in chunks, without gradients (images, evaluation)."""
    parts = [
        render_rays(field, estimator, origins[i : i + chunk], directions[i : i + chunk],
                    background if background.ndim == 1 else background[i : i + chunk], normals=normals)
        for i in range(0, origins.shape[0], chunk)
    ]
    return RenderOutput(
        rgb=torch.cat([p.rgb for p in parts]),
        depth=torch.cat([p.depth for p in parts]),
        opacity=torch.cat([p.opacity for p in parts]),
        n_samples=sum(p.n_samples for p in parts),
        normals=torch.cat([p.normals for p in parts]) if normals else None,
    )
