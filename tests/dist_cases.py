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
from nerfgen.data.store import PixelBatch
from nerfgen.engine import Engine, EngineConfig, Schedule, StepResult, Task
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
        mine = PixelBatch(cam, pixels.px[part], pixels.py[part], pixels.rgba[part])
        return rays, composite(pixels.rgba[part], bg), bg, cam, mine


class DiesOnRank1(ReconstructionTask):
    """Rank 1 dies (as a killed process would) at step 3."""

    def step(self, ctx):
        if ctx.world.rank == 1 and ctx.step == 3:
            os._exit(3)
        return super().step(ctx)


class Reach(Task):
    """What averaging must get right, in one backward stepping two optimisers: layers every rank
    reaches, a shift of the input only rank 0 reaches, a parameter no rank reaches, a sparse
    embedding whose rows differ between the ranks."""

    name = "reach"

    def build(self, env) -> None:
        torch.manual_seed(0)
        self.layers = torch.nn.Sequential(*[torch.nn.Linear(16, 16) for _ in range(4)])
        self.shift, self.unused = torch.nn.Parameter(torch.zeros(16)), torch.nn.Parameter(torch.zeros(5))
        self.table = torch.nn.Embedding(10, 16, sparse=True)
        self.opt_a = torch.optim.SGD([*self.layers.parameters(), self.unused], lr=0.1)
        self.opt_b = torch.optim.SGD([self.shift, *self.table.parameters()], lr=0.1)

    def named(self) -> dict[str, torch.nn.Parameter]:
        return {**{f"layers.{k}": p for k, p in self.layers.named_parameters()},
                "shift": self.shift, "unused": self.unused, "table": self.table.weight}

    def optimizers(self):
        return {"a": (self.opt_a, Schedule()), "b": (self.opt_b, Schedule())}

    def loss(self, rank: int, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(100 * step + rank)
        x = torch.randn(8, 16, generator=g) + self.table(torch.tensor([1 + rank, 2 + rank])).sum(0)
        return self.layers(x + self.shift if rank == 0 else x).square().mean()

    def step(self, ctx) -> StepResult:
        loss = self.loss(ctx.world.rank, ctx.step)
        ctx.optimize(("a", "b"), loss)
        return StepResult({"loss": loss.detach()})

    def save(self, output, step, seconds) -> None:
        pass

    def load(self, output) -> None:
        pass


def reach(out_dir: Path, world) -> None:
    """Two steps: each rank's own gradients of its batch, then the engine's averaged ones (small
    buckets, so that there are several; the second step's are in the order gradients arrive)."""
    from nerfgen.engine.buckets import GradientBuckets

    cfg = EngineConfig(max_steps=2, checkpoint_every=0, eval_every=0, threads=1, device="cpu")
    task = Reach()
    engine = Engine(cfg, task, out_dir / "run")
    engine.averager = GradientBuckets(world, first_bytes=1024, bucket_bytes=2048)
    tensors = {}
    for step in range(2):
        for p in task.named().values():  # not the engine's averaged ones of the step before
            p.grad = None
        task.loss(world.rank, step).backward()
        tensors.update({f"own{step}.{k}": p.grad.to_dense().clone() for k, p in task.named().items()
                        if p.grad is not None})
        engine.train_step()
        tensors.update({f"avg{step}.{k}": p.grad.clone() for k, p in task.named().items() if p.grad is not None})
        tensors[f"launched_early{step}"] = torch.tensor(engine.averager.launched_early)
    write_tensors(out_dir / f"rank{world.rank}.safetensors", tensors)


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
        if case == "reach":
            return reach(out_dir, world)
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
