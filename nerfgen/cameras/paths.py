"""Camera paths in nerfstudio's ``camera_path.json`` format: read, build from keyframes, write.

The file nerfstudio's viewer exports (and ``ns-render camera-path`` reads) holds the dense path
that is rendered, one entry per frame::

    {"camera_type": "perspective", "render_width": 640, "render_height": 480, "fps": 24, "seconds": 4,
     "camera_path": [{"camera_to_world": [16 floats, row-major 4x4, OpenGL axes], "fov": 50.0, "aspect": 1.33}, ...],
     "keyframes": [{"matrix": [16 floats], "fov": 50.0, "aspect": 1.33, ...}, ...], ...}

``fov`` is the vertical field of view in degrees; poses are in the world frame of the run (the
dataset's coordinates). Only perspective cameras are supported. nerfgen writes the same keys,
so paths made in either viewer render in both. Paths of dynamic scenes carry a time per frame in
``[0, 1]``: nerfstudio's ``render_time`` on every ``camera_path`` entry (and ``time`` on each
keyframe, interpolated between them like the fields of view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from nerfgen.cameras.base import Cameras
from nerfgen.cameras.poses import fov_cameras
from nerfgen.files import read_json, write_json


@dataclass
class Keyframe:
    """A camera the path passes through."""

    c2w: Tensor
    """``[3, 4]`` camera-to-world pose, OpenGL axes."""
    fov: float
    """Vertical field of view in degrees."""
    aspect: float = 1.0
    """Width over height of the view it was taken from."""
    time: float | None = None
    """The instant of a dynamic scene the keyframe shows (in [0, 1]), or None."""


@dataclass
class CameraPath:
    """Frames to render: one pose and field of view per frame, the output size and frame rate."""

    c2w: Tensor
    """``[n, 3, 4]`` camera-to-world poses, OpenGL axes."""
    fov: Tensor
    """``[n]`` vertical fields of view in degrees."""
    width: int
    """Frame width in pixels."""
    height: int
    """Frame height in pixels."""
    fps: float = 24.0
    """Frames per second of the video."""
    keyframes: list[Keyframe] = field(default_factory=list)
    """The keyframes the path was interpolated from (kept so an editor can load them again)."""
    loop: bool = False
    """Whether the path returns from the last keyframe to the first."""
    times: Tensor | None = None
    """``[n]`` the instant of a dynamic scene each frame shows (in [0, 1]), or None."""

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def cameras(self, width: int | None = None, height: int | None = None) -> Cameras:
        """The path as pinhole cameras, at the path's size or ``width`` x ``height`` (one given
        alone keeps the aspect); the principal point sits at the image centre."""
        w = width or (self.width if height is None else round(self.width * height / self.height))
        h = height or (self.height if width is None else round(self.height * width / self.width))
        return fov_cameras(self.c2w, self.fov, int(w), int(h), axis="y")


# -- rotations --------------------------------------------------------------------------------
def quaternion_from_matrix(rot: Tensor) -> Tensor:
    """``[3, 3]`` rotation -> ``[4]`` unit quaternion ``(w, x, y, z)`` with ``w >= 0``."""
    r = rot.double()
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    candidates = torch.stack([trace, r[0, 0], r[1, 1], r[2, 2]])
    k = int(candidates.argmax())
    if k == 0:
        s = torch.sqrt(1.0 + trace) * 2
        q = torch.stack([s / 4, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s])
    else:
        i, j, m = k - 1, k % 3, (k + 1) % 3
        s = torch.sqrt(1.0 + r[i, i] - r[j, j] - r[m, m]) * 2
        q = torch.zeros(4, dtype=torch.float64)
        q[0] = (r[m, j] - r[j, m]) / s
        q[1 + i] = s / 4
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + m] = (r[m, i] + r[i, m]) / s
    q = q / q.norm()
    return (q if q[0] >= 0 else -q).to(rot.dtype)


def matrix_from_quaternion(q: Tensor) -> Tensor:
    """``[4]`` quaternion ``(w, x, y, z)`` -> ``[3, 3]`` rotation."""
    w, x, y, z = (q / q.norm()).unbind()
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)]),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)]),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]),
    ])


def slerp(q0: Tensor, q1: Tensor, t: float) -> Tensor:
    """Spherical interpolation of unit quaternions along the shorter arc."""
    dot = float(q0 @ q1)
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear is exact enough and avoids 0/0
        q = q0 + t * (q1 - q0)
        return q / q.norm()
    theta = math.acos(dot)
    return (math.sin((1 - t) * theta) * q0 + math.sin(t * theta) * q1) / math.sin(theta)


# -- keyframes -> dense path --------------------------------------------------------------------
def _catmull_rom(p0: Tensor, p1: Tensor, p2: Tensor, p3: Tensor, t: float) -> Tensor:
    """Uniform Catmull-Rom spline between ``p1`` (t=0) and ``p2`` (t=1)."""
    t2, t3 = t * t, t * t * t
    return 0.5 * ((2 * p1) + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (3 * p1 - p0 - 3 * p2 + p3) * t3)


def interpolate(keyframes: list[Keyframe], n_frames: int, loop: bool = False) -> tuple[Tensor, Tensor]:
    """Poses and fields of view of ``n_frames`` evenly timed frames through ``keyframes``.

    Positions follow a Catmull-Rom spline through the keyframe centres, orientations are slerped
    between neighbouring keyframes, fields of view (and scene times, :func:`interpolate_times`)
    are interpolated linearly. Each keyframe gets the same transition time; a looped path also
    returns from the last keyframe to the first.

    Returns:
        ``c2w [n_frames, 3, 4]`` and ``fov [n_frames]`` (degrees).
    """
    if not keyframes:
        raise ValueError("a camera path needs at least one keyframe")
    if n_frames < 1:
        raise ValueError(f"a camera path needs at least one frame, got {n_frames}")
    k = len(keyframes)
    centres = [kf.c2w[:, 3].double() for kf in keyframes]
    quats = [quaternion_from_matrix(kf.c2w[:, :3].double()) for kf in keyframes]

    def at(i: int) -> int:
        return i % k if loop else min(max(i, 0), k - 1)

    poses, fovs = [], []
    for seg, t in _segments(k, n_frames, loop):
        a, b = at(seg), at(seg + 1)
        pos = _catmull_rom(centres[at(seg - 1)], centres[a], centres[b], centres[at(seg + 2)], t)
        rot = matrix_from_quaternion(slerp(quats[a], quats[b], t))
        poses.append(torch.cat([rot, pos[:, None]], dim=1))
        fovs.append((1 - t) * keyframes[a].fov + t * keyframes[b].fov)
    return torch.stack(poses).float(), torch.tensor(fovs, dtype=torch.float32)


def _segments(k: int, n_frames: int, loop: bool) -> list[tuple[int, float]]:
    """For each of ``n_frames`` evenly timed frames through ``k`` keyframes: the segment it lies on
    (from keyframe ``seg`` to ``seg + 1``, modulo ``k`` on a loop) and how far along it, in [0, 1]."""
    segments = k if loop and k > 1 else k - 1
    out = []
    for f in range(n_frames):
        u = 0.0 if segments == 0 else segments * f / (n_frames if loop else max(n_frames - 1, 1))
        seg = min(int(u), segments - 1) if segments > 0 else 0
        out.append((seg, u - seg))
    return out


def interpolate_times(keyframes: list[Keyframe], n_frames: int, loop: bool = False) -> Tensor | None:
    """``[n_frames]`` scene times of the frames (linear between keyframes, timed as
    :func:`interpolate`), or None when no keyframe has a time.

    Raises:
        ValueError: some keyframes have a time and others not.
    """
    timed = [kf.time is not None for kf in keyframes]
    if not any(timed):
        return None
    if not all(timed):
        raise ValueError(f"camera path: keyframe {timed.index(False)} has no time but keyframe {timed.index(True)} "
                         "has one: give every keyframe a time, or none")
    k = len(keyframes)
    values = [(1 - t) * keyframes[seg % k].time + t * keyframes[(seg + 1) % k if loop else min(seg + 1, k - 1)].time
              for seg, t in _segments(k, n_frames, loop)]
    return torch.tensor(values, dtype=torch.float32)


def path_from_keyframes(
    keyframes: list[Keyframe], seconds: float, fps: float, width: int, height: int, loop: bool = False
) -> CameraPath:
    """A :class:`CameraPath` of ``round(seconds * fps)`` frames through ``keyframes``."""
    if seconds <= 0 or fps <= 0 or width <= 0 or height <= 0:
        raise ValueError(f"camera path: seconds, fps, width and height must be positive, got "
                         f"{seconds}, {fps}, {width}, {height}")
    n_frames = max(1, round(seconds * fps))
    c2w, fov = interpolate(keyframes, n_frames, loop)
    return CameraPath(c2w, fov, int(width), int(height), float(fps), list(keyframes), loop,
                      interpolate_times(keyframes, n_frames, loop))


# -- the JSON file --------------------------------------------------------------------------------
def _flat4x4(c2w: Tensor) -> list[float]:
    return [float(v) for v in torch.cat([c2w.double(), torch.tensor([[0.0, 0, 0, 1]], dtype=torch.float64)]).flatten()]


def camera_path_to_dict(path: CameraPath) -> dict:
    """The path as nerfstudio's ``camera_path.json`` contents."""
    aspect = path.width / path.height
    return {
        "camera_type": "perspective",
        "render_width": path.width,
        "render_height": path.height,
        "fps": path.fps,
        "seconds": len(path) / path.fps,
        "is_cycle": path.loop,
        "smoothness_value": 0.5,
        "default_fov": float(path.fov[0]),
        "default_transition_sec": len(path) / path.fps / max(len(path.keyframes) - (0 if path.loop else 1), 1),
        "keyframes": [
            {"matrix": _flat4x4(kf.c2w), "fov": kf.fov, "aspect": kf.aspect,
             "override_transition_enabled": False, "override_transition_sec": None,
             **({} if kf.time is None else {"time": kf.time})}
            for kf in path.keyframes
        ],
        "camera_path": [
            {"camera_to_world": _flat4x4(c2w), "fov": float(fov), "aspect": aspect,
             **({} if path.times is None else {"render_time": float(path.times[i])})}
            for i, (c2w, fov) in enumerate(zip(path.c2w, path.fov))
        ],
    }


def _pose(values, source: str, where: str) -> Tensor:
    """A flat row-major 4x4 (or nested) matrix from JSON -> ``[3, 4]``, finite, with a rotation part."""
    try:
        m = torch.tensor(values, dtype=torch.float64).reshape(4, 4)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{source}: {where} must be 16 numbers (a row-major 4x4 matrix)") from exc
    if not bool(torch.isfinite(m.float()).all()):
        raise ValueError(f"{source}: {where} must be finite numbers (within float32's range), got "
                         f"{[float(v) for v in m[:3].flatten()]}")
    rot = m[:3, :3]
    scale = torch.linalg.det(rot).abs() ** (1 / 3)
    if scale < 1e-8 or not torch.allclose(rot.T @ rot / scale**2, torch.eye(3, dtype=torch.float64), atol=1e-3):
        raise ValueError(f"{source}: {where} is not a rotation and translation")
    return torch.cat([rot / scale, m[:3, 3:]], dim=1).float()


def _fov(fov, source: str, where: str) -> float:
    if isinstance(fov, bool) or not isinstance(fov, (int, float)) or not 0 < fov < 180:
        raise ValueError(f"{source}: {where} must be in (0, 180) degrees, got {fov!r:.40}")
    return float(fov)


def _number(doc: dict, key: str, source: str) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{source}: expected a positive finite number for {key!r}, got {value!r:.40}")
    return float(value)


def camera_path_from_dict(doc: dict, source: str = "camera path") -> CameraPath:
    """Parse nerfstudio ``camera_path.json`` contents (the dense ``camera_path`` is what renders)."""
    if not isinstance(doc, dict):
        raise ValueError(f"{source}: expected a JSON object with 'camera_path', 'render_width', 'render_height'")
    if doc.get("camera_type", "perspective") != "perspective":
        raise ValueError(f"{source}: camera_type {doc['camera_type']!r} is not supported (only 'perspective')")
    width, height = _number(doc, "render_width", source), _number(doc, "render_height", source)
    fps = _number(doc, "fps", source) if "fps" in doc else 24.0
    frames = doc.get("camera_path")
    if not isinstance(frames, list) or not frames:
        raise ValueError(f"{source}: 'camera_path' must be a non-empty list of {{camera_to_world, fov}} entries")
    poses, fovs = [], []
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or "camera_to_world" not in frame or "fov" not in frame:
            raise ValueError(f"{source}: camera_path[{i}] needs 'camera_to_world' and 'fov'")
        poses.append(_pose(frame["camera_to_world"], source, f"camera_path[{i}].camera_to_world"))
        fovs.append(_fov(frame["fov"], source, f"camera_path[{i}].fov"))
    keyframes, listed = [], doc.get("keyframes") or []
    if not isinstance(listed, list):
        raise ValueError(f"{source}: 'keyframes' must be a list of {{matrix, fov, aspect}} entries, got {listed!r:.40}")
    for i, kf in enumerate(listed):
        if isinstance(kf, dict) and "matrix" in kf and "fov" in kf:
            when = _time(kf["time"], source, f"keyframes[{i}].time") if kf.get("time") is not None else None
            keyframes.append(Keyframe(_pose(kf["matrix"], source, f"keyframes[{i}].matrix"),
                                      _fov(kf["fov"], source, f"keyframes[{i}].fov"),
                                      _number({"aspect": kf.get("aspect", width / height)}, "aspect",
                                              f"{source}: keyframes[{i}]"), when))
    return CameraPath(torch.stack(poses), torch.tensor(fovs), round(width), round(height), fps, keyframes,
                      bool(doc.get("is_cycle", False)), _render_times(frames, source))


def _time(value, source: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{source}: {where} must be a time in [0, 1], got {value!r:.40}")
    return float(value)


def _render_times(frames: list[dict], source: str) -> Tensor | None:
    """``[n]`` the frames' ``render_time`` (nerfstudio's, dynamic scenes), or None when none has one."""
    timed = ["render_time" in frame for frame in frames]
    if not any(timed):
        return None
    if not all(timed):
        raise ValueError(f"{source}: camera_path[{timed.index(True)}] has a 'render_time' but camera_path"
                         f"[{timed.index(False)}] has none: every frame has one (a dynamic scene) or none")
    return torch.tensor([_time(f["render_time"], source, f"camera_path[{i}].render_time") for i, f in enumerate(frames)])


def read_camera_path(path: str | Path) -> CameraPath:
    """Read a ``camera_path.json`` (errors name the file and what was expected)."""
    return camera_path_from_dict(read_json(Path(path)), str(path))


def write_camera_path(path: str | Path, camera_path: CameraPath) -> None:
    """Write ``camera_path`` as nerfstudio ``camera_path.json`` (atomically)."""
    write_json(Path(path), camera_path_to_dict(camera_path))
