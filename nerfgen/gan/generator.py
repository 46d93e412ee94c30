"""The generators: GRAF (one radiance field conditioned on shape and appearance codes, rendered
as patches) and GIRAFFE (object feature fields in slots plus a background field, composed,
volume-rendered to a low-resolution feature image and upsampled by a 2D neural renderer).

Both render a batch of :class:`~nerfgen.gan.priors.SceneCodes` through cameras, one scene at a
time with its codes shared by every ray (``Conditioning`` with a leading dimension of 1, so no
per-sample copies of the codes are made). The fields are :class:`~nerfgen.fields.VanillaField`
MLPs: on a CPU a small positional-encoding MLP costs per sample only a few dense layers, and the
per-object box test of :class:`~nerfgen.render.ComposedField` evaluates an object only at the
samples inside its cube (a tenth of the scene's samples or fewer).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nerfgen.cameras import Cameras, Rays, image_rays, pixel_rays
from nerfgen.fields import Conditioning, FieldOutput, RadianceField, VanillaField, VanillaFieldConfig
from nerfgen.gan.config import FieldSize, GanConfig
from nerfgen.gan.patches import grid_pixels
from nerfgen.gan.priors import SceneCodes
from nerfgen.render import ComposedField, RenderOutput, StratifiedSampler, background_color, render_rays
from nerfgen.render.box_sampler import ObjectBoxSampler
from nerfgen.render.neural_renderer import NeuralRenderer

OBJECT_BOX = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)
"""Every object's cube in its own frame."""


class ViewIndependent(RadianceField):
    """``field`` shown every point from one direction (zero): its colour or features depend on the
    position and the codes only (:attr:`FieldSize.view_dependent` False)."""

    def __init__(self, field: RadianceField) -> None:
        super().__init__(field.aabb)
        self.field, self.accepts, self.out_channels = field, field.accepts, field.out_channels

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        return self.field.density(positions, cond)

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        return self.field(positions, torch.zeros_like(directions), cond)


def conditioned_field(aabb, size: FieldSize, cfg: GanConfig, features: int = 0) -> RadianceField:
    """A :class:`VanillaField` taking ``cfg``'s shape and appearance codes (:class:`ViewIndependent`
    unless ``size.view_dependent``)."""
    field = VanillaField(torch.tensor(aabb, dtype=torch.float32), VanillaFieldConfig(
        depth=size.depth, width=size.width, skip=size.depth // 2, position_frequencies=size.position_frequencies,
        direction_frequencies=size.direction_frequencies, shape_latent=cfg.shape_latent,
        appearance_latent=cfg.appearance_latent, features=features))
    return field if size.view_dependent else ViewIndependent(field)


class Generator(nn.Module):
    """What both generators share: ``generator(codes, cameras, grid=None) -> [B, 3, h, w]`` in [0, 1]."""

    config: GanConfig

    def scene_rays(self, codes: SceneCodes, cameras: Cameras, index: int, grid: Tensor | None = None,
                   stratified: bool = False, present: Tensor | None = None) -> RenderOutput:
        """Render scene ``index`` of ``codes`` through camera ``index`` of ``cameras`` (all pixels,
        or the patch ``grid[index]``); ``present [K]`` overrides which objects are there."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def rays(self, cameras: Cameras, index: int, grid: Tensor | None = None) -> Rays:
        """On the generator's device: camera ``index``'s rays through every pixel centre (row-major),
        or through the patch ``grid[index]``."""
        cameras = cameras.to(self.device)
        if grid is None:
            return image_rays(cameras, index)
        px, py = grid_pixels(grid[index:index + 1].to(self.device), cameras.width, cameras.height)
        return pixel_rays(cameras, torch.full_like(px[0], index, dtype=torch.long), px[0], py[0])


class GrafGenerator(Generator):
    """GRAF: a radiance field conditioned on a shape code (density and colour) and an appearance
    code (colour only), over ``config.aabb``, composited over a constant background."""

    def __init__(self, config: GanConfig) -> None:
        super().__init__()
        self.config = config
        self.field = conditioned_field(config.aabb, config.field, config)
        self.sampler = StratifiedSampler(torch.tensor(config.aabb), config.sampler)
        self.register_buffer("background", background_color(config.background))

    def scene_rays(self, codes, cameras, index, grid=None, stratified=False, present=None) -> RenderOutput:
        rays = self.rays(cameras, index, grid)
        latent = torch.cat([codes.shape[index, :1], codes.appearance[index, :1]], -1)
        return render_rays(self.field, self.sampler, rays, self.background, Conditioning(latent=latent), stratified)

    def forward(self, codes: SceneCodes, cameras: Cameras, grid: Tensor | None = None,
                stratified: bool = False) -> Tensor:
        side_h, side_w = (grid.shape[1], grid.shape[2]) if grid is not None else (cameras.height, cameras.width)
        images = [self.scene_rays(codes, cameras, b, grid, stratified).rgb for b in range(len(codes))]
        return torch.stack(images).view(len(codes), side_h, side_w, 3).permute(0, 3, 1, 2)


class GiraffeGenerator(Generator):
    """GIRAFFE: one object feature field shared by every slot (each at its own affine pose, each
    evaluated only inside its cube), a background feature field over ``config.aabb``, composed
    (:func:`~nerfgen.render.compose`), volume-rendered at ``size / upsample`` and upsampled by
    :class:`~nerfgen.render.neural_renderer.NeuralRenderer`."""

    def __init__(self, config: GanConfig) -> None:
        super().__init__()
        self.config = config
        self.object_field = conditioned_field(OBJECT_BOX, config.field, config, config.features)
        self.background_field = conditioned_field(config.aabb, config.background_field, config, config.features)
        self.background = nn.Parameter(torch.zeros(config.features))
        aabb = torch.tensor(config.aabb)
        self.sampler = ObjectBoxSampler(aabb, config.sampler, torch.tensor(OBJECT_BOX), config.object_samples) \
            if config.object_samples else StratifiedSampler(aabb, config.sampler)
        self.renderer = NeuralRenderer(config.features, config.upsample, config.renderer_width)

    def scene(self, slots: int) -> ComposedField:
        """The composed field of ``slots`` objects and the background (the last slot)."""
        return ComposedField([self.object_field] * slots + [self.background_field], self.sampler.aabb,
                             bounded=[True] * slots + [False])

    def conditioning(self, codes: SceneCodes, index: int, present: Tensor | None = None) -> Conditioning:
        """Scene ``index``'s conditioning of :meth:`scene`, shared by every point."""
        latent = torch.cat([codes.shape[index], codes.appearance[index]], -1)  # [K, D]
        background = torch.cat([codes.background_shape[index], codes.background_appearance[index]], -1)
        transform = codes.world_to_object()[index]  # [K, 3, 4]
        identity = torch.eye(3, 4, device=transform.device)
        present = codes.present[index] if present is None else present
        return Conditioning(latent=torch.cat([latent, background[None]])[None],
                            transform=torch.cat([transform, identity[None]])[None],
                            present=torch.cat([present, present.new_ones(1)])[None])

    def scene_rays(self, codes, cameras, index, grid=None, stratified=False, present=None,
                   background: bool = True) -> RenderOutput:
        rays, device = self.rays(cameras, index, grid), self.device
        cond = self.conditioning(codes.to(device), index, None if present is None else present.to(device))
        if not background:
            cond.present[0, -1] = False
        return render_rays(self.scene(codes.slots), self.sampler, rays, self.background, cond, stratified)

    def feature_cameras(self, cameras: Cameras) -> Cameras:
        """``cameras`` at the feature image's resolution."""
        return cameras.scaled(self.config.upsample)

    def features(self, codes: SceneCodes, cameras: Cameras, stratified: bool = False) -> Tensor:
        """``[B, features, H / upsample, W / upsample]`` the volume-rendered feature images."""
        low = self.feature_cameras(cameras)
        images = [self.scene_rays(codes, low, b, stratified=stratified).features for b in range(len(codes))]
        return torch.stack(images).view(len(codes), low.height, low.width, -1).permute(0, 3, 1, 2)

    def forward(self, codes: SceneCodes, cameras: Cameras, grid: Tensor | None = None,
                stratified: bool = False) -> Tensor:
        return self.renderer(self.features(codes, cameras, stratified))

    @torch.no_grad()
    def object_opacity(self, codes: SceneCodes, cameras: Cameras, index: int) -> Tensor:
        """``[K, H, W]`` each object's own opacity (alone in the scene) in camera ``index`` at the
        cameras' resolution: where the object is."""
        out = []
        for k in range(codes.slots):
            only = torch.zeros(codes.slots, dtype=torch.bool)
            only[k] = bool(codes.present[index, k])
            image = self.scene_rays(codes, cameras, index, present=only, background=False).opacity
            out.append(image.view(cameras.height, cameras.width).cpu())
        return torch.stack(out)


def build_generator(config: GanConfig) -> Generator:
    """The generator ``config.model`` names."""
    return GrafGenerator(config) if config.model == "graf" else GiraffeGenerator(config)
