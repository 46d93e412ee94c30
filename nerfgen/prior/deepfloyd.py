"""DeepFloyd IF stage I as a score-distillation prior (pixel space, 64x64, T5 text encoder).

Weights come from a local diffusers pipeline folder or the Hugging Face cache, never the network
(the model is gated on the hub: accept its licence and download it on a machine with network).
fp16 with attention slicing on CUDA, fp32 on the CPU. Install with ``pip install 'nerfgen[generate]'``
(IF's T5 tokenizer also wants ``sentencepiece`` for the real checkpoint's tokenizer files).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from nerfgen.prior.base import DiffusionPrior, PromptEmbedding, Views
from nerfgen.prior.local_weights import import_diffusers, resolve_pipeline

DEFAULT_MODEL = "DeepFloyd/IF-I-XL-v1.0"
"""The Hugging Face repo id looked up in the local cache when no ``--model`` is given."""
MAX_TOKENS = 77
"""IF's text encoder was trained on prompts of at most 77 tokens."""


class DeepFloydIFPrior(DiffusionPrior):
    """A diffusers ``IFPipeline``'s T5 tokenizer and encoder and its stage-I UNet, frozen.

    Args:
        pipeline: a loaded ``IFPipeline`` (on its device and dtype).
    """

    camera_conditioned = False

    def __init__(self, pipeline) -> None:
        super().__init__()
        from diffusers import DDPMScheduler

        self.tokenizer = pipeline.tokenizer
        self.text_encoder = pipeline.text_encoder.eval().requires_grad_(False)
        self.unet = pipeline.unet.eval().requires_grad_(False)
        self.dtype = self.unet.dtype
        scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.float().to(self.unet.device))
        self.resolution = int(self.unet.config.sample_size)
        self.channels = int(self.unet.config.in_channels)

    @torch.no_grad()
    def _encode_text(self, text: str) -> Tensor:
        """``[1, 77, d]`` T5 hidden states (lower-cased and stripped, as IF's pipeline does)."""
        tokens = self.tokenizer(text.lower().strip(), padding="max_length", max_length=MAX_TOKENS, truncation=True,
                                add_special_tokens=True, return_tensors="pt")
        device = self.unet.device
        return self.text_encoder(tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device))[0]

    def encode_prompt(self, prompt: str, negative_prompt: str = "") -> PromptEmbedding:
        return PromptEmbedding(self._encode_text(prompt), self._encode_text(negative_prompt))

    def encode_images(self, images: Tensor) -> Tensor:
        """``[B, 3, 64, 64]`` in [0, 1] -> pixels in [-1, 1] (IF diffuses pixels)."""
        return images * 2 - 1

    def predict_noise(self, z_t: Tensor, t: Tensor, embeddings: Tensor, views: Views) -> Tensor:
        out = self.unet(z_t.to(self.dtype), t, encoder_hidden_states=embeddings.to(self.dtype)).sample
        return out[:, : self.channels].float()  # the rest is the learned variance


def load_deepfloyd_if(model: str | Path | None = None, device: str = "cpu") -> DeepFloydIFPrior:
    """Load DeepFloyd IF stage I from a folder or the local Hugging Face cache.

    Args:
        model: a diffusers ``IFPipeline`` folder, a cached repo id, or None for :data:`DEFAULT_MODEL`.
        device: ``cpu`` (fp32) or ``cuda[:n]`` (fp16 with attention slicing).

    Raises:
        FileNotFoundError: the weights are not on this machine (the message says where to put them).
        ValueError: the folder holds something that is not an IF stage-I pipeline.
    """
    diffusers = import_diffusers()
    path = resolve_pipeline(model, DEFAULT_MODEL, "DeepFloyd IF stage I")
    cuda = str(device).startswith("cuda")
    try:
        pipeline = diffusers.IFPipeline.from_pretrained(
            path, dtype=torch.float16 if cuda else torch.float32, safety_checker=None, watermarker=None,
            feature_extractor=None, requires_safety_checker=False, local_files_only=True,
        )
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: could not load a DeepFloyd IF stage-I pipeline from it ({exc})") from exc
    if cuda:
        pipeline.enable_attention_slicing()
    return DeepFloydIFPrior(pipeline.to(device))
