"""A renderable scene: a field and the sampler that places its samples, built from a :class:`ModelSpec`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from nerfgen.cameras import Cameras, image_rays
from nerfgen.cameras.ndc import NDCConfig, ndc_rays
from nerfgen.fields import Conditioning, build_field, field_config
from nerfgen.render.contraction import Contraction
from nerfgen.render.occupancy import OccGridConfig, OccupancyGrid
from nerfgen.render.proposal import ProposalConfig, ProposalSampler
from nerfgen.render.renderer import RenderOutput, render_rays, render_rays_chunked
from nerfgen.render.sampler import Sampler, StratifiedConfig, StratifiedSampler
from nerfgen.render.time_occupancy import TimeOccupancyGrid


@dataclass
class ModelSpec:
    """What builds a :class:`RadianceModel` (stored in every run directory)."""

    field: Literal["ngp", "vanilla", "kplanes", "deform", "nsff", "sdf"] = "ngp"
    """Registered field name (``nerfgen.fields.FIELDS``; ``kplanes``, ``deform`` and ``nsff`` are
    dynamic and need ``grid.time_bins``; ``sdf`` is a refined generated object's signed distance)."""
    field_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Options of the field's config dataclass (e.g. ``log2_table_size``)."""
    sampler: Literal["occupancy", "stratified", "proposal"] = "occupancy"
    """How rays are sampled: an occupancy grid with early termination, stratified between near/far,
    or proposal density nets (unbounded captures, with ``contraction``)."""
    grid: OccGridConfig = dataclasses.field(default_factory=OccGridConfig)
    """Occupancy grid and ray-marching settings (``sampler: occupancy``)."""
    stratified: StratifiedConfig = dataclasses.field(default_factory=StratifiedConfig)
    """Samples per ray and near/far (``sampler: stratified``)."""
    contraction: Contraction = "none"
    """Scene contraction of the field (and proposal nets): ``none`` (the box bounds the scene),
    ``linf`` (nerfacto) or ``l2`` (mip-NeRF 360); the box is then the inner, uncontracted region."""
    proposal: ProposalConfig = dataclasses.field(default_factory=ProposalConfig)
    """Proposal sampling settings (``sampler: proposal``)."""
    ndc: NDCConfig = dataclasses.field(default_factory=NDCConfig)
    """Map rays to normalised device coordinates before sampling (forward-facing captures): the
    box and field then live in NDC space. Filled from the training cameras by ``forward_facing``."""

    def validate(self, source: str) -> None:
        field_config(self.field, self.field_options, f"{source}: field_options")


def build_sampler(spec: ModelSpec, aabb: Tensor, cascades: int) -> Sampler:
    """The sampler ``spec`` names, over ``aabb`` (the finest cascade's box for the grid)."""
    if spec.sampler == "occupancy":  # one grid per bin of time for a dynamic scene's field
        return (TimeOccupancyGrid if spec.grid.time_bins > 0 else OccupancyGrid)(aabb, cascades, spec.grid)
    if spec.sampler == "proposal":
        return ProposalSampler(aabb, spec.proposal, spec.contraction)
    return StratifiedSampler(aabb, spec.stratified)


@dataclass
class ImageOutput:
    """One rendered image: ``rgb [H, W, 3]`` (or ``features [H, W, C]``), ``depth [H, W]``,
    ``opacity [H, W]`` and, when asked for, ``normals [H, W, 3]`` (world space, weight-averaged)."""

    rgb: Tensor | None
    depth: Tensor
    opacity: Tensor
    normals: Tensor | None = None
    features: Tensor | None = None


class RadianceModel(nn.Module):
    """A radiance field with the sampler that samples it.

    Args:
        spec: field name and options, sampler and its settings.
        aabb: ``[6]`` the scene's box (the finest cascade's for an occupancy grid).
        cascades: occupancy-grid cascades (``1 + log2(aabb_scale)``).
    """

    def __init__(self, spec: ModelSpec, aabb: Tensor, cascades: int = 1) -> None:
        super().__init__()
        self.spec = spec
        self.sampler = build_sampler(spec, torch.as_tensor(aabb, dtype=torch.float32), cascades)
        options = dict(spec.field_options)
        if spec.field == "ngp" and spec.contraction == "none":  # finer hash grid where the box grows with the cascades
            options["max_resolution"] = options.get("max_resolution", 2048) * 2 ** (cascades - 1)
        self.field = build_field(spec.field, self.sampler.outer_aabb, options)
        self.field.contraction = spec.contraction

    @classmethod
    def assembled(cls, spec: ModelSpec, field: nn.Module, sampler: Sampler) -> RadianceModel:
        """A model of an existing field and sampler (shared, not copied): a view of another
        model, such as one instant of a dynamic scene."""
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model.spec, model.sampler, model.field = spec, sampler, field
        return model

    @property
    def device(self) -> torch.device:
        """Where the model's parameters and buffers live."""
        return self.field.aabb.device

    def render_rays(self, rays, background: Tensor, cond: Conditioning | None = None,
                    stratified: bool = False, normals: bool = False) -> RenderOutput:
        """Render a batch of rays (differentiable); see :func:`nerfgen.render.render_rays`. World
        rays are mapped to NDC first when the model lives there (``spec.ndc``)."""
        if self.spec.ndc.enabled:
            rays = ndc_rays(rays, self.spec.ndc)
        return render_rays(self.field, self.sampler, rays, background, cond, stratified, normals)

    @torch.no_grad()
    def render_camera(
        self, cameras: Cameras, index: int, background: Tensor, chunk: int = 1 << 14, normals: bool = False,
        cond: Conditioning | None = None,
    ) -> ImageOutput:
        """Render every pixel of camera ``index`` (pixel centres), without gradients.

        Cameras and background may live anywhere: the rays are made on the model's device, the
        image comes back on the CPU (for metrics, files and the viewer). ``cond`` is shared by
        every pixel (leading dimension 1).
        """
        rays = image_rays(cameras.to(self.device), index)
        if self.spec.ndc.enabled:
            rays = ndc_rays(rays, self.spec.ndc)
        out = render_rays_chunked(self.field, self.sampler, rays, background.to(self.device),
                                  None if cond is None else cond.to(self.device), chunk, normals)
        h, w = cameras.height, cameras.width

        def image(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.view(h, w, *t.shape[1:]).cpu()

        return ImageOutput(image(out.rgb), image(out.depth), image(out.opacity), image(out.normals),
                           image(out.features))
