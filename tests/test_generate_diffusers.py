"""Stable Diffusion and DeepFloyd IF priors on tiny random pipelines built from configs, saved to
folders and loaded through the same code path as real weights (no weights can be downloaded)."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers", reason="the generate extra (diffusers, transformers) is not installed")

from nerfgen.api import generation, scene_generation  # noqa: E402
from nerfgen.cli import main  # noqa: E402
from nerfgen.config import load_config  # noqa: E402
from nerfgen.generate.config import GenerateConfig  # noqa: E402
from nerfgen.prior import Views, build_prior  # noqa: E402
from nerfgen.prior.random_pipelines import save_random_deepfloyd_if, save_random_stable_diffusion  # noqa: E402
from nerfgen.kinds import load_run  # noqa: E402

SMALL = {"max_steps": 3, "eval_every": 0, "orbit_frames": 0, "camera": {"resolution": 16},
         "grid": {"resolution": 16, "render_step_size": 0.02},
         "field_options": {"log2_table_size": 12, "n_levels": 4, "max_resolution": 64}}


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return save_random_stable_diffusion(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def tiny_if(tmp_path_factory):
    return save_random_deepfloyd_if(tmp_path_factory.mktemp("if") / "tiny-if")


def _views(n: int) -> Views:
    return Views(torch.zeros(n), torch.zeros(n), torch.full((n,), 3.0))


def test_stable_diffusion_prior_loads_from_a_folder_and_scores_images(tiny_sd):
    prior = build_prior("stable-diffusion", tiny_sd, "cpu")
    assert prior.resolution == 32 and not prior.camera_conditioned and prior.alphas_cumprod.shape == (1000,)
    prompt = prior.encode_prompt("a red ceramic teapot", "blurry")
    assert prompt.cond.shape == (1, 77, 32) and not torch.allclose(prompt.cond, prompt.uncond)
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = prior.sds_loss(images, prompt, _views(2), guidance=100.0, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and images.grad.abs().sum() > 0 and torch.isfinite(images.grad).all()
    assert all(p.grad is None for p in prior.parameters())  # the pipeline stays frozen


def test_v_prediction_checkpoints_score_noise(tiny_sd, tmp_path):
    import shutil

    folder = tmp_path / "tiny-sd-v"
    shutil.copytree(tiny_sd, folder)
    scheduler = folder / "scheduler" / "scheduler_config.json"
    scheduler.write_text(json.dumps({**json.loads(scheduler.read_text()), "prediction_type": "v_prediction"}))
    prior = build_prior("stable-diffusion", folder, "cpu")
    assert prior.v_prediction
    z_t, t = torch.randn(1, 4, 16, 16), torch.tensor([500])
    emb = prior.encode_prompt("a cube").cond
    v = prior.unet(z_t, t, encoder_hidden_states=emb).sample
    ab = prior.alphas_cumprod[500]
    assert torch.allclose(prior.predict_noise(z_t, t, emb, _views(1)), ab.sqrt() * v + (1 - ab).sqrt() * z_t, atol=1e-5)


def test_missing_weights_give_one_error_saying_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="not on this machine.*hf download.*--model DIR"):
        build_prior("stable-diffusion", "nobody/no-such-model", "cpu")
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        build_prior("stable-diffusion", tmp_path, "cpu")
    with pytest.raises(FileNotFoundError, match="not on this machine"):
        build_prior("deepfloyd-if", "nobody/no-such-if", "cpu")


def test_a_few_generation_steps_with_tiny_stable_diffusion_change_the_field(tiny_sd, tmp_path):
    prior = build_prior("stable-diffusion", tiny_sd, "cpu")
    cfg = load_config(GenerateConfig, None, {**SMALL, "prior": "stable-diffusion", "background": "mlp",
                                             "guidance": 100.0})
    engine = generation("a red ceramic teapot", tmp_path / "teapot", cfg, loaded_prior=prior)
    run = engine.task
    assert len(run.prompt_for.embeddings) == 4  # view-dependent prompts for a text-only prior
    before = {k: v.clone() for k, v in run.model.field.state_dict().items()}
    bg_before = [p.detach().clone() for p in run.background.parameters()]
    stats = [engine.train_step() for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(s.figures["loss"])) for s in stats)
    changed = [k for k, v in run.model.field.state_dict().items() if not torch.equal(v, before[k])]
    assert "encoding.table" in changed and any(k.startswith("density_net") for k in changed)
    assert any(not torch.equal(a, b) for a, b in zip(bg_before, run.background.parameters()))


def test_deepfloyd_if_prior_scores_pixels(tiny_if):
    prior = build_prior("deepfloyd-if", tiny_if, "cpu")
    assert prior.resolution == 32 and prior.channels == 3
    prompt = prior.encode_prompt("A Red Cube", "")
    assert torch.equal(prompt.cond, prior.encode_prompt("a red cube").cond)  # lower-cased like IF's pipeline
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = prior.sds_loss(images, prompt, _views(2), guidance=20.0, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and images.grad.abs().sum() > 0
    assert prior.predict_noise(images.detach(), out.timesteps, prompt.cond.expand(2, -1, -1), _views(2)).shape == (2, 3, 32, 32)


def test_generate_command_runs_a_prompt_file_one_prompt_after_another(tiny_sd, tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({**SMALL, "prior": "stable-diffusion", "max_steps": 2, "orbit_frames": 2,
                                  "orbit_resolution": 16, "preview_resolution": 16}))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\na blue sphere\n")
    args = ["generate", "--prompts", str(prompts), "--config", str(config), "--model", str(tiny_sd),
            "--output", str(tmp_path / "runs"), "--device", "cpu", "--seed", "3"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["prompt"] for line in lines] == ["a red cube", "a blue sphere"]
    for name in ("00-a-red-cube", "01-a-blue-sphere"):
        run_dir = tmp_path / "runs" / name
        assert (run_dir / "orbit.mp4").is_file() and (run_dir / "preview.png").is_file()
        state, info = json.loads((run_dir / "state.json").read_text()), json.loads((run_dir / "run.json").read_text())
        assert state["step"] == 2 and info["config"]["seed"] == 3
        load_run(run_dir)
    with pytest.raises(SystemExit) as exit_info:  # existing runs are not overwritten by accident
        main(args)
    assert exit_info.value.code == 2 and "already holds a run" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["stable-diffusion", "deepfloyd-if"])
def test_scene_generation_scores_the_scene_and_each_object_with_text_only_priors(kind, tiny_sd, tiny_if, tmp_path):
    prior = build_prior(kind, tiny_sd if kind == "stable-diffusion" else tiny_if, "cpu")
    cfg = load_config(GenerateConfig, None, {**SMALL, "prior": kind, "guidance": 20.0,
                                             "scene": {"batch": 1, "object_batch": 1, "grid_resolution": 16}})
    engine = scene_generation("a red cube on a blue sphere", tmp_path / "scene", cfg, loaded_prior=prior)
    task = engine.task
    assert [o.prompt for o in task.layout.objects] == ["a red cube", "a blue sphere"]
    assert len(task.scene_prompt.embeddings) == 4 and all(len(p.embeddings) == 4 for p in task.object_prompts)
    before = [{k: v.clone() for k, v in o.field.state_dict().items()} for o in task.model.objects]
    stats = [engine.train_step() for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(s.figures["loss"])) for s in stats)
    assert {"sds_scene", "sds_0", "sds_1"} <= set(stats[0].figures)
    for obj, was in zip(task.model.objects, before):
        assert not torch.equal(obj.field.state_dict()["encoding.table"], was["encoding.table"])


def test_generate_scene_command_writes_resumes_and_takes_a_layout(tiny_sd, tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({**SMALL, "prior": "stable-diffusion", "max_steps": 2, "orbit_frames": 2,
                                  "orbit_resolution": 16, "preview_resolution": 16, "mesh_resolution": 0,
                                  "scene": {"batch": 1, "object_batch": 1, "grid_resolution": 16}}))
    out = tmp_path / "stack"
    base = ["--config", str(config), "--model", str(tiny_sd), "--device", "cpu"]

    def run(args: list[str]) -> int:
        with pytest.raises(SystemExit) as exit_info:
            main(["generate", *args, *base])
        return exit_info.value.code

    assert run(["a green cone to the left of a yellow torus", "--scene", "--output", str(out)]) == 0
    line = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")][-1]
    assert line["objects"] == ["a green cone", "a yellow torus"] and line["steps"] == 2
    layout = json.loads((out / "layout.json").read_text())
    assert [o["name"] for o in layout["objects"]] == ["cone", "torus"]
    assert layout["objects"][0]["center"][1] < layout["objects"][1]["center"][1]  # the cone on the left (-y)
    assert run(["--scene", "--resume", "--max-steps", "3", "--output", str(out)]) == 0
    assert json.loads((out / "state.json").read_text())["step"] == 3 and load_run(out).info.kind == "scene"
    layout["objects"][1]["center"] = [0.0, 0.9, 0.0]
    (tmp_path / "desk.json").write_text(json.dumps(layout))
    assert run(["--layout", str(tmp_path / "desk.json"), "--output", str(tmp_path / "desk")]) == 0
    assert load_run(tmp_path / "desk").layout.objects[1].center[1] == pytest.approx(0.9)  # settling moves it in z only
    (tmp_path / "bad.json").write_text(json.dumps({"objects": [{"prompt": "a cube", "center": [0, 0], "size": 1}]}))
    assert run(["--layout", str(tmp_path / "bad.json"), "--output", str(tmp_path / "bad")]) == 2
    assert "bad.json" in capsys.readouterr().err
    assert run(["on a blue sphere", "--scene", "--output", str(tmp_path / "none")]) == 2
    assert "'on' has no object before it" in capsys.readouterr().err
