"""What the fuzzer mutates: for each reader, a small valid input written into a folder and the call
that reads it, with the errors the reader documents (:mod:`tests.fuzz_cases` does the mutating).

Every input is tiny (a few 8x6 images) so that hundreds of cases run in seconds.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nerfgen.cameras import Cameras, Keyframe, path_from_keyframes, read_camera_path, write_camera_path
from nerfgen.config import load_config
from nerfgen.data import DatasetError, load_dataset
from nerfgen.data.colmap import write_colmap
from nerfgen.data.idr import write_idr
from nerfgen.data.transforms import SfMPoints
from nerfgen.gan.config import GanConfig
from nerfgen.gan.data import ImageCollection
from nerfgen.generate.layout import read_layout
from nerfgen.reconstruct import TrainConfig

W, H, N = 8, 6, 5
FOCAL = 7.0
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """One reader under test.

    Attributes:
        name: How reports call it.
        build: Writes a valid input into an empty folder.
        read: Reads the input in a folder (returns what the reader gives).
        errors: The exact exception types it may raise for bad input (its documented ones).
        check: Raises AssertionError when what was read is not sane (non-finite cameras, ...).
    """

    name: str
    build: Callable[[Path], None]
    read: Callable[[Path], object]
    errors: tuple[type, ...]
    check: Callable[[object], None] = lambda value: None


def _look_at(position: np.ndarray) -> np.ndarray:
    """``[3, 4]`` OpenGL camera-to-world looking at the origin, +z up."""
    back = position / np.linalg.norm(position)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(back, right), back, position], 1)


def _poses(n: int = N) -> np.ndarray:
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([_look_at(np.array([3 * np.cos(a), 3 * np.sin(a), 1.5])) for a in angle])


def _cameras(n: int = N) -> Cameras:
    k = torch.full((n,), FOCAL, dtype=torch.float64)
    return Cameras(torch.from_numpy(_poses(n)), k, k.clone(), torch.full((n,), W / 2, dtype=torch.float64),
                   torch.full((n,), H / 2, dtype=torch.float64), W, H)


def _images(folder: Path, names: list[str], mode: str = "RGBA", seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        pixels = rng.integers(0, 256, (H, W, len(mode)), dtype=np.uint8)
        Image.fromarray(pixels if len(mode) > 1 else pixels[..., 0], mode).save(folder / name)


def _matrix(pose: np.ndarray) -> list:
    return np.concatenate([pose, [[0, 0, 0, 1]]]).tolist()


def build_blender(root: Path) -> None:
    for split, frames in (("train", range(3)), ("test", range(3, 5))):
        _images(root / split, [f"r_{i}.png" for i in frames])
        doc = {"camera_angle_x": 1.0, "frames": [{"file_path": f"./{split}/r_{i}",
                                                  "transform_matrix": _matrix(_poses()[i])} for i in frames]}
        (root / f"transforms_{split}.json").write_text(json.dumps(doc, indent=1))


def build_ngp(root: Path) -> None:
    _images(root / "images", [f"{i:02d}.jpg" for i in range(N)], "RGB")
    frames = [{"file_path": f"images/{i:02d}.jpg", "transform_matrix": _matrix(p)} for i, p in enumerate(_poses())]
    frames[1].update(fl_x=FOCAL + 1, w=W, h=H)  # a frame overriding the global intrinsics
    doc = {"fl_x": FOCAL, "fl_y": FOCAL, "cx": W / 2, "cy": H / 2, "w": W, "h": H, "k1": 0.01, "p1": 0.001,
           "aabb_scale": 4, "scale": 0.5, "offset": [0.5, 0.5, 0.5], "frames": frames}
    (root / "transforms.json").write_text(json.dumps(doc, indent=1))


def build_llff(root: Path) -> None:
    _images(root / "images", [f"IMG_{i:03d}.png" for i in range(N)], "RGB")
    c2w = _poses()
    llff = np.concatenate([-c2w[:, :, 1:2], c2w[:, :, 0:1], c2w[:, :, 2:4]], 2)
    hwf = np.broadcast_to(np.array([H, W, FOCAL])[None, :, None], (N, 3, 1))
    bounds = np.stack([np.full(N, 1.5), np.full(N, 4.5)], 1)
    np.save(root / "poses_bounds.npy", np.concatenate([np.concatenate([llff, hwf], 2).reshape(N, 15), bounds], 1))


def _colmap(root: Path, binary: bool) -> None:
    names = [f"{i:03d}.png" for i in range(N)]
    _images(root / "images", names, "RGB")
    xyz = np.random.default_rng(1).uniform(-1, 1, (12, 3))
    points = SfMPoints(xyz, np.full(12, 0.5), [np.arange(i, i + 6) % 12 for i in range(N)])
    write_colmap(root, _cameras(), names, points=points, binary=binary)


def build_idr(root: Path) -> None:
    """NeuS's naming: image/000000.png, mask/000.png."""
    _images(root / "image", [f"{i:06d}.png" for i in range(N)], "RGB")
    _images(root / "mask", [f"{i:03d}.png" for i in range(N)], "L", seed=1)
    write_idr(root, _cameras(), np.diag([2.0, 2.0, 2.0, 1.0]))


def build_gan(root: Path) -> None:
    _images(root, ["a.png", "b.jpg"], "RGB")
    _images(root / "sub", ["c.png"], "RGBA")
    Image.new("L", (12, 5), 128).save(root / "sub" / "d.webp")
    (root / "labels.json").write_text(json.dumps({"objects": [1, 2, 3, 1]}))
    read_gan(root)  # writes the decoded cache beside the images, which the fuzzer mutates too


def build_layout(root: Path) -> None:
    doc = {"version": 1, "prompt": "a red cube on a blue sphere", "objects": [
        {"name": "cube", "prompt": "a red cube", "center": [0.0, 0.0, 0.75], "size": 0.25, "rotation": 10.0,
         "hidden": False},
        {"name": "sphere", "prompt": "a blue sphere", "center": [0.0, 0.0, 0.25], "size": 0.25}],
        "relations": [{"subject": 0, "relation": "on", "object": 1}]}
    (root / "layout.json").write_text(json.dumps(doc, indent=1))


def build_camera_path(root: Path) -> None:
    keys = [Keyframe(torch.from_numpy(p).float(), 40.0 + 5 * i, 1.5) for i, p in enumerate(_poses(3))]
    write_camera_path(root / "camera_path.json", path_from_keyframes(keys, 1.0, 6, 48, 32))


def build_train_config(root: Path) -> None:
    text = (REPO / "configs" / "ngp.yaml").read_text()
    text += "camera_opt: {mode: SO3xR3, lr: 0.001}\ndepth: {weight: 0.1, sigma: 0.2}\nforward_facing: false\n"
    (root / "config.yaml").write_text(text)


def build_gan_config(root: Path) -> None:
    shutil.copy(REPO / "configs" / "giraffe.yaml", root / "config.yaml")


def quietly(fn: Callable[[], object]) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def read_dataset(format: str, split: str = "train") -> Callable[[Path], object]:
    return lambda root: quietly(lambda: load_dataset(root, split, format=format))


def read_gan(root: Path) -> ImageCollection:
    return ImageCollection.from_folder(root, 4, held_out=0.25)


def check_dataset(ds) -> None:
    c = ds.cameras
    for name in ("c2w", "fx", "fy", "cx", "cy", "distortion"):
        assert bool(torch.isfinite(getattr(c, name)).all()), f"non-finite camera {name}"
    assert bool((c.fx > 0).all() & (c.fy > 0).all()), "focal lengths must be positive"
    assert bool(torch.isfinite(ds.aabb).all()), "non-finite scene box"
    for i in range(len(ds)):
        assert tuple(ds.image(i).shape[:2]) == tuple(int(v) for v in ds.sizes[i].flip(0))


def check_camera_path(path) -> None:
    assert bool(torch.isfinite(path.c2w).all()) and bool(torch.isfinite(path.fov).all())


DATA_ERRORS = (DatasetError,)
FILE_ERRORS = (ValueError, FileNotFoundError)
TARGETS = [
    Target("nerf-synthetic", build_blender, read_dataset("nerf-synthetic", "all"), DATA_ERRORS, check_dataset),
    Target("instant-ngp", build_ngp, read_dataset("auto"), DATA_ERRORS, check_dataset),
    Target("llff", build_llff, read_dataset("llff"), DATA_ERRORS, check_dataset),
    Target("colmap-bin", lambda root: _colmap(root, True), read_dataset("colmap"), DATA_ERRORS, check_dataset),
    Target("colmap-txt", lambda root: _colmap(root, False), read_dataset("auto"), DATA_ERRORS, check_dataset),
    Target("idr", build_idr, read_dataset("idr"), DATA_ERRORS, check_dataset),
    Target("gan-images", build_gan, read_gan, DATA_ERRORS),
    Target("layout", build_layout, lambda root: read_layout(root / "layout.json"), FILE_ERRORS),
    Target("camera-path", build_camera_path, lambda root: read_camera_path(root / "camera_path.json"), FILE_ERRORS,
           check_camera_path),
    Target("config-train", build_train_config, lambda root: load_config(TrainConfig, root / "config.yaml"),
           FILE_ERRORS),
    Target("config-gan", build_gan_config, lambda root: load_config(GanConfig, root / "config.yaml"), FILE_ERRORS),
]
"""Every reader the fuzzer covers (checkpoints and run.json are fuzzed elsewhere)."""
