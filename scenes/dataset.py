"""Render a scene into a dataset in the NeRF-synthetic ("Blender") layout.

Layout of ``out_dir`` (as ``nerf_synthetic/lego``, plus ground-truth depth and a stamp)::

    transforms_{train,val,test}.json   {"camera_angle_x": float, "frames": [{"file_path": "./train/r_0",
                                        "transform_matrix": [[4 x 4]], "depth_file_path":
                                        "./train/r_0_depth.npy"}, ...]}
    {train,val,test}/r_{i}.png         RGBA uint8, alpha = coverage, RGB = 0 where alpha = 0
    {train,val,test}/r_{i}_depth.npy   float32 [H, W] ray distance along the unit ray, inf on a miss
    scene.json                         stamp: format version, seed, sizes, camera setup, scene digest

The dataset is rendered into a temporary sibling directory and renamed into place, so a reader
never sees a half-written ``out_dir``. A complete ``out_dir`` whose stamp matches is returned as is.

>>> path = render_dataset("/tmp/tabletop", width=64, height=64, n_train=4, n_val=1, n_test=1)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from nerfgen.scenes.cameras import focal_from_fov, orbit_poses, random_hemisphere_poses
from nerfgen.scenes.raycast import Raycaster
from nerfgen.scenes.tabletop import SceneObject, build_tabletop, check_bounds, scene_digest
from PIL import Image

from nerfgen.files import make_temp_dir

FORMAT_VERSION = 1
"""Bump whenever the renderer or the layout changes, so stale cached datasets are re-rendered."""
STAMP_NAME = "scene.json"
SPLITS = ("train", "val", "test")
MIN_RADIUS = 2.5
"""Cameras must stay outside the loader's aabb (+-1.5): radius > sqrt(3) * 1.5 would be exact,
this is a looser practical floor."""


def _stamp(objects: list[SceneObject], seed: int, width: int, height: int, counts: dict[str, int],
           camera_angle_x: float, radius: float, samples_per_side: int) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "generator": "nerfgen scenes.render_dataset",
        "seed": int(seed),
        "width": int(width),
        "height": int(height),
        "n_frames": {k: int(v) for k, v in counts.items()},
        "camera_angle_x": float(camera_angle_x),
        "radius": float(radius),
        "samples_per_side": int(samples_per_side),
        "scene_digest": scene_digest(objects),
    }


def read_stamp(out_dir: str | os.PathLike) -> dict | None:
    """The stamp of a complete dataset in ``out_dir``, or None if it is missing or unreadable."""
    out_dir = Path(out_dir)
    try:
        stamp = json.loads((out_dir / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not all((out_dir / f"transforms_{s}.json").is_file() for s in SPLITS):
        return None
    return stamp


def split_poses(seed: int, counts: dict[str, int], radius: float) -> dict[str, np.ndarray]:
    """Camera-to-world poses [n, 4, 4] per split: random upper-hemisphere cameras for train and
    val (independent streams), an evenly spaced 30-degree orbit for test."""
    return {
        "train": random_hemisphere_poses(counts["train"], np.random.default_rng([seed, 1]), radius),
        "val": random_hemisphere_poses(counts["val"], np.random.default_rng([seed, 2]), radius),
        "test": orbit_poses(counts["test"], radius, elevation_deg=30.0, start_deg=15.0),
    }


def _write_split(root: Path, split: str, poses: np.ndarray, caster: Raycaster, width: int,
                 height: int, camera_angle_x: float, samples_per_side: int) -> None:
    (root / split).mkdir()
    focal = focal_from_fov(width, camera_angle_x)
    frames = []
    for i, c2w in enumerate(poses):
        view = caster.render(c2w, width, height, focal, samples_per_side)
        Image.fromarray(view.rgba, mode="RGBA").save(root / split / f"r_{i}.png")
        np.save(root / split / f"r_{i}_depth.npy", view.depth)
        frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w.tolist(),
                       "depth_file_path": f"./{split}/r_{i}_depth.npy"})
    doc = {"camera_angle_x": float(camera_angle_x), "frames": frames}
    (root / f"transforms_{split}.json").write_text(json.dumps(doc, indent=4))


def _validate(width: int, height: int, counts: dict[str, int], camera_angle_x: float,
              radius: float, samples_per_side: int) -> None:
    if int(width) < 1 or int(height) < 1:
        raise ValueError(f"width and height must be >= 1, got {width} x {height}")
    if counts["train"] < 1 or min(counts.values()) < 0:
        raise ValueError(f"need n_train >= 1 and n_val, n_test >= 0, got {counts}")
    if not 0.0 < camera_angle_x < np.pi:
        raise ValueError(f"camera_angle_x must be in (0, pi) radians, got {camera_angle_x}")
    if radius < MIN_RADIUS:
        raise ValueError(f"radius must be >= {MIN_RADIUS} (cameras outside the scene box), got {radius}")
    if int(samples_per_side) < 1:
        raise ValueError(f"samples_per_side must be >= 1, got {samples_per_side}")


def move_into_place(tmp: Path, out_dir: Path, stamp: dict, overwrite: bool) -> None:
    """Rename the finished ``tmp`` to ``out_dir``; tolerate a concurrent writer of the same data."""
    if out_dir.exists() and overwrite and read_stamp(out_dir) != stamp:
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "data")
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.replace(tmp, out_dir)  # atomic; succeeds onto an absent or empty directory
    except OSError:
        if read_stamp(out_dir) != stamp:
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # someone else rendered the same dataset first


def render_dataset(out_dir: str | os.PathLike, *, scene: list[SceneObject] | None = None,
                   seed: int = 0, width: int = 200, height: int = 200, n_train: int = 100,
                   n_val: int = 10, n_test: int = 20, camera_angle_x: float = 0.6911,
                   radius: float = 4.0, samples_per_side: int = 2, overwrite: bool = False,
                   nthreads: int = 0) -> Path:
    """Render ``scene`` (default: :func:`~scenes.tabletop.build_tabletop` of ``seed``) to a
    NeRF-synthetic-layout dataset in ``out_dir`` (see the module docstring for the layout).

    If ``out_dir`` already holds a complete dataset with the same stamp (format version, seed,
    sizes, camera setup, scene content), it is returned without rendering.

    Args:
        out_dir: Destination directory; its parent is created if needed.
        scene: Objects to render; None builds the tabletop for ``seed``.
        seed: Seed of the default scene and of the random train/val cameras.
        width, height: Image size in pixels.
        n_train, n_val, n_test: Views per split (train/val random on the upper hemisphere at
            15-70 degrees elevation, test an evenly spaced orbit at 30 degrees).
        camera_angle_x: Horizontal field of view in radians; ``fx = 0.5 W / tan(0.5 angle)``.
        radius: Distance of the cameras from the origin (they look at the origin).
        samples_per_side: s x s rays per pixel for anti-aliased colour (alpha = coverage).
        overwrite: Replace an existing ``out_dir`` that holds something else; otherwise raise.
        nthreads: Ray-casting threads, 0 = all cores.

    Returns:
        ``Path(out_dir)``.

    Raises:
        FileExistsError: ``out_dir`` exists, is not empty and is not this dataset (and not ``overwrite``).
    """
    out_dir = Path(out_dir)
    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    _validate(width, height, counts, camera_angle_x, radius, samples_per_side)
    objects = build_tabletop(seed) if scene is None else list(scene)
    check_bounds(objects)
    stamp = _stamp(objects, seed, width, height, counts, camera_angle_x, radius, samples_per_side)
    existing = read_stamp(out_dir)
    if existing == stamp:
        return out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        why = "its stamp differs" if existing is not None else f"it has no complete {STAMP_NAME}"
        raise FileExistsError(f"{out_dir} exists and is not the requested dataset ({why}); "
                              "pass overwrite=True or choose another out_dir")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out_dir)  # 0o777 & ~umask, like any folder the user makes (mkdtemp: 0o700)
    try:
        caster = Raycaster(objects, nthreads=nthreads)
        for split, poses in split_poses(seed, counts, radius).items():
            _write_split(tmp, split, poses, caster, width, height, camera_angle_x, samples_per_side)
        (tmp / STAMP_NAME).write_text(json.dumps(stamp, indent=2))  # written last: marks completeness
        move_into_place(tmp, out_dir, stamp, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
