"""The training engine on its own terms: a task of a new kind (an auto-decoder with two optimisers
and per-ray latent codes on a stratified sampler), hooks, budgets, clipping, logs and checkpoints."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from nerfgen.cameras import Rays
from nerfgen.engine import Engine, EngineConfig, Env, Schedule, StepContext, StepResult, Task
from nerfgen.fields import Conditioning
from nerfgen.fields.vanilla import VanillaField, VanillaFieldConfig
from nerfgen.files import read_tensors, write_tensors
from nerfgen.render import StratifiedConfig, StratifiedSampler, render_rays

BOX = torch.tensor([-1.0, -1, -1, 1, 1, 1])
COLOURS = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.2, 0.9]])
"""What latent code 0 and latent code 1 must render inside the box."""


class AutoDecoder(Task):
    """Two scenes in one conditioned field: the rays of scene ``k`` carry latent code ``k`` (a free
    parameter, DeepSDF's auto-decoder) and must render ``COLOURS[k]`` where they cross the box;
    the field and the codes have an optimiser each."""

    name = "autodecoder"

    def build(self, env: Env) -> None:
        self.generator = env.generator
        self.field = VanillaField(BOX, VanillaFieldConfig(depth=2, width=32, skip=1, position_frequencies=2,
                                                          direction_frequencies=1, shape_latent=2,
                                                          appearance_latent=2))
        self.codes = torch.nn.Parameter(0.1 * torch.randn(2, 4))
        self.sampler = StratifiedSampler(BOX, StratifiedConfig(n_samples=16))
        self.field_opt = torch.optim.Adam(self.field.parameters(), lr=5e-3)
        self.code_opt = torch.optim.Adam([self.codes], lr=5e-2)

    def optimizers(self):
        return {"field": (self.field_opt, Schedule(10, 0.5)), "codes": (self.code_opt, Schedule())}

    def rays(self, n: int) -> tuple[Rays, torch.Tensor]:
        scene = torch.randint(0, 2, (n,), generator=self.generator)
        xy = torch.rand(n, 2, generator=self.generator) * 1.6 - 0.8
        origins = torch.cat([xy, torch.full((n, 1), 3.0)], -1)
        return Rays(origins, torch.tensor([[0.0, 0, -1]]).expand(n, 3).contiguous()), scene

    def step(self, ctx: StepContext) -> StepResult:
        rays, scene = self.rays(256)
        out = render_rays(self.field, self.sampler, rays, torch.ones(3), Conditioning(self.codes[scene]),
                          stratified=True)
        loss = (out.rgb - COLOURS[scene]).square().mean()
        self.field_opt.zero_grad(set_to_none=True)  # the codes' step below backpropagates into both
        ctx.optimize("codes", loss)
        self.field_opt.step()
        return StepResult({"loss": float(loss.detach())}, {"rays": 256})

    def save(self, output: Path, step: int, seconds: float) -> None:
        write_tensors(output / "model.safetensors", {**self.field.state_dict(), "codes": self.codes.detach()})

    def load(self, output: Path) -> None:
        tensors = read_tensors(output / "model.safetensors")
        with torch.no_grad():
            self.codes.copy_(tensors.pop("codes"))
        self.field.load_state_dict(tensors)

    def render(self, k: int) -> torch.Tensor:
        rays, _ = self.rays(64)
        with torch.no_grad():
            return render_rays(self.field, self.sampler, rays, torch.ones(3), Conditioning(self.codes[k:k + 1])).rgb


def test_a_new_kind_of_task_trains_two_scenes_into_one_conditioned_field(tmp_path):
    reports = []
    engine = Engine(EngineConfig(max_steps=150, checkpoint_every=50, eval_every=0, log_every=10), AutoDecoder(),
                    tmp_path / "run")
    summary = engine.run([reports.append])
    assert summary.steps == 150 and [r.step for r in reports] == list(range(1, 151))
    assert summary.totals["rays"] == 150 * 256 and reports[-1].rates["rays/s"] > 0
    assert summary.figures["loss"] < 0.01
    for k in range(2):
        assert (engine.task.render(k) - COLOURS[k]).abs().mean() < 0.06, f"scene {k}"
    assert engine.optimizers["field"][0].param_groups[0]["lr"] == pytest.approx(5e-3 * 0.5**3)  # decayed 3 times
    assert engine.optimizers["codes"][0].param_groups[0]["lr"] == pytest.approx(5e-2)  # constant
    events = list((tmp_path / "run" / "tensorboard").iterdir())
    assert events and json.loads((tmp_path / "run" / "state.json").read_text())["step"] == 150

    again = Engine(EngineConfig(max_steps=150), AutoDecoder(), tmp_path / "run", resume=True)
    assert again.step == 150 and again.finished and torch.equal(again.task.codes, engine.task.codes)


def test_the_budget_in_seconds_ends_the_run_and_drives_the_schedule(tmp_path):
    engine = Engine(EngineConfig(max_steps=10**9, max_seconds=1.0, checkpoint_every=0, eval_every=0), AutoDecoder(),
                    tmp_path / "run")
    summary = engine.run()
    assert summary.seconds >= 1.0 and 0 < summary.steps < 10**9  # ended by the budget, not the steps (no upper
    # bound on the time: under load one step of even this tiny task can take seconds)
    assert engine.optimizers["field"][0].param_groups[0]["lr"] == pytest.approx(5e-3 * 0.5**3)


def test_gradients_are_clipped_to_the_configured_norm(tmp_path):
    engine = Engine(EngineConfig(max_steps=1, grad_clip=1e-3, checkpoint_every=0, eval_every=0), AutoDecoder(),
                    tmp_path / "run")
    engine.train_step()
    norm = torch.cat([engine.task.codes.grad.flatten()]).norm()
    assert float(norm) <= 1e-3 * 1.001


def test_a_diverging_loss_stops_the_run_with_the_step(tmp_path):
    class Diverges(AutoDecoder):
        def step(self, ctx):
            return StepResult({"loss": float("nan")})

    with pytest.raises(FloatingPointError, match="autodecoder diverged at step 1"):
        Engine(EngineConfig(max_steps=5), Diverges(), tmp_path / "run").run()


def test_a_damaged_checkpoint_is_passed_over_for_the_one_before(tmp_path, capsys):
    Engine(EngineConfig(max_steps=4, checkpoint_every=2), AutoDecoder(), tmp_path / "run").run()
    folders = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))
    assert [f.name for f in folders] == ["step-000000002", "step-000000004"]
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step-000000004"
    state = json.loads((folders[1] / "state.json").read_text())
    state["step"] = 2  # a disk that lost the tensors' write, or an edit by hand
    (folders[1] / "state.json").write_text(json.dumps(state))
    resumed = Engine(EngineConfig(max_steps=4), AutoDecoder(), tmp_path / "run", resume=True)
    assert resumed.step == 2
    said = capsys.readouterr().err
    assert "step-000000004: its files are from different steps" in said and "at step 2 from" in said
    assert json.loads((tmp_path / "run" / "state.json").read_text())["step"] == 2  # the top shows what resumed
    (folders[0] / "train_state.safetensors").write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="no checkpoint reads back whole.*step-000000004.*step-000000002"):
        Engine(EngineConfig(max_steps=4), AutoDecoder(), tmp_path / "run", resume=True)


def test_each_step_is_checkpointed_once(tmp_path):
    saved = []

    class Counts(AutoDecoder):
        def save(self, output, step, seconds):
            saved.append(step)
            super().save(output, step, seconds)

    Engine(EngineConfig(max_steps=4, checkpoint_every=2, eval_every=0), Counts(), tmp_path / "run").run()
    assert saved == [2, 4]  # the last periodic checkpoint is the final one
    Engine(EngineConfig(max_steps=5, checkpoint_every=2, eval_every=0), Counts(), tmp_path / "more").run()
    assert saved == [2, 4, 2, 4, 5]
    Engine(EngineConfig(max_steps=5), Counts(), tmp_path / "more", resume=True).run()
    assert saved == [2, 4, 2, 4, 5]  # resumed at its end: nothing to write again


def test_checkpoints_keep_the_newest_two_and_come_by_time_as_well(tmp_path):
    class Slow(AutoDecoder):
        def step(self, ctx):
            time.sleep(0.03)  # > checkpoint_seconds / 2: a checkpoint every second step however fast the rest runs
            return super().step(ctx)

    config = EngineConfig(max_steps=12, checkpoint_every=3, checkpoint_seconds=0, eval_every=0)
    Engine(config, AutoDecoder(), tmp_path / "steps").run()
    assert sorted(p.name for p in (tmp_path / "steps" / "checkpoints").iterdir()) == [
        "latest", "step-000000009", "step-000000012"]
    timed = EngineConfig(max_steps=12, checkpoint_every=0, checkpoint_seconds=0.05, keep_checkpoints=5, eval_every=0)
    engine = Engine(timed, Slow(), tmp_path / "time")
    engine.run()
    steps = sorted(int(p.name[5:]) for p in (tmp_path / "time" / "checkpoints").glob("step-*"))
    assert len(steps) == 5 and steps[-1] == 12 and all(b - a <= 4 for a, b in zip(steps, steps[1:])), steps


def test_a_run_of_the_earlier_layout_resumes_and_moves_to_step_folders(tmp_path):
    run = tmp_path / "run"
    Engine(EngineConfig(max_steps=4, checkpoint_every=2, eval_every=0), AutoDecoder(), run).run()
    newest = run / "checkpoints" / "step-000000004"
    for name in ("train_state.safetensors", "state.json", "model.safetensors"):  # as earlier versions left a run
        shutil.copyfile(newest / name, run / name)
    shutil.rmtree(run / "checkpoints")
    resumed = Engine(EngineConfig(max_steps=6, checkpoint_every=2, eval_every=0), AutoDecoder(), run, resume=True)
    assert resumed.step == 4
    resumed.run()
    assert not (run / "train_state.safetensors").exists()  # retired by the first new checkpoint
    assert json.loads((run / "checkpoints" / "step-000000006" / "state.json").read_text())["step"] == 6


def test_a_write_cut_short_leaves_the_last_checkpoint_as_it_was(tmp_path, monkeypatch):
    run = tmp_path / "run"
    Engine(EngineConfig(max_steps=2, checkpoint_every=2, eval_every=0), AutoDecoder(), run).run()

    class Cut(Exception):
        pass

    def cut(*args, **kwargs):
        raise Cut

    engine = Engine(EngineConfig(max_steps=4, checkpoint_every=2, eval_every=0), AutoDecoder(), run, resume=True)
    monkeypatch.setattr("nerfgen.engine.loop.write_json", cut)  # the write of state.json fails
    with pytest.raises(Cut):
        engine.run()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000000002"]
    monkeypatch.undo()
    assert Engine(EngineConfig(max_steps=4), AutoDecoder(), run, resume=True).step == 2


def test_threads_zero_means_all_cores_even_after_a_run_that_asked_for_one(tmp_path):
    from nerfgen.engine.loop import ALL_CORES

    Engine(EngineConfig(max_steps=1, threads=1, eval_every=0), AutoDecoder(), tmp_path / "one")
    assert torch.get_num_threads() == 1
    Engine(EngineConfig(max_steps=1, eval_every=0), AutoDecoder(), tmp_path / "all")
    assert torch.get_num_threads() == ALL_CORES
