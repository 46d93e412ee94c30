"""Multi-view scenes without end, for generalizable radiance fields: random objects of the library
(:mod:`scenes.objects`) or tabletops (:mod:`scenes.tabletop`) with random scale, turn, colours,
patterns, light and cameras, ray-cast into posed views over white.

Scenes are split by what they show: a training scene never holds a held-out shape
(:data:`HELD_OUT_SHAPES`) or a held-out colour (:data:`HELD_OUT_COLOURS`); a held-out scene is
made of them alone (each object's shape and colour held out), so it measures how a model carries
over to shapes and colours it has never seen. Scene ``i`` of a split is a pure function of
``(seed, split, i)``.

>>> scene = render_scene(SceneSpec(seed=0, split="train", index=3), MultiViewConfig(views=2, size=16))  # doctest: +SKIP
>>> scene.images.shape
(2, 16, 16, 4)
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from nerfgen.scenes.cameras import focal_from_fov, look_at
from nerfgen.scenes.objects import COLOURS, SHAPES, ObjectSpec, Part, build_object
from nerfgen.scenes.raycast import Raycaster
from nerfgen.scenes.tabletop import SceneObject, build_tabletop

from nerfgen.files import make_temp_dir

HELD_OUT_SHAPES = ("torus", "pyramid")
"""Shapes no training scene holds."""
HELD_OUT_COLOURS = ("purple", "cyan", "pink")
"""Colours no training scene holds (objects, patterns and tabletop primitives alike)."""
SPLITS = ("train", "held_out")
TABLETOP_FAR = 1.5
"""Tabletops (1.2 from the origin at most, objects 1.0) are seen from this much further away."""


def split_library(split: str) -> tuple[list[str], list[str]]:
    """The shapes and colours scenes of ``split`` are made of."""
    if split not in SPLITS:
        raise ValueError(f"unknown scene split {split!r}; expected one of {', '.join(SPLITS)}")
    held = split == "held_out"
    shapes = [s for s in SHAPES if (s in HELD_OUT_SHAPES) == held]
    colours = [c for c in COLOURS if (c in HELD_OUT_COLOURS) == held]
    return shapes, colours


@dataclass
class MultiViewConfig:
    """How the scenes are drawn and rendered."""

    views: int = 10
    """Views rendered per scene."""
    size: int = 64
    """Image side in pixels."""
    supersample: int = 2
    """Rays per pixel side (anti-aliased colour; alpha = coverage)."""
    fov: tuple[float, float] = (35.0, 45.0)
    """Horizontal field of view, degrees, uniform per scene."""
    distance: tuple[float, float] = (2.5, 3.2)
    """Camera distance from the origin, uniform per view (tabletops: :data:`TABLETOP_FAR` times it)."""
    elevation: tuple[float, float] = (-5.0, 60.0)
    """Camera elevation, degrees, uniform in sine (area) per view."""
    scale: tuple[float, float] = (0.7, 1.0)
    """Scale of a library object (it fits the unit sphere at 1)."""
    composition_rate: float = 0.25
    """Fraction of objects scenes that stack or place two objects side by side."""
    tabletop_rate: float = 0.2
    """Fraction of scenes that are a tabletop (training scenes; held-out scenes are objects)."""
    ambient: tuple[float, float] = (0.3, 0.6)
    """Ambient light term, uniform per scene."""

    def validate(self, source: str) -> None:
        checks = [(self.views >= 2, "views >= 2"), (self.size >= 8, "size >= 8"),
                  (self.supersample >= 1, "supersample >= 1"),
                  (0 < self.fov[0] <= self.fov[1] < 120, "0 < fov low <= high < 120"),
                  (1.5 <= self.distance[0] <= self.distance[1], "1.5 <= distance low <= high"),
                  (-80 <= self.elevation[0] <= self.elevation[1] <= 80, "-80 <= elevation low <= high <= 80"),
                  (0 < self.scale[0] <= self.scale[1] <= 1, "0 < scale low <= high <= 1"),
                  (0 <= self.composition_rate <= 1 and 0 <= self.tabletop_rate <= 1, "rates in [0, 1]"),
                  (0 <= self.ambient[0] <= self.ambient[1] <= 1, "0 <= ambient low <= high <= 1")]
        for ok, what in checks:
            if not ok:
                raise ValueError(f"{source}: expected {what}")


@dataclass(frozen=True)
class SceneSpec:
    """Which scene: scene ``index`` of ``split`` for ``seed``."""

    seed: int
    split: str
    index: int


@dataclass
class MultiViewScene:
    """One rendered scene.

    Attributes:
        images: ``[V, S, S, 4]`` uint8 RGBA (alpha = coverage; colour 0 where empty).
        c2w: ``[V, 4, 4]`` camera-to-world poses (OpenGL axes, z up world).
        focal: focal length in pixels (every view).
        description: what the scene shows (``"a green cube"``, ``"tabletop"``).
    """

    images: np.ndarray
    c2w: np.ndarray
    focal: float
    description: str

    @property
    def size(self) -> int:
        return int(self.images.shape[1])


def _part(rng: np.random.Generator, shapes: list[str], colours: list[str], scale: float) -> Part:
    shape, colour = str(rng.choice(shapes)), str(rng.choice(colours))
    pattern = str(rng.choice(["solid", "striped", "checkered"], p=[0.6, 0.2, 0.2]))
    colour2 = str(rng.choice([c for c in colours if c != colour] or colours))
    return Part(shape, colour, pattern, colour2 if pattern != "solid" else "white", scale)


def _turned(objects: list[SceneObject], angle: float, scale: float) -> list[SceneObject]:
    """The objects turned by ``angle`` about z and scaled by ``scale`` about the origin."""
    c, s = np.cos(angle), np.sin(angle)
    m = np.array([[c * scale, -s * scale, 0, 0], [s * scale, c * scale, 0, 0], [0, 0, scale, 0], [0, 0, 0, 1.0]])
    out = []
    for o in objects:
        mesh = o.mesh.copy()
        mesh.apply_transform(m)
        out.append(SceneObject(o.name, mesh, o.material, o.world_to_local @ np.linalg.inv(m), o.smooth))
    return out


def _recoloured_tabletop(rng: np.random.Generator, colours: list[str]) -> list[SceneObject]:
    """A tabletop whose primitives wear colours of ``colours`` only."""
    objects = build_tabletop(int(rng.integers(1 << 31)))
    out = []
    for o in objects:
        if o.name.startswith(("table", "leg")):
            out.append(o)
            continue
        colour = COLOURS[str(rng.choice(colours))]
        material = dataclasses.replace(o.material, color=colour, color2=(0.93, 0.93, 0.93))
        out.append(dataclasses.replace(o, material=material))
    return out


def scene_objects(spec: SceneSpec, config: MultiViewConfig) -> tuple[list[SceneObject], str]:
    """The objects of scene ``spec`` and a description of them."""
    shapes, colours = split_library(spec.split)
    rng = np.random.default_rng([spec.seed, SPLITS.index(spec.split), spec.index, 0x6E4])
    if spec.split == "train" and rng.random() < config.tabletop_rate:
        return _recoloured_tabletop(rng, colours), "tabletop"
    scale = float(rng.uniform(*config.scale))
    if rng.random() < config.composition_rate:
        parts = (_part(rng, shapes, colours, 1.0), _part(rng, shapes, colours, 1.0))
        relation = str(rng.choice(["on", "left of"]))
        objects = build_object(ObjectSpec(parts, relation, int(rng.integers(1 << 31))))
        words = f"a {parts[0].colour} {parts[0].shape} {relation} a {parts[1].colour} {parts[1].shape}"
    else:
        part = _part(rng, shapes, colours, 1.0)
        objects = build_object(ObjectSpec((part,), seed=int(rng.integers(1 << 31))))
        words = f"a {part.colour} {part.shape}"
    return _turned(objects, float(rng.uniform(0, 2 * np.pi)), scale), words


def view_poses(rng: np.random.Generator, n: int, config: MultiViewConfig, far: float = 1.0) -> np.ndarray:
    """``[n, 4, 4]`` cameras looking at the origin: any azimuth, elevation uniform in area, distance
    uniform (times ``far``)."""
    lo, hi = np.radians(config.elevation)
    elevation = np.arcsin(rng.uniform(np.sin(lo), np.sin(hi), n))
    azimuth = rng.uniform(0, 2 * np.pi, n)
    distance = rng.uniform(*config.distance, n) * far
    positions = distance[:, None] * np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                                              np.sin(elevation)], -1)
    return np.stack([look_at(p) for p in positions])


def render_scene(spec: SceneSpec, config: MultiViewConfig, poses: np.ndarray | None = None) -> MultiViewScene:
    """Render scene ``spec`` from ``config.views`` random cameras (or from ``poses [V, 4, 4]``)."""
    objects, words = scene_objects(spec, config)
    rng = np.random.default_rng([spec.seed, SPLITS.index(spec.split), spec.index, 0xCA4])
    e, a = np.radians(rng.uniform(25, 80)), rng.uniform(0, 2 * np.pi)
    light = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    caster = Raycaster(objects, light_dir=light, ambient=float(rng.uniform(*config.ambient)), nthreads=1)
    focal = focal_from_fov(config.size, np.radians(rng.uniform(*config.fov)))
    far = TABLETOP_FAR if words == "tabletop" else 1.0
    poses = view_poses(rng, config.views, config, far) if poses is None else np.asarray(poses, dtype=np.float64)
    images = np.stack([caster.render(c2w, config.size, config.size, focal, config.supersample).rgba for c2w in poses])
    return MultiViewScene(images, poses.astype(np.float32), float(focal), words)


def _frames(scene: MultiViewScene, folder: Path, split: str, indices: list[int]) -> dict:
    from PIL import Image

    (folder / split).mkdir()
    frames = []
    for k, i in enumerate(indices):
        Image.fromarray(scene.images[i], mode="RGBA").save(folder / split / f"r_{k}.png")
        frames.append({"file_path": f"./{split}/r_{k}", "transform_matrix": scene.c2w[i].tolist()})
    return {"camera_angle_x": float(2 * np.arctan(0.5 * scene.size / scene.focal)), "frames": frames}


def write_scene(scene: MultiViewScene, folder: str | os.PathLike, sources: int) -> Path:
    """Write ``scene`` as a NeRF-synthetic capture: its first ``sources`` views are the ``train``
    split (the source views), the rest ``test``, written whole or not at all."""
    folder = Path(folder)
    if not 1 <= sources < len(scene.images):
        raise ValueError(f"sources: expected 1 to {len(scene.images) - 1} of {len(scene.images)} views, got {sources}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(folder)
    targets = list(range(sources, len(scene.images)))
    for split, indices in (("train", list(range(sources))), ("test", targets)):
        (tmp / f"transforms_{split}.json").write_text(json.dumps(_frames(scene, tmp, split, indices), indent=1))
    stamp = {"generator": "nerfgen scenes.multiview", "description": scene.description}
    (tmp / "scene.json").write_text(json.dumps(stamp))
    os.replace(tmp, folder)
    return folder


def spread_source_poses(rng: np.random.Generator, n: int, config: MultiViewConfig) -> np.ndarray:
    """``[n, 4, 4]`` source cameras spread around the scene: azimuths ``360 / n`` apart (from a
    random start), elevations and distances as :func:`view_poses`."""
    poses = view_poses(rng, n, config)
    start = rng.uniform(0, 2 * np.pi)
    out = []
    for k, c2w in enumerate(poses):
        p = c2w[:3, 3]
        radius, height = np.hypot(p[0], p[1]), p[2]
        a = start + 2 * np.pi * k / n
        out.append(look_at(np.array([radius * np.cos(a), radius * np.sin(a), height])))
    return np.stack(out)


def write_held_out(output: str | os.PathLike, scenes: int, config: MultiViewConfig, sources: int = 3,
                   seed: int = 0, split: str = "held_out") -> list[Path]:
    """Render ``scenes`` scenes of ``split`` into ``output/scene_NNN`` (:func:`write_scene`): the
    ``sources`` source views spread around each scene, ``config.views - sources`` random target
    views. Scenes already there are kept."""
    output = Path(output)
    written = []
    for i in range(scenes):
        folder = output / f"scene_{i:03d}"
        if not (folder / "transforms_test.json").is_file():
            spec = SceneSpec(seed, split, i)
            rng = np.random.default_rng([seed, SPLITS.index(split), i, 0x5EC])
            poses = np.concatenate([spread_source_poses(rng, sources, config),
                                    view_poses(rng, config.views - sources, config)])
            write_scene(render_scene(spec, config, poses), folder, sources)
        written.append(folder)
    return written


__all__ = ["HELD_OUT_COLOURS", "HELD_OUT_SHAPES", "MultiViewConfig", "MultiViewScene", "SPLITS", "SceneSpec",
           "render_scene", "scene_objects", "split_library", "spread_source_poses", "view_poses", "write_held_out",
           "write_scene"]
