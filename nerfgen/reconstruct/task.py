"""Reconstruction: photometric training of a radiance field on a posed image dataset (a :class:`Task`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.cameras import Orbit, Rays, pixel_rays
from nerfgen.config import config_to_dict
from nerfgen.data import Dataset
from nerfgen.engine import Env, Schedule, StepContext, StepResult
from nerfgen.engine.metrics import psnr
from nerfgen.reconstruct.config import TrainConfig
from nerfgen.render import Background, OccupancyGrid, RadianceModel, background_color, training_background
from nerfgen.render.carving import visual_hull
from nerfgen.runs import RunInfo, SceneTask


def shown_on(dataset: Dataset) -> str:
    """The background a dataset is evaluated on: white for NeRF-synthetic, else black."""
    return "white" if dataset.white_background else "black"


def composite(rgba: Tensor, background: Tensor) -> Tensor:
    """``rgba [..., 4]`` uint8 or float in [0, 1] over ``background [..., 3]`` -> ``[..., 3]``."""
    rgba = rgba.float() / 255.0 if rgba.dtype == torch.uint8 else rgba
    return rgba[..., :3] * rgba[..., 3:] + background * (1.0 - rgba[..., 3:])


def field_optimizer(model: RadianceModel, config: TrainConfig) -> torch.optim.Adam:
    """Adam over the field: no weight decay on the hash tables and biases, ``weight_decay`` on the
    MLP weights."""
    grid, rest = [], []
    for name, p in model.field.named_parameters():
        (grid if p.ndim < 2 or "encoding" in name else rest).append(p)
    groups = [{"params": grid, "weight_decay": 0.0}, {"params": rest, "weight_decay": config.weight_decay}]
    return torch.optim.Adam(groups, lr=config.lr, betas=(0.9, 0.99), eps=1e-15, fused=True)


class ReconstructionTask(SceneTask):
    """Random pixels of random training images -> rendered rays -> MSE against the pixels.

    Args:
        config: training settings.
        dataset: training split.
        val_dataset: optional split for periodic validation PSNR.
    """

    name = "train"

    def __init__(self, config: TrainConfig, dataset: Dataset, val_dataset: Dataset | None = None) -> None:
        self.config, self.dataset, self.val_dataset = config, dataset, val_dataset

    def build(self, env: Env) -> None:
        cfg, ds = self.config, self.dataset
        self.device, self.generator = env.device, env.generator
        self.model = RadianceModel(cfg.model_spec(), ds.aabb, ds.cascades)
        if ds.has_alpha and cfg.carve and isinstance(self.model.sampler, OccupancyGrid):
            alphas = ds.images[..., 3]
            self.model.sampler.restrict(lambda c, size: visual_hull(c, size, ds.cameras, alphas))
        self.model.to(self.device)
        self.optimizer = field_optimizer(self.model, cfg)
        self.background = Background(training_background(cfg.background, ds.has_alpha))
        self.pixels = ds.images.reshape(-1, 4).to(self.device)  # [n * H * W, 4] uint8
        self.cameras = ds.cameras.to(self.device)
        self.n_rays = cfg.init_rays

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, Schedule]]:
        return {"field": (self.optimizer, Schedule(self.config.lr_warmup_steps, self.config.lr_decay))}

    # -- one step ----------------------------------------------------------------------------
    def batch(self) -> tuple[Rays, Tensor, Tensor]:
        """Random pixels of random training images: their rays, targets and backgrounds."""
        n, dev = self.n_rays, self.device
        h, w = self.cameras.height, self.cameras.width
        flat = torch.randint(0, self.pixels.shape[0], (n,), generator=self.generator).to(dev)
        cam = flat // (h * w)
        py = (flat // w) % h
        px = flat % w
        jitter = torch.rand(n, 2, generator=self.generator).to(dev)
        rays = pixel_rays(self.cameras, cam, px + jitter[:, 0], py + jitter[:, 1])
        bg = self.background(rays.directions, n, self.generator)
        return rays, composite(self.pixels[flat], bg), bg

    def step(self, ctx: StepContext) -> StepResult:
        cfg = self.config
        self.model.train()
        self.model.sampler.update(ctx.step, self.model.field.density)
        rays, target, bg = self.batch()
        out = self.model.render_rays(rays, bg, stratified=True)
        loss = F.mse_loss(out.rgb, target)
        if out.n_samples > 0:
            ctx.optimize("field", loss)
        n_rays = len(rays)
        ratio = cfg.target_samples / max(out.n_samples, 1)
        self.n_rays = int(min(cfg.max_rays, max(64, self.n_rays * min(ratio, 4.0))))
        value = float(loss.detach())
        figures = {"loss": value, "psnr": -10 * math.log10(max(value, 1e-10)),
                   "occupancy": self.model.sampler.occupancy_fraction()}
        return StepResult(figures, {"rays": n_rays, "samples": out.n_samples})

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, step: int) -> dict[str, float]:
        """Mean PSNR over the first ``val_views`` validation views (rendered downscaled)."""
        if self.val_dataset is None or self.config.val_views <= 0:
            return {}
        d = self.val_dataset
        cams = d.cameras.scaled(self.config.val_downscale)
        bg = background_color(shown_on(d))
        self.model.eval()
        scores = []
        for i in range(min(self.config.val_views, len(cams))):
            image = self.model.render_camera(cams, i, bg)
            gt = F.interpolate(composite(d.images[i], bg).permute(2, 0, 1)[None], size=(cams.height, cams.width),
                               mode="area")[0].permute(1, 2, 0)
            scores.append(psnr(image.rgb, gt))
        return {"psnr": sum(scores) / len(scores)}

    # -- the run directory -------------------------------------------------------------------
    def info(self) -> RunInfo:
        d, cfg = self.dataset, self.config
        return RunInfo("reconstruction", cfg.model_spec(), d.aabb.tolist(), d.cascades, d.source, shown_on(d),
                       self.background.mode, d.cameras.width, d.cameras.height, Orbit.from_cameras(d.cameras),
                       config_to_dict(cfg), cfg.downscale)

    def state(self) -> tuple[dict[str, Tensor], dict]:
        return {}, {"n_rays": self.n_rays}

    def load_state(self, tensors: dict[str, Tensor], values: dict) -> None:
        self.n_rays = int(values["n_rays"])
