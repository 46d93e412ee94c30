"""Shared by the dynamic-scene tests: tiny renders of the embedded dynamic scene (cached on disk
under pytest's base temp folder, so every test module reuses one render) and a D-NeRF-style
folder written as D-NeRF ships its scenes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from nerfgen.scenes.dynamic_dataset import DynamicConfig, render_dynamic_dataset

TINY = {"width": 40, "height": 40, "times": 5, "views": 4, "n_val": 2, "n_test": 4, "samples_per_side": 2}


def tiny_scene(base: Path, variant: str = "multiview", **changes) -> Path:
    """The embedded dynamic scene at test size (rendered once per session and variant)."""
    cfg = DynamicConfig(variant=variant, **{**TINY, **changes})
    name = f"dyn-{variant}-" + "-".join(f"{k}{v}" for k, v in sorted(changes.items()))
    return render_dynamic_dataset(base / name, cfg)


def look_at_origin(azimuth: float, elevation: float, radius: float = 4.0) -> list[list[float]]:
    """A D-NeRF / Blender camera-to-world (camera looking down -z at the origin, z up) as JSON."""
    eye = radius * np.array([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                             math.sin(elevation)])
    back = eye / np.linalg.norm(eye)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, eye
    return m.tolist()


def dnerf_folder(root: Path, frames: dict[str, int] | None = None, size: int = 24, alpha: bool = True,
                 time_of=None) -> Path:
    """A folder in D-NeRF's layout as its scenes ship: ``transforms_{train,val,test}.json`` with
    ``camera_angle_x``, frames ``{"file_path": "./train/r_000", "rotation": ..., "time": ...,
    "transform_matrix": ...}``, 4x4 poses on the upper hemisphere at radius 4, RGBA (or RGB) PNGs
    of a disc that moves with time, one random view per instant (the camera jumps between them)."""
    frames = frames or {"train": 12, "val": 3, "test": 4}
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for split, n in frames.items():
        (root / split).mkdir(exist_ok=True)
        entries = []
        for i in range(n):
            t = time_of(split, i, n) if time_of else (i / (n - 1) if n > 1 else 0.0)
            inside = (xx - 0.3 - 0.4 * t) ** 2 + (yy - 0.5) ** 2 < 0.04
            rgba = np.zeros((size, size, 4), np.uint8)
            rgba[inside] = (200, 60, 40, 255)
            image = Image.fromarray(rgba if alpha else rgba[..., :3] + (~inside[..., None] * 255).astype(np.uint8))
            image.save(root / split / f"r_{i:03d}.png")
            entries.append({"file_path": f"./{split}/r_{i:03d}", "rotation": 0.031415926535897934, "time": t,
                            "transform_matrix": look_at_origin(rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 1.2))})
        doc = {"camera_angle_x": 0.6911112070083618, "frames": entries}
        (root / f"transforms_{split}.json").write_text(json.dumps(doc, indent=4))
    return root
