"""The ``nerfgen`` command: train, eval, render, export, view, demo, generate, prior, data, gan."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from nerfgen.bake import cli as bake_cli
from nerfgen.data import cli as data_cli
from nerfgen.dynamic import cli as dynamic_cli
from nerfgen.gan import cli as gan_cli
from nerfgen.generalize import cli as generalize_cli
from nerfgen.generate import cli as generate_cli
from nerfgen.mesh import cli as mesh_cli
from nerfgen.prior import cli as prior_cli

DEVICE_HELP = "cpu | cuda[:n] | auto (default: auto, CUDA when torch sees a GPU)"
FORMAT_HELP = ("the capture's reader: nerf-synthetic (blender), instant-ngp (transforms, nerfstudio), llff, colmap, "
               "idr (neus, dtu) or auto (default: found from the folder; when several match, the one that carries "
               "the most: masks, per-view intrinsics, a scene box, near/far bounds, said on stderr)")


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a radiance field on posed images",
                       description="Train a radiance field on posed images: NeRF-synthetic, instant-ngp/nerfstudio, "
                                   "LLFF, COLMAP or IDR/NeuS captures (the format is found from the folder).")
    p.add_argument("data", nargs="?",
                   help="capture folder (transforms_{train,val,test}.json, transforms.json, poses_bounds.npy, "
                        "sparse/0 + images/, cameras_sphere.npz) or a transforms JSON file (optional with --resume: "
                        "the run's own)")
    p.add_argument("--output", required=True, help="run directory to write (checkpoint, config, logs)")
    p.add_argument("--format", help=FORMAT_HELP + "; the run records it")
    p.add_argument("--config", default="auto",
                   help="auto (default: ngp for an object in a box, llff for a forward-facing capture, "
                        "ngp_unbounded otherwise, picked from the cameras and said), a shipped config by name "
                        "(ngp, ngp_fine, ngp_cuda, llff, ngp_unbounded, vanilla, demo) or a YAML file; "
                        "command-line options override it")
    p.add_argument("--field", choices=["ngp", "vanilla"], help="field architecture (default: ngp)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument("--max-seconds", type=float, help="stop after this much training time (seconds)")
    p.add_argument("--downscale", type=float, help="divide image size by this (intrinsics follow)")
    p.add_argument("--seed", type=int, help="random seed (runs are repeatable for a seed)")
    p.add_argument("--val-every", type=int, help="steps between validation PSNR renders (0: never)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="set any config key, repeatable; dotted keys reach nested sections and values are YAML "
                        "(--set depth.weight=0.1 --set camera_opt.mode=SO3xR3 --set train_views=10)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument("--init", metavar="RUN", help="start from a generalizable run (nerfgen generalize) and fine-tune it "
                                                 "on DATA's training views, instead of training from noise")
    p.add_argument("--viewer", action="store_true",
                   help="serve the browser viewer while training (pause/resume there); it stays up after training "
                        "until Ctrl+C")
    _add_server_options(p, "--viewer-port")


def _eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM (and LPIPS) of a trained run on a split",
                       description="Render a split's views and write eval_{split}.json into the run directory.")
    p.add_argument("run", help="run directory written by `nerfgen train`")
    p.add_argument("--split", default="test", help="dataset split (default: test)")
    p.add_argument("--every", type=int, default=1, help="evaluate every N-th view (default: all)")
    p.add_argument("--limit", type=int, default=0, help="evaluate at most this many views")
    p.add_argument("--data", help="dataset path (default: the one the run trained on)")
    p.add_argument("--format", help="the capture's reader (as `nerfgen train --format`; default: the one the run "
                                    "recorded for its own data, else found from the folder)")
    p.add_argument("--downscale", type=float, help="image downscale (default: the training one)")
    p.add_argument("--save-images", action="store_true", help="write renders_{split}/NNN.png (render | ground truth)")
    bake_cli.add_baked_flag(p, "evaluate the run's bake (nerfgen bake) instead of its field: eval_{split}_baked.json, "
                               "with the field's PSNR on the same views when eval_{split}.json has them")
    p.add_argument("--lpips-weights", nargs=2, metavar=("BACKBONE", "LINEAR"),
                   help="also compute LPIPS (AlexNet, as nerfstudio reports it) from two local files: torchvision's "
                        "AlexNet state dict (alexnet-owt-7be5be79.pth) and the lpips package's linear layers "
                        "(lpips/weights/v0.1/alex.pth); nothing is downloaded, and without it no LPIPS is computed")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def _render_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a video of a trained or generated run",
                       description="Render a 360-degree orbit around the scene, or a nerfstudio camera_path.json, "
                                   "to mp4 or gif, at exactly the size asked for.")
    p.add_argument("run", help="run directory written by `nerfgen train` or `nerfgen generate`")
    path = p.add_mutually_exclusive_group(required=True)
    path.add_argument("--orbit", action="store_true", help="circle the scene")
    path.add_argument("--camera-path", metavar="FILE",
                      help="nerfstudio camera_path.json (as saved by `nerfgen view` or nerfstudio's viewer)")
    p.add_argument("--output", required=True, help="video file (.mp4 or .gif)")
    p.add_argument("--frames", type=int, default=120, help="frames in the orbit (default 120)")
    p.add_argument("--fps", type=float, help="frames per second (default: 30 for an orbit, the file's for a path)")
    p.add_argument("--width", type=int, help="frame width (default: the training width, or the path's)")
    p.add_argument("--height", type=int, help="frame height (default: keeps the aspect)")
    p.add_argument("--depth", action="store_true", help="colour-mapped depth instead of colour")
    p.add_argument("--layout", metavar="FILE",
                   help="a generated scene: place its objects by this layout file (an edited layout.json)")
    dynamic_cli.add_render_options(p, path)
    bake_cli.add_baked_flag(p, "render from the run's bake (nerfgen bake): milliseconds a frame")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def _add_server_options(p: argparse.ArgumentParser, port_flag: str) -> None:
    p.add_argument(port_flag, type=int, default=7007, help="viewer port (default 7007)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1, this machine only; 0.0.0.0 exposes the viewer to "
                        "your network, without authentication)")


def _view_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="orbit a trained or generated run in the browser",
                       description="Serve a browser viewer of a run: orbit with the mouse, render modes, "
                                   "training cameras, camera paths. Runs until Ctrl+C.")
    p.add_argument("run", help="run directory written by `nerfgen train` or `nerfgen generate`")
    _add_server_options(p, "--port")
    p.add_argument("--max-resolution", type=int, default=512, help="longest side of a still frame (default 512)")
    bake_cli.add_baked_flag(p, "show the run's bake (nerfgen bake) while the camera moves, and the field, sharper, "
                               "once it stops")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def _demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="render the built-in tabletop scene, train on it, evaluate, render an orbit, "
                                    "export a mesh",
                       description="End to end on the embedded scene, with nothing downloaded.")
    p.add_argument("--output", default="runs/demo", help="folder for the scene data and the run (default runs/demo)")
    p.add_argument("--max-seconds", type=float, default=90, help="training time (default 90 s)")
    p.add_argument("--seed", type=int, default=0, help="scene and training seed")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    dynamic_cli.add_demo_options(p)


def _batch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="run many jobs (captures, prompts, scenes, GANs, priors) shared out over torchrun's "
                                     "ranks",
                       description="Run the jobs of a YAML file into one output tree, each by one rank alone "
                                   "(under torchrun: shared out over all ranks of all nodes). A failed job is "
                                   "recorded and the rest go on; OUTPUT/summary.json lists them all; running it "
                                   "again skips the jobs done and resumes interrupted ones.")
    p.add_argument("jobs", help="jobs file: 'jobs:' a list of {reconstruction|generation|scene|gan|prior: ..., name, "
                                "config, set} (each job named by its run kind), optional 'defaults:' config keys for all")
    p.add_argument("--output", required=True, help="folder for the jobs' run directories, records and summary")


def cmd_batch(args: argparse.Namespace) -> int:
    from nerfgen.batch import exit_code, read_jobs, run_batch

    return exit_code(run_batch(read_jobs(args.jobs), args.output), args.output)


def viewer_package():
    """``nerfgen.viewer`` (needs the ``viewer`` extra: viser)."""
    try:
        from nerfgen import viewer
    except ModuleNotFoundError as exc:
        if exc.name != "viser":
            raise
        raise ValueError("the viewer needs viser; install it with: pip install 'nerfgen[viewer]'") from exc
    return viewer


def cmd_train(args: argparse.Namespace) -> int:
    from nerfgen.api import reconstruction
    from nerfgen.config import parse_overrides

    options = {"field": args.field, "max_steps": args.max_steps, "max_seconds": args.max_seconds,
               "downscale": args.downscale, "seed": args.seed, "eval_every": args.val_every, "threads": args.threads,
               "device": args.device, **parse_overrides(args.overrides)}
    if args.data is None and not args.resume:
        raise ValueError("give the dataset to train on (DATA), or --resume a run")
    engine = reconstruction(args.data, args.output, args.config, args.resume, args.format, args.init, **options)
    server = None
    if args.viewer and engine.world.main:
        viewer = viewer_package()
        scene = viewer.ViewerScene.from_run(engine.task.live_run(args.output), getattr(engine.task, "dataset", None))
        server = viewer.Viewer(scene, host=args.host, port=args.viewer_port, training=True)
        summary = server.train(engine)
    else:
        summary = engine.run()
    rays, samples = summary.totals.get("rays", 0), summary.totals.get("samples", 0)
    print(json.dumps({"output": str(args.output), "steps": summary.steps, "seconds": round(summary.seconds, 1),
                      "rays_per_second": round(rays / max(summary.seconds, 1e-9)),
                      "samples_per_ray": round(samples / max(rays, 1), 1),
                      "final_loss": summary.figures.get("loss")}), flush=True)
    if server is not None:
        server.serve_forever()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from nerfgen.reconstruct.evaluate import evaluate

    report = evaluate(args.run, args.split, args.every, args.data, args.downscale, args.save_images, args.limit,
                      device=args.device, baked=args.baked, lpips_weights=args.lpips_weights, format=args.format)
    lpips = f"  LPIPS {report['lpips']:.4f}" if "lpips" in report else ""
    print(f"{args.run}: {report['split']} ({report['views']} views, {report['width']}x{report['height']}): "
          f"PSNR {report['psnr']:.2f} dB  SSIM {report['ssim']:.4f}{lpips}  ({report['rays_per_second']:,.0f} rays/s; "
          f"{report['appearance']})")
    print(f"wrote {Path(args.run) / ('eval_' + args.split + ('_baked' if args.baked else '') + '.json')}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from nerfgen.renderable import LayoutEditable

    run = bake_cli.open_run(args.run, args.device, args.baked, "render")
    if args.layout:
        if not isinstance(run, LayoutEditable):
            raise ValueError(f"{args.run}: a {run.info.kind.value} run has no layout; --layout is for generated scenes")
        run.open_layout(args.layout)
    n = dynamic_cli.render(args, run)  # --time / --time-sweep (dynamic runs); None without them
    if n is None and args.camera_path:
        n = run.render_path(args.camera_path, args.output, args.width, args.height, args.depth, args.fps)
    elif n is None:
        n = run.render_orbit(args.output, args.frames, args.width, args.height, args.depth, args.fps or 30)
    print(f"wrote {args.output} ({n} frames)")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    viewer = viewer_package()
    scene = viewer.ViewerScene.from_run(bake_cli.open_run(args.run, args.device, args.baked, "the viewer"))
    server = viewer.Viewer(scene, host=args.host, port=args.port, max_resolution=args.max_resolution)
    server.serve_forever()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from nerfgen import scenes
    from nerfgen.engine.checkpoint import has_checkpoint

    if args.dynamic:
        return dynamic_cli.demo(args)
    root = Path(args.output)
    data = scenes.render_dataset(root / "data", seed=args.seed)
    print(f"scene: {data}")
    run = root / "run"
    parser = build_parser()
    train = ["train", str(data), "--output", str(run), "--config", "demo", "--max-seconds", str(args.max_seconds),
             "--seed", str(args.seed), "--device", args.device]
    cmd_train(parser.parse_args(train + (["--resume"] if has_checkpoint(run) else [])))
    cmd_eval(parser.parse_args(["eval", str(run), "--split", "test", "--device", args.device]))
    cmd_render(parser.parse_args(["render", str(run), "--orbit", "--output", str(root / "orbit.mp4"), "--frames", "60",
                                  "--device", args.device]))
    return mesh_cli.cmd_export(parser.parse_args(["export", str(run), "--output", str(root / "mesh.ply"),
                                                  "--device", args.device]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nerfgen", description="Radiance fields from posed images and from text, "
                                                                 "on CPU and CUDA.")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    _render_parser(sub)
    mesh_cli.add_parser(sub)
    _view_parser(sub)
    _demo_parser(sub)
    _batch_parser(sub)
    generate_cli.add_parser(sub)
    prior_cli.add_parser(sub)
    data_cli.add_parser(sub)
    gan_cli.add_parser(sub)
    bake_cli.add_parser(sub)
    generalize_cli.add_parser(sub)
    return parser


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "render": cmd_render, "export": mesh_cli.cmd_export,
            "view": cmd_view, "demo": cmd_demo, "batch": cmd_batch,
            "generate": generate_cli.cmd_generate, "prior": prior_cli.cmd_prior, "data": data_cli.cmd_data,
            "gan": gan_cli.cmd_gan, "bake": bake_cli.cmd_bake, "generalize": generalize_cli.cmd_generalize}


TORCHRUN_COMMANDS = ("train", "generate", "gan", "prior", "batch", "generalize")
"""What runs under ``torchrun`` on several ranks: training (data-parallel) and batches (shared out)."""
BATCH_COMMANDS = ("batch",)
"""Commands whose every rank prints its own items' lines (the others print on rank 0 only)."""


def main(argv: list[str] | None = None) -> None:
    """The ``nerfgen`` command; under ``torchrun`` every rank runs it, in the job's process group."""
    from nerfgen import distributed

    if not distributed.env_world().parallel:
        _main(argv)
        return
    from torch.distributed.elastic.multiprocessing.errors import record

    record(_main)(argv)  # torchrun's failure report then carries the failing rank's traceback


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a Python warning as a person reads it: ``nerfgen: warning: <message>``, one line on
    stderr (in place of ``path/to/module.py:84: DatasetWarning: ...`` and a source line)."""
    text = " ".join(str(message).split()).removeprefix("nerfgen: ")
    print(f"nerfgen: warning: {text}", file=sys.stderr if file is None else file, flush=True)


def _main(argv: list[str] | None) -> None:
    args = build_parser().parse_args(argv)
    from nerfgen import distributed
    from nerfgen.data import DatasetError

    try:
        with warnings.catch_warnings(), distributed.launched() as world:
            warnings.showwarning = show_warning  # the command's warnings, read by a person; restored after
            if world.parallel and args.command not in TORCHRUN_COMMANDS:
                raise ValueError(f"`nerfgen {args.command}` runs in one process; start it without torchrun "
                                 f"(under torchrun: {', '.join(TORCHRUN_COMMANDS)})")
            if not world.main and args.command not in BATCH_COMMANDS and not getattr(args, "prompts", None):
                sys.stdout = open(os.devnull, "w")  # rank 0 reports for the job
            code = COMMANDS[args.command](args)
    except distributed.RankLost as exc:
        print(f"nerfgen {args.command}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except (DatasetError, FileNotFoundError, FileExistsError, ValueError, ImportError) as exc:
        print(f"nerfgen {args.command}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)
