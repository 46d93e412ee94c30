"""GAN training figures: train GRAF or GIRAFFE for growing time budgets (resuming the same run)
and after each print one JSON line: steps, seconds per step, KID/FID on the offline encoder
against held-out images, the real-halves floor, sampling speed, peak RSS, (GIRAFFE) the control
figures and, on the embedded sets, the quality gate (objects' count, area, palette colour,
brightness, colour fringes, nearest neighbours; GRAF: colour across 8 azimuths) with its checks;
a sample sheet per budget is written beside the run (and one of real held-out images).

    python bench/gan_train.py --data /work/gan_data/clevr --model giraffe --output /tmp/bench_giraffe
    python bench/gan_train.py --data /work/gan_data/objects32 --model graf --output /tmp/bench_graf
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

from nerfgen.gan.api import gan_training
from nerfgen.gan.controls import control_figures, ground_truth_position_error
from nerfgen.gan.evaluate import EVAL_SEED, evaluate_run
from nerfgen.gan.quality import QualityReference, gate_summary, unavailable
from nerfgen.gan.run import image_grid, write_png


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", choices=["giraffe", "graf"], default="giraffe")
    p.add_argument("--output", required=True)
    p.add_argument("--minutes", default="5,15,30,60", help="training budgets, comma-separated (cumulative)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--count", type=int, default=1000, help="generated images per KID")
    p.add_argument("--quality-count", type=int, default=500, help="generated images the quality gate looks at")
    p.add_argument("--set", action="append", default=[], dest="overrides", help="config KEY=VALUE")
    args = p.parse_args()
    from nerfgen.config import parse_overrides

    out = Path(args.output)
    shutil.rmtree(out, ignore_errors=True)
    options = {"threads": args.threads, "eval_every": 0, **parse_overrides(args.overrides)}
    for i, minutes in enumerate(float(m) for m in args.minutes.split(",")):
        start = time.perf_counter()
        engine = gan_training(None if i else args.data, out, args.model, resume=i > 0,
                              max_seconds=60 * minutes, max_steps=10**7, **options)
        summary = engine.run()
        wall = time.perf_counter() - start
        run = engine.task.live_run(out)
        run.write_sample_sheet(out.parent / f"{out.name}_samples_{int(minutes)}min.png", 64)
        data = engine.task.data
        report = evaluate_run(run, data, args.count)
        if i == 0:
            write_png(out.parent / f"{out.name}_real.png", image_grid(data.images[data.held_out[:64]].numpy()))
            reference = QualityReference(data, args.quality_count) if unavailable(data) is None else None
        line = {"figure": f"gan_{args.model}", "minutes": minutes, "steps": summary.steps,
                "train_seconds": round(summary.seconds, 1), "segment_wall_seconds": round(wall, 1),
                "seconds_per_step": round(summary.seconds / max(summary.steps, 1), 3),
                "images_per_second_trained": round(summary.totals.get("images", 0) / max(summary.seconds, 1e-9), 2),
                "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
                "threads": torch.get_num_threads(), **report}
        if args.model == "giraffe":
            line["controls"] = control_figures(run)
            if i == 0:
                line["controls"].update(ground_truth_position_error(args.data))
        if reference is not None:
            images = run.images(run.codes(args.quality_count, EVAL_SEED))
            quality = reference.report(images, run, views=args.model == "graf")
            line["quality"] = {k: v for k, v in quality.items() if k != "palette"}
            print(gate_summary(quality), file=sys.stderr, flush=True)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
