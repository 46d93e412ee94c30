"""The refinement stage of text-to-3D (nerfgen.generate.refine): a signed-distance field fitted to
the coarse density and refined by score distillation ends solid with crisp edges, resumes
mid-refinement into the same object, and works with the diffusers priors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerfgen.api import generation
from nerfgen.cameras import Views, view_cameras
from nerfgen.config import load_config
from nerfgen.fields import SDFField
from nerfgen.fields.sdf import laplace_density
from nerfgen.generate.config import GenerateConfig
from nerfgen.generate.crisp import edge_width, semi_transparent_share
from nerfgen.generate.refine import annealed, eikonal_loss, sample_grid, signed_distance_grid
from nerfgen.kinds import load_run
from tests.conftest import interrupt_after
from tests.toy_priors import BoxTargetPrior

TINY = {"max_steps": 2, "eval_every": 0, "checkpoint_every": 2, "orbit_frames": 0, "mesh_resolution": 0,
        "max_seconds": 0.0, "seed": 0, "background": "white", "preview_resolution": 32,
        "camera": {"fov": [40.0, 40.0], "resolution": 16, "distance": [3.2, 3.6], "batch": 1},
        "grid": {"resolution": 16, "render_step_size": 0.02},
        "field_options": {"log2_table_size": 12, "n_levels": 4, "max_resolution": 64},
        "refine": {"enabled": True, "steps": 4, "resolution": 24, "batch": 1, "beta": [0.02, 0.006],
                   "render_step_size": 0.006, "grid_resolution": 32, "init_steps": 20, "init_resolution": 32,
                   "eikonal_points": 1024,
                   "field_options": {"log2_table_size": 12, "n_levels": 6, "max_resolution": 128}}}


def _alpha(run_dir) -> torch.Tensor:
    """``[4, 64, 64]`` opacity of the run in ``run_dir`` from four sides."""
    run = load_run(run_dir)
    views = Views(torch.full((4,), 15.0), torch.tensor([0.0, 90.0, 180.0, 270.0]), torch.full((4,), 3.4))
    cameras = view_cameras(views, torch.full((4,), 40.0), 64)
    return torch.stack([run.render(cameras, i).opacity for i in range(4)])


def test_signed_distance_of_a_contoured_ball_and_the_laplace_density():
    n, cell = 41, 0.05
    axis = (torch.arange(n) - 20) * cell
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    r = (x**2 + y**2 + z**2).sqrt()
    sd = torch.from_numpy(signed_distance_grid((r < 0.6).numpy(), cell))
    near = (r - 0.6).abs() < 0.3
    assert (sd[near] - (r - 0.6)[near]).abs().max() < cell, "distance to the contoured sphere"
    box = torch.tensor([-1.0, -1, -1, 1, 1, 1])
    points = torch.tensor([[0.3, 0.0, 0.0], [0.0, -0.65, 0.1]])
    assert torch.allclose(sample_grid(sd, box, points), points.norm(dim=-1) - 0.6, atol=cell)
    beta = 0.01
    sigma = laplace_density(torch.tensor([-1e6, -1.0, -0.05, 0.0, 0.05, 1.0, 1e6]), beta)
    assert torch.isfinite(sigma).all() and (sigma[:-1] >= sigma[1:]).all(), "falls from inside to outside"
    assert sigma[1] == pytest.approx(1 / beta) and sigma[3] == pytest.approx(0.5 / beta) and sigma[5] < 1e-30
    assert annealed(0.02, 0.004, 0.0) == pytest.approx(0.02) and annealed(0.02, 0.004, 1.0) == pytest.approx(0.004)
    assert annealed(0.02, 0.004, 0.5) == pytest.approx(math.sqrt(0.02 * 0.004))
    ball = lambda p: p.norm(dim=-1) - 0.5  # noqa: E731 - a true distance: no Eikonal penalty
    assert eikonal_loss(ball, torch.rand(64, 3) + 0.2) < 1e-6
    assert eikonal_loss(lambda p: 2 * ball(p), torch.rand(64, 3) + 0.2) == pytest.approx(1.0, abs=1e-3)


def test_refinement_turns_the_coarse_cloud_solid_and_resumes_midway_into_the_same_object(tmp_path):
    prior = BoxTargetPrior(half=0.45, fov=40.0, resolution=16)
    config = load_config(GenerateConfig, None, TINY)
    whole = generation("a red cube", tmp_path / "whole", config, loaded_prior=prior)
    whole.run()
    assert isinstance(whole.task.model.field, SDFField) and whole.task.switched == 2

    # the same object from a plain generation run, refined afterwards (--resume --refine) and
    # interrupted halfway through the refinement
    split = tmp_path / "split"
    plain = load_config(GenerateConfig, None, {**TINY, "refine": {**TINY["refine"], "enabled": False}})
    generation("a red cube", split, plain, loaded_prior=prior).run()
    coarse = _alpha(split)
    refine = {"enabled": True}
    interrupt_after(generation(None, split, resume=True, loaded_prior=prior, refine=refine), 4)
    resumed = generation(None, split, resume=True, loaded_prior=prior)
    assert resumed.step == 4 and isinstance(resumed.task.model.field, SDFField) and resumed.task.switched == 2
    resumed.run()
    for name, value in whole.task.model.state_dict().items():
        assert torch.equal(resumed.task.model.state_dict()[name], value), name

    refined = _alpha(split)  # the run directory holds the refined field; load_run opens it
    assert load_run(split).info.model.field == "sdf"
    shares = semi_transparent_share(coarse), semi_transparent_share(refined)
    widths = edge_width(coarse), edge_width(refined)
    # measured: coarse 0.54 share, 2.9 px; refined 0.04, 1.0 px
    assert shares[1] <= 0.15 and shares[1] < shares[0], f"semi-transparent share coarse, refined: {shares}"
    assert widths[1] <= 2.0 and widths[1] < widths[0], f"edge width coarse, refined: {widths}"
    area = ((coarse > 0.5).float().mean(), (refined > 0.5).float().mean())
    assert 0.5 < area[1] / area[0] < 2, f"the refined object keeps the coarse one's size: {area}"


def test_refinement_with_a_tiny_stable_diffusion_pipeline(tmp_path):
    pytest.importorskip("diffusers", reason="the generate extra (diffusers, transformers) is not installed")
    from nerfgen.prior import build_prior
    from nerfgen.prior.random_pipelines import save_random_stable_diffusion

    prior = build_prior("stable-diffusion", save_random_stable_diffusion(tmp_path / "tiny-sd"), "cpu")
    options = {**TINY, "prior": "stable-diffusion", "guidance": 100.0,
               "refine": {**TINY["refine"], "steps": 2, "init_steps": 5, "resolution": 16}}
    config = load_config(GenerateConfig, None, options)
    engine = generation("a red ceramic teapot", tmp_path / "teapot", config, loaded_prior=prior)
    figures = [engine.train_step().figures for _ in range(3)]
    assert "fit_error" in figures[2] and np.isfinite(float(figures[2]["sds"]))
    field = engine.task.model.field
    before = {k: v.clone() for k, v in field.state_dict().items()}
    engine.train_step()
    changed = [k for k, v in field.state_dict().items() if not torch.equal(v, before[k])]
    assert "encoding.table" in changed and any(k.startswith("sdf_net") for k in changed)


def test_refine_flags_and_a_scenes_refinement_budget(tmp_path):
    from nerfgen.api import scene_generation
    from nerfgen.cli import build_parser
    from nerfgen.generate.cli import _options
    from nerfgen.generate.scene_refine import RefinedSceneTask

    parse = build_parser().parse_args
    assert _options(parse(["generate", "a red cube", "--output", "x"]))["refine"] is None
    assert _options(parse(["generate", "a red cube", "--output", "x", "--refine"]))["refine"] == {"enabled": True}
    assert _options(parse(["generate", "--output", "x", "--resume", "--refine-steps", "50"]))["refine"] == {
        "enabled": True, "steps": 50}

    # a scene is refined per object (tests/test_scene_refine.py), on a budget of its own when the config gives one
    config = load_config(GenerateConfig, None, {**TINY, "max_seconds": 60.0,
                                                "scene": {"refine_max_seconds": 30.0},
                                                "refine": {**TINY["refine"], "max_seconds": 10.0}})
    engine = scene_generation("a red cube on a blue sphere", tmp_path / "scene", config, loaded_prior=BoxTargetPrior())
    assert isinstance(engine.task, RefinedSceneTask) and engine.task.config.refine.max_seconds == 30.0
    assert engine.config.max_steps == TINY["max_steps"] + TINY["refine"]["steps"] and engine.config.max_seconds == 90.0
    task = engine.task  # the refinement ends on its own budget, whatever the coarse stage left of the engine's
    assert not task.spent(3, 80.0) and not engine.finished, "the coarse stage is not the refinement"
    task.switched, task.switched_seconds = 2, 10.0
    assert not task.spent(3, 39.0) and task.spent(3, 40.0) and task.spent(6, 11.0)
    kept = scene_generation("a red cube on a blue sphere", tmp_path / "kept", config, loaded_prior=BoxTargetPrior(),
                            refine={"max_seconds": 5.0})
    assert kept.task.config.refine.max_seconds == 5.0 and kept.config.max_seconds == 65.0
