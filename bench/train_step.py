"""Whole training steps on lego, compiled kernels against the pure-torch twins, in one run.

A lego run is first trained for ``--warmup`` steps (so the occupancy grid has carved empty space,
as in a real run) and saved; then each backend resumes that same state in its own process
(``NERFGEN_BACKEND`` is read once per process) and times ``--steps`` identical steps (same seed,
same batches). One JSON line per backend, and one for the compiled kernels with the NGP field's
MLPs in torch's layers (``fused_mlp: false``) beside the fused MLP kernel:

    python bench/train_step.py [--downscale 2 --warmup 300 --steps 20]

Fields: rays/s and samples/s of the timed steps; ``mlp_gflops`` the MLP arithmetic the steps did
(forward hooks on every ``nn.Linear``: 2 FLOPs a multiply-add, backward counted twice the
forward where gradients flow; the fused kernel's calls counted from their rows);
``matmul_gflops`` a 2048x2048 float32 matmul measured in the same process; ``roofline_fraction``
their ratio (the share of the machine's matmul peak that the training step achieves on its MLP
arithmetic; hash encoding, marching and compositing are not counted as FLOPs);
``fma_peak_fraction`` the same share of the fp32 FMA peak (``bench/mlp.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data" / "nerf_synthetic" / "lego"


def _engine(data: str, downscale: float, run: Path, resume: bool):
    from nerfgen.api import reconstruction

    return reconstruction(data, run, "ngp", resume, max_steps=10**9, eval_every=0, checkpoint_every=0,
                          downscale=downscale)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def count_mlp_flops(model: torch.nn.Module) -> list[float]:
    """Counts the MLP FLOPs of ``model`` (an NGP field): calls of the fused networks
    (``ngp_mlp``, ``ngp_density``, whichever backend runs them) and of any ``nn.Linear`` called on
    its own; 2 FLOPs a multiply-add, backward counted twice the forward where gradients flow. The
    returned one-element list accumulates."""
    from nerfgen.fields import ngp

    total = [0.0]

    def linear_hook(module: torch.nn.Linear, inputs, output) -> None:
        rows = inputs[0].reshape(-1, module.in_features).shape[0]
        flops = 2.0 * rows * module.in_features * module.out_features
        total[0] += flops * (3.0 if torch.is_grad_enabled() else 1.0)

    def counted(fn, layers_of):
        def wrapper(enc, *args):
            weights = layers_of(args)
            grad = torch.is_grad_enabled() and any(w.requires_grad for w in weights)
            total[0] += 2.0 * enc.shape[0] * sum(w.shape[0] * w.shape[1] for w in weights) * (3.0 if grad else 1.0)
            return fn(enc, *args)
        return wrapper

    ngp.ngp_mlp = counted(ngp.ngp_mlp, lambda args: args[1])  # (sh, weights, biases, n_density)
    ngp.ngp_density = counted(ngp.ngp_density, lambda args: args[0])  # (weights, biases)
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            m.register_forward_hook(linear_hook)
    return total


def time_steps(data: str, downscale: float, run: Path, steps: int, fused_mlp: bool) -> dict:
    from nerfgen.ops._backend import get_backend_name

    engine = _engine(data, downscale, run, resume=True)
    engine.task.model.field.config.fused_mlp = fused_mlp
    flops = count_mlp_flops(engine.task.model.field)
    engine.train_step()  # warm-up: lazy loading, first-touch allocations
    flops[0] = 0.0
    rays = samples = 0
    start = time.perf_counter()
    for _ in range(steps):
        counts = engine.train_step().counts
        rays, samples = rays + counts["rays"], samples + counts["samples"]
    seconds = time.perf_counter() - start
    peak = matmul_gflops()
    achieved = flops[0] / seconds / 1e9
    sys.path.insert(0, str(REPO / "bench"))
    from mlp import fma_peak  # noqa: E402  (bench/mlp.py)

    fma = fma_peak(torch.get_num_threads())[f"gflops_{torch.get_num_threads()}_threads"]
    return {
        "figure": "train_step", "backend": get_backend_name(), "fused_mlp": engine.task.model.field.fused,
        "steps": steps, "seconds": round(seconds, 2),
        "rays_per_s": round(rays / seconds), "samples_per_s": round(samples / seconds),
        "samples_per_ray": round(samples / rays, 1), "mlp_gflops": round(achieved, 2),
        "matmul_gflops": round(peak, 1), "roofline_fraction": round(achieved / peak, 4),
        "fma_peak_gflops": fma, "fma_peak_fraction": round(achieved / fma, 4),
        "threads": torch.get_num_threads(), "downscale": downscale,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--downscale", type=float, default=2.0)
    parser.add_argument("--warmup", type=int, default=300, help="steps trained before timing")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per backend")
    parser.add_argument("--run", default=str(REPO / "runs" / "bench_train_step"), help="where the warm-up run is kept")
    parser.add_argument("--time-only", choices=["torch", "cpp"], help=argparse.SUPPRESS)
    parser.add_argument("--torch-mlp", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    run = Path(args.run)
    if args.time_only:
        print(json.dumps(time_steps(args.data, args.downscale, run, args.steps, not args.torch_mlp)), flush=True)
        return
    if not (run / "state.json").is_file():
        engine = _engine(args.data, args.downscale, run, resume=False)
        for _ in range(args.warmup):
            engine.train_step()
        engine.save()
    for backend, torch_mlp in (("torch", False), ("cpp", True), ("cpp", False)):
        env = dict(os.environ, NERFGEN_BACKEND=backend)
        cmd = [sys.executable, __file__, "--data", args.data, "--downscale", str(args.downscale), "--steps",
               str(args.steps), "--run", str(run), "--time-only", backend] + (["--torch-mlp"] if torch_mlp else [])
        subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
