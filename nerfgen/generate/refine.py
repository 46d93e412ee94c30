r"""The refinement stage of text-to-3D (Magic3D's second stage): from a coarse density cloud to a
solid surface with crisp edges.

After the coarse steps the run's density field is replaced, in place, by a signed-distance field
(:class:`nerfgen.fields.SDFField`, rendered as VolSDF's Laplace density):

1. **Start from the coarse object** (:func:`fit_to_coarse`): the coarse density is sampled on a grid
   and contoured at the level the mesh export picks (:func:`nerfgen.mesh.extract.calibrate_threshold`:
   the one whose outlines match the field's renders); the signed distance to that surface
   (:func:`signed_distance_grid`, Euclidean distance transforms) is what the new field is fitted to,
   with an Eikonal term, and its colour head to the coarse field's colour at the surface.
2. **Refine by score distillation** against the same prior, rendering at ``refine.resolution``
   (higher than the coarse stage's) and downsampling with anti-aliasing to the prior's, so the
   boundary pixels get gradients; the density's Laplace scale :math:`\beta` shrinks geometrically
   over the stage (:func:`annealed`), so every ray ends empty or opaque, and the Eikonal loss
   keeps :math:`d` a distance.

:class:`RefinedGenerationTask` runs both stages on one engine (one budget of ``max_steps +
refine.steps`` steps; resume, the live viewer and torchrun as any generation run). The run
directory it leaves holds the refined field (``run.json`` names the ``sdf`` field), which
:func:`nerfgen.load_run`, ``nerfgen render`` and the viewer open as any generation run.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.cameras import Cameras, random_views
from nerfgen.engine import Env, StepContext, StepResult
from nerfgen.fields import SDFField, build_field
from nerfgen.generate.refine_stages import (
    REFINED_FIELD,
    RefinementStages,
    annealed,
    engine_budget,
    refine_render_config,
    refine_t_max,
    refined_spec,
    sdf_grid_reach,
)
from nerfgen.generate.task import GenerationTask, choose_shading, generated_orbit, shaded_renders
from nerfgen.render import RadianceModel
from nerfgen.render.model import build_sampler

def signed_distance_grid(inside: np.ndarray, cell: float) -> np.ndarray:
    """``[nx, ny, nz]`` signed distance (world units, negative inside) to the boundary of the
    boolean occupancy ``inside``, whose grid points are ``cell`` apart (the surface taken half a
    cell from the points either side of it)."""
    from scipy.ndimage import distance_transform_edt

    outside = distance_transform_edt(~inside)  # outside points: distance to the nearest inside one
    depth = distance_transform_edt(inside)
    return np.where(inside, -(depth - 0.5), outside - 0.5).astype(np.float32) * cell


def sample_grid(values: Tensor, box: Tensor, points: Tensor) -> Tensor:
    """Trilinear lookup of ``values [nx, ny, nz]`` (grid points spanning ``box [6]``, ends included)
    at ``points [n, 3]``; points outside take the nearest border value."""
    unit = (points - box[:3]) / (box[3:] - box[:3]) * 2 - 1
    volume = values.permute(2, 1, 0)[None, None]  # grid_sample reads [z, y, x] volumes with (x, y, z) points
    return F.grid_sample(volume, unit[None, None, None], mode="bilinear", padding_mode="border",
                         align_corners=True).view(-1)


def eikonal_loss(sdf_fn, points: Tensor, eps: float = 5e-3) -> Tensor:
    r"""Mean :math:`(|\nabla d| - 1)^2` at ``points [n, 3]``, the gradient by central differences of
    step ``eps`` (hash grids have no second derivatives to backpropagate through)."""
    offsets = torch.eye(3, device=points.device) * eps
    shifted = torch.cat([points[None] + offsets[:, None], points[None] - offsets[:, None]]).view(-1, 3)
    d = sdf_fn(shifted).view(2, 3, -1)
    grad = (d[0] - d[1]) / (2 * eps)  # [3, n]
    return (grad.norm(dim=0) - 1).pow(2).mean()


def coarse_surface(model: RadianceModel, box: Tensor, resolution: int, views: Cameras) -> tuple[Tensor, float]:
    """The coarse field's surface as a signed-distance grid ``[n, n, n]`` over ``box`` (blurred by a
    cell, so the voxel mask's stairs smooth out) and the density level it was contoured at
    (calibrated against renders from ``views``, as the mesh export does). ValueError when the field
    is empty."""
    from nerfgen.mesh.extract import calibrate_threshold, density_grid, grid_axes

    axes, cell = grid_axes(box, resolution)
    grid = density_grid(model, axes).numpy()
    level, _ = calibrate_threshold(model, grid, cell, box[:3].numpy(), views)
    inside = grid > level
    if not inside.any():
        raise ValueError("the coarse field is empty: there is no surface to refine")
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(signed_distance_grid(inside, cell), 1.0)  # no voxel stairs for the field to learn
    return torch.from_numpy(smooth.astype(np.float32)), level


def fit_to_coarse(field: SDFField, coarse: RadianceModel, distances: Tensor, box: Tensor, steps: int,
                  generator: torch.Generator, batch: int = 1 << 12, lr: float = 1e-2) -> float:
    """Fit ``field``'s signed distance to ``distances`` (a grid over ``box``, :func:`coarse_surface`)
    and its colour head to ``coarse``'s colour near that surface, ``steps`` Adam steps on random
    points (half anywhere in the box, half within a few cells of the surface). Returns the final
    mean absolute distance error near the surface (world units)."""
    device = field.aabb.device
    distances, box = distances.to(device), box.to(device)
    cell = float((box[3:] - box[:3]).max()) / (distances.shape[0] - 1)
    axes = [torch.linspace(float(box[i]), float(box[i + 3]), distances.shape[i], device=device) for i in range(3)]
    shell = torch.nonzero(distances.abs() < 2 * cell)
    shell = torch.stack([axes[i][shell[:, i]] for i in range(3)], -1)
    optimizer = torch.optim.Adam(field.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-15)
    error = float("nan")
    for _ in range(steps):
        uniform = box[:3] + (box[3:] - box[:3]) * torch.rand(batch // 2, 3, generator=generator).to(device)
        pick = torch.randint(0, len(shell), (batch // 2,), generator=generator).to(device)
        near = shell[pick] + (torch.rand(batch // 2, 3, generator=generator).to(device) - 0.5) * cell
        points = torch.cat([uniform, near])
        target = sample_grid(distances, box, points)
        with torch.no_grad():
            directions = F.normalize(torch.randn(len(near), 3, generator=generator).to(device), dim=-1)
            colour = coarse.field(near, directions).rgb.float()
        predicted = field.sdf(points)
        fit = (predicted - target).abs()
        loss = fit.mean() + 0.1 * eikonal_loss(field.sdf, uniform[:1024]) + F.mse_loss(field.albedo(near), colour)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        error = float(fit[len(uniform):].detach().mean())
    return error


class RefinedGenerationTask(RefinementStages, GenerationTask):
    """A generation run whose last ``refine.steps`` steps refine the coarse field into a solid
    signed-distance surface (see the module); run it on an engine configured by
    :func:`engine_budget`. The coarse stage's annealing is as in an unrefined run."""

    name = "generate"

    def build(self, env: Env) -> None:
        super().build(env)
        self.sdf_field = self._build_refined(
            lambda: build_field(REFINED_FIELD, self.aabb, self.sdf_spec.field_options))
        self.coarse_parts = (self.model.spec, self.model.sampler, self.model.field)

    def _attach(self, refined: bool = True) -> None:
        """Put the SDF field (and a fresh grid for it) into the run's model, in place: what the
        viewer, previews, checkpoints and products show from now on (or, not ``refined``, the
        coarse field back: a refined checkpoint that failed to load, passed over for a coarse one)."""
        if refined:
            sampler = build_sampler(self.sdf_spec, self.aabb, 1).to(self.device)
            self.model.spec, self.model.sampler, self.model.field = self.sdf_spec, sampler, self.sdf_field
        else:
            self.model.spec, self.model.sampler, self.model.field = self.coarse_parts

    def _update_grid(self, step: int, ctx_world) -> None:
        """Refresh the occupancy grid on the grown surface (:func:`sdf_grid_reach`)."""
        reach = sdf_grid_reach(self.aabb, self.model.sampler.config.resolution)
        self.model.sampler.update(step, lambda x: self.sdf_field.grown_density(x, reach), ctx_world)

    def begin_refinement(self, ctx: StepContext) -> float:
        """Fit the SDF field to the coarse one and put it in its place; returns the fit's error."""
        cfg = self.config
        box = self.aabb.clone()
        views = generated_orbit(dataclasses.replace(cfg, orbit_resolution=64)).cameras(4)
        self.model.eval()
        distances, _ = coarse_surface(self.model, box, cfg.refine.init_resolution, views)
        self.sdf_field.beta.fill_(cfg.refine.beta[0])
        error = fit_to_coarse(self.sdf_field, self.model, distances, box, cfg.refine.init_steps, ctx.generator)
        ctx.world.broadcast([p.data for p in self.sdf_field.parameters()])  # every rank starts alike
        self._begun(ctx)
        self._update_grid(self.model.sampler.config.update_every, ctx.world)
        return error

    def refine_step(self, ctx: StepContext) -> StepResult:
        """Random views at ``refine.resolution``, score distillation + Eikonal loss, Adam on the SDF field."""
        cfg, r = self.config, self.config.refine
        field = self.sdf_field
        field.beta.fill_(self._annealed_beta(ctx))
        self.model.train()
        if ctx.step > self.switched:
            self._update_grid(ctx.step - self.switched, ctx.world)
        views, fov = random_views(r.batch, cfg.camera.elevation, cfg.camera.distance, cfg.camera.fov, self.generator)
        mode = choose_shading(cfg, ctx.done, self.generator)
        zeros = torch.zeros(3, device=self.device)
        renders = shaded_renders(lambda rays: self.model.render_rays(rays, zeros, stratified=True),
                                 lambda x: -field.sdf(x), views, fov, mode, refine_render_config(cfg),
                                 self.prior.resolution, self.background, self.generator, self.device)
        t_max = refine_t_max(cfg, ctx.done)
        sds = self.prior.sds_loss(renders.images, self.prompt_for(views), views.to(self.device), cfg.guidance,
                                  (cfg.t_min, t_max), self.generator)
        box = self.aabb.to(self.device)
        points = box[:3] + (box[3:] - box[:3]) * torch.rand(r.eikonal_points, 3, generator=self.generator).to(self.device)
        eikonal = eikonal_loss(field.sdf, points)
        loss = sds.loss + r.lambda_eikonal * eikonal
        ctx.optimize("refine", loss)
        figures = {"loss": loss.detach(), "sds": sds.loss.detach(), "eikonal": eikonal.detach(), "t_max": t_max,
                   "beta": float(field.beta), "shading": mode}
        return StepResult(figures, {"images": len(views), "samples": renders.n_samples})


__all__ = ["REFINED_FIELD", "RefinedGenerationTask", "annealed", "coarse_surface", "eikonal_loss", "engine_budget",
           "fit_to_coarse", "refined_spec", "sample_grid", "signed_distance_grid"]
