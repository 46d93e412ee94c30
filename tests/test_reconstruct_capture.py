"""Training on real-capture formats: COLMAP projects with SfM points (depth supervision, pose
refinement, appearance embeddings, the unbounded model), images of several sizes, forward-facing NDC."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from nerfgen.scenes import render_dataset
from PIL import Image

from nerfgen.api import reconstruction
from nerfgen.cameras import image_rays
from nerfgen.data import load_dataset, scene_layout
from nerfgen.data.colmap import write_colmap
from nerfgen.data.transforms import SfMPoints
from nerfgen.reconstruct.evaluate import evaluate
from nerfgen.kinds import load_run

W, H = 32, 24
FAST = {"max_steps": 12, "eval_every": 0, "checkpoint_every": 0, "target_samples": 4096, "init_rays": 256,
        "threads": 1}


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    return render_dataset(tmp_path_factory.mktemp("capture") / "src", width=W, height=H, n_train=12, n_val=1,
                          n_test=2, nthreads=1)


def surface_points(ds, per_image: int = 40) -> SfMPoints:
    """Points on the rendered surfaces (from the ground-truth depth), each seen by its own image."""
    rng = np.random.default_rng(0)
    xyz, visible = [], []
    for i in range(len(ds)):
        depth = ds.depths[i]
        ys, xs = torch.nonzero(torch.isfinite(depth) & (depth > 0), as_tuple=True)
        pick = rng.choice(len(ys), min(per_image, len(ys)), replace=False)
        rays = image_rays(ds.cameras, i)
        flat = ys[pick] * ds.cameras.width + xs[pick]
        p = rays.origins[flat] + rays.directions[flat] * depth[ys[pick], xs[pick]][:, None]
        visible.append(np.arange(len(pick)) + sum(len(v) for v in xyz))
        xyz.append(p.double().numpy())
    return SfMPoints(np.concatenate(xyz), np.full(sum(len(v) for v in xyz), 0.5), visible)


def colmap_project(rendered: Path, root: Path, sizes=None) -> Path:
    ds = load_dataset(rendered, "all")
    names = [f"{i:03d}.png" for i in range(len(ds))]
    (root / "images").mkdir(parents=True)
    for name, src in zip(names, ds.filenames):
        shutil.copy(src, root / "images" / name)
    write_colmap(root, ds.cameras, names, points=surface_points(ds))
    return root


def test_colmap_capture_trains_with_depth_poses_and_appearance(rendered, tmp_path):
    root = colmap_project(rendered, tmp_path / "colmap")
    train = quiet(load_dataset, root, "train")
    assert train.points is not None and scene_layout(train).kind == "unbounded"
    engine = quiet(reconstruction, root, tmp_path / "run", "ngp", depth={"weight": 0.1, "sigma": 0.1, "rays": 64},
                   camera_opt={"mode": "SO3xR3"}, field_options={"appearance_dim": 4, "log2_table_size": 12},
                   **FAST)
    first = engine.train_step().figures
    assert "depth" in first and np.isfinite(first["depth"])
    summary = engine.run()
    assert summary.steps == FAST["max_steps"]
    assert float(engine.task.camera_opt.pose_adjustment.detach().abs().sum()) > 0  # the poses moved
    run = load_run(tmp_path / "run", "cpu")  # the appearance table is part of the stored model
    assert run.model.field.appearance.num_embeddings == len(train)
    report = quiet(evaluate, tmp_path / "run", "test")
    assert report["views"] == len(quiet(load_dataset, root, "test")) and np.isfinite(report["psnr"])


def test_auto_config_picks_the_unbounded_model(rendered, tmp_path, capsys):
    root = colmap_project(rendered, tmp_path / "colmap")
    engine = quiet(reconstruction, root, tmp_path / "run", "auto", **FAST)
    assert "unbounded scene" in capsys.readouterr().err
    assert engine.task.spec.sampler == "proposal" and engine.task.spec.contraction == "linf"
    figures = engine.train_step().figures
    assert "interlevel" in figures and np.isfinite(figures["loss"])


def test_images_of_different_sizes_train_and_evaluate(rendered, tmp_path):
    root = colmap_project(rendered, tmp_path / "colmap")
    # Half of the images at half size: their cameras follow (COLMAP stores one camera per size).
    ds = load_dataset(rendered, "all")
    small = list(range(0, len(ds), 2))
    cams = ds.cameras
    sizes = np.tile([W, H], (len(ds), 1))
    for i in small:
        cams.fx[i] /= 2
        cams.fy[i] /= 2
        cams.cx[i] /= 2
        cams.cy[i] /= 2
        sizes[i] = (W // 2, H // 2)
        path = root / "images" / f"{i:03d}.png"
        Image.open(path).resize((W // 2, H // 2), Image.Resampling.BOX).save(path)
    write_colmap(root, cams, [f"{i:03d}.png" for i in range(len(ds))], points=surface_points(ds), sizes=sizes)
    train = quiet(load_dataset, root, "train")
    assert sorted({tuple(s) for s in train.sizes.tolist()}) == [(W // 2, H // 2), (W, H)]
    assert train.image(0).shape[:2] != train.image(1).shape[:2]
    quiet(reconstruction, root, tmp_path / "run", "ngp", **FAST).run()
    report = quiet(evaluate, tmp_path / "run", "train", limit=2)  # one view of each size
    assert report["views"] == 2 and np.isfinite(report["psnr"])


def test_forward_facing_capture_trains_in_ndc(shared_data, tmp_path):
    horns = shared_data / "llff_horns"
    engine = quiet(reconstruction, horns, tmp_path / "run", "auto", downscale=4, **FAST)
    assert engine.task.spec.ndc.enabled
    engine.run()
    run = load_run(tmp_path / "run", "cpu")
    assert run.model.spec.ndc.enabled  # stored with the run: renders use the same map
    report = quiet(evaluate, tmp_path / "run", "test", limit=1)
    assert np.isfinite(report["psnr"]) and report["width"] == 126
