"""``nerfgen export``: a trained or generated run -> a vertex-coloured triangle mesh file."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

FORMATS = (".ply", ".obj", ".glb", ".off", ".stl")
"""Mesh files trimesh writes (vertex colours in all but STL)."""
CALIBRATION_VIEWS = 8
"""Orbit cameras the density threshold is calibrated against."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``export`` on the ``nerfgen`` command's subparsers."""
    p = sub.add_parser(
        "export", help="export a run's surface as a mesh (marching cubes on the density)",
        description="Contour a trained (or generated) run's density on a grid and write a vertex-coloured "
                    "triangle mesh (.ply, .obj, .glb, .off, .stl). Without --threshold the density level is "
                    "calibrated so the mesh's outlines match the field's own renders from orbit views.",
    )
    p.add_argument("run", help="run directory written by `nerfgen train` or `nerfgen generate`")
    p.add_argument("--output", required=True, help=f"mesh file ({', '.join(FORMATS)})")
    p.add_argument("--resolution", type=int, default=256, help="grid points along the box's longest side (default 256)")
    p.add_argument("--threshold", type=float,
                   help="density at the surface (default: calibrated against the field's renders)")
    p.add_argument("--box", type=float, nargs=6, metavar=("XMIN", "YMIN", "ZMIN", "XMAX", "YMAX", "ZMAX"),
                   help="region to mesh (default: the scene's box)")
    p.add_argument("--min-component", type=float, default=0.01,
                   help="drop pieces with fewer triangles than this fraction of the largest (default 0.01; 0 keeps all)")
    p.add_argument("--no-colors", action="store_true", help="geometry only")
    p.add_argument("--device", default="auto", help="cpu | cuda[:n] | auto (default: auto, CUDA when torch sees a GPU)")


def export_run(run_dir: str | Path, output: str | Path, options, device: str = "auto") -> dict:
    """Extract ``run_dir``'s mesh with ``options`` (:class:`~nerfgen.mesh.MeshOptions`) and write
    it atomically to ``output``; returns what was written (counts, threshold, seconds)."""
    import torch

    from nerfgen.engine.checkpoint import atomic_write
    from nerfgen.engine.config import resolve_device
    from nerfgen.engine.model import load_model
    from nerfgen.engine.video import orbit_path
    from nerfgen.mesh.extract import extract_mesh

    output = Path(output)
    if output.suffix.lower() not in FORMATS:
        raise ValueError(f"{output}: unknown mesh format {output.suffix!r} (expected one of {', '.join(FORMATS)})")
    start = time.perf_counter()
    run = load_model(run_dir, resolve_device(device))
    views = orbit_path(run.meta["orbit"], CALIBRATION_VIEWS, width=96)
    made = extract_mesh(run.model, torch.tensor(run.meta["aabb"]), options, views)
    if len(made.mesh.faces) == 0:
        raise ValueError(f"{run_dir}: no surface at density {made.threshold:g} inside the box (try a lower --threshold)")
    atomic_write(output, lambda tmp: made.mesh.export(tmp, file_type=output.suffix.lower()[1:]))
    return {"output": str(output), "vertices": len(made.mesh.vertices), "faces": len(made.mesh.faces),
            "threshold": round(made.threshold, 3),
            "outline_iou": None if made.outline_iou is None else round(made.outline_iou, 4),
            "watertight": bool(made.mesh.is_watertight), "seconds": round(time.perf_counter() - start, 2)}


def cmd_export(args: argparse.Namespace) -> int:
    from nerfgen.mesh.extract import MeshOptions

    options = MeshOptions(resolution=args.resolution, threshold=args.threshold, min_component=args.min_component,
                          box=tuple(args.box) if args.box else None, colors=not args.no_colors)
    print(json.dumps(export_run(args.run, args.output, options, args.device)))
    return 0
