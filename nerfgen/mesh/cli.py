"""``nerfgen export``: a trained or generated run -> a triangle mesh file (vertex colours, or a
UV atlas with a baked texture in .glb)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nerfgen.dynamic import cli as dynamic_cli
from nerfgen.mesh.surface import FORMATS


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``export`` on the ``nerfgen`` command's subparsers."""
    p = sub.add_parser(
        "export", help="export a run's surface as a mesh (marching cubes on the density)",
        description="Contour a trained (or generated) run's density on a grid and write a closed triangle "
                    "mesh: .glb with a UV atlas and a texture baked from the field (PBR base colour), .ply/.obj/.off "
                    "with vertex colours, .stl bare. Without --threshold the density level is calibrated so the "
                    "mesh's outlines match the field's own renders from orbit views.",
    )
    p.add_argument("run", help="run directory written by `nerfgen train` or `nerfgen generate`")
    p.add_argument("--output", help="mesh file (.ply, .obj, .glb, .off, .stl; default RUN/mesh.FORMAT)")
    p.add_argument("--format", choices=[f[1:] for f in FORMATS],
                   help="mesh format when --output is not given (default ply); must match --output's suffix if both are")
    p.add_argument("--resolution", type=int, default=256, help="grid points along the box's longest side (default 256)")
    p.add_argument("--threshold", type=float,
                   help="density at the surface (default: calibrated against the field's renders)")
    p.add_argument("--box", type=float, nargs=6, metavar=("XMIN", "YMIN", "ZMIN", "XMAX", "YMAX", "ZMAX"),
                   help="region to mesh (default: the scene's box)")
    p.add_argument("--min-component", type=float, default=0.01,
                   help="drop pieces with fewer triangles than this fraction of the largest (default 0.01; 0 keeps all)")
    p.add_argument("--no-colors", action="store_true", help="geometry only")
    p.add_argument("--texture-size", type=int, default=1024,
                   help="texels along each side of a .glb's baked texture (default 1024; 0: vertex colours)")
    p.add_argument("--texture-faces", type=int, default=10000,
                   help="triangles a .glb's textured mesh is simplified to before its UV atlas (default 10000)")
    p.add_argument("--device", default="auto", help="cpu | cuda[:n] | auto (default: auto, CUDA when torch sees a GPU)")
    dynamic_cli.add_export_options(p)


def output_path(args: argparse.Namespace) -> Path:
    """The mesh file ``--output`` / ``--format`` ask for (``RUN/mesh.FORMAT`` without ``--output``)."""
    if args.output is None:
        return Path(args.run) / f"mesh.{args.format or 'ply'}"
    output = Path(args.output)
    if args.format is not None and output.suffix.lower() != f".{args.format}":
        raise ValueError(f"--output {output} is not a .{args.format} file (--format {args.format})")
    return output


def cmd_export(args: argparse.Namespace) -> int:
    from nerfgen.kinds import load_run
    from nerfgen.renderable import renderable

    output = output_path(args)
    if args.texture_size < 0 or 0 < args.texture_size < 16 or args.texture_faces < 4:
        raise ValueError(f"--texture-size must be 0 or at least 16 (got {args.texture_size}) and --texture-faces "
                         f"at least 4 (got {args.texture_faces})")
    run = renderable(load_run(args.run, args.device), "export")
    print(json.dumps(run.export_mesh(output, resolution=args.resolution, threshold=args.threshold,
                                     min_component=args.min_component, box=tuple(args.box) if args.box else None,
                                     colors=not args.no_colors, texture_size=args.texture_size,
                                     texture_faces=args.texture_faces, **dynamic_cli.export_options(args, run))))
    return 0
