"""Text to a compositional scene by score distillation (a :class:`Task`): one radiance field per
object, each in its own box of a :class:`~nerfgen.generate.layout.Layout`, composed into the
scene (:class:`~nerfgen.generate.scene_model.SceneModel`).

Each step scores, against the same prior:

* the composed scene from random cameras around it, against the whole prompt;
* each object rendered alone from random cameras around its own centre, against its own phrase
  (CompoNeRF, Set-the-Scene), with the view suffixes or camera conditioning of single objects.

The objects settle onto what holds them every ``scene.settle_every`` steps and at the end
(:mod:`nerfgen.generate.settle`). The run directory is a nerfgen run of kind ``scene``:
``run.json``, ``model.safetensors`` (every object's field and grid), ``layout.json``, previews,
``orbit.mp4`` and each object's ``objects/NAME.ply``; :func:`nerfgen.load_run` opens it as a
:class:`~nerfgen.generate.scene_run.SceneRun`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from nerfgen.cameras import random_views
from nerfgen.config import config_to_dict
from nerfgen.distributed import SINGLE, World
from nerfgen.engine import Env, Schedule, StepContext, StepResult
from nerfgen.generate.config import GenerateConfig
from nerfgen.generate.layout import LAYOUT_FILE, Layout, write_layout
from nerfgen.generate.preview import render_sheet, write_preview
from nerfgen.generate.scene_model import SceneModel
from nerfgen.generate.settle import settled
from nerfgen.generate.task import (
    PromptViews,
    ShadedRenders,
    anneal_t_max,
    choose_shading,
    field_optimizer,
    generated_orbit,
    geometry_losses,
    set_clip_guidance,
    shaded_renders,
    write_products,
)
from nerfgen.prior import DiffusionPrior
from nerfgen.render import Background, background_color
from nerfgen.field_task import FieldTask
from nerfgen.kinds import RunKind
from nerfgen.runs import RunInfo



class SceneGenerationTask(FieldTask):
    """Optimises the objects of ``layout`` into one scene against ``prior``.

    Args:
        layout: the objects (their phrases and boxes) and relations; ``layout.prompt`` is what the
            whole scene is scored against.
        config: generation settings (``config.scene`` for what is particular to scenes).
        prior: the loaded diffusion prior, on the run's device.
    """

    name = "generate-scene"

    def __init__(self, layout: Layout, config: GenerateConfig, prior: DiffusionPrior) -> None:
        self.layout, self.config, self.prior = layout, config, prior
        self.prompt = layout.prompt
        self.live = None  # the SceneRun the viewer shows while training, if any

    def build(self, env: Env) -> None:
        cfg, prior = self.config, self.prior
        self.device, self.generator, self.output = env.device, env.generator, env.output
        set_clip_guidance(cfg, prior)
        self.model = SceneModel(cfg.model_spec(), len(self.layout.objects), cfg.scene.box,
                                cfg.scene.grid_resolution).to(self.device)
        self.model.refresh_grid(self.layout)
        if not (self.output / LAYOUT_FILE).is_file():  # the plan, beside the run from the start
            write_layout(self.output / LAYOUT_FILE, self.layout)
        self.background = Background(cfg.background).to(self.device)
        self.optimizer = field_optimizer(cfg, [o.field for o in self.model.objects], self.background)
        self.scene_prompt = PromptViews(prior, self.layout.prompt, cfg)
        self.object_prompts = [PromptViews(prior, o.prompt, cfg) for o in self.layout.objects]

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, Schedule]]:
        return {"field": (self.optimizer, Schedule())}

    def settle(self, world: World = SINGLE) -> None:
        """Rest the objects on what holds them (by their density now) and re-derive the grid; a
        live run (the viewer's) follows. In a job of several ranks all take rank 0's layout."""
        extents = self.model.extents(density=self.config.scene.settle_density)
        self.layout = world.broadcast_object(settled(self.layout, extents))
        if self.live is not None:
            self.live.layout = self.layout  # re-derives the grid
        else:
            self.model.refresh_grid(self.layout)

    # -- one step ----------------------------------------------------------------------------
    def step(self, ctx: StepContext) -> StepResult:
        """Scene views and each object's own views, rendered, scored, regularised; one Adam step."""
        cfg, sc = self.config, self.config.scene
        self.model.train()
        if self.model.update_grids(ctx.step, ctx.world):
            self.model.refresh_grid(self.layout)
        if sc.settle_every > 0 and ctx.step > 0 and ctx.step % sc.settle_every == 0:
            self.settle(ctx.world)
        mode = choose_shading(cfg, ctx.done, self.generator)
        t_range = (cfg.t_min, anneal_t_max(cfg, ctx.done))
        zeros = torch.zeros(3, device=self.device)
        loss: Tensor | float = 0.0
        figures: dict[str, Tensor | float | str] = {"t_max": t_range[1], "shading": mode}
        images = samples = 0
        if sc.batch > 0:
            sds, renders = self._scored(lambda rays: self.model.render_rays(rays, self.layout, zeros, stratified=True),
                                        self.model.density(self.layout), sc.batch, mode, self.scene_prompt, t_range)
            loss = loss + sc.lambda_scene * sds + geometry_losses(cfg, renders, ctx.done, sparsity=False)
            figures["sds_scene"] = sds.detach()
            images, samples = images + sc.batch, samples + renders.n_samples
        for k, obj in enumerate(self.model.objects):
            if sc.object_batch == 0 or self.layout.objects[k].hidden:
                continue
            sds, renders = self._scored(lambda rays, obj=obj: obj.render_rays(rays, zeros, stratified=True),
                                        obj.field.density, sc.object_batch, mode, self.object_prompts[k], t_range)
            loss = loss + sc.lambda_objects * sds + geometry_losses(cfg, renders, ctx.done)
            figures[f"sds_{k}"] = sds.detach()
            images, samples = images + sc.object_batch, samples + renders.n_samples
        ctx.optimize("field", loss)
        figures["loss"] = loss.detach() if isinstance(loss, Tensor) else float(loss)
        return StepResult(figures, {"images": images, "samples": samples})

    def _scored(self, render, density, batch: int, mode: str, prompts: PromptViews,
                t_range: tuple[float, float], config: GenerateConfig | None = None) -> tuple[Tensor, ShadedRenders]:
        """``batch`` random views rendered by ``render`` (``rays -> RenderOutput``), shaded with
        ``mode`` and scored against ``prompts``: the score distillation loss and the renders
        (rendered as ``config`` says, default the run's)."""
        config = config or self.config
        cam = config.camera
        views, fov = random_views(batch, cam.elevation, cam.distance, cam.fov, self.generator)
        renders = shaded_renders(render, density, views, fov, mode, config, self.prior.resolution,
                                 self.background, self.generator, self.device)
        sds = self.prior.sds_loss(renders.images, prompts(views), views.to(self.device), self.config.guidance,
                                  t_range, self.generator)
        return sds.loss, renders

    # -- output ------------------------------------------------------------------------------
    def evaluate(self, step: int) -> dict[str, str]:
        """Write ``previews/step_NNNNNN.png`` (and ``preview.png``): the scene from four sides,
        colour above shading, then each object alone in colour."""
        self.model.eval()
        background = background_color(self.background.shown_on).to(self.device)
        layout = self.layout
        rows = [render_sheet(lambda cameras, i: self.model.render_camera(cameras, i, layout, background).image,
                             self.model.density(layout), self.config, background)]
        for obj in self.model.objects:
            sheet = render_sheet(lambda cameras, i, obj=obj: obj.render_camera(cameras, i, background),
                                 obj.field.density, self.config, background)
            rows.append(sheet[: sheet.shape[0] // 2])
        path = write_preview(torch.cat(rows, 0), self.output, step)
        return {"preview": str(path)}

    def info(self) -> RunInfo:
        cfg, b = self.config, self.config.scene.box
        return RunInfo(RunKind.SCENE, cfg.model_spec(), [-b, -b, -b, b, b, b], 1, f"generated: {self.prompt}",
                       self.background.shown_on, cfg.background, cfg.orbit_resolution, cfg.orbit_resolution,
                       generated_orbit(cfg), config_to_dict(cfg), prompt=self.prompt)

    def live_run(self, output: str | Path):
        from nerfgen.generate.scene_run import SceneRun

        self.live = SceneRun(self.info(), self.model, self.layout, output)
        return self.live

    def save(self, output: Path, step: int, seconds: float) -> None:
        write_layout(Path(output) / LAYOUT_FILE, self.layout)
        super().save(output, step, seconds)

    def state(self) -> tuple[dict[str, Tensor], dict]:
        tensors = {f"background.{k}": v for k, v in self.background.state_dict().items()}
        return tensors, {"layout": self.layout.to_dict()}

    def load_state(self, tensors: dict[str, Tensor], values: dict) -> None:
        self.layout = Layout.from_dict(values["layout"], "the checkpoint's layout")
        self.model.refresh_grid(self.layout)
        if self.config.background == "mlp":
            self.background.load_state_dict({k[11:]: v for k, v in tensors.items() if k.startswith("background.")})

    def finish(self, step: int) -> None:
        """Settle (``layout.json`` is rewritten; the checkpoint keeps the layout it trained with),
        then the final preview, the orbit video and the scene's meshes."""
        self.settle()
        write_layout(self.output / LAYOUT_FILE, self.layout)
        self.evaluate(step)  # of the settled scene
        write_products(self.live_run(self.output), self.config, self.output / "scene.glb")
