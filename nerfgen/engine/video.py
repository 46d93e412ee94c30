"""Render camera paths of a trained run to video: a 360-degree orbit, or a nerfstudio path."""

from __future__ import annotations

import math
from pathlib import Path

import imageio.v2 as imageio
import torch
from torch import Tensor

from nerfgen.cameras import Cameras, look_at
from nerfgen.engine.camera_path import read_camera_path
from nerfgen.engine.model import RadianceModel, load_model


def scene_center(cameras: Cameras) -> Tensor:
    """``[3]`` the point closest (least squares) to every camera's optical axis."""
    origins = cameras.c2w[:, :, 3]
    axes = -cameras.c2w[:, :, 2]
    axes = axes / axes.norm(dim=-1, keepdim=True)
    proj = torch.eye(3) - axes[:, :, None] * axes[:, None, :]  # [n, 3, 3]
    a, b = proj.sum(0), (proj @ origins[:, :, None]).sum(0)[:, 0]
    return torch.linalg.lstsq(a, b).solution


def orbit_spec(cameras: Cameras) -> dict:
    """How to circle the scene, from its training cameras (stored with a run).

    Centre: the point nearest every optical axis; up: the mean camera up vector; distance and
    height: the median of the cameras'; intrinsics: the first camera's.
    """
    center = scene_center(cameras)
    up = cameras.c2w[:, :, 1].mean(0)
    up = up / up.norm()
    offsets = cameras.c2w[:, :, 3] - center
    return {
        "center": center.tolist(), "up": up.tolist(),
        "radius": float(offsets.norm(dim=-1).median()), "height": float((offsets @ up).median()),
        "fx": float(cameras.fx[0]), "fy": float(cameras.fy[0]), "width": cameras.width, "height_px": cameras.height,
    }


def orbit_path(spec: dict, n_frames: int, width: int | None = None, height: int | None = None) -> Cameras:
    """``n_frames`` cameras on a full circle described by :func:`orbit_spec`, looking at its centre."""
    center, up = torch.tensor(spec["center"], dtype=torch.float32), torch.tensor(spec["up"], dtype=torch.float32)
    ring = math.sqrt(max(spec["radius"] ** 2 - spec["height"] ** 2, 1e-6))
    helper = torch.tensor([1.0, 0.0, 0.0]) if abs(float(up[0])) < 0.9 else torch.tensor([0.0, 1.0, 0.0])
    e1 = torch.linalg.cross(up, helper)
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(up, e1)
    w = width or spec["width"]
    h = height or (spec["height_px"] if width is None else round(spec["height_px"] * w / spec["width"]))
    scale = w / spec["width"]
    poses = []
    for k in range(n_frames):
        angle = 2 * math.pi * k / n_frames
        eye = center + up * spec["height"] + ring * (math.cos(angle) * e1 + math.sin(angle) * e2)
        poses.append(look_at(eye, center, up))
    n = n_frames
    return Cameras(
        c2w=torch.stack(poses).float(),
        fx=torch.full((n,), spec["fx"] * scale), fy=torch.full((n,), spec["fy"] * scale),
        cx=torch.full((n,), w / 2), cy=torch.full((n,), h / 2), width=w, height=h,
    )


def colorize_depth(depth: Tensor, opacity: Tensor) -> Tensor:
    """``[H, W]`` depth -> ``[H, W, 3]`` colour (near warm, far cool; empty pixels black)."""
    valid = opacity > 0.5
    lo = float(depth[valid].min()) if bool(valid.any()) else 0.0
    hi = float(depth[valid].max()) if bool(valid.any()) else 1.0
    t = ((depth - lo) / max(hi - lo, 1e-6)).clamp(0, 1)
    rgb = torch.stack([1.0 - t, 1.0 - (2 * t - 1).abs(), t], -1)
    return rgb * valid[..., None]


def run_background(meta: dict) -> Tensor:
    """``[3]`` the colour a run is shown on: white for NeRF-synthetic style data, else black."""
    return torch.ones(3) if meta["white_background"] else torch.zeros(3)


def render_path(
    model: RadianceModel, cameras: Cameras, output: str | Path, background: Tensor, depth: bool = False,
    fps: float = 30,
) -> int:
    """Render every camera of ``cameras`` into a video (mp4/gif by extension); returns the frames."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.tmp{output.suffix}")
    with imageio.get_writer(tmp, fps=fps) if output.suffix != ".gif" else imageio.get_writer(tmp, duration=1 / fps) as writer:
        for i in range(len(cameras)):
            image = model.render_camera(cameras, i, background)
            frame = colorize_depth(image.depth, image.opacity) if depth else image.rgb
            writer.append_data((frame.clamp(0, 1) * 255 + 0.5).byte().numpy())
    tmp.replace(output)
    return len(cameras)


def render_orbit(
    run_dir: str | Path, output: str | Path, frames: int = 120, width: int | None = None, height: int | None = None,
    depth: bool = False, fps: int = 30,
) -> int:
    """Render a 360-degree orbit of a trained run (sized like its training images by default)."""
    run = load_model(run_dir)
    path = orbit_path(run.meta["orbit"], frames, width, height)
    return render_path(run.model, path, output, run_background(run.meta), depth=depth, fps=fps)


def render_camera_path(
    run_dir: str | Path, path_file: str | Path, output: str | Path, width: int | None = None,
    height: int | None = None, depth: bool = False, fps: float | None = None,
) -> int:
    """Render a nerfstudio ``camera_path.json`` of a trained run (at the file's size and frame rate
    unless given); returns the frames written."""
    path = read_camera_path(path_file)
    run = load_model(run_dir)
    return render_path(run.model, path.cameras(width, height), output, run_background(run.meta), depth=depth,
                       fps=fps or path.fps)
