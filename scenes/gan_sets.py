"""Unposed image collections for 3D-aware GANs (GRAF / GIRAFFE), rendered by nerfgen itself.

Two embedded sets, each image rendered by :class:`~scenes.raycast.Raycaster` (Lambert, hard
shadows, one fixed world light) over a white background with 2 x 2 rays per pixel:

- ``clevr`` (GIRAFFE's CLEVR-N): 1-N matte cubes, spheres and cylinders in 8 CLEVR colours on a
  grey ground (top face ``z = 0``), seen from one fixed camera (elevation 40, azimuth 0 on +x,
  distance 4.5, field of view :data:`CLEVR_FOV_DEG`). Object ``k`` has half extent ``s`` (it fits
  in the cube ``[-s, s]^3`` about its centre before its rotation about z), rests on the ground
  (centre z = s) and never overlaps another (footprint discs a gap apart).
- ``objects``: one single-part object of :mod:`scenes.objects` at the origin, seen from a random
  camera (azimuth uniform in [0, 360), elevation uniform in [5, 50] degrees, distance 4, fov 30).

Each image ``i`` comes from ``numpy.random.default_rng([seed, tag, i])`` alone, so a shorter
count is a prefix of a longer one. Layout of the output folder (rendered into a temporary
sibling and renamed into place; ``labels.json`` is written last)::

    images/000000.png ...   RGB uint8 [size, size, 3]
    labels.json             {"format": 1, "set", "size", "seed", "count", "camera", "scene",
                             "background", "images": [{"file", "c2w" [4][4], "elevation_deg",
                             "azimuth_deg", "distance", "fov_deg", "objects": [{"shape", "colour",
                             "translation" [3], "rotation" (rad about z), "scale" (half extent)}]}]}

The camera and object poses are ground truth for evaluation only (GAN training sees images).

>>> root = render_clevr("/tmp/clevr", count=8, size=32)  # doctest: +SKIP
>>> masks = object_masks(read_labels(root)["images"][0], 32)  # [K, 32, 32] bool (image_sets.read_labels)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable

import numpy as np
import trimesh
from nerfgen.scenes.cameras import focal_from_fov, look_at, pixel_rays
from nerfgen.scenes.image_sets import (
    BACKGROUND,
    check_common,
    render_set,
    set_header,
)
from nerfgen.scenes.materials import Material
from nerfgen.scenes.object_views import camera_position
from nerfgen.scenes.objects import COLOURS, PATTERNS, build_object, primitive, sample_object
from nerfgen.scenes.raycast import LIGHT_DIR, Raycaster
from nerfgen.scenes.tabletop import SceneObject

SUPERSAMPLE = 2
"""Rays per pixel side (antialiasing)."""

CLEVR_SHAPES = ("cube", "sphere", "cylinder")
CLEVR_COLOURS = ("grey", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
CLEVR_SCALE_RANGE = (0.25, 0.4)
"""Half extent ``s`` of an object, uniform."""
CLEVR_TRANSLATION_RANGE = ((-1.0, -1.0), (1.0, 1.0))
"""Object centre (x, y), uniform in this box; z = s."""
CLEVR_GAP = 0.05
"""Least gap between the footprint discs of two objects."""
CLEVR_ELEVATION_DEG = 40.0
CLEVR_AZIMUTH_DEG = 0.0
CLEVR_DISTANCE = 4.5
CLEVR_FOV_DEG = 56.0
"""Horizontal = vertical field of view. Every point of :data:`CLEVR_VISIBLE_BOX` needs 51.3
degrees, the corners of a rotated cube of the largest scale at a translation corner 53.0."""
CLEVR_VISIBLE_BOX = ((-1.4, -1.4, 0.0), (1.4, 1.4, 0.8))
"""A box that projects wholly inside the image (tests check it)."""
CLEVR_GROUND_COLOUR = (0.55, 0.55, 0.55)
CLEVR_GROUND_EXTENT = 40.0
"""Side of the square ground slab: large enough that it fills the view up to the top edge."""
CLEVR_LIGHT_DIR = np.array([0.4, 0.5, 1.0]) / np.linalg.norm([0.4, 0.5, 1.0])
"""Toward the light: above, in front, from the camera's right (+y), so shadows fall back-left."""
CLEVR_AMBIENT = 0.45

OBJECTS_DISTANCE = 4.0
OBJECTS_FOV_DEG = 30.0
"""The radius-1.02 bounding sphere of an object subtends 29.5 degrees from distance 4."""
OBJECTS_ELEVATION_RANGE = (5.0, 50.0)
OBJECTS_AZIMUTH_RANGE = (0.0, 360.0)
OBJECTS_AMBIENT = 0.45

_CLEVR_TAG = 0xC1E7
_OBJECTS_TAG = 0x0B5E7
_LAYOUT_TRIES = 200


@lru_cache(maxsize=None)
def _canonical(shape: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float, float]:
    """(vertices [V, 3], faces [F, 3], vertex normals [V, 3] or None, half extent, footprint
    radius) of :func:`scenes.objects.primitive` ``(shape)``; arrays read-only."""
    mesh, smooth = primitive(shape)
    vertices, faces = np.array(mesh.vertices), np.array(mesh.faces)
    normals = np.array(mesh.vertex_normals) if smooth else None
    for a in (vertices, faces, normals):
        if a is not None:
            a.flags.writeable = False
    return (vertices, faces, normals, float(np.abs(mesh.bounds).max()),
            float(np.linalg.norm(vertices[:, :2], axis=1).max()))


def half_extent(shape: str) -> float:
    """Half extent of the canonical primitive ``shape``: it fits in ``[-h, h]^3``."""
    return _canonical(shape)[3]


def object_mesh(shape: str, translation, rotation: float, scale: float) -> tuple[trimesh.Trimesh, np.ndarray, bool]:
    """World-space mesh of a primitive with half extent ``scale``, turned ``rotation`` radians about
    z and moved to ``translation`` [3].

    Returns:
        (mesh, local_to_world [4, 4] from the canonical primitive frame, smooth shading flag).
    """
    vertices, faces, normals, h, _ = _canonical(shape)
    rot = trimesh.transformations.rotation_matrix(float(rotation), (0, 0, 1))
    local_to_world = trimesh.transformations.translation_matrix(translation) @ rot @ np.diag([scale / h] * 3 + [1])
    world = vertices @ local_to_world[:3, :3].T + local_to_world[:3, 3]
    kwargs = {} if normals is None else {"vertex_normals": normals @ rot[:3, :3].T}
    return trimesh.Trimesh(world, np.array(faces), process=False, **kwargs), local_to_world, normals is not None


def _scene_object(obj: dict, material: Material) -> SceneObject:
    mesh, local_to_world, smooth = object_mesh(obj["shape"], obj["translation"], obj["rotation"], obj["scale"])
    return SceneObject(obj["shape"], mesh, material, np.linalg.inv(local_to_world), smooth)


def _ground() -> SceneObject:
    slab = trimesh.creation.box(extents=(CLEVR_GROUND_EXTENT, CLEVR_GROUND_EXTENT, 0.2))
    slab.apply_translation((0.0, 0.0, -0.1))  # top face at z = 0
    return SceneObject("ground", slab, Material(color=CLEVR_GROUND_COLOUR), np.eye(4))


def render_rgb(objects: list[SceneObject], c2w: np.ndarray, size: int, fov_deg: float,
               light_dir: np.ndarray, ambient: float) -> np.ndarray:
    """Render ``objects`` from ``c2w`` [4, 4] over :data:`BACKGROUND`; returns uint8 [size, size, 3]."""
    caster = Raycaster(objects, light_dir=light_dir, ambient=ambient, nthreads=1)
    focal = focal_from_fov(size, np.radians(fov_deg))
    origins, dirs = pixel_rays(c2w, size, size, focal, SUPERSAMPLE)  # [S, S, n_sub, 3]
    rgb, hits = caster.shade(origins.reshape(-1, 3), dirs.reshape(-1, 3))  # [N, 3]
    rgb[~hits.mask] = np.asarray(BACKGROUND, dtype=np.float32)
    rgb = rgb.reshape(size, size, -1, 3).mean(axis=2)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def _clevr_layout(n: int, rng: np.random.Generator) -> list[dict]:
    """``n`` random non-overlapping objects (label dicts); restarts the layout when one does not fit."""
    (x0, y0), (x1, y1) = CLEVR_TRANSLATION_RANGE
    for _ in range(_LAYOUT_TRIES):
        placed: list[dict] = []
        for _ in range(n):
            shape, colour = str(rng.choice(CLEVR_SHAPES)), str(rng.choice(CLEVR_COLOURS))
            s, rotation = float(rng.uniform(*CLEVR_SCALE_RANGE)), float(rng.uniform(0.0, 2 * np.pi))
            r = s * _canonical(shape)[4] / half_extent(shape)  # footprint disc (a cube's corners: s sqrt 2)
            for _ in range(_LAYOUT_TRIES):
                xy = rng.uniform((x0, y0), (x1, y1))
                if all(np.hypot(*(xy - o["translation"][:2])) > r + o["_r"] + CLEVR_GAP for o in placed):
                    placed.append({"shape": shape, "colour": colour, "translation": [float(xy[0]), float(xy[1]), s],
                                   "rotation": rotation, "scale": s, "_r": r})
                    break
            else:
                break
        if len(placed) == n:
            return [{k: v for k, v in o.items() if k != "_r"} for o in placed]
    raise RuntimeError(f"could not place {n} objects in {CLEVR_TRANSLATION_RANGE} after {_LAYOUT_TRIES} restarts")


def clevr_c2w() -> np.ndarray:
    """[4, 4] camera-to-world of the fixed CLEVR camera."""
    return look_at(camera_position(CLEVR_ELEVATION_DEG, CLEVR_AZIMUTH_DEG, CLEVR_DISTANCE))


def _clevr_image(seed: int, index: int, size: int, counts: tuple[int, int]) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng([seed, _CLEVR_TAG, index])
    objects = _clevr_layout(int(rng.integers(counts[0], counts[1] + 1)), rng)
    scene = [_ground()] + [_scene_object(o, Material(color=COLOURS[o["colour"]])) for o in objects]
    c2w = clevr_c2w()
    rgb = render_rgb(scene, c2w, size, CLEVR_FOV_DEG, CLEVR_LIGHT_DIR, CLEVR_AMBIENT)
    return rgb, {"c2w": c2w.tolist(), "elevation_deg": CLEVR_ELEVATION_DEG, "azimuth_deg": CLEVR_AZIMUTH_DEG,
                 "distance": CLEVR_DISTANCE, "fov_deg": CLEVR_FOV_DEG, "objects": objects}


def _objects_spec(seed: int, index: int, patterns: tuple[str, ...]):
    """The object of image ``index`` and the random stream that goes on to draw its camera."""
    rng = np.random.default_rng([seed, _OBJECTS_TAG, index])
    while True:
        spec = sample_object(rng, composition_rate=0.0)
        if spec.parts[0].pattern in patterns:
            return spec, rng


def _objects_image(seed: int, index: int, size: int, patterns: tuple[str, ...]) -> tuple[np.ndarray, dict]:
    spec, rng = _objects_spec(seed, index, patterns)
    part = spec.parts[0]
    elevation, azimuth = float(rng.uniform(*OBJECTS_ELEVATION_RANGE)), float(rng.uniform(*OBJECTS_AZIMUTH_RANGE))
    c2w = look_at(camera_position(elevation, azimuth, OBJECTS_DISTANCE))
    rgb = render_rgb(build_object(spec), c2w, size, OBJECTS_FOV_DEG, LIGHT_DIR, OBJECTS_AMBIENT)
    obj = {"shape": part.shape, "colour": part.colour, "pattern": part.pattern, "colour2": part.colour2,
           "translation": [0.0, 0.0, 0.0], "rotation": 0.0, "scale": part.scale * half_extent(part.shape)}
    return rgb, {"c2w": c2w.tolist(), "elevation_deg": elevation, "azimuth_deg": azimuth,
                 "distance": OBJECTS_DISTANCE, "fov_deg": OBJECTS_FOV_DEG, "objects": [obj]}


def render_clevr(output: str | os.PathLike, count: int, size: int = 64, objects: tuple[int, int] = (1, 3),
                 seed: int = 0, progress: Callable[[int, int], None] | None = None, workers: int = 1) -> Path:
    """Render ``count`` CLEVR-like images (see the module docstring) into ``output``.

    Args:
        output: Folder to create; a complete folder of the same set is returned as is.
        count: Number of images.
        size: Image side in pixels.
        objects: (min, max) objects per image, uniform, 1 <= min <= max <= 5.
        seed: Seed of the whole set.
        progress: Optional ``callable(done, total)`` called as images are done.
        workers: Processes rendering in parallel (spawned; 1 renders here). The images do not
            depend on it.

    Returns:
        ``Path(output)``.
    """
    check_common(count, size, workers)
    lo, hi = (int(v) for v in objects)
    if not 1 <= lo <= hi <= 5:
        raise ValueError(f"objects must be (min, max) with 1 <= min <= max <= 5, got {objects}")
    camera = {"fov_deg": CLEVR_FOV_DEG, "distance": CLEVR_DISTANCE, "elevation_deg": CLEVR_ELEVATION_DEG,
              "azimuth_deg": CLEVR_AZIMUTH_DEG}
    scene = {"ground_z": 0.0, "translation_range": CLEVR_TRANSLATION_RANGE, "scale_range": CLEVR_SCALE_RANGE,
             "min_objects": lo, "max_objects": hi, "shapes": CLEVR_SHAPES, "colours": CLEVR_COLOURS}
    header = set_header("clevr", size, seed, count, camera, scene)
    return render_set(output, header, partial(_clevr_image, seed, size=size, counts=(lo, hi)), workers, progress)


def render_objects(output: str | os.PathLike, count: int, size: int = 64, patterns: tuple[str, ...] = ("solid",),
                   seed: int = 0, progress: Callable[[int, int], None] | None = None, workers: int = 1
                   ) -> Path:
    """Render ``count`` images of single library objects from random cameras into ``output``.

    Args:
        output: Folder to create; a complete folder of the same set is returned as is.
        count: Number of images (one new object each).
        size: Image side in pixels.
        patterns: Surface patterns to keep, a subset of :data:`scenes.objects.PATTERNS`.
        seed: Seed of the whole set.
        progress: Optional ``callable(done, total)`` called as images are done.
        workers: Processes rendering in parallel (spawned; 1 renders here). The images do not
            depend on it.

    Returns:
        ``Path(output)``.
    """
    check_common(count, size, workers)
    patterns = tuple(str(p) for p in patterns)
    if not patterns or any(p not in PATTERNS for p in patterns):
        raise ValueError(f"patterns must be a non-empty subset of {PATTERNS}, got {patterns}")
    camera = {"fov_deg": OBJECTS_FOV_DEG, "distance": OBJECTS_DISTANCE, "elevation_deg": OBJECTS_ELEVATION_RANGE,
              "azimuth_deg": OBJECTS_AZIMUTH_RANGE}
    scene = {"patterns": patterns, "composition_rate": 0.0, "centre": [0.0, 0.0, 0.0]}
    header = set_header("objects", size, seed, count, camera, scene)
    return render_set(output, header, partial(_objects_image, seed, size=size, patterns=patterns), workers,
                       progress)


def set_backdrop(name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """What set ``name`` shows where there is no object, as rendered (uint8-rounded, in [0, 1]):
    ``(lit [3], shadowed [3] or None)``: clevr's flat ground lit and in shadow (ambient only), the
    objects set's background and no shadow."""
    if name == "clevr":
        ground = np.asarray(CLEVR_GROUND_COLOUR)
        lit = ground * (CLEVR_AMBIENT + (1.0 - CLEVR_AMBIENT) * max(0.0, float(CLEVR_LIGHT_DIR[2])))
        pair = (lit, ground * CLEVR_AMBIENT)
    elif name == "objects":
        pair = (np.asarray(BACKGROUND, dtype=np.float64), None)
    else:
        raise ValueError(f"unknown embedded set {name!r}: expected 'clevr' or 'objects'")
    return tuple(None if c is None else np.round(c * 255) / 255 for c in pair)


def object_orbit(labels: dict, index: int, azimuths_deg, size: int | None = None) -> np.ndarray:
    """The object of image ``index`` of an ``objects`` set (its ``labels.json``) rendered from
    ``azimuths_deg`` at that image's elevation: uint8 ``[A, size, size, 3]`` (default the set's
    size). The light stays where it is, so this is how much a real object's colour changes with the view."""
    if labels.get("set") != "objects":
        raise ValueError(f"object_orbit: expected the labels of an 'objects' set, got set {labels.get('set')!r}")
    spec, _ = _objects_spec(int(labels["seed"]), index, tuple(labels["scene"]["patterns"]))
    meshes, elevation = build_object(spec), float(labels["images"][index]["elevation_deg"])
    size = int(size or labels["size"])
    return np.stack([render_rgb(meshes, look_at(camera_position(elevation, float(a), OBJECTS_DISTANCE)), size,
                                OBJECTS_FOV_DEG, LIGHT_DIR, OBJECTS_AMBIENT) for a in azimuths_deg])


def object_masks(entry: dict, size: int, fov_deg: float | None = None) -> np.ndarray:
    """Amodal pixel coverage of each object of one labels entry, the ground and the other objects removed.

    Each object is cast alone through the pixel centres of the entry's camera.

    Args:
        entry: One element of ``labels["images"]`` (``c2w``, ``fov_deg``, ``objects``).
        size: Image side in pixels (any size; the camera's field of view is kept).
        fov_deg: Field of view; defaults to ``entry["fov_deg"]``.

    Returns:
        bool [K, size, size], K = ``len(entry["objects"])``.
    """
    missing = [k for k in ("c2w", "objects") + (("fov_deg",) if fov_deg is None else ()) if k not in entry]
    if missing:
        raise ValueError(f"object_masks: labels entry lacks {missing} (expected an element of labels['images'])")
    fov = float(entry["fov_deg"] if fov_deg is None else fov_deg)
    origins, dirs = pixel_rays(np.asarray(entry["c2w"]), size, size, focal_from_fov(size, np.radians(fov)), 1)
    origins, dirs = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    masks = np.zeros((len(entry["objects"]), size, size), dtype=bool)
    for k, obj in enumerate(entry["objects"]):
        caster = Raycaster([_scene_object(obj, Material(color=(1.0, 1.0, 1.0)))], nthreads=1)
        masks[k] = np.isfinite(caster.distance(origins, dirs)).reshape(size, size)
    return masks
