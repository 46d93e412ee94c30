"""Look at a mesh through nerfgen's cameras (open3d ray casting): silhouette, depth, vertex colours.

What :meth:`nerfgen.render.RadianceModel.render_camera` is for a field, :func:`render_mesh`
is for a mesh, so an exported mesh can be measured against the images it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from torch import Tensor

from nerfgen.cameras import Cameras, image_rays


@dataclass
class MeshImage:
    """One view of a mesh: ``hit [H, W]`` bool, ``depth [H, W]`` (ray distance, 0 on a miss) and
    ``rgb [H, W, 3]`` in [0, 1] (interpolated vertex colours over ``background``)."""

    hit: Tensor
    depth: Tensor
    rgb: Tensor


class MeshCaster:
    """Casts camera rays against one triangle mesh.

    Args:
        mesh: triangles in world coordinates, with or without vertex colours.
    """

    def __init__(self, mesh: trimesh.Trimesh) -> None:
        import open3d as o3d

        self.scene = o3d.t.geometry.RaycastingScene()
        if len(mesh.faces):
            self.scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
                                     o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
        self.faces = np.asarray(mesh.faces)
        colors = mesh.visual.vertex_colors if mesh.visual.kind == "vertex" else None
        self.colors = None if colors is None else np.asarray(colors[:, :3], np.float32) / 255

    def render(self, cameras: Cameras, index: int, background: Tensor) -> MeshImage:
        """Cast the rays through every pixel centre of camera ``index``."""
        import open3d as o3d

        rays = image_rays(cameras.to("cpu"), index)
        query = torch.cat([rays.origins, rays.directions], 1).float().numpy()
        hit = self.scene.cast_rays(o3d.core.Tensor(query))
        t = hit["t_hit"].numpy()
        mask = np.isfinite(t)
        rgb = np.broadcast_to(background.cpu().float().numpy(), (len(t), 3)).copy()
        if self.colors is not None and mask.any():
            tri = self.faces[hit["primitive_ids"].numpy()[mask]]
            uv = hit["primitive_uvs"].numpy()[mask]
            weights = np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], 1)[..., None]
            rgb[mask] = (self.colors[tri] * weights).sum(1)
        h, w = cameras.height, cameras.width
        return MeshImage(torch.from_numpy(mask).view(h, w), torch.from_numpy(np.where(mask, t, 0.0)).view(h, w).float(),
                         torch.from_numpy(rgb).view(h, w, 3))
