"""Compiled kernels against their torch twins: one JSON line per figure on stdout.

Hash-grid encoding, forward + backward to the table (the training step), instant-ngp's grid:
16 levels, 2 features, T = 2^19 rows a level, resolutions 16..2048, uniform random points (the
worst case for the cache: ray samples are far more coherent).

    python bench/kernels.py
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 python bench/kernels.py

Fields: ``torch_s`` and ``kernel_s`` are median seconds a call, ``speedup`` their ratio,
``points_per_s`` the kernel's throughput, ``*_fwd_s`` forward alone and ``*_pos_s`` forward
+ backward to the table and the positions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfgen.ops import _backend  # noqa: E402
from nerfgen.ops.hashgrid import hash_grid_encode, hash_grid_encode_torch, level_resolutions, level_strides  # noqa: E402


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-touch allocations, lazy loading
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_hash_grid(n_points: int, repeats: int, n_levels: int = 16, n_features: int = 2, log2_table_size: int = 19):
    res = level_resolutions(n_levels, 16, 2048)
    resolutions = torch.tensor(res, dtype=torch.float32)
    strides = level_strides(res, log2_table_size)
    gen = torch.Generator().manual_seed(0)
    table = (torch.rand(n_levels << log2_table_size, n_features, generator=gen) * 2e-4 - 1e-4).requires_grad_()
    positions = torch.rand(n_points, 3, generator=gen)
    positions_rg = positions.clone().requires_grad_()
    cotangent = torch.randn(n_points, n_levels * n_features, generator=gen)

    def step(encode, pos, wrt):
        out = encode(pos, table, resolutions, strides, log2_table_size)
        return torch.autograd.grad(out, wrt, cotangent)

    figures = {}
    for name, encode in (("torch", hash_grid_encode_torch), ("kernel", hash_grid_encode)):
        figures[f"{name}_s"] = median_seconds(lambda: step(encode, positions, (table,)), repeats)
        with torch.no_grad():
            figures[f"{name}_fwd_s"] = median_seconds(
                lambda: encode(positions, table, resolutions, strides, log2_table_size), repeats
            )
        figures[f"{name}_pos_s"] = median_seconds(lambda: step(encode, positions_rg, (positions_rg, table)), repeats)
    return {
        "bench": "hash_grid_encode fwd+bwd",
        "n_points": n_points,
        "n_levels": n_levels,
        "n_features": n_features,
        "log2_table_size": log2_table_size,
        **{k: round(v, 5) for k, v in figures.items()},
        "speedup": round(figures["torch_s"] / figures["kernel_s"], 2),
        "points_per_s": round(n_points / figures["kernel_s"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1 << 16, 1 << 18], help="numbers of points")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure (median reported)")
    args = parser.parse_args()
    if not _backend.backend_available():
        sys.exit(f"the C++ kernels are unavailable: {_backend.backend_error()}")
    context = {
        "backend": _backend.get_backend_name(),
        "threads": torch.get_num_threads(),
        "allocator": "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "default",
        "torch": torch.__version__,
    }
    for n_points in args.sizes:
        print(json.dumps({**bench_hash_grid(n_points, args.repeats), **context}), flush=True)


if __name__ == "__main__":
    main()
