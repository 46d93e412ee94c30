"""Randomly initialised diffusers pipelines built from configs, saved as pipeline folders.

No weights can be downloaded here, so the Stable Diffusion and DeepFloyd IF adapters are
exercised on pipelines built from configs (tiny ones in the tests; Stable Diffusion 1.5's full
architecture to time a CPU step) and loaded back through the same code path as real weights.
They score images with random weights: they test plumbing and speed, never quality.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch


def char_vocab(special: list[str], word_end: str = "") -> dict[str, int]:
    """A character-level vocabulary: ``special`` tokens, then letters, digits and ``word_end``
    variants of each (enough for English prompts without a trained BPE)."""
    chars = string.ascii_lowercase + string.digits + ",.'-"
    tokens = special + list(chars) + ([c + word_end for c in chars] if word_end else [])
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}


def _clip_tokenizer():
    from transformers import CLIPTokenizer

    vocab = char_vocab(["<|startoftext|>", "<|endoftext|>"], word_end="</w>")
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def save_random_stable_diffusion(folder: str | Path, full_size: bool = False, seed: int = 0) -> Path:
    """Write a random Stable Diffusion pipeline folder (``model_index.json`` and components).

    Args:
        folder: where to save it.
        full_size: Stable Diffusion 1.5's architecture (860 M UNet, 84 M VAE, 123 M CLIP text
            encoder; 512 px images, 64x64 latents). Otherwise a tiny one (32 px images, 16x16
            latents, about 1 M parameters in all) for tests.
        seed: initialisation seed.
    """
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    if full_size:
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, sample_size=512,
        )
        text = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                              projection_dim=768, hidden_act="quick_gelu", vocab_size=49408, bos_token_id=0,
                              eos_token_id=1, pad_token_id=1)
    else:
        unet = UNet2DConditionModel(
            sample_size=16, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=8, norm_num_groups=8,
        )
        vae = AutoencoderKL(
            block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4, norm_num_groups=8,
            sample_size=32,
        )
        text = CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                              projection_dim=32, vocab_size=128, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, steps_offset=1)
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=CLIPTextModel(text).eval(), tokenizer=_clip_tokenizer(), unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    return Path(folder)


def save_random_deepfloyd_if(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny random DeepFloyd IF stage-I pipeline folder (T5 encoder, pixel-space UNet
    with learned variance, 32 px images) for tests."""
    from diffusers import DDPMScheduler, IFPipeline, UNet2DConditionModel
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    torch.manual_seed(seed)
    tokenizer = T5Tokenizer(vocab=[("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
                            + [(c, -3.0) for c in string.ascii_lowercase + string.digits], extra_ids=0)
    encoder = T5EncoderModel(T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4))
    unet = UNet2DConditionModel(
        sample_size=32, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        in_channels=3, out_channels=6, cross_attention_dim=32, encoder_hid_dim=32, attention_head_dim=8,
        addition_embed_type="text", addition_embed_type_num_heads=2, cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift", act_fn="gelu",
    )
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", variance_type="learned_range", thresholding=True,
                              dynamic_thresholding_ratio=0.95, sample_max_value=1.0)
    pipeline = IFPipeline(tokenizer=tokenizer, text_encoder=encoder.eval(), unet=unet, scheduler=scheduler,
                          safety_checker=None, feature_extractor=None, watermarker=None, requires_safety_checker=False)
    pipeline.save_pretrained(folder)
    return Path(folder)
