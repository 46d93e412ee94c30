"""Embedded scenes: a procedural tabletop and a CPU ray caster that renders it into a dataset in
the NeRF-synthetic ("Blender") layout, so a radiance field can train with nothing downloaded. A second call on a complete dataset
returns it without rendering.

>>> from nerfgen.scenes import render_dataset
>>> root = render_dataset("data/tabletop")  # doctest: +SKIP
"""

from nerfgen.scenes.cameras import focal_from_fov, look_at, orbit_poses, pixel_rays, random_hemisphere_poses
from nerfgen.scenes.dataset import FORMAT_VERSION, read_stamp, render_dataset
from nerfgen.scenes.materials import PATTERNS, Material, albedo
from nerfgen.scenes.raycast import Hits, Raycaster, ViewRender
from nerfgen.scenes.tabletop import SceneObject, build_tabletop, scene_digest, to_trimesh_scene

__all__ = [
    "FORMAT_VERSION",
    "Hits",
    "Material",
    "PATTERNS",
    "Raycaster",
    "SceneObject",
    "ViewRender",
    "albedo",
    "build_tabletop",
    "focal_from_fov",
    "look_at",
    "orbit_poses",
    "pixel_rays",
    "random_hemisphere_poses",
    "read_stamp",
    "render_dataset",
    "scene_digest",
    "to_trimesh_scene",
]
