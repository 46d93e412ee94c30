"""Training of the guidance model (the second stage of ``nerfgen prior train``) on the prior's
training set: noisy renders of the object library against their template captions, contrastively,
and each image against other cameras of its object.

It reads the views and caption embeddings of a ``nerfgen prior train`` folder and writes ``model.guide.safetensors`` + ``model.guide.json`` beside the prior's weights, where
:func:`nerfgen.prior.builtin.load_builtin_prior` finds them.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from nerfgen.prior.builtin import TIMESTEPS, cosine_alphas_cumprod
from nerfgen.prior.guide import GuideTrainConfig, NoisyCLIP, guide_path, save_guide
from nerfgen.prior.train import add_noise, sample_batch
from scenes.object_views import ObjectViews


def content_keys(views: ObjectViews) -> np.ndarray:
    """``[n_objects]`` int ids, equal for objects whose caption lists are equal (same content)."""
    keys = ["\n".join(sorted(map(str, row))) for row in views.captions]
    _, ids = np.unique(np.asarray(keys), return_inverse=True)
    return ids


def train_guide(views: ObjectViews, text: torch.Tensor, config: GuideTrainConfig, output: Path,
                report=None) -> NoisyCLIP:
    """Fit :class:`NoisyCLIP` on ``views`` with caption embeddings ``text [n_objects, K, 384]``,
    write it beside the prior's weights in ``output`` and return it. ``report(step, seconds, loss)`` after each step."""
    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed)
    model = NoisyCLIP(config.model)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ab = cosine_alphas_cumprod(TIMESTEPS)
    keys = torch.from_numpy(content_keys(views))
    ids = torch.from_numpy(views.object_ids).long()
    per_object = [torch.nonzero(ids == o)[:, 0] for o in range(int(ids.max()) + 1)]
    several_views = min(len(p) for p in per_object) > 1
    start, running = time.perf_counter(), None
    for step in range(config.steps):
        for group in opt.param_groups:  # warm-up then cosine decay
            group["lr"] = config.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + np.cos(np.pi * step / config.steps))
        batch = sample_batch(views, text, config.batch_size, 0.0, g)
        x_t, t, _ = add_noise(batch.images, ab, g)
        obj = batch.objects
        same = keys[obj][:, None] == keys[obj][None, :]
        loss = model.contrastive_loss(x_t, t, batch.cameras, batch.text, same)
        m = min(config.camera_batch, len(obj)) if several_views else 0
        if m > 0:
            pools = [per_object[o][per_object[o] != i] for o, i in zip(obj[:m].tolist(), batch.indices[:m].tolist())]
            others = [p[torch.randint(0, len(p), (config.camera_candidates - 1,), generator=g)] for p in pools]
            candidates = torch.cat([batch.cameras[:m, None],
                                    torch.from_numpy(views.cameras[torch.stack(others).numpy()]).float()], 1)
            loss = loss + model.camera_loss(x_t[:m], t[:m], candidates, batch.text[:m])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if report is not None:
            report(step + 1, time.perf_counter() - start, running)
    model.eval().requires_grad_(False)
    training = {**dataclasses.asdict(config), "final_loss": round(running, 4), "seconds": round(time.perf_counter() - start, 1)}
    save_guide(guide_path(output / "model.safetensors"), model, {"scale": config.scale, "training": training})
    return model
