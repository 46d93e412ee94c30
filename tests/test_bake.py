"""Baking runs (nerfgen.bake): a tiny trained tabletop run baked, saved, loaded and rendered; the bake
against its field; fine-tuning recovering a damaged bake; the CLI's ``bake`` and ``--baked``;
clear errors for what cannot be baked or read."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from nerfgen.api import reconstruction
from nerfgen.bake import BakeConfig, BakedGrid, bake, load_baked
from nerfgen.bake.build import dilate_voxels
from nerfgen.bake.finetune import finetune
from nerfgen.bake.run import camera_rays
from nerfgen.cameras import Cameras, image_rays, look_at
from nerfgen.cli import main as nerfgen_main
from nerfgen.engine.metrics import psnr
from nerfgen.files import read_json, read_tensors, write_json
from nerfgen.kinds import load_run
from nerfgen.ops.baked import march_accel, unpack_cell_bits
from nerfgen.reconstruct import TrainConfig
from nerfgen.render import OccGridConfig
from nerfgen.renderable import Refinable, Renderable
from nerfgen.scenes import render_dataset

# A short grid warm-up and coarse steps: a young run's grid is carved, so its field renders fast.
SMALL = dict(field_options={"log2_table_size": 14, "n_levels": 8, "max_resolution": 256},
             grid=OccGridConfig(resolution=32, diagonal_steps=128, warmup_steps=32), target_samples=8192,
             eval_every=0, checkpoint_every=0)
FAST = BakeConfig(resolution=64, directions=12)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tabletop run of 80 steps (48x48 images) and its bake at 64^3."""
    root = render_dataset(tmp_path_factory.mktemp("scene") / "tabletop", width=48, height=48,
                          n_train=30, n_val=2, n_test=3, samples_per_side=1)
    run = tmp_path_factory.mktemp("run") / "run"
    reconstruction(root, run, TrainConfig(max_steps=80, **SMALL)).run()
    stats = bake(run, FAST, device="cpu")
    return run, stats


def test_bake_writes_its_files_and_renders_close_to_the_field(trained):
    run_dir, stats = trained
    assert (run_dir / "baked.safetensors").stat().st_size == stats["bytes"] > 0
    info = read_json(run_dir / "baked.json")
    assert info["stats"]["voxels"] == stats["voxels"] > 0 and info["shading"]["sh_degree"] == 2
    assert stats["voxels"] >= stats["significant_voxels"]
    baked = load_baked(run_dir, "cpu")
    assert isinstance(baked, Renderable) and isinstance(baked, Refinable) and not baked.traits.normals
    field = load_run(run_dir, "cpu")
    cams = field.orbit_cameras(3, 48)
    scores = [psnr(baked.render(cams, i).rgb, field.render(cams, i).rgb) for i in range(3)]
    assert min(scores) > 24, scores  # the bake draws what the field draws
    assert stats["fidelity_psnr"] > 24
    assert baked.refined().info.kind == field.info.kind


def test_round_trip_through_save_and_load(trained, tmp_path):
    run_dir, _ = trained
    first = BakedGrid.load(run_dir)
    copy = tmp_path / "copy"
    copy.mkdir()
    first.save(copy)
    again = BakedGrid.load(copy)
    for a, b in zip((*first.grid.tensors(), first.values), (*again.grid.tensors(), again.values)):
        assert torch.equal(a, b)
    assert again.shading == first.shading
    o = torch.tensor([[0.0, -3.0, 1.0], [0.3, -3.0, 0.8]])
    d = torch.nn.functional.normalize(-o, dim=-1)
    r1, r2 = first.render(o, d), again.render(o, d)
    assert torch.equal(r1.color, r2.color) and torch.equal(r1.depth, r2.depth)
    # what the march reuses is not stored but rebuilt from the loaded grid, and is the grid's
    rebuilt = march_accel(again.grid)
    assert torch.equal(again.accel.cell_bits, rebuilt.cell_bits) and again.accel.bounds == rebuilt.bounds
    assert torch.equal(unpack_cell_bits(again.accel.cell_bits, again.grid.block_size), again.grid.cell_occupied)
    assert again.accel.present_bits is not None  # a bake writes each block's rows in voxel order: counted from bits
    assert set(read_tensors(copy / "baked.safetensors")) == {"block_ids", "voxel_rows", "cell_occupied", "aabbs",
                                                             "values"}


@pytest.mark.parametrize("index", [0, 2])
def test_camera_rays_are_image_rays(index):
    """The bake's rays (a few passes over the image) are image_rays' (a 3x3 product per pixel)."""
    c2w = torch.stack([look_at(eye, (0.1, 0.2, 0.0)) for eye in ((0.0, -3.0, 1.0), (2.0, 1.0, 0.5), (-1.0, 2.5, -2.0))])
    cams = Cameras(c2w=c2w, fx=torch.tensor([35.0, 40.0, 52.0]), fy=torch.tensor([37.0, 40.0, 50.0]),
                   cx=torch.tensor([20.0, 19.5, 23.0]), cy=torch.tensor([15.0, 16.0, 12.5]), width=40, height=30)
    got, ref = camera_rays(cams, index), image_rays(cams, index)
    assert got.origins.shape == ref.origins.shape == (1200, 3) and got.origins.is_contiguous()
    torch.testing.assert_close(got.origins, ref.origins, rtol=0, atol=0)
    torch.testing.assert_close(got.directions, ref.directions, rtol=0, atol=2e-7)


def test_dilation_crosses_block_faces():
    mask = torch.zeros(2, 2, 2, 2, dtype=torch.bool)
    mask[0, 1, 0, 0] = True  # the last voxel along x of block (0, 0, 0)
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0]])
    block_map = torch.full((1, 2, 2, 2), -1, dtype=torch.long)
    block_map[0, 0, 0, 0], block_map[0, 1, 0, 0] = 0, 1
    out = dilate_voxels(mask, coords, block_map)
    assert bool(out[1, 0, 0, 0]) and bool(out[1, 0, 1, 1]) and not bool(out[1, 1, 0, 0])
    assert int(out[0].sum()) == 8  # the whole of its own 2^3 block


def test_finetuning_recovers_a_damaged_bake(trained):
    run_dir, _ = trained
    field = load_run(run_dir, "cpu")
    grid = BakedGrid.load(run_dir)
    grid.values[:, 1:] = 0  # every voxel grey
    before = grid.values.clone()
    report = finetune(grid, field, BakeConfig(finetune_steps=32, finetune_lr=0.05, finetune_rays=1024))
    assert report["steps"] == 32
    assert report["train_psnr_last"] > report["train_psnr_first"] + 2, report
    assert not torch.equal(grid.values, before)


def test_cli_bake_render_and_eval_baked(trained, tmp_path, capsys):
    run_dir, _ = trained
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "baked.safetensors").unlink()
    with pytest.raises(SystemExit) as exit_info:
        nerfgen_main(["render", str(run), "--baked", "--orbit", "--frames", "2", "--output", str(tmp_path / "a.gif")])
    assert exit_info.value.code == 2 and "nerfgen bake" in capsys.readouterr().err
    for argv in (["bake", str(run), "--resolution", "32", "--directions", "4", "--sh-degree", "1", "--device", "cpu"],
                 ["render", str(run), "--baked", "--orbit", "--frames", "2", "--width", "32", "--output",
                  str(tmp_path / "orbit.gif"), "--device", "cpu"],
                 ["eval", str(run), "--device", "cpu"],
                 ["eval", str(run), "--baked", "--device", "cpu"]):
        with pytest.raises(SystemExit) as exit_info:
            nerfgen_main(argv)
        assert exit_info.value.code == 0, argv
    printed = capsys.readouterr()
    assert json.loads(printed.out.splitlines()[0])["resolution"] == 32
    assert (tmp_path / "orbit.gif").stat().st_size > 0
    report = read_json(run / "eval_test_baked.json")
    assert report["shared_views"] == report["views"] == 3
    assert abs(report["psnr_drop"] - (report["field_psnr"] - report["psnr"])) < 1e-9
    assert "eval" in printed.err  # progress, though no terminal is attached


def test_what_cannot_be_baked_or_read_is_one_clear_error(trained, tmp_path):
    run_dir, _ = trained
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    info = read_json(run / "run.json")
    write_json(run / "run.json", {**info, "kind": "generation"})
    with pytest.raises(ValueError, match="fine-tuning needs the training images"):
        bake(run, BakeConfig(resolution=64, directions=9, finetune_steps=1), device="cpu")
    write_json(run / "baked.json", {"format": 99})
    with pytest.raises(ValueError, match="baked.json"):
        load_baked(run, "cpu")
    (run / "baked.json").unlink()
    with pytest.raises(FileNotFoundError, match="nerfgen bake"):
        load_baked(run, "cpu")
    with pytest.raises(ValueError, match="resolution"):
        bake(run, BakeConfig(resolution=100), device="cpu")


def test_the_viewer_draws_a_bake_and_refines_its_stills_from_the_field(trained):
    pytest.importorskip("viser")
    import time

    from nerfgen.viewer.frames import ViewCamera, viser_pose
    from nerfgen.viewer.gate import ModelGate
    from nerfgen.viewer.render_loop import ClientRenderer, RenderSettings
    from nerfgen.viewer.scene import ViewerScene

    run_dir, _ = trained
    scene = ViewerScene.from_run(load_baked(run_dir, "cpu"))
    assert "normals" not in scene.modes
    frames = []
    renderer = ClientRenderer(lambda image: None, scene, ModelGate(), RenderSettings(max_side=48), frames.append)
    try:
        wxyz, position = viser_pose(scene.orbit.cameras(4).c2w[1])
        renderer.update(ViewCamera(tuple(position.tolist()), tuple(wxyz.tolist()), 0.7, 1.0))
        end = time.monotonic() + 60
        while not renderer.settled() and time.monotonic() < end:
            time.sleep(0.02)
        assert renderer.settled()
    finally:
        renderer.stop()
    stills = [f for f in frames if f.still]
    assert [f.refined for f in stills][-2:] == [False, True]  # the bake's still, then the field's


def test_previews_march_coarser_and_draw_the_same_picture(trained):
    """Moving frames (``preview=True``): the bake's and the field's coarser march, both close to
    their full renders; the field's preview shares its grid, which stays as it was."""
    from nerfgen.render.occupancy import PREVIEW_STEP
    from nerfgen.viewer.frames import render_view

    run_dir, _ = trained
    baked, field = load_baked(run_dir, "cpu"), load_run(run_dir, "cpu")
    cams = field.orbit_cameras(3, 48)
    for run in (baked, field):
        assert run.traits.previews
        for i in range(3):
            full, fast = run.render(cams, i), run.render(cams, i, preview=True)
            assert psnr(fast.rgb, full.rgb) > 28, (type(run).__name__, i)
    sampler = field.model.sampler
    coarse = sampler.preview()
    assert coarse.step_size == sampler.step_size * PREVIEW_STEP and coarse.binaries is sampler.binaries
    assert coarse.early_stop_eps > sampler.early_stop_eps and sampler.step_size == sampler.preview().step_size / 2
    grid = baked.baked
    rays_o, rays_d = torch.zeros(1, 3), torch.zeros(1, 3)
    rays_o[0, 2], rays_d[0, 2] = 3.0, -1.0  # down through the middle of the scene
    assert int(grid.render(rays_o, rays_d, preview=True).shaded[0]) <= int(grid.render(rays_o, rays_d).shaded[0])
    band = render_view(baked, cams.__class__(c2w=cams.c2w[:1], fx=cams.fx[:1], fy=cams.fy[:1], cx=cams.cx[:1],
                                             cy=cams.cy[:1], width=48, height=48), baked.background, preview=True)
    assert torch.equal(band.rgb, baked.render(cams, 0, preview=True).rgb)
