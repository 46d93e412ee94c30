"""Captures of dynamic scenes: D-NeRF's layout as its scenes ship (RGBA and RGB), instant-ngp /
nerfstudio ``transforms.json`` with ``time`` or ``timestamp``, rig vs monocular, the embedded
dynamic scene (ground-truth depth and 3D flow), and one clear error naming the file for each way a
capture's times can be wrong."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from nerfgen.data import DatasetError, load_dataset
from nerfgen.data.times import Capture, frame_times, is_dynamic, load_timed
from nerfgen.scenes.dynamic import build_dynamic_scene
from tests.dynamic_data import dnerf_folder, look_at_origin, tiny_scene


@pytest.fixture(scope="module")
def dnerf(tmp_path_factory):
    return dnerf_folder(tmp_path_factory.mktemp("dnerf") / "jumpingjacks")


def rewrite(path, change):
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_dnerf_layout_loads_as_shipped(dnerf):
    train = load_timed(dnerf, "train")
    assert len(train) == 12 and train.dataset.white_background and train.dataset.has_alpha
    assert train.times[0] == 0 and train.times[-1] == 1 and bool((train.times[1:] > train.times[:-1]).all())
    assert train.capture.kind == "monocular" and not train.capture.moving  # one view per instant, cameras jump
    assert "D-NeRF" in train.capture.describe()
    test = load_timed(dnerf, "test")
    assert len(test) == 4 and torch.allclose(test.times, torch.tensor([0, 1 / 3, 2 / 3, 1]))
    assert is_dynamic(dnerf) and frame_times(dnerf)[dnerf / "val" / "r_001.png"] == 0.5


def test_rgb_without_alpha(tmp_path):
    root = dnerf_folder(tmp_path / "rgb", alpha=False)
    train = load_timed(root, "train")
    assert not train.dataset.has_alpha and len(train) == 12


def test_static_folder_is_not_dynamic(tmp_path, dnerf):
    root = tmp_path / "static"
    shutil.copytree(dnerf, root)
    for split in ("train", "val", "test"):
        rewrite(root / f"transforms_{split}.json", lambda d: [f.pop("time") for f in d["frames"]])
    assert not is_dynamic(root)
    with pytest.raises(DatasetError, match="transforms_train.json: no frame has a 'time'"):
        load_timed(root)
    assert len(load_dataset(root, "train")) == 12  # still an ordinary NeRF-synthetic capture


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["frames"][3].update(time=1.25), r"transforms_train.json: frame 3 'time' must be in \[0, 1\]"),
    (lambda d: d["frames"][5].update(time=-0.1), r"transforms_train.json: frame 5 'time' must be in \[0, 1\]"),
    (lambda d: d["frames"][2].update(time="soon"), r"transforms_train.json: frame 2 'time' must be a finite number"),
    (lambda d: d["frames"][4].pop("time"), r"transforms_train.json: frame 0 has a 'time' but frame 4 has none"),
])
def test_bad_times_name_the_file_and_frame(tmp_path, dnerf, change, message):
    root = tmp_path / "bad"
    shutil.copytree(dnerf, root)
    rewrite(root / "transforms_train.json", change)
    with pytest.raises(DatasetError, match=message):
        load_timed(root)


def test_mixed_static_and_dynamic_splits(tmp_path, dnerf):
    root = tmp_path / "mixed"
    shutil.copytree(dnerf, root)
    rewrite(root / "transforms_test.json", lambda d: [f.pop("time") for f in d["frames"]])
    with pytest.raises(DatasetError, match="transforms_test.json: its frames have no 'time'.*mixed static and dynamic"):
        is_dynamic(root)


def ngp_capture(root, frames, key="time"):
    root.mkdir(parents=True)
    rgba = np.full((16, 16, 4), 255, np.uint8)
    from PIL import Image

    entries = []
    for i, value in enumerate(frames):
        Image.fromarray(rgba).save(root / f"f{i:02d}.png")
        entries.append({"file_path": f"f{i:02d}.png", key: value, "transform_matrix": look_at_origin(0.2 * i, 0.5)})
    (root / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": entries}))
    return root


def test_instant_ngp_time_and_timestamp(tmp_path):
    timed = load_timed(ngp_capture(tmp_path / "t", [i / 9 for i in range(10)]), "train")
    assert len(timed) == 8 and timed.capture.kind == "monocular" and timed.capture.moving  # a smooth camera path
    stamped = ngp_capture(tmp_path / "s", [100.0 + 0.5 * i for i in range(10)], key="timestamp")
    times = load_timed(stamped, "all").times
    assert torch.allclose(times, torch.linspace(0, 1, 10))  # seconds mapped onto [0, 1] over the whole file
    test = load_timed(stamped, "test").times  # every 8th frame held out keeps its place in time
    assert torch.allclose(test, torch.tensor([0.0, 8 / 9]))


def test_instant_ngp_mixed_time_keys(tmp_path):
    root = ngp_capture(tmp_path / "m", [0.0, 0.5, 1.0])
    rewrite(root / "transforms.json", lambda d: d["frames"][1].update(timestamp=d["frames"][1].pop("time")))
    with pytest.raises(DatasetError, match="transforms.json: frames mix 'time'"):
        is_dynamic(root)


def test_rig_and_moving_camera_are_told_apart():
    times = torch.tensor([0.0, 0.0, 0.5, 0.5, 1.0, 1.0])
    rig = torch.tensor([[4.0, 0, 0], [0, 4.0, 0]]).repeat(3, 1)
    assert Capture.of(times, rig).rig and Capture.of(times, rig).kind == "multi-view"
    assert not Capture.of(times, rig + torch.randn(6, 3)).rig
    circle = torch.stack([torch.cos(torch.linspace(0, 1, 20)), torch.sin(torch.linspace(0, 1, 20)), torch.zeros(20)], -1)
    assert Capture.of(torch.linspace(0, 1, 20), 4 * circle).moving


def test_embedded_scene_multiview_and_monocular(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    multi = load_timed(tiny_scene(base), "train")
    assert multi.capture.kind == "multi-view" and multi.capture.times == 5 and len(multi) == 20
    assert multi.dataset.depths is not None and multi.dataset.has_alpha
    mono = load_timed(tiny_scene(base, "monocular", times=12), "train")
    assert mono.capture.kind == "monocular" and len(mono) == 12
    test = load_timed(tiny_scene(base, "monocular", times=12), "test")
    assert not set(test.times.tolist()) & set(mono.times.tolist())  # held-out instants, between training frames


def test_embedded_scene_flow_is_exact(tmp_path_factory):
    """The stored flow moves each seen surface point onto the object as it is at the next instant."""
    root = tiny_scene(tmp_path_factory.getbasetemp(), "monocular", times=12)
    doc = json.loads((root / "transforms_test.json").read_text())
    scene = build_dynamic_scene()
    frame = doc["frames"][1]
    flow = np.load(root / frame["flow_file_path"]).astype(np.float32)
    depth = np.load(root / frame["depth_file_path"])
    t, dt = frame["time"], 1 / 11
    from nerfgen.scenes.cameras import focal_from_fov, pixel_rays

    origins, dirs = pixel_rays(np.array(frame["transform_matrix"]), 40, 40, focal_from_fov(40, doc["camera_angle_x"]))
    hit = np.isfinite(depth)
    points = (origins[:, :, 0] + dirs[:, :, 0] * np.where(hit, depth, 0)[..., None])[hit]
    moved = points + flow[hit][:, :3]
    later = scene.caster(t + dt)
    gaps = later.distance(moved + 1e-2 * np.array([0, 0, 1.0]), np.tile([0, 0, -1.0], (len(moved), 1)))
    moving = np.linalg.norm(flow[hit][:, :3], axis=-1) > 1e-3
    assert moving.sum() > 10  # the view sees something move
    assert np.median(np.abs(gaps[moving] - 1e-2)) < 2e-3  # moved points lie on the moved surfaces (from above)


def test_frozen_variant_is_static(tmp_path_factory):
    root = tiny_scene(tmp_path_factory.getbasetemp(), "frozen")
    assert not is_dynamic(root) and len(load_dataset(root, "train")) == 20


def test_video_frames_get_their_time_over_the_clip(tmp_path):
    """``nerfgen data process VIDEO --dynamic`` writes each frame's time: its place in the clip."""
    import imageio.v2 as iio

    from nerfgen.cli import build_parser
    from nerfgen.data.frames import collect_frames

    video = tmp_path / "clip.mp4"
    rng = np.random.default_rng(0)
    with iio.get_writer(video, format="FFMPEG", fps=10, macro_block_size=1) as writer:
        for _ in range(21):
            writer.append_data(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    (tmp_path / "kept").mkdir()
    kept = collect_frames(video, tmp_path / "kept", fps=5, blur_ratio=0)
    assert kept.source_frames == 21 and kept.positions.tolist() == list(range(0, 21, 2))
    assert np.allclose(kept.times(), np.arange(0, 21, 2) / 20)
    args = build_parser().parse_args(["data", "process", str(video), "--output", str(tmp_path / "o"), "--dynamic"])
    assert args.dynamic
