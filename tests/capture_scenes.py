"""Captures laid out as other tools lay them out, made from nerfgen's tabletop scene in the test.

- :func:`dtu_scene`: a DTU scan as NeuS publishes it (``public_data/dtu_scanNN``): ``cameras_sphere.npz``,
  images named ``000000.png`` and masks named ``000.png``, cameras on a cap in front of the object
  (DTU's robot arm covers about 60 degrees), optionally with an LLFF ``poses_bounds.npy`` beside them
  as some public copies carry.
- :func:`no_alpha_scene`: a NeRF-synthetic folder whose images are RGB on black, alpha dropped (as
  some D-NeRF and Blender exports are).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from nerfgen.scenes import render_dataset
from nerfgen.scenes.cameras import focal_from_fov, look_at
from nerfgen.scenes.raycast import Raycaster
from nerfgen.scenes.tabletop import build_tabletop
from PIL import Image

from nerfgen.cameras import Cameras
from nerfgen.data.idr import write_idr

NORMALISE = 1.5
"""The tabletop fits in [-1.2, 1.2]^3; divided by this it sits in IDR's unit box."""
DTU_SCALE = np.array([[300.0, 0, 0, 12.0], [0, 300.0, 0, -40.0], [0, 0, 300.0, 650.0], [0, 0, 0, 1]])
"""The scale_mat of the scan: the unit sphere into a world in millimetres, as DTU's."""
BACKDROP = (70, 62, 55)
"""The colour behind the object in the photos (a dark table cloth)."""


def dtu_poses(n: int, radius: float = 4.0) -> np.ndarray:
    """``n`` look-at-origin poses ``[n, 4, 4]`` on a cap, as DTU's robot arm places them: azimuths
    evenly from -65 to 65 degrees about +x, in rows at 20, 45 and 65 degrees of elevation (about 58
    degrees between the outermost viewing directions and their mean)."""
    azimuth = np.radians(np.linspace(-65, 65, n))
    elevation = np.radians(np.array([20.0, 45.0, 65.0])[np.arange(n) % 3])
    positions = radius * np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                                   np.sin(elevation)], 1)
    return np.stack([look_at(p) for p in positions])


def dtu_scene(root: Path, n: int = 16, size: tuple[int, int] = (48, 36), poses_bounds: bool = True,
              image_dir: str = "image", seed: int = 0) -> Path:
    """A DTU-style scan in ``root`` (see the module docstring); images of ``size`` (w, h)."""
    w, h = size
    focal = focal_from_fov(w, 0.8)
    caster = Raycaster(build_tabletop(seed), nthreads=1)
    poses = dtu_poses(n)
    (root / image_dir).mkdir(parents=True)
    (root / "mask").mkdir()
    near, far = [], []
    for i, c2w in enumerate(poses):
        view = caster.render(c2w, w, h, focal, samples_per_side=2)
        alpha = view.rgba[..., 3:].astype(np.float32) / 255
        photo = view.rgba[..., :3] * alpha + np.array(BACKDROP, np.float32) * (1 - alpha)
        Image.fromarray((photo + 0.5).astype(np.uint8), "RGB").save(root / image_dir / f"{i:06d}.png")
        Image.fromarray(view.rgba[..., 3], "L").save(root / "mask" / f"{i:03d}.png")
        hit = view.depth[np.isfinite(view.depth)]
        near.append(hit.min() * 0.8)
        far.append(hit.max() * 1.2)
    normalised = poses[:, :3].copy()
    normalised[:, :, 3] /= NORMALISE
    k = torch.full((n,), focal, dtype=torch.float64)
    cams = Cameras(torch.from_numpy(normalised), k, k.clone(), torch.full((n,), w / 2.0, dtype=torch.float64),
                   torch.full((n,), h / 2.0, dtype=torch.float64), w, h)
    write_idr(root, cams, DTU_SCALE)
    if poses_bounds:
        world = DTU_SCALE[:3, :3] @ normalised[:, :, :3], DTU_SCALE[:3, :3] @ normalised[:, :, 3:] + DTU_SCALE[:3, 3:]
        rot, centre = world[0] / DTU_SCALE[0, 0], world[1]
        llff = np.concatenate([-rot[:, :, 1:2], rot[:, :, 0:1], rot[:, :, 2:3], centre], 2)  # [down, right, back, t]
        hwf = np.broadcast_to(np.array([h, w, focal])[None, :, None], (n, 3, 1))
        depth = np.stack([near, far], 1) * DTU_SCALE[0, 0] / NORMALISE
        np.save(root / "poses_bounds.npy", np.concatenate([np.concatenate([llff, hwf], 2).reshape(n, 15), depth], 1))
    return root


def no_alpha_scene(root: Path, size: tuple[int, int] = (40, 30), n_train: int = 24, seed: int = 0) -> Path:
    """The tabletop rendered as NeRF-synthetic, each image composited on black and saved as RGB."""
    w, h = size
    render_dataset(root, width=w, height=h, n_train=n_train, n_val=2, n_test=4, seed=seed, nthreads=1)
    for split in ("train", "val", "test"):
        for frame in json.loads((root / f"transforms_{split}.json").read_text())["frames"]:
            path = root / (frame["file_path"] + ".png")
            rgba = np.asarray(Image.open(path), dtype=np.float32)
            rgb = rgba[..., :3] * rgba[..., 3:] / 255  # straight colour over black
            Image.fromarray((rgb + 0.5).astype(np.uint8), "RGB").save(path)
    return root
