"""COLMAP (binary and text), IDR/NeuS and fisheye transforms.json: written from a rendered scene, read back.

Every format is checked against the rendered NeRF-synthetic source: poses, intrinsics, image sizes and
the rays through every pixel (``image_rays``), plus hand-built cases that do not go through our writers.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from nerfgen.scenes import render_dataset
from PIL import Image

from nerfgen.cameras import Cameras, image_rays, pixel_rays, project
from nerfgen.cameras.lenses import distort_fisheye, undistort_fisheye
from nerfgen.data import DatasetError, load_dataset
from nerfgen.data.blender import parse_blender
from nerfgen.data.colmap import parse_colmap, write_colmap
from nerfgen.data.colmap_model import ColmapCamera, ColmapImage, read_images, write_cameras, write_images
from nerfgen.data.idr import decompose_projection, parse_idr, write_idr
from nerfgen.data.instant_ngp import parse_instant_ngp
from nerfgen.data.transforms import ParsedScene, SfMPoints

W, H = 48, 36


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> ParsedScene:
    """The rendered scene (13 frames, train + val + test), parsed in float64."""
    root = render_dataset(tmp_path_factory.mktemp("formats") / "src", width=W, height=H, n_train=10, n_val=1,
                          n_test=2, nthreads=1)  # fmt: skip
    return parse_blender(root, "all")


def quiet(fn, *args, **kwargs):
    """Calls ``fn`` with the implicit-split DatasetWarning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def cameras_of(scene: ParsedScene, dtype=torch.float64) -> Cameras:
    k = torch.from_numpy(scene.intrinsics.copy()).to(dtype)  # a copy: tests edit the cameras in place
    fisheye = None if scene.fisheye is None else torch.from_numpy(np.asarray(scene.fisheye, dtype=bool))
    return Cameras(torch.from_numpy(np.stack([f.c2w for f in scene.frames])).to(dtype), k[:, 0], k[:, 1], k[:, 2],
                   k[:, 3], scene.width, scene.height, k[:, 4:].contiguous(), fisheye)  # fmt: skip


def names(n: int) -> list[str]:
    return [f"{i:03d}.png" for i in range(n)]


def copy_images(scene: ParsedScene, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(scene.frames, names(len(scene.frames))):
        shutil.copy(frame.image, folder / name)
    return names(len(scene.frames))


def sfm_points(cameras: Cameras, n: int = 300) -> SfMPoints:
    """Random points in the scene box; each frame sees the ones projecting inside its image."""
    xyz = np.random.default_rng(0).uniform(-1.0, 1.0, (n, 3))
    visible = []
    for i in range(len(cameras)):
        px, py, depth = project(cameras, i, torch.from_numpy(xyz))
        inside = (depth > 0) & (px >= 0) & (px < W) & (py >= 0) & (py < H)
        visible.append(np.flatnonzero(inside.numpy()).astype(np.int64))
    return SfMPoints(xyz, np.linspace(0.1, 1.0, n), visible)


def colmap_project(scene: ParsedScene, root: Path, binary: bool) -> SfMPoints:
    cams = cameras_of(scene)
    points = sfm_points(cams)
    write_colmap(root, cams, copy_images(scene, root / "images"), points=points, binary=binary)
    return points


def assert_same_cameras(loaded: Cameras, expected: Cameras, atol: float) -> None:
    assert (loaded.width, loaded.height) == (expected.width, expected.height)
    for name in ("c2w", "fx", "fy", "cx", "cy", "distortion"):
        torch.testing.assert_close(getattr(loaded, name).double(), getattr(expected, name).double(), atol=atol, rtol=0)
    assert torch.equal(loaded.fisheye, expected.fisheye)


def assert_same_rays(loaded: Cameras, expected: Cameras, atol: float) -> None:
    for i in range(len(expected)):
        a, b = image_rays(loaded, i), image_rays(expected, i)
        torch.testing.assert_close(a.origins.double(), b.origins.double(), atol=atol, rtol=0)
        torch.testing.assert_close(a.directions.double(), b.directions.double(), atol=atol, rtol=0)


# -- COLMAP ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("binary", [True, False], ids=["bin", "txt"])
def test_colmap_round_trip(source: ParsedScene, tmp_path: Path, binary: bool):
    points = colmap_project(source, tmp_path, binary)
    scene = quiet(parse_colmap, tmp_path, "all")
    assert [f.image.name for f in scene.frames] == names(13)
    np.testing.assert_allclose(np.stack([f.c2w for f in scene.frames]), np.stack([f.c2w for f in source.frames]),
                               atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(scene.intrinsics, source.intrinsics, atol=1e-12)
    assert scene.sizes.tolist() == [[W, H]] * 13 and scene.fisheye is None and scene.cascades == 1
    np.testing.assert_array_equal(scene.points.xyz, points.xyz)
    np.testing.assert_array_equal(scene.points.error, points.error)
    assert all(np.array_equal(a, b) for a, b in zip(scene.points.visible, points.visible))
    assert sum(len(v) for v in points.visible) > 100
    # the box holds the robust extent of the points (uniform in [-1, 1]^3): 2-98% padded by 10%
    assert np.all(scene.aabb[:3] < -0.9) and np.all(scene.aabb[:3] > -1.2)
    assert np.all(scene.aabb[3:] > 0.9) and np.all(scene.aabb[3:] < 1.2)

    expected = load_dataset(source.frames[0].image.parents[1], "all")
    ds = quiet(load_dataset, tmp_path, "all")
    assert_same_cameras(ds.cameras, expected.cameras, atol=1e-6)
    assert_same_rays(ds.cameras, expected.cameras, atol=1e-5)
    assert torch.equal(ds.images, expected.images)
    train, test = quiet(load_dataset, tmp_path, "train"), quiet(load_dataset, tmp_path, "test")
    assert [Path(f).name for f in test.filenames] == ["000.png", "008.png"] and len(train) == 11
    assert len(train.points.visible) == 11


def test_colmap_pose_convention_by_hand(tmp_path: Path):
    """A hand-written text model: COLMAP's x_cam = R X + t (OpenCV axes) and u = f d(r) x + c."""
    angle, t = 0.3, np.array([0.2, -0.1, 4.0])
    q = np.array([math.cos(angle / 2), 0.0, math.sin(angle / 2), 0.0])  # rotation about y
    (tmp_path / "sparse" / "0").mkdir(parents=True)
    (tmp_path / "sparse" / "0" / "cameras.txt").write_text("# comment\n7 SIMPLE_RADIAL 40 30 50.0 19.0 16.0 0.05\n")
    line = " ".join(repr(float(v)) for v in [*q, *t])
    (tmp_path / "sparse" / "0" / "images.txt").write_text(f"# c\n3 {line} 7 a b.png\n\n")
    (tmp_path / "images").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "images" / "a b.png")
    scene = quiet(parse_colmap, tmp_path, "all")
    assert scene.intrinsics.tolist() == [[50.0, 50.0, 19.0, 16.0, 0.05, 0.0, 0.0, 0.0]] and scene.points is None
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    world = np.array([[0.3, 0.2, 0.5], [-0.4, 0.1, -0.2]])
    cam = world @ rot.T + t
    x = cam[:, :2] / cam[:, 2:]
    expected = 50.0 * x * (1 + 0.05 * (x**2).sum(1, keepdims=True)) + [19.0, 16.0]
    px, py, depth = project(cameras_of(scene), 0, torch.from_numpy(world))
    np.testing.assert_allclose(np.stack([px, py], 1), expected, atol=1e-9)
    np.testing.assert_allclose(depth, cam[:, 2], atol=1e-12)


MODELS = {
    "SIMPLE_PINHOLE": ([50.0, 20.0, 15.0], [50, 50, 20, 15, 0, 0, 0, 0], False),
    "PINHOLE": ([50.0, 52.0, 20.0, 15.0], [50, 52, 20, 15, 0, 0, 0, 0], False),
    "SIMPLE_RADIAL": ([50.0, 20.0, 15.0, 0.1], [50, 50, 20, 15, 0.1, 0, 0, 0], False),
    "RADIAL": ([50.0, 20.0, 15.0, 0.1, -0.02], [50, 50, 20, 15, 0.1, -0.02, 0, 0], False),
    "OPENCV": ([50.0, 52.0, 20.0, 15.0, 0.1, -0.02, 0.001, 0.002], [50, 52, 20, 15, 0.1, -0.02, 0.001, 0.002], False),
    "OPENCV_FISHEYE": ([50.0, 52.0, 20.0, 15.0, 0.1, -0.02, 0.003, 0.004], [50, 52, 20, 15, 0.1, -0.02, 0.003, 0.004],
                       True),
}  # fmt: skip


@pytest.mark.parametrize("binary", [True, False], ids=["bin", "txt"])
def test_colmap_camera_models(tmp_path: Path, binary: bool):
    ext = ".bin" if binary else ".txt"
    model_dir = tmp_path / "sparse"  # the model directly in sparse/ is accepted too
    model_dir.mkdir()
    cams = [ColmapCamera(i + 1, m, 40, 30, np.array(p)) for i, (m, (p, _, _)) in enumerate(MODELS.items())]
    write_cameras(model_dir / f"cameras{ext}", cams)
    identity = np.array([1.0, 0, 0, 0])
    images = [ColmapImage(10 + i, identity, np.zeros(3), i + 1, f"{m}.png") for i, m in enumerate(MODELS)]
    write_images(model_dir / f"images{ext}", images)
    (tmp_path / "images").mkdir()
    for m in MODELS:
        Image.new("RGB", (40, 30)).save(tmp_path / "images" / f"{m}.png")
    scene = quiet(parse_colmap, tmp_path, "all")
    order = sorted(MODELS)
    assert [f.image.stem for f in scene.frames] == order
    np.testing.assert_allclose(scene.intrinsics, [MODELS[m][1] for m in order], atol=0)
    assert scene.fisheye.tolist() == [MODELS[m][2] for m in order]


def test_colmap_mixed_sizes_and_intrinsics(source: ParsedScene, tmp_path: Path):
    """Every other image at twice the size, its camera's intrinsics doubled: same rays at matching pixels."""
    cams = cameras_of(source)
    image_names = copy_images(source, tmp_path / "images")
    sizes = np.array([[W, H]] * 13)
    for i in range(1, 13, 2):
        im = Image.open(tmp_path / "images" / image_names[i])
        im.resize((2 * W, 2 * H), Image.Resampling.NEAREST).save(tmp_path / "images" / image_names[i])
        sizes[i] = (2 * W, 2 * H)
        for k in (cams.fx, cams.fy, cams.cx, cams.cy):
            k[i] *= 2
    write_colmap(tmp_path / "colmap", cams, image_names, sizes=sizes, binary=False)  # colmap/sparse/0
    scene = quiet(parse_colmap, tmp_path, "all")
    assert scene.sizes.tolist() == sizes.tolist()
    expected = torch.cat([torch.stack([cams.fx, cams.fy, cams.cx, cams.cy], 1), torch.zeros(13, 4)], 1)
    np.testing.assert_allclose(scene.intrinsics, expected.numpy(), atol=1e-12)
    ds = quiet(load_dataset, tmp_path, "all")
    assert ds.sizes.tolist() == sizes.tolist()
    base = cameras_of(source)
    r, j = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    for i in (0, 1, 2, 3):
        cam, s = ds.camera(i), int(sizes[i, 0] // W)
        assert (cam.width, cam.height) == tuple(sizes[i]) and tuple(ds.image(i).shape) == (sizes[i, 1], sizes[i, 0], 4)
        # the same continuous image point (scaled by s) sees the same ray as the source's pixel centre
        rays = pixel_rays(cam, torch.zeros(H * W, dtype=torch.long), (j * s).reshape(-1), (r * s).reshape(-1))
        torch.testing.assert_close(rays.directions.double(), image_rays(base, i).directions, atol=1e-5, rtol=0)
        torch.testing.assert_close(rays.origins.double(), image_rays(base, i).origins, atol=1e-5, rtol=0)


# -- IDR / NeuS -----------------------------------------------------------------------------------
SCALE = np.array([[2.5, 0, 0, 0.3], [0, 2.5, 0, -0.2], [0, 0, 2.5, 0.1], [0, 0, 0, 1.0]])


def idr_scene(source: ParsedScene, root: Path, masks: bool = True) -> Path:
    image_names = copy_images(source, root / "image")
    if masks:
        (root / "mask").mkdir()
        for frame, name in zip(source.frames, image_names):
            Image.open(frame.image).getchannel("A").save(root / "mask" / name)
    return write_idr(root, cameras_of(source), SCALE)


def test_idr_round_trip(source: ParsedScene, tmp_path: Path):
    npz = idr_scene(source, tmp_path)
    scene = quiet(parse_idr, tmp_path, "all")
    assert scene.layout == "object" and scene.aabb.tolist() == [-1, -1, -1, 1, 1, 1] and scene.source == npz
    np.testing.assert_allclose(np.stack([f.c2w for f in scene.frames]), np.stack([f.c2w for f in source.frames]),
                               atol=1e-9)  # fmt: skip
    np.testing.assert_allclose(scene.intrinsics, source.intrinsics, atol=1e-9)
    assert [f.mask.name for f in scene.frames] == names(13) and all(f.mask.parent.name == "mask" for f in scene.frames)
    # independent of the writer: world_mat projects original-world points where our camera projects
    # the same points mapped into the unit sphere
    cams = np.load(npz)
    world = np.array([[0.5, 0.4, 0.3, 1.0], [-1.0, 0.2, 0.6, 1.0]])
    hom = world @ cams["world_mat_4"].T
    px, py, _ = project(cameras_of(scene), 4, torch.from_numpy((world @ np.linalg.inv(SCALE).T)[:, :3]))
    np.testing.assert_allclose(np.stack([px, py], 1), hom[:, :2] / hom[:, 2:3], atol=1e-9)
    ds = quiet(load_dataset, tmp_path, "all")
    expected = load_dataset(source.frames[0].image.parents[1], "all")
    assert_same_cameras(ds.cameras, expected.cameras, atol=1e-5)
    assert_same_rays(ds.cameras, expected.cameras, atol=1e-5)
    assert ds.layout == "object"


def test_decompose_projection_signs_and_scale():
    rng = np.random.default_rng(1)
    k = np.array([[80.0, 0.0, 31.0], [0.0, 75.0, 22.0], [0.0, 0.0, 1.0]])
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot *= np.sign(np.linalg.det(rot))
    t = rng.normal(size=3)
    for scale in (1.0, -3.0, 0.01):  # P is only defined up to scale, sign included
        got_k, c2w = decompose_projection(scale * k @ np.concatenate([rot, t[:, None]], 1))
        np.testing.assert_allclose(got_k, k, atol=1e-9)
        np.testing.assert_allclose(c2w[:, :3], rot.T @ np.diag([1.0, -1.0, -1.0]), atol=1e-12)
        np.testing.assert_allclose(c2w[:, 3], -rot.T @ t, atol=1e-12)


# -- transforms.json: fisheye and per-frame sizes -------------------------------------------------
def test_fisheye_transforms_json(source: ParsedScene, tmp_path: Path):
    k = [0.05, -0.01, 0.002, -0.0005]
    frames = [{"file_path": str(Path("..") / f.image.relative_to(f.image.parents[2])),
               "transform_matrix": np.vstack([f.c2w, [0, 0, 0, 1]]).tolist()} for f in source.frames]  # fmt: skip
    root = tmp_path / "fish"
    root.mkdir()
    shutil.copytree(source.frames[0].image.parents[1], tmp_path / "src")
    meta = {"camera_model": "OPENCV_FISHEYE", "fl_x": 30.0, "fl_y": 31.0, "cx": 24.5, "cy": 17.5, "k1": k[0],
            "k2": k[1], "k3": k[2], "k4": k[3], "frames": frames}  # fmt: skip
    (root / "transforms.json").write_text(json.dumps(meta))
    scene = quiet(parse_instant_ngp, root / "transforms.json", "all")
    assert scene.fisheye.tolist() == [True] * 13
    np.testing.assert_allclose(scene.intrinsics, [[30.0, 31.0, 24.5, 17.5, *k]] * 13)
    ds = quiet(load_dataset, root, "all")
    assert bool(ds.cameras.fisheye.all())
    cams = cameras_of(scene)
    rays = image_rays(cams, 2)
    px, py, depth = project(cams, 2, rays.origins + 3.0 * rays.directions)
    r, j = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    torch.testing.assert_close(px, j.reshape(-1).double(), atol=1e-8, rtol=0)
    torch.testing.assert_close(py, r.reshape(-1).double(), atol=1e-8, rtol=0)
    assert bool((depth > 0).all())
    assert_same_rays(ds.cameras, cams, atol=1e-5)

    meta["k3"], meta["camera_model"] = 0.0, "OPENCV"
    (root / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"transforms\.json: frame \d+ 'k4' is not supported"):
        quiet(parse_instant_ngp, root / "transforms.json", "all")


def test_transforms_json_per_frame_sizes(source: ParsedScene, tmp_path: Path):
    root = tmp_path / "ngp"
    image_names = copy_images(source, root / "images")
    big = Image.open(root / "images" / image_names[3]).resize((2 * W, 2 * H))
    big.save(root / "images" / image_names[3])
    frames = [{"file_path": f"images/{n}", "transform_matrix": np.vstack([f.c2w, [0, 0, 0, 1]]).tolist()}
              for n, f in zip(image_names, source.frames)]  # fmt: skip
    frames[3].update(w=2 * W, h=2 * H, fl_x=2 * source.intrinsics[3, 0], cx=W, cy=H)
    meta = {"fl_x": source.intrinsics[0, 0], "w": W, "h": H, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))
    scene = quiet(parse_instant_ngp, root / "transforms.json", "all")
    assert scene.sizes[3].tolist() == [2 * W, 2 * H] and scene.sizes[4].tolist() == [W, H]
    assert scene.intrinsics[3, :4].tolist() == [2 * source.intrinsics[3, 0]] * 2 + [W, H]
    frames[3].pop("w")
    (root / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"frame 3 declares 'w' = 48 but its image .*003\.png is 96x72"):
        quiet(parse_instant_ngp, root / "transforms.json", "all")


# -- fisheye maths --------------------------------------------------------------------------------
def test_fisheye_distortion_round_trip_and_formula():
    rng = np.random.default_rng(2)
    x, y = (torch.from_numpy(v) for v in rng.uniform(-1.5, 1.5, (2, 500)))
    params = torch.tensor([0.08, -0.02, 0.004, -0.0003], dtype=torch.float64)
    xd, yd = distort_fisheye(x, y, params)
    r = np.hypot(x.numpy(), y.numpy())
    theta = np.arctan(r)
    theta_d = theta * (1 + 0.08 * theta**2 - 0.02 * theta**4 + 0.004 * theta**6 - 0.0003 * theta**8)
    np.testing.assert_allclose(xd.numpy(), theta_d / r * x.numpy(), atol=1e-14)
    xu, yu = undistort_fisheye(xd, yd, params)
    assert float(torch.maximum((xu - x).abs(), (yu - y).abs()).max()) < 1e-6
    assert float(torch.maximum((xu - x).abs(), (yu - y).abs()).max()) < 1e-10  # float64-accurate
    zero = torch.zeros(1, dtype=torch.float64)
    assert distort_fisheye(zero, zero, params) == (zero, zero)


def test_fisheye_project_pixel_rays_round_trip_beyond_90_degrees():
    """A 200-degree lens: rays through every pixel, even those looking backwards, project back onto it."""
    c2w = torch.eye(4, dtype=torch.float64)[:3].unsqueeze(0)
    f = 30.0 / (100 * math.pi / 180)  # theta = 100 degrees at 30 px from the centre
    one = torch.ones(1, dtype=torch.float64)
    cams = Cameras(c2w, f * one, f * one, 32.0 * one, 32.0 * one, 64, 64, torch.tensor([[0.01, -0.002, 0.0, 0.0]],
                   dtype=torch.float64), torch.tensor([True]))  # fmt: skip
    rays = image_rays(cams, 0)
    assert float(rays.directions[:, 2].max()) > 0.1  # some rays look behind the camera (+z in OpenGL)
    px, py, _ = project(cams, 0, rays.origins + 2.0 * rays.directions)
    r, j = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    inside = ((j - 32) ** 2 + (r - 32) ** 2).reshape(-1) < 30**2
    torch.testing.assert_close(px[inside], j.reshape(-1)[inside].double(), atol=1e-8, rtol=0)
    torch.testing.assert_close(py[inside], r.reshape(-1)[inside].double(), atol=1e-8, rtol=0)


def test_mixed_fisheye_batch_leaves_pinhole_rays_unchanged(source: ParsedScene):
    cams = cameras_of(source, torch.float32)
    cams.distortion[:] = torch.tensor([0.01, -0.02, 0.001, 0.0005])
    fish = Cameras(cams.c2w, cams.fx, cams.fy, cams.cx, cams.cy, W, H, cams.distortion,
                   torch.arange(13) % 3 == 0)  # fmt: skip
    idx = torch.arange(13).repeat_interleave(5)
    px, py = torch.rand(65) * W, torch.rand(65) * H
    mixed, plain = pixel_rays(fish, idx, px, py), pixel_rays(cams, idx, px, py)
    keep = ~fish.fisheye[idx]
    assert torch.equal(mixed.directions[keep], plain.directions[keep])
    assert not torch.allclose(mixed.directions[~keep], plain.directions[~keep])
    sub = fish[torch.tensor([0, 1])].scaled(2.0).to("cpu")
    assert sub.fisheye.tolist() == [True, False]
    with pytest.raises(ValueError, match=r"Cameras.fisheye must be a bool tensor of shape \[13\]"):
        Cameras(cams.c2w, cams.fx, cams.fy, cams.cx, cams.cy, W, H, None, torch.zeros(13))


# -- bad input ------------------------------------------------------------------------------------
def _drop_images(root: Path) -> None:
    (root / "images" / "003.png").unlink()
    (root / "images" / "007.png").unlink()


def _nan_pose(root: Path) -> None:
    path = root / "sparse" / "0" / "images.bin"
    images = list(read_images(path).values())
    images[5].qvec = np.array([np.nan, 0.0, 0.0, 0.0])
    write_images(path, images)


def _full_opencv(root: Path) -> None:
    path = root / "sparse" / "0" / "cameras.bin"
    data = bytearray(path.read_bytes())
    data[8 + 4 : 8 + 8] = struct.pack("<i", 6)  # first camera's model id -> FULL_OPENCV
    path.write_bytes(bytes(data))


def _truncate(root: Path) -> None:
    path = root / "sparse" / "0" / "points3D.bin"
    path.write_bytes(path.read_bytes()[:-7])


def _wrong_size(root: Path) -> None:
    Image.new("RGB", (W + 1, H)).save(root / "images" / "004.png")


BAD_COLMAP = {
    "missing images": (_drop_images, r"images\.bin: 2 of 13 images named by the model are missing from .*images: "
                                     r"003\.png, 007\.png$"),
    "nan pose": (_nan_pose, r"images\.bin: image '005\.png' \(id 6\) has a non-finite or zero pose"),
    "unknown model": (_full_opencv, r"cameras\.bin: camera 1 uses camera model FULL_OPENCV, expected one of "
                                    r"SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV, OPENCV_FISHEYE"),
    "truncated bin": (_truncate, r"points3D\.bin: truncated file: expected \d+ more bytes for point \d+'s track"),
    "size mismatch": (_wrong_size, r"004\.png: image is 49x36 \(w x h\) but its camera 1 in .*cameras\.bin is 48x36"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_COLMAP))
def test_bad_colmap_inputs_name_the_file(source: ParsedScene, tmp_path: Path, case: str):
    colmap_project(source, tmp_path, binary=True)
    corrupt, pattern = BAD_COLMAP[case]
    corrupt(tmp_path)
    with pytest.raises(DatasetError, match=pattern):
        quiet(load_dataset, tmp_path, "all")


def test_bad_colmap_text_model(tmp_path: Path):
    model = tmp_path / "sparse" / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text("1 FOV 40 30 50 20 15 0.1\n")
    (model / "images.txt").write_text("")
    with pytest.raises(DatasetError, match=r"cameras\.txt: camera 1 uses camera model FOV, expected one of"):
        parse_colmap(tmp_path, "all")
    (model / "cameras.txt").write_text("1 PINHOLE 40 30 50 20 15\n")
    with pytest.raises(DatasetError, match=r"cameras\.txt: line 1: expected 4 parameters for camera model PINHOLE, "
                                           r"got 3"):
        parse_colmap(tmp_path, "all")


def test_bad_idr_inputs_name_the_file(source: ParsedScene, tmp_path: Path):
    npz = idr_scene(source, tmp_path)
    arrays = dict(np.load(npz))
    del arrays["scale_mat_3"]
    np.savez(npz, **arrays)
    with pytest.raises(DatasetError, match=r"cameras_sphere\.npz: expected key 'scale_mat_3' for image 003\.png"):
        quiet(load_dataset, tmp_path, "all")
    arrays["scale_mat_3"] = SCALE
    arrays["world_mat_2"] = arrays["world_mat_2"][:2]
    np.savez(npz, **arrays)
    with pytest.raises(DatasetError, match=r"'world_mat_2' must be a finite 4x4 or 3x4 matrix, got shape \[2, 4\]"):
        quiet(load_dataset, tmp_path, "all")
    arrays["world_mat_2"] = np.eye(4)
    np.savez(npz, **arrays)
    (tmp_path / "mask" / "005.png").unlink()
    with pytest.raises(DatasetError, match=r"mask: 1 of 13 images have no mask of the same name or frame number: "
                                           r"005\.png"):
        quiet(load_dataset, tmp_path, "all")


def test_unknown_folder_lists_every_format(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"COLMAP model in sparse/0.*cameras_sphere\.npz \(IDR/NeuS\)"):
        load_dataset(tmp_path, "train")
