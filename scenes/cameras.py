"""Cameras for rendering datasets: look-at poses and per-pixel rays.

Convention (NeRF-synthetic / Blender / OpenGL): a camera-to-world matrix ``c2w`` [4, 4] maps
camera coordinates, with x right, y up and the camera looking down -z, to world coordinates
(z up). Pixel (row j, column i) has its centre at ``(i + 0.5, j + 0.5)``; its ray direction in
camera coordinates is ``((i + 0.5 - W / 2) / fx, -(j + 0.5 - H / 2) / fy, -1)``.

>>> c2w = look_at(np.array([0.0, -4.0, 2.0]))
>>> np.allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3))
True
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def focal_from_fov(width: int, camera_angle_x: float) -> float:
    """Focal length in pixels, ``fx = 0.5 W / tan(0.5 camera_angle_x)``."""
    if not 0.0 < camera_angle_x < np.pi:
        raise ValueError(f"camera_angle_x must be in (0, pi) radians, got {camera_angle_x}")
    return 0.5 * width / np.tan(0.5 * camera_angle_x)


def look_at(position: np.ndarray, target: np.ndarray | None = None,
            up: np.ndarray | None = None) -> np.ndarray:
    """Camera-to-world matrix [4, 4] of a camera at ``position`` [3] looking at ``target`` [3].

    Args:
        position: [3] camera centre in world coordinates.
        target: [3] point the camera looks at; defaults to the origin.
        up: [3] world up; defaults to +z. Must not be parallel to the viewing direction.
    """
    position = np.asarray(position, dtype=np.float64)
    target = np.zeros(3) if target is None else np.asarray(target, dtype=np.float64)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    back = position - target  # camera +z points away from what it looks at
    if np.linalg.norm(back) < 1e-9:
        raise ValueError("look_at: position and target coincide")
    z = back / np.linalg.norm(back)
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-6:
        raise ValueError("look_at: viewing direction is parallel to the up vector")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, position
    return c2w


def _spherical(radius: float, azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """[n, 3] points at the given azimuths/elevations [n] (radians) about the origin."""
    ce = np.cos(elevation)
    return radius * np.stack([ce * np.cos(azimuth), ce * np.sin(azimuth), np.sin(elevation)], -1)


def _look_at_origin(positions: np.ndarray) -> np.ndarray:
    """Poses [n, 4, 4] of cameras at ``positions`` [n, 3] looking at the origin (n may be 0)."""
    return np.asarray([look_at(p) for p in positions], dtype=np.float64).reshape(-1, 4, 4)


def random_hemisphere_poses(n: int, rng: np.random.Generator, radius: float = 4.0,
                            elevation_deg: tuple[float, float] = (15.0, 70.0)) -> np.ndarray:
    """``n`` random look-at-origin poses [n, 4, 4], uniform by area on an elevation band.

    Args:
        n: Number of cameras.
        rng: Random generator (the only source of randomness).
        radius: Distance of every camera from the origin.
        elevation_deg: (low, high) elevation above the xy plane, degrees, within (-90, 90).
    """
    lo, hi = np.radians(elevation_deg)
    if not -np.pi / 2 < lo <= hi < np.pi / 2:
        raise ValueError(f"elevation_deg must satisfy -90 < low <= high < 90, got {elevation_deg}")
    azimuth = rng.uniform(0.0, 2 * np.pi, size=n)
    elevation = np.arcsin(rng.uniform(np.sin(lo), np.sin(hi), size=n))  # uniform area
    return _look_at_origin(_spherical(radius, azimuth, elevation))


def orbit_poses(n: int, radius: float = 4.0, elevation_deg: float = 30.0,
                start_deg: float = 0.0) -> np.ndarray:
    """``n`` evenly spaced look-at-origin poses [n, 4, 4] on a circle of constant elevation."""
    azimuth = np.radians(start_deg) + 2 * np.pi * np.arange(n) / max(n, 1)
    elevation = np.full(n, np.radians(elevation_deg))
    return _look_at_origin(_spherical(radius, azimuth, elevation))


@lru_cache(maxsize=8)
def _camera_directions(width: int, height: int, focal: float, s: int) -> np.ndarray:
    """Unit ray directions in camera coordinates [H, W, s*s, 3] float32 (read-only, cached)."""
    off = (np.arange(s) + 0.5) / s  # [s]
    sub_y, sub_x = np.meshgrid(off, off, indexing="ij")  # [s, s]
    cols = np.arange(width)[None, :, None] + sub_x.reshape(1, 1, -1)  # [1, W, S]
    rows = np.arange(height)[:, None, None] + sub_y.reshape(1, 1, -1)  # [H, 1, S]
    cols, rows = np.broadcast_arrays(cols, rows)  # [H, W, S]
    d = np.stack([(cols - 0.5 * width) / focal, -(rows - 0.5 * height) / focal,
                  -np.ones_like(cols)], -1)  # [H, W, S, 3]
    d = (d / np.linalg.norm(d, axis=-1, keepdims=True)).astype(np.float32)
    d.flags.writeable = False
    return d


def pixel_rays(c2w: np.ndarray, width: int, height: int, focal: float,
               samples_per_side: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """World-space rays through pixel sub-samples.

    With ``samples_per_side = s`` each pixel gets an s x s grid of rays at offsets
    ``(k + 0.5) / s``; ``s = 1`` is exactly the pixel centre.

    Args:
        c2w: [4, 4] camera-to-world matrix (OpenGL convention, see module docstring).
        width, height: Image size in pixels.
        focal: Focal length in pixels (square pixels, principal point at the image centre).
        samples_per_side: Sub-samples per pixel side.

    Returns:
        origins [H, W, s*s, 3] (a broadcast view) and unit directions [H, W, s*s, 3], float32.
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.shape != (4, 4):
        raise ValueError(f"c2w must be [4, 4], got {c2w.shape}")
    if int(samples_per_side) < 1:
        raise ValueError(f"samples_per_side must be >= 1, got {samples_per_side}")
    d_cam = _camera_directions(int(width), int(height), float(focal), int(samples_per_side))
    # rotation keeps unit length; einsum, not @: BLAS is slow (and threads) for [N, 3] x [3, 3]
    dirs = np.einsum("...j,ij->...i", d_cam, c2w[:3, :3].astype(np.float32))
    origins = np.broadcast_to(c2w[:3, 3].astype(np.float32), dirs.shape)
    return origins, dirs
