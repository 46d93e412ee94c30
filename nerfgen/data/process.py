"""Photos or a video in, a posed capture out: COLMAP structure from motion on the CPU (pycolmap).

:func:`process` writes, atomically (a hidden temporary folder renamed into place at the end)::

    OUTPUT/images/          the frames used (a folder's names kept, a video's as frame_00001.jpg, ...)
    OUTPUT/images_{2,4,8}/  box-downscaled copies
    OUTPUT/sparse/0/        the COLMAP binary model (cameras.bin, images.bin, points3D.bin, ...)
    OUTPUT/transforms.json  instant-ngp's colmap2nerf layout, read by :func:`nerfgen.data.load_dataset`

In ``transforms.json`` the poses are OpenGL camera-to-world (x right, y up, z back), rotated so
the cameras' mean up vector is +z, centred on the point the optical axes pass closest to and
scaled so the mean camera distance from it is :data:`CAMERA_DISTANCE` (instant-ngp's ``scale``
0.33 / ``offset`` 0.5 defaults then frame the scene); ``colmap_to_world`` is the 4x4 similarity
that takes a point of ``sparse/0`` into those coordinates.

:mod:`nerfgen.data.triangulate` keeps a capture's own poses fixed and only matches features and
triangulates points (depth supervision for captures that have no COLMAP model).

COLMAP's cameras are OpenCV world-to-camera (x right, y down, z forward); nerfgen's are OpenGL
camera-to-world: :func:`opengl_c2w_from_colmap` and :func:`colmap_from_opengl_c2w` convert.
pycolmap is an optional dependency (``pip install 'nerfgen[capture]'``), imported on first use.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nerfgen.data.errors import DatasetError
from nerfgen.data.frames import collect_frames, write_pyramid
from nerfgen.data.sfm_poses import (
    CAMERA_DISTANCE,
    align_similarity,
    colmap_from_opengl_c2w,
    normalise_poses,
    opengl_c2w_from_colmap,
    pose_errors,
)
from nerfgen.files import make_temp_dir, write_json

__all__ = [
    "CAMERA_DISTANCE", "MATCHERS", "ProcessOptions", "ProcessResult", "align_similarity", "colmap_from_opengl_c2w",
    "normalise_poses", "opengl_c2w_from_colmap", "pose_errors", "process",
]  # fmt: skip

MATCHERS = ("auto", "exhaustive", "sequential")
CAMERA_MODELS = ("OPENCV", "SIMPLE_RADIAL")
EXHAUSTIVE_MAX = 60
"""``matcher="auto"`` matches every pair up to this many images, neighbours in order beyond."""
POLL_SECONDS = 0.2
"""How often the main thread checks on a running pycolmap call (and so for Ctrl+C)."""


@dataclass
class ProcessOptions:
    """How :func:`process` turns frames into poses."""

    fps: float | None = None
    """Video only: frames kept per second of video (default: every frame)."""
    max_size: int | None = None
    """Longest side of the working images, pixels (default: the source size)."""
    matcher: str = "auto"
    """``exhaustive`` (every pair), ``sequential`` (neighbours in capture order) or ``auto``
    (exhaustive up to :data:`EXHAUSTIVE_MAX` images)."""
    camera_model: str = "OPENCV"
    """COLMAP model of the one camera shared by all frames: ``OPENCV`` or ``SIMPLE_RADIAL``."""
    min_registered: float = 1.0
    """Fraction of the frames SfM must register, else :class:`DatasetError` (default: all)."""
    blur_ratio: float = 0.5
    """Leave out frames sharper than less than this times their neighbours' median (0: keep all)."""
    sequential_overlap: int = 10
    """Sequential matching: each frame is matched with this many following ones (and with
    frames 2, 4, 8, ... ahead)."""
    threads: int = -1
    """CPU threads for pycolmap (-1: all)."""
    seed: int = 0
    """Random seed of COLMAP's RANSAC and mapper."""
    progress: bool = True
    """Show a progress bar per stage on stderr (plain lines when it is not a terminal)."""
    dynamic: bool = False
    """The frames film a scene that moves: each frame gets its ``time`` in ``transforms.json``, its
    position over the clip (the video's first frame at 0, its last at 1), and the capture trains
    as a dynamic scene."""

    def __post_init__(self) -> None:
        if self.matcher not in MATCHERS:
            raise ValueError(f"matcher must be one of {', '.join(MATCHERS)}, got {self.matcher!r}")
        if self.camera_model not in CAMERA_MODELS:
            raise ValueError(f"camera_model must be one of {', '.join(CAMERA_MODELS)}, got {self.camera_model!r}")
        if not 0 < self.min_registered <= 1:
            raise ValueError(f"min_registered must be a fraction in (0, 1], got {self.min_registered!r}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps!r}")
        if not self.blur_ratio >= 0:
            raise ValueError(f"blur_ratio must be >= 0 (0 keeps every frame), got {self.blur_ratio!r}")
        if self.sequential_overlap < 1:
            raise ValueError(f"sequential_overlap must be >= 1, got {self.sequential_overlap!r}")
        if self.max_size is not None and self.max_size < 16:
            raise ValueError(f"max_size must be at least 16 pixels, got {self.max_size!r}")


@dataclass
class ProcessResult:
    """What :func:`process` wrote.

    Attributes:
        output: The output folder.
        registered: Images SfM posed (all of ``names``: the others fail the run or, with
            ``min_registered`` < 1, are left out of ``transforms.json``).
        frames: Frames given to SfM.
        skipped_blurry: Frames left out as blurry before SfM.
        points: 3D points in the model.
        reprojection_error: Mean reprojection error, pixels.
        camera: The estimated camera ``{"model", "width", "height", "params"}``.
        seconds: Wall time per stage (``frames``, ``extract``, ``match``, ``map``, ``write``).
    """

    output: Path
    registered: int
    frames: int
    skipped_blurry: list[str]
    points: int
    reprojection_error: float
    camera: dict
    seconds: dict[str, float] = field(default_factory=dict)


# --- conventions and alignment (pure numpy) -------------------------------------------------------------------------


def _pycolmap():
    try:
        import pycolmap
    except ModuleNotFoundError as exc:
        if exc.name != "pycolmap":
            raise
        raise ImportError("structure from motion needs pycolmap; install it with: pip install 'nerfgen[capture]'") from exc
    return pycolmap


class _Stages:
    """A rich progress bar per stage on stderr (a plain line per stage when not a terminal)."""

    def __init__(self, show: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.show, self.seconds = show, {}
        self.bar = Progress(TextColumn("[bold]{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=self.console, disable=not (show and self.console.is_terminal))

    def note(self, message: str) -> None:
        if self.show:
            self.console.print(f"nerfgen data: {message}", markup=False, highlight=False)

    @contextmanager
    def stage(self, name: str, total: int) -> Iterator:
        task = self.bar.add_task(name, total=total or None)
        start = time.perf_counter()

        def advance(done: int, new_total: int | None = None) -> None:
            self.bar.update(task, completed=done, total=new_total or self.bar.tasks[task].total)

        with self.bar:
            yield advance
        self.seconds[name] = round(time.perf_counter() - start, 3)
        if self.show and not self.console.is_terminal:
            print(f"nerfgen data: {name} done in {self.seconds[name]:.1f} s", file=sys.stderr, flush=True)


@contextmanager
def _quiet_colmap(pycolmap) -> Iterator[None]:
    level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 2  # errors only
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = level


def _chunks(items: list, min_size: int, parts: int = 10) -> list[list]:
    """``items`` in about ``parts`` runs of at least ``min_size``: one pycolmap call each, so the
    bar moves between calls (reading COLMAP's database meanwhile from Python's own SQLite is not
    safe: two SQLite copies in one process break each other's locks)."""
    size = max(min_size, math.ceil(len(items) / parts))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _in_worker(pycolmap, run) -> None:
    """``run(token)`` in a worker thread (pycolmap releases the GIL), so that Ctrl+C cancels
    pycolmap through ``token`` and waits for it; the worker's exception is raised here."""
    token, failure = pycolmap.CancellationToken(), []

    def work() -> None:
        try:
            run(token)
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(POLL_SECONDS)
    except BaseException:
        token.cancel()
        worker.join()
        raise
    if failure:
        raise failure[0]


def _extract(pycolmap, db: Path, images: Path, names: list[str], model: str, threads: int, advance,
             camera: tuple[str, list[float]] | None = None) -> None:
    """SIFT on the CPU into ``db``, all ``names`` sharing one camera (``camera``: known model + params)."""
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera[0] if camera else model
    if camera:
        reader.camera_params = ",".join(f"{p:.17g}" for p in camera[1])
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads, extraction.use_gpu = threads, False
    done = 0
    for chunk in _chunks(names, 4 * max(threads, 2)):
        _in_worker(pycolmap, lambda token: pycolmap.extract_features(
            db, images, image_names=chunk, camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
            extraction_options=extraction, device=pycolmap.Device.cpu, cancellation_token=token))
        if reader.existing_camera_id < 0:  # later chunks share the first chunk's camera
            database = pycolmap.Database.open(db)
            reader.existing_camera_id = max(c.camera_id for c in database.read_all_cameras())
            database.close()
        done += len(chunk)
        advance(done)


def _pairs(names: list[str], matcher: str, overlap: int) -> list[tuple[str, str]]:
    n = len(names)
    if matcher == "auto":
        matcher = "exhaustive" if n <= EXHAUSTIVE_MAX else "sequential"
    if matcher == "exhaustive":
        return [(names[i], names[j]) for i in range(n) for j in range(i + 1, n)]
    ahead = set(range(1, overlap + 1)) | {2**k for k in range(int(math.log2(max(n, 2))) + 1)}
    return [(names[i], names[i + k]) for i in range(n) for k in sorted(ahead) if i + k < n]


def _match(pycolmap, db: Path, work: Path, pairs: list[tuple[str, str]], threads: int, seed: int, advance) -> None:
    """Match and geometrically verify the listed pairs (the CPU matcher)."""
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads, matching.use_gpu = threads, False
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = seed
    done = 0
    for chunk in _chunks(pairs, 100):
        listing = work / "pairs.txt"
        listing.write_text("".join(f"{a} {b}\n" for a, b in chunk))
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = listing
        _in_worker(pycolmap, lambda token: pycolmap.match_image_pairs(
            db, matching_options=matching, pairing_options=pairing, verification_options=verification,
            device=pycolmap.Device.cpu, cancellation_token=token))
        done += len(chunk)
        advance(done)


def _map(pycolmap, db: Path, images: Path, work: Path, n: int, threads: int, seed: int, advance):
    """Incremental mapping; the model with the most registered images (None when there is none)."""
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads, options.random_seed = threads, seed
    options.min_model_size = min(options.min_model_size, max(2, n // 2))
    registered = [0]

    def next_image() -> None:
        registered[0] += 1
        advance(min(registered[0] + 1, n))

    models = {}
    _in_worker(pycolmap, lambda token: models.update(pycolmap.incremental_mapping(
        db, images, work / "sparse", options=options, next_image_callback=next_image, cancellation_token=token)))
    return max(models.values(), key=lambda r: r.num_reg_images(), default=None)


def _check_registered(model, names: list[str], fraction: float, source: Path) -> list[str]:
    """Names SfM posed, in order; :class:`DatasetError` naming the rest when too few."""
    posed = set() if model is None else {model.image(i).name for i in model.reg_image_ids()}
    need = math.ceil(fraction * len(names) - 1e-9)
    if len(posed) < need:
        failed = [n for n in names if n not in posed]
        listed = ", ".join(failed[:20]) + (f", ... ({len(failed) - 20} more)" if len(failed) > 20 else "")
        raise DatasetError(f"{source}: structure from motion registered {len(posed)} of {len(names)} images "
                           f"(needs {need}); not registered: {listed}")
    return [n for n in names if n in posed]


def _camera_keys(camera) -> dict:
    """transforms.json intrinsics of a COLMAP camera (SIMPLE_RADIAL written as its OPENCV equivalent)."""
    p = [float(v) for v in camera.params]
    if camera.model_name == "SIMPLE_RADIAL":
        p = [p[0], p[0], p[1], p[2], p[3], 0.0, 0.0, 0.0]
    w, h = int(camera.width), int(camera.height)
    return {"camera_model": "OPENCV", "sfm_camera_model": camera.model_name,
            "fl_x": p[0], "fl_y": p[1], "cx": p[2], "cy": p[3], "w": w, "h": h,
            "camera_angle_x": 2 * math.atan(w / (2 * p[0])), "camera_angle_y": 2 * math.atan(h / (2 * p[1])),
            "k1": p[4], "k2": p[5], "p1": p[6], "p2": p[7]}


def _transforms(model, names: list[str], sharpness: dict[str, float], times: dict[str, float] | None = None) -> dict:
    by_name = {model.image(i).name: model.image(i) for i in model.reg_image_ids()}
    c2w = np.stack([opengl_c2w_from_colmap(by_name[n].cam_from_world().matrix()) for n in names])
    points = np.array([p.xyz for p in model.points3D.values()]) if model.num_points3D() else None
    poses, transform = normalise_poses(c2w, points)
    camera = model.camera(by_name[names[0]].camera_id)
    frames = [{"file_path": f"images/{n}", "sharpness": sharpness[n], **({"time": times[n]} if times else {}),
               "transform_matrix": pose.tolist()} for n, pose in zip(names, poses)]
    return {**_camera_keys(camera), "aabb_scale": 16, "colmap_to_world": transform.tolist(), "frames": frames}


@contextmanager
def _building(output: Path) -> Iterator[Path]:
    """A hidden temporary folder beside ``output``, renamed to it on success, removed on failure."""
    if output.exists():
        raise FileExistsError(f"{output}: already exists; pick another --output")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(output)
    try:
        yield tmp
        shutil.rmtree(tmp / ".work", ignore_errors=True)
        os.rename(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def process(source: str | Path, output: str | Path, options: ProcessOptions | None = None) -> ProcessResult:
    """Poses a folder of photos or a video with COLMAP (pycolmap, CPU) and writes a capture.

    Args:
        source: A folder of images (all one size: one camera) or a video file.
        output: Folder to create (must not exist); nothing is left there on failure.
        options: Frame selection, matching, camera model, threads.

    Returns:
        What was written and how long each stage took.

    Raises:
        DatasetError: No frames, an unreadable image or video (named), or too few images
            registered (naming the ones that failed).
        ImportError: pycolmap is not installed.

    >>> result = process("photos/", "capture/", ProcessOptions(max_size=1024))  # doctest: +SKIP
    >>> result.registered, result.frames
    (48, 48)
    """
    options = options or ProcessOptions()
    source, output = Path(source), Path(output)
    pycolmap = _pycolmap()
    stages = _Stages(options.progress)
    with _building(output) as tmp, _quiet_colmap(pycolmap):
        images, work = tmp / "images", tmp / ".work"
        images.mkdir()
        work.mkdir()
        with stages.stage("frames", 0) as advance:
            frames = collect_frames(source, images, options.fps, options.max_size, options.blur_ratio,
                                    progress=advance)
        if frames.skipped:
            stages.note(f"skipped {len(frames.skipped)} blurry frame(s) of {len(frames.skipped) + len(frames.names)}: "
                        + ", ".join(frames.skipped[:10]) + (", ..." if len(frames.skipped) > 10 else ""))
        if len(frames.names) < 2:
            raise DatasetError(f"{source}: {len(frames.names)} frame(s) left after skipping blurry ones; "
                               "structure from motion needs at least 2")
        names, db = frames.names, work / "database.db"
        pycolmap.set_random_seed(options.seed)
        with stages.stage("extract", len(names)) as advance:
            _extract(pycolmap, db, images, names, options.camera_model, options.threads, advance)
        pairs = _pairs(names, options.matcher, options.sequential_overlap)
        with stages.stage("match", len(pairs)) as advance:
            _match(pycolmap, db, work, pairs, options.threads, options.seed, advance)
        with stages.stage("map", len(names)) as advance:
            model = _map(pycolmap, db, images, work, len(names), options.threads, options.seed, advance)
        posed = _check_registered(model, names, options.min_registered, source)
        with stages.stage("write", len(posed)) as advance:
            for name in set(names) - set(posed):
                (images / name).unlink()
            write_pyramid(images, posed)
            (tmp / "sparse" / "0").mkdir(parents=True)
            model.write(tmp / "sparse" / "0")
            times = dict(zip(names, frames.times().tolist())) if options.dynamic else None
            write_json(tmp / "transforms.json", _transforms(model, posed, dict(zip(names, frames.sharpness.tolist())),
                                                            times))
            advance(len(posed))
        camera = model.camera(model.image(model.reg_image_ids()[0]).camera_id)
    return ProcessResult(output, len(posed), len(names), frames.skipped, model.num_points3D(),
                         float(model.compute_mean_reprojection_error()),
                         {"model": camera.model_name, "width": camera.width, "height": camera.height,
                          "params": [float(p) for p in camera.params]}, stages.seconds)
