r"""COLMAP's sparse-model files: ``cameras``, ``images`` and ``points3D``, read and written as
``.bin`` (little-endian, laid out as COLMAP's ``reconstruction_io``) or ``.txt`` (as ``colmap
model_converter`` writes them). Records only; :mod:`nerfgen.data.colmap` turns them into cameras.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nerfgen.data.errors import DatasetError

__all__ = [
    "CAMERA_MODELS", "ColmapCamera", "ColmapImage", "ColmapPoints", "read_cameras", "read_images", "read_points3d",
    "write_cameras", "write_images", "write_points3d",
]  # fmt: skip

# name -> (COLMAP model id, number of params). Only these are supported.
CAMERA_MODELS = {
    "SIMPLE_PINHOLE": (0, 3), "PINHOLE": (1, 4), "SIMPLE_RADIAL": (2, 4), "RADIAL": (3, 5),
    "OPENCV": (4, 8), "OPENCV_FISHEYE": (5, 8),
}  # fmt: skip
_UNSUPPORTED = {6: "FULL_OPENCV", 7: "FOV", 8: "SIMPLE_RADIAL_FISHEYE", 9: "RADIAL_FISHEYE",
                10: "THIN_PRISM_FISHEYE", 11: "RAD_TAN_THIN_PRISM_FISHEYE"}  # fmt: skip
_MODEL_NAMES = {model_id: name for name, (model_id, _) in CAMERA_MODELS.items()}
_POINT2D = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
_TRACK = np.dtype([("image", "<i4"), ("point2d", "<i4")])
_OPENGL = np.diag([1.0, -1.0, -1.0])  # flips camera y and z: OpenCV <-> OpenGL axes


@dataclass
class ColmapCamera:
    """One entry of ``cameras``: model name, full-resolution size and the model's parameters."""

    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # [n_params] float64

    def intrinsics(self) -> tuple[list[float], bool]:
        """``(fx, fy, cx, cy, d0, d1, d2, d3)`` and whether the model is fisheye (d = k1..k4)."""
        p = [float(v) for v in self.params]
        if self.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
            radial = p[3:] + [0.0] * (5 - len(p))
            return [p[0], p[0], p[1], p[2], radial[0], radial[1], 0.0, 0.0], False
        if self.model == "PINHOLE":
            return p + [0.0] * 4, False
        return p, self.model == "OPENCV_FISHEYE"


@dataclass
class ColmapImage:
    """One entry of ``images``: world-to-camera pose (OpenCV axes), camera, name and 2D keypoints."""

    id: int
    qvec: np.ndarray  # [4] (w, x, y, z)
    tvec: np.ndarray  # [3]
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [k, 2]
    point3d_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [k], -1 = none


@dataclass
class ColmapPoints:
    """The ``points3D`` table as arrays; ``tracks[i]`` holds ``(image_id, point2D_idx)`` rows."""

    ids: np.ndarray  # [p] int64
    xyz: np.ndarray  # [p, 3] float64
    rgb: np.ndarray  # [p, 3] uint8
    error: np.ndarray  # [p] float64
    tracks: list[np.ndarray]  # [k_i, 2] int64 each


# -- binary --------------------------------------------------------------------------------------
class _Bytes:
    """Cursor over a binary file; every read checks that the bytes exist."""

    def __init__(self, path: Path) -> None:
        self.path, self.data, self.pos = path, _read_bytes(path), 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise DatasetError(
                f"{self.path}: truncated file: expected {n} more bytes for {what} at offset {self.pos}, "
                f"the file has {len(self.data)} bytes"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def array(self, dtype: np.dtype, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(dtype.itemsize * count, what), dtype=dtype, count=count)

    def name(self, what: str) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise DatasetError(f"{self.path}: truncated file: {what} has no terminating NUL byte")
        raw, self.pos = self.data[self.pos : end], end + 1
        return raw.decode("utf-8", errors="replace")

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise DatasetError(f"{self.path}: {len(self.data) - self.pos} unexpected bytes after the last entry")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise DatasetError(f"{path}: cannot read COLMAP model file ({err})") from err


def _model_name(model_id: int, path: Path, camera_id: int) -> str:
    if model_id in _MODEL_NAMES:
        return _MODEL_NAMES[model_id]
    name = _UNSUPPORTED.get(model_id, f"unknown model id {model_id}")
    raise DatasetError(
        f"{path}: camera {camera_id} uses camera model {name}, expected one of {', '.join(CAMERA_MODELS)}"
    )


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    buf, cameras = _Bytes(path), {}
    (count,) = buf.unpack("Q", "the camera count")
    for i in range(count):
        camera_id, model_id, width, height = buf.unpack("iiQQ", f"camera #{i}")
        model = _model_name(model_id, path, camera_id)
        params = np.array(buf.unpack(f"{CAMERA_MODELS[model][1]}d", f"camera {camera_id}'s parameters"))
        cameras[camera_id] = ColmapCamera(camera_id, model, width, height, params)
    buf.finish()
    return cameras


def _read_images_bin(path: Path) -> dict[int, ColmapImage]:
    buf, images = _Bytes(path), {}
    (count,) = buf.unpack("Q", "the image count")
    for i in range(count):
        image_id, *pose, camera_id = buf.unpack("i7di", f"image #{i}")
        name = buf.name(f"image {image_id}'s name")
        (n_points,) = buf.unpack("Q", f"image {name}'s keypoint count")
        points = buf.array(_POINT2D, n_points, f"image {name}'s {n_points} keypoints")
        xys = np.stack([points["x"], points["y"]], axis=1)
        images[image_id] = ColmapImage(
            image_id, np.array(pose[:4]), np.array(pose[4:]), camera_id, name, xys, points["id"].astype(np.int64)
        )
    buf.finish()
    return images


def _read_points_bin(path: Path) -> ColmapPoints:
    buf = _Bytes(path)
    (count,) = buf.unpack("Q", "the point count")
    ids, xyz, rgb, error, tracks = [], [], [], [], []
    for i in range(count):
        point_id, x, y, z, r, g, b, err, length = buf.unpack("Q3d3BdQ", f"point #{i}")
        track = buf.array(_TRACK, length, f"point {point_id}'s track of {length} observations")
        ids.append(point_id), xyz.append((x, y, z)), rgb.append((r, g, b)), error.append(err)
        tracks.append(np.stack([track["image"], track["point2d"]], axis=1).astype(np.int64))
    buf.finish()
    return _points(ids, xyz, rgb, error, tracks)


def _points(ids: list, xyz: list, rgb: list, error: list, tracks: list) -> ColmapPoints:
    return ColmapPoints(
        np.array(ids, dtype=np.int64), np.array(xyz, dtype=np.float64).reshape(-1, 3),
        np.array(rgb, dtype=np.uint8).reshape(-1, 3), np.array(error, dtype=np.float64), tracks,
    )  # fmt: skip


# -- text ----------------------------------------------------------------------------------------
def _text_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, stripped line)``, comments dropped, blank lines kept (images.txt needs them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot read COLMAP model file as UTF-8 text ({err})") from err
    return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if not line.lstrip().startswith("#")]


def _numbers(tokens: list[str], path: Path, lineno: int, what: str, kind: type = float) -> list:
    try:
        return [kind(t) for t in tokens]
    except ValueError:
        raise DatasetError(f"{path}: line {lineno}: expected {what}, got {' '.join(tokens)!r:.80}") from None


def _read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    cameras = {}
    for lineno, line in _text_lines(path):
        if not line:
            continue
        tokens = line.split()
        what = "CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]"
        if len(tokens) < 4:
            raise DatasetError(f"{path}: line {lineno}: expected {what}, got {line!r:.80}")
        camera_id, width, height = _numbers([tokens[0], *tokens[2:4]], path, lineno, what, int)
        model = tokens[1]
        if model not in CAMERA_MODELS:
            raise DatasetError(
                f"{path}: camera {camera_id} uses camera model {model}, expected one of {', '.join(CAMERA_MODELS)}"
            )
        params = _numbers(tokens[4:], path, lineno, f"the {model} parameters")
        if len(params) != CAMERA_MODELS[model][1]:
            raise DatasetError(
                f"{path}: line {lineno}: expected {CAMERA_MODELS[model][1]} parameters for camera model {model}, "
                f"got {len(params)}"
            )
        cameras[camera_id] = ColmapCamera(camera_id, model, width, height, np.array(params))
    return cameras


def _read_images_txt(path: Path) -> dict[int, ColmapImage]:
    lines, images, i = _text_lines(path), {}, 0
    while i < len(lines):
        lineno, line = lines[i]
        i += 1
        if not line:
            continue
        tokens = line.split(maxsplit=9)
        what = "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME"
        if len(tokens) != 10:
            raise DatasetError(f"{path}: line {lineno}: expected {what}, got {line!r:.80}")
        image_id, camera_id = _numbers([tokens[0], tokens[8]], path, lineno, what, int)
        pose = np.array(_numbers(tokens[1:8], path, lineno, what))
        keypoints = lines[i][1].split() if i < len(lines) else []
        if len(keypoints) % 3:
            raise DatasetError(f"{path}: line {lineno + 1}: expected POINTS2D[] as (X, Y, POINT3D_ID) triples")
        xy = np.array(_numbers(keypoints[0::3] + keypoints[1::3], path, lineno + 1, "keypoint x, y")).reshape(2, -1)
        ids = np.array(_numbers(keypoints[2::3], path, lineno + 1, "POINT3D_ID", int), dtype=np.int64)
        images[image_id] = ColmapImage(image_id, pose[:4], pose[4:], camera_id, tokens[9], xy.T.copy(), ids)
        i += 1
    return images


def _read_points_txt(path: Path) -> ColmapPoints:
    ids, xyz, rgb, error, tracks = [], [], [], [], []
    for lineno, line in _text_lines(path):
        if not line:
            continue
        tokens = line.split()
        what = "POINT3D_ID X Y Z R G B ERROR TRACK[] as (IMAGE_ID, POINT2D_IDX) pairs"
        if len(tokens) < 8 or (len(tokens) - 8) % 2:
            raise DatasetError(f"{path}: line {lineno}: expected {what}, got {line!r:.80}")
        ids.append(_numbers(tokens[:1], path, lineno, what, int)[0])
        xyz.append(_numbers(tokens[1:4], path, lineno, what))
        rgb.append(_numbers(tokens[4:7], path, lineno, what, int))
        if not all(0 <= v <= 255 for v in rgb[-1]):
            raise DatasetError(f"{path}: line {lineno}: expected R G B in 0..255, got {rgb[-1]}")
        error.append(_numbers(tokens[7:8], path, lineno, what)[0])
        tracks.append(np.array(_numbers(tokens[8:], path, lineno, what, int), dtype=np.int64).reshape(-1, 2))
    return _points(ids, xyz, rgb, error, tracks)


def read_cameras(path: Path) -> dict[int, ColmapCamera]:
    """Reads ``cameras.bin`` or ``cameras.txt`` (by suffix): camera id -> camera."""
    return _read_cameras_bin(path) if path.suffix == ".bin" else _read_cameras_txt(path)


def read_images(path: Path) -> dict[int, ColmapImage]:
    """Reads ``images.bin`` or ``images.txt`` (by suffix): image id -> image."""
    return _read_images_bin(path) if path.suffix == ".bin" else _read_images_txt(path)


def read_points3d(path: Path) -> ColmapPoints:
    """Reads ``points3D.bin`` or ``points3D.txt`` (by suffix)."""
    return _read_points_bin(path) if path.suffix == ".bin" else _read_points_txt(path)


# -- writing -------------------------------------------------------------------------------------
def write_cameras(path: Path, cameras: Sequence[ColmapCamera]) -> None:
    """Writes ``cameras.bin`` or ``cameras.txt`` (by suffix)."""
    if path.suffix == ".bin":
        out = [struct.pack("<Q", len(cameras))]
        for c in cameras:
            out.append(struct.pack("<iiQQ", c.id, CAMERA_MODELS[c.model][0], c.width, c.height))
            out.append(np.asarray(c.params, dtype="<f8").tobytes())
        path.write_bytes(b"".join(out))
        return
    lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
             f"# Number of cameras: {len(cameras)}"]  # fmt: skip
    lines += [" ".join([str(c.id), c.model, str(c.width), str(c.height), *map(repr, map(float, c.params))])
              for c in cameras]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_images(path: Path, images: Sequence[ColmapImage]) -> None:
    """Writes ``images.bin`` or ``images.txt`` (by suffix)."""
    if path.suffix == ".bin":
        out = [struct.pack("<Q", len(images))]
        for im in images:
            out.append(struct.pack("<i7di", im.id, *map(float, im.qvec), *map(float, im.tvec), im.camera_id))
            out.append(im.name.encode("utf-8") + b"\0" + struct.pack("<Q", len(im.point3d_ids)))
            points = np.empty(len(im.point3d_ids), dtype=_POINT2D)
            points["x"], points["y"], points["id"] = im.xys[:, 0], im.xys[:, 1], im.point3d_ids
            out.append(points.tobytes())
        path.write_bytes(b"".join(out))
        return
    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
             "#   POINTS2D[] as (X, Y, POINT3D_ID)", f"# Number of images: {len(images)}"]  # fmt: skip
    for im in images:
        pose = " ".join(map(repr, map(float, [*im.qvec, *im.tvec])))
        lines.append(f"{im.id} {pose} {im.camera_id} {im.name}")
        lines.append(" ".join(f"{float(x)!r} {float(y)!r} {int(i)}" for (x, y), i in zip(im.xys, im.point3d_ids)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_points3d(path: Path, points: ColmapPoints) -> None:
    """Writes ``points3D.bin`` or ``points3D.txt`` (by suffix)."""
    rows = zip(points.ids, points.xyz, points.rgb, points.error, points.tracks)
    if path.suffix == ".bin":
        out = [struct.pack("<Q", len(points.ids))]
        for point_id, xyz, rgb, err, track in rows:
            out.append(struct.pack("<Q3d3BdQ", int(point_id), *map(float, xyz), *map(int, rgb), float(err), len(track)))
            out.append(np.asarray(track, dtype="<i4").tobytes())
        path.write_bytes(b"".join(out))
        return
    lines = ["# 3D point list with one line of data per point:",
             "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
             f"# Number of points: {len(points.ids)}"]  # fmt: skip
    for point_id, xyz, rgb, err, track in rows:
        values = [str(int(point_id)), *map(repr, map(float, xyz)), *map(str, map(int, rgb)), repr(float(err))]
        lines.append(" ".join(values + [str(int(v)) for v in np.asarray(track).reshape(-1)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


