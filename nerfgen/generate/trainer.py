"""Text-to-3D by score distillation: optimise a radiance field until its renders satisfy a prior.

The run directory it writes is an ordinary nerfgen run (``model.safetensors`` + ``config.json``
with ``train`` and ``scene``), so :func:`nerfgen.engine.model.load_model`, ``nerfgen render
--orbit`` and the viewer open it; the background network, the generation config and the prompt
are kept beside it.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.engine import checkpoint as ckpt
from nerfgen.engine.config import TrainConfig, config_to_dict as train_config_to_dict
from nerfgen.engine.model import RadianceModel
from nerfgen.engine.progress import TrainProgress
from nerfgen.engine.schedule import progress
from nerfgen.generate.background import BACKGROUND_FILE, Background
from nerfgen.generate.cameras import VIEW_SUFFIXES, camera_rays, sample_views, view_cameras, view_positions, view_suffix_index
from nerfgen.generate.config import GenerateConfig, config_to_dict
from nerfgen.generate.preview import orbit_meta, write_preview
from nerfgen.generate.shading import opacity_entropy, opacity_sparsity, orientation_loss, shade, surface_normals
from nerfgen.prior import DiffusionPrior, PromptEmbedding, Views
from nerfgen.render import render_rays

SUMMARY_FILE = "generate.json"
"""Prompt, config and totals of a generation run."""


@dataclass
class ShadedRenders:
    """Renders of a batch of views as the prior sees them, and what the regularisers need
    (``r``: the render resolution, ``R``: the prior's).

    Attributes:
        images: ``[B, 3, R, R]`` in [0, 1], shaded, over the background.
        opacity: ``[B * r * r]`` accumulated opacity.
        normals: ``[B * r * r, 3]`` unit surface normals (None when not needed this step).
        directions: ``[B * r * r, 3]`` unit ray directions.
        n_samples: field samples shaded.
    """

    images: Tensor
    opacity: Tensor
    normals: Tensor | None
    directions: Tensor
    n_samples: int


@dataclass
class StepStats:
    """One optimisation step: total and SDS loss, the largest timestep allowed, shading, samples."""

    loss: float
    sds: float
    t_max: float
    shading: str
    samples: int


@dataclass
class GenerateSummary:
    """Totals of a finished generation run."""

    output: Path
    steps: int
    seconds: float
    samples: int


def generation_train_config(config: GenerateConfig) -> TrainConfig:
    """The :class:`TrainConfig` that rebuilds the generated field (ngp + blob, one cascade)."""
    options = {**config.field_options, "blob_density": config.blob_density, "blob_radius": config.blob_radius}
    return TrainConfig(field="ngp", field_options=options, grid=config.grid, max_steps=config.steps,
                       lr=config.lr, seed=config.seed, threads=config.threads, background="white", carve=False)


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


class GenerationRun:
    """Optimises one prompt into a radiance field against ``prior``.

    Args:
        prompt: the text.
        config: generation settings.
        prior: the loaded diffusion prior (shared by the prompts of one call).
        output: run directory to write.
        device: torch device of the field (the prior's, normally).
    """

    def __init__(self, prompt: str, config: GenerateConfig, prior: DiffusionPrior, output: str | Path,
                 device: str = "cpu") -> None:
        torch.manual_seed(config.seed)
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.prompt, self.config, self.prior, self.device = prompt, config, prior, torch.device(device)
        self.output = Path(output)
        if config.clip_guidance is not None:
            if not hasattr(prior, "guide_scale"):
                raise ValueError(f"clip_guidance is set but the {config.prior} prior has no guidance model")
            prior.guide_scale = config.clip_guidance
        b = config.box
        self.aabb = torch.tensor([-b, -b, -b, b, b, b])
        self.model = RadianceModel(generation_train_config(config), self.aabb, 1).to(self.device)
        self.background = Background(config.background).to(self.device)
        self.optimizer = self._optimizer()
        self.generator = torch.Generator().manual_seed(config.seed)
        self.suffixes = not prior.camera_conditioned and config.view_prompts
        self.embeddings = self._encode_prompts()
        self.step, self.seconds, self.samples = 0, 0.0, 0

    def _optimizer(self) -> torch.optim.Optimizer:
        groups = [{"params": list(self.model.field.parameters()), "lr": self.config.lr}]
        if self.config.background == "mlp":
            groups.append({"params": list(self.background.parameters()), "lr": self.config.background_lr})
        return torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15, fused=True)

    def _encode_prompts(self) -> list[PromptEmbedding]:
        """The prompt (one embedding), or one per view suffix (:data:`VIEW_SUFFIXES`)."""
        negative = self.config.negative_prompt
        if not self.suffixes:
            return [self.prior.encode_prompt(self.prompt, negative)]
        return [self.prior.encode_prompt(f"{self.prompt}, {suffix}", negative) for suffix in VIEW_SUFFIXES]

    def prompt_for(self, views: Views) -> PromptEmbedding:
        """The embedding of each view: ``cond [B, ...]`` by view suffix, or the one prompt."""
        if not self.suffixes:
            return self.embeddings[0]
        index = view_suffix_index(views).tolist()
        return PromptEmbedding(torch.cat([self.embeddings[i].cond for i in index]), self.embeddings[0].uncond)

    # -- one step ----------------------------------------------------------------------------
    def render_views(self, views: Views, fov: Tensor, mode: str) -> ShadedRenders:
        """Render ``views`` (``[B]``, horizontal fields of view ``fov [B]`` in degrees) and shade
        them with ``mode`` for the prior."""
        cfg, n = self.config, views.elevation.shape[0]
        res = cfg.camera.resolution
        rays = camera_rays(view_cameras(views, fov, res)).to(self.device)
        out = render_rays(self.model.field, self.model.estimator, rays.origins, rays.directions,
                          torch.zeros(3, device=self.device), stratified=True)
        normals = None
        if mode != "albedo" or cfg.lambda_orientation > 0:
            normals = surface_normals(self.model.field.density, rays.origins, rays.directions, out.depth, cfg.normal_eps)
        light = None
        if mode != "albedo":
            towards = view_positions(views).to(self.device)
            towards = towards / towards.norm(dim=-1, keepdim=True)
            light = towards + cfg.shading.light_jitter * torch.randn(n, 3, generator=self.generator).to(self.device)
            light = (light / light.norm(dim=-1, keepdim=True)).repeat_interleave(res * res, 0)
        fg = shade(out.rgb, out.opacity, normals, light, mode, cfg.shading.ambient)
        rgb = fg + (1 - out.opacity[:, None]) * self.background(rays.directions, n, self.generator)
        images = rgb.view(n, res, res, 3).permute(0, 3, 1, 2)
        if res != self.prior.resolution:
            images = F.interpolate(images, size=(self.prior.resolution,) * 2, mode="bilinear",
                                   align_corners=False, antialias=res > self.prior.resolution)
        return ShadedRenders(images, out.opacity, normals, rays.directions, out.n_samples)

    def train_step(self) -> StepStats:
        """One step: random views, render, score distillation + regularisers, Adam."""
        cfg = self.config
        done = progress(self.step, cfg.steps, self.seconds, cfg.max_seconds)
        self.model.train()
        self.model.estimator.update(self.step, self.model.field.density)
        views, fov = sample_views(cfg.camera, cfg.camera.batch, self.generator)
        mode = choose_shading(cfg, done, self.generator)
        renders = self.render_views(views, fov, mode)
        t_max = anneal_t_max(cfg, done)
        sds = self.prior.sds_loss(renders.images, self.prompt_for(views), _to(views, self.device), cfg.guidance,
                                  (cfg.t_min, t_max), self.generator)
        loss = sds.loss
        if renders.normals is not None and cfg.lambda_orientation > 0:
            loss = loss + cfg.lambda_orientation * orientation_loss(renders.normals, renders.directions, renders.opacity)
        if cfg.lambda_opacity > 0:
            loss = loss + cfg.lambda_opacity * opacity_sparsity(renders.opacity)
        if cfg.lambda_entropy > 0:
            loss = loss + cfg.lambda_entropy * opacity_entropy(renders.opacity)
        self.optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            self.optimizer.step()
        self.step += 1
        self.samples += renders.n_samples
        return StepStats(float(loss.detach()), float(sds.loss.detach()), t_max, mode, renders.n_samples)

    # -- output ------------------------------------------------------------------------------
    def scene_meta(self) -> dict:
        """What :func:`~nerfgen.engine.model.load_model` and the video/viewer read about the scene."""
        cfg = self.config
        white = cfg.background != "black"
        return {
            "aabb": self.aabb.tolist(), "cascades": 1, "data": f"generated: {self.prompt}",
            "white_background": white, "train_background": cfg.background,
            "width": cfg.orbit_resolution, "height": cfg.orbit_resolution,
            "orbit": orbit_meta(cfg.camera, cfg.orbit_resolution),
        }

    def save(self) -> None:
        """Write the model, the background network and the configs (atomically, file by file)."""
        ckpt.write_tensors(self.output / ckpt.MODEL_FILE, self.model.state_dict())
        if self.config.background == "mlp":
            ckpt.write_tensors(self.output / BACKGROUND_FILE, self.background.state_dict())
        train = train_config_to_dict(generation_train_config(self.config))
        ckpt.write_json(self.output / ckpt.CONFIG_FILE, {"train": train, "scene": self.scene_meta()})
        ckpt.write_json(self.output / SUMMARY_FILE, {
            "prompt": self.prompt, "prior": self.config.prior, "config": config_to_dict(self.config),
            "step": self.step, "seconds": self.seconds, "samples": self.samples,
        })

    def preview(self) -> Path:
        """Write ``previews/step_NNNNNN.png`` (and ``preview.png``): four sides, colour above shading."""
        self.model.eval()
        return write_preview(self.model, self.config, self.background.display_color().to(self.device),
                             self.output, self.step)

    def run(self) -> GenerateSummary:
        """Optimise until ``steps`` or ``max_seconds``; a checkpoint and a preview every
        ``preview_every`` steps, then the final checkpoint, preview and orbit video."""
        cfg = self.config
        with TrainProgress(cfg.steps, cfg.max_seconds, label="generate") as bar:
            bar.note(f"generating {self.prompt!r} with the {cfg.prior} prior into {self.output}")
            while self.step < cfg.steps and (cfg.max_seconds <= 0 or self.seconds < cfg.max_seconds):
                t0 = time.perf_counter()
                stats = self.train_step()
                self.seconds += time.perf_counter() - t0
                bar.show(self.step, self.seconds, f"step {self.step}  sds {stats.sds:.3g}  t<{stats.t_max:.2f}  "
                         f"{stats.shading:<11}  {self.seconds / self.step:.2f} s/step")
                if not math.isfinite(stats.loss):
                    raise FloatingPointError(f"generation diverged at step {self.step} (loss {stats.loss})")
                if cfg.preview_every > 0 and self.step % cfg.preview_every == 0:
                    self.save()  # a checkpoint at every preview: the viewer can follow the run
                    bar.note(f"step {self.step}: preview {self.preview()}")
        self.save()
        self.preview()
        if cfg.orbit_frames > 0:
            from nerfgen.engine.video import render_orbit

            render_orbit(self.output, self.output / "orbit.mp4", cfg.orbit_frames, cfg.orbit_resolution,
                         cfg.orbit_resolution)
        if cfg.mesh_resolution > 0:
            self._export_mesh()
        return GenerateSummary(self.output, self.step, self.seconds, self.samples)


    def _export_mesh(self) -> None:
        """``mesh.ply``: the object's surface, coloured (:func:`nerfgen.mesh.export.export_run`)."""
        from nerfgen.mesh import MeshOptions
        from nerfgen.mesh.export import export_run

        try:
            export_run(self.output, self.output / "mesh.ply", MeshOptions(resolution=self.config.mesh_resolution),
                       str(self.device))
        except ValueError as exc:  # an empty field: the run itself is still written
            warnings.warn(f"no mesh written: {exc}", stacklevel=2)


def _to(views: Views, device: torch.device) -> Views:
    return Views(views.elevation.to(device), views.azimuth.to(device), views.distance.to(device))
