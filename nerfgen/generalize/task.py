"""Training a generalizable model on the engine: each step draws a few scenes, splits each one's
views at random into 1-3 source views and target views, encodes the sources, renders random
target pixels through the field, and regresses their colours. Evaluation renders held-out
scenes (shapes and colours never trained on) from 1 and 3 source views."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from nerfgen.cameras import Orbit, pixel_rays
from nerfgen.engine import Env, Schedule, StepContext, StepResult, Task
from nerfgen.files import load_state, read_tensors
from nerfgen.generalize.config import GeneralizeConfig
from nerfgen.generalize.data import TrainingScene, draw_sources
from nerfgen.generalize.models import build_model
from nerfgen.generalize.run import (MODEL_FILE, GeneralRun, GeneralRunInfo, SourceRecord, scene_rays_render,
                                    write_general_run)
from nerfgen.render import background_color

HELD_OUT_DIR = "held_out"
"""Folder of a run directory where its evaluation scenes are written (NeRF-synthetic captures)."""


def target_batch(scene: TrainingScene, targets: torch.Tensor, n: int, generator: torch.Generator, device):
    """``n`` random pixels of the ``targets`` views of ``scene``: their rays (through the pixel
    centres) and colours."""
    h, w = scene.cameras.height, scene.cameras.width
    cam = targets[torch.randint(len(targets), (n,), generator=generator)]
    px = torch.randint(w, (n,), generator=generator)
    py = torch.randint(h, (n,), generator=generator)
    rays = pixel_rays(scene.cameras, cam, px + 0.5, py + 0.5).to(device)
    colours = scene.images[cam, py, px].float().to(device) / 255
    return rays, colours


class GeneralizeTask(Task):
    """Trains a pixelNeRF model on ``scenes`` (procedural or a collection).

    Args:
        config: the run's config.
        scenes: where training scenes come from (:mod:`nerfgen.generalize.data`).
        held_out: folders of the held-out captures evaluated (written by the caller), if any.
        sources: the run's default source views (default: the first held-out capture's three).
        orbit: the run's orbit (default: round the origin, as the procedural scenes' cameras).
    """

    name = "generalize"

    def __init__(self, config: GeneralizeConfig, scenes, held_out: list[Path], sources: SourceRecord | None = None,
                 orbit: Orbit | None = None) -> None:
        self.config, self.scenes, self.held_out = config, scenes, held_out
        if sources is None and held_out:
            sources = SourceRecord(str(held_out[0].resolve()), [0, 1, 2])
        cfg = config.scenes
        self.sources = sources
        self.orbit = orbit or Orbit.around_origin(sum(cfg.distance) / 2, 30.0, sum(cfg.fov) / 2, cfg.size)

    def build(self, env: Env) -> None:
        self.device, self.output = env.device, env.output
        self.model = build_model(self.config.model, self.config).to(env.device)
        self.background = background_color(self.config.background).to(env.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr)

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, Schedule]]:
        return {"model": (self.optimizer, Schedule(self.config.lr_warmup_steps, self.config.lr_decay))}

    def step(self, ctx: StepContext) -> StepResult:
        cfg, gen = self.config, ctx.generator
        self.model.train()
        self.scenes.advance(ctx.step)
        per_scene = cfg.rays // cfg.scenes_per_step
        loss, colour_loss, extra, samples, views = 0.0, 0.0, {}, 0, 0
        for _ in range(cfg.scenes_per_step):
            scene = self.scenes.sample(gen)
            sources, targets = draw_sources(len(scene), cfg.sources[0], cfg.sources[1], gen)
            features = self.model.encode(scene.views(sources))
            rays, colours = target_batch(scene, targets, per_scene, gen, self.device)
            out = scene_rays_render(self.model, features, rays, self.background, stratified=True)
            mse = F.mse_loss(out.rgb, colours)
            terms = self.model.field.regularizers()  # the ray module's density proxy, if any
            loss = loss + (mse + sum(terms.values())) / cfg.scenes_per_step
            colour_loss = colour_loss + mse.detach() / cfg.scenes_per_step  # read once, after the step
            extra = {k: extra.get(k, 0.0) + v.detach() / cfg.scenes_per_step for k, v in terms.items()}
            samples += out.n_samples
            views += len(sources)
        ctx.optimize("model", loss)
        figures = {"loss": float(loss.detach()), "psnr": -10 * math.log10(max(float(colour_loss), 1e-10)),
                   "sources": views / cfg.scenes_per_step, **{k: float(v) for k, v in extra.items()}}
        return StepResult(figures, {"rays": per_scene * cfg.scenes_per_step, "samples": samples})

    # -- products -------------------------------------------------------------------------------
    def info(self) -> GeneralRunInfo:
        return GeneralRunInfo(self.config.model, self.config, self.scenes.description, self.sources,
                              self.config.background, self.orbit)

    def live_run(self, output: str | Path) -> GeneralRun:
        return GeneralRun(self.info(), self.model.eval(), output)

    def save(self, output: Path, step: int, seconds: float) -> None:
        write_general_run(output, self.info(), self.model)

    def load(self, output: Path) -> None:
        path = Path(output) / MODEL_FILE
        load_state(self.model, read_tensors(path), path, "the model its run.json describes")

    def evaluate(self, step: int) -> dict:
        """PSNR of the held-out scenes' target views from 1 and 3 source views."""
        from nerfgen.generalize.evaluate import evaluate_scenes

        if not self.held_out:
            return {}
        figures = {}
        for k in (1, 3):
            report = evaluate_scenes(self.live_run(self.output), self.held_out, k, views=2)
            figures[f"psnr_k{k}"] = report["psnr"]
        self.model.train()
        return figures


__all__ = ["GeneralizeTask", "HELD_OUT_DIR", "target_batch"]
