"""The config of a prior training run (``configs/prior.yaml`` maps onto it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from nerfgen.engine import EngineConfig
from nerfgen.prior.guide import GuideTrainConfig
from nerfgen.prior.unet import UNetConfig
from nerfgen.scenes.object_views import ObjectViewsConfig


@dataclass
class PriorTrainConfig(EngineConfig):
    """Everything that decides a prior training run (``configs/prior.yaml`` maps onto it): the
    engine's keys (``max_steps``, ``max_seconds``, ``seed`` of the batches, timesteps and noise,
    ``threads``) and these."""

    unused_keys: ClassVar[dict[str, str]] = {
        "eval_every": "prior training has no periodic evaluation; 'eval_every' does nothing here"}
    """The engine's keys this run has no use for."""

    max_steps: int = 3500
    """Optimisation steps."""
    checkpoint_every: int = 250
    """Steps between checkpoints (one is always written at the end)."""
    eval_every: int = 0
    """Always 0: no periodic evaluation (not a key of the config: ``unused_keys``)."""
    threads: int = 2
    """CPU threads for torch."""
    views: ObjectViewsConfig = field(default_factory=ObjectViewsConfig)
    """The rendered training set (it has its own seed)."""
    unet: UNetConfig = field(default_factory=UNetConfig)
    """The network."""
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
    guide: GuideTrainConfig = field(default_factory=GuideTrainConfig)
    """The noisy image-text guidance model trained after the network (``guide.max_steps: 0``: none)."""
