"""The embedded dynamic scene: the tabletop with objects that move along known trajectories.

Time ``t`` runs over ``[0, 1]``. On the table (static, as in :mod:`~scenes.tabletop`) stand a
static cone and box, and three moving objects, each a rigid motion of a rest mesh
(:class:`Motion`):

- ``ball``: a checkered sphere rolling across the table (translation along an arc, spinning with
  it so its pattern turns as a rolling ball's does);
- ``turntable``: a striped cylinder turning half a turn about its axis (its outline stays, its
  pattern moves);
- ``lid``: a flat lid on a box, opening on a hinge along one edge from closed to 110 degrees (as
  the lego's shovel does in D-NeRF's scene).

Every point of the scene at time ``t`` is known at any other time, so besides colour and
ground-truth depth each view gets the ground-truth 3D scene flow of what it sees
(:meth:`DynamicScene.flow`). :func:`render_dynamic_dataset` writes the scene in D-NeRF's layout.

>>> scene = build_dynamic_scene()
>>> [m.name for m in scene.movers]
['ball', 'turntable', 'lid']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from nerfgen.scenes.materials import Material
from nerfgen.scenes.raycast import Raycaster
from nerfgen.scenes.tabletop import TABLE_TOP_Z, SceneObject, _table, check_bounds


def _translation(x: float, y: float, z: float) -> np.ndarray:
    return trimesh.transformations.translation_matrix((x, y, z))


def _rotation(angle: float, axis: tuple[float, float, float], point: tuple[float, float, float] | None = None
              ) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(angle, axis, point)


@dataclass
class Motion:
    """An object moving rigidly: its mesh in its own frame and where that frame is at time ``t``.

    Attributes:
        name: the object's name.
        mesh: triangle mesh in the object's frame.
        material: its albedo, in the object's frame (the pattern moves with it).
        kind: ``translate`` (along a curve, rolling), ``rotate`` (about its axis) or ``hinge``.
        smooth: shade with interpolated normals.
    """

    name: str
    mesh: trimesh.Trimesh
    material: Material
    kind: str
    smooth: bool = False

    def local_to_world(self, t: float) -> np.ndarray:
        """``[4, 4]`` the object's frame in the world at time ``t``."""
        if self.kind == "translate":  # a ball of radius 0.2 rolling along an arc on the table
            x, y = -0.55 + 1.0 * t, -0.45 + 0.35 * np.sin(np.pi * t)
            rolled = _rotation(-2.2 * np.pi * t, (0.35 * np.pi * np.cos(np.pi * t), -1.0, 0.0))
            return _translation(x, y, TABLE_TOP_Z + 0.2) @ rolled
        if self.kind == "rotate":  # a cylinder turning half a turn about its vertical axis
            return _translation(0.45, 0.45, TABLE_TOP_Z + 0.25) @ _rotation(np.pi * t, (0, 0, 1))
        if self.kind == "hinge":  # a lid on a box at (-0.45, 0.4), hinged along its -x edge
            base = _translation(-0.45, 0.4, TABLE_TOP_Z + 0.3 + 0.025)
            return base @ _rotation(-np.radians(110.0) * t, (0, 1, 0), (-0.15, 0.0, -0.025))
        raise ValueError(f"unknown motion {self.kind!r}; expected translate, rotate or hinge")

    def placed(self, t: float) -> SceneObject:
        """The object at time ``t``, as the ray caster takes it."""
        pose = self.local_to_world(t)
        mesh = self.mesh.copy()
        mesh.apply_transform(pose)
        return SceneObject(self.name, mesh, self.material, np.linalg.inv(pose), self.smooth)


@dataclass
class DynamicScene:
    """Static objects and moving ones (see the module docstring)."""

    static: list[SceneObject]
    movers: list[Motion]

    def at(self, t: float) -> list[SceneObject]:
        """Every object at time ``t`` (static ones first)."""
        return self.static + [m.placed(t) for m in self.movers]

    def caster(self, t: float, nthreads: int = 0) -> Raycaster:
        """A ray caster of the scene at time ``t``."""
        return Raycaster(self.at(t), nthreads=nthreads)

    def flow(self, object_ids: np.ndarray, points: np.ndarray, t: float, t_to: float) -> np.ndarray:
        """``[M, 3]`` where ``points [M, 3]`` on objects ``object_ids [M]`` (indices into
        :meth:`at`) at time ``t`` are at ``t_to``, minus where they are: the 3D scene flow."""
        flow = np.zeros_like(points, dtype=np.float64)
        for k, mover in enumerate(self.movers):
            sel = np.flatnonzero(object_ids == len(self.static) + k)
            if sel.size:
                move = mover.local_to_world(t_to) @ np.linalg.inv(mover.local_to_world(t))
                p = points[sel].astype(np.float64)
                flow[sel] = p @ move[:3, :3].T + move[:3, 3] - p
        return flow.astype(np.float32)


def build_dynamic_scene() -> DynamicScene:
    """The scene of the module docstring (fixed: no seed, so every variant shows the same motion)."""
    static = _table()
    cone = trimesh.creation.cone(radius=0.17, height=0.45, sections=48)
    static.append(SceneObject("cone", cone.apply_translation((0.6, 0.05, TABLE_TOP_Z)),
                              Material(color=(0.95, 0.8, 0.1)), np.eye(4)))
    base = trimesh.creation.box(extents=(0.3, 0.3, 0.3))
    base_pose = _translation(-0.45, 0.4, TABLE_TOP_Z + 0.15)
    static.append(SceneObject("lid_base", base.apply_transform(base_pose), Material(color=(0.15, 0.32, 0.88)),
                              np.linalg.inv(base_pose)))
    movers = [
        Motion("ball", trimesh.creation.icosphere(subdivisions=3, radius=0.2),
               Material(color=(0.85, 0.15, 0.12), pattern="checker", count=8), "translate", smooth=True),
        Motion("turntable", trimesh.creation.cylinder(radius=0.15, height=0.5, sections=48),
               Material(color=(0.15, 0.62, 0.22), pattern="sectors", count=10), "rotate"),
        Motion("lid", trimesh.creation.box(extents=(0.3, 0.3, 0.05)),
               Material(color=(0.98, 0.5, 0.1), pattern="checker", count=8), "hinge"),
    ]
    scene = DynamicScene(static, movers)
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        check_bounds(scene.at(t))
    return scene
