"""Step time and host reads per step of the engine's run loop: reconstruction (lego, ``ngp``) and a
GIRAFFE GAN (CLEVR-like images rendered into ``--work``).

    python bench/step_syncs.py [--downscale 8 --warmup 100 --steps 60 --repeats 3]

Each task is warmed up (lego's grid carved, lazy loading done), then ``--steps`` steps of
:meth:`Engine.run` are timed by wall clock between two hook calls (progress bar, tensorboard every
``log_every``, hooks: what a real run pays), ``--repeats`` times; then the same number of steps run
under :class:`nerfgen.engine.syncs.SyncCounter`, which records every host read (``.item()``,
``float()``, ``.tolist()``: on a GPU each waits for the device) and every op of data-dependent size.
One JSON line per task: median and all step times (ms), reads and data-dependent ops per step,
the reads' sites.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEGO = REPO.parent / "shared" / "data" / "nerf_synthetic" / "lego"


class Timer:
    """A hook: wall time of the steps between its first and last call."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, report) -> None:
        self.times.append(time.perf_counter())

    def per_step(self) -> float:
        return (self.times[-1] - self.times[0]) / (len(self.times) - 1)


def run_steps(engine, steps: int, hooks=()) -> None:
    """``steps`` more steps of ``engine.run`` (its end-of-run checkpoint included)."""
    engine.config.max_steps = engine.step + steps
    engine.run(list(hooks))


def measure(name: str, engine, warmup: int, steps: int, repeats: int) -> dict:
    from nerfgen.engine.syncs import SyncCounter

    run_steps(engine, warmup)
    times = []
    for _ in range(repeats):
        timer = Timer()
        run_steps(engine, steps + 1, [timer])
        times.append(1000 * timer.per_step())
    marks: list[tuple[int, int]] = []
    with SyncCounter() as syncs:
        run_steps(engine, steps, [lambda report: marks.append((len(syncs.reads), len(syncs.shapes)))])
    reads, shapes = marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1]  # steps 2..N: no end-of-run save
    sites = Counter(syncs.reads[marks[0][0]:marks[-1][0]])
    return {"figure": "step_syncs", "task": name, "steps": steps, "ms_per_step": round(statistics.median(times), 1),
            "ms_runs": [round(t, 1) for t in times], "reads_per_step": round(reads / (steps - 1), 2),
            "data_dependent_per_step": round(shapes / (steps - 1), 2), "read_sites": dict(sites.most_common())}


def reconstruction(data: str, work: Path, downscale: float):
    from nerfgen.api import reconstruction

    return reconstruction(data, work / "lego", "ngp", max_steps=1, eval_every=0, checkpoint_every=0,
                          downscale=downscale)


def gan(work: Path, images: int, threads: int):
    from nerfgen.gan.api import gan_training
    from nerfgen.scenes.gan_sets import render_clevr

    data = render_clevr(work.parent / f"step_syncs_clevr_{images}", images, 64, seed=0, workers=2)
    return gan_training(data, work / "gan", "giraffe", max_steps=1, eval_every=0, checkpoint_every=0,
                        threads=threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(LEGO))
    parser.add_argument("--downscale", type=float, default=8.0)
    parser.add_argument("--warmup", type=int, default=100, help="reconstruction steps before timing")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--gan-steps", type=int, default=12)
    parser.add_argument("--gan-images", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--tasks", default="reconstruction,gan")
    parser.add_argument("--work", default="/tmp/nerfgen-bench-step-syncs")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tasks = args.tasks.split(",")
    if "reconstruction" in tasks:
        engine = reconstruction(args.data, work, args.downscale)
        print(json.dumps({**measure("reconstruction", engine, args.warmup, args.steps, args.repeats),
                          "downscale": args.downscale}), flush=True)
    if "gan" in tasks:
        engine = gan(work, args.gan_images, args.threads)
        print(json.dumps(measure("gan_giraffe", engine, 2, args.gan_steps, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
