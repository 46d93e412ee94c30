"""Dynamic scenes on the embedded dynamic scene (scenes/dynamic.py): train each model for a fixed
wall-clock budget, evaluate the test views at their own times, print one JSON line per figure.

    python bench/dynamic.py --minutes 5                       # multi-view: kplanes, deform, static control
    python bench/dynamic.py --minutes 5 --models kplanes --no-static
    python bench/dynamic.py --part monocular --minutes 5      # monocular: with and without scene flow
    python bench/dynamic.py --part kernel                     # the plane kernel against its torch twin

Figures:
- ``multiview_train`` per model: steps, rays/s, samples/ray, test PSNR/SSIM (each view at its
  time), per-time PSNR, the 256x256 render time;
- ``frozen_static``: a static ngp model trained for the same time on the same cameras with the
  scene stopped at one instant (the control: what the dynamic model gives up for time);
- ``skipping`` per model: the trained model's test views rendered through its per-bin grids,
  through their union (one grid for all of time) and with no empty space skipped: samples/ray,
  render rays/s and PSNR;
- ``monocular_train`` (``--part monocular``): novel views at held-out times with and without the
  scene-flow terms, and the 3D flow error against the ground truth.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nerfgen.api import reconstruction  # noqa: E402
from nerfgen.dynamic.evaluate import evaluate_dynamic  # noqa: E402
from nerfgen.kinds import load_run  # noqa: E402
from nerfgen.ops._backend import get_backend_name  # noqa: E402
from nerfgen.reconstruct.evaluate import evaluate  # noqa: E402
from nerfgen.scenes.dynamic_dataset import DynamicConfig, render_dynamic_dataset  # noqa: E402


def rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def train(data: Path, out: Path, config: str, minutes: float, options: dict) -> dict:
    """Train ``config`` on ``data`` for ``minutes``; the run's training figures."""
    if out.exists():
        shutil.rmtree(out)
    engine = reconstruction(data, out, config, max_seconds=minutes * 60, max_steps=10**9, eval_every=0, **options)
    summary = engine.run()
    rays, samples = summary.totals["rays"], summary.totals["samples"]
    return {"steps": summary.steps, "seconds": round(summary.seconds, 1), "rays_per_s": round(rays / summary.seconds),
            "samples_per_ray": round(samples / rays, 1)}


def render_256(run_dir: Path, time_value: float | None) -> float:
    """Seconds to render one 256x256 frame of the run's orbit (the best of three)."""
    run = load_run(run_dir, "cpu")
    cams = run.orbit_cameras(3, 256, 256)
    best = float("inf")
    for i in range(3):
        start = time.perf_counter()
        run.render(cams, i) if time_value is None else run.render(cams, i, time=time_value)
        best = min(best, time.perf_counter() - start)
    return round(best, 3)


def skipping(run_dir: Path) -> list[dict]:
    """The trained model's test views through its per-bin grids, their union and no grid, all
    marched at the per-bin grids' step (a grid mostly occupied would otherwise march coarser)."""
    run = load_run(run_dir, "cpu")
    grid = run.model.sampler
    binaries = grid.binaries.clone()
    step = grid.current_step_size()
    grid.current_step_size = lambda: step
    rows = []
    for name, value in (("per_bin", binaries), ("union", binaries.any(0, keepdim=True).expand_as(binaries)),
                        ("none", torch.ones_like(binaries))):
        grid.binaries.copy_(value)
        counted = []
        original = grid.sample

        def counting(*a, **k):
            s = original(*a, **k)
            counted.append((len(s), s.n_rays))
            return s

        grid.sample = counting
        report = evaluate_dynamic(run, "test", every=2)
        grid.sample = original
        samples = sum(c[0] for c in counted) / max(sum(c[1] for c in counted), 1)
        rows.append({"grid": name, "occupied": round(float(value.float().mean()), 3),
                     "samples_per_ray": round(samples, 1), "render_rays_per_s": round(report["rays_per_second"]),
                     "test_psnr": round(report["psnr"], 3)})
    grid.binaries.copy_(binaries)
    return rows


def multiview(args) -> None:
    size = {"width": args.size, "height": args.size, "times": args.times, "views": args.views}
    data = render_dynamic_dataset(Path(args.output) / "data_multiview", DynamicConfig(variant="multiview", **size))
    frozen = render_dynamic_dataset(Path(args.output) / "data_frozen", DynamicConfig(variant="frozen", **size))
    results = {}
    for model in args.models:
        out = Path(args.output) / f"multiview_{model}"
        figures = train(data, out, model, args.minutes, {})
        report = evaluate(out, "test", device="cpu")
        results[model] = report["psnr"]
        print(json.dumps({"figure": "multiview_train", "model": model, "minutes": args.minutes, **figures,
                          "test_psnr": round(report["psnr"], 3), "test_ssim": round(report["ssim"], 4),
                          "per_time_psnr": [round(t["psnr"], 2) for t in report["per_time"]],
                          "test_views": report["views"], "resolution": f"{report['width']}x{report['height']}",
                          "render_256_s": render_256(out, 0.5), "peak_rss_mb": rss_mb(),
                          "backend": get_backend_name(), "threads": torch.get_num_threads()}), flush=True)
        for row in skipping(out):
            print(json.dumps({"figure": "skipping", "model": model, **row}), flush=True)
    if args.static:
        out = Path(args.output) / "frozen_static"
        figures = train(frozen, out, "ngp", args.minutes, {})
        report = evaluate(out, "test", device="cpu")
        print(json.dumps({"figure": "frozen_static", "model": "ngp", "minutes": args.minutes, **figures,
                          "test_psnr": round(report["psnr"], 3), "test_ssim": round(report["ssim"], 4),
                          "render_256_s": render_256(out, None),
                          "gap_db": {m: round(report["psnr"] - p, 2) for m, p in results.items()}}), flush=True)


NO_FLOW = {"flow": {"temporal": 0.0, "cycle": 0.0, "velocity": 0.0, "flow_l1": 0.0, "dynamic_l1": 0.0}}
"""The scene-flow field trained by the images alone (its flow terms off)."""


def monocular(args) -> None:
    cfg = DynamicConfig(variant="monocular", width=args.size, height=args.size, times=args.times)
    data = render_dynamic_dataset(Path(args.output) / f"data_monocular_{args.times}", cfg)
    runs = [(m, m, {}) for m in args.models if m != "nsff"]
    runs += [("nsff", "nsff", {}), ("nsff_no_flow_terms", "nsff", NO_FLOW)] if "nsff" in args.models else []
    for name, config, options in runs:
        out = Path(args.output) / f"monocular_{name}"
        figures = train(data, out, config, args.minutes, options)
        report = evaluate(out, "test", device="cpu")
        flow = {k: round(v, 4) if isinstance(v, float) else v for k, v in report.get("scene_flow", {}).items()}
        print(json.dumps({"figure": "monocular_train", "model": name, "minutes": args.minutes, **figures,
                          "test_psnr": round(report["psnr"], 3), "test_ssim": round(report["ssim"], 4),
                          "test_views": report["views"], "held_out_times": True, **flow,
                          "render_256_s": render_256(out, 0.5), "peak_rss_mb": rss_mb()}), flush=True)


def kernel(args) -> None:
    """Forward and forward+backward of the plane encoding of ``configs/kplanes.yaml`` (64 x [1, 2, 4]
    in space, 16 in time, 8 features) on 2^16 points: the compiled kernel against its torch twin."""
    from nerfgen.fields.planes import PlaneEncoding
    from nerfgen.ops.planes import plane_encode, plane_encode_torch

    enc = PlaneEncoding(64, [1, 2, 4], 16, 8)
    table, axes, sizes, offsets, levels = enc.table, enc.axes, enc.sizes, enc.offsets, enc.n_levels
    coords = torch.rand(1 << 16, 4)
    for name, op in (("kernel_" + get_backend_name(), plane_encode), ("torch_twin", plane_encode_torch)):
        for backward in (False, True):
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                with torch.set_grad_enabled(backward):
                    out = op(coords, table, axes, sizes, offsets, levels)
                    if backward:
                        out.backward(torch.ones_like(out))
                best = min(best, time.perf_counter() - start)
            print(json.dumps({"figure": "plane_kernel", "backend": name, "pass": "fwd+bwd" if backward else "fwd",
                              "points": coords.shape[0], "ms": round(best * 1000, 2),
                              "m_points_per_s": round(coords.shape[0] / best / 1e6, 2),
                              "threads": torch.get_num_threads()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["multiview", "monocular", "kernel"], default="multiview")
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--models", nargs="+", help="default: kplanes deform (multiview), nsff kplanes (monocular)")
    parser.add_argument("--no-static", dest="static", action="store_false", help="skip the frozen static control")
    parser.add_argument("--size", type=int, default=128, help="image side (default 128)")
    parser.add_argument("--times", type=int, help="training instants (multiview, default 16) or frames (monocular, 60)")
    parser.add_argument("--views", type=int, default=8, help="views per instant (multiview)")
    parser.add_argument("--output", default=str(REPO / "runs" / "bench_dynamic"))
    args = parser.parse_args()
    if args.part == "kernel":
        kernel(args)
    elif args.part == "monocular":
        args.models, args.times = args.models or ["nsff", "kplanes"], args.times or 60
        monocular(args)
    else:
        args.models, args.times = args.models or ["kplanes", "deform"], args.times or 16
        multiview(args)


if __name__ == "__main__":
    main()
