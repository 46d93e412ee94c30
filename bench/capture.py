"""Real-capture training benchmark: train on a capture for wall-clock budgets (or a step count),
evaluate its held-out views, print one JSON line per run.

    python bench/capture.py ../shared/data/llff_horns --minutes 5 20                  # config picked from the cameras
    python bench/capture.py ../shared/data/fox --minutes 5 --config ngp --downscale 4
    python bench/capture.py runs/horns_points --minutes 2 --set train_views=5 --set depth.weight=0.1

``--set key=value`` overrides a config key (a dotted key sets one key of a nested section; values
are read as YAML). Fields: data, config, minutes, seconds, steps, rays/s, samples per ray, test
PSNR/SSIM, views, resolution, peak RSS (MB), and the overrides.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nerfgen.api import reconstruction  # noqa: E402
from nerfgen.config import parse_overrides  # noqa: E402
from nerfgen.reconstruct.evaluate import evaluate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--minutes", type=float, nargs="+", default=[5])
    parser.add_argument("--steps", type=int, default=0, help="a step budget instead of minutes")
    parser.add_argument("--config", default="auto")
    parser.add_argument("--downscale", type=float, default=1.0)
    parser.add_argument("--every", type=int, default=1, help="evaluate every N-th held-out view")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output", default=str(REPO / "runs" / "bench"))
    parser.add_argument("--label", default="", help="a name for this run in the JSON line")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    extra = parse_overrides(args.set)
    for minutes in args.minutes if not args.steps else [0]:
        out = Path(args.output) / f"{Path(args.data).name}_{args.label or args.config}_{minutes:g}min"
        shutil.rmtree(out, ignore_errors=True)
        budget = {"max_steps": args.steps} if args.steps else {"max_seconds": minutes * 60, "max_steps": 10**9}
        engine = reconstruction(args.data, out, args.config, downscale=args.downscale, eval_every=0,
                                checkpoint_every=0, **budget, **extra)
        summary = engine.run()
        rays, samples = summary.totals["rays"], summary.totals["samples"]
        start = time.perf_counter()
        report = evaluate(out, "test", every=args.every)
        print(json.dumps({
            "figure": "capture_train", "data": Path(args.data).name, "label": args.label, "config": args.config,
            "minutes": minutes, "seconds": round(summary.seconds, 1), "steps": summary.steps,
            "rays_per_s": round(rays / summary.seconds), "samples_per_ray": round(samples / rays, 1),
            "test_psnr": round(report["psnr"], 3), "test_ssim": round(report["ssim"], 4), "test_views": report["views"],
            "resolution": f"{report['width']}x{report['height']}", "eval_seconds": round(time.perf_counter() - start, 1),
            "train_images": len(engine.task.dataset),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "overrides": extra, "model": {"sampler": engine.task.spec.sampler, "ndc": engine.task.spec.ndc.enabled,
                                          "contraction": engine.task.spec.contraction},
        }), flush=True)


if __name__ == "__main__":
    main()
