"""``nerfgen gan``: data, train, sample, render, eval for GRAF and GIRAFFE runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nerfgen.gan.data_cli import add_data_parser, run_data

DEVICE_HELP = "cpu | cuda[:n] | auto (default: auto, CUDA when torch sees a GPU)"
QUALITY_IMAGES = 500
"""Most generated images the quality gate looks at."""


def _train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train GRAF or GIRAFFE on a folder of images (no poses needed)",
                       description="Train a generative radiance field adversarially on any folder of images "
                                   "(`nerfgen gan data` renders embedded ones).")
    p.add_argument("data", nargs="?", help="folder of images (optional with --resume: the run's own)")
    p.add_argument("--output", required=True, help="run directory")
    p.add_argument("--model", choices=["giraffe", "graf"], help="generator (default giraffe; sets the default config)")
    p.add_argument("--config", help="shipped config (giraffe, graf) or a YAML file (default: the model's)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument("--max-seconds", type=float, help="stop after this much training time (seconds)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="set any config key, repeatable (--set batch=32 --set camera.fov=40)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")


def _sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="a grid of samples of a trained GAN run")
    p.add_argument("run", help="GAN run directory")
    p.add_argument("--count", type=int, default=64, help="samples (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes (default 0)")
    p.add_argument("--output", required=True, help="PNG file")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def _render(sub: argparse._SubParsersAction) -> None:
    from nerfgen.gan.programs import PROGRAMS

    p = sub.add_parser("render", help="a video of one control changing (rotate/move an object, the camera, codes)")
    p.add_argument("run", help="GAN run directory")
    p.add_argument("--program", required=True, choices=PROGRAMS, help="what changes over the video")
    p.add_argument("--output", required=True, help="video file (.mp4 or .gif)")
    p.add_argument("--scenes", type=int, default=4, help="scenes side by side (default 4)")
    p.add_argument("--frames", type=int, default=32, help="frames (default 32)")
    p.add_argument("--fps", type=float, default=12, help="frames per second (default 12)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes (default 0)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def _eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="KID / FID against held-out real images; control figures on embedded sets",
                       description="Write eval.json into the run: KID and FID on an offline encoder (not comparable "
                                   "to published numbers) and, with --inception, on a local FID Inception weight "
                                   "file; the same between two halves of the real images (the floor); for "
                                   "GIRAFFE, what moving objects and the camera does to the render; and on the "
                                   "embedded sets the quality gate: the objects of the samples against real ones "
                                   "(count, area, palette colour, brightness, colour fringes) and nearest neighbours "
                                   "(memorisation, diversity), with the bounds each must meet.")
    p.add_argument("run", help="GAN run directory")
    p.add_argument("--count", type=int, default=1000, help="generated images (default 1000)")
    p.add_argument("--inception", metavar="FILE",
                   help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth (or torch-fidelity's weights file)")
    p.add_argument("--data", help="image folder (default: the one the run trained on)")
    p.add_argument("--no-controls", action="store_true", help="skip the control figures")
    p.add_argument("--no-quality", action="store_true",
                   help="skip the quality gate (embedded sets: objects' count, size, colour, fringes; neighbours)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gan", help="GRAF / GIRAFFE: generative radiance fields trained on unposed images",
                       description="Generative radiance fields trained as GANs: render a data set, train, sample, "
                                   "render control programs, evaluate.")
    gsub = p.add_subparsers(dest="gan_command", required=True)
    add_data_parser(gsub)
    for make in (_train, _sample, _render, _eval):
        make(gsub)


def cmd_train(args: argparse.Namespace) -> int:
    from nerfgen.config import parse_overrides
    from nerfgen.gan.api import gan_training

    if args.data is None and not args.resume:
        raise ValueError("give the image folder to train on (DATA), or --resume a run")
    options = {"max_steps": args.max_steps, "max_seconds": args.max_seconds, "seed": args.seed,
               "threads": args.threads, "device": args.device, **parse_overrides(args.overrides)}
    if args.model and not args.resume:
        options["model"] = args.model
    config = args.config or args.model or "giraffe"
    summary = gan_training(args.data, args.output, config, args.resume, **options).run()
    print(json.dumps({"output": str(args.output), "steps": summary.steps, "seconds": round(summary.seconds, 1),
                      "images_per_second": round(summary.totals.get("images", 0) / max(summary.seconds, 1e-9), 2),
                      "figures": summary.figures}), flush=True)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from nerfgen.gan.api import load_gan_run

    path = load_gan_run(args.run, args.device).write_sample_sheet(args.output, args.count, args.seed)
    print(f"wrote {path} ({args.count} samples)")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from nerfgen.gan.programs import render_program
    from nerfgen.gan.api import load_gan_run

    run = load_gan_run(args.run, args.device)
    n = render_program(run, args.program, args.output, args.scenes, args.frames, args.seed, args.fps)
    print(f"wrote {args.output} ({n} frames)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from nerfgen.files import write_json
    from nerfgen.gan.controls import control_figures, ground_truth_position_error
    from nerfgen.gan.data import ImageCollection
    from nerfgen.gan.evaluate import evaluate_run
    from nerfgen.gan.api import load_gan_run
    from nerfgen.gan.quality import gate_summary, quality_report, unavailable

    run = load_gan_run(args.run, args.device)
    folder = args.data or run.info.data
    data = ImageCollection.from_folder(folder, run.config.size, run.config.held_out)
    report = {"data": str(folder), **evaluate_run(run, data, args.count, args.inception)}
    if not args.no_controls and run.config.model == "giraffe":
        report["controls"] = control_figures(run)
        if data.labels is not None and data.labels.get("set") == "clevr":
            report["controls"].update(ground_truth_position_error(folder))
    reason = unavailable(data)
    if not args.no_quality and reason is None:
        report["quality"] = quality_report(run, data, min(args.count, QUALITY_IMAGES))
        print(gate_summary(report["quality"]), file=sys.stderr)
    elif not args.no_quality:
        report["quality"] = {"skipped": reason}
    path = Path(args.run) / "eval.json"
    write_json(path, report)
    print(json.dumps(report, indent=1))
    print(f"wrote {path}", file=sys.stderr)
    return 0


COMMANDS = {"data": run_data, "train": cmd_train, "sample": cmd_sample, "render": cmd_render, "eval": cmd_eval}


def cmd_gan(args: argparse.Namespace) -> int:
    return COMMANDS[args.gan_command](args)
