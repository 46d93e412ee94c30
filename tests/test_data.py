"""Tests for nerfgen.data: real NeRF-synthetic / instant-ngp scenes and bad inputs."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfgen.data import Dataset, DatasetError, DatasetWarning, load_dataset

# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def lego(shared_data: Path) -> Path:
    path = shared_data / "nerf_synthetic" / "lego"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def fox(shared_data: Path) -> Path:
    path = shared_data / "fox"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


def test_lego_train_downscaled(lego: Path):
    ds = load_dataset(lego, "train", downscale=8)
    assert isinstance(ds, Dataset) and len(ds) == 100
    assert ds.images.shape == (100, 100, 100, 4) and ds.images.dtype == torch.uint8
    assert (ds.cameras.width, ds.cameras.height) == (100, 100)
    assert ds.has_alpha and ds.white_background and ds.cascades == 1 and ds.depths is None
    assert ds.images[..., 3].min() == 0 and ds.images[..., 3].max() == 255
    assert torch.equal(ds.aabb, torch.tensor([-1.5] * 3 + [1.5] * 3))
    angle = json.loads((lego / "transforms_train.json").read_text())["camera_angle_x"]
    assert torch.allclose(ds.cameras.fx, torch.full((100,), 50 / math.tan(angle / 2)))
    assert torch.equal(ds.cameras.fx, ds.cameras.fy) and torch.all(ds.cameras.cx == 50)
    assert ds.filenames[0].endswith("train/r_0.png") and ds.split == "train"
    assert torch.count_nonzero(ds.cameras.distortion) == 0


def test_lego_test_split_has_200_frames(lego: Path):
    ds = load_dataset(lego, "test", downscale=16)
    assert len(ds) == 200 and ds.images.shape[1:] == (50, 50, 4)


def test_fox_holdout_split_and_missing_images(fox: Path):
    with pytest.warns(DatasetWarning) as record:
        train = load_dataset(fox, "train", downscale=8)
    messages = [str(w.message) for w in record]
    missing = [m for m in messages if "missing" in m]
    assert len(missing) == 1 and "17 of 67" in missing[0] and "images/0005.jpg" in missing[0]
    assert any("every 8th" in m for m in messages)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        test = load_dataset(fox / "transforms.json", "test", downscale=8)
        full = load_dataset(fox, "all", downscale=4)
    assert len(train) + len(test) == 50 == len(full)
    assert len(test) == math.ceil(50 / 8) == 7
    assert not set(train.filenames) & set(test.filenames)
    assert test.filenames == full.filenames[::8]
    assert train.cascades == 3 and not train.white_background and not train.has_alpha
    assert (train.images[..., 3] == 255).all()
    assert (train.cameras.width, train.cameras.height) == (135, 240)
    assert train.images.shape[1:] == (240, 135, 4)
    meta = json.loads((fox / "transforms.json").read_text())
    assert torch.allclose(train.cameras.fx, torch.full((43,), meta["fl_x"] / 8))
    assert torch.allclose(full.cameras.fx, torch.full((50,), meta["fl_x"] / 4))
    assert torch.allclose(full.cameras.cy, torch.full((50,), meta["cy"] / 4))
    assert torch.allclose(train.cameras.distortion[0], torch.tensor([meta[k] for k in ("k1", "k2", "p1", "p2")]))
    bound = 0.5 / 0.33
    assert torch.allclose(train.aabb, torch.tensor([-bound] * 3 + [bound] * 3))


# --------------------------------------------------------------------------- synthetic datasets


def write_png(path: Path, size=(8, 6), mode="RGBA", color=(200, 100, 50, 255)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color[: len(mode)]).save(path)


def pose(tx: float = 0.0) -> list[list[float]]:
    return [[1, 0, 0, tx], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]


def blender_scene(root: Path, n: int = 3, split: str = "train", **frame_extra) -> Path:
    frames = []
    for i in range(n):
        write_png(root / split / f"r_{i}.png")
        frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": pose(i), **frame_extra})
    (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames}))
    return root / f"transforms_{split}.json"


def ngp_scene(root: Path, n: int = 10, size=(12, 8), **meta) -> Path:
    frames = []
    for i in range(n):
        write_png(root / "images" / f"{i:03d}.png", size=size, mode="RGB")
        frames.append({"file_path": f"images/{i:03d}.png", "transform_matrix": pose(i)})
    content = {"fl_x": 10.0, "cx": 6.0, "cy": 4.0, "w": size[0], "h": size[1], "frames": frames, **meta}
    (root / "transforms.json").write_text(json.dumps(content))
    return root / "transforms.json"


def edit_json(path: Path, fn) -> None:
    meta = json.loads(path.read_text())
    fn(meta)
    path.write_text(json.dumps(meta))


def load_quiet(*args, **kwargs) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        return load_dataset(*args, **kwargs)


def test_ngp_intrinsics_overrides_and_box(tmp_path: Path):
    path = ngp_scene(tmp_path, aabb_scale=16, scale=0.5, offset=[0.5, 0.25, 0.0], k1=0.1)
    edit_json(path, lambda m: m["frames"][3].update(fl_x=20.0, p2=0.01))
    ds = load_quiet(tmp_path, "all")
    assert ds.cascades == 5 and len(ds) == 10 and not ds.has_alpha
    assert torch.allclose(ds.aabb, torch.tensor([-1.0, -0.5, 0.0, 1.0, 1.5, 2.0]))
    assert ds.cameras.fx[3] == 20 and ds.cameras.fx[2] == 10 and ds.cameras.fy[2] == 10
    assert torch.allclose(ds.cameras.distortion[3], torch.tensor([0.1, 0.0, 0.0, 0.01]))
    assert torch.allclose(ds.cameras.c2w[4, :, 3], torch.tensor([4.0, 0.0, 4.0]))  # poses not rescaled


def test_ngp_camera_angle_fallback_and_fractional_downscale(tmp_path: Path):
    path = ngp_scene(tmp_path, n=3)
    edit_json(path, lambda m: [m.pop(k) for k in ("fl_x", "cx", "cy", "w", "h")] and m.update(camera_angle_x=1.0))
    ds = load_quiet(tmp_path, "all", downscale=2.5)
    assert (ds.cameras.width, ds.cameras.height) == (5, 3) and ds.images.shape == (3, 3, 5, 4)
    focal = 0.5 * 12 / math.tan(0.5)  # full resolution; fl_y defaults to fl_x
    assert torch.allclose(ds.cameras.fx, torch.full((3,), focal * 5 / 12))
    assert torch.allclose(ds.cameras.fy, torch.full((3,), focal * 3 / 8))
    assert torch.allclose(ds.cameras.cx, torch.full((3,), 2.5))


def test_downscale_premultiplies_alpha(tmp_path: Path):
    blender_scene(tmp_path, n=1)
    im = np.zeros((6, 8, 4), np.uint8)
    im[..., 1] = 255  # transparent green everywhere ...
    im[0, 0] = (255, 0, 0, 255)  # ... but one opaque red pixel
    Image.fromarray(im, "RGBA").save(tmp_path / "train" / "r_0.png")
    ds = load_dataset(tmp_path, "train", downscale=2)
    assert ds.images.shape == (1, 3, 4, 4)
    assert ds.images[0, 0, 0].tolist() == [255, 0, 0, 64]  # no green bleeding into the edge


def test_depths_loaded_and_point_sampled(tmp_path: Path):
    path = blender_scene(tmp_path, n=2)
    depth = np.arange(48, dtype=np.float32).reshape(6, 8)
    depth[0, 0] = np.inf
    for i in range(2):
        np.save(tmp_path / "train" / f"r_{i}_depth.npy", depth + i)
    edit_json(path, lambda m: [f.update(depth_file_path=f"./train/r_{i}_depth.npy") for i, f in enumerate(m["frames"])])
    ds = load_dataset(tmp_path, "train", downscale=2)
    assert ds.depths is not None and ds.depths.shape == (2, 3, 4)
    assert torch.equal(ds.depths[1], torch.from_numpy(depth[1::2, 1::2] + 1))
    np.save(tmp_path / "train" / "r_1_depth.npy", depth[:4])
    with pytest.raises(DatasetError, match="r_1_depth.npy"):
        load_dataset(tmp_path, "train")


def test_three_by_four_pose_accepted(tmp_path: Path):
    path = blender_scene(tmp_path)
    edit_json(path, lambda m: m["frames"][1].update(transform_matrix=pose(1)[:3]))
    assert len(load_dataset(tmp_path)) == 3


def test_missing_frames_warned_once_and_all_missing_is_error(tmp_path: Path):
    path = blender_scene(tmp_path, n=4)
    (tmp_path / "train" / "r_1.png").unlink()
    (tmp_path / "train" / "r_3.png").unlink()
    with pytest.warns(DatasetWarning) as record:
        ds = load_dataset(tmp_path)
    assert len(record) == 1 and "./train/r_1, ./train/r_3" in str(record[0].message)
    assert len(ds) == 2 and str(path) in str(record[0].message)
    for i in (0, 2):
        (tmp_path / "train" / f"r_{i}.png").unlink()
    with pytest.warns(DatasetWarning), pytest.raises(DatasetError, match=r"transforms_train\.json: no images found"):
        load_dataset(tmp_path)


def _nan_pose(m):
    m["frames"][1]["transform_matrix"][0][3] = float("nan")


def _corrupt_png(root: Path):
    (root / "train" / "r_2.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")


def _truncated_png(root: Path):
    noisy = np.random.default_rng(0).integers(0, 255, (6, 8, 4), dtype=np.uint8)
    Image.fromarray(noisy, "RGBA").save(root / "train" / "r_2.png")
    data = (root / "train" / "r_2.png").read_bytes()
    (root / "train" / "r_2.png").write_bytes(data[: len(data) // 2])


def _edit_train(fn):
    return lambda root: edit_json(root / "transforms_train.json", fn)


# case -> (how to break a good scene, file the message must name, regex the message must match)
BAD_BLENDER = {
    "malformed json": (
        lambda r: (r / "transforms_train.json").write_text('{"frames": [1, 2,'),
        "transforms_train.json",
        r"malformed JSON at line 1 column \d+",
    ),
    "3x3 matrix": (
        _edit_train(lambda m: m["frames"][1].update(transform_matrix=[[1, 0, 0]] * 3)),
        "transforms_train.json",
        r"frame 1 'transform_matrix' must be 4x4 \(or 3x4\), got 3x3",
    ),
    "nan pose": (_edit_train(_nan_pose), "transforms_train.json", "frame 1 'transform_matrix' must be finite"),
    "empty frames": (_edit_train(lambda m: m.update(frames=[])), "transforms_train.json", "non-empty"),
    "no frames key": (_edit_train(lambda m: m.pop("frames")), "transforms_train.json", "no 'frames' key"),
    "no camera angle": (_edit_train(lambda m: m.pop("camera_angle_x")), "transforms_train.json", "camera_angle_x"),
    "corrupt png": (_corrupt_png, "r_2.png", "cannot"),
    "truncated png": (_truncated_png, "r_2.png", "cannot decode"),
    "mixed sizes": (
        lambda r: write_png(r / "train" / "r_1.png", size=(4, 4)),
        "transforms_train.json",
        "same size.*r_1.png is 4x4",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BLENDER))
def test_bad_blender_inputs_name_the_file(tmp_path: Path, case: str):
    blender_scene(tmp_path)
    corrupt, filename, pattern = BAD_BLENDER[case]
    corrupt(tmp_path)
    with pytest.raises(DatasetError, match=pattern) as info:
        load_dataset(tmp_path, "train")
    assert filename in str(info.value)


BAD_NGP = {
    "no focal": (lambda m: m.pop("fl_x"), "fl_x' or 'camera_angle_x"),
    "aabb_scale 3": (lambda m: m.update(aabb_scale=3), "power of two"),
    "w mismatch": (lambda m: m.update(w=24), "declares 'w' = 24"),
    "camera model": (lambda m: m.update(camera_model="FOV"), "camera_model"),
    "bad offset": (lambda m: m.update(offset=[0.5, 0.5]), "offset"),
    "string focal": (lambda m: m.update(fl_x="ten"), "'fl_x' must be a finite number"),
}


@pytest.mark.parametrize("case", list(BAD_NGP))
def test_bad_ngp_inputs_name_the_file(tmp_path: Path, case: str):
    path = ngp_scene(tmp_path, n=3)
    edit_json(path, BAD_NGP[case][0])
    with pytest.raises(DatasetError, match=BAD_NGP[case][1]) as info:
        load_quiet(tmp_path)
    assert "transforms.json" in str(info.value)


def test_missing_path_and_unknown_layout(tmp_path: Path):
    with pytest.raises(DatasetError, match="nowhere: dataset path not found"):
        load_dataset(tmp_path / "nowhere")
    blender_scene(tmp_path)
    with pytest.raises(DatasetError, match=r"expected transforms_val\.json.*found transforms_train\.json"):
        load_dataset(tmp_path, "val")
    with pytest.raises(ValueError, match="downscale"):
        load_dataset(tmp_path, downscale=0.5)
