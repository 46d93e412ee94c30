"""``nerfgen generalize``: data, train, render, eval, mvsnerf for generalizable runs."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEVICE_HELP = "cpu | cuda[:n] | auto (default: auto, CUDA when torch sees a GPU)"
SOURCES_HELP = "which views of --data are the source views (indices into its --split; default: the run's own)"


def _data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="render procedural multi-view scenes (training or held-out) as captures",
                       description="Render scenes of the objects library (held-out: shapes and colours never in "
                                   "training) into OUTPUT/scene_NNN, NeRF-synthetic captures: the source views "
                                   "are the train split, the rest test.")
    p.add_argument("--output", required=True, help="folder of capture folders to write (scenes there are kept)")
    p.add_argument("--scenes", type=int, default=8, help="scenes (default 8)")
    p.add_argument("--split", choices=["held_out", "train"], default="held_out", help="which shapes and colours")
    p.add_argument("--sources", type=int, default=3, help="source views per scene, spread around it (default 3)")
    p.add_argument("--views", type=int, default=10, help="views per scene, sources included (default 10)")
    p.add_argument("--size", type=int, default=64, help="image side (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")


def _train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train pixelNeRF on procedural scenes or a folder of captures",
                       description="Train a generalizable model (pixelNeRF / GRF; IBRNet-style pooling with --set) "
                                   "on scenes rendered by nerfgen without end, or on a folder of capture folders.")
    p.add_argument("data", nargs="?", help="folder of capture folders (default: procedural scenes)")
    p.add_argument("--output", required=True, help="run directory")
    p.add_argument("--config", help="shipped config (pixelnerf, the default) or a YAML file")
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument("--max-seconds", type=float, help="stop after this much training time (seconds)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="set any config key (--set pixelnerf.field.pooling=meanvar --set pixelnerf.field.colour=blend)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")


def _scene_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="a capture (any format nerfgen loads) whose views are the sources")
    p.add_argument("--sources", type=int, nargs="+", help=SOURCES_HELP)
    p.add_argument("--split", default="train", help="split the source indices refer to (default train)")
    p.add_argument("--downscale", type=float, default=1.0, help="shrink the capture's images by this")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def _render(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="novel views of a scene from its source views: an orbit or chosen cameras",
                       description="Render a scene never trained on from 1-N of its posed photos, no per-scene "
                                   "training: an orbit video, or the capture's test views beside the truth.")
    p.add_argument("run", help="generalizable run directory")
    _scene_options(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--orbit", action="store_true", help="circle the scene (a video)")
    what.add_argument("--targets", type=int, nargs="+", help="render these views of --data's test split (PNGs)")
    p.add_argument("--output", required=True, help="video file (--orbit) or folder of PNGs (--targets)")
    p.add_argument("--frames", type=int, default=60, help="orbit frames (default 60)")
    p.add_argument("--width", type=int, help="frame width (default the source views')")


def _eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM on held-out captures from K = 1, 2, 3 source views",
                       description="Each capture's first K training views are the sources, its test views the "
                                   "targets; writes eval_generalize.json into the run.")
    p.add_argument("run", help="generalizable run directory")
    p.add_argument("--data", required=True, help="a capture, or a folder of capture folders")
    p.add_argument("--k", type=int, nargs="+", default=[1, 2, 3], help="source view counts (default 1 2 3)")
    p.add_argument("--views", type=int, default=0, help="test views per capture (default all)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def _mvsnerf(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mvsnerf", help="import MVSNeRF's pretrained weights into a generalizable run",
                       description="Load MVSNeRF's public checkpoint (torch.load weights_only) into nerfgen's own "
                                   "implementation and write a run directory that renders any capture from 3 views.")
    p.add_argument("checkpoint", help="mvsnerf-v0.tar")
    p.add_argument("--output", required=True, help="run directory to write")
    p.add_argument("--data", help="a capture whose 3 views become the run's sources")
    p.add_argument("--sources", type=int, nargs=3, help="the 3 source views of --data (its train split)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="MVSNeRF settings (--set n_samples=64 --set source_width=384)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generalize", help="generalizable fields: novel views of unseen scenes from 1-3 photos "
                                          "(pixelNeRF, MVSNeRF)",
                       description="Generalizable radiance fields: train pixelNeRF on many scenes, render a new "
                                   "scene from a few posed photos with no per-scene training, evaluate, import "
                                   "MVSNeRF's weights. Fine-tune per scene with `nerfgen train DATA --init RUN`.")
    s = p.add_subparsers(dest="generalize_command", required=True)
    for add in (_data, _train, _render, _eval, _mvsnerf):
        add(s)


def run_sources(run, args) -> None:
    """Point ``run`` at ``--data`` / ``--sources`` when given."""
    from nerfgen.generalize.sources import SourceViews

    if args.data is None and args.sources is None:
        return
    if args.data is None:
        raise ValueError("--sources needs --data CAPTURE")
    indices = args.sources if args.sources is not None else [0, 1, 2]
    run.use_sources(SourceViews.from_capture(args.data, indices, args.split, args.downscale, run.background))


def cmd_data(args) -> int:
    from nerfgen.scenes.multiview import MultiViewConfig, write_held_out

    config = MultiViewConfig(views=args.views, size=args.size)
    config.validate("nerfgen generalize data")
    folders = write_held_out(args.output, args.scenes, config, args.sources, args.seed, args.split)
    print(json.dumps({"output": str(args.output), "scenes": len(folders), "split": args.split}))
    return 0


def cmd_train(args) -> int:
    from nerfgen.config import parse_overrides
    from nerfgen.generalize.api import generalize_training

    options = {"max_steps": args.max_steps, "max_seconds": args.max_seconds, "seed": args.seed,
               "threads": args.threads, "device": args.device, **parse_overrides(args.overrides)}
    engine = generalize_training(args.data, args.output, args.config, args.resume, **options)
    summary = engine.run()
    print(json.dumps({"output": str(args.output), "steps": summary.steps, "seconds": round(summary.seconds, 1),
                      "final_loss": summary.figures.get("loss")}), flush=True)
    return 0


def cmd_render(args) -> int:
    from nerfgen.generalize.api import load_general_run

    start = time.perf_counter()
    run = load_general_run(args.run, args.device)
    run_sources(run, args)
    if args.orbit:
        n = run.render_orbit(args.output, args.frames, args.width)
        print(json.dumps({"output": args.output, "frames": n, "seconds": round(time.perf_counter() - start, 2)}))
        return 0
    import torch

    from nerfgen.data import load_dataset
    from nerfgen.gan.run import write_png

    if args.data is None:
        raise ValueError("--targets needs --data CAPTURE (its test split holds the target views)")
    test = load_dataset(args.data, "test", downscale=args.downscale)
    written = []
    for i in args.targets:
        if not 0 <= i < len(test):
            raise ValueError(f"{args.data}: target view {i} out of range: the test split has {len(test)} views")
        image = run.render(test.camera(i), 0)
        rgba = test.image(i).float() / 255
        truth = rgba[..., :3] * rgba[..., 3:] + run.background * (1 - rgba[..., 3:])
        both = (torch.cat([image.rgb.clamp(0, 1), truth], 1) * 255 + 0.5).byte().numpy()
        written.append(str(write_png(Path(args.output) / f"{i:03d}.png", both)))
    print(json.dumps({"output": args.output, "images": written, "seconds": round(time.perf_counter() - start, 2)}))
    return 0


def cmd_eval(args) -> int:
    from nerfgen.files import write_json
    from nerfgen.generalize.api import load_general_run
    from nerfgen.generalize.data import collection_folders
    from nerfgen.generalize.evaluate import evaluate_scenes

    run = load_general_run(args.run, args.device)
    data = Path(args.data)
    captures = [data] if any(data.glob("transforms*.json")) or (data / "poses_bounds.npy").is_file() \
        else collection_folders(data)
    report = {"data": str(data), "results": []}
    for k in args.k:
        result = evaluate_scenes(run, captures, k, args.views)
        report["results"].append(result)
        print(json.dumps({"k": k, "scenes": result["scenes"], "psnr": round(result["psnr"], 3),
                          "ssim": round(result["ssim"], 4), "seconds": round(result["seconds"], 1)}), flush=True)
    write_json(Path(args.run) / "eval_generalize.json", report)
    return 0


def cmd_mvsnerf(args) -> int:
    from nerfgen.config import build_config, parse_overrides
    from nerfgen.generalize.mvsnerf import MVSNeRFConfig
    from nerfgen.generalize.run import import_mvsnerf

    config = build_config(MVSNeRFConfig, parse_overrides(args.overrides), "--set")
    run = import_mvsnerf(args.checkpoint, args.output, config, args.data, args.sources)
    print(json.dumps({"output": str(run.path), "sources": None if run.info.sources is None else
                      {"capture": run.info.sources.capture, "indices": run.info.sources.indices}}))
    return 0


COMMANDS = {"data": cmd_data, "train": cmd_train, "render": cmd_render, "eval": cmd_eval, "mvsnerf": cmd_mvsnerf}


def cmd_generalize(args) -> int:
    return COMMANDS[args.generalize_command](args)


__all__ = ["add_parser", "cmd_generalize"]
