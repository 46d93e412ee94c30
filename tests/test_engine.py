"""Training, checkpoints, resume, evaluation and video on the built-in tabletop scene."""

from __future__ import annotations

import json

import imageio.v3 as iio
import pytest
import torch

from nerfgen.data import load_dataset
from nerfgen.engine.config import TrainConfig, load_config
from nerfgen.engine.evaluate import evaluate
from nerfgen.engine.metrics import psnr, ssim
from nerfgen.engine.model import load_model
from nerfgen.engine.trainer import Trainer
from nerfgen.engine.video import render_orbit
from nerfgen.render import OccGridConfig
from scenes import render_dataset

SMALL = dict(field_options={"log2_table_size": 14, "n_levels": 8, "max_resolution": 256},
             grid=OccGridConfig(resolution=32), target_samples=8192, val_every=0, checkpoint_every=0)


@pytest.fixture(scope="module")
def tabletop(tmp_path_factory):
    return render_dataset(tmp_path_factory.mktemp("scene") / "tabletop", width=48, height=48,
                          n_train=30, n_val=2, n_test=4, samples_per_side=1)


def test_training_reduces_loss_and_writes_a_loadable_run(tabletop, tmp_path):
    ds = load_dataset(tabletop, "train")
    trainer = Trainer(TrainConfig(max_steps=60, **SMALL), ds, tmp_path / "run")
    first = [trainer.train_step()[0] for _ in range(5)]
    summary = trainer.train()
    assert summary.steps == 60
    assert summary.final_loss < 0.6 * sum(first) / len(first)
    run = load_model(tmp_path / "run")
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(run.model.state_dict()[name], value), name
    report = evaluate(tmp_path / "run", "test", limit=2)
    assert report["views"] == 2 and report["psnr"] > 12
    assert json.loads((tmp_path / "run" / "eval_test.json").read_text())["psnr"] == report["psnr"]


def test_same_seed_same_run_and_resume_continues(tabletop, tmp_path):
    ds = load_dataset(tabletop, "train")
    a = Trainer(TrainConfig(max_steps=12, **SMALL), ds, tmp_path / "a")
    a.train()
    b = Trainer(TrainConfig(max_steps=12, **SMALL), ds, tmp_path / "b")
    b.train()
    for (name, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), f"{name} differs between two runs with one seed"
    c = Trainer(TrainConfig(max_steps=20, **SMALL), ds, tmp_path / "a", resume=True)
    assert c.step == 12
    assert torch.equal(c.model.field.encoding.table, a.model.field.encoding.table)
    c.train()
    assert json.loads((tmp_path / "a" / "state.json").read_text())["step"] == 20


def test_orbit_video_has_the_frames(tabletop, tmp_path):
    ds = load_dataset(tabletop, "train")
    Trainer(TrainConfig(max_steps=3, **SMALL), ds, tmp_path / "run").train()
    out = tmp_path / "orbit.mp4"
    assert render_orbit(tmp_path / "run", out, frames=8, width=32, height=32) == 8
    frames = iio.imread(out)
    assert frames.shape[0] == 8
    depth = tmp_path / "depth.gif"
    render_orbit(tmp_path / "run", depth, frames=3, width=32, height=32, depth=True)
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
        load_config(bad)
    bad.write_text("grid: {resolution: [}\n")
    with pytest.raises(ValueError, match="bad.yaml: malformed YAML"):
        load_config(bad)
    assert load_config(None, {"max_steps": 5}).max_steps == 5


def test_optimizer_state_survives_repeated_resumes(tmp_path):
    """Safetensors sorts names ("10." before "2."): state must stay with its parameter across
    save -> load -> save -> load, with more than ten parameters of different shapes."""
    from nerfgen.engine import checkpoint as ckpt

    params = [torch.nn.Parameter(torch.randn(i + 1, 2)) for i in range(12)]
    opt = torch.optim.Adam(params)
    sum((p**2).sum() for p in params).backward()
    opt.step()
    for cycle in range(2):
        ckpt.write_tensors(tmp_path / "opt.safetensors", ckpt.optimizer_tensors(opt))
        fresh = torch.optim.Adam(params)
        ckpt.load_optimizer_tensors(fresh, ckpt.read_tensors(tmp_path / "opt.safetensors"))
        for p in params:
            assert torch.equal(fresh.state[p]["exp_avg"], opt.state[p]["exp_avg"]), f"cycle {cycle}"
        opt = fresh


@pytest.mark.parametrize("name", ["ngp", "ngp_fine", "ngp_cuda", "vanilla", "demo"])
def test_shipped_training_configs_build_a_model(name):
    from pathlib import Path

    from nerfgen.engine.config import resolve_device
    from nerfgen.engine.model import RadianceModel

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml")
    model = RadianceModel(config, torch.tensor([-1.0, -1, -1, 1, 1, 1]))
    sigma, rgb = model.field(torch.rand(8, 3) * 2 - 1, torch.nn.functional.normalize(torch.randn(8, 3), dim=-1))
    assert sigma.shape == (8,) and rgb.shape == (8, 3)
    assert resolve_device(config.device) in ("cpu", "cuda")
