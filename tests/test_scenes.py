"""Tests of the embedded tabletop scene, its ray caster and the NeRF-synthetic dataset writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from nerfgen.scenes import (
    Material,
    Raycaster,
    SceneObject,
    build_tabletop,
    focal_from_fov,
    look_at,
    pixel_rays,
    read_stamp,
    render_dataset,
    scene_digest,
)
from nerfgen.scenes.raycast import AMBIENT, LIGHT_DIR
from nerfgen.scenes.tabletop import SCENE_BOUND
from PIL import Image

TINY = dict(width=64, height=64, n_train=6, n_val=2, n_test=2)
SPLITS = {"train": 6, "val": 2, "test": 2}
ANGLE = 0.6911
RADIUS = 4.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return render_dataset(tmp_path_factory.mktemp("tiny") / "tabletop", seed=0, **TINY)


def _frames(root: Path, split: str) -> tuple[dict, list[dict]]:
    doc = json.loads((root / f"transforms_{split}.json").read_text())
    return doc, doc["frames"]


def _rgba(root: Path, frame: dict) -> np.ndarray:
    return np.asarray(Image.open(root / f"{frame['file_path']}.png"))


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- scene ---------------------------------------------------------------------------------


def test_tabletop_is_deterministic_bounded_and_varied():
    a, b, c = build_tabletop(0), build_tabletop(0), build_tabletop(1)
    assert scene_digest(a) == scene_digest(b)
    assert scene_digest(a) != scene_digest(c)
    for objects in (a, c, build_tabletop(7)):
        assert objects[0].name == "table_top"
        props = [o for o in objects if o.name != "table_top" and not o.name.startswith("leg_")]
        assert 4 <= len(props) <= 6
        assert len({o.material.color for o in props}) == len(props), "colours must be distinct"
        assert any(o.material.pattern != "solid" for o in props)
        for o in objects:
            assert np.abs(o.mesh.vertices).max() <= SCENE_BOUND
        top_z = objects[0].mesh.vertices[:, 2].max()
        for o in props:  # standing on the table, not floating or sunk
            assert o.mesh.vertices[:, 2].min() == pytest.approx(top_z, abs=1e-6)


# --- cameras and ray caster ------------------------------------------------------------------


def test_pixel_rays_follow_the_opengl_convention():
    c2w = np.eye(4)
    c2w[:3, 3] = (1.0, 2.0, 3.0)
    f = focal_from_fov(4, ANGLE)
    o, d = pixel_rays(c2w, 4, 2, f)  # [2, 4, 1, 3]
    assert o.shape == d.shape == (2, 4, 1, 3)
    np.testing.assert_allclose(o[0, 0, 0], (1, 2, 3))
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0, atol=1e-6)
    assert (d[..., 2] < 0).all()  # looks down -z
    assert d[0, 0, 0, 0] < 0 < d[0, 0, 0, 1]  # top-left pixel: left (x < 0) and up (y > 0)
    expected = np.array([(1.5 - 2.0) / f, -(0.5 - 1.0) / f, -1.0])  # row 0, column 1 centre
    np.testing.assert_allclose(d[0, 1, 0], expected / np.linalg.norm(expected), atol=1e-6)


def _slab_scene(with_occluder: bool) -> list[SceneObject]:
    white = Material(color=(1.0, 1.0, 1.0))
    objects = [SceneObject("floor", trimesh.creation.box(extents=(2, 2, 0.2)), white, np.eye(4))]
    if with_occluder:
        blocker = trimesh.creation.box(extents=(0.2, 0.2, 0.2))
        blocker.apply_translation(np.array([0.0, 0.0, 0.1]) + 0.5 * LIGHT_DIR)  # on the light ray
        objects.append(SceneObject("blocker", blocker, white, np.eye(4)))
    return objects


@pytest.mark.parametrize("with_occluder", [False, True])
def test_lambert_shading_and_hard_shadow(with_occluder):
    caster = Raycaster(_slab_scene(with_occluder), nthreads=1)
    rgb, hits = caster.shade(np.array([[0.0, 0.0, 3.0]]), np.array([[0.0, 0.0, -1.0]]))
    assert hits.t[0] == pytest.approx(2.9, abs=1e-5)
    expected = AMBIENT if with_occluder else AMBIENT + (1 - AMBIENT) * LIGHT_DIR[2]
    np.testing.assert_allclose(rgb[0], expected, atol=1e-5)
    rgb, hits = caster.shade(np.array([[5.0, 0.0, 3.0]]), np.array([[0.0, 0.0, -1.0]]))  # miss
    assert not hits.mask[0] and np.isinf(hits.t[0]) and (rgb[0] == 0).all()


# --- dataset -----------------------------------------------------------------------------------


def test_layout_and_transforms(tiny):
    stamp = read_stamp(tiny)
    assert stamp is not None and stamp["seed"] == 0 and stamp["width"] == 64
    for split, n in SPLITS.items():
        doc, frames = _frames(tiny, split)
        assert doc["camera_angle_x"] == pytest.approx(ANGLE)
        assert len(frames) == n
        for i, fr in enumerate(frames):
            assert fr["file_path"] == f"./{split}/r_{i}"
            assert fr["depth_file_path"] == f"./{split}/r_{i}_depth.npy"
            assert (tiny / f"{fr['file_path']}.png").is_file()
            depth = np.load(tiny / fr["depth_file_path"])
            assert depth.dtype == np.float32 and depth.shape == (64, 64)
            m = np.asarray(fr["transform_matrix"])
            assert m.shape == (4, 4)
            np.testing.assert_allclose(m[3], (0, 0, 0, 1))
            rot, pos = m[:3, :3], m[:3, 3]
            np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-9)
            assert np.linalg.det(rot) == pytest.approx(1.0)
            assert np.linalg.norm(pos) == pytest.approx(RADIUS)
            np.testing.assert_allclose(-rot[:, 2], -pos / RADIUS, atol=1e-9)  # looks at the origin
            assert abs(rot[2, 0]) < 1e-9 and rot[2, 1] > 0  # no roll, world z up
            elevation = np.degrees(np.arcsin(pos[2] / RADIUS))
            assert 15.0 - 1e-6 <= elevation <= 70.0 + 1e-6
    poses = {s: np.asarray([f["transform_matrix"] for f in _frames(tiny, s)[1]]) for s in SPLITS}
    assert not np.allclose(poses["train"][:2], poses["val"])
    assert not np.allclose(poses["train"][:2], poses["test"])


def test_images_have_alpha_and_colour(tiny):
    for split in SPLITS:
        for fr in _frames(tiny, split)[1]:
            rgba = _rgba(tiny, fr)
            assert rgba.shape == (64, 64, 4) and rgba.dtype == np.uint8
            alpha = rgba[..., 3]
            assert (alpha == 255).any() and (alpha == 0).any()
            assert (rgba[alpha == 0, :3] == 0).all()
            rgb = rgba[alpha == 255, :3].astype(int)
            saturation = rgb.max(axis=1) - rgb.min(axis=1)
            assert (saturation > 80).mean() > 0.05, "expected coloured (not grey) pixels"
            depth = np.load(tiny / fr["depth_file_path"])
            # depth is the pixel-centre ray, alpha the 2x2 coverage: they agree almost everywhere
            assert (np.isfinite(depth) == (alpha > 0)).mean() > 0.98


def test_deterministic_and_seed_dependent(tiny, tmp_path):
    again = render_dataset(tmp_path / "again", seed=0, **TINY)
    assert _all_files(again) == _all_files(tiny)
    other = _all_files(render_dataset(tmp_path / "other", seed=1, **TINY))
    ours = _all_files(tiny)
    assert other.keys() == ours.keys()
    assert all(other[k] != ours[k] for k in ours if k.endswith(".png") and "/train/" in f"/{k}")


def _world_ray(c2w: np.ndarray, row: int, col: int, width: int, height: int) -> np.ndarray:
    """Unit world direction through a pixel centre, derived here independently of the renderer."""
    f = 0.5 * width / np.tan(0.5 * ANGLE)
    d = c2w[:3, :3] @ np.array([(col + 0.5 - 0.5 * width) / f, -(row + 0.5 - 0.5 * height) / f, -1.0])
    return d / np.linalg.norm(d)


def test_depth_lands_on_the_surface(tiny):
    triangles = np.concatenate([o.mesh.triangles for o in build_tabletop(0)])  # [F, 3, 3]
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for fr in _frames(tiny, split)[1][:2]:
            c2w = np.asarray(fr["transform_matrix"])
            depth = np.load(tiny / fr["depth_file_path"]).astype(np.float64)
            rows, cols = np.nonzero(np.isfinite(depth))
            for k in rng.choice(rows.size, size=8, replace=False):
                p = c2w[:3, 3] + depth[rows[k], cols[k]] * _world_ray(c2w, rows[k], cols[k], 64, 64)
                closest = trimesh.triangles.closest_point(triangles, np.broadcast_to(p, (len(triangles), 3)))
                dist = np.linalg.norm(closest - p, axis=1)
                assert dist.min() < 1e-3, f"hit point {p} is {dist.min():.2e} off the surface"
            centre = depth[32, 32]
            assert np.isfinite(centre) and centre < RADIUS


def test_without_supersampling_alpha_is_binary_and_matches_depth(tmp_path):
    root = render_dataset(tmp_path / "aliased", seed=3, width=48, height=40, n_train=2, n_val=1,
                          n_test=1, samples_per_side=1)
    for fr in _frames(root, "train")[1]:
        rgba, depth = _rgba(root, fr), np.load(root / fr["depth_file_path"])
        assert rgba.shape == (40, 48, 4) and depth.shape == (40, 48)
        assert set(np.unique(rgba[..., 3])) == {0, 255}
        np.testing.assert_array_equal(np.isfinite(depth), rgba[..., 3] == 255)


def test_complete_dataset_is_not_rendered_again(tiny):
    before = {p: p.stat().st_mtime_ns for p in tiny.rglob("*")}
    assert render_dataset(tiny, seed=0, **TINY) == tiny
    assert {p: p.stat().st_mtime_ns for p in tiny.rglob("*")} == before
    assert not list(tiny.parent.glob(".tabletop.tmp-*")), "temporary directory left behind"


def test_other_content_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "data"
    small = dict(width=16, height=16, n_train=1, n_val=0, n_test=0)
    render_dataset(out, seed=0, **small)
    with pytest.raises(FileExistsError, match="overwrite"):
        render_dataset(out, seed=1, **small)
    assert read_stamp(out)["seed"] == 0
    render_dataset(out, seed=1, overwrite=True, **small)
    assert read_stamp(out)["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize("bad", [dict(width=0), dict(n_train=0), dict(camera_angle_x=4.0),
                                 dict(radius=1.0), dict(samples_per_side=0)])
def test_bad_arguments_raise(tmp_path, bad):
    with pytest.raises(ValueError):
        render_dataset(tmp_path / "x", **{**TINY, **bad})
    assert not (tmp_path / "x").exists()


def test_look_at_rejects_degenerate_poses():
    with pytest.raises(ValueError, match="parallel"):
        look_at(np.array([0.0, 0.0, 4.0]))
