"""How good a GAN run's samples are: KID and FID of generated images against held-out real ones,
on the features of the offline encoder (always; not comparable to published numbers) or of a
local FID Inception weight file (comparable), with the floor the real set itself gives: the same
figure between two disjoint halves of real images."""

from __future__ import annotations

import time

import torch
from torch import Tensor

from nerfgen.gan.data import ImageCollection
from nerfgen.gan.encoders import Encoder, load_encoder
from nerfgen.gan.metrics import features, fid, kid

EVAL_SEED = 12345
"""Seed of the generated scenes every evaluation scores (the same scenes at every step)."""
KID_SUBSETS = 50


def _kid(real: Tensor, fake: Tensor) -> tuple[float, float]:
    size = min(1000, real.shape[0], fake.shape[0])
    return kid(real, fake, subsets=KID_SUBSETS, subset_size=size, generator=torch.Generator().manual_seed(0))


def real_features(encoder: Encoder, data: ImageCollection, indices: Tensor) -> Tensor:
    """Encoder features of the real images at ``indices``."""
    return features(encoder, (data.images_at(indices) + 1) * 0.5)


def images_kid(images: Tensor, data: ImageCollection, real: Tensor | None = None,
               encoder: Encoder | None = None) -> tuple[float, Tensor]:
    """KID (offline encoder unless given) of generated ``images [N, 3, S, S]`` in [0, 1] against the
    held-out images; returns it and the held-out features (pass them back to skip re-encoding)."""
    encoder = encoder or load_encoder(None)
    real = real_features(encoder, data, data.held_out) if real is None else real
    return _kid(real, features(encoder, images))[0], real


def generated_kid(run, data: ImageCollection, count: int, real: Tensor | None = None,
                  encoder: Encoder | None = None) -> tuple[float, Tensor]:
    """:func:`images_kid` of ``count`` samples of ``run`` (the evaluation scenes)."""
    return images_kid(run.images(run.codes(count, EVAL_SEED)), data, real, encoder)


def evaluate_run(run, data: ImageCollection, count: int = 1000, encoder_path: str | None = None) -> dict:
    """KID (mean and std over subsets) and FID of ``count`` samples against the held-out images,
    the same between two disjoint halves of the real images (the floor), sampling speed.

    Args:
        run: a :class:`~nerfgen.gan.run.GanRun`.
        data: the run's image collection (at the run's size).
        count: generated images (and at most this many real ones per half).
        encoder_path: a local FID Inception weight file; None: the offline encoder only.
    """
    results: dict = {"images": count, "held_out": int(data.held_out.numel())}
    start = time.perf_counter()
    fake_images = run.images(run.codes(count, EVAL_SEED))
    seconds = time.perf_counter() - start
    results["sampling_images_per_s"] = count / seconds
    encoders = [load_encoder(None)] + ([load_encoder(encoder_path)] if encoder_path else [])
    gen = torch.Generator().manual_seed(EVAL_SEED)
    everything = torch.randperm(len(data), generator=gen)
    half = min(count, len(data) // 2)
    for encoder in encoders:
        real = real_features(encoder, data, data.held_out)
        fake = features(encoder, fake_images)
        a = real_features(encoder, data, everything[:half])
        b = real_features(encoder, data, everything[half:2 * half])
        kid_mean, kid_std = _kid(real, fake)
        floor_mean, floor_std = _kid(a, b)
        results[encoder.name] = {
            "comparable_to_published": bool(encoder.comparable),
            "kid": kid_mean, "kid_std": kid_std, "fid": fid(real, fake),
            "real_halves_kid": floor_mean, "real_halves_kid_std": floor_std, "real_halves_fid": fid(a, b),
            "real_half_images": half,
        }
    return results
