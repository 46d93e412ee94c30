"""Look at a mesh through nerfgen's cameras (open3d ray casting): silhouette, depth, vertex colours or texture.

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
    ``rgb [H, W, 3]`` in [0, 1] (interpolated vertex colours, or the texture, over ``background``)."""

    hit: Tensor
    depth: Tensor
    rgb: Tensor


class MeshCaster:
    """Casts camera rays against one triangle mesh.

    Args:
        mesh: triangles in world coordinates, with or without vertex colours or a texture
            (UV coordinates and a base colour image, as :func:`nerfgen.mesh.texture.texture_mesh` makes).
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
        self.texture, self.uv = None, None
        if mesh.visual.kind == "texture" and mesh.visual.uv is not None:
            from nerfgen.mesh.texture import texture_image

            image = texture_image(mesh)
            if image is not None:
                self.texture, self.uv = image.astype(np.float32) / 255, np.asarray(mesh.visual.uv, np.float32)

    def render(self, cameras: Cameras, index: int, background: Tensor) -> MeshImage:
        """Cast the rays through every pixel centre of camera ``index``."""
        import open3d as o3d

        rays = image_rays(cameras.to("cpu"), index)
        query = torch.cat([rays.origins, rays.directions], 1).float().numpy()
        hit = self.scene.cast_rays(o3d.core.Tensor(query))
        t = hit["t_hit"].numpy()
        mask = np.isfinite(t)
        rgb = np.broadcast_to(background.cpu().float().numpy(), (len(t), 3)).copy()
        if (self.colors is not None or self.texture is not None) and mask.any():
            tri = self.faces[hit["primitive_ids"].numpy()[mask]]
            uv = hit["primitive_uvs"].numpy()[mask]
            weights = np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], 1)[..., None]
            if self.texture is not None:
                rgb[mask] = sample_texture(self.texture, (self.uv[tri] * weights).sum(1))
            else:
                rgb[mask] = (self.colors[tri] * weights).sum(1)
        h, w = cameras.height, cameras.width
        return MeshImage(torch.from_numpy(mask).view(h, w), torch.from_numpy(np.where(mask, t, 0.0)).view(h, w).float(),
                         torch.from_numpy(rgb).view(h, w, 3))


def sample_texture(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """``[N, C]`` bilinear samples of ``image [H, W, C]`` at ``uv [N, 2]`` (OpenGL convention: v = 0
    is the bottom row; texel centres at half-integers; clamped at the edges)."""
    h, w = image.shape[:2]
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy
