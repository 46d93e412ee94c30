"""The refinement of a generated scene, per object in its layout (nerfgen.generate.scene_refine):
each object's coarse cloud becomes a solid signed-distance surface, the scene resumes
mid-refinement into the same objects, a finished coarse scene is refined by ``--resume --refine``,
and the live run (the viewer's) shows the refined objects. The export of a refined scene (its
``scene.glb``) is not tested here, its calibration renders would double the test's time:
``bench/crisp_generate.py --refine`` makes and meshes one."""

from __future__ import annotations

import pytest
import torch

import nerfgen
from nerfgen.api import scene_generation
from nerfgen.config import load_config
from nerfgen.fields import SDFField
from nerfgen.generate.config import GenerateConfig
from nerfgen.generate.crisp import edge_width, semi_transparent_share
from tests.conftest import interrupt_after
from tests.test_generate_refine import TINY
from tests.toy_priors import PromptBoxesPrior

PROMPT = "a red cube to the left of a blue cube"
RED, BLUE = (0.85, 0.1, 0.1), (0.1, 0.25, 0.88)
HALF = 0.45
SCENE = {**TINY, "guidance": 1.0, "shading": {"albedo_fraction": 1.0}, "lambda_orientation": 0.0,
         "scene": {"settle_every": 0, "grid_resolution": 32, "batch": 1, "object_batch": 1},
         "refine": {**TINY["refine"], "render_step_size": 0.01}}  # a coarser march than an object's: two objects and a scene


def toy_prior(layout) -> PromptBoxesPrior:
    """Each object's phrase: its cube in its own frame; the scene prompt: the cubes where the layout puts them."""
    colours = {"a red cube": RED, "a blue cube": BLUE}
    targets = {o.prompt: [((0.0, 0.0, 0.0), HALF, colours[o.prompt])] for o in layout.objects}
    targets[layout.prompt] = [(o.center, HALF * o.size, colours[o.prompt]) for o in layout.objects]
    return PromptBoxesPrior(targets, fov=40.0, resolution=16)


def _alpha(run_dir) -> torch.Tensor:
    """``[4, 48, 48]`` opacity of the scene run in ``run_dir`` from four sides of its orbit."""
    run = nerfgen.load_run(run_dir, device="cpu")
    cameras = run.orbit_cameras(4, 48, 48)
    return torch.stack([run.render(cameras, i).opacity for i in range(4)])


def test_a_scene_refines_per_object_and_resumes_midway_into_the_same_scene(tmp_path):
    layout = nerfgen.solve_layout(nerfgen.parse_scene(PROMPT))
    prior = toy_prior(layout)
    config = load_config(GenerateConfig, None, SCENE)
    whole = scene_generation(None, tmp_path / "whole", config, loaded_prior=prior, layout=layout)
    live = whole.task.live_run(tmp_path / "whole")  # what the viewer shows while it trains
    coarse_field = live.model.objects[0].field
    whole.run()
    task = whole.task
    assert task.switched == 2 and all(isinstance(o.field, SDFField) for o in task.model.objects)
    assert isinstance(live.model.objects[0].field, SDFField) and live.model.objects[0].field is not coarse_field
    assert float(task.model.objects[0].field.beta) == pytest.approx(TINY["refine"]["beta"][1])

    # a plain scene run, refined afterwards (--resume --refine), interrupted halfway through the refinement
    split = tmp_path / "split"
    plain = load_config(GenerateConfig, None, {**SCENE, "refine": {**SCENE["refine"], "enabled": False}})
    scene_generation(None, split, plain, loaded_prior=prior, layout=layout).run()
    coarse = _alpha(split)
    interrupt_after(scene_generation(None, split, resume=True, loaded_prior=prior, refine={"enabled": True}), 4)
    resumed = scene_generation(None, split, resume=True, loaded_prior=prior)
    assert resumed.step == 4 and resumed.task.switched == 2
    assert all(isinstance(o.field, SDFField) for o in resumed.task.model.objects)
    resumed.run()
    for name, value in task.model.state_dict().items():
        assert torch.equal(resumed.task.model.state_dict()[name], value), name
    assert resumed.task.layout.to_dict() == task.layout.to_dict()

    run = nerfgen.load_run(split, device="cpu")  # the run directory holds the refined objects
    assert run.info.model.field == "sdf" and isinstance(run.model.objects[1].field, SDFField)
    refined = _alpha(split)
    shares = semi_transparent_share(coarse), semi_transparent_share(refined)
    widths = edge_width(coarse), edge_width(refined)
    assert shares[1] <= 0.15 and shares[1] < shares[0], f"semi-transparent share coarse, refined: {shares}"
    assert widths[1] <= 2.0 and widths[1] < widths[0], f"edge width coarse, refined: {widths}"
    out = run.render_objects(run.orbit_cameras(1, 32, 32), 0)
    for k in range(2):
        assert float((out.masks[..., k] > 0.5).sum()) > 5, f"object {k} is not seen in the refined scene"
