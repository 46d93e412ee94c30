"""Render the dynamic scene (:mod:`~scenes.dynamic`) into D-NeRF's layout.

Layout of ``out_dir`` (D-NeRF's, plus ground truth)::

    transforms_{train,val,test}.json   {"camera_angle_x": float, "frames": [{"file_path": "./train/r_000",
                                        "time": 0.25, "transform_matrix": [[4 x 4]],
                                        "depth_file_path": "./train/r_000_depth.npy",
                                        "flow_file_path": "./test/r_000_flow.npy" (val and test only)}, ...]}
    {train,val,test}/r_{i:03d}.png     RGBA uint8 (alpha = coverage), on the white protocol of NeRF-synthetic
    {train,val,test}/r_{i:03d}_depth.npy   float32 [H, W] ray distance along the unit ray, inf on a miss
    {val,test}/r_{i:03d}_flow.npy      float16 [H, W, 6] 3D scene flow of the surface seen at each
                                        pixel-centre ray to the previous and next instants of the
                                        capture (forward xyz, backward xyz; world units; 0 on a miss)
    scene.json                         stamp: variant, sizes, times, cameras

Variants (:class:`DynamicConfig`):

- ``multiview``: ``times`` instants, ``views`` random cameras on the upper hemisphere at each one
  (every frame its own camera); test views on a 30-degree orbit, at the training instants in turn;
- ``monocular``: one camera moving round the table while time runs (``times`` frames, one turn,
  its elevation rising and falling); test views from novel places (90 degrees further round, at
  35 degrees) at held-out instants, half-way between training frames;
- ``frozen``: the cameras of ``multiview`` with the scene stopped at ``frozen_time`` and no time in
  the frames: a static capture of one instant (the control a dynamic model is measured against).

>>> path = render_dynamic_dataset("/tmp/dyn", DynamicConfig(width=48, height=48, times=4, views=3))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from nerfgen.scenes.cameras import focal_from_fov, look_at, pixel_rays, random_hemisphere_poses
from nerfgen.scenes.dataset import STAMP_NAME, move_into_place, read_stamp
from nerfgen.scenes.dynamic import DynamicScene, build_dynamic_scene
from PIL import Image

from nerfgen.files import make_temp_dir

FORMAT_VERSION = 1
"""Bump whenever the scene, the renderer or the layout changes."""
VARIANTS = ("multiview", "monocular", "frozen")


@dataclass(frozen=True)
class DynamicConfig:
    """What :func:`render_dynamic_dataset` renders."""

    variant: str = "multiview"
    """``multiview``, ``monocular`` or ``frozen`` (module docstring)."""
    width: int = 128
    height: int = 128
    times: int = 16
    """Training instants (multiview, frozen) or training frames (monocular)."""
    views: int = 8
    """Cameras at each training instant (multiview, frozen)."""
    n_val: int = 4
    n_test: int = 16
    camera_angle_x: float = 0.6911
    radius: float = 4.0
    samples_per_side: int = 2
    frozen_time: float = 0.5
    """The instant the ``frozen`` variant shows."""
    seed: int = 0

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if min(self.width, self.height, self.views, self.samples_per_side) < 1 or self.times < 2:
            raise ValueError(f"need width, height, views, samples_per_side >= 1 and times >= 2, got {self}")
        if min(self.n_val, self.n_test) < 1 or not 0.0 <= self.frozen_time <= 1.0:
            raise ValueError(f"need n_val, n_test >= 1 and frozen_time in [0, 1], got {self}")


def _orbit_pose(azimuth: float, elevation: float, radius: float) -> np.ndarray:
    ce = np.cos(elevation)
    return look_at(radius * np.array([ce * np.cos(azimuth), ce * np.sin(azimuth), np.sin(elevation)]))


def _instants(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n)


def split_frames(cfg: DynamicConfig) -> dict[str, list[tuple[np.ndarray, float]]]:
    """``(c2w [4, 4], time)`` of each frame of each split."""
    rng = np.random.default_rng([cfg.seed, 0xD1])
    instants = _instants(cfg.times)
    if cfg.variant == "monocular":
        def camera(t: float, turn: float = 0.0, lift: float | None = None) -> np.ndarray:
            elevation = np.radians(30.0 + 12.0 * np.sin(4 * np.pi * t)) if lift is None else np.radians(lift)
            return _orbit_pose(2 * np.pi * t + turn, elevation, cfg.radius)

        held = (instants[:-1] + instants[1:]) / 2
        test_times = held[np.linspace(0, len(held) - 1, cfg.n_test).round().astype(int)]
        val_times = held[np.linspace(0, len(held) - 1, cfg.n_val).round().astype(int)]
        return {"train": [(camera(t), float(t)) for t in instants],
                "val": [(camera(t, np.pi / 2, 35.0), float(t)) for t in val_times],
                "test": [(camera(t, np.pi / 2, 35.0), float(t)) for t in test_times]}
    poses = random_hemisphere_poses(cfg.times * cfg.views, rng, cfg.radius)
    train = [(poses[i], float(instants[i // cfg.views])) for i in range(len(poses))]
    val = random_hemisphere_poses(cfg.n_val, rng, cfg.radius)
    test = [_orbit_pose(np.radians(15.0) + 2 * np.pi * i / cfg.n_test, np.radians(30.0), cfg.radius)
            for i in range(cfg.n_test)]

    def cycled(n: int) -> list[float]:
        return [float(instants[(i * (cfg.times - 1)) // max(n - 1, 1)]) for i in range(n)]

    frames = {"train": train, "val": list(zip(val, cycled(cfg.n_val))), "test": list(zip(test, cycled(cfg.n_test)))}
    if cfg.variant == "frozen":
        frames = {s: [(c2w, cfg.frozen_time) for c2w, _ in f] for s, f in frames.items()}
    return frames


def _flow(scene: DynamicScene, caster, c2w: np.ndarray, t: float, dt: float, cfg: DynamicConfig) -> np.ndarray:
    """``[H, W, 6]`` forward and backward scene flow of the surface at each pixel centre."""
    focal = focal_from_fov(cfg.width, cfg.camera_angle_x)
    origins, dirs = pixel_rays(c2w, cfg.width, cfg.height, focal, 1)
    hits = caster.cast(origins.reshape(-1, 3), dirs.reshape(-1, 3))
    ids = hits.object_ids[hits.ray_indices]
    out = np.zeros((cfg.width * cfg.height, 6), dtype=np.float32)
    out[hits.ray_indices, :3] = scene.flow(ids, hits.points, t, t + dt)
    out[hits.ray_indices, 3:] = scene.flow(ids, hits.points, t, t - dt)
    return out.reshape(cfg.height, cfg.width, 6).astype(np.float16)


def _write_split(root: Path, split: str, frames: list[tuple[np.ndarray, float]], scene: DynamicScene,
                 cfg: DynamicConfig, nthreads: int) -> None:
    (root / split).mkdir()
    focal = focal_from_fov(cfg.width, cfg.camera_angle_x)
    dt = 1.0 / (cfg.times - 1)
    by_time: dict[float, list[int]] = defaultdict(list)
    for i, (_, t) in enumerate(frames):
        by_time[t].append(i)
    entries: list[dict] = [{} for _ in frames]
    for t, indices in by_time.items():
        caster = scene.caster(t, nthreads)
        for i in indices:
            c2w, name = frames[i][0], f"r_{i:03d}"
            view = caster.render(c2w, cfg.width, cfg.height, focal, cfg.samples_per_side)
            Image.fromarray(view.rgba, mode="RGBA").save(root / split / f"{name}.png")
            np.save(root / split / f"{name}_depth.npy", view.depth)
            entry = {"file_path": f"./{split}/{name}", "rotation": 0.031415926535897934}
            if cfg.variant != "frozen":
                entry["time"] = t
            entry["transform_matrix"] = c2w.tolist()
            entry["depth_file_path"] = f"./{split}/{name}_depth.npy"
            if split != "train" and cfg.variant != "frozen":
                np.save(root / split / f"{name}_flow.npy", _flow(scene, caster, c2w, t, dt, cfg))
                entry["flow_file_path"] = f"./{split}/{name}_flow.npy"
            entries[i] = entry
    doc = {"camera_angle_x": float(cfg.camera_angle_x), "frames": entries}
    (root / f"transforms_{split}.json").write_text(json.dumps(doc, indent=1))


def render_dynamic_dataset(out_dir: str | os.PathLike, config: DynamicConfig | None = None, *,
                           overwrite: bool = False, nthreads: int = 0) -> Path:
    """Render the dynamic scene into ``out_dir`` in D-NeRF's layout (module docstring); a complete
    ``out_dir`` of the same config is returned as it is.

    Raises:
        FileExistsError: ``out_dir`` holds something else (and not ``overwrite``).
    """
    cfg = config or DynamicConfig()
    cfg.validate()
    out_dir = Path(out_dir)
    stamp = {"format_version": FORMAT_VERSION, "generator": "nerfgen scenes.render_dynamic_dataset", **asdict(cfg)}
    existing = read_stamp(out_dir)
    if existing == stamp:
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not the requested dynamic dataset; pass overwrite=True "
                              "or choose another folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out_dir)
    try:
        scene = build_dynamic_scene()
        for split, frames in split_frames(cfg).items():
            _write_split(tmp, split, frames, scene, cfg, nthreads)
        (tmp / STAMP_NAME).write_text(json.dumps(stamp, indent=2))
        move_into_place(tmp, out_dir, stamp, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
