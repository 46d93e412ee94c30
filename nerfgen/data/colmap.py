r"""COLMAP sparse models: reading and writing ``cameras``, ``images`` and ``points3D`` (``.bin`` or ``.txt``).

A COLMAP project folder holds the model in ``sparse/0/`` (or ``sparse/``, or ``colmap/sparse/0/``) and
the photos in ``images/``. COLMAP stores each image's world-to-camera pose as a unit quaternion
``(qw, qx, qy, qz)`` and translation ``t`` in OpenCV camera axes (x right, y down, z forward); we load
camera-to-world poses in OpenGL axes (y up, looking down -z):

.. math::
    R_{c2w} = R^\top \operatorname{diag}(1, -1, -1), \qquad C = -R^\top t.

Pixel coordinates agree with nerfgen's (the top-left pixel's centre is ``(0.5, 0.5)``). Binary files
are little-endian, laid out as in COLMAP's ``reconstruction_io``; text files as ``colmap model_converter``
writes them. There is no train/test split: frames sorted by image name are split by holding out every
``holdout_every``-th, as for instant-ngp files.

>>> scene = parse_colmap(Path("data/garden"), "train")  # doctest: +SKIP
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nerfgen.cameras.base import Cameras, project
from nerfgen.cameras.paths import matrix_from_quaternion, quaternion_from_matrix
from nerfgen.data.errors import DatasetError
from nerfgen.data.images import probe_sizes
from nerfgen.data.instant_ngp import NGP_SPLITS, _split_indices
from nerfgen.data.transforms import Frame, ParsedScene, SfMPoints

__all__ = [
    "CAMERA_MODELS", "ColmapCamera", "ColmapImage", "ColmapPoints", "find_colmap_model", "parse_colmap",
    "read_cameras", "read_images", "read_points3d", "write_cameras", "write_colmap", "write_images",
    "write_points3d",
]  # fmt: skip

# name -> (COLMAP model id, number of params). Only these are supported.
CAMERA_MODELS = {
    "SIMPLE_PINHOLE": (0, 3), "PINHOLE": (1, 4), "SIMPLE_RADIAL": (2, 4), "RADIAL": (3, 5),
    "OPENCV": (4, 8), "OPENCV_FISHEYE": (5, 8),
}  # fmt: skip
_UNSUPPORTED = {6: "FULL_OPENCV", 7: "FOV", 8: "SIMPLE_RADIAL_FISHEYE", 9: "RADIAL_FISHEYE",
                10: "THIN_PRISM_FISHEYE", 11: "RAD_TAN_THIN_PRISM_FISHEYE"}  # fmt: skip
_MODEL_NAMES = {model_id: name for name, (model_id, _) in CAMERA_MODELS.items()}
_MODEL_DIRS = ("sparse/0", "sparse", "colmap/sparse/0")
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
                f"{path}: line {lineno}: camera model {model} takes {CAMERA_MODELS[model][1]} parameters, "
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


def _colmap_camera(cameras: Cameras, i: int, size: tuple[int, int]) -> tuple[str, int, int, tuple[float, ...]]:
    k = [float(cameras.fx[i]), float(cameras.fy[i]), float(cameras.cx[i]), float(cameras.cy[i])]
    dist = [float(v) for v in cameras.distortion[i]]
    if bool(cameras.fisheye[i]):
        return "OPENCV_FISHEYE", size[0], size[1], tuple(k + dist)
    return ("OPENCV", *size, tuple(k + dist)) if any(dist) else ("PINHOLE", *size, tuple(k))


def write_colmap(
    folder: Path,
    cameras: Cameras,
    names: Sequence[str],
    *,
    points: SfMPoints | None = None,
    colors: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
    binary: bool = True,
) -> Path:
    """Writes nerfgen cameras as a COLMAP sparse model in ``folder/sparse/0`` (the images are not copied).

    Identical intrinsics share one COLMAP camera (PINHOLE, OPENCV or OPENCV_FISHEYE). Points, when
    given, get tracks from ``points.visible``, with keypoints at their projections into each image.

    Args:
        folder: Project folder; ``sparse/0`` is created in it.
        cameras: One camera per image, OpenGL camera-to-world.
        names: Image file names relative to ``folder/images``. ``[n]``.
        points: SfM points to write as ``points3D`` (else an empty table).
        colors: Point colours. ``[p, 3]`` uint8; grey when None.
        sizes: Per image ``(width, height)`` when they differ. ``[n, 2]``; default the cameras' size.
        binary: ``.bin`` files, else ``.txt``.

    Returns:
        The model folder.
    """
    n = len(cameras)
    if len(names) != n:
        raise ValueError(f"write_colmap: got {len(names)} names for {n} cameras")
    sizes = np.tile([cameras.width, cameras.height], (n, 1)) if sizes is None else np.asarray(sizes)
    model_dir = Path(folder) / "sparse" / "0"
    model_dir.mkdir(parents=True, exist_ok=True)
    c2w = cameras.c2w.detach().double().cpu()
    shared: dict[tuple, ColmapCamera] = {}
    images, observed = [], [[] for _ in range(0 if points is None else len(points.xyz))]
    for i in range(n):
        model, width, height, params = _colmap_camera(cameras, i, (int(sizes[i, 0]), int(sizes[i, 1])))
        camera = shared.setdefault((model, width, height, params),
                                   ColmapCamera(len(shared) + 1, model, width, height, np.array(params)))  # fmt: skip
        rot_w2c = (c2w[i, :, :3].numpy() @ _OPENGL).T
        image = ColmapImage(i + 1, quaternion_from_matrix(torch.from_numpy(rot_w2c)).numpy(),
                            -rot_w2c @ c2w[i, :, 3].numpy(), camera.id, names[i])  # fmt: skip
        if points is not None:
            ids = np.asarray(points.visible[i], dtype=np.int64)
            px, py, _ = project(cameras.to("cpu"), i, torch.from_numpy(points.xyz[ids]).to(cameras.c2w.dtype))
            image.xys, image.point3d_ids = np.stack([px.double().numpy(), py.double().numpy()], 1), ids + 1
            for k, point in enumerate(ids):
                observed[point].append((image.id, k))
        images.append(image)
    ext = ".bin" if binary else ".txt"
    write_cameras(model_dir / f"cameras{ext}", list(shared.values()))
    write_images(model_dir / f"images{ext}", images)
    p = len(observed)
    table = ColmapPoints(
        np.arange(1, p + 1, dtype=np.int64), np.zeros((0, 3)) if points is None else points.xyz,
        np.full((p, 3), 128, np.uint8) if colors is None else np.asarray(colors, np.uint8),
        np.zeros(p) if points is None else points.error, [np.array(t, np.int64).reshape(-1, 2) for t in observed],
    )  # fmt: skip
    write_points3d(model_dir / f"points3D{ext}", table)
    return model_dir


# -- parsing a project ---------------------------------------------------------------------------
def find_colmap_model(folder: Path) -> Path | None:
    """The sparse model folder of a COLMAP project (``sparse/0``, ``sparse``, ``colmap/sparse/0``), or None."""
    for sub in _MODEL_DIRS:
        if any((folder / sub / f"cameras{ext}").is_file() for ext in (".bin", ".txt")):
            return folder / sub
    return None


def _model_files(model_dir: Path) -> tuple[Path, Path, Path | None]:
    """``cameras``, ``images`` and (optional) ``points3D`` files, binary preferred."""
    for ext in (".bin", ".txt"):
        cameras, images, points = (model_dir / f"{name}{ext}" for name in ("cameras", "images", "points3D"))
        if cameras.is_file():
            if not images.is_file():
                raise DatasetError(f"{model_dir}: has {cameras.name} but no {images.name} (COLMAP sparse model)")
            return cameras, images, points if points.is_file() else None
    raise DatasetError(f"{model_dir}: expected a COLMAP sparse model (cameras.bin/.txt, images.bin/.txt)")


def _pose(image: ColmapImage, path: Path) -> np.ndarray:
    """OpenGL camera-to-world ``[3, 4]`` of a COLMAP image."""
    values = np.concatenate([image.qvec, image.tvec])
    if not np.isfinite(values).all() or np.linalg.norm(image.qvec) < 1e-12:
        raise DatasetError(
            f"{path}: image {image.name!r} (id {image.id}) has a non-finite or zero pose: "
            f"quaternion {image.qvec.tolist()}, translation {image.tvec.tolist()}; expected finite numbers"
        )
    rot = matrix_from_quaternion(torch.from_numpy(image.qvec.astype(np.float64))).numpy()
    return np.concatenate([rot.T @ _OPENGL, (-rot.T @ image.tvec)[:, None]], axis=1)


def _check_camera(camera: ColmapCamera, path: Path) -> None:
    p = camera.params
    if camera.width <= 0 or camera.height <= 0 or not np.isfinite(p).all() or (p[:1] <= 0).any():
        raise DatasetError(
            f"{path}: camera {camera.id} ({camera.model}) must have a positive size, positive focal length "
            f"and finite parameters, got {camera.width}x{camera.height} {p.tolist()}"
        )


def _robust_box(xyz: np.ndarray) -> np.ndarray:
    """Box around the 2nd-98th percentiles per axis, padded by 10% (never empty)."""
    lo, hi = np.percentile(xyz, 2, axis=0), np.percentile(xyz, 98, axis=0)
    extent = np.maximum(hi - lo, 1e-3 * max(1.0, float(np.abs(xyz).max())))
    centre = 0.5 * (lo + hi)
    return np.concatenate([centre - 0.6 * extent, centre + 0.6 * extent])


def _sfm_points(points: ColmapPoints | None, images: list[ColmapImage]) -> SfMPoints | None:
    if points is None:
        return None
    order = np.argsort(points.ids)
    sorted_ids = points.ids[order]
    visible = []
    for image in images:
        ids = np.unique(image.point3d_ids[image.point3d_ids >= 0])
        pos = np.searchsorted(sorted_ids, ids).clip(max=max(len(sorted_ids) - 1, 0))
        known = (sorted_ids[pos] == ids) if len(sorted_ids) else np.zeros(len(ids), bool)
        visible.append(order[pos[known]].astype(np.int64))
    return SfMPoints(points.xyz, points.error, visible)


def parse_colmap(folder: Path, split: str, holdout_every: int = 8) -> ParsedScene:
    """Parses one split of a COLMAP project folder (sparse model + ``images/``).

    Args:
        folder: Project folder holding ``sparse/0`` (or ``sparse``, ``colmap/sparse/0``) and ``images``.
        split: ``"train"``, ``"test"``/``"val"`` (every ``holdout_every``-th image by name) or ``"all"``.
        holdout_every: Hold out frames 0, k, 2k, ... of the images sorted by name.

    Returns:
        The parsed split in COLMAP's world coordinates, SfM points kept, the box around the points.
    """
    folder = Path(folder)
    if split not in NGP_SPLITS:
        raise DatasetError(f"{folder}: split must be one of {', '.join(NGP_SPLITS)} for COLMAP, got {split!r}")
    if isinstance(holdout_every, bool) or not isinstance(holdout_every, int) or holdout_every < 2:
        raise ValueError(f"holdout_every must be an int >= 2, got {holdout_every!r}")
    model_dir = find_colmap_model(folder)
    if model_dir is None:
        raise DatasetError(f"{folder}: expected a COLMAP model in {' or '.join(_MODEL_DIRS)} (cameras.bin/.txt)")
    cameras_file, images_file, points_file = _model_files(model_dir)
    cameras = read_cameras(cameras_file)
    images = sorted(read_images(images_file).values(), key=lambda im: im.name)
    if not images:
        raise DatasetError(f"{images_file}: the model has no registered images")
    for camera in cameras.values():
        _check_camera(camera, cameras_file)
    unknown = [im.name for im in images if im.camera_id not in cameras]
    if unknown:
        raise DatasetError(f"{images_file}: images {', '.join(unknown[:5])} name cameras missing from {cameras_file}")
    image_dir = folder / "images"
    missing = [im.name for im in images if not (image_dir / im.name).is_file()]
    if missing:
        raise DatasetError(
            f"{images_file}: {len(missing)} of {len(images)} images named by the model are missing from "
            f"{image_dir}: {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}"
        )
    poses = [_pose(im, images_file) for im in images]
    chosen = _split_indices(len(images), split, holdout_every, images_file)
    if not chosen:
        raise DatasetError(f"{images_file}: no images for split '{split}' with holdout_every={holdout_every}")
    images, poses = [images[i] for i in chosen], [poses[i] for i in chosen]
    paths = [image_dir / im.name for im in images]
    for path, im, (w, h) in zip(paths, images, probe_sizes(paths)):
        cam = cameras[im.camera_id]
        if (w, h) != (cam.width, cam.height):
            raise DatasetError(
                f"{path}: image is {w}x{h} (w x h) but its camera {cam.id} in {cameras_file} is "
                f"{cam.width}x{cam.height}"
            )
    intrinsics, fisheye = zip(*(cameras[im.camera_id].intrinsics() for im in images))
    frames = [Frame(path, pose, {"name": im.name, "image_id": im.id, "camera_id": im.camera_id}, i, images_file)
              for i, (path, pose, im) in zip(chosen, zip(paths, poses, images))]  # fmt: skip
    points = _sfm_points(read_points3d(points_file) if points_file else None, images)
    have_points = points is not None and len(points.xyz) > 0
    centres = np.stack([pose[:, 3] for pose in poses])
    return ParsedScene(
        frames=frames,
        intrinsics=np.array(intrinsics, dtype=np.float64),
        sizes=np.array([(cameras[im.camera_id].width, cameras[im.camera_id].height) for im in images], np.int64),
        aabb=_robust_box(points.xyz if have_points else centres),
        cascades=1,
        white_background=False,
        source=images_file,
        fisheye=np.array(fisheye) if any(fisheye) else None,
        points=points,
    )
