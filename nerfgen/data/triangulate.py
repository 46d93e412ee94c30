"""SfM points for a capture that already has poses (LLFF, instant-ngp): match SIFT features and
triangulate with the poses and intrinsics held fixed (pycolmap), for depth supervision.

:func:`triangulate_known_poses` writes a COLMAP project, ``OUTPUT/images/`` + ``OUTPUT/sparse/0``,
of every frame of the capture in the coordinates nerfgen loads it in (LLFF: recentred and scaled),
so ``nerfgen train OUTPUT`` sees the same cameras with the points. ``views=k`` triangulates from
only the ``k`` training images that ``train_views: k`` trains on (few-view training sees no
points the other images found).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nerfgen.data.colmap import write_colmap
from nerfgen.data.errors import DatasetError
from nerfgen.data.process import (
    EXHAUSTIVE_MAX,
    _building,
    _extract,
    _in_worker,
    _match,
    _pairs,
    _pycolmap,
    _quiet_colmap,
    _Stages,
    colmap_from_opengl_c2w,
)  # fmt: skip
from nerfgen.data.transforms import SfMPoints

__all__ = ["TriangulationResult", "triangulate_known_poses"]


@dataclass
class TriangulationResult:
    """What :func:`triangulate_known_poses` wrote: ``output/images/`` and ``output/sparse/0``."""

    output: Path
    images: int
    points: int
    reprojection_error: float
    mean_track_length: float
    seconds: dict[str, float] = field(default_factory=dict)



def _save_rgb(images, names: list[str], folder: Path) -> None:
    from PIL import Image

    for image, name in zip(images, names):
        Image.fromarray(image[..., :3].numpy()).save(folder / name)


def _unique_names(filenames: list[str]) -> list[str]:
    stems = [Path(f).stem for f in filenames]
    if len(set(stems)) == len(stems):
        return [f"{s}.png" for s in stems]
    return [f"{i:05d}_{s}.png" for i, s in enumerate(stems)]


def _neighbour_pairs(names: list[str], centres: np.ndarray, forward: np.ndarray, k: int) -> list[tuple[str, str]]:
    """Each image with its ``k`` nearest cameras that look the same way (within 90 degrees)."""
    n = len(names)
    if n <= EXHAUSTIVE_MAX:
        return _pairs(names, "exhaustive", 0)
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    dist[forward @ forward.T <= 0] = np.inf
    np.fill_diagonal(dist, np.inf)
    chosen = {tuple(sorted((i, int(j)))) for i in range(n) for j in np.argsort(dist[i])[:k] if np.isfinite(dist[i, j])}
    return [(names[i], names[j]) for i, j in sorted(chosen)]


def _chosen_frames(data: str | Path, names: list[str], filenames: list[str], views: int, downscale: float,
                   format: str) -> list[int]:
    """Indices (into the ``"all"`` split) of the frames features come from: every one, or the
    ``views`` training images that ``train_views: views`` trains on."""
    if views <= 0:
        return list(range(len(names)))
    from nerfgen.data import load_dataset
    from nerfgen.data.dataset import spread_views

    train = load_dataset(data, "train", downscale, format=format).filenames
    picked = {train[i] for i in spread_views(len(train), views)}
    return [i for i, f in enumerate(filenames) if f in picked]


def _points(model, names: list[str]) -> SfMPoints:
    """The model's points, with each frame's visible points (frames in ``names`` order)."""
    frame_of = {image_id: names.index(image.name) for image_id, image in model.images.items()}
    xyz, error, seen = [], [], [[] for _ in names]
    for k, point in enumerate(model.points3D.values()):
        xyz.append(np.asarray(point.xyz, dtype=np.float64))
        error.append(float(point.error))
        for frame in {frame_of[el.image_id] for el in point.track.elements}:
            seen[frame].append(k)
    return SfMPoints(np.asarray(xyz).reshape(-1, 3), np.asarray(error), [np.asarray(v, dtype=np.int64) for v in seen])


def triangulate_known_poses(data: str | Path, output: str | Path, downscale: float = 1, threads: int = -1,
                            neighbours: int = 20, progress: bool = True, views: int = 0,
                            format: str = "auto") -> TriangulationResult:
    """Triangulates SfM points of a posed capture with its poses and intrinsics held fixed.

    Loads ``load_dataset(data, "all", downscale)``, writes its images to ``output/images/``,
    extracts and matches SIFT features (every pair up to :data:`EXHAUSTIVE_MAX` images, else
    each image with its ``neighbours`` nearest cameras) and triangulates with pycolmap into
    ``output/sparse/0``, in the dataset's world coordinates.

    Args:
        data: A dataset :func:`nerfgen.data.load_dataset` reads.
        output: Folder to create (must not exist).
        downscale: Image downscale for the features (intrinsics follow).
        threads: CPU threads (-1: all).
        neighbours: Matching partners per image for large captures.
        progress: Progress bar per stage on stderr.
        views: Triangulate from only the ``views`` training images ``train_views: views`` trains
            on (0: every image); the project still holds every frame.
        format: The capture's reader (see :func:`nerfgen.data.load_dataset`).

    Returns:
        Point count, mean reprojection error (pixels) and track length.
    """
    from nerfgen.data import load_dataset

    pycolmap = _pycolmap()
    output = Path(output)
    stages = _Stages(progress)
    ds = load_dataset(data, "all", downscale, format=format)
    cams = ds.cameras
    if getattr(cams, "fisheye", None) is not None and bool(np.asarray(cams.fisheye).any()):
        raise DatasetError(f"{data}: fisheye cameras are not supported for triangulation")
    dist = cams.distortion.numpy() if cams.distortion is not None else np.zeros((len(cams), 4))
    params = np.concatenate([np.stack([t.numpy() for t in (cams.fx, cams.fy, cams.cx, cams.cy)], 1), dist], 1)
    c2w = cams.c2w.double().numpy()
    names = _unique_names(ds.filenames)
    chosen = _chosen_frames(data, names, ds.filenames, views, downscale, format)
    with _building(output) as tmp, _quiet_colmap(pycolmap):
        images, work = tmp / "images", tmp / ".work"
        images.mkdir()
        work.mkdir()
        _save_rgb([ds.image(i) for i in range(len(ds))], names, images)
        db = work / "database.db"
        used = [names[i] for i in chosen]
        with stages.stage("extract", len(used)) as advance:
            same = bool(np.allclose(params[chosen], params[chosen[:1]]))
            for j, i in enumerate([chosen[0]] if same else chosen):  # one camera per distinct intrinsics
                chunk = used if same else [names[i]]
                _extract(pycolmap, db, images, chunk, "OPENCV", threads, lambda d, j=j: advance(d if same else j + 1),
                         camera=("OPENCV", params[i].tolist()))
        pairs = _neighbour_pairs(used, c2w[chosen, :3, 3], -c2w[chosen, :3, 2], neighbours)
        with stages.stage("match", len(pairs)) as advance:
            _match(pycolmap, db, work, pairs, threads, 0, advance)
        with stages.stage("triangulate", len(used)) as advance:
            database = pycolmap.Database.open(db)
            model = pycolmap.Reconstruction()
            index = {name: i for i, name in enumerate(names)}
            for camera in database.read_all_cameras():
                model.add_camera_with_trivial_rig(camera)
            for image in database.read_all_images():
                i = index[image.name]
                pose = pycolmap.Rigid3d(colmap_from_opengl_c2w(c2w[i]))
                model.add_image_with_trivial_frame(
                    pycolmap.Image(name=image.name, camera_id=image.camera_id, image_id=image.image_id), pose)
            database.close()
            options = pycolmap.IncrementalPipelineOptions()
            options.num_threads = threads
            known, result = model, []
            _in_worker(pycolmap, lambda token: result.append(pycolmap.triangulate_points(
                known, db, images, work / "triangulated", clear_points=True, options=options, refine_intrinsics=False,
                cancellation_token=token)))
            model = result[0]
            # Every frame's camera and pose (not only the triangulated ones), with the points.
            write_colmap(tmp, cams, names, points=_points(model, names), sizes=ds.sizes.numpy())
            advance(len(used))
    return TriangulationResult(output, len(used), model.num_points3D(),
                               float(model.compute_mean_reprojection_error()),
                               float(model.compute_mean_track_length()), stages.seconds)
