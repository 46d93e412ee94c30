"""The stages of a refined generation run (:mod:`nerfgen.generate.refine` for an object,
:mod:`nerfgen.generate.scene_refine` for a scene): the coarse steps, then the refinement of the
signed-distance fields fitted to the coarse ones, on one engine (:func:`engine_budget`), each stage
with its own budget (:class:`RefinementStages`), and what the refinement steps share (the annealed
Laplace scale and timesteps, the refined model, the renders' resolution)."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from nerfgen.engine import Schedule, StepContext, StepResult
from nerfgen.render import ModelSpec
from nerfgen.runs import RunInfo

REFINED_FIELD = "sdf"
"""The registered field a refined run holds."""


def annealed(start: float, end: float, done: float) -> float:
    """Geometric interpolation from ``start`` to ``end`` at fraction ``done`` (clamped to [0, 1])."""
    done = min(max(done, 0.0), 1.0)
    return math.exp(math.log(start) + (math.log(end) - math.log(start)) * done)


def refined_spec(config) -> ModelSpec:
    """The refined model of a generation ``config``: the SDF field, marched by an occupancy grid
    with ``refine.render_step_size`` steps."""
    r = config.refine
    grid = dataclasses.replace(config.grid, resolution=r.grid_resolution, render_step_size=r.render_step_size,
                               coarse_while_dense=False)
    return ModelSpec(REFINED_FIELD, dict(r.field_options), "occupancy", grid, config.stratified)


def engine_budget(config):
    """The engine's config of a refined run: ``max_steps + refine.steps`` steps and, when both
    stages have a time budget, the sum of both."""
    r = config.refine
    seconds = config.max_seconds + r.max_seconds if config.max_seconds > 0 and r.max_seconds > 0 else 0.0
    return dataclasses.replace(config, max_steps=config.max_steps + r.steps, max_seconds=seconds)


def refine_t_max(config, done: float) -> float:
    """The refinement's largest timestep at fraction ``done`` of its stage (``refine.t_max`` annealed linearly)."""
    lo, hi = config.refine.t_max
    return lo + (hi - lo) * min(done, 1.0)


def refine_render_config(config):
    """``config`` with its training renders at ``refine.resolution`` (what the refinement renders)."""
    return dataclasses.replace(config, camera=dataclasses.replace(config.camera, resolution=config.refine.resolution))


class RefinementStages:
    """The two stages of a refined run, mixed into a generation task (object or scene): the task's
    own steps until the coarse budget is spent, then :meth:`begin_refinement` once and
    :meth:`refine_step` to the end. Each stage has its own budget (steps and, when set, seconds)
    and its own fraction done. The task provides ``sdf_spec`` (its refined model), ``refine_optimizer``,
    :meth:`begin_refinement`, :meth:`refine_step` and :meth:`_attach`; the state records the step
    the refinement began at, so a run resumes into the stage it was in."""

    switched: int | None = None  # the step the refinement began at
    switched_seconds: float = 0.0  # and the run's training seconds then

    def _build_refined(self, make, parameters=lambda module: module.parameters()):
        """Set ``sdf_spec`` and return ``make()`` on the task's device, drawn from its own seeded
        stream (the coarse stage draws what an unrefined run draws), with the refinement's Adam over
        ``parameters(module)``."""
        cfg = self.config
        self.sdf_spec = refined_spec(cfg)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            module = make().to(self.device)
        self.refine_optimizer = torch.optim.Adam(parameters(module), lr=cfg.refine.lr, betas=(0.9, 0.99), eps=1e-15)
        self.switched, self.switched_seconds = None, 0.0
        return module

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, Schedule]]:
        return {**super().optimizers(), "refine": (self.refine_optimizer, Schedule())}

    @property
    def refining(self) -> bool:
        return self.switched is not None

    def _stage_done(self, step: int, seconds: float) -> float:
        """Fraction of the current stage's budget used before ``step``, ``seconds`` into the run
        (the engine's training seconds: the same on every rank, and those of a plain generation
        run resumed into its refinement)."""
        cfg = self.config
        if not self.refining:
            steps, spent, budget = step / cfg.max_steps, seconds, cfg.max_seconds
        else:
            steps, spent = (step - self.switched) / cfg.refine.steps, seconds - self.switched_seconds
            budget = cfg.refine.max_seconds
        return max(steps, spent / budget if budget > 0 else 0.0)

    def spent(self, step: int, seconds: float) -> bool:
        """The refinement's budget (steps or, when set, seconds) is spent: a coarse stage that
        ended on its steps before its seconds leaves the refinement no more time than its own."""
        return self.refining and self._stage_done(step, seconds) >= 1

    def _attach(self, refined: bool = True) -> None:
        """Put the refined fields into the run's model in place (or, not ``refined``, the coarse ones back)."""
        raise NotImplementedError

    def begin_refinement(self, ctx: StepContext) -> float:
        """Fit the refined fields to the coarse ones and put them in their place; the fit's error."""
        raise NotImplementedError

    def refine_step(self, ctx: StepContext) -> StepResult:
        raise NotImplementedError

    def step(self, ctx: StepContext) -> StepResult:
        figures: dict = {}
        if not self.refining and self._stage_done(ctx.step, ctx.seconds) >= 1:
            figures["fit_error"] = self.begin_refinement(ctx)
        ctx.done = self._stage_done(ctx.step, ctx.seconds)
        result = self.refine_step(ctx) if self.refining else super().step(ctx)
        result.figures.update(figures)
        return result

    def _begun(self, ctx: StepContext) -> None:
        """Record that the refinement begins at ``ctx``'s step and put the refined model in place."""
        self.switched, self.switched_seconds = ctx.step, ctx.seconds
        self._attach()

    def _annealed_beta(self, ctx: StepContext) -> float:
        """The Laplace scale of this refinement step (the last step takes the final one)."""
        r = self.config.refine
        return annealed(r.beta[0], r.beta[1], self._stage_done(ctx.step + 1, ctx.seconds))

    # -- the run directory ----------------------------------------------------------------------
    def info(self) -> RunInfo:
        info = super().info()
        return dataclasses.replace(info, model=self.sdf_spec) if self.refining else info

    def load(self, output) -> None:
        from nerfgen.kinds import read_info

        refined = read_info(output).model.field == REFINED_FIELD
        if refined != self.refining:  # the model must match the file now; the step comes with the state
            self.switched = -1 if refined else None
            self._attach(refined)
        super().load(output)

    def state(self) -> tuple[dict[str, Tensor], dict]:
        tensors, values = super().state()
        return tensors, {**values, "switched": self.switched, "switched_seconds": self.switched_seconds}

    def load_state(self, tensors: dict[str, Tensor], values: dict) -> None:
        super().load_state(tensors, values)
        self.switched = values.get("switched")  # None from a plain generation run: refine it
        self.switched_seconds = float(values.get("switched_seconds", 0.0))


def sdf_grid_reach(aabb: Tensor, resolution: int) -> float:
    """Half the diagonal of a cell of a ``resolution``-cell grid over ``aabb``: how far an occupancy
    grid of a signed-distance field grows its surface, so a cell it passes through counts as
    occupied wherever in it the jittered point falls."""
    return float((aabb[3:] - aabb[:3]).max()) / resolution * 3**0.5 / 2


__all__ = ["REFINED_FIELD", "RefinementStages", "annealed", "engine_budget", "refine_render_config", "refine_t_max",
           "refined_spec", "sdf_grid_reach"]
