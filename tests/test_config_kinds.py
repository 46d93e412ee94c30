"""Each kind of run's config takes only the keys that kind reads: keys it ignores are errors that
say why, typos get "did you mean", shipped configs build, and run directories written by earlier
versions (whose run.json holds keys now rejected) still load and resume."""

from __future__ import annotations

import re

import pytest

import nerfgen
from nerfgen.api import generation, reconstruction
from nerfgen.config import (ConfigWarning, build_config, config_path, config_to_dict, load_config, parse_overrides,
                            shipped_configs, stored_config)
from nerfgen.dynamic.config import DynamicConfig
from nerfgen.files import read_json, write_json
from nerfgen.gan.config import GanConfig
from nerfgen.generalize.config import GeneralizeConfig
from nerfgen.generate.config import GenerateConfig, SceneConfig
from nerfgen.prior.train import PriorTrainConfig
from nerfgen.reconstruct import TrainConfig
from nerfgen.render import ModelSpec
from tests.dynamic_data import dnerf_folder
from tests.toy_priors import BoxTargetPrior

KINDS = {"demo": [TrainConfig], "ngp": [TrainConfig], "ngp_cuda": [TrainConfig], "ngp_fine": [TrainConfig],
         "ngp_unbounded": [TrainConfig], "llff": [TrainConfig], "vanilla": [TrainConfig],
         "generate_builtin": [GenerateConfig, SceneConfig], "generate_stable_diffusion": [GenerateConfig, SceneConfig],
         "generate_deepfloyd_if": [GenerateConfig, SceneConfig], "graf": [GanConfig], "giraffe": [GanConfig],
         "giraffe_64_cuda": [GanConfig], "giraffe_128_cuda": [GanConfig],
         "prior": [PriorTrainConfig], "kplanes": [DynamicConfig], "deform": [DynamicConfig],
         "nsff": [DynamicConfig], "pixelnerf": [GeneralizeConfig], "ibrnet": [GeneralizeConfig]}
"""The config classes each shipped config is for."""

TINY = {"max_steps": 4, "checkpoint_every": 2, "eval_every": 0, "orbit_frames": 0, "mesh_resolution": 0,
        "preview_resolution": 16,
        "camera": {"fov": [40.0, 40.0], "resolution": 16, "distance": [3.2, 3.6]},
        "grid": {"resolution": 16, "render_step_size": 0.02},
        "field_options": {"log2_table_size": 10, "n_levels": 2, "max_resolution": 32}}


@pytest.mark.parametrize("name", shipped_configs())
def test_every_shipped_config_builds_for_its_kind(name):
    assert name in KINDS, f"shipped config {name}.yaml: say which kind of run it is for in KINDS"
    for cls in KINDS[name]:
        load_config(cls, config_path(name))


@pytest.mark.parametrize(("key", "value", "why"), [
    ("contraction", "linf", "generation runs keep the object inside its box; 'contraction' applies to reconstruction only"),
    ("proposal", {"n_proposal_samples": [64, 32]},
     "generation runs march an occupancy grid; 'proposal' applies to reconstruction only"),
    ("ndc", {"enabled": True}, "generation runs orbit the object; 'ndc' (forward-facing captures) applies to "
                               "reconstruction only"),
])
def test_generation_rejects_the_reconstruction_keys_it_never_read(tmp_path, key, value, why):
    for cls in (GenerateConfig, SceneConfig):
        with pytest.raises(ValueError) as info:
            build_config(cls, {key: value}, "configs/x.yaml")
        assert str(info.value) == f"configs/x.yaml: {key}: {why}"
        assert key not in config_to_dict(cls())
    path = tmp_path / "x.yaml"
    path.write_text(f"max_steps: 10\n{key}: {value!r}\n".replace("'", '"'))
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}: {key}: generation runs")):
        load_config(GenerateConfig, path)
    with pytest.raises(ValueError, match="^" + re.escape(f"command line: {key}: generation runs")):
        generation("a cube", tmp_path / "run", loaded_prior=BoxTargetPrior(0.45, 40.0, 16), **{key: value})
    assert not (tmp_path / "run").exists()


def test_samplers_each_kind_cannot_use_fail_validation_not_the_model(tmp_path):
    with pytest.raises(ValueError, match=r"^x.yaml: sampler: expected one of 'occupancy', 'stratified', got 'proposal'"):
        build_config(GenerateConfig, {"sampler": "proposal"}, "x.yaml")
    assert build_config(GenerateConfig, {"sampler": "stratified"}, "x.yaml").model_spec().sampler == "stratified"
    with pytest.raises(ValueError) as info:
        build_config(SceneConfig, {"sampler": "stratified"}, "x.yaml")
    assert str(info.value) == ("x.yaml: sampler: scene runs march one occupancy grid per object; 'stratified' "
                               "applies to single-object generation only")
    with pytest.raises(ValueError, match="sampler: scene runs march one occupancy grid per object"):
        nerfgen.scene_generation("a red cube on a blue cube", tmp_path / "scene", sampler="stratified",
                                 loaded_prior=BoxTargetPrior(0.45, 40.0, 16))
    assert not (tmp_path / "scene").exists()


def test_prior_training_rejects_eval_every_it_never_ran():
    with pytest.raises(ValueError, match="^x.yaml: eval_every: prior training has no periodic evaluation"):
        build_config(PriorTrainConfig, {"eval_every": 100}, "x.yaml")
    with pytest.raises(ValueError, match="^x.yaml: guide.eval_every: the guidance model has no periodic evaluation"):
        build_config(PriorTrainConfig, {"guide": {"eval_every": 100}}, "x.yaml")
    plain = config_to_dict(PriorTrainConfig())
    assert "eval_every" not in plain and "eval_every" not in plain["guide"]
    assert PriorTrainConfig().eval_every == 0  # what the engine reads: never evaluate
    old = {"eval_every": 0, **plain, "guide": {**plain["guide"], "eval_every": 0}}  # an earlier config.json
    with pytest.warns(ConfigWarning, match="left out 'eval_every', 'guide.eval_every'"):
        assert stored_config(PriorTrainConfig, old, "run/config.json") == PriorTrainConfig()


@pytest.mark.parametrize(("cls", "overrides", "expected"), [
    (TrainConfig, ["max_step=5"], "unknown option 'max_step' for TrainConfig; did you mean 'max_steps'?"),
    (TrainConfig, ["depht.weight=0.1"], "unknown option 'depht' for TrainConfig; did you mean 'depth'?"),
    (TrainConfig, ["depth.wieght=0.1"], "unknown option 'depth.wieght' for DepthLossConfig; did you mean 'depth.weight'?"),
    (TrainConfig, ["render_step_size=0.01"],
     "unknown option 'render_step_size' for TrainConfig; did you mean 'grid.render_step_size'?"),
    (GenerateConfig, ["lambda_opactiy=1"], "unknown option 'lambda_opactiy' for GenerateConfig; did you mean "
                                           "'lambda_opacity'?"),
    (GenerateConfig, ["scene.objectbatch=1"], "unknown option 'scene.objectbatch' for SceneOptions; did you mean "
                                              "'scene.object_batch'?"),
    (GanConfig, ["lr_gen=0.1"], "unknown option 'lr_gen' for GanConfig; did you mean 'lr_generator'?"),
    (PriorTrainConfig, ["unet.chanels=8"], "unknown option 'unet.chanels' for UNetConfig; did you mean 'unet.channels'?"),
    (GeneralizeConfig, ["pixelnerf.feild.width=8"], "unknown option 'pixelnerf.feild' for PixelNeRFConfig; did you "
                                                    "mean 'pixelnerf.field'?"),
])
def test_set_typos_get_did_you_mean(cls, overrides, expected):
    with pytest.raises(ValueError) as info:
        load_config(cls, None, parse_overrides(overrides))
    assert str(info.value) == f"command line: {expected}"


def test_api_keyword_typos_get_did_you_mean(tmp_path):
    with pytest.raises(ValueError, match=re.escape("unknown option 'max_step' for TrainConfig; did you mean 'max_steps'?")):
        reconstruction(tmp_path / "no-data", tmp_path / "run", "ngp", max_step=3)
    with pytest.raises(ValueError, match=re.escape("unknown option 'gudance' for GenerateConfig; did you mean 'guidance'?")):
        generation("a cube", tmp_path / "gen", loaded_prior=BoxTargetPrior(0.45, 40.0, 16), gudance=3.0)


def _as_an_earlier_version_wrote_it(run_dir):
    """Put back into ``run_dir/run.json``'s config the keys earlier versions stored for generation."""
    info = read_json(run_dir / "run.json")
    spec = config_to_dict(ModelSpec())
    info["config"].update(contraction=spec["contraction"], proposal=spec["proposal"], ndc=spec["ndc"])
    write_json(run_dir / "run.json", info)


def test_an_earlier_versions_generation_run_still_loads_and_resumes(tmp_path):
    prior = BoxTargetPrior(half=0.45, fov=40.0, resolution=16)
    config = load_config(GenerateConfig, None, {**TINY, "max_steps": 2, "sampler": "stratified",
                                                "stratified": {"n_samples": 16}})
    generation("a red cube", tmp_path / "run", config, loaded_prior=prior).run()
    _as_an_earlier_version_wrote_it(tmp_path / "run")

    with pytest.warns(ConfigWarning, match="run.json: left out 'contraction', 'proposal', 'ndc': written by an "
                                           "earlier nerfgen"):
        resumed = generation(None, tmp_path / "run", resume=True, loaded_prior=prior, max_steps=4)
    assert resumed.step == 2 and resumed.config.sampler == "stratified" and resumed.config.max_steps == 4
    assert resumed.run().steps == 4
    run = nerfgen.load_run(tmp_path / "run", device="cpu")
    assert run.info.kind == "generation" and run.info.model.sampler == "stratified"
    assert "contraction" not in read_json(tmp_path / "run" / "run.json")["config"]  # written anew without them


def test_an_earlier_versions_scene_run_still_loads(tmp_path):
    prior = BoxTargetPrior(half=0.45, fov=40.0, resolution=16)
    config = load_config(SceneConfig, None, {**TINY, "max_steps": 1, "scene": {"batch": 1, "object_batch": 0,
                                                                               "settle_every": 0, "grid_resolution": 16}})
    nerfgen.scene_generation("a red cube on a blue cube", tmp_path / "scene", config, loaded_prior=prior).run()
    _as_an_earlier_version_wrote_it(tmp_path / "scene")
    with pytest.warns(ConfigWarning, match="left out 'contraction', 'proposal', 'ndc'"):
        run = nerfgen.load_run(tmp_path / "scene", device="cpu")
        assert isinstance(run, nerfgen.SceneRun) and run.config.scene.grid_resolution == 16
    with pytest.warns(ConfigWarning, match="left out 'contraction'"):
        resumed = nerfgen.scene_generation(None, tmp_path / "scene", resume=True, loaded_prior=prior, max_steps=2)
    assert resumed.step == 1


def test_dynamic_and_static_reconstruction_each_reject_what_only_the_other_reads(tmp_path):
    for key, value in (("forward_facing", True), ("ndc", {"enabled": True}), ("proposal", {"n_proposal_samples": [8]})):
        with pytest.raises(ValueError, match=f"^x.yaml: {key}: dynamic runs .*applies to static reconstruction only"):
            build_config(DynamicConfig, {key: value}, "x.yaml")
        assert key not in config_to_dict(DynamicConfig())
    with pytest.raises(ValueError, match="^x.yaml: sampler: expected one of 'occupancy', 'stratified', got 'proposal'"):
        build_config(DynamicConfig, {"sampler": "proposal"}, "x.yaml")
    with pytest.raises(ValueError, match="^x.yaml: field: expected one of 'kplanes', 'deform', 'nsff', got 'ngp'"):
        build_config(DynamicConfig, {"field": "ngp"}, "x.yaml")
    with pytest.raises(ValueError, match="^x.yaml: field: 'kplanes' takes a time; it trains on a capture whose frames"):
        build_config(TrainConfig, {"field": "kplanes"}, "x.yaml")
    with pytest.raises(ValueError, match="^x.yaml: grid.time_bins: grids per bin of time are for dynamic runs"):
        build_config(TrainConfig, {"grid": {"time_bins": 4}}, "x.yaml")
    assert build_config(DynamicConfig, {"grid": {"time_bins": 4}}, "x.yaml").grid.time_bins == 4
    timed = dnerf_folder(tmp_path / "timed", {"train": 3, "val": 1, "test": 1}, size=8)
    with pytest.raises(ValueError, match=re.escape(f"{timed}: its frames carry times, so it trains a dynamic run: give "
                                                   "a DynamicConfig")):
        nerfgen.train(timed, tmp_path / "run", TrainConfig())
    assert not (tmp_path / "run").exists()
