"""Photometric training of a radiance field on a posed image dataset."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from nerfgen.cameras import pixel_rays
from nerfgen.data import Dataset
from nerfgen.engine import checkpoint as ckpt
from nerfgen.engine.config import TrainConfig, config_to_dict, resolve_device
from nerfgen.engine.metrics import psnr
from nerfgen.engine.model import RadianceModel
from nerfgen.engine.progress import TrainProgress
from nerfgen.engine.video import orbit_spec
from nerfgen.engine.schedule import learning_rate, progress
from nerfgen.render.carving import visual_hull


def background_mode(config: TrainConfig, dataset: Dataset) -> str:
    """Resolve ``auto``: random colours where images have alpha (instant-ngp), black otherwise."""
    if config.background != "auto":
        return config.background
    return "random" if dataset.has_alpha else "black"


def eval_background(dataset: Dataset) -> torch.Tensor:
    """``[3]`` the background the evaluation protocol composites on (white for NeRF-synthetic)."""
    return torch.ones(3) if dataset.white_background else torch.zeros(3)


def composite(rgba: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """``rgba [..., 4]`` uint8 or float in [0, 1] over ``background [..., 3]`` -> ``[..., 3]``."""
    rgba = rgba.float() / 255.0 if rgba.dtype == torch.uint8 else rgba
    return rgba[..., :3] * rgba[..., 3:] + background * (1.0 - rgba[..., 3:])


@dataclass
class TrainSummary:
    """Totals of a finished run."""

    steps: int
    seconds: float
    rays: int
    samples: int
    final_loss: float


def _optimizer(model: RadianceModel, config: TrainConfig) -> torch.optim.Optimizer:
    grid, rest = [], []
    for name, p in model.field.named_parameters():
        (grid if p.ndim < 2 or "encoding" in name else rest).append(p)
    groups = [{"params": grid, "weight_decay": 0.0}, {"params": rest, "weight_decay": config.weight_decay}]
    return torch.optim.Adam(groups, lr=config.lr, betas=(0.9, 0.99), eps=1e-15, fused=True)


class Trainer:
    """Trains ``RadianceModel`` on ``dataset`` and writes a run directory.

    Args:
        config: training settings.
        dataset: training split.
        output: run directory (created on the first checkpoint, never before).
        val_dataset: optional split for periodic validation PSNR.
        resume: continue from the checkpoint in ``output``.
    """

    def __init__(
        self, config: TrainConfig, dataset: Dataset, output: str | Path, val_dataset: Dataset | None = None,
        resume: bool = False,
    ) -> None:
        torch.manual_seed(config.seed)
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.config, self.dataset, self.val_dataset = config, dataset, val_dataset
        self.output = Path(output)
        self.device = torch.device(resolve_device(config.device))
        self.model = RadianceModel(config, dataset.aabb, dataset.cascades)
        if dataset.has_alpha and config.carve:
            alphas = dataset.images[..., 3]
            self.model.estimator.restrict(lambda c, size: visual_hull(c, size, dataset.cameras, alphas))
        self.model.to(self.device)
        self.optimizer = _optimizer(self.model, config)
        self.background = background_mode(config, dataset)
        self.pixels = dataset.images.reshape(-1, 4).to(self.device)  # [n * H * W, 4] uint8
        self.cameras = dataset.cameras.to(self.device)
        self.step, self.seconds, self.rays_seen, self.samples_seen = 0, 0.0, 0, 0
        self.n_rays = config.init_rays
        self.generator = torch.Generator().manual_seed(config.seed)  # on the CPU: same batches on any device
        if resume:
            self._resume()

    # -- persistence -------------------------------------------------------------------------
    def scene_meta(self) -> dict:
        d = self.dataset
        return {
            "aabb": d.aabb.tolist(), "cascades": d.cascades, "data": d.source,
            "white_background": d.white_background, "train_background": self.background,
            "width": d.cameras.width, "height": d.cameras.height, "orbit": orbit_spec(d.cameras),
        }

    def save(self) -> None:
        """Write model, optimizer and progress (atomically, file by file)."""
        ckpt.write_tensors(self.output / ckpt.MODEL_FILE, self.model.state_dict())
        ckpt.write_tensors(self.output / ckpt.OPTIMIZER_FILE, ckpt.optimizer_tensors(self.optimizer))
        ckpt.write_json(self.output / ckpt.CONFIG_FILE, {"train": config_to_dict(self.config), "scene": self.scene_meta()})
        ckpt.write_json(self.output / ckpt.STATE_FILE, {
            "step": self.step, "seconds": self.seconds, "rays": self.rays_seen, "samples": self.samples_seen,
            "n_rays": self.n_rays, "rng": self.generator.get_state().tolist(),
        })

    def _resume(self) -> None:
        state = ckpt.read_json(self.output / ckpt.STATE_FILE)
        self.model.load_state_dict(ckpt.read_tensors(self.output / ckpt.MODEL_FILE))
        ckpt.load_optimizer_tensors(self.optimizer, ckpt.read_tensors(self.output / ckpt.OPTIMIZER_FILE))
        self.step, self.seconds = state["step"], state["seconds"]
        self.rays_seen, self.samples_seen, self.n_rays = state["rays"], state["samples"], state["n_rays"]
        self.generator.set_state(torch.tensor(state["rng"], dtype=torch.uint8))

    # -- one step ----------------------------------------------------------------------------
    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random pixels of random training images: ray origins, directions, targets, backgrounds."""
        n, dev = self.n_rays, self.device
        h, w = self.cameras.height, self.cameras.width
        flat = torch.randint(0, self.pixels.shape[0], (n,), generator=self.generator).to(dev)
        cam = flat // (h * w)
        py = (flat // w) % h
        px = flat % w
        jitter = torch.rand(n, 2, generator=self.generator).to(dev)
        rays = pixel_rays(self.cameras, cam, px + jitter[:, 0], py + jitter[:, 1])
        if self.background == "random":
            bg = torch.rand(n, 3, generator=self.generator).to(dev)
        else:
            bg = torch.full((n, 3), 1.0 if self.background == "white" else 0.0, device=dev)
        target = composite(self.pixels[flat], bg)
        return rays.origins, rays.directions, target, bg

    def train_step(self) -> tuple[float, int, int]:
        """One optimisation step; returns (loss, rays, samples)."""
        cfg = self.config
        done = progress(self.step, cfg.max_steps, self.seconds, cfg.max_seconds)
        lr = learning_rate(cfg.lr, self.step, done, cfg.lr_warmup_steps, cfg.lr_decay)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        self.model.estimator.update(self.step, self.model.field.density)
        origins, directions, target, bg = self._batch()
        out = self.model.render_rays(origins, directions, bg, stratified=True)
        loss = F.mse_loss(out.rgb, target)
        self.optimizer.zero_grad(set_to_none=True)
        if out.n_samples > 0:
            loss.backward()
            self.optimizer.step()
        n_rays = origins.shape[0]
        self.rays_seen += n_rays
        self.samples_seen += out.n_samples
        ratio = cfg.target_samples / max(out.n_samples, 1)
        self.n_rays = int(min(cfg.max_rays, max(64, self.n_rays * min(ratio, 4.0))))
        self.step += 1
        return float(loss.detach()), n_rays, out.n_samples

    # -- validation ----------------------------------------------------------------------------
    def validate(self) -> float | None:
        """Mean PSNR over the first ``val_views`` validation views (rendered downscaled)."""
        if self.val_dataset is None or self.config.val_views <= 0:
            return None
        d = self.val_dataset
        cams = d.cameras.scaled(self.config.val_downscale)
        bg = eval_background(d)
        self.model.eval()
        scores = []
        for i in range(min(self.config.val_views, len(cams))):
            image = self.model.render_camera(cams, i, bg)
            gt = torch.nn.functional.interpolate(
                composite(d.images[i], bg).permute(2, 0, 1)[None], size=(cams.height, cams.width), mode="area"
            )[0].permute(1, 2, 0)
            scores.append(psnr(image.rgb, gt))
        return sum(scores) / len(scores)

    # -- the loop ----------------------------------------------------------------------------
    def train(self, on_step: Callable[[int, float, float], None] | None = None) -> TrainSummary:
        """Train until ``max_steps`` or ``max_seconds``; checkpoint periodically and at the end.

        Args:
            on_step: called after every step with ``(step, loss, rays_per_second)``; time spent in it
                does not count as training time (the viewer pauses and renders there).
        """
        cfg = self.config
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(self.output / "tensorboard"))
        loss = math.nan
        with TrainProgress(cfg.max_steps, cfg.max_seconds, start_step=self.step, start_seconds=self.seconds) as bar:
            while self.step < cfg.max_steps and (cfg.max_seconds <= 0 or self.seconds < cfg.max_seconds):
                t0 = time.perf_counter()
                loss, rays, n_samples = self.train_step()
                dt = time.perf_counter() - t0
                self.seconds += dt
                bar.update(self.step, self.seconds, loss, rays / max(dt, 1e-9))
                if on_step is not None:
                    on_step(self.step, loss, rays / max(dt, 1e-9))
                if self.step % cfg.log_every == 0:
                    writer.add_scalar("train/loss", loss, self.step)
                    writer.add_scalar("train/psnr", -10 * math.log10(max(loss, 1e-10)), self.step)
                    writer.add_scalar("train/samples_per_step", n_samples, self.step)
                    writer.add_scalar("train/occupancy", self.model.estimator.occupancy_fraction(), self.step)
                if cfg.val_every > 0 and self.step % cfg.val_every == 0:
                    val = self.validate()
                    if val is not None:
                        writer.add_scalar("val/psnr", val, self.step)
                        bar.note(f"step {self.step}: val PSNR {val:.2f} dB")
                if cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0:
                    self.save()
        self.save()
        writer.close()
        return TrainSummary(self.step, self.seconds, self.rays_seen, self.samples_seen, loss)
