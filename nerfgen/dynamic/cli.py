"""The command line of dynamic runs: ``nerfgen render RUN --time T | --time-sweep``, ``nerfgen export
RUN --time T`` and ``nerfgen demo --dynamic`` (registered by :mod:`nerfgen.cli` and
:mod:`nerfgen.mesh.cli`). Training, evaluation and viewing need nothing of their own: ``nerfgen
train`` finds a capture's times, ``nerfgen eval`` renders each view at its time, ``nerfgen view``
gives a time-conditioned run a time slider."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nerfgen.renderable import TimeConditioned


def add_render_options(p: argparse.ArgumentParser, paths: argparse._MutuallyExclusiveGroup) -> None:
    """``--time`` and ``--time-sweep`` on ``nerfgen render`` (the sweep is a kind of video, beside
    ``--orbit`` and ``--camera-path``)."""
    paths.add_argument("--time-sweep", action="store_true",
                       help="dynamic runs: time running from 0 to 1, seen from one camera of the orbit (--camera)")
    p.add_argument("--time", type=float,
                   help="dynamic runs: stop the scene at this time in [0, 1] (an orbit at a fixed time is bullet time; "
                        "default: time runs from 0 to 1 along the orbit, or as the camera path's frames say)")
    p.add_argument("--camera", type=int, default=0, help="--time-sweep: which camera of the orbit (default 0)")


def time_conditioned(run, what: str) -> TimeConditioned:
    """``run`` when it changes over time, else one error saying it is static."""
    if not isinstance(run, TimeConditioned):
        raise ValueError(f"{run.path}: a {run.info.kind.value} run is static: {what} needs a dynamic run (trained on "
                         "a capture whose frames carry times)")
    return run


def render(args: argparse.Namespace, run) -> int | None:
    """``nerfgen render`` with ``--time`` or ``--time-sweep``: the frames written, or None when
    neither is given (the plain orbit / path renders, which a dynamic run times by itself)."""
    if args.time is None and not args.time_sweep:
        return None
    run = time_conditioned(run, "--time-sweep" if args.time_sweep else "--time")
    if args.time_sweep:
        return run.render_sweep(args.output, args.frames, args.width, args.height, args.depth, args.fps or 30,
                                args.camera)
    if args.camera_path:
        return run.render_path(args.camera_path, args.output, args.width, args.height, args.depth, args.fps, args.time)
    return run.render_orbit(args.output, args.frames, args.width, args.height, args.depth, args.fps or 30, args.time)


def add_export_options(p: argparse.ArgumentParser) -> None:
    """``--time`` on ``nerfgen export``."""
    p.add_argument("--time", type=float, help="dynamic runs: mesh the scene at this time in [0, 1] (default: its first)")


def export_options(args: argparse.Namespace, run) -> dict:
    """The extra keywords of ``export_mesh`` (``time`` for a dynamic run asked for one)."""
    if args.time is None:
        return {}
    time_conditioned(run, "--time")
    return {"time": args.time}


def add_demo_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dynamic", action="store_true",
                   help="the embedded dynamic scene instead (objects rolling, turning, a lid opening): render it, train "
                        "K-Planes on it, evaluate, render an orbit with time running, a time sweep, bullet time, a mesh")


def demo(args: argparse.Namespace) -> int:
    """``nerfgen demo --dynamic``: the dynamic scene end to end, nothing downloaded."""
    from nerfgen.dynamic.api import dynamic
    from nerfgen.engine.checkpoint import has_checkpoint
    from nerfgen.kinds import load_run
    from nerfgen.reconstruct.evaluate import evaluate
    from nerfgen.scenes.dynamic_dataset import DynamicConfig, render_dynamic_dataset

    root = Path(args.output)
    data = render_dynamic_dataset(root / "data", DynamicConfig(seed=args.seed))
    print(f"scene: {data}")
    out = root / "run"
    engine = dynamic(data, out, "kplanes", resume=has_checkpoint(out), max_seconds=args.max_seconds, seed=args.seed,
                     device=args.device)
    summary = engine.run()
    rays = summary.totals.get("rays", 0)
    print(json.dumps({"output": str(out), "steps": summary.steps, "seconds": round(summary.seconds, 1),
                      "rays_per_second": round(rays / max(summary.seconds, 1e-9))}), flush=True)
    report = evaluate(out, "test", device=args.device)
    print(f"{out}: test ({report['views']} views at their times): PSNR {report['psnr']:.2f} dB  SSIM {report['ssim']:.4f}")
    run = load_run(out, args.device)
    videos = {"orbit.mp4": lambda p: run.render_orbit(p, 60),
              "sweep.mp4": lambda p: run.render_sweep(p, 48),
              "bullet.mp4": lambda p: run.render_orbit(p, 60, time=0.5)}
    for name, make in videos.items():
        print(f"wrote {root / name} ({make(root / name)} frames)")
    print(json.dumps(run.export_mesh(root / "mesh.ply", time=0.5)))
    return 0
