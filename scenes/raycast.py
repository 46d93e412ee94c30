"""CPU ray caster for :class:`~scenes.tabletop.SceneObject` lists (open3d / Embree).

Shading is Lambert under one directional light with hard shadows:

.. math::

    c = a(x) \\, \\big(k_a + (1 - k_a) \\, v(x) \\max(0, n \\cdot l)\\big)

with albedo ``a`` from the hit object's procedural material, ambient ``k_a = 0.3``, ``v`` the
light visibility from a second (shadow) cast toward ``l`` and ``n`` the shading normal facing
the viewer. open3d is imported lazily, on the first :class:`Raycaster`.

>>> from nerfgen.scenes.tabletop import build_tabletop
>>> caster = Raycaster(build_tabletop(0))
>>> hits = caster.cast(np.array([[0.0, 0.0, 3.0]]), np.array([[0.0, 0.0, -1.0]]))
>>> bool(hits.mask[0])
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nerfgen.scenes.cameras import pixel_rays
from nerfgen.scenes.materials import albedo
from nerfgen.scenes.tabletop import SceneObject

LIGHT_DIR = np.array([0.45, 0.30, 1.0]) / np.linalg.norm([0.45, 0.30, 1.0])
"""Unit direction *toward* the directional light (world frame)."""
AMBIENT = 0.3
SHADOW_EPS = 1e-3
"""Shadow rays start this far from the surface along its geometric normal."""


def _open3d():
    try:
        import open3d
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("scenes.raycast needs open3d (pip install open3d-cpu) to render") from err
    return open3d


@dataclass
class Hits:
    """First hits of N rays, packed: per-hit arrays hold only the M rays that hit something.

    Attributes:
        t: [N] float32 distance along the unit ray direction, ``inf`` on a miss.
        object_ids: [N] int64 index into the object list, -1 on a miss.
        ray_indices: [M] int64 indices of the rays that hit, ascending.
        points: [M, 3] float32 hit points ``o + t d``.
        geo_normals: [M, 3] float32 unit face normals, flipped to face the ray origin.
        normals: [M, 3] float32 unit shading normals (interpolated on smooth objects), on the
            same side as ``geo_normals``.
    """

    t: np.ndarray
    object_ids: np.ndarray
    ray_indices: np.ndarray
    points: np.ndarray
    geo_normals: np.ndarray
    normals: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """[N] bool, true where the ray hit something."""
        return self.object_ids >= 0


@dataclass
class ViewRender:
    """One rendered view.

    Attributes:
        rgba: [H, W, 4] uint8, straight (not premultiplied) colour, alpha = pixel coverage,
            RGB = 0 where alpha = 0.
        depth: [H, W] float32 ray distance ``t`` of the pixel-centre ray along its unit
            direction, ``inf`` on a miss.
    """

    rgba: np.ndarray
    depth: np.ndarray


class Raycaster:
    """Ray casting and shading of a fixed list of objects.

    Args:
        objects: Scene objects (world-space meshes with materials).
        light_dir: [3] direction toward the light; normalised here.
        ambient: Ambient term ``k_a`` in [0, 1].
        nthreads: Embree threads, 0 = all cores.
    """

    def __init__(self, objects: list[SceneObject], light_dir: np.ndarray = LIGHT_DIR,
                 ambient: float = AMBIENT, nthreads: int = 0):
        if not objects:
            raise ValueError("Raycaster needs at least one object")
        if not 0.0 <= ambient <= 1.0:
            raise ValueError(f"ambient must be in [0, 1], got {ambient}")
        o3d = _open3d()
        self._o3d = o3d
        self.objects = list(objects)
        self.light_dir = np.asarray(light_dir, dtype=np.float64) / np.linalg.norm(light_dir)
        self.ambient = float(ambient)
        self.nthreads = int(nthreads)
        self._scene = o3d.t.geometry.RaycastingScene(nthreads=self.nthreads)
        gids = [self._scene.add_triangles(
                    o3d.core.Tensor(np.asarray(obj.mesh.vertices, dtype=np.float32)),
                    o3d.core.Tensor(np.asarray(obj.mesh.faces, dtype=np.uint32)))
                for obj in self.objects]
        self._object_of_geometry = np.full(max(gids) + 1, -1, dtype=np.int64)  # [n_geometries]
        self._object_of_geometry[gids] = np.arange(len(gids))
        self._faces = [np.asarray(o.mesh.faces, dtype=np.int64) for o in self.objects]
        self._vertex_normals = [np.asarray(o.mesh.vertex_normals, dtype=np.float32) if o.smooth else None
                                for o in self.objects]

    def _rays(self, origins: np.ndarray, dirs: np.ndarray):
        rays = np.empty((origins.shape[0], 6), dtype=np.float32)  # [N, 6]
        rays[:, :3], rays[:, 3:] = origins, dirs
        return self._o3d.core.Tensor.from_numpy(rays)

    def distance(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """[N] float32 first-hit distance of rays [N, 3] + t [N, 3] (unit dirs), inf on a miss."""
        origins, dirs = self._check_rays(origins, dirs)
        return self._scene.cast_rays(self._rays(origins, dirs), nthreads=self.nthreads)["t_hit"].numpy()

    @staticmethod
    def _check_rays(origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        origins = np.asarray(origins, dtype=np.float32).reshape(-1, 3)
        dirs = np.asarray(dirs, dtype=np.float32).reshape(-1, 3)
        if origins.shape != dirs.shape:
            raise ValueError(f"origins {origins.shape} and dirs {dirs.shape} must match")
        return origins, dirs

    def cast(self, origins: np.ndarray, dirs: np.ndarray) -> Hits:
        """First hits of rays ``origins`` [N, 3] + t ``dirs`` [N, 3] (dirs must be unit length)."""
        origins, dirs = self._check_rays(origins, dirs)
        out = self._scene.cast_rays(self._rays(origins, dirs), nthreads=self.nthreads)
        t = out["t_hit"].numpy()
        idx = np.flatnonzero(np.isfinite(t))  # [M]
        object_ids = np.full(t.shape, -1, dtype=np.int64)
        obj = self._object_of_geometry[out["geometry_ids"].numpy()[idx].astype(np.int64)]  # [M]
        object_ids[idx] = obj
        d = dirs[idx]
        points = origins[idx] + t[idx, None] * d
        geo = out["primitive_normals"].numpy()[idx]
        geo *= np.where(np.einsum("ij,ij->i", geo, d) > 0, -1.0, 1.0).astype(np.float32)[:, None]
        normals = geo.copy()
        prims = out["primitive_ids"].numpy()[idx].astype(np.int64)
        uv = out["primitive_uvs"].numpy()[idx]
        for i, vn in enumerate(self._vertex_normals):
            sel = np.flatnonzero(obj == i) if vn is not None else ()
            if len(sel) == 0:
                continue
            tri = self._faces[i][prims[sel]]  # [K, 3]
            u, v = uv[sel, 0:1], uv[sel, 1:2]
            n = (1 - u - v) * vn[tri[:, 0]] + u * vn[tri[:, 1]] + v * vn[tri[:, 2]]
            n /= np.maximum(np.sqrt(np.einsum("ij,ij->i", n, n)), 1e-12)[:, None]
            n *= np.where(np.einsum("ij,ij->i", n, geo[sel]) < 0, -1.0, 1.0).astype(np.float32)[:, None]
            normals[sel] = n
        return Hits(t, object_ids, idx, points, geo, normals)

    def albedo(self, hits: Hits) -> np.ndarray:
        """[M, 3] float32 albedo at the hits."""
        obj = hits.object_ids[hits.ray_indices]  # [M]
        rgb = np.zeros((obj.shape[0], 3), dtype=np.float32)
        for i, o in enumerate(self.objects):
            sel = np.flatnonzero(obj == i)
            if sel.size:
                p = np.einsum("nj,ij->ni", hits.points[sel], o.world_to_local[:3, :3]) + o.world_to_local[:3, 3]
                rgb[sel] = albedo(o.material, p)
        return rgb

    def shade(self, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, Hits]:
        """Shaded colour of rays [N, 3] + t [N, 3]; returns (rgb [N, 3] float32, 0 on misses; hits)."""
        hits = self.cast(origins, dirs)
        light = self.light_dir.astype(np.float32)
        lit = np.flatnonzero(np.einsum("nj,j->n", hits.geo_normals, light) > 0)  # [L] faces toward the light
        shadow_o = hits.points[lit] + np.float32(SHADOW_EPS) * hits.geo_normals[lit]
        shadow_d = np.broadcast_to(light, shadow_o.shape)
        blocked = self._scene.test_occlusions(self._rays(shadow_o, shadow_d), nthreads=self.nthreads)
        visible = np.zeros(hits.ray_indices.shape, dtype=np.float32)  # [M]
        visible[lit] = 1.0 - blocked.numpy().astype(np.float32)
        lambert = np.clip(np.einsum("nj,j->n", hits.normals, light), 0.0, None) * visible
        rgb = np.zeros((hits.t.shape[0], 3), dtype=np.float32)
        rgb[hits.ray_indices] = self.albedo(hits) * (self.ambient + (1.0 - self.ambient) * lambert)[:, None]
        return rgb, hits

    def render(self, c2w: np.ndarray, width: int, height: int, focal: float,
               samples_per_side: int = 2) -> ViewRender:
        """Render one view.

        Args:
            c2w: [4, 4] camera-to-world, OpenGL convention (see :mod:`scenes.cameras`).
            width, height: Image size in pixels.
            focal: Focal length in pixels.
            samples_per_side: s: an s x s grid of rays per pixel, averaged (alpha = coverage).
                Depth always comes from one extra ray through the pixel centre (s = 1: the same ray).

        Returns:
            :class:`ViewRender` with ``rgba`` [H, W, 4] uint8 and ``depth`` [H, W] float32.
        """
        origins, dirs = pixel_rays(c2w, width, height, focal, samples_per_side)  # [H, W, S, 3]
        n_sub = dirs.shape[2]
        rgb, hits = self.shade(origins.reshape(-1, 3), dirs.reshape(-1, 3))
        rgb = rgb.reshape(height, width, n_sub, 3)
        covered = hits.mask.reshape(height, width, n_sub)
        n_hit = covered.sum(axis=2)  # [H, W]
        colour = rgb.sum(axis=2) / np.maximum(n_hit, 1)[..., None]  # straight colour of the hits
        alpha = n_hit / n_sub
        if n_sub == 1:
            t = hits.t.reshape(height, width)
        else:
            o_c, d_c = pixel_rays(c2w, width, height, focal, 1)
            t = self.distance(o_c.reshape(-1, 3), d_c.reshape(-1, 3)).reshape(height, width)
        rgba = np.concatenate([colour, alpha[..., None]], axis=-1)
        rgba = np.round(np.clip(rgba, 0.0, 1.0) * 255).astype(np.uint8)
        return ViewRender(rgba=rgba, depth=t.astype(np.float32))
