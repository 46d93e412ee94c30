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

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from nerfgen.cameras.base import Cameras, project
from nerfgen.cameras.paths import matrix_from_quaternion, quaternion_from_matrix
from nerfgen.data.colmap_model import (
    _OPENGL,
    ColmapCamera,
    ColmapImage,
    ColmapPoints,
    read_cameras,
    read_images,
    read_points3d,
    write_cameras,
    write_images,
    write_points3d,
)  # fmt: skip
from nerfgen.data.errors import DatasetError
from nerfgen.data.images import probe_sizes
from nerfgen.data.instant_ngp import _split_indices, check_split
from nerfgen.data.transforms import Frame, ParsedScene, SfMPoints

__all__ = ["find_colmap_model", "parse_colmap", "write_colmap"]

_MODEL_DIRS = ("sparse/0", "sparse", "colmap/sparse/0")

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


def _sfm_points(points: ColmapPoints | None, images: list[ColmapImage], path: Path | None) -> SfMPoints | None:
    if points is None:
        return None
    bad = ~(np.isfinite(points.xyz).all(1) & (np.abs(points.xyz) < 1e30).all(1))
    if bad.any():
        raise DatasetError(f"{path}: point {int(points.ids[bad][0])} has coordinates {points.xyz[bad][0].tolist()}, "
                           "expected finite numbers of a scene's size")
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
    check_split(split, holdout_every, folder, "COLMAP")
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
    points = _sfm_points(read_points3d(points_file) if points_file else None, images, points_file)
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
