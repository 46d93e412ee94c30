"""GAN image data: the embedded sets (scenes.gan_sets), ImageCollection, the ``gan data`` CLI."""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from nerfgen.scenes import gan_sets, image_sets
from nerfgen.scenes.cameras import focal_from_fov
from nerfgen.scenes.gan_sets import object_masks, render_clevr, render_objects
from nerfgen.scenes.image_sets import read_labels
from PIL import Image

from nerfgen.data.errors import DatasetError
from nerfgen.gan import data as gan_data
from nerfgen.gan.data import ImageCollection, held_out_split
from nerfgen.gan.data_cli import add_data_parser, run_data


def project(c2w, fov_deg: float, size: int, points: np.ndarray) -> np.ndarray:
    """[N, 2] (column, row) pixel coordinates of world points [N, 3] (OpenGL camera)."""
    w2c = np.linalg.inv(np.asarray(c2w))
    p = points @ w2c[:3, :3].T + w2c[:3, 3]
    f = focal_from_fov(size, np.radians(fov_deg))
    return np.stack([f * p[:, 0] / -p[:, 2] + size / 2, -f * p[:, 1] / -p[:, 2] + size / 2], -1)


def pixels(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted((folder / "images").glob("*.png"))]


@pytest.fixture(scope="module")
def clevr(tmp_path_factory) -> Path:
    return render_clevr(tmp_path_factory.mktemp("gan") / "clevr", 6, size=32, objects=(1, 3), seed=0)


def test_clevr_layout_and_labels(clevr):
    labels = read_labels(clevr)
    assert (labels["set"], labels["size"], labels["count"], labels["format"]) == ("clevr", 32, 6, 1)
    assert labels["scene"]["max_objects"] == 3 and labels["scene"]["ground_z"] == 0.0
    images = pixels(clevr)
    assert len(images) == 6 and all(im.shape == (32, 32, 3) and im.dtype == np.uint8 for im in images)
    for entry in labels["images"]:
        assert (clevr / entry["file"]).is_file() and np.asarray(entry["c2w"]).shape == (4, 4)
        objects = entry["objects"]
        assert 1 <= len(objects) <= 3
        for o in objects:
            assert o["shape"] in gan_sets.CLEVR_SHAPES and o["colour"] in gan_sets.CLEVR_COLOURS
            assert 0.25 <= o["scale"] <= 0.4 and o["translation"][2] == pytest.approx(o["scale"])
            assert all(-1 <= v <= 1 for v in o["translation"][:2]) and 0 <= o["rotation"] < 2 * np.pi
        for a, b in itertools.combinations(objects, 2):
            gap = np.hypot(a["translation"][0] - b["translation"][0], a["translation"][1] - b["translation"][1])
            assert gap > a["scale"] + b["scale"] + 0.05
    for a, b in itertools.combinations(images, 2):
        assert np.abs(a.astype(int) - b.astype(int)).max() > 20


def test_clevr_camera_sees_the_whole_scene(clevr):
    lo, hi = np.asarray(gan_sets.CLEVR_VISIBLE_BOX)
    corners = np.array(list(itertools.product(*zip(lo, hi))))  # [8, 3]
    uv = project(gan_sets.clevr_c2w(), gan_sets.CLEVR_FOV_DEG, 32, corners)
    assert (uv > 0).all() and (uv < 32).all()
    for entry in read_labels(clevr)["images"]:  # every vertex of every object too
        for o in entry["objects"]:
            mesh = gan_sets.object_mesh(o["shape"], o["translation"], o["rotation"], o["scale"])[0]
            c, s = np.cos(o["rotation"]), np.sin(o["rotation"])
            local = (mesh.vertices - o["translation"]) @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])  # R^T v
            assert np.abs(local).max() <= o["scale"] + 1e-6  # fits [-s, s]^3 before its rotation
            uv = project(entry["c2w"], entry["fov_deg"], 32, np.asarray(mesh.vertices))
            assert (uv > 0).all() and (uv < 32).all()


def test_clevr_ground_truth_matches_the_masks(clevr):
    labels = read_labels(clevr)
    for entry, image in zip(labels["images"], pixels(clevr)):
        masks = object_masks(entry, 32)
        assert masks.shape == (len(entry["objects"]), 32, 32) and masks.dtype == bool
        centres = project(entry["c2w"], entry["fov_deg"], 32, np.array([o["translation"] for o in entry["objects"]]))
        for mask, centre in zip(masks, centres):
            rows, cols = np.nonzero(mask)
            assert len(rows) > 5
            assert np.hypot(cols.mean() + 0.5 - centre[0], rows.mean() + 0.5 - centre[1]) < 3.0
        ground = image[~masks.any(0)].astype(float)  # [P, 3] ground pixels: grey (lit or in shadow)
        grey = np.abs(ground - ground.mean(1, keepdims=True)).max(1) < 8  # [P]; edges mix with objects
        assert grey.mean() > 0.95


def test_clevr_deterministic_prefix_and_reuse(clevr, tmp_path, monkeypatch):
    again = render_clevr(tmp_path / "again", 6, size=32, objects=(1, 3), seed=0)
    prefix = render_clevr(tmp_path / "prefix", 3, size=32, objects=(1, 3), seed=0)
    for i, name in enumerate(sorted(p.name for p in (clevr / "images").iterdir())):
        assert (clevr / "images" / name).read_bytes() == (again / "images" / name).read_bytes()
        if i < 3:
            assert (clevr / "images" / name).read_bytes() == (prefix / "images" / name).read_bytes()
    assert (clevr / "labels.json").read_bytes() == (again / "labels.json").read_bytes()
    assert read_labels(prefix)["images"] == read_labels(clevr)["images"][:3]

    def fail(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(gan_sets, "_clevr_image", fail)
    assert render_clevr(again, 6, size=32, objects=(1, 3), seed=0) == again
    with pytest.raises(FileExistsError, match="not this image set"):
        render_clevr(again, 6, size=32, objects=(1, 3), seed=1)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_objects_set(tmp_path):
    root = render_objects(tmp_path / "objects", 4, size=32, seed=3)
    labels = read_labels(root)
    assert labels["set"] == "objects" and labels["camera"]["fov_deg"] == 30.0
    for entry, image in zip(labels["images"], pixels(root)):
        assert 5 <= entry["elevation_deg"] <= 50 and 0 <= entry["azimuth_deg"] < 360
        (obj,) = entry["objects"]
        assert obj["pattern"] == "solid" and obj["translation"] == [0.0, 0.0, 0.0]
        rows, cols = np.nonzero((image < 250).any(-1))
        assert len(rows) > 40  # roughly centred: a cone seen from above reaches further down than up
        assert abs(rows.min() + rows.max() + 1 - 32) / 2 < 4.5 and abs(cols.min() + cols.max() + 1 - 32) / 2 < 4.5
        assert (image[0] >= 250).all() and (image[:, 0] >= 250).all()  # white border: the object fits
        mask = object_masks(entry, 32)[0]
        assert (mask == (image < 250).any(-1)).mean() > 0.95


def test_objects_patterns_and_bad_arguments(tmp_path):
    root = render_objects(tmp_path / "striped", 2, size=16, patterns=("striped",), seed=0)
    assert all(e["objects"][0]["pattern"] == "striped" for e in read_labels(root)["images"])
    with pytest.raises(ValueError, match="patterns"):
        render_objects(tmp_path / "x", 2, patterns=("dotted",))
    with pytest.raises(ValueError, match="objects"):
        render_clevr(tmp_path / "x", 2, objects=(3, 1))


def test_read_labels_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels.json"):
        read_labels(tmp_path)
    (tmp_path / "labels.json").write_text("{not json")
    with pytest.raises(ValueError, match="labels.json.*malformed"):
        read_labels(tmp_path)


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    thirds = np.zeros((30, 90, 3), np.uint8)
    thirds[:, :30], thirds[:, 30:60], thirds[:, 60:] = (255, 0, 0), (0, 200, 0), (0, 0, 255)
    Image.fromarray(thirds).save(root / "a_thirds.png")
    Image.fromarray(np.full((50, 40, 3), 90, np.uint8)).save(root / "b_grey.jpg", quality=95)
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:, 10:] = (0, 0, 255, 255)  # left half transparent (black underneath), right half opaque blue
    Image.fromarray(rgba, mode="RGBA").save(root / "c_rgba.png")
    Image.fromarray(np.full((64, 64, 3), 30, np.uint8)).save(root / "sub" / "d.bmp")
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(root / "sub" / "e.webp", lossless=True)
    (root / "notes.txt").write_text("not an image")
    return root


def test_image_collection(folder):
    data = ImageCollection.from_folder(folder, 16, held_out=0.5)
    assert [p.relative_to(folder).as_posix() for p in data.files] == [
        "a_thirds.png", "b_grey.jpg", "c_rgba.png", "sub/d.bmp", "sub/e.webp"]
    assert data.images.shape == (5, 16, 16, 3) and data.images.dtype == torch.uint8 and data.size == 16
    assert data.labels is None
    thirds, grey, rgba, dark, light = data.images.int()
    assert (thirds - torch.tensor([0, 200, 0])).abs().max() <= 3  # the red and blue thirds are cropped away
    assert (grey - 90).abs().max() <= 3 and (dark == 30).all() and (light == 200).all()
    assert (rgba[:, :7] == 255).all() and (rgba[:, 9:] - torch.tensor([0, 0, 255])).abs().max() <= 3
    x = data.images_at([0, 2])
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1
    assert torch.equal(x[1, :, 0, 0], torch.ones(3))  # white stays exactly 1
    assert sorted(data.train.tolist() + data.held_out.tolist()) == list(range(5))
    assert not set(data.train.tolist()) & set(data.held_out.tolist()) and len(data.held_out) >= 1
    a = data.sample(7, torch.Generator().manual_seed(1))
    assert torch.equal(a, data.sample(7, torch.Generator().manual_seed(1))) and a.shape == (7, 3, 16, 16)
    train = {tuple(data.images_at(i).flatten().tolist()) for i in data.train.tolist()}
    assert all(tuple(im.flatten().tolist()) in train for im in a)
    with pytest.raises(IndexError):
        data.images_at([5])


def test_held_out_split():
    for n, frac in ((1, 0.1), (2, 0.1), (10, 0.1), (25, 0.2), (7, 0.0)):
        train, held = held_out_split(n, frac)
        assert sorted(train.tolist() + held.tolist()) == list(range(n)) and len(train) >= 1
        assert len(held) == (0 if n < 2 or frac == 0 else max(1, n // round(1 / frac)))
    with pytest.raises(ValueError, match="held_out"):
        held_out_split(4, 0.9)


def test_image_collection_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty.*no images.*\.png"):
        ImageCollection.from_folder(tmp_path / "empty", 8)
    (tmp_path / "bad").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "bad" / "ok.png")
    (tmp_path / "bad" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match="broken.png"):
        ImageCollection.from_folder(tmp_path / "bad", 8)
    with pytest.raises(DatasetError, match="not a folder"):
        ImageCollection.from_folder(tmp_path / "missing", 8)


def test_cache_reused_and_invalidated(folder, monkeypatch):
    first = ImageCollection.from_folder(folder, 12)
    assert (folder / ".nerfgen_cache_12.npy").is_file() and (folder / ".nerfgen_cache_12.json").is_file()

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(PIL.Image, "open", no_decode)
    assert torch.equal(ImageCollection.from_folder(folder, 12).images, first.images)
    monkeypatch.undo()
    Image.fromarray(np.full((12, 12, 3), 7, np.uint8)).save(folder / "f_new.png")
    monkeypatch.setattr(PIL.Image, "open", no_decode)
    with pytest.raises(AssertionError, match="decoded"):
        ImageCollection.from_folder(folder, 12)
    monkeypatch.undo()
    assert len(ImageCollection.from_folder(folder, 12)) == 6


def test_unwritable_folder_and_labels(folder, monkeypatch):
    (folder / "labels.json").write_text(json.dumps({"set": "hand-made"}))

    def read_only(*args, **kwargs):
        raise PermissionError("read-only folder")

    monkeypatch.setattr(gan_data, "atomic_write", read_only)
    data = ImageCollection.from_folder(folder, 8)
    assert len(data) == 5 and data.labels == {"set": "hand-made"}
    assert not list(folder.glob(".nerfgen_cache_*"))


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="nerfgen")
    sub = top.add_subparsers(dest="command", required=True)
    gan = sub.add_parser("gan")
    add_data_parser(gan.add_subparsers(dest="gan_command", required=True))
    return top


def test_cli_renders_and_reads_back(tmp_path, capsys):
    out = tmp_path / "cli"
    args = _parser().parse_args(["gan", "data", "clevr", "--count", "3", "--size", "16", "--objects", "2",
                                 "--output", str(out)])
    assert args.objects == (2, 2)
    assert run_data(args) == 0
    captured = capsys.readouterr()
    line = json.loads(captured.out.strip().splitlines()[-1])
    assert line["output"] == str(out) and line["images"] == 3 and line["seconds"] >= 0
    assert "3/3 images" in captured.err
    assert all(len(e["objects"]) == 2 for e in read_labels(out)["images"])
    data = ImageCollection.from_folder(out, 16)
    assert len(data) == 3 and data.labels["set"] == "clevr"
    args = _parser().parse_args(["gan", "data", "objects", "--count", "2", "--size", "16", "--patterns",
                                 "striped,checkered", "--output", str(tmp_path / "obj")])
    assert run_data(args) == 0 and args.patterns == ("striped", "checkered")


@pytest.mark.parametrize("bad", ["0-3", "3-1", "x", "1-9"])
def test_cli_rejects_bad_objects(bad, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["gan", "data", "clevr", "--objects", bad, "--output", "o"])
    assert "--objects" in capsys.readouterr().err


def test_workers_render_the_same_images(tmp_path, monkeypatch):
    """The chunked parallel path, with threads standing in for the spawned processes (spawning
    imports torch and open3d per worker: seconds); what travels to a process must pickle."""
    sent = []

    class ThreadPool(ThreadPoolExecutor):
        def __init__(self, workers, mp_context=None):
            assert mp_context.get_start_method() == "spawn"
            super().__init__(workers)

        def map(self, fn, *iterables):
            sent.append(pickle.loads(pickle.dumps((fn, iterables[0][0], iterables[1][0], iterables[2][0]))))
            return super().map(fn, *iterables)

    serial = render_clevr(tmp_path / "serial", 130, size=8, seed=5)
    monkeypatch.setattr(image_sets, "ProcessPoolExecutor", ThreadPool)
    parallel = render_clevr(tmp_path / "parallel", 130, size=8, seed=5, workers=2)  # 3 chunks of <= 64
    assert len(sent) == 1 and len(sent[0][3]) == 64
    assert (serial / "labels.json").read_bytes() == (parallel / "labels.json").read_bytes()
    for p in (serial / "images").iterdir():
        assert p.read_bytes() == (parallel / "images" / p.name).read_bytes()
