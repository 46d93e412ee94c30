"""The embedded default scene: a procedural textured tabletop built from trimesh primitives.

World frame: z up, metres-ish units, the table top is a slab centred at the origin (top face at
``z = TABLE_TOP_Z``) with a parquet texture; 4-6 primitives with distinct colours stand on it.
Everything lies inside ``[-SCENE_BOUND, SCENE_BOUND]^3`` (the NeRF loader's aabb is +-1.5).

>>> objects = build_tabletop(seed=0)
>>> objects[0].name
'table_top'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import trimesh
from nerfgen.scenes.materials import Material

SCENE_BOUND = 1.2
"""Every vertex of the scene lies in [-SCENE_BOUND, SCENE_BOUND]^3."""
TABLE_HALF = 1.0
"""Half side of the square table top (x and y)."""
TABLE_THICKNESS = 0.1
TABLE_TOP_Z = 0.5 * TABLE_THICKNESS
"""Height of the table's top face; the slab is centred at the origin."""

_WOOD = Material(color=(0.72, 0.50, 0.30), pattern="parquet", color2=(0.55, 0.34, 0.18), period=0.125)
_LEG = Material(color=(0.30, 0.20, 0.12))
_PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.85, 0.15, 0.12),  # red
    (0.15, 0.62, 0.22),  # green
    (0.15, 0.32, 0.88),  # blue
    (0.95, 0.80, 0.10),  # yellow
    (0.62, 0.22, 0.78),  # purple
    (0.98, 0.50, 0.10),  # orange
    (0.10, 0.72, 0.80),  # cyan
)
_KINDS = ("sphere", "box", "cylinder", "cone", "torus", "capsule")


@dataclass
class SceneObject:
    """One mesh of the scene with its material.

    Attributes:
        name: Unique, human-readable name (``"table_top"``, ``"sphere"``...).
        mesh: Triangle mesh in world coordinates.
        material: Albedo description, evaluated in the local frame.
        world_to_local: [4, 4] rigid transform taking world points into the frame the
            material's pattern is defined in.
        smooth: Shade with interpolated vertex normals (curved surfaces) instead of face normals.
    """

    name: str
    mesh: trimesh.Trimesh
    material: Material
    world_to_local: np.ndarray
    smooth: bool = False


def _place(mesh: trimesh.Trimesh, local_to_world: np.ndarray) -> trimesh.Trimesh:
    """Return a copy of ``mesh`` moved by ``local_to_world`` [4, 4]."""
    out = mesh.copy()
    out.apply_transform(local_to_world)
    return out


def _object(name: str, mesh: trimesh.Trimesh, material: Material, local_to_world: np.ndarray,
            smooth: bool = False) -> SceneObject:
    return SceneObject(name, _place(mesh, local_to_world), material,
                       np.linalg.inv(local_to_world), smooth)


def _table() -> list[SceneObject]:
    """Table top slab (centred at the origin) and four legs."""
    eye = np.eye(4)
    top = trimesh.creation.box(extents=(2 * TABLE_HALF, 2 * TABLE_HALF, TABLE_THICKNESS))
    objects = [_object("table_top", top, _WOOD, eye)]
    leg_len = 1.1
    leg = trimesh.creation.box(extents=(0.1, 0.1, leg_len))
    for i, (sx, sy) in enumerate(((1, 1), (-1, 1), (-1, -1), (1, -1))):
        pose = trimesh.transformations.translation_matrix(
            (0.85 * sx, 0.85 * sy, -0.5 * TABLE_THICKNESS - 0.5 * leg_len))
        objects.append(_object(f"leg_{i}", leg, _LEG, pose))
    return objects


def _primitive(kind: str, rng: np.random.Generator) -> tuple[trimesh.Trimesh, float, float, bool, np.ndarray]:
    """Random-size primitive in its local (pattern) frame.

    Returns:
        (mesh in its local frame, footprint radius, z offset of the local origin above the
        table top once standing, smooth shading flag, [4, 4] rotation that makes it stand).
    """
    eye = np.eye(4)
    u = rng.uniform
    if kind == "sphere":
        r = u(0.18, 0.28)
        return trimesh.creation.icosphere(subdivisions=4, radius=r), r, r, True, eye
    if kind == "box":
        ext = (u(0.2, 0.4), u(0.2, 0.4), u(0.25, 0.5))
        return trimesh.creation.box(extents=ext), 0.5 * float(np.hypot(ext[0], ext[1])), 0.5 * ext[2], False, eye
    if kind == "cylinder":
        r, h = u(0.12, 0.2), u(0.3, 0.6)
        return trimesh.creation.cylinder(radius=r, height=h, sections=64), r, 0.5 * h, False, eye
    if kind == "cone":
        r, h = u(0.15, 0.22), u(0.35, 0.6)
        return trimesh.creation.cone(radius=r, height=h, sections=64), r, 0.0, False, eye
    if kind == "torus":
        big, small = u(0.16, 0.22), u(0.05, 0.075)
        mesh = trimesh.creation.torus(big, small, major_sections=64, minor_sections=24)
        return mesh, big + small, small, True, eye
    if kind == "capsule":  # lying on its side: local z is horizontal
        r, h = u(0.08, 0.12), u(0.2, 0.35)
        mesh = trimesh.creation.capsule(height=h, radius=r, count=[32, 32])
        lie = trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0))
        return mesh, 0.5 * h + r, r, True, lie
    raise ValueError(f"unknown primitive kind {kind!r}; expected one of {_KINDS}")


_PATTERN_OF_KIND = {
    "sphere": dict(pattern="checker", count=8),
    "cylinder": dict(pattern="sectors", count=12),
    "torus": dict(pattern="sectors", count=16),
    "capsule": dict(pattern="bands", period=0.1),
}


def _layout(footprints: list[float], rng: np.random.Generator, gap: float = 0.06,
            restarts: int = 50, tries: int = 200) -> np.ndarray:
    """Non-overlapping xy centres [n, 2] for discs of the given radii on the table.

    Rejection sampling, largest disc first, restarting from scratch when one does not fit.
    """
    order = np.argsort(footprints)[::-1]
    for _ in range(restarts):
        centres = np.zeros((len(footprints), 2))
        placed: list[int] = []
        for i in order:
            lim = TABLE_HALF - 0.08 - footprints[i]
            for _ in range(tries):
                c = rng.uniform(-lim, lim, size=2)
                if all(np.linalg.norm(c - centres[j]) >= footprints[i] + footprints[j] + gap for j in placed):
                    centres[i] = c
                    placed.append(i)
                    break
            else:
                break
        if len(placed) == len(footprints):
            return centres
    raise RuntimeError(f"could not place {len(footprints)} objects on the table after {restarts} restarts")


def build_tabletop(seed: int = 0) -> list[SceneObject]:
    """Build the procedural tabletop scene.

    Table (parquet-textured slab centred at the origin, top face at ``TABLE_TOP_Z``, four legs)
    plus 4-6 primitives chosen from sphere, box, cylinder, cone, torus, capsule, with distinct
    solid colours and, for curved ones, a two-tone pattern. Deterministic for a seed.

    Args:
        seed: Seed of the layout, sizes, colours and choice of primitives.

    Returns:
        List of :class:`SceneObject`; the table top comes first, then the legs, then the
        primitives (named by kind).
    """
    rng = np.random.default_rng([seed, 0x7AB1E])
    n = int(rng.integers(4, 7))
    kinds = [str(k) for k in rng.choice(_KINDS, size=n, replace=False)]
    colors = rng.permutation(len(_PALETTE))[:n]
    shapes = [_primitive(k, rng) for k in kinds]
    centres = _layout([s[1] for s in shapes], rng)
    objects = _table()
    for kind, (mesh, _, lift, smooth, stand), xy, ci in zip(kinds, shapes, centres, colors):
        yaw = trimesh.transformations.rotation_matrix(rng.uniform(0, 2 * np.pi), (0, 0, 1))
        pose = trimesh.transformations.translation_matrix((xy[0], xy[1], TABLE_TOP_Z + lift)) @ yaw @ stand
        material = Material(color=_PALETTE[ci], **_PATTERN_OF_KIND.get(kind, {}))
        objects.append(_object(kind, mesh, material, pose, smooth))
    check_bounds(objects)
    return objects


def check_bounds(objects: list[SceneObject], bound: float = SCENE_BOUND) -> None:
    """Raise ``ValueError`` if any vertex lies outside ``[-bound, bound]^3``."""
    for obj in objects:
        worst = float(np.abs(obj.mesh.vertices).max())
        if worst > bound:
            raise ValueError(f"object {obj.name!r} reaches |coord| = {worst:.3f} > {bound}")


def scene_digest(objects: list[SceneObject]) -> str:
    """Content hash (hex sha256) of geometry, materials and frames, to stamp rendered datasets."""
    h = hashlib.sha256()
    for obj in objects:
        h.update(repr((obj.name, obj.material, obj.smooth)).encode())
        h.update(np.ascontiguousarray(obj.mesh.vertices, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(obj.mesh.faces, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(obj.world_to_local, dtype=np.float64).tobytes())
    return h.hexdigest()


def to_trimesh_scene(objects: list[SceneObject]) -> trimesh.Scene:
    """Pack the objects into a ``trimesh.Scene`` (solid base colours), e.g. for export/viewing."""
    scene = trimesh.Scene()
    for obj in objects:
        mesh = obj.mesh.copy()
        mesh.visual.face_colors = np.append(np.asarray(obj.material.color) * 255, 255).astype(np.uint8)
        scene.add_geometry(mesh, node_name=obj.name, geom_name=obj.name)
    return scene
