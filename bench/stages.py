"""Where the time goes: one training step and one viewer frame, split by stage.

    python bench/stages.py --run runs/bench/lego_5min [--steps 10 --frames 6 --side 256]

Training (lego at ``--downscale``, resumed from a warm-up run as ``bench/train_step.py`` does, so
the occupancy grid has carved empty space): the median over ``--steps`` steps of each stage's
exclusive wall time (a stage that calls another is charged only for its own time):

* ``sampling``: occupancy-grid marching and the early-termination rounds' bookkeeping (their
  density queries are charged to ``encoding`` and ``mlp``), ``grid_update`` the grid's refresh;
* ``encoding``: the hash-grid encoding forward; ``mlp``: density and colour networks forward
  (the fused MLP when it serves: encoding and networks together, as ``field``);
* ``compositing``: volume rendering forward; ``loss``: the rest of the task between render and
  backward;
* ``backward``: the whole backward pass, split (``backward_*``) by the torch profiler's self time
  of its ops over one extra step: hash grid (``backward_encoding``), matrix products and
  activations (``backward_mlp``), compositing, and the autograd engine's own (``backward_other``);
* ``optimiser``: Adam (and zeroing the gradients);
* ``python``: the step's wall time less every stage above: batching, ray generation, the engine's
  bookkeeping, Python between ops.

Viewer frame (``--run``, a trained run; ``--baked`` to profile its bake): frames of ``--side``
pixels on the run's orbit through the viewer's own path (``render_view`` in bands, compose, JPEG),
median of each stage over ``--frames`` frames; ``rays`` is camera ray generation, ``jpeg`` the
mode composite and the encoding.

One JSON line per profile (``stages_ms`` and ``total_ms``, medians per step or frame).
"""

from __future__ import annotations

import argparse
import json
import os
import importlib.util
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data" / "nerf_synthetic" / "lego"


class StageClock:
    """Exclusive wall time per stage: nested stages are subtracted from the stage around them."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []  # [name, start, time of children]

    @contextmanager
    def stage(self, name: str):
        self.enter(name)
        try:
            yield
        finally:
            self.leave()

    def enter(self, name: str) -> None:
        self._stack.append([name, time.perf_counter(), 0.0])

    def leave(self) -> None:
        name, start, children = self._stack.pop()
        elapsed = time.perf_counter() - start
        self.totals[name] += elapsed - children
        if self._stack:
            self._stack[-1][2] += elapsed

    def take(self) -> dict[str, float]:
        out, self.totals = dict(self.totals), defaultdict(float)
        return out


def wrap(owner, attr: str, clock: StageClock, name: str) -> None:
    """Charge every call of ``owner.attr`` to stage ``name``."""
    inner = getattr(owner, attr)

    def timed(*args, **kwargs):
        with clock.stage(name):
            return inner(*args, **kwargs)

    setattr(owner, attr, timed)


def hook_module(module: torch.nn.Module, clock: StageClock, name: str) -> None:
    """Charge ``module``'s forward to stage ``name``."""
    module.register_forward_pre_hook(lambda *_: clock.enter(name))
    module.register_forward_hook(lambda *_: clock.leave())


def instrument_field(clock: StageClock, field) -> None:
    """Encoding and MLP stages of an NGP field: its modules, and the fused MLP's calls."""
    from nerfgen.fields import ngp

    hook_module(field.encoding, clock, "encoding")
    hook_module(field.density_net, clock, "mlp")
    hook_module(field.color_net, clock, "mlp")
    for fused in ("ngp_mlp", "ngp_density"):  # (code from before the fused MLP has neither)
        if hasattr(ngp, fused):
            wrap(ngp, fused, clock, "mlp")


def instrument_render(clock: StageClock, sampler) -> None:
    from nerfgen.render import renderer

    wrap(type(sampler), "sample", clock, "sampling")
    wrap(renderer, "volume_render", clock, "compositing")


BACKWARD_OPS = {"hash_grid": "encoding", "fused_mlp": "mlp", "addmm": "mlp", "aten::mm": "mlp",
                "threshold_backward": "mlp", "relu": "mlp", "sigmoid_backward": "mlp", "composite_bwd": "compositing"}


def backward_split(engine) -> dict[str, float]:
    """Shares of one step's backward by op family, from the torch profiler's self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    holder = {}
    original = torch.Tensor.backward

    def backward(self, *args, **kwargs):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            original(self, *args, **kwargs)
        holder["prof"] = prof

    torch.Tensor.backward = backward
    try:
        engine.train_step()
    finally:
        torch.Tensor.backward = original
    shares: dict[str, float] = defaultdict(float)
    for event in holder["prof"].key_averages():
        family = next((v for k, v in BACKWARD_OPS.items() if k in event.key), "other")
        shares[family] += event.self_cpu_time_total
    total = sum(shares.values()) or 1.0
    return {k: v / total for k, v in shares.items()}


def profile_training(args) -> dict:
    from nerfgen.api import reconstruction

    run = Path(args.train_run)
    common = dict(max_steps=10**9, eval_every=0, checkpoint_every=0, checkpoint_seconds=0, downscale=args.downscale)
    if not (run / "state.json").is_file():
        engine = reconstruction(args.data, run, "ngp", False, **common)
        for _ in range(args.warmup):
            engine.train_step()
        engine.save()
    engine = reconstruction(args.data, run, "ngp", True, **common)
    clock = StageClock()
    model = engine.task.model
    instrument_field(clock, model.field)
    instrument_render(clock, model.sampler)
    wrap(model.sampler, "update", clock, "grid_update")
    original_backward = torch.Tensor.backward
    for optimizer, _ in engine.optimizers.values():
        wrap(optimizer, "step", clock, "optimiser")
        wrap(optimizer, "zero_grad", clock, "optimiser")
    split = backward_split(engine)  # also the warm-up step

    def backward(self, *a, **k):
        with clock.stage("backward"):
            return original_backward(self, *a, **k)

    torch.Tensor.backward = backward
    rows, rays = [], []
    try:
        for _ in range(args.steps):
            clock.take()
            start = time.perf_counter()
            result = engine.train_step()
            total = time.perf_counter() - start
            stages = clock.take()
            stages["python"] = total - sum(stages.values())
            rows.append({**stages, "total": total})
            rays.append(result.counts["rays"] / total)
    finally:
        torch.Tensor.backward = original_backward
    stages = medians(rows)
    for family, share in split.items():
        stages[f"backward_{family}"] = round(stages.get("backward", 0.0) * share, 2)
    return {"profile": "train_step", "downscale": args.downscale, "steps": args.steps,
            "rays_per_s": round(statistics.median(rays)), "stages_ms": stages,
            "total_ms": stages.pop("total"), **environment()}


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in rows for k in r})
    return {k: round(1000 * statistics.median(r.get(k, 0.0) for r in rows), 2) for k in keys}


def profile_viewer(args) -> dict:
    import imageio.v3 as iio

    import nerfgen
    from nerfgen.viewer import frames as viewer_frames

    spec = importlib.util.spec_from_file_location("bench_viewer", REPO / "bench" / "viewer.py")
    bench_viewer = importlib.util.module_from_spec(spec)  # bench/viewer.py by path: `viewer` is the package's name
    spec.loader.exec_module(bench_viewer)
    views = bench_viewer.views  # cameras on the run's orbit

    run = nerfgen.load_run(args.run, "cpu")
    if args.baked:
        from nerfgen.bake import load_baked

        run = load_baked(args.run, "cpu")
    clock = StageClock()
    instrument_run(clock, run)
    path = views(run.info.orbit, args.frames + 1)
    rows = []
    for i, view in enumerate(path):
        clock.take()
        start = time.perf_counter()
        image = viewer_frames.render_view(run, view.cameras(args.side, args.side), run.background,
                                          preview=args.preview)
        with clock.stage("jpeg"):
            iio.imwrite("<bytes>", viewer_frames.compose(image, "rgb"), extension=".jpeg", quality=90)
        total = time.perf_counter() - start
        stages = clock.take()
        stages["python"] = total - sum(stages.values())
        if i > 0:  # the first frame warms up (kernel load, allocator)
            rows.append({**stages, "total": total})
    stages = medians(rows)
    total = stages.pop("total")
    return {"profile": "viewer_frame", "run": str(args.run), "baked": args.baked, "side": args.side,
            "preview": args.preview,
            "frames": args.frames, "fps": round(1000 / total, 2), "stages_ms": stages, "total_ms": total,
            **environment()}


def instrument_run(clock: StageClock, run) -> None:
    """Stages of whatever renders the run: a baked run names its own, a field run's model is hooked."""
    stages = getattr(run, "profile_stages", None)
    if stages is not None:
        for owner, attr, name in stages():
            wrap(owner, attr, clock, name)
        return
    from nerfgen.render import model as render_model

    instrument_field(clock, run.model.field)
    instrument_render(clock, run.model.sampler)
    wrap(render_model, "image_rays", clock, "rays")


def environment() -> dict:
    from nerfgen.ops._backend import get_backend_name

    return {"threads": torch.get_num_threads(), "backend": get_backend_name(), "load_average": os.getloadavg()[0]}


def main(argv: list[str] | None = None, print_fn: Callable[[str], None] = print) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="trained run for the viewer profile (none: training only)")
    parser.add_argument("--baked", action="store_true", help="profile the run's bake (nerfgen bake) in the viewer")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--downscale", type=float, default=2.0, help="training images' downscale")
    parser.add_argument("--warmup", type=int, default=300, help="steps trained before profiling")
    parser.add_argument("--steps", type=int, default=10, help="training steps profiled")
    parser.add_argument("--frames", type=int, default=6, help="viewer frames profiled")
    parser.add_argument("--side", type=int, default=256, help="viewer frame size (square)")
    parser.add_argument("--preview", action="store_true", help="viewer frames with the preview march (moving)")
    parser.add_argument("--train-run", default=str(REPO / "runs" / "bench_profile"), help="the warm-up run")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_training:
        print_fn(json.dumps(profile_training(args)))
    if args.run:
        print_fn(json.dumps(profile_viewer(args)))


if __name__ == "__main__":
    main()
