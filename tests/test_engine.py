"""Reconstruction on the engine: training, checkpoints, resume, evaluation and video on the built-in
tabletop scene."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch
from nerfgen.scenes import render_dataset

from nerfgen.api import reconstruction
from nerfgen.config import config_path, load_config
from nerfgen.engine.metrics import psnr, ssim
from nerfgen.reconstruct import TrainConfig
from nerfgen.reconstruct.evaluate import evaluate
from nerfgen.render import OccGridConfig
from nerfgen.kinds import load_run
from tests.conftest import interrupt_after

SMALL = dict(field_options={"log2_table_size": 14, "n_levels": 8, "max_resolution": 256},
             grid=OccGridConfig(resolution=32), target_samples=8192, eval_every=0, checkpoint_every=0)


@pytest.fixture(scope="module")
def tabletop(tmp_path_factory):
    return render_dataset(tmp_path_factory.mktemp("scene") / "tabletop", width=48, height=48,
                          n_train=30, n_val=2, n_test=4, samples_per_side=1)


def test_training_reduces_loss_and_writes_a_loadable_run(tabletop, tmp_path):
    engine = reconstruction(tabletop, tmp_path / "run", TrainConfig(max_steps=60, **SMALL))
    first = [engine.train_step().figures["loss"] for _ in range(5)]
    summary = engine.run()
    assert summary.steps == 60
    assert summary.figures["loss"] < 0.6 * sum(first) / len(first)
    run = load_run(tmp_path / "run")
    for name, value in engine.task.model.state_dict().items():
        assert torch.equal(run.model.state_dict()[name], value), name
    report = evaluate(tmp_path / "run", "test", limit=2)
    assert report["views"] == 2 and report["psnr"] > 12
    assert json.loads((tmp_path / "run" / "eval_test.json").read_text())["psnr"] == report["psnr"]


def test_a_step_sized_by_the_pixel_footprint_is_recorded_and_rendered_with(tabletop, tmp_path):
    grid = {"pixel_step": 1.4, "diagonal_steps": 1024, "min_diagonal_steps": 16}
    engine = reconstruction(tabletop, tmp_path / "run", TrainConfig(max_steps=2, **{**SMALL, "grid": grid}))
    engine.run()
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["model"]["grid"]["render_step_size"]
    data = engine.task.dataset
    box = data.aabb
    footprint = data.cameras.footprint((box[:3] + box[3:]) / 2)
    assert recorded == pytest.approx(1.4 * footprint)  # 48 px views: between 16 and 1024 steps
    assert engine.task.model.sampler.step_size == pytest.approx(recorded)
    assert load_run(tmp_path / "run").model.sampler.step_size == pytest.approx(recorded)
    resumed = reconstruction(None, tmp_path / "run", resume=True, max_steps=3)
    assert resumed.task.model.sampler.step_size == pytest.approx(recorded)


def test_same_seed_same_run_and_resume_continues(tabletop, tmp_path):
    a = reconstruction(tabletop, tmp_path / "a", TrainConfig(max_steps=12, **SMALL))
    a.run()
    b = reconstruction(tabletop, tmp_path / "b", TrainConfig(max_steps=12, **SMALL))
    b.run()
    for (name, va), vb in zip(a.task.model.state_dict().items(), b.task.model.state_dict().values()):
        assert torch.equal(va, vb), f"{name} differs between two runs with one seed"
    for name in ("run.json", "model.safetensors", "state.json"):  # a kill before the checkpoint was mirrored
        (tmp_path / "a" / name).unlink()
    c = reconstruction(None, tmp_path / "a", resume=True, max_steps=20)
    assert c.step == 12
    assert torch.equal(c.task.model.field.encoding.table, a.task.model.field.encoding.table)
    c.run()
    assert json.loads((tmp_path / "a" / "state.json").read_text())["step"] == 20


def test_a_resumed_run_is_the_run_that_was_never_stopped(tabletop, tmp_path):
    """Interrupted after a checkpoint and resumed, training ends with the same weights, bit for bit:
    model, optimiser, random states and the adaptive batch size all come back."""
    config = TrainConfig(max_steps=40, **{**SMALL, "checkpoint_every": 20})
    whole = reconstruction(tabletop, tmp_path / "whole", config)
    whole.run()

    interrupt_after(reconstruction(tabletop, tmp_path / "split", config), 20)  # just after the checkpoint
    resumed = reconstruction(None, tmp_path / "split", resume=True)
    assert resumed.step == 20
    resumed.run()
    for name, value in whole.task.model.state_dict().items():
        assert torch.equal(resumed.task.model.state_dict()[name], value), name


def test_orbit_video_has_the_frames(tabletop, tmp_path):
    reconstruction(tabletop, tmp_path / "run", TrainConfig(max_steps=3, **SMALL)).run()
    run = load_run(tmp_path / "run")
    out = tmp_path / "orbit.mp4"
    assert run.render_orbit(out, frames=8, width=32, height=32) == 8
    frames = iio.imread(out)
    assert frames.shape[0] == 8
    depth = tmp_path / "depth.gif"
    run.render_orbit(depth, frames=3, width=32, height=32, depth=True)
    assert iio.imread(depth).shape[0] == 3


def test_metrics_match_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    a = torch.rand(40, 50, 3, generator=g)
    b = (a + 0.1 * torch.randn(40, 50, 3, generator=g)).clamp(0, 1)
    ref = metrics.structural_similarity(a.numpy(), b.numpy(), channel_axis=-1, data_range=1.0,
                                        gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert abs(ssim(a, b) - ref) < 2e-3
    assert abs(psnr(a, b) - metrics.peak_signal_noise_ratio(a.numpy(), b.numpy(), data_range=1.0)) < 1e-3


def test_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("field: ngp\nlearning_rate: 3\n")
    with pytest.raises(ValueError, match="bad.yaml.*learning_rate"):
        load_config(TrainConfig, bad)
    bad.write_text("grid: {resolution: [}\n")
    with pytest.raises(ValueError, match="bad.yaml: malformed YAML"):
        load_config(TrainConfig, bad)
    assert load_config(TrainConfig, None, {"max_steps": 5}).max_steps == 5


@pytest.mark.parametrize("text,expected", [
    ("field_options: {log2_tabel_size: 12}\n", r"bad.yaml: field_options: unknown option 'log2_tabel_size' for NGPFieldConfig"),
    ("background: whte\n", r"bad.yaml: background: expected one of 'auto', 'random', 'white', 'black', got 'whte'"),
    ("grid: {resolution: many}\n", r"bad.yaml: grid.resolution: expected an integer, got 'many'"),
    ("sampler: proposl\n", r"bad.yaml: sampler: expected one of 'occupancy', 'stratified', 'proposal'"),
    ("field_options: {implementation: cuda}\n", r"bad.yaml: field_options: implementation: expected one of 'auto'"),
    ("device: gpu\n", r"bad.yaml: device: expected one of 'auto', 'cpu', 'cuda'"),
])
def test_every_key_and_enum_value_is_checked_when_the_config_is_built(tmp_path, text, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ValueError, match=expected):
        load_config(TrainConfig, bad)


def test_shipped_configs_are_found_by_name():
    assert config_path("ngp").read_text() == (Path(__file__).resolve().parents[1] / "configs" / "ngp.yaml").read_text()
    with pytest.raises(FileNotFoundError, match="shipped: .*demo.*ngp"):
        config_path("ngpp")


def test_optimizer_state_survives_repeated_resumes(tmp_path):
    """Safetensors sorts names ("10." before "2."): state must stay with its parameter across
    save -> load -> save -> load, with more than ten parameters of different shapes."""
    from nerfgen.engine import checkpoint as ckpt
    from nerfgen.files import read_tensors, write_tensors

    params = [torch.nn.Parameter(torch.randn(i + 1, 2)) for i in range(12)]
    opt = torch.optim.Adam(params)
    sum((p**2).sum() for p in params).backward()
    opt.step()
    for cycle in range(2):
        write_tensors(tmp_path / "opt.safetensors", ckpt.optimizer_tensors(opt))
        fresh = torch.optim.Adam(params)
        ckpt.load_optimizer_tensors(fresh, read_tensors(tmp_path / "opt.safetensors"))
        for p in params:
            assert torch.equal(fresh.state[p]["exp_avg"], opt.state[p]["exp_avg"]), f"cycle {cycle}"
        opt = fresh


@pytest.mark.parametrize("name", ["ngp", "ngp_fine", "ngp_cuda", "vanilla", "demo"])
def test_shipped_training_configs_build_a_model(name):
    from nerfgen.engine import resolve_device
    from nerfgen.render import RadianceModel

    config = load_config(TrainConfig, config_path(name))
    model = RadianceModel(config.model_spec(), torch.tensor([-1.0, -1, -1, 1, 1, 1]))
    out = model.field(torch.rand(8, 3) * 2 - 1, torch.nn.functional.normalize(torch.randn(8, 3), dim=-1))
    assert out.sigma.shape == (8,) and out.rgb.shape == (8, 3)
    assert resolve_device(config.device) in ("cpu", "cuda")


def test_run_directories_of_earlier_versions_still_load_and_render(tabletop, tmp_path):
    """Before run.json, a run said what it was in config.json ({"train", "scene"}) and stored the
    grid under ``estimator.``: such a run opens and renders what it rendered then."""
    from safetensors.torch import load_file, save_file

    reconstruction(tabletop, tmp_path / "new", TrainConfig(max_steps=5, **SMALL)).run()
    new = load_run(tmp_path / "new")
    old = tmp_path / "old"
    old.mkdir()
    info = json.loads((tmp_path / "new" / "run.json").read_text())
    o = info["orbit"]
    scene = {"aabb": info["aabb"], "cascades": info["cascades"], "data": info["data"], "white_background": True,
             "train_background": "random", "width": info["width"], "height": info["height"],
             "orbit": {"center": o["center"], "up": o["up"], "radius": o["radius"], "height": o["rise"], "fx": o["fx"],
                       "fy": o["fy"], "width": o["width"], "height_px": o["height"]}}
    train = {**info["config"], "val_every": 0}
    (old / "config.json").write_text(json.dumps({"train": train, "scene": scene}))
    tensors = {k.replace("sampler.", "estimator."): v for k, v in load_file(tmp_path / "new" / "model.safetensors").items()}
    save_file(tensors, old / "model.safetensors")
    legacy = load_run(old)
    assert legacy.info.kind == "reconstruction" and legacy.info.background == "white"
    assert legacy.info.orbit == new.info.orbit
    cams = new.orbit_cameras(2, 16, 16)
    assert torch.equal(legacy.render(cams, 1).rgb, new.render(cams, 1).rgb)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        reconstruction(None, old, resume=True)
