"""A mesh from a trained radiance field: marching cubes on its density, coloured by the field.

The density is sampled on a regular grid over a box (the scene's box unless given), zero where
the occupancy grid holds nothing (rendering takes no samples there either), padded with empty
space so every surface closes, and contoured at a density threshold by open3d's flying-edges
isosurface (marching cubes' triangles, computed edge by edge). Each vertex takes the colour the
field shows when it is looked at head-on, along the inward normal (instant-ngp's mesh colours).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from torch import Tensor

from nerfgen.cameras import Cameras
from nerfgen.mesh.raycast import MeshCaster
from nerfgen.render import RadianceModel


@dataclass
class MeshOptions:
    """How :func:`extract_mesh` contours a field."""

    resolution: int = 256
    """Grid points along the box's longest side (the others keep the cells cubic)."""
    threshold: float | None = None
    """Density (per world unit, as the field outputs it) at which the surface lies; None picks the
    one whose outlines best match the field's own renders (:func:`calibrate_threshold`)."""
    min_component: float = 0.01
    """Drop connected pieces with fewer than this fraction of the largest piece's triangles
    (floaters); 0 keeps every piece."""
    box: tuple[float, ...] | None = None
    """``(xmin, ymin, zmin, xmax, ymax, zmax)`` to mesh; None: the scene's (finest-cascade) box."""
    colors: bool = True
    """Colour the vertices from the field (and bake textures for .glb files)."""
    texture_size: int = 1024
    """Texels along each side of the texture baked into .glb files (0: vertex colours there too)."""
    texture_faces: int = 10000
    """Triangles a textured mesh is simplified to before its UV atlas (the texture keeps the colour detail)."""


def grid_axes(box: Tensor, resolution: int) -> tuple[list[Tensor], float]:
    """Grid coordinates along x, y, z and their spacing: ``resolution`` points on the longest side
    of ``box`` (ends included), the same spacing on the others."""
    size = box[3:] - box[:3]
    cell = float(size.max()) / (resolution - 1)
    return [box[i] + cell * torch.arange(int(math.floor(float(size[i]) / cell + 1e-6)) + 1) for i in range(3)], cell


@torch.no_grad()
def sample_grid(values: Callable[[Tensor], Tensor], axes: list[Tensor], device: str | torch.device = "cpu",
                chunk: int = 1 << 18) -> Tensor:
    """``[nx, ny, nz]`` (on the CPU) ``values(points [N, 3]) -> [N]`` at the grid points ``axes``
    (x index first), asked on ``device`` a slab of x at a time."""
    shape = [len(a) for a in axes]
    out = torch.zeros(math.prod(shape))
    xs, ys, zs = (a.to(device) for a in axes)
    plane = torch.stack(torch.meshgrid(ys, zs, indexing="ij"), -1).reshape(-1, 2)
    rows = max(1, chunk // plane.shape[0])
    for start in range(0, shape[0], rows):  # slabs of x
        x = xs[start:start + rows]
        points = torch.cat([x.repeat_interleave(plane.shape[0])[:, None], plane.repeat(len(x), 1)], 1)
        out[start * plane.shape[0]:(start + len(x)) * plane.shape[0]] = values(points).float().reshape(-1).cpu()
    return out.view(shape)


def density_grid(model: RadianceModel, axes: list[Tensor], chunk: int = 1 << 18) -> Tensor:
    """``[nx, ny, nz]`` density at the grid points ``axes`` (x index first); zero in cells the
    sampler marks empty (:meth:`nerfgen.render.Sampler.occupied`) and outside the field's box."""

    def density(points: Tensor) -> Tensor:
        keep = model.sampler.occupied(points)
        sigma = torch.zeros(points.shape[0], device=points.device)
        if keep.any():
            sigma[keep] = model.field.density(points[keep]).float()
        return sigma

    return sample_grid(density, axes, model.device, chunk)


def isosurface(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Triangles where ``values [nx, ny, nz]`` crosses ``level``, facing away from the side above
    it: vertices ``[V, 3]`` in grid units (x first), faces ``[F, 3]``."""
    import open3d as o3d

    shifted = values.astype(np.float32) - level
    shifted[shifted == 0] = -1e-6  # a grid point exactly at the level would put several triangles' corners on it
    padded = np.pad(shifted, 1, constant_values=-1.0)  # closes surfaces at the box
    # open3d reads volume[z, y, x]; handing it [x, y, z] reversed keeps its vertices in (x, y, z) order.
    mesh = o3d.t.geometry.TriangleMesh.create_isosurfaces(o3d.core.Tensor(np.ascontiguousarray(padded.transpose(2, 1, 0))),
                                                          [0.0])
    if "positions" not in mesh.vertex or len(mesh.vertex.positions) == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)
    return mesh.vertex.positions.numpy() - 1.0, mesh.triangle.indices.numpy().astype(np.int64)


def drop_small_pieces(mesh: trimesh.Trimesh, fraction: float) -> trimesh.Trimesh:
    """Keep the connected pieces with at least ``fraction`` of the largest piece's triangles."""
    if fraction <= 0 or len(mesh.faces) == 0:
        return mesh
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    sizes = np.bincount(labels)
    keep = sizes[labels] >= fraction * sizes.max()
    mesh.update_faces(keep)
    mesh.remove_unreferenced_vertices()
    return mesh


def field_color(model: RadianceModel) -> Callable[[Tensor, Tensor], Tensor]:
    """``(positions [N, 3], outward unit normals [N, 3]) -> rgb [N, 3]``: the colour ``model``'s field
    shows at each point when looked at head-on from outside (along the inward normal)."""

    def color(positions: Tensor, normals: Tensor) -> Tensor:
        return model.field(positions, -normals).rgb

    return color


@torch.no_grad()
def vertex_colors(mesh: trimesh.Trimesh, color: Callable[[Tensor, Tensor], Tensor], device: str | torch.device = "cpu",
                  chunk: int = 1 << 16) -> np.ndarray:
    """``[V, 3]`` uint8: ``color`` (e.g. :func:`field_color`) at ``mesh``'s vertices, with their normals."""
    vertices, normals = np.asarray(mesh.vertices), np.asarray(mesh.vertex_normals)
    out = []
    for start in range(0, len(vertices), chunk):
        positions = torch.tensor(vertices[start:start + chunk], dtype=torch.float32, device=device)
        outward = torch.tensor(normals[start:start + chunk], dtype=torch.float32, device=device)
        out.append(color(positions, torch.nn.functional.normalize(outward, dim=-1)).float().clamp(0, 1).cpu())
    return (torch.cat(out) * 255 + 0.5).byte().numpy()


@dataclass
class Extracted:
    """What :func:`extract_mesh` made: the mesh, the density threshold it used and, when the
    threshold was calibrated, the outline agreement (IoU) it reached."""

    mesh: trimesh.Trimesh
    threshold: float
    outline_iou: float | None = None


def extract_mesh(model: RadianceModel, scene_box: Tensor, options: MeshOptions | None = None,
                 views: Cameras | None = None) -> Extracted:
    """The surface of ``model``'s density as a (vertex-coloured) mesh in world coordinates, with
    outward-facing triangles.

    Args:
        model: a trained model (``nerfgen.load_run(...).model``).
        scene_box: ``[6]`` the box to mesh when ``options.box`` is None.
        options: resolution, threshold, floater removal, colours.
        views: cameras to calibrate the threshold against when ``options.threshold`` is None.
    """
    opts = options or MeshOptions()
    if opts.resolution < 2:
        raise ValueError(f"mesh resolution must be at least 2 (got {opts.resolution})")
    box = torch.as_tensor(opts.box if opts.box is not None else scene_box, dtype=torch.float32)
    if box.shape != (6,) or not bool((box[3:] > box[:3]).all()):
        raise ValueError(f"mesh box must be 6 numbers xmin ymin zmin xmax ymax zmax with max > min (got {box.tolist()})")
    axes, cell = grid_axes(box, opts.resolution)
    grid = density_grid(model, axes).numpy()
    threshold, iou = opts.threshold, None
    if threshold is None:
        if views is None:
            raise ValueError("extract_mesh: give a density threshold or views to calibrate it against")
        threshold, iou = calibrate_threshold(model, grid, cell, box[:3].numpy(), views)
    vertices, faces = isosurface(grid, threshold)
    mesh = trimesh.Trimesh(vertices * cell + box[:3].numpy(), faces, process=False)
    mesh.merge_vertices()
    mesh = drop_small_pieces(mesh, opts.min_component)
    if opts.colors and len(mesh.vertices):
        mesh.visual.vertex_colors = vertex_colors(mesh, field_color(model), model.device)
    return Extracted(mesh, threshold, iou)


def calibrate_threshold(model: RadianceModel, grid: np.ndarray, cell: float, origin: np.ndarray,
                        views: Cameras) -> tuple[float, float]:
    """The density threshold whose mesh outlines best match the field's renders from ``views``.

    A field's density has no scale of its own (a short or soft training run leaves surfaces at
    densities of a few per unit, a long one at hundreds), so the threshold is measured: meshes
    of every other grid point at thresholds 1/8, 1/4, ... 1024 (then half-octaves around the
    best) are cast from the views, and the one whose hits best match (IoU) the pixels where
    the field's opacity exceeds 1/2 wins.

    Returns:
        ``(threshold, iou)``.
    """
    background = torch.ones(3)
    seen = [model.render_camera(views, i, background).opacity > 0.5 for i in range(len(views))]
    coarse = grid[::2, ::2, ::2]

    def score(level: float) -> float:
        vertices, faces = isosurface(coarse, level)
        caster = MeshCaster(trimesh.Trimesh(vertices * 2 * cell + origin, faces, process=False))
        hits = [caster.render(views, i, background).hit for i in range(len(views))]
        inter = sum(int((h & s).sum()) for h, s in zip(hits, seen))
        union = sum(int((h | s).sum()) for h, s in zip(hits, seen))
        return inter / max(union, 1)

    scores = {2.0**k: score(2.0**k) for k in range(-3, 11)}
    best = max(scores, key=scores.get)
    for level in (best / math.sqrt(2), best * math.sqrt(2)):
        scores[level] = score(level)
    best = max(scores, key=scores.get)
    return best, scores[best]
