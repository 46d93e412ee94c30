"""Cameras, rays and the one camera toolbox: poses, orbits, viewing angles and camera paths.

* :mod:`nerfgen.cameras.base`: :class:`Cameras` (pinhole + OpenCV distortion, OpenGL axes) and
  the :class:`Rays` through their pixels.
* :mod:`nerfgen.cameras.lenses`: the lens models (OpenCV radial-tangential and fisheye).
* :mod:`nerfgen.cameras.poses`: look-at poses, :class:`Views` on a sphere, random and orbit views,
  :class:`Orbit` (the circle every run is shown from).
* :mod:`nerfgen.cameras.paths`: keyframed camera paths (nerfstudio's ``camera_path.json``).
"""

from nerfgen.cameras.base import Cameras, Rays, all_rays, image_rays, pixel_rays, project
from nerfgen.cameras.lenses import distort, undistort
from nerfgen.cameras.paths import (
    CameraPath,
    Keyframe,
    interpolate,
    matrix_from_quaternion,
    path_from_keyframes,
    quaternion_from_matrix,
    read_camera_path,
    slerp,
    write_camera_path,
)
from nerfgen.cameras.poses import (
    Orbit,
    Views,
    fov_cameras,
    look_at,
    orbit_cameras,
    orbit_views,
    random_views,
    scene_center,
    sphere_positions,
    view_cameras,
)

__all__ = [
    "CameraPath", "Cameras", "Keyframe", "Orbit", "Rays", "Views", "all_rays", "distort", "fov_cameras",
    "image_rays", "interpolate", "look_at", "matrix_from_quaternion", "orbit_cameras", "orbit_views",
    "path_from_keyframes", "pixel_rays", "project", "quaternion_from_matrix", "random_views", "read_camera_path",
    "scene_center", "slerp", "sphere_positions", "undistort", "view_cameras", "write_camera_path",
]
