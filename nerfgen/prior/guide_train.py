"""Training of the guidance model (the second stage of ``nerfgen prior train``, a :class:`Task`) on
the prior's training set: noisy renders of the object library against their template captions,
contrastively, and each image against other cameras of its object.

It reads the views and caption embeddings of a ``nerfgen prior train`` folder; its run (checkpoints
included) is ``guide/`` in that folder, and when it ends its weights, ``model.guide.safetensors`` +
``model.guide.json``, are put beside the prior's, where
:func:`nerfgen.prior.builtin.load_builtin_prior` finds them.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import torch

from nerfgen.engine import Engine, Env, Schedule, StepContext, StepResult, Task
from nerfgen.files import atomic_write
from nerfgen.prior.builtin import TIMESTEPS, cosine_alphas_cumprod
from nerfgen.prior.guide import GuideTrainConfig, NoisyCLIP, guide_path, load_guide, save_guide
from nerfgen.prior.train import add_noise, sample_batch
from nerfgen.scenes.object_views import ObjectViews

WARMUP_STEPS = 100
"""Steps of linear learning-rate warm-up."""


def content_keys(views: ObjectViews) -> np.ndarray:
    """``[n_objects]`` int ids, equal for objects whose caption lists are equal (same content)."""
    keys = ["\n".join(sorted(map(str, row))) for row in views.captions]
    _, ids = np.unique(np.asarray(keys), return_inverse=True)
    return ids


class GuideTask(Task):
    """Fits :class:`NoisyCLIP` on ``views`` with caption embeddings ``text [n_objects, K, 384]``.

    Args:
        config: the run's settings.
        views: the rendered training set.
        text: caption embeddings.
        weights_dir: the prior's folder; the model is written beside its ``model.safetensors``.
    """

    name = "guide"

    def __init__(self, config: GuideTrainConfig, views: ObjectViews, text: torch.Tensor, weights_dir: Path) -> None:
        self.config, self.views, self.text = config, views, text
        self.path = guide_path(Path(weights_dir) / "model.safetensors")
        self.file = self.path.name  # its name in the guide's own run and checkpoints
        self.running: torch.Tensor | float | None = None  # smoothed loss: a tensor until a checkpoint reads it
        self.keys = torch.from_numpy(content_keys(views))
        ids = torch.from_numpy(views.object_ids).long()
        self.per_object = [torch.nonzero(ids == o)[:, 0] for o in range(int(ids.max()) + 1)]
        self.several_views = min(len(p) for p in self.per_object) > 1

    def build(self, env: Env) -> None:
        self.generator, self.device, self.output = env.generator, env.device, env.output
        self.model = NoisyCLIP(self.config.model).to(env.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.lr,
                                           weight_decay=self.config.weight_decay)
        self.alphas_cumprod = cosine_alphas_cumprod(TIMESTEPS).to(env.device)

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, Schedule]]:
        return {"guide": (self.optimizer, Schedule(WARMUP_STEPS, kind="cosine"))}

    def step(self, ctx: StepContext) -> StepResult:
        c, g = self.config, self.generator
        batch = sample_batch(self.views, self.text, c.batch_size, 0.0, g).to(self.device)
        x_t, t, _ = add_noise(batch.images, self.alphas_cumprod, g)
        obj = batch.objects
        same = (self.keys[obj][:, None] == self.keys[obj][None, :]).to(self.device)
        loss = self.model.contrastive_loss(x_t, t, batch.cameras, batch.text, same)
        m = min(c.camera_batch, len(obj)) if self.several_views else 0
        if m > 0:
            pools = [self.per_object[o][self.per_object[o] != i] for o, i in zip(obj[:m].tolist(), batch.indices[:m].tolist())]
            others = [p[torch.randint(0, len(p), (c.camera_candidates - 1,), generator=g)] for p in pools]
            candidates = torch.cat([batch.cameras[:m, None], torch.from_numpy(
                self.views.cameras[torch.stack(others).numpy()]).float().to(self.device)], 1)
            loss = loss + self.model.camera_loss(x_t[:m], t[:m], candidates, batch.text[:m])
        ctx.optimize("guide", loss)
        value = loss.detach()
        self.running = value if self.running is None else 0.98 * self.running + 0.02 * value
        return StepResult({"loss": self.running}, {"images": c.batch_size})

    def save(self, output: Path, step: int, seconds: float) -> None:
        final = round(float(self.running), 4) if self.running is not None else 0.0
        training = {**dataclasses.asdict(self.config), "final_loss": final, "seconds": round(seconds, 1)}
        save_guide(Path(output) / self.file, self.model, {"scale": self.config.scale, "training": training})

    def load(self, output: Path) -> None:
        self.model.load_state_dict(load_guide(Path(output) / self.file)[0].state_dict())

    def finish(self, step: int) -> None:
        """Put the weights beside the prior's (from the run's last checkpoint, mirrored at its top)."""
        for source in (self.output / self.file, (self.output / self.file).with_suffix(".json")):
            target = self.path.parent / source.name
            atomic_write(target, lambda tmp, source=source: shutil.copyfile(source, tmp))

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        return {}, {"running": None if self.running is None else float(self.running)}

    def load_state(self, tensors: dict[str, torch.Tensor], values: dict) -> None:
        self.running = values["running"]


def train_guide(views: ObjectViews, text: torch.Tensor, config: GuideTrainConfig, output: Path,
                resume: bool = False, hooks=()) -> NoisyCLIP:
    """Train the guidance model of the prior in ``output`` (checkpoints in ``output/guide``) and
    return it (eval mode, no gradients)."""
    task = GuideTask(config, views, text, output)
    Engine(config, task, Path(output) / "guide", resume=resume).run(hooks)
    return task.model.eval().requires_grad_(False)
