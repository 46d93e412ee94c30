"""Render rays through a field: sample, query, composite any number of channels."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from nerfgen.cameras import Rays
from nerfgen.fields import Conditioning, RadianceField
from nerfgen.ops import RaySamples, volume_render
from nerfgen.render.normals import density_normals
from nerfgen.render.sampler import Sampler


@dataclass
class RenderOutput:
    """What rendering a batch of rays produces.

    Attributes:
        rgb: ``[n_rays, 3]`` colour composited over the background (colour fields), else None.
        depth: ``[n_rays]`` expected ray distance of the visible surface (0 where empty).
        opacity: ``[n_rays]`` accumulated weight (1 - final transmittance).
        n_samples: number of field samples that were shaded.
        normals: ``[n_rays, 3]`` weight-averaged unit normals of the density (not renormalised,
            so their length is about the opacity), when asked for; else None.
        features: ``[n_rays, C]`` feature vectors composited over the background's (feature
            fields), else None.
        weights: ``[n_samples]`` compositing weights of :attr:`samples` (for losses on them).
        samples: the packed samples the field was evaluated at.
    """

    rgb: Tensor | None
    depth: Tensor
    opacity: Tensor
    n_samples: int
    normals: Tensor | None = None
    features: Tensor | None = None
    weights: Tensor | None = None
    samples: RaySamples | None = None


def render_rays(
    field: RadianceField,
    sampler: Sampler,
    rays: Rays,
    background: Tensor,
    cond: Conditioning | None = None,
    stratified: bool = False,
    normals: bool = False,
    defer_termination: bool = False,
) -> RenderOutput:
    r"""Volume-render rays: :math:`C = \sum_i T_i \alpha_i c_i + (1 - \sum_i T_i \alpha_i) c_{bg}`.

    Args:
        field: the radiance (or feature) field.
        sampler: places the samples (:class:`~nerfgen.render.Sampler`).
        rays: ``[n_rays]`` rays with unit directions.
        background: ``[C]`` or ``[n_rays, C]`` behind the scene, ``C`` the field's channels.
        cond: per-ray (``[n_rays, ...]``) or shared (``[1, ...]``) conditioning of the field.
        stratified: jitter sample positions (training).
        normals: also composite density normals (:func:`density_normals`, central differences
            1/2048 of the field's box apart).
        defer_termination: renders without gradients: let the sampler leave early termination
            to compositing where rays are short (:meth:`Sampler.sample`).

    Returns:
        :class:`RenderOutput`; differentiable in the field's parameters (and ``cond``).
    """
    origins, directions, n_rays = rays.origins, rays.directions, len(rays)

    def sigma_fn(t_starts: Tensor, t_ends: Tensor, ray_indices: Tensor) -> Tensor:
        mids = origins[ray_indices] + directions[ray_indices] * ((t_starts + t_ends) * 0.5)[:, None]
        return field.density(mids, None if cond is None else cond.take(ray_indices))

    samples = sampler.sample(rays, sigma_fn=sigma_fn, stratified=stratified, cond=cond,
                             defer_termination=defer_termination)
    ri = samples.ray_indices
    mids_t = (samples.t_starts + samples.t_ends) * 0.5
    positions = origins[ri] + directions[ri] * mids_t[:, None]
    sample_cond = None if cond is None else cond.take(ri)
    if "rays" in getattr(field, "accepts", ()):  # a field that reads along its rays (IBRNet's ray module)
        sample_cond = dataclasses.replace(sample_cond or Conditioning(), rays=ri)
    out = field(positions, directions[ri], sample_cond)
    colors = out.channels
    n_color = colors.shape[-1]
    if normals:  # composited in the same pass as the colour
        eps = float((field.aabb[3:] - field.aabb[:3]).max()) / 2048
        six = None if cond is None else cond.take(ri.repeat_interleave(6))  # density_normals asks 6 points each
        colors = torch.cat([colors, density_normals(lambda x: field.density(x, six), positions, eps)], -1)
    comp = volume_render(samples.t_starts, samples.t_ends, out.sigma, colors, ri, n_rays, sampler.early_stop_eps)
    opacity = comp.opacity
    value = comp.color[:, :n_color] + (1.0 - opacity[:, None]) * background
    depth = comp.depth / opacity.clamp(min=1e-6)
    rgb, features = (value, None) if out.rgb is not None else (None, value)
    return RenderOutput(rgb=rgb, depth=depth, opacity=opacity, n_samples=len(samples),
                        normals=comp.color[:, n_color:] if normals else None, features=features,
                        weights=comp.weights, samples=samples)


@torch.no_grad()
def render_rays_chunked(
    field: RadianceField,
    sampler: Sampler,
    rays: Rays,
    background: Tensor,
    cond: Conditioning | None = None,
    chunk: int = 1 << 14,
    normals: bool = False,
) -> RenderOutput:
    """:func:`render_rays` over many rays in chunks, without gradients (images, evaluation), early
    termination left to compositing where rays are short; per-sample weights are not kept."""
    parts = []
    for i in range(0, len(rays), chunk):
        rows = slice(i, i + chunk)
        parts.append(render_rays(field, sampler, rays[rows], background if background.ndim == 1 else background[rows],
                                 None if cond is None else cond.take(rows), normals=normals, defer_termination=True))

    def cat(name: str) -> Tensor | None:
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else torch.cat(values)

    return RenderOutput(rgb=cat("rgb"), depth=cat("depth"), opacity=cat("opacity"),
                        n_samples=sum(p.n_samples for p in parts), normals=cat("normals"), features=cat("features"))
