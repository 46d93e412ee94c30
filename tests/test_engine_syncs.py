"""Training does not wait for the device each step: every kind of run, stepped by the engine under
:class:`~nerfgen.engine.syncs.SyncCounter`, reads values back to the host once per log interval
(the figures, all at once), plus the reads that are host-side by design (named below, with why).

On a CPU every tensor is a host tensor, so the counter sees every ``.item()`` / ``float()`` /
``.tolist()``; the allowed sites are those that read tensors which live on the host on a GPU run
too (a draw from the run's CPU generator, an optimiser's CPU step counter) or that are inherent
to the sampler (the occupancy grid's marching step is chosen on the host, once per grid update).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from nerfgen.scenes import render_dataset

import nerfgen.engine.progress as bar
from nerfgen.engine import Engine, EngineConfig, Schedule, StepResult, Task
from nerfgen.engine.syncs import SyncCounter

STEPS, LOG_EVERY = 9, 4

HOST_SITES = {
    "torch/optim/": "optimisers' step counters are CPU tensors unless capturable",
    "nerfgen/generate/task.py:choose_shading": "a draw from the run's CPU generator",
    "nerfgen/generate/task.py:__call__": "prompt suffixes from the views, drawn on the host",
    "nerfgen/cameras/poses.py:look_at": "the GAN's prior cameras are built on the host",
    "nerfgen/render/occupancy.py:occupancy_fraction": "once per grid update: the host picks the marching step",
    "nerfgen/render/occupancy.py:_visible": "early termination asks once whether one pass holds every ray's samples "
                                            "(the rounds it saves each wait on the device for their sizes)",
    "nerfgen/prior/guide_train.py:step": "the prior's images and indices live on the host (numpy views)",
    "tests/toy_priors.py": "the toy priors stand in for real ones and draw their targets on the host",
}


def device_reads(sites: list[str]) -> list[str]:
    return [s for s in sites if not any(s.startswith(h) for h in HOST_SITES)]


def reads_by_step(engine: Engine, monkeypatch) -> list[list[str]]:
    """Run ``engine`` for STEPS steps (log_every LOG_EVERY, no progress lines after the first):
    the device reads made in each step (index 0: the first step)."""
    monkeypatch.setattr(bar, "PLAIN_EVERY", math.inf)
    engine.config.log_every, engine.config.max_steps = LOG_EVERY, STEPS
    marks = []
    with SyncCounter() as syncs:
        engine.run([lambda report: marks.append(len(syncs.reads))])
    starts = [0] + marks[:-1]
    return [device_reads(syncs.reads[a:b]) for a, b in zip(starts, marks)]


def check(per_step: list[list[str]]) -> None:
    """After the first step (which also shows the figures on the progress bar), one read at each
    log step (the figures) and none in between."""
    for step, reads in enumerate(per_step[1:], start=2):
        expected = 1 if step % LOG_EVERY == 0 else 0
        assert len(reads) == expected, f"step {step}: {len(reads)} reads, expected {expected}: {Counter(reads)}"


@pytest.fixture(scope="module")
def tabletop(tmp_path_factory) -> Path:
    return render_dataset(tmp_path_factory.mktemp("syncs") / "tabletop", width=32, height=32, n_train=6, n_val=1,
                          n_test=1, samples_per_side=1)


def test_reconstruction(tabletop, tmp_path, monkeypatch):
    from nerfgen.api import reconstruction

    engine = reconstruction(tabletop, tmp_path / "run", "ngp", eval_every=0, checkpoint_every=0, threads=1,
                            target_samples=2048, init_rays=256, device="cpu",
                            field_options={"log2_table_size": 12, "n_levels": 4, "max_resolution": 64},
                            grid={"resolution": 16, "update_every": 2, "warmup_steps": 0})
    check(reads_by_step(engine, monkeypatch))


def test_gan(tmp_path, monkeypatch):
    from nerfgen.gan.data import ImageCollection
    from nerfgen.gan.task import GanTask
    from nerfgen.scenes.gan_sets import render_clevr
    from tests.test_gan import tiny_config

    data = render_clevr(tmp_path / "clevr", 8, 16, objects=(1, 2), seed=0, workers=1)
    for model in ("giraffe", "graf"):
        cfg = tiny_config(model, threads=1, device="cpu")
        task = GanTask(cfg, ImageCollection.from_folder(data, cfg.size, cfg.held_out), str(data))
        check(reads_by_step(Engine(cfg, task, tmp_path / model), monkeypatch))


TINY_GENERATION = {
    "eval_every": 0, "checkpoint_every": 0, "orbit_frames": 0, "mesh_resolution": 16, "seed": 0, "device": "cpu",
    "threads": 1, "guidance": 1.0, "camera": {"fov": [40.0, 40.0], "resolution": 16, "batch": 2},
    "grid": {"resolution": 16, "render_step_size": 0.02, "update_every": 2, "warmup_steps": 0},
    "shading": {"albedo_fraction": 0.0}, "field_options": {"log2_table_size": 12, "n_levels": 4, "max_resolution": 64},
}


def test_generation(tmp_path, monkeypatch):
    from nerfgen.api import generation
    from nerfgen.config import load_config
    from nerfgen.generate import GenerateConfig
    from tests.toy_priors import BoxTargetPrior

    cfg = load_config(GenerateConfig, None, TINY_GENERATION)
    engine = generation("a red cube", tmp_path / "cube", cfg, loaded_prior=BoxTargetPrior(resolution=16))
    check(reads_by_step(engine, monkeypatch))


def test_scene_generation(tmp_path, monkeypatch):
    import nerfgen
    from nerfgen.api import scene_generation
    from nerfgen.config import load_config
    from nerfgen.generate import GenerateConfig
    from tests.test_scene_generate import PROMPT, toy_targets
    from tests.toy_priors import PromptBoxesPrior

    layout = nerfgen.solve_layout(nerfgen.parse_scene(PROMPT))
    cfg = load_config(GenerateConfig, None, {**TINY_GENERATION, "lambda_orientation": 0.0,
                                             "scene": {"settle_every": 0, "grid_resolution": 16, "batch": 1,
                                                       "object_batch": 1}})
    prior = PromptBoxesPrior(toy_targets(layout), fov=40.0, resolution=16)
    engine = scene_generation(None, tmp_path / "scene", cfg, loaded_prior=prior, layout=layout)
    check(reads_by_step(engine, monkeypatch))


def test_prior_and_its_guide(tmp_path, monkeypatch):
    from nerfgen.prior.guide_train import GuideTask, GuideTrainConfig
    from nerfgen.prior.train import PriorTask, PriorTrainConfig
    from tests.test_prior_builtin import TINY_UNET
    from tests.test_prior_guide import TINY, _toy_views

    views, text = _toy_views(4, 2)
    prior = PriorTrainConfig(unet=TINY_UNET, batch_size=4, checkpoint_every=0, threads=1)
    check(reads_by_step(Engine(prior, PriorTask(prior, views, text), tmp_path / "prior"), monkeypatch))
    guide = GuideTrainConfig(model=TINY, batch_size=4, checkpoint_every=0, threads=1)
    check(reads_by_step(Engine(guide, GuideTask(guide, views, text, tmp_path), tmp_path / "guide"), monkeypatch))


# -- the figures as the engine reads them ------------------------------------------------------
class Diverging(Task):
    """A parameter pulled towards 1; its loss (a tensor, never read by the task) turns NaN at step
    ``nan_at``."""

    name = "toy"

    def __init__(self, nan_at: int = 6) -> None:
        self.nan_at = nan_at

    def build(self, env) -> None:
        self.x = torch.nn.Parameter(torch.zeros(3))
        self.opt = torch.optim.SGD([self.x], lr=0.1)
        self.saved: list[int] = []

    def optimizers(self):
        return {"x": (self.opt, Schedule())}

    def step(self, ctx) -> StepResult:
        loss = (self.x - 1).square().sum() * (math.nan if ctx.step + 1 == self.nan_at else 1.0)
        ctx.optimize("x", loss)
        return StepResult({"loss": loss.detach(), "x0": self.x[0].detach(), "steps": torch.tensor(ctx.step + 1)},
                          {"items": 3})

    def save(self, output, step, seconds) -> None:
        self.saved.append(step)

    def load(self, output) -> None:
        pass


def test_a_loss_that_turns_nan_ends_the_run_at_the_next_read_naming_its_step(tmp_path):
    task = Diverging()
    engine = Engine(EngineConfig(max_steps=20, log_every=4, checkpoint_every=5, eval_every=0), task, tmp_path / "run")
    with pytest.raises(FloatingPointError, match=r"toy diverged at step 6 \(loss nan; seen at step 8\)"):
        engine.run()
    assert engine.step == 8 and task.saved == [5]  # the checkpoint at step 5 came before the NaN
    with pytest.raises(FloatingPointError, match="at step 6"):  # again: a viewer's read would not hide it
        engine.settle()


def test_a_checkpoint_reads_the_losses_first(tmp_path):
    task = Diverging()
    engine = Engine(EngineConfig(max_steps=20, log_every=100, checkpoint_every=7, eval_every=0), task,
                    tmp_path / "run")
    with pytest.raises(FloatingPointError, match="diverged at step 6.*seen at step 7"):
        engine.run()
    assert task.saved == []  # no checkpoint of a diverged run


def test_hooks_and_the_summary_see_numbers_read_once_a_step_only_when_looked_at(tmp_path):
    seen = []
    engine = Engine(EngineConfig(max_steps=6, log_every=100, checkpoint_every=0, eval_every=0), Diverging(nan_at=0),
                    tmp_path / "run")

    def hook(report) -> None:
        if report.step % 2 == 0:
            with SyncCounter() as syncs:
                figures = dict(report.figures)
                again = report.figures["loss"]
            seen.append((figures, again, len(syncs.reads)))

    summary = engine.run([hook])
    assert [f["steps"] for f, _, _ in seen] == [2, 4, 6] and all(reads == 1 for _, _, reads in seen)
    assert all(isinstance(f["loss"], float) and isinstance(f["steps"], int) and f["loss"] == again
               for f, again, _ in seen)
    assert summary.figures["steps"] == 6 and isinstance(summary.figures["x0"], float)
    assert summary.figures["x0"] == pytest.approx(1 - 0.8**6)
