"""``nerfgen generate``: prompts in, radiance-field runs out (one run directory per prompt)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nerfgen.batch import Job, exit_code, prompt_jobs, run_batch

PRIOR_NAMES = ("builtin", "stable-diffusion", "deepfloyd-if")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``generate`` on the ``nerfgen`` command's subparsers."""
    p = sub.add_parser(
        "generate", help="generate a 3D object from a text prompt (score distillation)",
        description="Optimise a radiance field until its renders look right to a text-conditioned diffusion "
                    "prior (DreamFusion's score distillation). Writes a run directory per prompt: model + "
                    "config (opened by `nerfgen view` / `nerfgen render --orbit`), previews/, preview.png, orbit.mp4, "
                    "mesh.ply, mesh.glb (textured). --scene makes a scene of several objects (layout.json, "
                    "scene.glb). --resume continues an interrupted run; --viewer shows the object forming.",
    )
    p.add_argument("prompt", nargs="?", help="the text prompt (or use --prompts)")
    p.add_argument("--scene", action="store_true",
                   help="a scene of several objects: the prompt is split into objects and relations ('a red cube "
                        "on a blue sphere'), laid out (OUTPUT/layout.json), one field per object, composed")
    p.add_argument("--layout", help="a scene from a layout JSON file (objects, their prompts and boxes) instead of "
                                    "a prompt's (implies --scene; a PROMPT given too is what the whole scene is "
                                    "scored against)")
    p.add_argument("--prompts", help="text file with one prompt a line (blank lines and # comments skipped); "
                                     "each prompt into OUTPUT/NN-slug, one after another (under torchrun shared "
                                     "out over the ranks); a failed one is recorded in OUTPUT/summary.json")
    p.add_argument("--output", required=True, help="run directory (a parent folder with --prompts)")
    p.add_argument("--prior", choices=PRIOR_NAMES, help="diffusion prior (default: builtin, or the config's)")
    p.add_argument("--config", help="YAML config: a shipped one by name or a file (default: generate_{prior}); "
                                    "flags override it")
    p.add_argument("--model", help="prior weights: a local folder or a Hugging Face repo id in the local cache")
    p.add_argument("--max-steps", "--steps", dest="max_steps", type=int, help="optimisation steps")
    p.add_argument("--max-seconds", type=float, help="stop after this much time per prompt")
    p.add_argument("--refine", action="store_true",
                   help="after the coarse steps, refine the object into a solid surface with crisp edges (a "
                        "signed-distance field fitted to the coarse one, refined by score distillation at a higher "
                        "resolution; the config's refine section; with --scene, each object in the layout)")
    p.add_argument("--refine-steps", type=int, help="refinement steps (implies --refine)")
    p.add_argument("--seed", type=int, help="random seed (a run is repeatable for a seed)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale")
    p.add_argument("--negative-prompt", help="what to steer away from")
    p.add_argument("--clip-guidance", type=float,
                   help="builtin prior: scale of its noisy image-text guidance (default: the weights'; 0: off)")
    p.add_argument("--preview-every", type=int, help="steps between preview images (0: only at the end)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (--resume continues from the last)")
    p.add_argument("--device", help="cpu | cuda | auto (default auto)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace existing run directories")
    p.add_argument("--resume", action="store_true",
                   help="continue the run(s) in --output from their last checkpoint (finished ones are left as they are)")
    p.add_argument("--viewer", action="store_true",
                   help="serve the browser viewer while generating (one prompt); it stays up until Ctrl+C")
    p.add_argument("--viewer-port", type=int, default=7007, help="viewer port (default 7007)")
    p.add_argument("--host", default="127.0.0.1", help="viewer address (default 127.0.0.1, this machine only)")


def read_prompts(path: str | Path) -> list[str]:
    """Prompts of a text file, one a line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prompt file not found")
    prompts = [line.strip() for line in path.read_text().splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise ValueError(f"{path}: no prompts in it (expected one prompt a line)")
    return prompts


def _options(args: argparse.Namespace) -> dict:
    """The config keys the flags set (None: unset)."""
    return {"prior": args.prior, "model": args.model, "max_steps": args.max_steps, "max_seconds": args.max_seconds,
            "seed": args.seed, "guidance": args.guidance, "negative_prompt": args.negative_prompt,
            "clip_guidance": args.clip_guidance, "eval_every": args.preview_every,
            "checkpoint_every": args.checkpoint_every, "device": args.device, "threads": args.threads,
            "refine": _refine_options(args)}


def _refine_options(args: argparse.Namespace) -> dict | None:
    """The ``refine`` section the flags set (None: none)."""
    if not (getattr(args, "refine", False) or getattr(args, "refine_steps", None) is not None):
        return None
    return {"enabled": True, **({"steps": args.refine_steps} if args.refine_steps is not None else {})}


def cmd_generate(args: argparse.Namespace) -> int:
    import shutil

    from nerfgen.engine.checkpoint import has_checkpoint
    from nerfgen.generate.api import generation, scene_generation
    from nerfgen.kinds import RUN_FILE, RunKind

    scene = args.scene or args.layout is not None
    if args.layout is not None and args.prompts is not None:
        raise ValueError("--layout is one scene; give it without --prompts")
    if (args.prompt is None) == (args.prompts is None) and not (args.resume and args.prompts is None) and not (
            args.layout is not None and args.prompts is None):
        raise ValueError("give either a PROMPT or --prompts FILE")
    output = Path(args.output)
    jobs = None
    if args.prompts is not None:
        options = {k: v for k, v in _options(args).items() if v is not None}
        jobs = prompt_jobs(read_prompts(args.prompts), RunKind.SCENE if scene else RunKind.GENERATION, args.config,
                           options)
    outputs = [output] if jobs is None else [output / job.name for job in jobs]
    if args.viewer and len(outputs) > 1:
        raise ValueError("--viewer shows one prompt at a time; give a PROMPT, not --prompts")
    for out in outputs:
        if (out / RUN_FILE).exists() and not (args.overwrite or args.resume):
            raise FileExistsError(f"{out}: already holds a run; pass --resume, --overwrite or pick another --output")
    if jobs is not None:
        return _run_prompts(jobs, output, args)
    resume = args.resume and has_checkpoint(output)
    if args.overwrite and not resume and output.exists():
        shutil.rmtree(output)
    if scene:
        engine = scene_generation(args.prompt, output, args.config, resume, None, None if resume else args.layout,
                                  **_options(args))
    else:
        engine = generation(args.prompt, output, args.config, resume, None, **_options(args))
    if resume and engine.finished:
        print(f"{output}: already finished ({engine.step} steps)", file=sys.stderr)
        return 0
    print(f"generating {engine.task.prompt!r} with the {engine.config.prior} prior into {output}", file=sys.stderr)
    summary = _run(engine, args, output)
    print(json.dumps({"prompt": engine.task.prompt, "output": str(output), "steps": summary.steps,
                      "seconds": round(summary.seconds, 1),
                      "orbit": str(output / "orbit.mp4") if engine.config.orbit_frames > 0 else None,
                      **({"objects": [o.prompt for o in engine.task.layout.objects]} if scene else {})}),
          flush=True)
    return 0


def _run_prompts(jobs: list[Job], output: Path, args: argparse.Namespace) -> int:
    """A prompt file as a batch: the prompts shared out over the job's ranks (each generated by one
    rank alone), a failed one recorded while the rest go on, ``summary.json`` at the end; 1 if any failed."""
    import shutil

    from nerfgen import distributed
    from nerfgen.batch import record_path

    world = distributed.current()
    if args.overwrite and not args.resume and world.main:
        for job in jobs:
            shutil.rmtree(output / job.name, ignore_errors=True)
            record_path(output, job.name).unlink(missing_ok=True)
    world.barrier()
    return exit_code(run_batch(jobs, output, world), output)


def _run(engine, args: argparse.Namespace, out: Path):
    """Run ``engine``, with the live viewer when asked (serving until Ctrl+C afterwards)."""
    if not args.viewer:
        return engine.run()
    from nerfgen.cli import viewer_package

    viewer = viewer_package()
    scene = viewer.ViewerScene.from_run(engine.task.live_run(out))
    server = viewer.Viewer(scene, host=args.host, port=args.viewer_port, training=True)
    summary = server.train(engine)
    server.serve_forever()
    return summary
