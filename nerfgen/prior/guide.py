r"""A noise-aware image-text model that guides the built-in prior towards the prompt's content
(GLIDE's noised-CLIP guidance, Nichol et al. 2021, at 32x32 and with a camera input).

The denoising loss teaches the small UNet colour early but the shape words of a caption late
(min-SNR weighting, :mod:`nerfgen.prior.train`, shortens the wait but not to nothing): they
change few pixels, and the captions spread one shape over synonyms ("cube", "box", "block"). A
contrastive model learns exactly that discrimination in minutes. Its image tower sees
noisy images :math:`x_t` with their timestep and camera; its text tower projects the sentence
embedding of the caption. Guidance adds its gradient to the predicted noise:

.. math::
    \hat\epsilon \leftarrow \hat\epsilon - s_{clip} \sqrt{1 - \bar\alpha_t}\, \nabla_{x_t}\,
    \tau \cos\big(f(x_t, t, c), g(y)\big)

so DDIM samples and score distillation both move towards images the model matches with the
prompt. ``nerfgen prior train`` trains it after the UNet, on the same renders
(:mod:`nerfgen.prior.guide_train`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfgen.engine import EngineConfig
from nerfgen.files import read_json, read_tensors, write_json, write_tensors
from nerfgen.prior.unet import ResBlock, camera_features, timestep_embedding


@dataclass
class GuideConfig:
    """Architecture of :class:`NoisyCLIP` (stored beside the weights as JSON)."""

    resolution: int = 32
    """Image side in pixels."""
    channels: int = 16
    """Feature channels at full resolution."""
    multipliers: tuple[int, ...] = (1, 2, 4, 8)
    """Channel multiplier per level; each level after the first halves the image side."""
    text_dim: int = 384
    """Width of the caption embedding (all-MiniLM-L6-v2)."""
    joint_dim: int = 128
    """Width of the shared image-text space."""
    embed_dim: int = 128
    """Width of the timestep + camera embedding that modulates the image tower."""
    azimuth_frequencies: int = 4
    """Fourier frequencies of the camera azimuth."""
    groups: int = 8
    """GroupNorm groups."""

    def __post_init__(self) -> None:
        self.multipliers = tuple(int(m) for m in self.multipliers)


class NoisyCLIP(nn.Module):
    """Image tower ``f(x_t, t, camera)`` and text tower ``g(text)`` into one unit-sphere space.

    Args:
        config: Architecture.
    """

    def __init__(self, config: GuideConfig):
        super().__init__()
        self.config = c = config
        e = c.embed_dim
        self.time_mlp = nn.Sequential(nn.Linear(c.channels, e), nn.SiLU(), nn.Linear(e, e))
        self.camera_mlp = nn.Sequential(nn.Linear(2 * c.azimuth_frequencies + 3, e), nn.SiLU(), nn.Linear(e, e))
        self.stem = nn.Conv2d(3, c.channels, 3, padding=1)
        blocks, ch = [], c.channels
        for level, m in enumerate(c.multipliers):
            blocks.append(ResBlock(ch, c.channels * m, e, c.groups))
            ch = c.channels * m
        self.blocks = nn.ModuleList(blocks)
        self.pools = nn.ModuleList([nn.Conv2d(c.channels * m, c.channels * m, 3, stride=2, padding=1)
                                    for m in c.multipliers[:-1]])
        self.image_head = nn.Sequential(nn.GroupNorm(c.groups, ch), nn.SiLU(), nn.Flatten(),
                                        nn.Linear(ch * (c.resolution >> (len(c.multipliers) - 1)) ** 2, c.joint_dim))
        self.text_head = nn.Sequential(nn.Linear(c.text_dim, 2 * c.joint_dim), nn.SiLU(),
                                       nn.Linear(2 * c.joint_dim, c.joint_dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    @property
    def scale(self) -> Tensor:
        """Inverse temperature :math:`\\tau` of the similarities (learned, at most 100)."""
        return self.log_scale.exp().clamp(max=100.0)

    def encode_images(self, x_t: Tensor, t: Tensor, cameras: Tensor) -> Tensor:
        """Unit vectors ``[N, joint_dim]`` of noisy images ``x_t [N, 3, R, R]`` (pixels in [-1, 1]
        plus noise) at timesteps ``t [N]`` seen from ``cameras [N, 3]`` (elevation, azimuth, distance)."""
        c = self.config
        emb = F.silu(self.time_mlp(timestep_embedding(t, c.channels).to(x_t.dtype))
                     + self.camera_mlp(camera_features(cameras, c.azimuth_frequencies).to(x_t.dtype)))
        h = self.stem(x_t)
        for i, block in enumerate(self.blocks):
            h = block(h, emb)
            if i < len(self.pools):
                h = self.pools[i](h)
        return F.normalize(self.image_head(h), dim=-1)

    def encode_texts(self, text: Tensor) -> Tensor:
        """Unit vectors ``[N, joint_dim]`` of sentence embeddings ``text [N, text_dim]``."""
        return F.normalize(self.text_head(text.to(self.text_head[0].weight.dtype)), dim=-1)

    def contrastive_loss(self, x_t: Tensor, t: Tensor, cameras: Tensor, text: Tensor, same: Tensor) -> Tensor:
        """Symmetric InfoNCE over a batch; ``same [N, N]`` marks pairs that show the same content
        (they are not counted as negatives)."""
        logits = self.scale * self.encode_images(x_t, t, cameras) @ self.encode_texts(text).T
        logits = logits.masked_fill(same & ~torch.eye(len(same), dtype=torch.bool, device=same.device), -1e4)
        target = torch.arange(len(logits), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

    def camera_loss(self, x_t: Tensor, t: Tensor, cameras: Tensor, text: Tensor) -> Tensor:
        """Cross-entropy of picking the camera each image was rendered from (``cameras[:, 0]``)
        among ``cameras [N, K, 3]`` (the others: views of the same object), scored against its
        caption: teaches the image tower which view of an object each camera shows."""
        n, k = cameras.shape[:2]
        images = self.encode_images(x_t.repeat_interleave(k, 0), t.repeat_interleave(k, 0), cameras.reshape(n * k, 3))
        logits = self.scale * (images.view(n, k, -1) * self.encode_texts(text)[:, None]).sum(-1)
        return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long, device=logits.device))

    def guidance_gradient(self, x_t: Tensor, t: Tensor, cameras: Tensor, text: Tensor) -> Tensor:
        """:math:`\\nabla_{x_t} \\tau \\cos(f(x_t), g(y))` ``[N, 3, R, R]`` for ``text [1 or N, text_dim]``;
        zero where the text is the empty ("no caption") embedding."""
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            target = self.encode_texts(text).detach()
            sim = (self.encode_images(x, t, cameras) * target).sum(-1) * self.scale.detach()
            (grad,) = torch.autograd.grad(sim.sum(), x)
        return grad * (text.abs().sum(-1) > 0).to(grad)[:, None, None, None]


@dataclass
class GuideTrainConfig(EngineConfig):
    """How the guidance model is trained (``guide:`` in ``configs/prior.yaml``;
    :mod:`nerfgen.prior.guide_train`): the engine's keys (``max_steps``, ``seed``, ...) and these.
    ``max_steps: 0`` trains none."""

    unused_keys: ClassVar[dict[str, str]] = {
        "eval_every": "the guidance model has no periodic evaluation; 'eval_every' does nothing here"}
    """The engine's keys this run has no use for."""

    model: GuideConfig = dataclasses.field(default_factory=GuideConfig)
    """The network."""
    max_steps: int = 2000
    """Optimisation steps (warm-up over 100, then a cosine decay to 0)."""
    checkpoint_every: int = 500
    """Steps between checkpoints (one is always written at the end)."""
    eval_every: int = 0
    """Always 0: no periodic evaluation (not a key of the config: ``unused_keys``)."""
    batch_size: int = 128
    """Images per step."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    camera_batch: int = 32
    """Images per step (the first of the batch) that also pick their camera among ``camera_candidates``
    views of the same object (:meth:`NoisyCLIP.camera_loss`; 0: off)."""
    camera_candidates: int = 4
    """Views of an object, the right one among them, that ``camera_batch`` images choose from."""
    scale: float = 20.0
    """Default guidance scale written with the weights (what generation and sampling use)."""

    def validate(self, source: str) -> None:
        if self.max_steps > 0 or self.max_seconds > 0:  # max_steps 0: no guidance model
            EngineConfig.validate(self, source)


def guide_path(weights: Path) -> Path:
    """Where the guidance model of the prior weights ``weights`` (``X.safetensors``) lives:
    ``X.guide.safetensors``, its JSON config ``X.guide.json``."""
    return weights.with_suffix(".guide.safetensors")


def save_guide(path: Path, model: NoisyCLIP, info: dict, half: bool = False) -> None:
    """Write the guidance model to ``path`` and its config + ``info`` to ``path.with_suffix('.json')``."""
    write_tensors(path, {k: (v.half() if half else v) for k, v in model.state_dict().items()})
    write_json(path.with_suffix(".json"), {"guide": dataclasses.asdict(model.config), **info})


def load_guide(path: Path) -> tuple[NoisyCLIP, dict]:
    """The guidance model at ``path`` (eval mode, no gradients) and its JSON (``scale``: the default
    guidance scale)."""
    meta = read_json(path.with_suffix(".json"))
    if "guide" not in meta:
        raise ValueError(f"{path.with_suffix('.json')}: expected a guidance model config with a 'guide' entry")
    model = NoisyCLIP(GuideConfig(**meta["guide"]))
    try:
        model.load_state_dict({k: v.float() for k, v in read_tensors(path).items()})
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the architecture in {path.with_suffix('.json')} ({exc})") from exc
    return model.eval().requires_grad_(False), meta
