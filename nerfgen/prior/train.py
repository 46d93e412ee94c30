"""Training of the built-in prior (``nerfgen prior train``, :func:`nerfgen.train_prior`): render
the object library, embed the captions, and fit the noise predictor with the standard denoising loss.

For each image a caption is drawn from its object's template captions and dropped (replaced
by the zero "no caption" embedding) with probability ``caption_dropout``, so one network gives
both branches of classifier-free guidance; the camera is always seen.

An output folder holds::

    views.npz                      the rendered training set (cache, see nerfgen.scenes.object_views)
    captions.safetensors           caption embeddings [n_objects, K, 384] (cache)
    run.json                       kind prior and the PriorTrainConfig (nerfgen.prior.run.PriorRunInfo)
    model.safetensors, model.json  EMA weights + architecture (what load_builtin_prior reads)
    checkpoints/                   raw weights, Adam and random states (to --resume)
    state.json                     step, seconds, loss history
    guide/                         the guidance model's run (its weights go beside model.safetensors)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from nerfgen.engine import Env, Schedule, StepContext, StepResult, Task
from nerfgen.engine.figures import read_values
from nerfgen.files import read_tensors, write_json, write_tensors
from nerfgen.kinds import RUN_FILE
from nerfgen.prior.builtin import TIMESTEPS, cosine_alphas_cumprod, save_weights
from nerfgen.prior.run import PriorRunInfo
from nerfgen.prior.text import embed_texts
from nerfgen.prior.train_config import PriorTrainConfig
from nerfgen.prior.unet import UNet
from nerfgen.scenes.object_views import ObjectViews, render_object_views


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

    def to(self, device: torch.device | str) -> Batch:
        """The images, text and cameras on ``device`` (indices stay where they are)."""
        return Batch(self.images.to(device), self.text.to(device), self.cameras.to(device), self.indices, self.objects)


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
    t = torch.randint(0, alphas_cumprod.shape[0], (images.shape[0],), generator=g).to(images.device)
    noise = torch.randn(images.shape, generator=g).to(images.device)
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


class PriorTask(Task):
    """Fits the noise predictor, keeping an EMA copy of its weights (what ships and samples).

    At every checkpoint the run folder gets the EMA weights as ``model.safetensors`` + ``model.json``.

    Args:
        config: the run's settings.
        views: the rendered training set.
        text: ``[n_objects, K, 384]`` caption embeddings.
    """

    name = "prior"

    def __init__(self, config: PriorTrainConfig, views: ObjectViews, text: torch.Tensor) -> None:
        self.config, self.views, self.text = config, views, text
        self.history: list[list] = []  # [step, running loss]: the loss a tensor until a checkpoint reads it
        self.running: torch.Tensor | float | None = None

    def build(self, env: Env) -> None:
        self.generator, self.device = env.generator, env.device
        self.net = UNet(self.config.unet).to(env.device)
        self.ema = UNet(self.config.unet).to(env.device).requires_grad_(False)
        self.ema.load_state_dict(self.net.state_dict())
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.lr)
        self.alphas_cumprod = cosine_alphas_cumprod(TIMESTEPS).to(env.device)

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, Schedule]]:
        return {"unet": (self.optimizer, Schedule(self.config.warmup_steps, self.config.lr_decay))}

    @torch.no_grad()
    def _update_ema(self, step: int) -> None:
        decay = min(self.config.ema_decay, (1 + step) / (10 + step))
        for e, p in zip(self.ema.parameters(), self.net.parameters()):
            e.lerp_(p, 1 - decay)

    def step(self, ctx: StepContext) -> StepResult:
        c = self.config
        batch = sample_batch(self.views, self.text, c.batch_size, c.caption_dropout, self.generator).to(self.device)
        loss = diffusion_loss(self.net, batch, self.alphas_cumprod, self.generator, c.min_snr_gamma)
        ctx.optimize("unet", loss)
        self._update_ema(ctx.step)
        value = loss.detach()
        self.running = value if self.running is None else 0.98 * self.running + 0.02 * value
        if (ctx.step + 1) % 25 == 0:
            self.history.append([ctx.step + 1, self.running])
        return StepResult({"loss": self.running}, {"images": c.batch_size})

    def _read_history(self) -> list[list]:
        """The history with its losses read as numbers (5 decimals), in one transfer."""
        values = read_values([v for _, v in self.history if isinstance(v, torch.Tensor)])
        numbers = iter(round(v, 5) for v in values)
        self.history = [[s, next(numbers) if isinstance(v, torch.Tensor) else v] for s, v in self.history]
        return self.history

    def save(self, output: Path, step: int, seconds: float) -> None:
        info = {"training": {"steps": step, "seconds": round(seconds, 1),
                             "final_loss": self._read_history()[-1][1] if self.history else None,
                             "views": dataclasses.asdict(self.config.views)}}
        save_weights(output / "model.safetensors", self.ema, info)
        write_json(output / RUN_FILE, PriorRunInfo(self.config).to_dict())

    def load(self, output: Path) -> None:
        self.ema.load_state_dict(read_tensors(output / "model.safetensors"))

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        net = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        running = None if self.running is None else float(self.running)
        return net, {"history": self._read_history(), "running": running}

    def load_state(self, tensors: dict[str, torch.Tensor], values: dict) -> None:
        self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        self.history, self.running = values["history"], values["running"]


def prepare(config: PriorTrainConfig, output: Path, progress_fn=None) -> tuple[ObjectViews, torch.Tensor]:
    """Render (or load) the training set and its caption embeddings into ``output``."""
    views = render_object_views(output / "views.npz", config.views, progress_fn)
    if views.images.shape[1] != config.unet.resolution:
        raise ValueError(f"views are {views.images.shape[1]} px but the unet expects {config.unet.resolution} px")
    return views, caption_embeddings(views, output / "captions.safetensors")
