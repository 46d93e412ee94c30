"""Any scalar field's surface as a watertight mesh, vertex-coloured and textured: the door other
stages (an SDF refinement, a generation's products) use to write meshes.

``values(positions [N, 3]) -> [N]`` is a density (inside where it is above ``level``) or a signed
distance (``inside="below"``: inside where it is below ``level``, usually 0). ``color`` is a
:data:`~nerfgen.mesh.texture.ColorFn` ``(positions [N, 3], outward unit normals [N, 3]) -> rgb
[N, 3]`` in [0, 1], or a :class:`~nerfgen.render.RadianceModel` (its field's colour seen head-on).

>>> surface = surface_mesh(sdf, 0.0, color, box=(-1, -1, -1, 1, 1, 1), inside="below")  # doctest: +SKIP
>>> surface.write("object.glb")    # UV atlas + baked texture, PBR material               # doctest: +SKIP
>>> surface.write("object.ply")    # the full-resolution mesh with vertex colours         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import trimesh
from torch import Tensor

from nerfgen.files import atomic_write
from nerfgen.mesh.extract import drop_small_pieces, field_color, grid_axes, isosurface, sample_grid, vertex_colors
from nerfgen.mesh.texture import ColorFn, texture_mesh
from nerfgen.render import RadianceModel

FORMATS = (".ply", ".obj", ".glb", ".off", ".stl")
"""Mesh files a :class:`Surface` writes (.glb textured, the others with vertex colours, STL bare)."""


@dataclass
class Surface:
    """A closed surface: ``mesh`` at full resolution (vertex colours when coloured) and, when a
    texture was baked, ``textured`` (simplified, UV atlas, base colour texture)."""

    mesh: trimesh.Trimesh
    textured: trimesh.Trimesh | None = None

    def write(self, output: str | Path) -> Path:
        """Write atomically: ``.glb`` gets the textured mesh (the vertex-coloured one when there is
        none), every other format the vertex-coloured mesh."""
        output = Path(output)
        suffix = output.suffix.lower()
        if suffix not in FORMATS:
            raise ValueError(f"{output}: unknown mesh format {suffix!r} (expected one of {', '.join(FORMATS)})")
        mesh = self.textured if suffix == ".glb" and self.textured is not None else self.mesh
        atomic_write(output, lambda tmp: mesh.export(tmp, file_type=suffix[1:]))
        return output


def contour(values: Callable[[Tensor], Tensor], box: Sequence[float], resolution: int = 256, level: float = 0.0,
            inside: str = "above", min_component: float = 0.01, device: str | torch.device = "cpu") -> trimesh.Trimesh:
    """The closed surface where ``values`` crosses ``level`` inside ``box`` (``xmin ymin zmin xmax
    ymax zmax``, sampled with ``resolution`` points along its longest side), triangles facing out
    of the ``inside`` side; pieces under ``min_component`` of the largest dropped."""
    if inside not in ("above", "below"):
        raise ValueError(f"inside must be 'above' (a density) or 'below' (a signed distance), not {inside!r}")
    box_t = torch.as_tensor(box, dtype=torch.float32)
    if box_t.shape != (6,) or not bool((box_t[3:] > box_t[:3]).all()) or resolution < 2:
        raise ValueError(f"contour: box must be 6 numbers with max > min and resolution >= 2 "
                         f"(got {box_t.tolist()}, {resolution})")
    axes, cell = grid_axes(box_t, resolution)
    grid = sample_grid(values, axes, device).numpy()
    sign = 1.0 if inside == "above" else -1.0
    vertices, faces = isosurface(sign * grid, sign * level)
    mesh = trimesh.Trimesh(vertices * cell + box_t[:3].numpy(), faces, process=False)
    mesh.merge_vertices()
    return drop_small_pieces(mesh, min_component)


def surface_mesh(values: Callable[[Tensor], Tensor], level: float, color: ColorFn | RadianceModel | None,
                 box: Sequence[float], resolution: int = 256, inside: str = "above", texture_size: int = 1024,
                 texture_faces: int = 10000, min_component: float = 0.01,
                 device: str | torch.device = "cpu") -> Surface:
    """:func:`contour` of ``values`` at ``level``, its vertices coloured by ``color`` and (unless
    ``texture_size`` is 0 or there is no colour) a textured copy simplified to ``texture_faces``."""
    mesh = contour(values, box, resolution, level, inside, min_component, device)
    if len(mesh.faces) == 0:
        raise ValueError(f"no surface at level {level:g} inside the box {list(box)}")
    return colored_surface(mesh, color, texture_size, texture_faces, device)


def colored_surface(mesh: trimesh.Trimesh, color: ColorFn | RadianceModel | None, texture_size: int = 1024,
                    texture_faces: int = 10000, device: str | torch.device = "cpu") -> Surface:
    """``mesh`` with vertex colours from ``color`` and a textured copy (see :func:`surface_mesh`)."""
    if color is None:
        return Surface(mesh)
    if isinstance(color, RadianceModel):
        color, device = field_color(color), color.device
    mesh.visual.vertex_colors = vertex_colors(mesh, color, device)
    textured = texture_mesh(mesh, color, texture_size, texture_faces, device) if texture_size > 0 else None
    return Surface(mesh, textured)
