"""``nerfgen export``: a trained or generated run -> a vertex-coloured triangle mesh file."""

from __future__ import annotations

import argparse
import json

from nerfgen.dynamic import cli as dynamic_cli


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``export`` on the ``nerfgen`` command's subparsers."""
    p = sub.add_parser(
        "export", help="export a run's surface as a mesh (marching cubes on the density)",
        description="Contour a trained (or generated) run's density on a grid and write a vertex-coloured "
                    "triangle mesh (.ply, .obj, .glb, .off, .stl). Without --threshold the density level is "
                    "calibrated so the mesh's outlines match the field's own renders from orbit views.",
    )
    p.add_argument("run", help="run directory written by `nerfgen train` or `nerfgen generate`")
    p.add_argument("--output", required=True, help="mesh file (.ply, .obj, .glb, .off, .stl)")
    p.add_argument("--resolution", type=int, default=256, help="grid points along the box's longest side (default 256)")
    p.add_argument("--threshold", type=float,
                   help="density at the surface (default: calibrated against the field's renders)")
    p.add_argument("--box", type=float, nargs=6, metavar=("XMIN", "YMIN", "ZMIN", "XMAX", "YMAX", "ZMAX"),
                   help="region to mesh (default: the scene's box)")
    p.add_argument("--min-component", type=float, default=0.01,
                   help="drop pieces with fewer triangles than this fraction of the largest (default 0.01; 0 keeps all)")
    p.add_argument("--no-colors", action="store_true", help="geometry only")
    p.add_argument("--device", default="auto", help="cpu | cuda[:n] | auto (default: auto, CUDA when torch sees a GPU)")
    dynamic_cli.add_export_options(p)


def cmd_export(args: argparse.Namespace) -> int:
    from nerfgen.kinds import load_run
    from nerfgen.renderable import renderable

    run = renderable(load_run(args.run, args.device), "export")
    print(json.dumps(run.export_mesh(args.output, resolution=args.resolution, threshold=args.threshold,
                                     min_component=args.min_component, box=tuple(args.box) if args.box else None,
                                     colors=not args.no_colors, **dynamic_cli.export_options(args, run))))
    return 0
