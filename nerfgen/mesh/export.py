"""Export a model's surface to mesh files (the work behind ``nerfgen export`` and ``Run.export_mesh``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import trimesh
from torch import Tensor

from nerfgen.cameras import Orbit
from nerfgen.mesh.extract import MeshOptions, extract_mesh, field_color
from nerfgen.mesh.surface import FORMATS, Surface
from nerfgen.mesh.texture import texture_mesh
from nerfgen.render import RadianceModel

__all__ = ["CALIBRATION_VIEWS", "FORMATS", "export_mesh", "mesh_outputs", "textured_surface"]

CALIBRATION_VIEWS = 8
"""Orbit cameras the density threshold is calibrated against."""


def mesh_outputs(output: str | Path | Sequence[str | Path], formats: Sequence[str] = FORMATS) -> list[Path]:
    """``output`` (one mesh file or several) as paths, each with a known format."""
    outputs = [Path(output)] if isinstance(output, (str, Path)) else [Path(o) for o in output]
    for path in outputs:
        if path.suffix.lower() not in formats:
            raise ValueError(f"{path}: unknown mesh format {path.suffix!r} (expected one of {', '.join(formats)})")
    return outputs


def textured_surface(model: RadianceModel, mesh: trimesh.Trimesh, options: MeshOptions, outputs: list[Path]) -> Surface:
    """``mesh`` (extracted from ``model``) as a :class:`Surface`, with a texture baked from
    ``model`` when one of ``outputs`` is a .glb and ``options`` ask for colours and a texture."""
    wants = options.colors and options.texture_size > 0 and any(p.suffix.lower() == ".glb" for p in outputs)
    textured = texture_mesh(mesh, field_color(model), options.texture_size, options.texture_faces,
                            model.device) if wants else None
    return Surface(mesh, textured)


def export_mesh(model: RadianceModel, scene_box: Tensor, orbit: Orbit, output: str | Path | Sequence[str | Path],
                options: MeshOptions) -> dict:
    """Extract ``model``'s mesh in ``scene_box`` with ``options`` (the threshold calibrated from
    views on ``orbit`` unless given) and write it atomically to ``output`` (one file or several:
    one extraction, each format written; a .glb gets a UV atlas and a baked texture); returns
    what was written (counts, threshold, seconds)."""
    outputs = mesh_outputs(output)
    start = time.perf_counter()
    made = extract_mesh(model, scene_box, options, orbit.cameras(CALIBRATION_VIEWS, width=96))
    if len(made.mesh.faces) == 0:
        raise ValueError(f"{outputs[0]}: no surface at density {made.threshold:g} inside the box (try a lower --threshold)")
    surface = textured_surface(model, made.mesh, options, outputs)
    for path in outputs:
        surface.write(path)
    report = {"output": str(outputs[0]) if len(outputs) == 1 else [str(p) for p in outputs],
              "vertices": len(made.mesh.vertices), "faces": len(made.mesh.faces), "threshold": round(made.threshold, 3),
              "outline_iou": None if made.outline_iou is None else round(made.outline_iou, 4),
              "watertight": bool(made.mesh.is_watertight)}
    if surface.textured is not None:
        report["texture"] = {"size": options.texture_size, "faces": len(surface.textured.faces)}
    return {**report, "seconds": round(time.perf_counter() - start, 2)}
