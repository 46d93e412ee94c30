"""``nerfgen generate``: prompts in, radiance-field runs out (one run directory per prompt)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
"""The YAML configs shipped beside the package: ``generate_{prior}.yaml`` per prior."""
PRIOR_NAMES = ("builtin", "stable-diffusion", "deepfloyd-if")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``generate`` on the ``nerfgen`` command's subparsers."""
    p = sub.add_parser(
        "generate", help="generate a 3D object from a text prompt (score distillation)",
        description="Optimise a radiance field until its renders look right to a text-conditioned diffusion "
                    "prior (DreamFusion's score distillation). Writes a run directory per prompt: model + "
                    "config (opened by `nerfgen view` / `nerfgen render --orbit`), previews/, preview.png, orbit.mp4.",
    )
    p.add_argument("prompt", nargs="?", help="the text prompt (or use --prompts)")
    p.add_argument("--prompts", help="text file with one prompt a line (blank lines and # comments skipped); "
                                     "each prompt runs in turn into OUTPUT/NN-slug")
    p.add_argument("--output", required=True, help="run directory (a parent folder with --prompts)")
    p.add_argument("--prior", choices=PRIOR_NAMES, help="diffusion prior (default: builtin, or the config's)")
    p.add_argument("--config", help="YAML config (default: configs/generate_{prior}.yaml); flags override it")
    p.add_argument("--model", help="prior weights: a local folder or a Hugging Face repo id in the local cache")
    p.add_argument("--steps", type=int, help="optimisation steps")
    p.add_argument("--max-seconds", type=float, help="stop after this much time per prompt")
    p.add_argument("--seed", type=int, help="random seed (a run is repeatable for a seed)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale")
    p.add_argument("--negative-prompt", help="what to steer away from")
    p.add_argument("--clip-guidance", type=float,
                   help="builtin prior: scale of its noisy image-text guidance (default: the weights'; 0: off)")
    p.add_argument("--preview-every", type=int, help="steps between preview images (0: only at the end)")
    p.add_argument("--device", help="cpu | cuda | auto (default auto)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace existing run directories")


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


def slug(text: str, limit: int = 48) -> str:
    """A folder name for a prompt: lower-case words joined by dashes.

    >>> slug("A red, ceramic teapot!")
    'a-red-ceramic-teapot'
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].rstrip("-") or "prompt"


def _config(args: argparse.Namespace):
    from nerfgen.generate.config import load_config

    prior = args.prior or "builtin"
    path = args.config or CONFIGS / f"generate_{prior.replace('-', '_')}.yaml"
    overrides = {"prior": args.prior, "model": args.model, "steps": args.steps, "max_seconds": args.max_seconds,
                 "seed": args.seed, "guidance": args.guidance, "negative_prompt": args.negative_prompt,
                 "clip_guidance": args.clip_guidance,
                 "preview_every": args.preview_every, "device": args.device, "threads": args.threads}
    return load_config(path, overrides)


def cmd_generate(args: argparse.Namespace) -> int:
    from nerfgen.engine.config import resolve_device
    from nerfgen.generate.trainer import GenerationRun
    from nerfgen.prior import build_prior

    if (args.prompt is None) == (args.prompts is None):
        raise ValueError("give either a PROMPT or --prompts FILE")
    prompts = [args.prompt] if args.prompt is not None else read_prompts(args.prompts)
    output = Path(args.output)
    outputs = [output] if args.prompt is not None else [output / f"{i:02d}-{slug(p)}" for i, p in enumerate(prompts)]
    for out in outputs:
        if (out / "config.json").exists() and not args.overwrite:
            raise FileExistsError(f"{out}: already holds a run; pass --overwrite or pick another --output")
    config = _config(args)
    device = resolve_device(config.device)
    prior = build_prior(config.prior, config.model, device)
    for prompt, out in zip(prompts, outputs):
        summary = GenerationRun(prompt, config, prior, out, device).run()
        print(json.dumps({"prompt": prompt, "output": str(out), "steps": summary.steps,
                          "seconds": round(summary.seconds, 1), "orbit": str(out / "orbit.mp4")
                          if config.orbit_frames > 0 else None}))
    return 0
