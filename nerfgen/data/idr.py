r"""IDR / NeuS format: ``cameras_sphere.npz`` beside ``image/`` (or ``images/``) and optional ``mask/``.

The npz holds, per image ``i`` (images sorted by name), ``world_mat_i``, the projection
``P = K [R | t]`` (4x4, or 3x4) of world points to pixels, and ``scale_mat_i``, which maps the unit
sphere around the object into the world. We load cameras in the normalised frame, where the object
lies in the unit sphere: the projection there is :math:`P S`, decomposed (RQ) into an upper-triangular
``K`` with positive diagonal and a rotation, then turned into an OpenGL camera-to-world pose:

.. math::
    P S = K [R \mid t], \qquad c2w = [R^\top \operatorname{diag}(1, -1, -1) \mid -R^\top t].

``cameras.npz`` (IDR's name) is read when there is no ``cameras_sphere.npz``. A mask pairs with its
image by name, else by frame number across zero-padding (NeuS's DTU scans, ``public_data/dtu_scanNN``,
pair ``image/000012.png`` with ``mask/012.png``), as NeuS and IDR pair them in sorted order. There is no split in
the files: every ``holdout_every``-th image (by name) is held out, as for COLMAP.

>>> scene = parse_idr(Path("data/dtu_scan65"), "train")  # doctest: +SKIP
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nerfgen.cameras.base import Cameras
from nerfgen.data.errors import DatasetError
from nerfgen.data.images import probe_sizes
from nerfgen.data.instant_ngp import _split_indices, check_split
from nerfgen.data.transforms import Frame, ParsedScene

__all__ = ["decompose_projection", "find_idr_cameras", "has_masks", "parse_idr", "write_idr"]

_NPZ_NAMES = ("cameras_sphere.npz", "cameras.npz")
_IMAGE_DIRS = ("image", "images")
_SUFFIXES = {".png", ".jpg", ".jpeg"}
_OPENGL = np.diag([1.0, -1.0, -1.0])
_MAX_SKEW_SHIFT = 0.1  # pixels at the image's top/bottom edge that ignoring K's skew may move


def find_idr_cameras(folder: Path) -> Path | None:
    """The IDR/NeuS camera file of ``folder`` (``cameras_sphere.npz``, else ``cameras.npz``), or None."""
    for name in _NPZ_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def decompose_projection(projection: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Splits a 3x4 projection ``P = K [R | t]`` (up to scale) into intrinsics and an OpenGL pose.

    Args:
        projection: ``[3, 4]`` (or ``[4, 4]``, last row ignored) with a non-singular left 3x3.

    Returns:
        ``K`` ``[3, 3]`` upper triangular with ``K[2, 2] = 1`` and positive focal lengths, and the
        camera-to-world pose ``[3, 4]`` in OpenGL axes.
    """
    m, p4 = projection[:3, :3].astype(np.float64), projection[:3, 3].astype(np.float64)
    if np.linalg.det(m) < 0:  # P is defined up to scale: pick the sign that makes R a rotation
        m, p4 = -m, -p4
    flip = np.eye(3)[::-1]
    q, u = np.linalg.qr((flip @ m).T)  # RQ decomposition of m via QR of its row-reversed transpose
    k, rot = flip @ u.T @ flip, flip @ q.T
    signs = np.diag(np.sign(np.diag(k)))
    k, rot = k @ signs, signs @ rot
    centre = -np.linalg.solve(m, p4)
    return k / k[2, 2], np.concatenate([rot.T @ _OPENGL, centre[:, None]], axis=1)


def _matrix(cams: np.lib.npyio.NpzFile, key: str, path: Path, name: str, shapes: tuple) -> np.ndarray:
    if key not in cams.files:
        raise DatasetError(
            f"{path}: expected key '{key}' for image {name} (one world_mat_i and scale_mat_i per image, "
            f"i = 0..n-1 in sorted image order)"
        )
    try:
        value = cams[key]  # read (and decompressed) only now: a damaged archive fails here
    except Exception as err:  # zipfile, zlib and numpy raise several types
        raise DatasetError(f"{path}: cannot read '{key}' ({type(err).__name__}: {err})") from err
    if value.dtype.kind not in "fiu":
        raise DatasetError(f"{path}: '{key}' must be a matrix of real numbers, got dtype {value.dtype}")
    value = value.astype(np.float64)
    if value.shape not in shapes or not np.isfinite(value).all():
        expected = " or ".join("x".join(map(str, s)) for s in shapes)
        raise DatasetError(f"{path}: '{key}' must be a finite {expected} matrix, got shape {list(value.shape)}")
    return value


def _camera(cams: np.lib.npyio.NpzFile, i: int, path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    world = _matrix(cams, f"world_mat_{i}", path, name, ((4, 4), (3, 4)))
    scale = _matrix(cams, f"scale_mat_{i}", path, name, ((4, 4),))
    projection = world[:3] @ scale
    if abs(np.linalg.det(projection[:, :3])) < 1e-12 * max(1.0, np.abs(projection).max()) ** 3:
        raise DatasetError(f"{path}: world_mat_{i} @ scale_mat_{i} (image {name}) is singular, expected K [R | t]")
    return decompose_projection(projection)


def _images(folder: Path, npz: Path) -> list[Path]:
    for sub in _IMAGE_DIRS:
        if (folder / sub).is_dir():
            images = sorted(p for p in (folder / sub).iterdir() if p.suffix.lower() in _SUFFIXES)
            if not images:
                raise DatasetError(f"{folder / sub}: no .png/.jpg images for the cameras in {npz}")
            return images
    raise DatasetError(f"{folder}: expected an image/ or images/ folder beside {npz.name}")


def has_masks(folder: Path) -> bool:
    """Whether ``folder/mask`` holds any mask image."""
    mask_dir = folder / "mask"
    return mask_dir.is_dir() and any(p.suffix.lower() in _SUFFIXES for p in mask_dir.iterdir())


def _frame_number(path: Path) -> int | None:
    """The last run of digits in a file's stem (``000012.png`` and ``12.png`` are both frame 12)."""
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else None


def _by_frame(paths: list[Path]) -> dict[int, Path]:
    """Files by frame number, leaving out numbers that two files share or files without one."""
    numbers = [_frame_number(p) for p in paths]
    return {n: p for n, p in zip(numbers, paths) if n is not None and numbers.count(n) == 1}


def _masks(folder: Path, images: list[Path]) -> list[Path | None]:
    """The mask of each image: the file of the same stem in ``mask/``, else the one of the same
    frame number (NeuS's DTU scans pair ``image/000012.png`` with ``mask/012.png``)."""
    mask_dir = folder / "mask"
    if not mask_dir.is_dir():
        return [None] * len(images)
    masks = sorted(p for p in mask_dir.iterdir() if p.suffix.lower() in _SUFFIXES)
    by_stem = {p.stem: p for p in masks}
    if all(im.stem in by_stem for im in images):
        return [by_stem[im.stem] for im in images]
    by_frame, numbers = _by_frame(masks), [_frame_number(im) for im in images]
    missing = [im.name for im, n in zip(images, numbers) if n not in by_frame or numbers.count(n) > 1]
    if missing:
        raise DatasetError(
            f"{mask_dir}: {len(missing)} of {len(images)} images have no mask of the same name or frame number: "
            f"{', '.join(missing[:5])}"
        )
    return [by_frame[n] for n in numbers]


def parse_idr(folder: Path, split: str, holdout_every: int = 8) -> ParsedScene:
    """Parses one split of an IDR/NeuS scene folder.

    Args:
        folder: Folder holding ``cameras_sphere.npz`` (or ``cameras.npz``) and ``image/`` or ``images/``.
        split: ``"train"``, ``"test"``/``"val"`` (every ``holdout_every``-th image by name) or ``"all"``.
        holdout_every: Hold out frames 0, k, 2k, ... of the images sorted by name.

    Returns:
        The parsed split in the normalised frame (object in the unit sphere), ``layout="object"``,
        masks in :attr:`Frame.mask` when ``mask/`` exists.
    """
    folder = Path(folder)
    check_split(split, holdout_every, folder, "IDR/NeuS")
    npz = find_idr_cameras(folder)
    if npz is None:
        raise DatasetError(f"{folder}: expected {' or '.join(_NPZ_NAMES)} (IDR/NeuS cameras)")
    images = _images(folder, npz)
    masks = _masks(folder, images)
    try:
        cams = np.load(npz, allow_pickle=False)
    except Exception as err:  # numpy and zipfile raise several types for bad files
        raise DatasetError(f"{npz}: cannot read as a .npz archive ({type(err).__name__}: {err})") from err
    if not isinstance(cams, np.lib.npyio.NpzFile):
        raise DatasetError(f"{npz}: expected a .npz archive of world_mat_i and scale_mat_i, got a single array")
    with cams:
        decomposed = [_camera(cams, i, npz, im.name) for i, im in enumerate(images)]
    chosen = _split_indices(len(images), split, holdout_every, npz)
    if not chosen:
        raise DatasetError(f"{npz}: no images for split '{split}' with holdout_every={holdout_every}")
    sizes = probe_sizes([images[i] for i in chosen])
    for i, size in zip(chosen, sizes):
        mask_size = probe_sizes([masks[i]])[0] if masks[i] is not None else size
        if mask_size != size:
            raise DatasetError(f"{masks[i]}: mask is {mask_size} but its image {images[i].name} is {size} (w, h)")
        k = decomposed[i][0]
        if abs(k[0, 1]) * 0.5 * size[1] / k[1, 1] > _MAX_SKEW_SHIFT:
            raise DatasetError(
                f"{npz}: world_mat_{i} (image {images[i].name}) has skew {k[0, 1]:.4g}, which would move pixels "
                f"by more than {_MAX_SKEW_SHIFT} px; expected a camera without skew"
            )
    frames = [Frame(images[i], decomposed[i][1], {"name": images[i].name}, i, npz, mask=masks[i]) for i in chosen]
    ks = [decomposed[i][0] for i in chosen]
    intrinsics = [[k[0, 0], k[1, 1], k[0, 2], k[1, 2], 0.0, 0.0, 0.0, 0.0] for k in ks]
    return ParsedScene(
        frames=frames,
        intrinsics=np.array(intrinsics, dtype=np.float64),
        sizes=np.array(sizes, dtype=np.int64),
        aabb=np.array([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]),
        cascades=1,
        white_background=False,
        source=npz,
        layout="object",
    )


def write_idr(folder: Path, cameras: Cameras, scale_mat: np.ndarray | None = None) -> Path:
    """Writes ``cameras_sphere.npz`` for pinhole cameras (images are not written).

    The cameras are taken to live in the normalised frame; ``world_mat_i = P_i S^{-1}`` projects the
    world that ``scale_mat`` ``S`` (same for every image) maps the unit sphere into.

    Args:
        folder: Destination folder (created).
        cameras: One camera per image, in sorted image order, without distortion.
        scale_mat: ``[4, 4]`` similarity; identity when None.

    Returns:
        The npz path.
    """
    if bool((cameras.distortion != 0).any()) or bool(cameras.fisheye.any()):
        raise ValueError("write_idr: IDR/NeuS cameras have no lens distortion")
    scale = np.eye(4) if scale_mat is None else np.asarray(scale_mat, dtype=np.float64)
    arrays = {}
    for i in range(len(cameras)):
        fx, fy, cx, cy = (float(v[i]) for v in (cameras.fx, cameras.fy, cameras.cx, cameras.cy))
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        c2w = cameras.c2w[i].detach().double().cpu().numpy()
        rot_w2c = (c2w[:, :3] @ _OPENGL).T
        world = np.eye(4)
        world[:3] = k @ np.concatenate([rot_w2c, (-rot_w2c @ c2w[:, 3])[:, None]], axis=1)
        arrays[f"world_mat_{i}"], arrays[f"scale_mat_{i}"] = world @ np.linalg.inv(scale), scale
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / _NPZ_NAMES[0]
    np.savez(path, **arrays)
    return path
