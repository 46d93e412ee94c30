"""Evaluation of a generalizable run on held-out captures: each capture's first ``K`` training
views are the source views, its ``test`` views the targets; PSNR and SSIM of the targets rendered
with no per-scene training (``nerfgen generalize eval``)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from nerfgen.engine.metrics import psnr, ssim
from nerfgen.generalize.sources import SourceViews


def evaluate_capture(run, capture: str | Path, k: int, views: int = 0, sources: list[int] | None = None,
                     downscale: float = 1.0) -> dict:
    """PSNR / SSIM of ``capture``'s test views rendered from ``k`` of its training views (the first
    ``k``, or ``sources``), at most ``views`` of them (0: all)."""
    from nerfgen.data import load_dataset

    train = load_dataset(capture, "train", downscale=downscale)
    test = load_dataset(capture, "test", downscale=downscale)
    chosen = list(range(k)) if sources is None else list(sources)
    run.use_sources(SourceViews.from_dataset(train, chosen, run.background), orbit=False)
    bg = run.background
    scores, ssims = [], []
    count = len(test) if views <= 0 else min(views, len(test))
    for i in range(count):
        image = run.render(test.camera(i), 0)
        rgba = test.image(i).float() / 255
        truth = rgba[..., :3] * rgba[..., 3:] + bg * (1 - rgba[..., 3:])
        scores.append(psnr(image.rgb, truth))
        ssims.append(ssim(image.rgb.clamp(0, 1), truth))
    return {"capture": str(capture), "sources": chosen, "views": count, "psnr": sum(scores) / count,
            "ssim": sum(ssims) / count}


def evaluate_scenes(run, captures: list[Path], k: int, views: int = 0) -> dict:
    """:func:`evaluate_capture` over ``captures``: mean PSNR / SSIM and each capture's figures."""
    start = time.perf_counter()
    with torch.no_grad():
        scenes = [evaluate_capture(run, c, k, views) for c in captures]
    n = len(scenes)
    return {"k": k, "scenes": n, "psnr": sum(s["psnr"] for s in scenes) / n, "ssim": sum(s["ssim"] for s in scenes) / n,
            "seconds": time.perf_counter() - start, "per_scene": scenes}


__all__ = ["evaluate_capture", "evaluate_scenes"]
