"""Compiled kernels against their torch twins: one JSON line per figure on stdout.

1. Hash-grid encoding, forward + backward to the table (the training step), instant-ngp's grid:
   16 levels, 2 features, T = 2^19 rows a level, resolutions 16..2048, uniform random points
   (the worst case for the cache: ray samples are far more coherent).
2. Marching + compositing (forward and backward) of 2^16 rays from lego's test cameras through
   lego's occupancy grid: the one of a trained run (``--run``), else the visual hull of the
   training masks, densities and colours drawn at random.

    python bench/kernels.py [--run runs/lego]
    python bench/kernels.py --save-problem lego_march.safetensors   # the march problem, for a GPU machine
    python bench/kernels.py --device cuda --problem lego_march.safetensors --sizes 65536 262144 1048576

Fields: ``torch_s`` and ``kernel_s`` are median seconds a call, ``speedup`` their ratio,
``points_per_s`` the kernel's throughput, ``*_fwd_s`` forward alone and ``*_pos_s`` forward
+ backward to the table and the positions; marching adds ``march_*_s`` / ``composite_*_s`` for
the two stages, ``samples`` kept and ``rays_per_s`` of the kernels. ``--device cuda`` runs both
sides on the GPU (CUDA kernels against the torch twin on CUDA; timings synchronise the device).
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

from nerfgen.ops import _backend, traverse_grids, traverse_grids_torch, volume_render, volume_render_torch  # noqa: E402
from nerfgen.ops.hashgrid import hash_grid_encode, hash_grid_encode_torch, level_resolutions, level_strides  # noqa: E402


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_initialized() else (lambda: None)
    fn()  # warm-up: first-touch allocations, lazy loading
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_hash_grid(n_points: int, repeats: int, device: torch.device, n_levels: int = 16, n_features: int = 2,
                    log2_table_size: int = 19):
    res = level_resolutions(n_levels, 16, 2048)
    resolutions = torch.tensor(res, dtype=torch.float32, device=device)
    strides = level_strides(res, log2_table_size).to(device)
    gen = torch.Generator().manual_seed(0)
    table = (torch.rand(n_levels << log2_table_size, n_features, generator=gen) * 2e-4 - 1e-4).to(device).requires_grad_()
    positions = torch.rand(n_points, 3, generator=gen).to(device)
    positions_rg = positions.clone().requires_grad_()
    cotangent = torch.randn(n_points, n_levels * n_features, generator=gen).to(device)

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


def lego_grid(data: Path, run: str | None):
    """Lego's occupancy grid (trained, or the visual hull of its masks) and its test cameras."""
    from nerfgen.data import load_dataset
    from nerfgen.render import OccupancyGrid
    from nerfgen.render.carving import visual_hull

    test = load_dataset(data, "test", downscale=1)
    if run is not None:
        from nerfgen.kinds import load_run

        return load_run(run, "cpu").model.sampler, test
    train = load_dataset(data, "train", downscale=4)
    grid = OccupancyGrid(train.aabb, train.cascades)
    alphas = train.images[..., 3]
    grid.restrict(lambda c, size: visual_hull(c, size, train.cameras, alphas))
    return grid, test


def lego_march_problem(data: Path, run: str | None, n_rays: int) -> tuple[dict, dict]:
    """2^16 rays through random pixels of lego's test views and the grid they march through."""
    from nerfgen.cameras import pixel_rays

    est, test = lego_grid(data, run)
    gen = torch.Generator().manual_seed(0)
    cams = test.cameras
    cam = torch.randint(0, len(cams), (n_rays,), generator=gen)
    px, py = torch.rand(n_rays, generator=gen) * cams.width, torch.rand(n_rays, generator=gen) * cams.height
    rays = pixel_rays(cams, cam, px, py)
    tensors = {"origins": rays.origins.contiguous(), "directions": rays.directions.contiguous(),
               "binaries": est.binaries.contiguous(), "aabbs": est.aabbs.contiguous()}
    meta = {"grid": "trained run" if run else "visual hull", "near_plane": est.config.near_plane,
            "step_size": est.step_size, "cone_angle": est.cone_angle, "early_stop_eps": est.config.early_stop_eps,
            "group": max(1, int(est.cell_size(0) / (2 * est.step_size))), "occupancy": est.occupancy_fraction()}
    return tensors, meta


def save_problem(path: Path, tensors: dict, meta: dict) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
    tmp.replace(path)


def load_problem(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
    return load_file(str(path)), meta


def bench_march_composite(tensors: dict, meta: dict, repeats: int, device: torch.device) -> dict:
    t = {k: v.to(device) for k, v in tensors.items()}
    n_rays = t["origins"].shape[0]
    args = (t["origins"], t["directions"], t["binaries"], t["aabbs"], meta["near_plane"], 1e10, meta["step_size"],
            meta["cone_angle"])
    samples = traverse_grids(*args)
    n = len(samples)
    gen = torch.Generator().manual_seed(0)
    sigmas = (torch.rand(n, generator=gen) * 40).to(device).requires_grad_()
    colors = torch.rand(n, 3, generator=gen).to(device).requires_grad_()
    cot = torch.randn(n_rays, 3, generator=gen).to(device)

    def composite(fn):
        out = fn(samples.t_starts, samples.t_ends, sigmas, colors, samples.ray_indices, n_rays, meta["early_stop_eps"])
        torch.autograd.grad((out.color * cot).sum() + out.opacity.sum(), (sigmas, colors))

    figures = {
        "march_torch_s": median_seconds(lambda: traverse_grids_torch(*args), repeats),
        "march_torch_grouped_s": median_seconds(lambda: traverse_grids_torch(*args, None, meta["group"]), repeats),
        "march_kernel_s": median_seconds(lambda: traverse_grids(*args), repeats),
        "composite_torch_s": median_seconds(lambda: composite(volume_render_torch), repeats),
        "composite_kernel_s": median_seconds(lambda: composite(volume_render), repeats),
    }
    torch_s = figures["march_torch_s"] + figures["composite_torch_s"]
    kernel_s = figures["march_kernel_s"] + figures["composite_kernel_s"]
    return {
        "bench": "march + composite fwd+bwd (lego grid)",
        "grid": meta["grid"],
        "n_rays": n_rays, "samples": n, "occupancy": round(meta["occupancy"], 4),
        **{k: round(v, 6) for k, v in figures.items()},
        "torch_s": round(torch_s, 6), "kernel_s": round(kernel_s, 6), "speedup": round(torch_s / kernel_s, 2),
        "speedup_vs_grouped_twin": round((figures["march_torch_grouped_s"] + figures["composite_torch_s"]) / kernel_s, 2),
        "rays_per_s": round(n_rays / kernel_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1 << 16, 1 << 18], help="numbers of points")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure (median reported)")
    parser.add_argument("--rays", type=int, default=1 << 16, help="rays marched and composited")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "nerf_synthetic" / "lego"))
    parser.add_argument("--run", help="a trained lego run whose occupancy grid to march (default: the visual hull)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda: where both the kernels and the twins run")
    parser.add_argument("--problem", type=Path, help="march these rays and grid (from --save-problem) instead of lego's")
    parser.add_argument("--save-problem", type=Path, help="write lego's march problem (rays, grid) to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if not _backend.backend_available(device):
        sys.exit(f"the compiled kernels do not serve {device}: {_backend.backend_error()}")
    if device.type == "cuda":
        torch.cuda.init()
    context = {
        "backend": _backend.get_backend_name(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "allocator": "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "default",
        "torch": torch.__version__,
    }
    if args.problem is not None:
        problem = load_problem(args.problem)
    else:
        problem = lego_march_problem(Path(args.data), args.run, args.rays)
    if args.save_problem is not None:
        save_problem(args.save_problem, *problem)
    for n_points in args.sizes:
        print(json.dumps({**bench_hash_grid(n_points, args.repeats, device), **context}), flush=True)
    print(json.dumps({**bench_march_composite(*problem, args.repeats, device), **context}), flush=True)


if __name__ == "__main__":
    main()
