"""A generated scene as a model: one radiance field per object, each in its own canonical box
``[-1, 1]^3`` with its own occupancy grid, placed by a :class:`~nerfgen.generate.layout.Layout`
and composed with GIRAFFE's operator (:class:`~nerfgen.render.ComposedField`, densities in world
units) into one scene.

An object's field is what single-object generation makes: it can be rendered alone from cameras
around its own centre (what score distillation against its own phrase sees), and in the scene,
where one pass gives the scene image and each object's mask and colour
(:class:`~nerfgen.render.SlotChannels`). The scene's occupancy grid is derived from the objects'
grids and the layout (:meth:`SceneModel.refresh_grid`), so an edited layout renders at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfgen.cameras import Cameras, Rays, image_rays
from nerfgen.distributed import SINGLE, World
from nerfgen.fields import Conditioning
from nerfgen.generate.layout import Layout
from nerfgen.ops import grid_lookup
from nerfgen.render import (
    ComposedField,
    ImageOutput,
    ModelSpec,
    OccGridConfig,
    OccupancyGrid,
    RadianceModel,
    SlotChannels,
    render_rays,
    render_rays_chunked,
)

UNIT_BOX = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)
"""Every object's field lives in this box of its own frame."""


@dataclass
class SceneRender:
    """Rendered rays of a scene.

    Attributes:
        rgb: ``[n, 3]`` the scene's colour over the background given.
        opacity: ``[n]`` accumulated opacity.
        depth: ``[n]`` expected depth.
        masks: ``[n, K]`` each object's share of the opacity (occluded by the others; absent or
            hidden objects have none).
        colours: ``[n, K, 3]`` each object's colour as seen in the scene, premultiplied by its mask.
        n_samples: samples evaluated.
    """

    rgb: Tensor
    opacity: Tensor
    depth: Tensor
    masks: Tensor
    colours: Tensor
    n_samples: int


@dataclass
class SceneImage:
    """A rendered camera: the scene (``image``) and each object's ``masks [H, W, K]`` and
    ``colours [H, W, K, 3]`` (premultiplied), on the CPU."""

    image: ImageOutput
    masks: Tensor
    colours: Tensor


class SceneModel(nn.Module):
    """``n_objects`` object models composed into a scene.

    Args:
        spec: each object's field and grid (an ngp field with a density blob, as text-to-3D uses;
            a refined scene's signed-distance field, ``sdf``).
        n_objects: how many objects.
        scene_box: half side of the scene's cube (world units, centred at the origin): rays are
            marched and objects rendered inside it.
        scene_grid: the scene's occupancy grid settings (its resolution; the step is ``spec.grid``'s).
    """

    def __init__(self, spec: ModelSpec, n_objects: int, scene_box: float, scene_grid_resolution: int = 64) -> None:
        super().__init__()
        if n_objects < 1:
            raise ValueError("a scene needs at least one object")
        self.spec = spec
        self.objects = nn.ModuleList(RadianceModel(spec, torch.tensor(UNIT_BOX), 1) for _ in range(n_objects))
        b = float(scene_box)
        grid = OccGridConfig(**{**vars(spec.grid), "resolution": scene_grid_resolution})
        self.scene_grid = OccupancyGrid(torch.tensor([-b, -b, -b, b, b, b]), 1, grid)

    @property
    def device(self) -> torch.device:
        return self.scene_grid.aabbs.device

    @property
    def field(self) -> SlotChannels:
        """The composed scene (built on each use: the object fields are its only parameters, and
        they are saved once, under ``objects``). Each object is evaluated only where its own grid
        is occupied, as when it is rendered alone, so moving one leaves the others as they were."""
        composed = ComposedField([o.field for o in self.objects], self.scene_grid.outer_aabb,
                                 bounded=[True] * len(self.objects), world_density=True,
                                 occupied=[o.sampler.occupied for o in self.objects])
        return SlotChannels(composed)

    def conditioning(self, layout: Layout) -> Conditioning:
        """The layout as the composed field's conditioning: world-to-object maps ``[1, K, 3, 4]``
        and which objects show ``[1, K]``."""
        if len(layout.objects) != len(self.objects):
            raise ValueError(f"the layout has {len(layout.objects)} objects but the scene {len(self.objects)}")
        return Conditioning(transform=layout.world_to_object()[None].to(self.device),
                            present=layout.present()[None].to(self.device))

    @torch.no_grad()
    def refresh_grid(self, layout: Layout) -> None:
        """Mark the scene's cells occupied where any shown object's grid is, at the layout's poses
        (each cell's centre looked up in every object's frame, then grown by one cell so that no
        thin surface between centres is lost)."""
        grid = self.scene_grid
        res = grid.config.resolution
        centres = grid.cell_positions(0, torch.arange(res**3, device=self.device))
        occupied = torch.zeros(res**3, dtype=torch.bool, device=self.device)
        transforms = layout.world_to_object().to(self.device)
        for k, obj in enumerate(self.objects):
            if not layout.objects[k].hidden:
                local = centres @ transforms[k, :, :3].T + transforms[k, :, 3]
                occupied |= grid_lookup(local, obj.sampler.binaries, obj.sampler.aabbs)
        grown = F.max_pool3d(occupied.view(1, 1, res, res, res).float(), 3, 1, 1) > 0
        grid.binaries.copy_(grown.view_as(grid.binaries))

    @torch.no_grad()
    def update_grids(self, step: int, world: World = SINGLE) -> bool:
        """Refresh each object's own grid on the grid schedule (reduced over ``world``); True when they changed."""
        updated = [obj.sampler.update(step, obj.field.density, world) for obj in self.objects]
        return any(updated)

    def render_rays(self, rays: Rays, layout: Layout, background: Tensor, stratified: bool = False) -> SceneRender:
        """Render world rays through the scene (differentiable): the scene over ``background``
        ``[3]`` and, in the same pass, each object's mask and colour."""
        field = self.field
        out = render_rays(field, self.scene_grid, rays, field.background(background), self.conditioning(layout),
                          stratified)
        rgb, masks, colours = SlotChannels.split(out.features)
        return SceneRender(rgb, out.opacity, out.depth, masks, colours, out.n_samples)

    def density(self, layout: Layout):
        """``positions [n, 3] -> sigma [n]`` of the composed scene (world units)."""
        field, cond = self.field, self.conditioning(layout)
        return lambda positions: field.density(positions, cond)

    @torch.no_grad()
    def render_camera(self, cameras: Cameras, index: int, layout: Layout, background: Tensor, chunk: int = 1 << 14,
                      normals: bool = False) -> SceneImage:
        """Every pixel of camera ``index``, without gradients; the images come back on the CPU."""
        field = self.field
        rays = image_rays(cameras.to(self.device), index)
        out = render_rays_chunked(field, self.scene_grid, rays, field.background(background.to(self.device)),
                                  self.conditioning(layout), chunk, normals)
        h, w = cameras.height, cameras.width
        rgb, masks, colours = (t.reshape(h, w, *t.shape[1:]).cpu() for t in SlotChannels.split(out.features))
        image = ImageOutput(rgb, out.depth.view(h, w).cpu(), out.opacity.view(h, w).cpu(),
                            None if out.normals is None else out.normals.view(h, w, 3).cpu())
        return SceneImage(image, masks, colours)

    @torch.no_grad()
    def extents(self, resolution: int = 32, density: float = 10.0) -> list[Tensor | None]:
        """Each object's occupied box in its own frame, ``[2, 3]`` (low and high corners of the
        grid points whose density exceeds ``density``), or None for an empty object."""
        axis = torch.linspace(-1, 1, resolution, device=self.device)
        points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        out: list[Tensor | None] = []
        for obj in self.objects:
            inside = points[obj.field.density(points) > density]
            out.append(torch.stack([inside.amin(0), inside.amax(0)]).cpu() if len(inside) else None)
        return out
