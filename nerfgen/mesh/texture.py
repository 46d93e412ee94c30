"""Textured meshes: a UV atlas over a triangle mesh, a texture baked from a colour function, and a
glTF binary (.glb) with a PBR material whose ``baseColorTexture`` is that texture.

The atlas comes from xatlas (charts cut along creases, packed into a square of ``size`` texels
with a few texels between charts). Each texel whose centre falls in a chart's triangle (or within
:data:`CONSERVATIVE` texels of it) is baked by asking the colour function about the 3D point the
texel stands for (its barycentric position on the triangle, with the interpolated normal); the
baked charts are then grown by :data:`DILATION` texels into the empty space around them, so
bilinear filtering and mip-maps at chart borders blend chart colours, not the background.

>>> mesh = trimesh.creation.icosphere(subdivisions=3)                              # doctest: +SKIP
>>> textured = texture_mesh(mesh, lambda p, n: (n + 1) / 2, size=512)                  # doctest: +SKIP
>>> write_glb(textured, "sphere.glb")                                                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh
from torch import Tensor

from nerfgen.files import atomic_write

ColorFn = Callable[[Tensor, Tensor], Tensor]
"""``(positions [N, 3], outward unit normals [N, 3]) -> rgb [N, 3]`` in [0, 1]."""
PADDING = 4
"""Texels xatlas keeps between charts (and from the texture's edge)."""
DILATION = 4
"""Texels each chart's colours are grown past its border (at most ``PADDING``: charts stay apart)."""
CONSERVATIVE = 0.75
"""Texels whose centre lies within this many texels outside a triangle are baked from it (the
point clamped onto the triangle): thin slivers of a chart still get their own colour."""


@dataclass
class Atlas:
    """A mesh cut open along its charts' seams and laid flat.

    Attributes:
        vertices: ``[V', 3]`` the mesh's vertices, repeated where a seam splits one.
        faces: ``[F, 3]`` the same triangles, indexing ``vertices``.
        uv: ``[V', 2]`` texture coordinates in [0, 1] (OpenGL convention: v = 0 is the image's bottom row).
        source: ``[V']`` which original vertex each one is.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    source: np.ndarray


def uv_atlas(mesh: trimesh.Trimesh, size: int = 1024, padding: int = PADDING) -> Atlas:
    """Charts of ``mesh`` packed into a ``size`` x ``size`` texture by xatlas."""
    import xatlas

    if len(mesh.faces) == 0:
        raise ValueError("uv_atlas: the mesh has no triangles")
    atlas = xatlas.Atlas()
    atlas.add_mesh(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.uint32))
    charts = xatlas.ChartOptions()
    charts.max_iterations = 1  # one chart-growing pass: the default 4 costs 3x the time for a few % fewer seams
    pack = xatlas.PackOptions()
    pack.resolution, pack.padding, pack.bilinear, pack.blockAlign = size, padding, True, True
    atlas.generate(charts, pack)
    if atlas.atlas_count != 1:
        raise RuntimeError(f"uv_atlas: xatlas packed the charts into {atlas.atlas_count} textures, not one")
    source, faces, uv = atlas[0]  # uv normalised to the atlas xatlas made (it may be larger than asked)
    return Atlas(np.asarray(mesh.vertices)[source], faces.astype(np.int64), uv.astype(np.float32), source.astype(np.int64))


def _pixel_corners(uv: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """``[F, 3, 2]`` triangle corners in texel units, x right and y down (row 0 at the top)."""
    px = np.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size], -1)
    return px[faces].astype(np.float64)


def rasterize(corners: np.ndarray, size: int, margin: float = 0.0, chunk: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """Which triangle covers each texel centre, and where.

    Args:
        corners: ``[F, 3, 2]`` triangles in texel units (x right, y down).
        margin: texel centres up to this far outside a triangle count as covered (their
            barycentric coordinates clamped onto it).

    Returns:
        ``face [S, S]`` (-1 where none) and ``bary [S, S, 3]`` barycentric coordinates.
    """
    face = np.full(size * size, -1, np.int64)
    bary = np.zeros((size * size, 3), np.float32)
    lo = np.clip(np.ceil(corners.min(1) - 0.5 - margin), 0, size).astype(np.int64)  # [F, 2]
    hi = np.clip(np.floor(corners.max(1) - 0.5 + margin), -1, size - 1).astype(np.int64)
    extent = np.maximum(hi - lo + 1, 0)  # [F, 2]
    count = extent[:, 0] * extent[:, 1]
    ends = np.cumsum(count)
    start = 0
    while start < len(corners):  # chunks of triangles with at most ``chunk`` candidate texels
        stop = max(int(np.searchsorted(ends, (ends[start - 1] if start else 0) + chunk, side="right")), start + 1)
        ids = np.repeat(np.arange(start, stop), count[start:stop])
        first = np.repeat(np.cumsum(count[start:stop]) - count[start:stop], count[start:stop])
        offset = np.arange(len(ids)) - first
        x = lo[ids, 0] + offset % extent[ids, 0]
        y = lo[ids, 1] + offset // extent[ids, 0]
        w, dist = _barycentric(corners[ids], np.stack([x + 0.5, y + 0.5], -1))
        keep = dist.min(1) >= -margin
        w = np.clip(w[keep], 0.0, None)
        pixel = y[keep] * size + x[keep]
        face[pixel] = ids[keep]
        bary[pixel] = w / np.maximum(w.sum(1, keepdims=True), 1e-12)
        start = stop
    return face.reshape(size, size), bary.reshape(size, size, 3)


def _barycentric(tri: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric coordinates ``[N, 3]`` of points ``p [N, 2]`` in triangles ``tri [N, 3, 2]``, and
    each point's signed distance ``[N, 3]`` to the edge opposite each corner (positive inside)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]

    def edge(u, v, q):  # twice the signed area of (u, v, q)
        return (v[:, 0] - u[:, 0]) * (q[:, 1] - u[:, 1]) - (v[:, 1] - u[:, 1]) * (q[:, 0] - u[:, 0])

    area = edge(a, b, c)
    sign = np.where(area < 0, -1.0, 1.0)
    e = np.stack([edge(b, c, p), edge(c, a, p), edge(a, b, p)], -1) * sign[:, None]
    lengths = np.stack([np.linalg.norm(c - b, axis=1), np.linalg.norm(a - c, axis=1), np.linalg.norm(b - a, axis=1)], -1)
    safe = np.where(np.abs(area) > 1e-12, np.abs(area), np.inf)[:, None]
    return e / safe, e / np.maximum(lengths, 1e-12)


def dilate(image: np.ndarray, filled: np.ndarray, steps: int) -> np.ndarray:
    """Grow ``image [S, S, C]``'s ``filled [S, S]`` texels ``steps`` texels outwards: each new
    texel takes the mean of its filled 8-neighbours."""
    image, filled = image.astype(np.float32).copy(), filled.copy()
    for _ in range(steps):
        total = np.zeros_like(image)
        count = np.zeros(filled.shape, np.float32)
        padded_img = np.pad(image * filled[..., None], ((1, 1), (1, 1), (0, 0)))
        padded_fill = np.pad(filled.astype(np.float32), 1)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy or dx:
                    total += padded_img[1 + dy:1 + dy + image.shape[0], 1 + dx:1 + dx + image.shape[1]]
                    count += padded_fill[1 + dy:1 + dy + image.shape[0], 1 + dx:1 + dx + image.shape[1]]
        grow = ~filled & (count > 0)
        image[grow] = total[grow] / count[grow][:, None]
        filled = filled | grow
    return image


@torch.no_grad()
def bake(atlas: Atlas, normals: np.ndarray, color: ColorFn, size: int, device: str | torch.device = "cpu",
         chunk: int = 1 << 16) -> np.ndarray:
    """``[S, S, 3]`` uint8: ``color`` at the surface point each texel of ``atlas`` stands for.

    Args:
        atlas: the mesh laid out in texture space.
        normals: ``[V', 3]`` outward unit normals at ``atlas.vertices`` (interpolated per texel).
        color: the colour function (called on ``device``, in chunks of ``chunk`` points).
    """
    corners = _pixel_corners(atlas.uv, atlas.faces, size)
    face, bary = rasterize(corners, size, margin=CONSERVATIVE)
    exact_face, exact_bary = rasterize(corners, size)
    inside = exact_face >= 0
    face[inside], bary[inside] = exact_face[inside], exact_bary[inside]  # a texel inside one triangle keeps it
    filled = face >= 0
    tri = atlas.faces[face[filled]]  # [T, 3]
    w = bary[filled][..., None]
    points = (atlas.vertices[tri] * w).sum(1)
    along = (normals[tri] * w).sum(1)
    colours = np.zeros((len(points), 3), np.float32)
    for s in range(0, len(points), chunk):
        p = torch.tensor(points[s:s + chunk], dtype=torch.float32, device=device)
        n = torch.nn.functional.normalize(torch.tensor(along[s:s + chunk], dtype=torch.float32, device=device), dim=-1)
        colours[s:s + chunk] = color(p, n).float().clamp(0, 1).cpu().numpy()
    image = np.zeros((size, size, 3), np.float32)
    image[filled] = colours
    image = dilate(image, filled, DILATION)
    return (image * 255 + 0.5).clip(0, 255).astype(np.uint8)


def simplify(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """``mesh`` with at most ``max_faces`` triangles (open3d's quadric decimation); unchanged when
    it has no more, or when simplifying would open a closed mesh."""
    import open3d as o3d

    if len(mesh.faces) <= max_faces:
        return mesh
    o3d_mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(mesh.vertices, np.float64)),
                                         o3d.utility.Vector3iVector(np.asarray(mesh.faces, np.int32)))
    o3d_mesh = o3d_mesh.simplify_quadric_decimation(max_faces)
    simple = trimesh.Trimesh(np.asarray(o3d_mesh.vertices), np.asarray(o3d_mesh.triangles), process=False)
    simple.merge_vertices()
    simple.update_faces(simple.nondegenerate_faces())
    simple.remove_unreferenced_vertices()
    return simple if simple.is_watertight or not mesh.is_watertight else mesh


def texture_mesh(mesh: trimesh.Trimesh, color: ColorFn, size: int = 1024, max_faces: int = 10000,
                 device: str | torch.device = "cpu") -> trimesh.Trimesh:
    """``mesh`` (world coordinates, outward triangles; simplified to ``max_faces`` triangles) with
    a UV atlas and a ``size`` x ``size`` texture baked from ``color``, as a :class:`trimesh.Trimesh`
    with a PBR material (base colour texture, no metal, fully rough) that :func:`write_glb` writes."""
    from PIL import Image

    if size < 16:
        raise ValueError(f"texture size must be at least 16 texels (got {size})")
    mesh = simplify(mesh, max_faces)
    atlas = uv_atlas(mesh, size)
    normals = np.asarray(mesh.vertex_normals)[atlas.source]
    image = bake(atlas, normals, color, size, device)
    material = trimesh.visual.material.PBRMaterial(name="surface", baseColorTexture=Image.fromarray(image, "RGB"),
                                                   metallicFactor=0.0, roughnessFactor=1.0, doubleSided=False)
    visual = trimesh.visual.TextureVisuals(uv=atlas.uv, material=material)
    return trimesh.Trimesh(atlas.vertices, atlas.faces, visual=visual, process=False)


def texture_image(mesh: trimesh.Trimesh) -> np.ndarray | None:
    """``[H, W, 3]`` uint8 base colour texture of a textured mesh (None for other meshes)."""
    visual = mesh.visual
    if visual.kind != "texture" or visual.material is None:
        return None
    image = getattr(visual.material, "baseColorTexture", None) or getattr(visual.material, "image", None)
    return None if image is None else np.asarray(image.convert("RGB"))


def write_glb(mesh: trimesh.Trimesh | trimesh.Scene, output: str | Path) -> Path:
    """Write ``mesh`` (or a scene of meshes) atomically as glTF binary."""
    output = Path(output)
    atomic_write(output, lambda tmp: mesh.export(tmp, file_type="glb"))
    return output
