"""Cases that run as the ranks of a ``torchrun`` job (``tests/test_distributed.py`` starts them).

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/dist_cases.py CASE DATA OUT

Each rank writes what the test compares into OUT (``rank{r}.safetensors``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from nerfgen import distributed
from nerfgen.config import config_path, load_config
from nerfgen.data import load_dataset
from nerfgen.engine import Engine
from nerfgen.files import write_tensors
from nerfgen.reconstruct import ReconstructionTask, TrainConfig
from nerfgen.reconstruct.task import composite

FULL_BATCH = 512


class FixedBatch(ReconstructionTask):
    """The same ``FULL_BATCH`` pixels every step, split evenly over the ranks, rendered without
    jitter: what one process does with the whole batch, two do with half each."""

    def build(self, env) -> None:
        super().build(env)
        render = self.model.render_rays
        self.model.render_rays = lambda rays, bg, cond=None, stratified=False: render(rays, bg, cond, False)
        self.world = distributed.current()

    def batch(self):
        gen = torch.Generator().manual_seed(123)
        pixels = self.dataset.store.sample(FULL_BATCH, gen)
        rank, size = self.world.rank, self.world.size
        part = slice(rank * FULL_BATCH // size, (rank + 1) * FULL_BATCH // size)
        cam, px, py = pixels.cam[part], pixels.px[part] + 0.5, pixels.py[part] + 0.5
        rays = self.rays(cam, px, py)
        bg = torch.ones(len(cam), 3)
        return rays, composite(pixels.rgba[part], bg), bg, cam


class DiesOnRank1(ReconstructionTask):
    """Rank 1 dies (as a killed process would) at step 3."""

    def step(self, ctx):
        if ctx.world.rank == 1 and ctx.step == 3:
            os._exit(3)
        return super().step(ctx)


def config(**keys) -> TrainConfig:
    """The shipped ngp config, small and quiet."""
    base = {"max_steps": 1, "eval_every": 0, "checkpoint_every": 0, "log_every": 1000, "threads": 1, "device": "cpu",
            "background": "white", "carve": False, "target_samples": 1 << 13}
    return load_config(TrainConfig, config_path("ngp"), {**base, **keys})


def main(case: str, data: str, out: str) -> None:
    out_dir = Path(out)
    with distributed.launched() as world:
        if case == "gan":
            return gan(data, out_dir, world)
        dataset = load_dataset(data, "train")
        if case == "step":
            cfg = config(max_steps=1, lr_warmup_steps=0)
            engine = Engine(cfg, FixedBatch(cfg, dataset), out_dir / "run")
        elif case == "grid":
            cfg = config(max_steps=40, grid={"update_every": 4, "warmup_steps": 0, "cells_per_update": 4096})
            engine = Engine(cfg, ReconstructionTask(cfg, dataset), out_dir / "run")
        elif case == "die":
            cfg = config(max_steps=50)
            engine = Engine(cfg, DiesOnRank1(cfg, dataset), out_dir / "run")
        else:
            raise ValueError(f"unknown case {case!r}")
        model = engine.task.model
        start = {f"init.{k}": v.detach().clone() for k, v in model.named_parameters()}
        engine.run()
        tensors = {**start, **{f"param.{k}": v.detach() for k, v in model.named_parameters()}}
        tensors.update({f"grid.{k}": v for k, v in model.sampler.state_dict().items()})
        write_tensors(out_dir / f"rank{world.rank}.safetensors", {k: v.contiguous() for k, v in tensors.items()})


def gan(data: str, out_dir: Path, world) -> None:
    """A tiny GIRAFFE, 4 steps: what each rank holds after."""
    from nerfgen.gan.data import ImageCollection
    from nerfgen.gan.task import GanTask
    from tests.test_gan import tiny_config

    cfg = tiny_config(threads=1, device="cpu")
    task = GanTask(cfg, ImageCollection.from_folder(data, cfg.size, cfg.held_out), data)
    engine = Engine(cfg, task, out_dir / "run")
    start = {f"init.{k}": v.detach().clone() for k, v in task.generator.named_parameters()}
    engine.run()
    tensors = {**start, **{f"param.generator.{k}": v.detach() for k, v in task.generator.named_parameters()},
               **{f"param.discriminator.{k}": v.detach() for k, v in task.discriminator.named_parameters()}}
    write_tensors(out_dir / f"rank{world.rank}.safetensors", {k: v.contiguous() for k, v in tensors.items()})


if __name__ == "__main__":
    main(*sys.argv[1:4])
