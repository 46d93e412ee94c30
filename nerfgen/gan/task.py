"""A GAN run on the engine: one discriminator and one generator update per step, an EMA of the
generator, KID on held-out images and a sample sheet at every evaluation."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nerfgen.engine import Env, Schedule, StepContext, StepResult, Task
from nerfgen.files import load_state, read_tensors
from nerfgen.gan.augment import adapt, augment
from nerfgen.gan.config import GanConfig
from nerfgen.gan.data import ImageCollection
from nerfgen.gan.discriminator import Discriminator, discriminator_loss, generator_loss, r1_penalty
from nerfgen.gan.generator import build_generator
from nerfgen.gan.patches import cut_patches, patch_grid, patch_scale_range
from nerfgen.gan.priors import prior_cameras, sample_codes
from nerfgen.gan.run import MODEL_FILE, GanRun, GanRunInfo, write_gan_run

EVAL_GATE_IMAGES = 300
"""Most held-out images per side the quality gate compares with at each evaluation."""
EMA_WARMUP = 10
"""The EMA decay is ``min(ema, (1 + step) / (EMA_WARMUP + step))``: early averages forget fast."""


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@dataclass
class HalfLife(Schedule):
    """Learning rates that halve every ``steps`` steps (0: constant), whatever the budget: a run
    resumed with a longer one goes on as it was."""

    steps: float = 0.0

    def rate(self, base: float, step: int, done: float) -> float:
        return base if self.steps <= 0 else base * 0.5 ** (step / self.steps)


class GanTask(Task):
    """Trains ``config.model`` (GRAF or GIRAFFE) on the images of ``data``.

    Args:
        config: the run's config.
        data: the training images (``data.train``; ``data.held_out`` is for evaluation only).
        data_path: the folder they came from (recorded in ``run.json``).
    """

    name = "gan"

    def __init__(self, config: GanConfig, data: ImageCollection, data_path: str) -> None:
        self.config, self.data, self.data_path = config, data, str(data_path)
        self._real_features = None
        self._reference = None  # the quality gate's real side, measured at the first evaluation
        self.augment_p = config.augment.probability

    def build(self, env: Env) -> None:
        cfg = self.config
        self.device, self.output = env.device, env.output
        self.generator = build_generator(cfg).to(env.device)
        self.ema = copy.deepcopy(self.generator).requires_grad_(False).eval()
        side = cfg.patch.size if cfg.model == "graf" else cfg.size
        self.discriminator = Discriminator(side, cfg.discriminator_width, cfg.minibatch_std).to(env.device)

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, Schedule]]:
        cfg = self.config

        def optimizer(module: nn.Module, lr: float) -> torch.optim.Optimizer:
            if cfg.optimizer == "adam":
                return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8)
            return torch.optim.RMSprop(module.parameters(), lr=lr, alpha=0.99, eps=1e-8)

        return {"discriminator": (optimizer(self.discriminator, cfg.lr_discriminator), HalfLife(steps=cfg.lr_half_life)),
                "generator": (optimizer(self.generator, cfg.lr_generator), HalfLife(steps=cfg.lr_half_life))}

    def step(self, ctx: StepContext) -> StepResult:
        cfg, gen, device = self.config, ctx.generator, self.device
        real = self.data.sample(cfg.batch, gen, device)
        codes = sample_codes(cfg.batch, cfg.shape_latent, cfg.appearance_latent, cfg.objects, cfg.camera, gen,
                             cfg.slots, cfg.appearance_modes, cfg.appearance_spread)
        cameras = prior_cameras(cfg.camera, codes.views, cfg.size)
        grid, figures = None, {}
        if cfg.model == "graf":
            scales = patch_scale_range(cfg.patch, ctx.step)
            grid = patch_grid(cfg.batch, cfg.patch.size, scales, gen)
            real = cut_patches(real, grid.to(device))
            figures["min_scale"] = scales[0]
        if cfg.augment.policy:
            figures["augment_p"] = self.augment_p
        fake = self.generator(codes.to(device), cameras, grid, stratified=True) * 2 - 1

        penalise = cfg.r1 > 0 and ctx.step % cfg.r1_every == 0
        real.requires_grad_(penalise)
        real_logits, fake_logits = self.discriminator(self.augmented(real, gen)), self.discriminator(
            self.augmented(fake.detach(), gen))
        d_loss = discriminator_loss(real_logits, fake_logits)
        r1 = r1_penalty(real_logits, real) if penalise else None
        ctx.optimize("discriminator", d_loss if r1 is None else d_loss + 0.5 * cfg.r1 * cfg.r1_every * r1)
        self.augment_p = adapt(self.augment_p, real_logits, cfg.augment, cfg.batch)

        self.discriminator.requires_grad_(False)
        g_loss = generator_loss(self.discriminator(self.augmented(fake, gen)))
        ctx.optimize("generator", g_loss)
        self.discriminator.requires_grad_(True)
        update_ema(self.ema, self.generator, min(cfg.ema, (1 + ctx.step) / (EMA_WARMUP + ctx.step)))

        figures.update({name: value.detach() for name, value in (
            ("loss", d_loss + g_loss), ("d_loss", d_loss), ("g_loss", g_loss),
            ("d_real", real_logits.mean()), ("d_fake", fake_logits.mean()))})
        if r1 is not None:
            figures["r1"] = r1.detach()
        pixels = fake.shape[0] * fake.shape[2] * fake.shape[3]
        return StepResult(figures, {"images": cfg.batch, "pixels": pixels})

    def augmented(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``images`` as the discriminator sees them (``config.augment``)."""
        policy = self.config.augment.policy
        return augment(images, policy, self.augment_p, gen) if policy and self.augment_p > 0 else images

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        return {}, {"augment_p": self.augment_p}

    def load_state(self, tensors: dict[str, torch.Tensor], values: dict) -> None:
        self.augment_p = float(values.get("augment_p", self.config.augment.probability))

    # -- products -------------------------------------------------------------------------------
    def info(self) -> GanRunInfo:
        return GanRunInfo(config=self.config, data=self.data_path)

    def live_run(self, output: str | Path) -> GanRun:
        """The EMA generator being trained, as a :class:`GanRun`."""
        return GanRun(self.info(), self.ema, output)

    def save(self, output: Path, step: int, seconds: float) -> None:
        write_gan_run(output, self.info(), {"generator": self.generator, "ema": self.ema,
                                            "discriminator": self.discriminator})

    def load(self, output: Path) -> None:
        path = Path(output) / MODEL_FILE
        tensors = read_tensors(path)
        for name, module in (("generator", self.generator), ("ema", self.ema), ("discriminator", self.discriminator)):
            prefix = name + "."
            load_state(module, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, path,
                       f"the run's {name} ({prefix}*)")

    def evaluate(self, step: int) -> dict:
        """KID (offline encoder) of the EMA generator against the held-out images, a sample sheet and,
        on an embedded set, the quality gate's figures (:mod:`nerfgen.gan.quality`) and whether it passes."""
        from nerfgen.gan.evaluate import EVAL_SEED, images_kid
        from nerfgen.gan.quality import QualityReference, unavailable

        run = self.live_run(self.output)
        run.write_sample_sheet(Path(self.output) / "samples" / f"step_{step:06d}.png", 16)
        images = run.images(run.codes(self.config.eval_samples, EVAL_SEED))
        kid, self._real_features = images_kid(images, self.data, self._real_features)
        figures = {"kid": kid}
        if self._reference is None and unavailable(self.data, least=8) is None:
            self._reference = QualityReference(self.data, min(self.config.eval_samples, EVAL_GATE_IMAGES))
        if self._reference is not None:
            report = self._reference.report(images)
            figures.update({f"gate/{name}": check["value"] for name, check in report["checks"].items()})
            figures["gate/passed"] = int(report["passed"])
        return figures

    def finish(self, step: int) -> None:
        self.live_run(self.output).write_sample_sheet(Path(self.output) / "samples.png", 16)


__all__ = ["GanTask", "update_ema"]
