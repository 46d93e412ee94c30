"""Render the object library (:mod:`scenes.objects`) from many viewpoints into one cached file:
the training set of the built-in diffusion prior.

Each image is an object composited over a white background, rendered by
:class:`~scenes.raycast.Raycaster` (Lambert, hard shadows, a random light per object) at
``resolution`` with ``supersample x supersample`` rays per pixel. Cameras look at the origin
from ``(elevation, azimuth, distance)``: the position is
``distance * (cos e cos a, cos e sin a, sin e)`` with z up, so azimuth 0 lies on +x (the
objects' front) and azimuth grows counter-clockwise seen from above, exactly as
``nerfgen.cameras.orbit_cameras`` places its cameras.

The file (``.npz``, written to a temporary name and renamed) holds::

    images      uint8 [N, R, R, 3]     over white
    cameras     float32 [N, 3]         elevation (deg), azimuth (deg), distance
    object_ids  int32 [N]              which object each image shows
    captions    str [n_objects, K]     K template captions per object
    labels      str [n_objects, 2]     (shape, colour) of each object's first part
    config      str                    JSON of the ObjectViewsConfig (a cache stamp)

>>> views = render_object_views("/tmp/views.npz", ObjectViewsConfig(n_objects=2, views_per_object=2))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from nerfgen.scenes.cameras import focal_from_fov, look_at
from nerfgen.scenes.objects import build_object, captions, sample_object
from nerfgen.scenes.raycast import Raycaster
from nerfgen.scenes.tabletop import SceneObject

from nerfgen.files import atomic_write

FORMAT_VERSION = 1
"""Bump when rendering changes, so cached files are re-rendered."""


@dataclass
class ObjectViewsConfig:
    """What to render (the whole config is the cache stamp)."""

    n_objects: int = 1500
    """Objects drawn from the library."""
    views_per_object: int = 12
    """Random cameras per object."""
    resolution: int = 32
    """Image side in pixels."""
    supersample: int = 3
    """Rays per pixel side (alpha = coverage, colour averaged)."""
    fov_deg: float = 36.0
    """Field of view (horizontal = vertical), degrees."""
    elevation_range: tuple[float, float] = (-10.0, 60.0)
    """Camera elevation, degrees, uniform."""
    distance_range: tuple[float, float] = (3.0, 3.6)
    """Camera distance from the origin, uniform."""
    captions_per_object: int = 4
    """Template captions stored per object (training draws one per image)."""
    composition_rate: float = 0.25
    """Fraction of two-object compositions."""
    ambient_range: tuple[float, float] = (0.35, 0.6)
    """Ambient shading term, uniform per object."""
    seed: int = 0
    """Seed of the objects, cameras and lights."""

    def stamp(self) -> str:
        return json.dumps({"format_version": FORMAT_VERSION, **dataclasses.asdict(self)}, sort_keys=True)


@dataclass
class ObjectViews:
    """The rendered training set (see the module docstring for shapes)."""

    images: np.ndarray
    cameras: np.ndarray
    object_ids: np.ndarray
    captions: np.ndarray
    labels: np.ndarray


def camera_position(elevation_deg: float, azimuth_deg: float, distance: float) -> np.ndarray:
    """World position [3] of a camera at these angles (z up, azimuth 0 on +x)."""
    e, a = np.radians(elevation_deg), np.radians(azimuth_deg)
    return distance * np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])


def render_views(objects: list[SceneObject], cameras: np.ndarray, resolution: int, fov_deg: float,
                 supersample: int = 3, light_dir: np.ndarray | None = None, ambient: float = 0.4) -> np.ndarray:
    """Render ``objects`` from ``cameras [V, 3]`` (elevation, azimuth deg, distance) over white.

    Returns:
        uint8 ``[V, R, R, 3]``.
    """
    kwargs = {} if light_dir is None else {"light_dir": light_dir}
    caster = Raycaster(objects, ambient=ambient, nthreads=1, **kwargs)
    focal = focal_from_fov(resolution, np.radians(fov_deg))
    out = np.empty((len(cameras), resolution, resolution, 3), dtype=np.uint8)
    for i, (elevation, azimuth, distance) in enumerate(cameras):
        rgba = caster.render(look_at(camera_position(elevation, azimuth, distance)), resolution, resolution,
                             focal, supersample).rgba.astype(np.float32) / 255
        rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
        out[i] = np.round(rgb * 255).astype(np.uint8)
    return out


def random_cameras(n: int, rng: np.random.Generator, elevation_range: tuple[float, float],
                   distance_range: tuple[float, float]) -> np.ndarray:
    """``[n, 3]`` float32 cameras: uniform elevation, azimuth in [0, 360), distance."""
    return np.stack([rng.uniform(*elevation_range, n), rng.uniform(0, 360, n), rng.uniform(*distance_range, n)],
                    -1).astype(np.float32)


def _random_light(rng: np.random.Generator) -> np.ndarray:
    e, a = np.radians(rng.uniform(25, 80)), rng.uniform(0, 2 * np.pi)
    return np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])


def _render(config: ObjectViewsConfig, progress) -> ObjectViews:
    rng = np.random.default_rng([config.seed, 0x5EE5])
    images, cameras, ids, caps, labels = [], [], [], [], []
    for i in range(config.n_objects):
        spec = sample_object(rng, config.composition_rate)
        cams = random_cameras(config.views_per_object, rng, config.elevation_range, config.distance_range)
        images.append(render_views(build_object(spec), cams, config.resolution, config.fov_deg, config.supersample,
                                   _random_light(rng), float(rng.uniform(*config.ambient_range))))
        cameras.append(cams)
        ids.append(np.full(len(cams), i, dtype=np.int32))
        caps.append(captions(spec, config.captions_per_object))
        labels.append((spec.parts[0].shape, spec.parts[0].colour))
        if progress is not None:
            progress(i + 1, config.n_objects)
    return ObjectViews(np.concatenate(images), np.concatenate(cameras), np.concatenate(ids),
                       np.asarray(caps, dtype=str), np.asarray(labels, dtype=str))


def _load(path: Path, stamp: str) -> ObjectViews | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["config"]) != stamp:
                return None
            return ObjectViews(f["images"], f["cameras"], f["object_ids"], f["captions"], f["labels"])
    except (OSError, KeyError, ValueError):
        return None


def render_object_views(path: str | os.PathLike, config: ObjectViewsConfig, progress=None) -> ObjectViews:
    """Render the training set into ``path`` (``.npz``), or load it when ``path`` already holds
    the same config's render.

    Args:
        path: Cache file.
        config: What to render.
        progress: Optional ``callable(done, total)`` called after each object.
    """
    path = Path(path)
    stamp = config.stamp()
    if path.exists():
        cached = _load(path, stamp)
        if cached is not None:
            return cached
    views = _render(config, progress)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez appends no ".npz" to the name
            np.savez(f, config=np.asarray(stamp), **dataclasses.asdict(views))

    atomic_write(path, write)
    return views
