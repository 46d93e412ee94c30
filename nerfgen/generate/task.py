"""Text-to-3D by score distillation (a :class:`Task`): optimise a radiance field until its renders
satisfy a diffusion prior.

The run directory it writes is an ordinary nerfgen run (``run.json`` of kind ``generation`` +
``model.safetensors``), so :func:`nerfgen.load_run`, ``nerfgen render --orbit`` and the viewer open
it; ``previews/`` and ``preview.png`` show four sides every ``eval_every`` steps, and the end of a
run adds ``orbit.mp4``, ``mesh.ply`` (vertex colours) and ``mesh.glb`` (UV atlas, baked texture).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.cameras import Orbit, Rays, Views, all_rays, random_views, view_cameras
from nerfgen.config import config_to_dict
from nerfgen.engine import Env, Schedule, StepContext, StepResult
from nerfgen.generate.config import GenerateConfig
from nerfgen.generate.preview import PREVIEW_ELEVATION, render_sheet, write_preview
from nerfgen.generate.prompts import VIEW_SUFFIXES, view_suffix_index
from nerfgen.generate.shading import (
    normal_smoothness,
    opacity_entropy,
    opacity_sparsity,
    orientation_loss,
    shade,
    surface_normals,
)
from nerfgen.prior import DiffusionPrior, PromptEmbedding
from nerfgen.render import Background, RadianceModel, RenderOutput, background_color
from nerfgen.field_task import FieldTask
from nerfgen.kinds import RunKind
from nerfgen.runs import RunInfo


@dataclass
class ShadedRenders:
    """Renders of a batch of views as the prior sees them, and what the regularisers need
    (``r``: the render resolution, ``R``: the prior's).

    Attributes:
        images: ``[B, 3, R, R]`` in [0, 1], shaded, over the background.
        opacity: ``[B * r * r]`` accumulated opacity.
        normals: ``[B * r * r, 3]`` unit surface normals (None when not needed this step).
        jittered_normals: ``[B * r * r, 3]`` unit normals a random ``normal_smooth_jitter`` away
            from each surface point (None unless ``lambda_normal_smooth`` is set).
        directions: ``[B * r * r, 3]`` unit ray directions.
        n_samples: field samples shaded.
    """

    images: Tensor
    opacity: Tensor
    normals: Tensor | None
    jittered_normals: Tensor | None
    directions: Tensor
    n_samples: int


def shaded_renders(render: Callable[[Rays], RenderOutput], density: Callable[[Tensor], Tensor], views: Views,
                   fov: Tensor, mode: str, config: GenerateConfig, resolution: int, background: Background,
                   generator: torch.Generator, device: torch.device) -> ShadedRenders:
    """Render ``views`` (``[B]``, horizontal fields of view ``fov [B]`` in degrees) at
    ``config.camera.resolution`` and shade them with ``mode`` over ``background`` for a prior that
    sees ``resolution`` pixels.

    Args:
        render: ``rays -> RenderOutput`` (colour over black, opacity, depth; differentiable).
        density: ``positions -> sigma`` of what is rendered (for the surface normals).
    """
    cfg, n = config, len(views)
    res = cfg.camera.resolution
    rays = all_rays(view_cameras(views, fov, res)).to(device)
    out = render(rays)
    normals = jittered = None
    if mode != "albedo" or cfg.lambda_orientation > 0 or cfg.lambda_normal_smooth > 0:
        normals = surface_normals(density, rays.origins, rays.directions, out.depth, cfg.normal_eps)
    if cfg.lambda_normal_smooth > 0:
        offsets = cfg.normal_smooth_jitter * torch.randn(len(out.depth), 3, generator=generator).to(device)
        jittered = surface_normals(density, rays.origins + offsets, rays.directions, out.depth, cfg.normal_eps)
    light = None
    if mode != "albedo":
        towards = views.positions().to(device)
        towards = towards / towards.norm(dim=-1, keepdim=True)
        light = towards + cfg.shading.light_jitter * torch.randn(n, 3, generator=generator).to(device)
        light = (light / light.norm(dim=-1, keepdim=True)).repeat_interleave(res * res, 0)
    fg = shade(out.rgb, out.opacity, normals, light, mode, cfg.shading.ambient)
    rgb = fg + (1 - out.opacity[:, None]) * background(rays.directions, n, generator)
    images = rgb.view(n, res, res, 3).permute(0, 3, 1, 2)
    if res != resolution:
        images = F.interpolate(images, size=(resolution,) * 2, mode="bilinear", align_corners=False,
                               antialias=res > resolution)
    return ShadedRenders(images, out.opacity, normals, jittered, rays.directions, out.n_samples)


def entropy_weight(config: GenerateConfig, done: float) -> float:
    """The opacity entropy's weight at fraction ``done`` of the run: ``lambda_entropy``, or linear
    from it to ``lambda_entropy_final`` when that is set (binarisation annealed over the run)."""
    if config.lambda_entropy_final is None:
        return config.lambda_entropy
    return config.lambda_entropy + (config.lambda_entropy_final - config.lambda_entropy) * done


def geometry_losses(config: GenerateConfig, renders: ShadedRenders, done: float, sparsity: bool = True) -> Tensor | float:
    """The weighted regularisers of ``renders`` at fraction ``done`` of the run: orientation,
    normal smoothness, opacity sparsity (unless not ``sparsity``) and opacity entropy."""
    loss: Tensor | float = 0.0
    if renders.normals is not None and config.lambda_orientation > 0:
        loss = loss + config.lambda_orientation * orientation_loss(renders.normals, renders.directions, renders.opacity)
    if renders.jittered_normals is not None:
        loss = loss + config.lambda_normal_smooth * normal_smoothness(renders.normals, renders.jittered_normals,
                                                                      renders.opacity)
    if sparsity and config.lambda_opacity > 0:
        loss = loss + config.lambda_opacity * opacity_sparsity(renders.opacity)
    entropy = entropy_weight(config, done)
    if entropy > 0:
        loss = loss + entropy * opacity_entropy(renders.opacity)
    return loss


def write_products(run, config: GenerateConfig, mesh: Path | list[Path]) -> None:
    """The end of a generation: ``run``'s ``orbit.mp4`` beside ``mesh`` and the mesh file(s) (one
    extraction; a .glb textured; a warning, and no mesh, when the field is empty: the run itself
    is still written)."""
    meshes = [mesh] if isinstance(mesh, Path) else mesh
    if config.orbit_frames > 0:
        res = config.orbit_resolution
        run.render_orbit(meshes[0].parent / "orbit.mp4", config.orbit_frames, res, res)
    if config.mesh_resolution > 0:
        try:
            run.export_mesh(mesh, resolution=config.mesh_resolution)
        except ValueError as exc:
            warnings.warn(f"no mesh written: {exc}", stacklevel=3)


def set_clip_guidance(config: GenerateConfig, prior: DiffusionPrior) -> None:
    """Give ``prior`` the config's ``clip_guidance`` scale (built-in prior only), if one is set."""
    if config.clip_guidance is not None:
        if not hasattr(prior, "guide_scale"):
            raise ValueError(f"clip_guidance is set but the {config.prior} prior has no guidance model")
        prior.guide_scale = config.clip_guidance


def field_optimizer(config: GenerateConfig, fields: list[torch.nn.Module], background: Background) -> torch.optim.Adam:
    """Adam over ``fields`` at ``lr`` and, for an ``mlp`` background, the background at ``background_lr``."""
    groups = [{"params": [p for f in fields for p in f.parameters()], "lr": config.lr}]
    if config.background == "mlp":
        groups.append({"params": list(background.parameters()), "lr": config.background_lr})
    return torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15, fused=True)


class PromptViews:
    """The embeddings of one prompt as a prior sees it: one, or one per view suffix
    (:data:`VIEW_SUFFIXES`, for text-only priors with ``view_prompts``)."""

    def __init__(self, prior: DiffusionPrior, prompt: str, config: GenerateConfig) -> None:
        self.suffixes = not prior.camera_conditioned and config.view_prompts
        negative = config.negative_prompt
        if not self.suffixes:
            self.embeddings = [prior.encode_prompt(prompt, negative)]
        else:
            self.embeddings = [prior.encode_prompt(f"{prompt}, {suffix}", negative) for suffix in VIEW_SUFFIXES]

    def __call__(self, views: Views) -> PromptEmbedding:
        """The embedding of each view: ``cond [B, ...]`` by view suffix, or the one prompt."""
        if not self.suffixes:
            return self.embeddings[0]
        index = view_suffix_index(views).tolist()
        return PromptEmbedding(torch.cat([self.embeddings[i].cond for i in index]), self.embeddings[0].uncond)


def choose_shading(config: GenerateConfig, done: float, generator: torch.Generator) -> str:
    """Albedo during the first ``albedo_fraction`` of the run, then a random mode."""
    s = config.shading
    if done < s.albedo_fraction:
        return "albedo"
    u = float(torch.rand((), generator=generator))
    return "lambertian" if u < s.lambertian else "textureless" if u < s.lambertian + s.textureless else "albedo"


def anneal_t_max(config: GenerateConfig, done: float) -> float:
    """Largest timestep at fraction ``done`` of the run, linear from ``t_max[0]`` to ``t_max[1]``."""
    return config.t_max[0] + (config.t_max[1] - config.t_max[0]) * done


def generated_orbit(config: GenerateConfig) -> Orbit:
    """How a generated object is shown: around the origin at the mid training distance and field
    of view, :data:`PREVIEW_ELEVATION` up, ``orbit_resolution`` square frames."""
    return Orbit.around_origin(sum(config.camera.distance) / 2, PREVIEW_ELEVATION, sum(config.camera.fov) / 2,
                               config.orbit_resolution)


class GenerationTask(FieldTask):
    """Optimises one prompt into a radiance field against ``prior``.

    Args:
        prompt: the text.
        config: generation settings.
        prior: the loaded diffusion prior (shared by the prompts of one call), on the run's device.
    """

    name = "generate"

    def __init__(self, prompt: str, config: GenerateConfig, prior: DiffusionPrior) -> None:
        self.prompt, self.config, self.prior = prompt, config, prior
        self.previewed: int | None = None  # the step of the last preview sheet

    def build(self, env: Env) -> None:
        cfg, prior = self.config, self.prior
        self.device, self.generator, self.output = env.device, env.generator, env.output
        set_clip_guidance(cfg, prior)
        b = cfg.box
        self.aabb = torch.tensor([-b, -b, -b, b, b, b])
        self.model = RadianceModel(cfg.model_spec(), self.aabb, 1).to(self.device)
        self.background = Background(cfg.background).to(self.device)
        self.optimizer = field_optimizer(cfg, [self.model.field], self.background)
        self.prompt_for = PromptViews(prior, self.prompt, cfg)

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, Schedule]]:
        return {"field": (self.optimizer, Schedule())}  # constant rates, as DreamFusion

    # -- one step ----------------------------------------------------------------------------
    def render_views(self, views: Views, fov: Tensor, mode: str) -> ShadedRenders:
        """Render ``views`` (``[B]``, horizontal fields of view ``fov [B]`` in degrees) and shade
        them with ``mode`` for the prior."""
        zeros = torch.zeros(3, device=self.device)
        return shaded_renders(lambda rays: self.model.render_rays(rays, zeros, stratified=True),
                              self.model.field.density, views, fov, mode, self.config, self.prior.resolution,
                              self.background, self.generator, self.device)

    def step(self, ctx: StepContext) -> StepResult:
        """Random views, render, score distillation + regularisers, Adam."""
        cfg = self.config
        self.model.train()
        self.model.sampler.update(ctx.step, self.model.field.density, ctx.world)
        views, fov = random_views(cfg.camera.batch, cfg.camera.elevation, cfg.camera.distance, cfg.camera.fov,
                                  self.generator)
        mode = choose_shading(cfg, ctx.done, self.generator)
        renders = self.render_views(views, fov, mode)
        t_max = anneal_t_max(cfg, ctx.done)
        sds = self.prior.sds_loss(renders.images, self.prompt_for(views), views.to(self.device), cfg.guidance,
                                  (cfg.t_min, t_max), self.generator)
        loss = sds.loss + geometry_losses(cfg, renders, ctx.done)
        ctx.optimize("field", loss)
        figures = {"loss": loss.detach(), "sds": sds.loss.detach(), "t_max": t_max, "shading": mode}
        return StepResult(figures, {"images": len(views), "samples": renders.n_samples})

    # -- output ------------------------------------------------------------------------------
    def evaluate(self, step: int) -> dict[str, str]:
        """Write ``previews/step_NNNNNN.png`` (and ``preview.png``): four sides, colour above shading."""
        self.model.eval()
        background = background_color(self.background.shown_on).to(self.device)
        sheet = render_sheet(lambda cameras, i: self.model.render_camera(cameras, i, background),
                             self.model.field.density, self.config, background)
        path = write_preview(sheet, self.output, step)
        self.previewed = step
        return {"preview": str(path)}

    def info(self) -> RunInfo:
        cfg = self.config
        return RunInfo(RunKind.GENERATION, cfg.model_spec(), self.aabb.tolist(), 1, f"generated: {self.prompt}",
                       self.background.shown_on, cfg.background, cfg.orbit_resolution, cfg.orbit_resolution,
                       generated_orbit(cfg), config_to_dict(cfg), prompt=self.prompt)

    def state(self) -> tuple[dict[str, Tensor], dict]:
        tensors = {f"background.{k}": v for k, v in self.background.state_dict().items()}
        return tensors, {}

    def load_state(self, tensors: dict[str, Tensor], values: dict) -> None:
        if self.config.background == "mlp":
            self.background.load_state_dict({k[11:]: v for k, v in tensors.items() if k.startswith("background.")})

    def finish(self, step: int) -> None:
        """The final preview (unless the last evaluation made it), the orbit video, ``mesh.ply`` and ``mesh.glb``."""
        if self.previewed != step:
            self.evaluate(step)
        write_products(self.live_run(self.output), self.config, [self.output / "mesh.ply", self.output / "mesh.glb"])
