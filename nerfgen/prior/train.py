"""Training of the built-in prior (``nerfgen prior train``): render the object library, embed
the captions, and fit the noise predictor with the standard denoising loss.

For each image a caption is drawn from its object's template captions and dropped (replaced
by the zero "no caption" embedding) with probability ``caption_dropout``, so one network gives
both branches of classifier-free guidance; the camera is always seen.

An output folder holds::

    views.npz                      the rendered training set (cache, see scenes.object_views)
    captions.safetensors           caption embeddings [n_objects, K, 384] (cache)
    config.json                    the PriorTrainConfig
    model.safetensors, model.json  EMA weights + architecture (what load_builtin_prior reads)
    train_state.safetensors        raw weights and Adam state (to --resume)
    state.json                     step, seconds, loss history
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nerfgen.engine.checkpoint import (load_optimizer_tensors, optimizer_tensors, read_json, read_tensors,
                                       write_json, write_tensors)
from nerfgen.engine.schedule import learning_rate, progress
from nerfgen.prior.builtin import TIMESTEPS, cosine_alphas_cumprod, save_weights
from nerfgen.prior.guide import GuideConfig, GuideTrainConfig
from nerfgen.prior.text import embed_texts
from nerfgen.prior.unet import UNet, UNetConfig
from scenes.object_views import ObjectViews, ObjectViewsConfig, render_object_views


@dataclass
class PriorTrainConfig:
    """Everything that decides a prior training run (``configs/prior.yaml`` maps onto it)."""

    views: ObjectViewsConfig = field(default_factory=ObjectViewsConfig)
    """The rendered training set."""
    unet: UNetConfig = field(default_factory=UNetConfig)
    """The network."""
    steps: int = 3500
    """Optimisation steps."""
    minutes: float = 0.0
    """Time budget in minutes (0: none); the learning-rate schedule follows the nearer budget."""
    batch_size: int = 32
    """Images per step."""
    lr: float = 5e-4
    """Peak Adam learning rate."""
    warmup_steps: int = 100
    """Linear warm-up steps."""
    lr_decay: float = 1.0
    """Factor applied at 50%, 75% and 90% of the run."""
    caption_dropout: float = 0.1
    """Probability of training an image with the "no caption" embedding."""
    min_snr_gamma: float = 5.0
    """Min-SNR loss weighting (Hang et al. 2023): each image's noise error weighs
    ``min(SNR_t, gamma) / SNR_t``, so the noisy timesteps, where the caption decides the object's
    outline, are not drowned by the nearly clean ones (0: plain mean squared error)."""
    ema_decay: float = 0.995
    """Decay of the weights' exponential moving average (warmed up as (1 + n) / (10 + n))."""
    checkpoint_every: int = 250
    """Steps between checkpoints (one is always written at the end)."""
    seed: int = 0
    """Seed of the batches, timesteps and noise (the training set has its own seed)."""
    threads: int = 2
    """CPU threads for torch."""
    guide: GuideTrainConfig = field(default_factory=GuideTrainConfig)
    """The noisy image-text guidance model trained after the network (``guide.steps: 0``: none)."""


def _nested(cls: type, values: dict[str, Any], source: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{source}: unknown option(s) {sorted(unknown)} for {cls.__name__}; expected {sorted(known)}")
    return cls(**values)


def config_from_dict(values: dict[str, Any], source: str = "config") -> PriorTrainConfig:
    """A :class:`PriorTrainConfig` from a (partial) dict such as a YAML file's content."""
    values = dict(values or {})
    views = _nested(ObjectViewsConfig, {k: tuple(v) if isinstance(v, list) else v
                                        for k, v in values.pop("views", {}).items()}, f"{source} [views]")
    unet = _nested(UNetConfig, values.pop("unet", {}), f"{source} [unet]")
    guide = dict(values.pop("guide", {}))
    guide["model"] = _nested(GuideConfig, guide.get("model", {}), f"{source} [guide.model]")
    guide = _nested(GuideTrainConfig, guide, f"{source} [guide]")
    return _nested(PriorTrainConfig, {**values, "views": views, "unet": unet, "guide": guide}, source)


def caption_embeddings(views: ObjectViews, cache: Path) -> torch.Tensor:
    """``[n_objects, K, 384]`` embeddings of ``views.captions``, cached in ``cache``."""
    if cache.is_file():
        cached = read_tensors(cache)["embeddings"]
        if tuple(cached.shape[:2]) == views.captions.shape:
            return cached.float()
    flat = [str(c) for c in views.captions.reshape(-1)]
    unique = sorted(set(flat))
    table = embed_texts(unique)
    index = {c: i for i, c in enumerate(unique)}
    emb = table[[index[c] for c in flat]].reshape(*views.captions.shape, -1)
    write_tensors(cache, {"embeddings": emb.half()})
    return emb


@dataclass
class Batch:
    """One training batch: images in [-1, 1] ``[B, 3, R, R]``, text ``[B, 384]``, cameras ``[B, 3]``,
    and which image (``indices [B]``) of which object (``objects [B]``) each one is."""

    images: torch.Tensor
    text: torch.Tensor
    cameras: torch.Tensor
    indices: torch.Tensor
    objects: torch.Tensor


def sample_batch(views: ObjectViews, text: torch.Tensor, size: int, dropout: float, g: torch.Generator) -> Batch:
    """Random images, one random caption of each (dropped to zeros with probability ``dropout``)."""
    idx = torch.randint(0, views.images.shape[0], (size,), generator=g)
    images = torch.from_numpy(views.images[idx.numpy()]).permute(0, 3, 1, 2).float() / 127.5 - 1
    objects = torch.from_numpy(views.object_ids[idx.numpy()]).long()
    which = torch.randint(0, text.shape[1], (size,), generator=g)
    emb = text[objects, which].float() * (torch.rand(size, generator=g) >= dropout).float()[:, None]
    return Batch(images, emb, torch.from_numpy(views.cameras[idx.numpy()]).float(), idx, objects)


def add_noise(images: torch.Tensor, alphas_cumprod: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    r"""Uniform timesteps ``t [B]``, noise and :math:`x_t = \sqrt{\bar\alpha_t} x + \sqrt{1 - \bar\alpha_t}\epsilon`:
    returns ``(x_t, t, noise)``."""
    t = torch.randint(0, alphas_cumprod.shape[0], (images.shape[0],), generator=g)
    noise = torch.randn(images.shape, generator=g)
    ab = alphas_cumprod[t].view(-1, 1, 1, 1)
    return ab.sqrt() * images + (1 - ab).sqrt() * noise, t, noise


def diffusion_loss(net: UNet, batch: Batch, alphas_cumprod: torch.Tensor, g: torch.Generator,
                   min_snr_gamma: float = 0.0) -> torch.Tensor:
    r"""Mean squared error of the predicted noise, :math:`\|\epsilon - \epsilon_\theta(x_t, t, y, c)\|^2`,
    each image weighted by :math:`\min(\mathrm{SNR}_t, \gamma) / \mathrm{SNR}_t` when ``min_snr_gamma`` > 0."""
    x_t, t, noise = add_noise(batch.images, alphas_cumprod, g)
    error = (net(x_t, t, batch.text, batch.cameras) - noise).square().mean(dim=(1, 2, 3))
    if min_snr_gamma > 0:
        snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
        error = error * snr.clamp(max=min_snr_gamma) / snr
    return error.mean()


class PriorTrainer:
    """Owns the network, its EMA copy, the optimiser and the run folder.

    Args:
        config: The run's settings.
        output: Run folder (see the module docstring).
        resume: Continue from ``output``'s last checkpoint.
    """

    def __init__(self, config: PriorTrainConfig, output: Path, resume: bool = False):
        self.config, self.output = config, Path(output)
        torch.manual_seed(config.seed)
        self.net = UNet(config.unet)
        self.ema = UNet(config.unet).requires_grad_(False)
        self.ema.load_state_dict(self.net.state_dict())
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.alphas_cumprod = cosine_alphas_cumprod(TIMESTEPS)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step, self.seconds, self.history = 0, 0.0, []
        if resume:
            self._load()

    def _load(self) -> None:
        state = read_json(self.output / "state.json")
        tensors = read_tensors(self.output / "train_state.safetensors")
        self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        self.ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        load_optimizer_tensors(self.optimizer, {k[4:]: v for k, v in tensors.items() if k.startswith("opt.")})
        self.step, self.seconds, self.history = state["step"], state["seconds"], state["history"]
        self.generator.set_state(tensors["rng"].to(torch.uint8))

    def save(self) -> None:
        """Checkpoint: EMA model (+ JSON), raw weights + optimizer + RNG, state."""
        info = {"training": {"steps": self.step, "seconds": round(self.seconds, 1),
                             "final_loss": self.history[-1][1] if self.history else None,
                             "views": dataclasses.asdict(self.config.views)}}
        save_weights(self.output / "model.safetensors", self.ema, info)
        tensors = {**{f"net.{k}": v for k, v in self.net.state_dict().items()},
                   **{f"ema.{k}": v for k, v in self.ema.state_dict().items()},
                   **{f"opt.{k}": v for k, v in optimizer_tensors(self.optimizer).items()},
                   "rng": self.generator.get_state()}
        write_tensors(self.output / "train_state.safetensors", tensors)
        write_json(self.output / "state.json", {"step": self.step, "seconds": self.seconds, "history": self.history})

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.net.parameters()):
            e.lerp_(p, 1 - decay)

    def train(self, views: ObjectViews, text: torch.Tensor, report=None) -> None:
        """Run until the step or time budget is spent; ``report(step, seconds, loss)`` after each step."""
        c = self.config
        max_seconds = 60.0 * c.minutes
        running = None
        while True:
            done = progress(self.step, c.steps, self.seconds, max_seconds)
            if done >= 1.0:
                break
            start = time.perf_counter()
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(c.lr, self.step, done, c.warmup_steps, c.lr_decay)
            batch = sample_batch(views, text, c.batch_size, c.caption_dropout, self.generator)
            loss = diffusion_loss(self.net, batch, self.alphas_cumprod, self.generator, c.min_snr_gamma)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self._update_ema()
            self.step += 1
            self.seconds += time.perf_counter() - start
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if self.step % 25 == 0:
                self.history.append([self.step, round(running, 5)])
            if report is not None:
                report(self.step, self.seconds, running)
            if self.step % c.checkpoint_every == 0:
                self.save()
        self.save()


def prepare(config: PriorTrainConfig, output: Path, progress_fn=None) -> tuple[ObjectViews, torch.Tensor]:
    """Render (or load) the training set and its caption embeddings into ``output``."""
    views = render_object_views(output / "views.npz", config.views, progress_fn)
    if views.images.shape[1] != config.unet.resolution:
        raise ValueError(f"views are {views.images.shape[1]} px but the unet expects {config.unet.resolution} px")
    return views, caption_embeddings(views, output / "captions.safetensors")


def config_to_dict(config: PriorTrainConfig) -> dict[str, Any]:
    """Plain dict of a config (JSON ready)."""
    return dataclasses.asdict(config)


def read_config(output: Path) -> PriorTrainConfig:
    """The config a run in ``output`` was started with."""
    return config_from_dict(read_json(output / "config.json"), str(output / "config.json"))
