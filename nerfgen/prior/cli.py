"""``nerfgen prior train | export | sample``: train the built-in prior, ship its weights, look at it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "prior.yaml"
"""The config the shipped weights were trained with."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``prior train``, ``prior export`` and ``prior sample`` under the ``nerfgen`` command."""
    p = sub.add_parser("prior", help="train or sample the built-in diffusion prior",
                       description="The built-in pixel-space diffusion prior (offline, no downloaded weights).")
    prior_sub = p.add_subparsers(dest="prior_command", required=True)
    t = prior_sub.add_parser("train", help="render the object library and train the prior on it",
                             description="Render the procedural object library, embed its captions and train "
                                         "the camera-conditioned noise predictor. The defaults reproduce the shipped weights.")
    t.add_argument("--output", required=True, help="run folder (training set cache, checkpoints, model.safetensors)")
    t.add_argument("--config", default=None, help=f"YAML config (default: {CONFIG.name}, the shipped weights' config)")
    t.add_argument("--steps", type=int, help="optimisation steps (overrides the config)")
    t.add_argument("--minutes", type=float, help="time budget in minutes (overrides the config)")
    t.add_argument("--seed", type=int, help="training seed (overrides the config)")
    t.add_argument("--threads", type=int, help="CPU threads (overrides the config's 2)")
    t.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    e = prior_sub.add_parser("export", help="store a trained run's weights in fp16 (as the shipped ones)",
                             description="Write a run's EMA weights in fp16 with their JSON config: the shipped "
                                         "nerfgen/prior/weights/builtin.safetensors is `prior export RUN`.")
    e.add_argument("run", help="run folder of `nerfgen prior train` (or a .safetensors file)")
    e.add_argument("--output", default=None, help="destination .safetensors (default: the package's shipped weights)")
    s = prior_sub.add_parser("sample", help="DDIM samples of a prompt across azimuths, as a PNG grid",
                             description="Sample the prior for a prompt from --views azimuths (one row per seed).")
    s.add_argument("prompt", help='text prompt, e.g. "a red cube"')
    s.add_argument("--output", required=True, help="PNG file to write")
    s.add_argument("--model", default=None, help="weights (.safetensors or a training folder; default: shipped)")
    s.add_argument("--views", type=int, default=8, help="azimuths, evenly spaced from 0 (default 8)")
    s.add_argument("--rows", type=int, default=1, help="independent samples per view (default 1)")
    s.add_argument("--elevation", type=float, default=15.0, help="camera elevation in degrees (default 15)")
    s.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance scale (default 5)")
    s.add_argument("--clip-guidance", type=float, default=None,
                   help="scale of the noisy image-text model's guidance (default: the weights'; 0: off)")
    s.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    s.add_argument("--seed", type=int, default=0, help="noise seed")
    s.add_argument("--scale", type=int, default=4, help="upscale factor of the PNG (default 4)")


def _train_config(args: argparse.Namespace):
    import yaml

    from nerfgen.prior.train import config_from_dict, read_config

    output = Path(args.output)
    if args.resume:
        if not (output / "state.json").is_file():
            raise FileNotFoundError(f"{output / 'state.json'}: nothing to resume (no checkpoint in {output})")
        config = read_config(output)
    else:
        if (output / "state.json").exists():
            raise FileExistsError(f"{output}: already holds a run; pass --resume or pick another --output")
        path = Path(args.config) if args.config else CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config file not found")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: malformed YAML ({exc})") from exc
        config = config_from_dict(values, str(path))
    for key in ("steps", "minutes", "seed", "threads"):
        if getattr(args, key) is not None:
            setattr(config, key, getattr(args, key))
    return config


def cmd_train(args: argparse.Namespace) -> int:
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from nerfgen.engine.checkpoint import write_json
    from nerfgen.prior.guide import guide_path
    from nerfgen.prior.guide_train import train_guide
    from nerfgen.prior.train import PriorTrainer, config_to_dict, prepare

    config = _train_config(args)
    torch.set_num_threads(max(1, config.threads))
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "config.json", config_to_dict(config))
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, transient=False, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("render", total=config.views.n_objects, info="")

        def rendered(done: int, total: int) -> None:
            bar.update(task, completed=done)
            if not bar.console.is_terminal and done % 100 == 0:
                print(f"prior train: rendered {done}/{total} objects", file=sys.stderr, flush=True)

        views, text = prepare(config, output, rendered)
        bar.update(task, completed=config.views.n_objects)
        trainer = PriorTrainer(config, output, resume=args.resume)
        task = bar.add_task("train", total=config.steps, info="", completed=trainer.step)
        last = [0.0]

        def report(step: int, seconds: float, loss: float) -> None:
            bar.update(task, completed=step, info=f"loss {loss:.4f}  {seconds:,.0f}s")
            if not bar.console.is_terminal and time.monotonic() - last[0] > 30:
                last[0] = time.monotonic()
                print(f"prior train: step {step}/{config.steps} loss {loss:.4f} {seconds:,.0f}s", file=sys.stderr, flush=True)

        trainer.train(views, text, report)
        guide = guide_path(output / "model.safetensors")
        if config.guide.steps > 0 and not guide.is_file():
            task = bar.add_task("guide", total=config.guide.steps, info="")

            def guide_report(step: int, seconds: float, loss: float) -> None:
                bar.update(task, completed=step, info=f"loss {loss:.3f}  {seconds:,.0f}s")
                if not bar.console.is_terminal and time.monotonic() - last[0] > 30:
                    last[0] = time.monotonic()
                    print(f"prior train: guide step {step}/{config.guide.steps} loss {loss:.3f}", file=sys.stderr, flush=True)

            train_guide(views, text, config.guide, output, guide_report)
    print(json.dumps({"output": str(output), "steps": trainer.step, "seconds": round(trainer.seconds, 1),
                      "images": int(views.images.shape[0]), "final_loss": trainer.history[-1][1] if trainer.history else None,
                      "guide": str(guide) if guide.is_file() else None}))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from nerfgen.prior.builtin import ddim_sample, load_builtin_prior, orbit_views

    if args.views < 1 or args.rows < 1:
        raise ValueError(f"--views and --rows must be >= 1, got {args.views} and {args.rows}")
    prior = load_builtin_prior(args.model, "cpu")
    if args.clip_guidance is not None:
        prior.guide_scale = args.clip_guidance
    prompt = prior.encode_prompt(args.prompt)
    rows = []
    for row in range(args.rows):
        g = torch.Generator().manual_seed(args.seed + row)
        views = orbit_views(args.views, args.elevation)
        images = ddim_sample(prior, prompt, views, args.guidance, args.steps, g)  # [V, 3, R, R]
        rows.append(torch.cat(list(images), dim=2))  # [3, R, V R]
    grid = (torch.cat(rows, dim=1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    image = Image.fromarray(grid)
    image = image.resize((image.width * args.scale, image.height * args.scale), Image.NEAREST)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    image.save(args.output)
    print(f"wrote {args.output} ({args.rows} x {args.views} samples of {args.prompt!r})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nerfgen.prior.builtin import WEIGHTS, export_weights

    out = export_weights(args.run, args.output or WEIGHTS)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.with_suffix('.json')}")
    return 0


def cmd_prior(args: argparse.Namespace) -> int:
    """Dispatch ``nerfgen prior <train|export|sample>``."""
    return {"train": cmd_train, "export": cmd_export, "sample": cmd_sample}[args.prior_command](args)
