"""LLFF captures, pyramid levels, lazily decoded image stores, scene layouts and NDC rays."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfgen.cameras import Rays, image_rays
from nerfgen.cameras.ndc import NDCConfig, ndc_points, ndc_rays
from nerfgen.data import DatasetError, load_dataset, scene_layout
from nerfgen.data.store import ImageStore
from nerfgen.reconstruct import TrainConfig
from nerfgen.reconstruct.scene import model_setup


def quiet_load(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset(*args, **kwargs)


def llff_capture(root: Path, n: int = 9, size=(40, 30), folder: str = "images_4") -> np.ndarray:
    """An LLFF folder: ``n`` cameras on a small grid looking down -z (OpenGL), written in LLFF's
    [down, right, back] axes for a full resolution 4x the stored images; returns the OpenGL c2w."""
    rng = np.random.default_rng(0)
    c2w = np.zeros((n, 3, 4))
    for i in range(n):
        angle = rng.normal(0, 0.05, 3)
        cx, sx = np.cos(angle), np.sin(angle)
        rx = np.array([[1, 0, 0], [0, cx[0], -sx[0]], [0, sx[0], cx[0]]])
        ry = np.array([[cx[1], 0, sx[1]], [0, 1, 0], [-sx[1], 0, cx[1]]])
        c2w[i, :, :3] = rx @ ry
        c2w[i, :, 3] = [0.3 * (i % 3) - 0.3, 0.2 * (i // 3) - 0.2, 0.1 * rng.normal()]
    w, h = size
    factor = int(folder.split("_")[1]) if "_" in folder else 1
    hwf = np.array([h * factor, w * factor, 50.0 * factor])
    llff = np.concatenate([-c2w[:, :, 1:2], c2w[:, :, 0:1], c2w[:, :, 2:4]], 2)  # [down, right, back, t]
    poses = np.concatenate([llff, np.broadcast_to(hwf[None, :, None], (n, 3, 1))], 2)
    bounds = np.stack([np.linspace(2.0, 2.5, n), np.linspace(10, 12, n)], 1)
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "poses_bounds.npy", np.concatenate([poses.reshape(n, 15), bounds], 1))
    (root / folder).mkdir()
    for i in range(n):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / folder / f"IMG_{i:03d}.png")
    return c2w


def test_llff_axes_recentring_scale_and_split(tmp_path):
    c2w = llff_capture(tmp_path)
    train, test = quiet_load(tmp_path, "train"), quiet_load(tmp_path, "test")
    assert len(train) == 7 and len(test) == 2  # images 0 and 8 held out
    assert test.filenames[1].endswith("IMG_008.png")
    assert (train.cameras.width, train.cameras.height) == (40, 30)
    assert torch.allclose(train.cameras.fx, torch.full((7,), 50.0))  # focal scaled by 1/4 with the images
    everything = quiet_load(tmp_path, "all")
    got = everything.cameras.c2w.double().numpy()
    # Rotations relative to one another survive recentring; distances scale by 1 / (0.75 near_min).
    rel_src = np.einsum("ji,njk->nik", c2w[0, :, :3], c2w[:, :, :3])
    rel_got = np.einsum("ji,njk->nik", got[0, :, :3], got[:, :, :3])
    np.testing.assert_allclose(rel_got, rel_src, atol=1e-5)
    scale = 1 / (2.0 * 0.75)
    d_src = np.linalg.norm(c2w[1:, :, 3] - c2w[0, :, 3], axis=1) * scale
    d_got = np.linalg.norm(got[1:, :, 3] - got[0, :, 3], axis=1)
    np.testing.assert_allclose(d_got, d_src, rtol=1e-4)
    assert abs(float(everything.bounds.min()) - 1 / 0.75) < 1e-5
    # Recentred: the mean position is the origin and the cameras look down -z on average.
    assert np.abs(got[:, :, 3].mean(0)).max() < 1e-5
    assert (-got[:, :, 2].mean(0))[2] < -0.99  # the forward axis, -z
    assert everything.layout == "forward" and scene_layout(everything).kind == "forward"


def test_llff_pyramid_level_follows_downscale(tmp_path):
    llff_capture(tmp_path, size=(40, 30), folder="images")
    (tmp_path / "images_2").mkdir()
    for path in sorted((tmp_path / "images").iterdir()):
        Image.new("RGB", (20, 15), (7, 8, 9)).save(tmp_path / "images_2" / path.name)
    full = quiet_load(tmp_path, "train")
    half = quiet_load(tmp_path, "train", downscale=2)
    assert full.images.shape[1:3] == (30, 40) and half.images.shape[1:3] == (15, 20)
    assert (half.images[..., :3] == torch.tensor([7, 8, 9], dtype=torch.uint8)).all()  # read from images_2/
    assert torch.allclose(half.cameras.fx, full.cameras.fx / 2)


@pytest.mark.parametrize("case", ["shape", "nan", "count", "no images", "bounds"])
def test_llff_bad_input_names_the_file(tmp_path, case):
    llff_capture(tmp_path)
    array = np.load(tmp_path / "poses_bounds.npy")
    expected = "poses_bounds.npy"
    if case == "shape":
        np.save(tmp_path / "poses_bounds.npy", array[:, :15])
        match = r"expected an \[n, 17\] array"
    elif case == "nan":
        array[3, 4] = np.nan
        np.save(tmp_path / "poses_bounds.npy", array)
        match = "row 3 .* NaN"
    elif case == "bounds":
        array[2, 16] = 0.5
        np.save(tmp_path / "poses_bounds.npy", array)
        match = "near < far"
    elif case == "count":
        (tmp_path / "images_4" / "IMG_008.png").unlink()
        match = "9 poses but .* 8 images"
    else:
        for p in (tmp_path / "images_4").iterdir():
            p.unlink()
        (tmp_path / "images_4").rmdir()
        match = "expected an images/ or images_N/ folder"
    with pytest.raises(DatasetError, match=match) as info:
        quiet_load(tmp_path, "train")
    assert expected in str(info.value)


def test_horns(shared_data):
    horns = shared_data / "llff_horns"
    train, test = quiet_load(horns, "train"), quiet_load(horns, "test")
    assert (len(train), len(test)) == (54, 8)
    assert test.images.shape[1:] == (378, 504, 4) and not test.has_alpha
    assert abs(float(train.cameras.fx[0]) - 3368.8 / 8) < 0.5  # 1/8 of the stored focal
    layout = scene_layout(train)
    assert layout.kind == "forward"
    spec, aabb, cascades = model_setup(TrainConfig(forward_facing=True), train)
    assert spec.ndc.enabled and cascades == 1 and aabb[2] == -1 and aabb[5] == 1
    assert abs(spec.ndc.near - 0.75 * float(train.bounds[:, 0].min())) < 1e-5
    # Every pixel ray of a test camera starts on the NDC near plane, and passes inside the box's
    # sides wherever the scene can be (from its nearest depth on).
    rays = ndc_rays(image_rays(test.cameras, 0), spec.ndc)
    assert torch.allclose(rays.origins[:, 2], torch.full_like(rays.origins[:, 2], -1.0), atol=1e-4)
    for z in (-0.5, 0.0, 0.99):
        xy = (rays.origins + ((z + 1) / rays.directions[:, 2])[:, None] * rays.directions)[:, :2]
        assert (xy >= aabb[:2]).all() and (xy <= aabb[3:5]).all()


def test_ndc_maps_rays_to_rays():
    torch.manual_seed(0)
    config = NDCConfig(1.6, 2.1, 1.0, [1.0, 0, 0, 0.2, 0, 1, 0, -0.1, 0, 0, 1, 0.3])
    origins = torch.randn(64, 3) * 0.2
    directions = torch.cat([torch.randn(64, 2) * 0.2, -torch.ones(64, 1)], 1)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    rays = ndc_rays(Rays(origins, directions), config)
    assert torch.allclose(rays.directions.norm(dim=-1), torch.ones(64), atol=1e-6)
    previous = torch.zeros(64)
    for t in (2.5, 4.0, 20.0, 1e4):
        p = ndc_points(origins + t * directions, config)
        v = p - rays.origins
        along = (v * rays.directions).sum(-1)
        assert torch.linalg.cross(v, rays.directions).norm(dim=-1).max() < 1e-4  # on the NDC ray
        assert (along > previous).all()  # in the same order
        previous = along
    assert torch.allclose(p[:, 2], torch.ones(64), atol=1e-3)  # world infinity -> z' = 1


def _decoder(images: list[np.ndarray]):
    calls = []

    def decode(i: int, out: np.ndarray) -> bool:
        calls.append(i)
        out[...] = images[i]
        return False

    return decode, calls


def test_store_mixed_sizes_samples_every_pixel_uniformly():
    rng = np.random.default_rng(1)
    sizes = np.array([[4, 3], [8, 6], [5, 5]])
    images = [rng.integers(0, 256, (h, w, 4), dtype=np.uint8) for w, h in sizes]
    decode, _ = _decoder(images)
    store = ImageStore(sizes, decode)
    assert not store.lazy and not store.uniform
    with pytest.raises(ValueError, match="different sizes"):
        store.dense()
    batch = store.sample(20000, torch.Generator().manual_seed(0))
    counts = torch.bincount(batch.cam, minlength=3).double() / 20000
    expected = torch.tensor(sizes.prod(1) / sizes.prod(1).sum())
    assert torch.allclose(counts, expected, atol=0.02)
    for c, x, y, rgba in zip(batch.cam[:200], batch.px[:200], batch.py[:200], batch.rgba[:200]):
        assert x < sizes[c, 0] and y < sizes[c, 1]
        assert rgba.tolist() == images[c][y, x].tolist()
    assert torch.equal(store[1], torch.from_numpy(images[1]))


def test_lazy_store_holds_a_rotating_subset_within_budget():
    rng = np.random.default_rng(2)
    n, w, h = 12, 16, 8
    images = [rng.integers(0, 256, (h, w, 4), dtype=np.uint8) for _ in range(n)]
    decode, calls = _decoder(images)
    budget = 6 * w * h * 4  # room for 3 images (a subset, plus the next one being decoded)
    store = ImageStore(np.array([[w, h]] * n), decode, max_bytes=budget, refresh_every=4)
    assert store.lazy and store.subset_size == 3
    seen = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(80):
        batch = store.sample(64, g)
        seen |= set(batch.cam.tolist())
        assert len(set(batch.cam.tolist())) <= 3
        assert store._pool.pixels.nbytes <= budget // 2
        for c, x, y, rgba in zip(batch.cam[:8], batch.px[:8], batch.py[:8], batch.rgba[:8]):
            assert rgba.tolist() == images[c][y, x].tolist()
    assert len(seen) == n  # every image trains eventually
    assert torch.equal(store[5], torch.from_numpy(images[5]))  # any image on request


def test_lazy_loading_through_load_dataset(tmp_path):
    llff_capture(tmp_path)
    whole = quiet_load(tmp_path, "train")
    lazy = quiet_load(tmp_path, "train", image_memory=4 * 40 * 30 * 4)
    assert lazy.store.lazy and lazy.store.subset_size == 2 and not whole.store.lazy
    assert torch.equal(lazy.images, whole.images)


def test_forward_facing_orbit_circles_in_front_of_the_scene(tmp_path):
    from nerfgen.cameras import Orbit

    llff_capture(tmp_path)
    ds = quiet_load(tmp_path, "all")
    orbit = Orbit.facing(ds.cameras, focus=3.0)
    cams = orbit.cameras(16)
    axis, center = torch.tensor(orbit.axis), torch.tensor(orbit.center)
    eyes = cams.c2w[:, :, 3]
    middle = center - 3.0 * axis
    assert torch.allclose(((eyes - middle) @ axis), torch.zeros(16), atol=1e-5)  # a circle facing the scene
    assert torch.allclose((eyes - middle).norm(dim=-1), torch.full((16,), orbit.radius), atol=1e-5)
    forward = -cams.c2w[:, :, 2]
    to_center = (center - eyes) / (center - eyes).norm(dim=-1, keepdim=True)
    assert torch.allclose(forward, to_center, atol=1e-5)  # every camera looks at the focus point
    assert (forward @ axis).min() > 0.9  # ... roughly the way the capture looks
    assert Orbit.from_dict(orbit.to_dict()) == orbit
    assert Orbit.from_dict(Orbit.from_cameras(ds.cameras).to_dict()).axis is None  # 360-degree orbits as before
