"""Export a run directory's surface to a mesh file (the work behind ``nerfgen export``)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from nerfgen.engine.checkpoint import atomic_write
from nerfgen.engine.config import resolve_device
from nerfgen.engine.model import load_model
from nerfgen.engine.video import orbit_path
from nerfgen.mesh.extract import MeshOptions, extract_mesh

FORMATS = (".ply", ".obj", ".glb", ".off", ".stl")
"""Mesh files trimesh writes (vertex colours in all but STL)."""
CALIBRATION_VIEWS = 8
"""Orbit cameras the density threshold is calibrated against."""


def export_run(run_dir: str | Path, output: str | Path, options: MeshOptions, device: str = "auto") -> dict:
    """Extract ``run_dir``'s mesh with ``options`` (:class:`~nerfgen.mesh.MeshOptions`) and write
    it atomically to ``output``; returns what was written (counts, threshold, seconds)."""
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
