"""``nerfgen bake RUN``: bake a run's radiance field into a sparse voxel grid in its directory."""

from __future__ import annotations

import argparse
import json

DEVICE_HELP = "cpu | cuda[:n] | auto (default: auto, CUDA when torch sees a GPU)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    from nerfgen.bake.build import BakeConfig

    d = BakeConfig()
    p = sub.add_parser("bake", help="bake a run into a sparse voxel grid that renders in milliseconds (--baked)",
                       description="Turn a run's radiance field into a sparse voxel grid of density and "
                                   "spherical-harmonic colour, kept only where the occupancy grid says, written "
                                   "into the run directory (baked.safetensors + baked.json). `nerfgen view`, "
                                   "`render` and `eval` use it with --baked.")
    p.add_argument("run", help="run directory (a reconstruction or a generated object)")
    p.add_argument("--resolution", type=int, default=d.resolution,
                   help=f"voxels per axis (default {d.resolution}; a multiple of the occupancy grid's)")
    p.add_argument("--sh-degree", type=int, default=d.sh_degree,
                   help=f"spherical-harmonic degree of the colour, 0-3 (default {d.sh_degree})")
    p.add_argument("--min-alpha", type=float, default=d.min_alpha,
                   help=f"opacity over one voxel above which a voxel is kept with its neighbours (default {d.min_alpha})")
    p.add_argument("--directions", type=int, default=d.directions,
                   help=f"view directions each voxel's colour is fitted to (default {d.directions})")
    p.add_argument("--finetune", type=float, default=d.finetune_seconds, metavar="SECONDS",
                   help="then fine-tune the baked values against the training images for this long "
                        "(reconstruction runs; default 0: no fine-tuning)")
    p.add_argument("--early-stop", type=float, default=d.early_stop_eps,
                   help=f"transmittance at which a baked render stops a ray (default {d.early_stop_eps})")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def cmd_bake(args: argparse.Namespace) -> int:
    from nerfgen.bake.build import BakeConfig
    from nerfgen.bake.run import bake

    config = BakeConfig(resolution=args.resolution, sh_degree=args.sh_degree, min_alpha=args.min_alpha,
                        directions=args.directions, finetune_seconds=args.finetune, early_stop_eps=args.early_stop)
    config.validate("nerfgen bake")
    stats = bake(args.run, config, args.device)
    print(json.dumps({"run": str(args.run), **stats}), flush=True)
    return 0


def add_baked_flag(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--baked`` on a command that renders a run (view, render, eval)."""
    p.add_argument("--baked", action="store_true", help=help_text)


def open_run(run_dir: str, device: str, baked: bool, what: str):
    """The run in ``run_dir`` as a :class:`~nerfgen.renderable.Renderable`: its bake with
    ``baked`` (:func:`~nerfgen.bake.load_baked`), else the run itself (an error naming ``what``
    where it renders no scene)."""
    from nerfgen.kinds import load_run
    from nerfgen.renderable import renderable

    if baked:
        from nerfgen.bake.run import load_baked

        return load_baked(run_dir, device)
    return renderable(load_run(run_dir, device), what)
