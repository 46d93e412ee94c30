"""Data-parallel training on torch.distributed: throughput and the cost of averaging gradients.

    python bench/distributed.py [--steps 300] [--data ../shared/data/nerf_synthetic/lego]
                                [--figures throughput,allreduce,memory]

Prints one JSON line per figure:
- ``throughput``: lego at 1/8 size, ``1 rank x 2 threads`` against ``2 ranks x 1 thread`` (gloo),
  the same rays per step in total (the 1-rank run takes twice the per-step samples).
- ``allreduce``: measured seconds that averaging gradients over 2 gloo ranks (the engine's
  buckets) adds to a backward, for hash tables of 2^13..2^21 entries a level (configs/ngp.yaml:
  2^17; instant-ngp: 2^19; 16 levels x 2 features, float32), fitted to ``alpha + bytes / bandwidth``.
- ``averaging_memory``: peak resident memory of one averaged step on each of 2 gloo ranks, over
  what the process held before it (``VmHWM`` reset through ``/proc/self/clear_refs``), for a
  model of equal layers (``--memory-mb`` of parameters, SGD without state): what averaging
  holds beyond the gradients. Works on any nerfgen with the same Engine API (``PYTHONPATH`` at an
  older tree measures that one).
- ``model``: a ring all-reduce, ``2 (N - 1) / N * bytes / B + 2 (N - 1) * alpha``, for 8 GPUs on
  NVLink and 64 GPUs over InfiniBand, against the step's compute time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEGO = REPO.parent / "shared" / "data" / "nerf_synthetic" / "lego"
LEVELS, FEATURES = 16, 2
LINKS = {  # bus bandwidth (bytes/s) and per-hop latency (s) of a ring all-reduce, as NCCL reports them
    "8 GPUs, NVLink (one node)": (8, 350e9, 10e-6),
    "64 GPUs, InfiniBand 400 Gb/s (8 nodes)": (64, 45e9, 20e-6),
}
GPU_STEP_SECONDS = 0.010
"""What a hash-grid step takes on one GPU (instant-ngp: ~256k samples a step in ~10 ms)."""


def emit(**figure) -> None:
    print(json.dumps(figure), flush=True)


def train(data: str, output: Path, ranks: int, steps: int, samples: int) -> dict:
    """One lego run; its JSON line (rays/s over training time) and wall seconds."""
    common = ["-m", "nerfgen", "train", data, "--output", str(output), "--config", "ngp", "--downscale", "8",
              "--max-steps", str(steps), "--set", "eval_every=0", "--set", "checkpoint_every=0",
              "--set", f"target_samples={samples}", "--device", "cpu"]
    env = dict(os.environ)
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", *common]
        env["OMP_NUM_THREADS"] = "1"
    else:
        cmd = [sys.executable, *common]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    line = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    return {**line, "wall_seconds": round(time.perf_counter() - start, 1)}


def allreduce_worker(out: str) -> None:
    """Under torchrun: for each table size, the seconds that averaging adds to a backward whose
    gradients are a hash table's and an MLP's (:class:`GradientBuckets` against the same backward
    alone, medians of 5); rank 0 writes ``out``."""
    import torch

    from nerfgen import distributed
    from nerfgen.engine.buckets import GradientBuckets

    torch.set_num_threads(1)

    def timed(params, world, averager=None) -> float:
        for p in params:
            p.grad = None
        loss = sum((p * 1.0).sum() for p in params)
        world.barrier()
        start = time.perf_counter()
        if averager is not None:
            averager.begin(params)
        loss.backward()
        if averager is not None:
            averager.finish()
        return time.perf_counter() - start

    with distributed.launched() as world:
        rows = []
        for log2 in range(13, 22, 2):
            params = [torch.nn.Parameter(torch.zeros(LEVELS * 2**log2, FEATURES)), torch.nn.Parameter(torch.zeros(12_000))]
            averager = GradientBuckets(world)
            timed(params, world, averager)  # warm-up: the buckets are allocated
            averaged = sorted(timed(params, world, averager) for _ in range(5))[2]
            alone = sorted(timed(params, world) for _ in range(5))[2]
            rows.append({"log2_table_size": log2, "bytes": 4 * sum(p.numel() for p in params),
                         "seconds": max(averaged - alone, 1e-6), "backward_seconds": alone})
        if world.main:
            Path(out).write_text(json.dumps(rows))


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def memory_worker(out: str, megabytes: int) -> None:
    """Under torchrun: the Engine trains a model of 8 equal layers (``megabytes`` in all) for one
    step (buckets built, gradients allocated), then the peak resident memory of a second step
    over the memory held when it began; rank 0 writes ``out``."""
    import torch

    from nerfgen import distributed
    from nerfgen.engine import Engine, EngineConfig, Schedule, StepResult, Task

    torch.set_num_threads(1)
    rows_per_layer = megabytes * (1 << 20) // 8 // (4 * 1024)

    class Layers(Task):
        name = "layers"

        def build(self, env) -> None:
            self.layers = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(rows_per_layer, 1024))
                                                  for _ in range(8)])
            self.opt = torch.optim.SGD(self.layers.parameters(), lr=0.1)

        def optimizers(self):
            return {"all": (self.opt, Schedule())}

        def step(self, ctx) -> StepResult:
            loss = sum(layer[ctx.step % rows_per_layer].sum() for layer in self.layers)  # sparse use, dense grads
            ctx.optimize("all", loss)
            return StepResult({"loss": loss.detach()})

        def save(self, output, step, seconds) -> None:
            pass

        def load(self, output) -> None:
            pass

    with distributed.launched() as world:
        config = EngineConfig(max_steps=2, checkpoint_every=0, eval_every=0, threads=1, device="cpu")
        engine = Engine(config, Layers(), Path(out).parent / f"memory_run{world.rank}")
        engine.train_step()
        world.barrier()
        Path("/proc/self/clear_refs").write_text("5")  # the peak resident size starts again from now
        before = _status_kb("VmRSS")
        engine.train_step()
        extra = (_status_kb("VmHWM") - before) / 1024
        peaks = world.gather_object(extra)
        if world.main:
            Path(out).write_text(json.dumps({"parameter_mb": megabytes, "peak_extra_mb_per_rank": peaks}))


def fit(rows: list[dict]) -> tuple[float, float]:
    """``seconds = alpha + bytes / bandwidth``: the bandwidth from the two largest sizes, alpha
    what the smallest takes beyond it -> (alpha, bandwidth)."""
    small, big1, big2 = rows[0], rows[-2], rows[-1]
    bandwidth = (big2["bytes"] - big1["bytes"]) / (big2["seconds"] - big1["seconds"])
    return max(0.0, small["seconds"] - small["bytes"] / bandwidth), bandwidth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(LEGO))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--samples", type=int, default=1 << 14, help="target samples a step on each rank")
    parser.add_argument("--work", default="/tmp/nerfgen-bench-distributed")
    parser.add_argument("--figures", default="throughput,allreduce,memory",
                        help="which to measure: throughput (lego, 1 rank and 2), allreduce (and the GPU model), memory")
    parser.add_argument("--ranks", default="1,2", help="the throughput runs' rank counts")
    parser.add_argument("--memory-mb", type=int, default=256, help="parameters of the memory figure's model")
    parser.add_argument("--allreduce-worker", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.allreduce_worker:
        allreduce_worker(args.allreduce_worker)
        return
    if args.memory_worker:
        memory_worker(args.memory_worker, args.memory_mb)
        return
    work = Path(args.work)
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    figures = args.figures.split(",")
    two = None
    if "throughput" in figures:
        for ranks in map(int, args.ranks.split(",")):
            line = train(args.data, work / f"ranks{ranks}", ranks, args.steps, 2 * args.samples // ranks)
            two = line if ranks == 2 else two
            emit(figure="throughput", setup=f"{ranks} rank(s) x {2 // ranks} thread(s)", steps=line["steps"],
                 rays_per_second=line["rays_per_second"], train_seconds=line["seconds"],
                 ms_per_step=round(1000 * line["seconds"] / line["steps"], 1), wall_seconds=line["wall_seconds"],
                 samples_per_ray=line["samples_per_ray"])
    if "memory" in figures:
        out = work / "memory.json"
        worker(["--memory-worker", str(out), "--memory-mb", str(args.memory_mb)])
        emit(figure="averaging_memory", ranks=2, backend="gloo", **json.loads(out.read_text()))
    if "allreduce" in figures:
        allreduce(work, two)


def worker(arguments: list[str]) -> None:
    """This script under torchrun on 2 ranks of one thread each."""
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           __file__, *arguments], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])


def allreduce(work: Path, two: dict | None) -> None:
    """The cost of averaging against table size, fitted; its share of a 2-rank lego step (when
    measured); the ring model for GPUs."""
    out = work / "allreduce.json"
    worker(["--allreduce-worker", str(out)])
    rows = json.loads(out.read_text())
    for row in rows:
        emit(figure="allreduce", ranks=2, backend="gloo", **row,
             gb_per_second=round(row["bytes"] / row["seconds"] / 1e9, 3))
    alpha, bandwidth = fit(rows)
    emit(figure="allreduce_fit", backend="gloo", ranks=2, alpha_seconds=alpha, bandwidth_gb_per_second=bandwidth / 1e9)
    if two is not None:
        cpu_step = two["seconds"] / two["steps"]
        default = next(r for r in rows if r["log2_table_size"] == 17)
        emit(figure="comm_share", setup="2 CPU ranks, gloo", log2_table_size=17, step_seconds=round(cpu_step, 4),
             allreduce_seconds=default["seconds"], share=round(default["seconds"] / cpu_step, 3))
    for label, (n, bus, hop) in LINKS.items():
        for row in rows:
            seconds = 2 * (n - 1) / n * row["bytes"] / bus + 2 * (n - 1) * hop
            emit(figure="model", setup=label, log2_table_size=row["log2_table_size"],
                 mbytes=round(row["bytes"] / 1e6, 1), allreduce_seconds=round(seconds, 5), share_of_gpu_step=round(seconds / GPU_STEP_SECONDS, 3))


if __name__ == "__main__":
    main()
