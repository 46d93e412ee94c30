"""Lego (NeRF-synthetic, 800x800) training benchmark: train for fixed wall-clock budgets, evaluate on
the test views, print one JSON line per budget.

    python bench/lego.py --minutes 5 20 --every 8
    python bench/lego.py --minutes 1 5 --device cuda --config configs/ngp_cuda.yaml   # on a GPU

Fields: minutes, seconds (training time), steps, rays_per_s, samples_per_ray, test PSNR/SSIM,
views evaluated, eval seconds, peak RSS (MB), backend, device (and peak GPU memory on CUDA).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nerfgen.api import reconstruction  # noqa: E402
from nerfgen.ops._backend import get_backend_name  # noqa: E402
from nerfgen.reconstruct.evaluate import evaluate  # noqa: E402


def gpu_figures(device: torch.device) -> dict:
    """The GPU's name and its peak memory, for runs on CUDA."""
    if device.type != "cuda":
        return {"device": "cpu"}
    return {"device": torch.cuda.get_device_name(device),
            "peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "nerf_synthetic" / "lego"))
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 20])
    parser.add_argument("--every", type=int, default=8, help="evaluate every N-th of the 200 test views")
    parser.add_argument("--downscale", type=float, default=1.0)
    parser.add_argument("--config", default="ngp", help="a shipped config by name, or a YAML file")
    parser.add_argument("--output", default=str(REPO / "runs" / "bench"))
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto (CUDA when torch sees a GPU)")
    args = parser.parse_args()
    for minutes in args.minutes:
        out = Path(args.output) / f"lego_{minutes:g}min"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        engine = reconstruction(args.data, out, args.config, max_seconds=minutes * 60, max_steps=10**9,
                                downscale=args.downscale, eval_every=0, device=args.device)
        summary = engine.run()
        rays, samples = summary.totals["rays"], summary.totals["samples"]
        start = time.perf_counter()
        report = evaluate(out, "test", every=args.every, device=args.device)
        print(json.dumps({
            "figure": "lego_train", "minutes": minutes, "seconds": round(summary.seconds, 1), "steps": summary.steps,
            "rays_per_s": round(rays / summary.seconds), "samples_per_ray": round(samples / rays, 1),
            "test_psnr": round(report["psnr"], 3), "test_ssim": round(report["ssim"], 4), "test_views": report["views"],
            "resolution": f"{report['width']}x{report['height']}", "eval_seconds": round(time.perf_counter() - start, 1),
            "render_rays_per_s": round(report["rays_per_second"]),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            **gpu_figures(engine.device), "backend": get_backend_name(), "threads": torch.get_num_threads(),
            "load_average": os.getloadavg()[0],
        }), flush=True)


if __name__ == "__main__":
    main()
