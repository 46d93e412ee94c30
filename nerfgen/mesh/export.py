"""Export a model's surface to a mesh file (the work behind ``nerfgen export`` and ``Run.export_mesh``)."""

from __future__ import annotations

import time
from pathlib import Path

from torch import Tensor

from nerfgen.cameras import Orbit
from nerfgen.files import atomic_write
from nerfgen.mesh.extract import MeshOptions, extract_mesh
from nerfgen.render import RadianceModel

FORMATS = (".ply", ".obj", ".glb", ".off", ".stl")
"""Mesh files trimesh writes (vertex colours in all but STL)."""
CALIBRATION_VIEWS = 8
"""Orbit cameras the density threshold is calibrated against."""


def export_mesh(model: RadianceModel, scene_box: Tensor, orbit: Orbit, output: str | Path, options: MeshOptions) -> dict:
    """Extract ``model``'s mesh in ``scene_box`` with ``options`` (the threshold calibrated from
    views on ``orbit`` unless given) and write it atomically to ``output``; returns what was
    written (counts, threshold, seconds)."""
    output = Path(output)
    if output.suffix.lower() not in FORMATS:
        raise ValueError(f"{output}: unknown mesh format {output.suffix!r} (expected one of {', '.join(FORMATS)})")
    start = time.perf_counter()
    made = extract_mesh(model, scene_box, options, orbit.cameras(CALIBRATION_VIEWS, width=96))
    if len(made.mesh.faces) == 0:
        raise ValueError(f"{output}: no surface at density {made.threshold:g} inside the box (try a lower --threshold)")
    atomic_write(output, lambda tmp: made.mesh.export(tmp, file_type=output.suffix.lower()[1:]))
    return {"output": str(output), "vertices": len(made.mesh.vertices), "faces": len(made.mesh.faces),
            "threshold": round(made.threshold, 3),
            "outline_iou": None if made.outline_iou is None else round(made.outline_iou, 4),
            "watertight": bool(made.mesh.is_watertight), "seconds": round(time.perf_counter() - start, 2)}
