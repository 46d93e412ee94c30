"""``nerfgen prior train | export | sample``: train the built-in prior, ship its weights, look at it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``prior train``, ``prior export`` and ``prior sample`` under the ``nerfgen`` command."""
    p = sub.add_parser("prior", help="train or sample the built-in diffusion prior",
                       description="The built-in pixel-space diffusion prior (offline, no downloaded weights).")
    prior_sub = p.add_subparsers(dest="prior_command", required=True)
    t = prior_sub.add_parser("train", help="render the object library and train the prior on it",
                             description="Render the procedural object library, embed its captions and train "
                                         "the camera-conditioned noise predictor. The defaults reproduce the shipped weights.")
    t.add_argument("--output", required=True, help="run folder (training set cache, checkpoints, model.safetensors)")
    t.add_argument("--config", default=None,
                   help="YAML config: a shipped one by name or a file (default: prior, the shipped weights' config)")
    t.add_argument("--max-steps", type=int, help="optimisation steps (overrides the config)")
    t.add_argument("--max-seconds", type=float, help="time budget in seconds (overrides the config)")
    t.add_argument("--seed", type=int, help="training seed (overrides the config)")
    t.add_argument("--threads", type=int, help="CPU threads (overrides the config's 2)")
    t.add_argument("--device", help="cpu, cuda[:n] or auto (default: the config's, auto)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --output from its last checkpoint (the UNet, then the guidance model)")
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


def cmd_train(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from nerfgen.prior.api import report_rendering, guide_training, prior_training
    from nerfgen.prior.guide import guide_path

    output = Path(args.output)
    options = {"max_steps": args.max_steps, "max_seconds": args.max_seconds, "seed": args.seed,
               "threads": args.threads, "device": args.device}
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("render", total=None)

        def rendered(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            if not bar.console.is_terminal:
                report_rendering(done, total)

        engine = prior_training(output, args.config, args.resume, rendered, **options)
    summary = engine.run()
    guide_training(engine)
    guide = guide_path(output / "model.safetensors")
    history = engine.task.history
    print(json.dumps({"output": str(output), "steps": summary.steps, "seconds": round(summary.seconds, 1),
                      "images": int(engine.task.views.images.shape[0]),
                      "final_loss": history[-1][1] if history else None,
                      "guide": str(guide) if guide.is_file() else None}))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from nerfgen.cameras import orbit_views
    from nerfgen.prior.builtin import VIEW_DISTANCE, ddim_sample, load_builtin_prior

    if args.views < 1 or args.rows < 1:
        raise ValueError(f"--views and --rows must be >= 1, got {args.views} and {args.rows}")
    prior = load_builtin_prior(args.model, "cpu")
    if args.clip_guidance is not None:
        prior.guide_scale = args.clip_guidance
    prompt = prior.encode_prompt(args.prompt)
    rows = []
    for row in range(args.rows):
        g = torch.Generator().manual_seed(args.seed + row)
        views = orbit_views(args.views, args.elevation, VIEW_DISTANCE)
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
