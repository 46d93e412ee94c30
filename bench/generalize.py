"""Generalizable fields on held-out shapes and colours, against per-scene NeRFs on the same views.

For held-out procedural scenes (shapes and colours no training scene holds; 3 source views spread
around each, 7 random target views, 64x64): one JSON line per figure:

* ``generalizable``: PSNR/SSIM of the targets rendered by RUN from K = 1, 2, 3 source views, no
  per-scene training;
* ``per_scene``: nerfgen's per-scene NeRF (``configs/ngp.yaml``) trained on the same K = 1 and 3
  views for ``--seconds`` (2 minutes by default), same targets;
* ``finetune_curve`` / ``scratch_curve``: PSNR against training seconds on ``--curves`` scenes from
  the 3 views, fine-tuning RUN (``nerfgen train --init``) and training the per-scene NeRF from scratch;
* ``first_view``: seconds from the 3 photos on disk to the first novel view (run loaded, views
  read, encoded, one 64x64 and one 256x256 view rendered, the scene's occupancy pass included) and
  the peak memory.

``--skip 0`` renders every sample of the box (no per-scene occupancy grid), to compare.

    flock /tmp/nerfgen-cpu.lock python bench/generalize.py --run runs/pixelnerf --output runs/bench_generalize
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

import nerfgen
from nerfgen.engine.metrics import psnr, ssim
from nerfgen.generalize.evaluate import evaluate_capture, evaluate_scenes
from nerfgen.scenes.multiview import MultiViewConfig, write_held_out


SKIP: int | None = None
"""``--skip``: the occupancy grid resolution generalizable runs render with (None: their own)."""


def skipping(run):
    """``run`` rendering with ``--skip``'s occupancy grid, when given."""
    if SKIP is not None:
        run.model.config.skip.resolution = SKIP
    return run


def emit(**figure) -> None:
    print(json.dumps(figure), flush=True)


def test_psnr(render, capture: Path) -> tuple[float, float]:
    """Mean PSNR / SSIM of ``capture``'s test views rendered by ``render(cameras) -> ImageOutput``."""
    test = nerfgen.load_dataset(capture, "test")
    scores = []
    for i in range(len(test)):
        image = render(test.camera(i))
        rgba = test.image(i).float() / 255
        truth = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
        scores.append((psnr(image.rgb, truth), ssim(image.rgb.clamp(0, 1), truth)))
    return sum(s[0] for s in scores) / len(scores), sum(s[1] for s in scores) / len(scores)


class Curve:
    """A per-step hook that renders the test views every ``every`` training seconds (the time it
    takes is not training time); ``prepare`` runs first (re-encoding the sources of a model whose
    weights moved)."""

    def __init__(self, capture: Path, every: float, render, prepare=lambda: None) -> None:
        self.capture, self.every, self.render, self.prepare = capture, every, render, prepare
        self.points, self.next = [], 0.0

    def __call__(self, report) -> None:
        if report.seconds >= self.next:
            self.next += self.every
            with torch.no_grad():
                self.prepare()
                self.points.append((round(report.seconds, 1), round(test_psnr(self.render, self.capture)[0], 3)))


def per_scene(capture: Path, out: Path, k: int, seconds: float, every: float):
    """A per-scene NeRF on the first ``k`` training views for ``seconds``: final PSNR/SSIM, curve."""
    engine = nerfgen.reconstruction(capture, out, "ngp", max_seconds=seconds, train_views=k, seed=0, eval_every=0)
    run = engine.task.live_run(out)
    bg = torch.ones(3)
    curve = Curve(capture, every, lambda cam: run.render(cam, 0, bg))
    engine.run([curve])
    run.model.eval()
    final = test_psnr(lambda cam: run.render(cam, 0, bg), capture)
    curve.points.append((round(engine.seconds, 1), round(final[0], 3)))
    return final, curve.points


def finetune(capture: Path, run_dir: Path, out: Path, seconds: float, every: float):
    engine = nerfgen.reconstruction(capture, out, init=run_dir, max_seconds=seconds, seed=0, threads=0)  # all cores
    run = skipping(engine.task.live_run(out))
    views = nerfgen.SourceViews.from_capture(capture, [0, 1, 2])
    curve = Curve(capture, every, lambda cam: run.render(cam, 0), lambda: run.use_sources(views, orbit=False))
    engine.run([curve])
    with torch.no_grad():
        run.use_sources(views, orbit=False)
        final = test_psnr(lambda cam: run.render(cam, 0), capture)
    curve.points.append((round(engine.seconds, 1), round(final[0], 3)))
    return final, curve.points


def first_view(run_dir: Path, capture: Path) -> None:
    start = time.perf_counter()
    run = skipping(nerfgen.load_run(run_dir, device="cpu"))
    run.use_sources(nerfgen.SourceViews.from_capture(capture, [0, 1, 2]))
    encoded = time.perf_counter()
    small = run.render(run.orbit_cameras(8, 64), 1)
    first = time.perf_counter()
    big = run.render(run.orbit_cameras(8, 256), 1)
    done = time.perf_counter()
    assert small.rgb.shape == (64, 64, 3) and big.rgb.shape == (256, 256, 3)
    occupied = run.scene().extra.get("occupied")  # the scene's grid of empty space skipped, if any
    emit(figure="first_view", sources=3, load_and_encode_s=round(encoded - start, 2),
         first_view_64_s=round(first - start, 2), view_256_s=round(done - first, 2),
         skip_resolution=getattr(getattr(run.model.config, "skip", None), "resolution", 0),
         occupied=None if occupied is None else round(float(occupied.float().mean()), 3),
         peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
         threads=torch.get_num_threads())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="trained generalizable run")
    p.add_argument("--output", required=True, help="work folder (held-out scenes, per-scene runs)")
    p.add_argument("--scenes", type=int, default=8, help="held-out scenes for the generalizable figures")
    p.add_argument("--baseline-scenes", type=int, default=4, help="of them, scenes with per-scene NeRFs")
    p.add_argument("--curves", type=int, default=2, help="scenes with fine-tuning curves (the first ones)")
    p.add_argument("--seconds", type=float, default=120.0, help="per-scene training and fine-tuning budget")
    p.add_argument("--every", type=float, default=15.0, help="seconds between curve points")
    p.add_argument("--seed", type=int, default=1000, help="held-out scene seed (not the run's own)")
    p.add_argument("--skip", type=int, help="the occupancy grid's resolution when rendering (0: none; default "
                                             "the run's)")
    args = p.parse_args()
    global SKIP
    SKIP = args.skip
    out = Path(args.output)
    scenes = write_held_out(out / "held_out", args.scenes, MultiViewConfig(), sources=3, seed=args.seed)
    first_view(Path(args.run), scenes[0])
    run = skipping(nerfgen.load_run(args.run, device="cpu"))
    for k in (1, 2, 3):
        r = evaluate_scenes(run, scenes, k)
        emit(figure="generalizable", k=k, scenes=len(scenes), psnr=round(r["psnr"], 3), ssim=round(r["ssim"], 4),
             seconds=round(r["seconds"], 1), per_scene=[round(s["psnr"], 2) for s in r["per_scene"]])
    base = scenes[:args.baseline_scenes]
    for k in (1, 3) if base else ():
        gen = [evaluate_capture(run, s, k) for s in base]
        finals = []
        for i, scene in enumerate(base):
            target = out / f"per_scene_k{k}_{i}"
            shutil.rmtree(target, ignore_errors=True)
            final, points = per_scene(scene, target, k, args.seconds, args.every)
            finals.append(final)
            if k == 3 and i < args.curves:
                emit(figure="scratch_curve", scene=i, k=3, points=points)
        emit(figure="per_scene", k=k, scenes=len(base), seconds=args.seconds,
             psnr=round(sum(f[0] for f in finals) / len(finals), 3),
             ssim=round(sum(f[1] for f in finals) / len(finals), 4),
             generalizable_psnr=round(sum(g["psnr"] for g in gen) / len(gen), 3),
             generalizable_ssim=round(sum(g["ssim"] for g in gen) / len(gen), 4))
    for i, scene in enumerate(scenes[:args.curves]):
        target = out / f"finetune_{i}"
        shutil.rmtree(target, ignore_errors=True)
        final, points = finetune(scene, Path(args.run), target, args.seconds, args.every)
        emit(figure="finetune_curve", scene=i, k=3, psnr=round(final[0], 3), ssim=round(final[1], 4), points=points)
    return 0


if __name__ == "__main__":
    sys.exit(main())
