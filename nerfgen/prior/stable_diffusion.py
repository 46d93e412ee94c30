"""Stable Diffusion 1.x / 2.x as a score-distillation prior (latent space, through the VAE).

Weights come from a local diffusers pipeline folder or the Hugging Face cache, never the network.
fp16 with attention slicing on CUDA, fp32 on the CPU. ``v_prediction`` checkpoints (SD 2.x at
768 px) are turned into noise predictions, so :meth:`DiffusionPrior.sds_loss` sees epsilon always.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from nerfgen.prior.base import DiffusionPrior, PromptEmbedding, Views
from nerfgen.prior.local_weights import import_diffusers, resolve_pipeline

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
"""The Hugging Face repo id looked up in the local cache when no ``--model`` is given."""


def eps_from_v(v: Tensor, z_t: Tensor, alpha_bar: Tensor) -> Tensor:
    r"""Noise from a v-prediction: :math:`\epsilon = \sqrt{\bar\alpha}\, v + \sqrt{1-\bar\alpha}\, z_t`.

    Args:
        v: ``[N, C, h, w]`` predicted velocity.
        z_t: ``[N, C, h, w]`` the noisy input.
        alpha_bar: ``[N, 1, 1, 1]``.
    """
    return alpha_bar.sqrt() * v + (1 - alpha_bar).sqrt() * z_t


class StableDiffusionPrior(DiffusionPrior):
    """A diffusers ``StableDiffusionPipeline``'s tokenizer, text encoder, VAE and UNet, frozen.

    Args:
        pipeline: a loaded ``StableDiffusionPipeline`` (on its device and dtype).
    """

    camera_conditioned = False

    def __init__(self, pipeline) -> None:
        super().__init__()
        from diffusers import DDPMScheduler

        self.tokenizer = pipeline.tokenizer
        self.text_encoder = pipeline.text_encoder.eval().requires_grad_(False)
        self.vae = pipeline.vae.eval().requires_grad_(False)
        self.unet = pipeline.unet.eval().requires_grad_(False)
        self.dtype = self.unet.dtype
        scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)  # the training noise schedule
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.float().to(self.unet.device))
        self.v_prediction = scheduler.config.prediction_type == "v_prediction"
        self.latent_scale = float(self.vae.config.scaling_factor)
        self.resolution = int(self.unet.config.sample_size) * int(pipeline.vae_scale_factor)

    @torch.no_grad()
    def _encode_text(self, text: str) -> Tensor:
        """``[1, n_tokens, d]`` CLIP hidden states of ``text`` padded to the tokenizer's length."""
        ids = self.tokenizer(text, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        return self.text_encoder(ids.to(self.unet.device))[0]

    def encode_prompt(self, prompt: str, negative_prompt: str = "") -> PromptEmbedding:
        return PromptEmbedding(self._encode_text(prompt), self._encode_text(negative_prompt))

    def encode_images(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in [0, 1] (``H = W =`` :attr:`resolution`) -> scaled VAE latents
        ``[B, 4, H/8, W/8]`` (the posterior mean), differentiable."""
        x = images.to(self.dtype) * 2 - 1
        return self.vae.encode(x).latent_dist.mean * self.latent_scale

    def predict_noise(self, z_t: Tensor, t: Tensor, embeddings: Tensor, views: Views) -> Tensor:
        out = self.unet(z_t.to(self.dtype), t, encoder_hidden_states=embeddings.to(self.dtype)).sample.float()
        if self.v_prediction:
            out = eps_from_v(out, z_t.float(), self.alphas_cumprod[t].view(-1, 1, 1, 1))
        return out


def load_stable_diffusion(model: str | Path | None = None, device: str = "cpu") -> StableDiffusionPrior:
    """Load a Stable Diffusion pipeline from a folder or the local Hugging Face cache.

    Args:
        model: a diffusers pipeline folder, a cached repo id, or None for :data:`DEFAULT_MODEL`.
        device: ``cpu`` (fp32) or ``cuda[:n]`` (fp16 with attention slicing).

    Raises:
        FileNotFoundError: the weights are not on this machine (the message says where to put them).
        ValueError: the folder holds something that is not a Stable Diffusion pipeline.
    """
    diffusers = import_diffusers()
    path = resolve_pipeline(model, DEFAULT_MODEL, "Stable Diffusion")
    cuda = str(device).startswith("cuda")
    try:
        pipeline = diffusers.StableDiffusionPipeline.from_pretrained(
            path, dtype=torch.float16 if cuda else torch.float32, safety_checker=None,
            requires_safety_checker=False, local_files_only=True,
        )
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: could not load a Stable Diffusion pipeline from it ({exc})") from exc
    if cuda:
        pipeline.enable_attention_slicing()
    return StableDiffusionPrior(pipeline.to(device))
