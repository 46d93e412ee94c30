r"""The refinement stage of a generated scene (``nerfgen generate PROMPT --scene --refine``): each
object's coarse density cloud becomes a solid signed-distance surface, in its own frame, and the
scene of those surfaces is refined in its layout.

After the coarse scene steps (:class:`~nerfgen.generate.scene_task.SceneGenerationTask`) the objects
settle, as a coarse run ends, and each object's field is replaced, in place, by an
:class:`~nerfgen.fields.SDFField` over the object's box ``[-1, 1]^3`` fitted to its coarse surface
and colour (:func:`~nerfgen.generate.refine.coarse_surface`,
:func:`~nerfgen.generate.refine.fit_to_coarse`, as a single object's). Then each step scores, as
the coarse stage does but rendered at ``refine.resolution`` and with the refinement's timesteps:

* the composed scene of SDF objects (:class:`~nerfgen.render.ComposedField`, on the scene's
  background) from random cameras, against the whole prompt;
* each object alone from random cameras around its own centre, against its own phrase;

plus each object's Eikonal term :math:`(|\nabla d| - 1)^2` in its own box, while every object's
Laplace scale :math:`\beta` shrinks (:func:`~nerfgen.generate.refine_stages.annealed`). The scene's
shading normals are those of the scene's signed distance, the least over the shown objects of
their distances in world units (:meth:`RefinedSceneTask.scene_sdf`).

Both stages run on one engine (``max_steps + refine.steps`` steps, each stage its own budget:
:class:`~nerfgen.generate.refine_stages.RefinementStages`): checkpoints, ``--resume`` mid-refinement,
``--resume --refine`` on a finished scene run, the live viewer (which holds the same
:class:`~nerfgen.generate.scene_model.SceneModel`, its objects swapped in place). The run directory
names the ``sdf`` field; :func:`nerfgen.load_run` opens it as any scene run, and its export meshes
each refined object (``scene.glb`` textured).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from nerfgen.engine import Env, StepContext, StepResult
from nerfgen.generate.refine import coarse_surface, eikonal_loss, fit_to_coarse
from nerfgen.generate.refine_stages import (
    RefinementStages,
    refine_render_config,
    refine_t_max,
    sdf_grid_reach,
)
from nerfgen.generate.scene_model import UNIT_BOX, SceneModel
from nerfgen.generate.scene_task import SceneGenerationTask
from nerfgen.generate.task import choose_shading, generated_orbit

FAR = 10.0
"""The scene's signed distance where no shown object's box is (flat: no normal there)."""


class RefinedSceneTask(RefinementStages, SceneGenerationTask):
    """A scene generation run whose last ``refine.steps`` steps refine each object into a solid
    signed-distance surface, in the layout (see the module); run it on an engine configured by
    :func:`~nerfgen.generate.refine_stages.engine_budget`."""

    name = "generate-scene"

    def build(self, env: Env) -> None:
        super().build(env)
        cfg = self.config
        self.sdf_model = self._build_refined(
            lambda: SceneModel(self.sdf_spec, len(self.layout.objects), cfg.scene.box, cfg.scene.grid_resolution),
            lambda model: [p for o in model.objects for p in o.field.parameters()])
        self.coarse_parts = (self.model.spec, self.model.objects, self.model.scene_grid)

    def _attach(self, refined: bool = True) -> None:
        """Put the SDF objects (and the scene grid marched at the refined step) into the run's
        scene model, in place: what the viewer, previews, checkpoints and products show from now
        on (or, not ``refined``, the coarse objects back)."""
        m = self.sdf_model
        parts = (m.spec, m.objects, m.scene_grid) if refined else self.coarse_parts
        self.model.spec, self.model.objects, self.model.scene_grid = parts
        self.model.refresh_grid(self.layout)

    def _update_grids(self, step: int, world) -> None:
        """Refresh each object's grid on its grown surface (then the scene's, when any changed)."""
        box = torch.tensor(UNIT_BOX)
        changed = False
        for obj in self.model.objects:
            reach = sdf_grid_reach(box, obj.sampler.config.resolution)
            changed |= obj.sampler.update(step, lambda x, f=obj.field: f.grown_density(x, reach), world)
        if changed:
            self.model.refresh_grid(self.layout)

    def scene_sdf(self, positions: Tensor) -> Tensor:
        """``positions [n, 3]`` (world) -> ``[n]`` the scene's signed distance in world units: the
        least over the shown objects of each one's distance (its own, scaled by its size), or
        :data:`FAR` outside every shown object's box."""
        transforms = self.layout.world_to_object().to(positions.device)
        best = torch.full(positions.shape[:1], FAR, device=positions.device)
        for k, (o, obj) in enumerate(zip(self.layout.objects, self.model.objects)):
            if o.hidden:
                continue
            local = positions @ transforms[k, :, :3].T + transforms[k, :, 3]
            inside = (local.abs() <= 1).all(-1)
            best = torch.where(inside, torch.minimum(best, obj.field.sdf(local) * o.size), best)
        return best

    def begin_refinement(self, ctx: StepContext) -> float:
        """Settle the coarse scene, fit each object's SDF field to its coarse surface and put them
        in place; returns the fits' largest error (object units)."""
        cfg, r = self.config, self.config.refine
        self.settle(ctx.world)  # where a coarse run ends
        views = generated_orbit(dataclasses.replace(cfg, orbit_resolution=64)).cameras(4)
        box = torch.tensor(UNIT_BOX)
        self.model.eval()
        errors = []
        for o, coarse, refined in zip(self.layout.objects, self.model.objects, self.sdf_model.objects):
            try:
                distances, _ = coarse_surface(coarse, box, r.init_resolution, views)
            except ValueError as exc:
                raise ValueError(f"object {o.name!r} ({o.prompt!r}): {exc}") from None
            refined.field.beta.fill_(r.beta[0])
            errors.append(fit_to_coarse(refined.field, coarse, distances, box, r.init_steps, ctx.generator))
        ctx.world.broadcast([p.data for o in self.sdf_model.objects for p in o.field.parameters()])
        self._begun(ctx)
        self._update_grids(self.sdf_spec.grid.update_every, ctx.world)
        return max(errors)

    def refine_step(self, ctx: StepContext) -> StepResult:
        """Scene views and each object's own views at ``refine.resolution``, score distillation,
        each object's Eikonal loss; Adam on the SDF fields."""
        cfg, r, sc = self.config, self.config.refine, self.config.scene
        beta = self._annealed_beta(ctx)
        for obj in self.model.objects:
            obj.field.beta.fill_(beta)
        self.model.train()
        since = ctx.step - self.switched
        if since > 0:
            self._update_grids(since, ctx.world)
        if sc.settle_every > 0 and since > 0 and since % sc.settle_every == 0:
            self.settle(ctx.world)
        mode = choose_shading(cfg, ctx.done, self.generator)
        t_range = (cfg.t_min, refine_t_max(cfg, ctx.done))
        shown = refine_render_config(cfg)
        zeros = torch.zeros(3, device=self.device)
        loss: Tensor | float = 0.0
        figures: dict[str, Tensor | float | str] = {"t_max": t_range[1], "shading": mode, "beta": beta}
        images = samples = 0
        if sc.batch > 0:
            sds, renders = self._scored(lambda rays: self.model.render_rays(rays, self.layout, zeros, stratified=True),
                                        lambda x: -self.scene_sdf(x), sc.batch, mode, self.scene_prompt, t_range, shown)
            loss = loss + sc.lambda_scene * sds
            figures["sds_scene"] = sds.detach()
            images, samples = images + sc.batch, samples + renders.n_samples
        for k, obj in enumerate(self.model.objects):
            if self.layout.objects[k].hidden:
                continue
            if sc.object_batch > 0:
                sds, renders = self._scored(lambda rays, obj=obj: obj.render_rays(rays, zeros, stratified=True),
                                            lambda x, obj=obj: -obj.field.sdf(x), sc.object_batch, mode,
                                            self.object_prompts[k], t_range, shown)
                loss = loss + sc.lambda_objects * sds
                figures[f"sds_{k}"] = sds.detach()
                images, samples = images + sc.object_batch, samples + renders.n_samples
            points = torch.rand(r.eikonal_points, 3, generator=self.generator).to(self.device) * 2 - 1
            eikonal = eikonal_loss(obj.field.sdf, points)
            loss = loss + r.lambda_eikonal * eikonal
            figures[f"eikonal_{k}"] = eikonal.detach()
        ctx.optimize("refine", loss)
        figures["loss"] = loss.detach() if isinstance(loss, Tensor) else float(loss)
        return StepResult(figures, {"images": images, "samples": samples})


__all__ = ["FAR", "RefinedSceneTask"]
