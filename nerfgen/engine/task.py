"""What a kind of training run gives the engine: a :class:`Task` (batch -> loss -> figures).

The engine (:class:`nerfgen.engine.Engine`) owns everything runs share: seeds, threads, device,
budgets, learning-rate schedules, the optimiser steps and gradient clipping, the progress bar,
tensorboard, checkpoints and resume, per-step hooks. A task owns its modules, its batches and
losses, and the files that make its run directory useful (the model, previews, videos).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from nerfgen.engine.schedule import cosine_rate, learning_rate

if TYPE_CHECKING:
    from nerfgen.engine.loop import Engine

Figure = Tensor | float | int | str
"""A figure a step reports: numbers are logged and shown, strings only shown. A value computed on
the device stays a 0-d tensor (detached): the engine reads all of a step's figures at once, only
when they are logged or shown, so a step does not wait for the device."""


@dataclass
class Schedule:
    """Learning-rate schedule of one optimiser, over the fraction of the budget done.

    ``steps`` (instant-ngp / nerfacc): linear warm-up from 1% over ``warmup_steps``, then ``decay``
    applied at 50%, 75% and 90% of the run (:func:`nerfgen.engine.schedule.learning_rate`).
    ``cosine``: warm-up ``(step + 1) / warmup_steps``, then a cosine from the peak to 0
    (:func:`nerfgen.engine.schedule.cosine_rate`).
    """

    warmup_steps: int = 0
    decay: float = 1.0
    kind: str = "steps"

    def rate(self, base: float, step: int, done: float) -> float:
        """The learning rate at ``step``, ``done`` of the budget spent, for peak rate ``base``."""
        if self.kind == "cosine":
            return cosine_rate(base, step, done, self.warmup_steps)
        return learning_rate(base, step, done, self.warmup_steps, self.decay)


@dataclass
class Env:
    """Where a task builds its modules: the device, the run's random generator (CPU, seeded,
    saved with every checkpoint) and the run directory."""

    device: torch.device
    generator: torch.Generator
    output: Path


@dataclass
class StepResult:
    """What one step reports.

    Attributes:
        figures: shown on the progress bar and, when numeric, logged (``loss`` is checked finite);
            0-d tensors or numbers (see :data:`Figure`).
        counts: things processed this step (``rays``, ``samples``, ``images``): summed into the
            run's totals, shown and logged per second. Host ints (sizes the host knows).
    """

    figures: dict[str, Figure] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


class StepContext:
    """Handed to :meth:`Task.step`: where the run is, and how a loss is optimised.

    Attributes:
        step: steps done before this one.
        done: fraction of the budget (steps or seconds, the nearer) used before this step.
        seconds: training seconds before this step (the job's, the same on every rank).
        generator: the run's random generator (this rank's own stream in a job of several).
        device: the run's device.
        world: the ranks training together (:class:`nerfgen.distributed.World`): state a task
            keeps beside its parameters (an occupancy grid) is reduced over it.
    """

    def __init__(self, engine: Engine, done: float) -> None:
        self._engine = engine
        self.step, self.done, self.seconds = engine.step, done, engine.seconds
        self.generator, self.device, self.world = engine.generator, engine.device, engine.world

    def optimize(self, names: str | Sequence[str], loss: Tensor | float) -> None:
        """Zero the gradients of optimiser(s) ``names``, backpropagate ``loss`` (averaging the
        gradients over the ranks while it runs), clip (``grad_clip``), step each. Call it on every
        step, also when the loss reaches no parameter: every rank of a job must take part, in the
        same order of calls."""
        self._engine.optimize(names, loss)


class Task(abc.ABC):
    """One kind of training run on the engine."""

    name: str = "train"
    """Progress-bar label and tensorboard prefix."""

    @abc.abstractmethod
    def build(self, env: Env) -> None:
        """Create the modules on ``env.device`` (called once the engine has seeded torch)."""

    @abc.abstractmethod
    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, Schedule]]:
        """The optimisers by name, each with its schedule (their groups' ``lr`` is the peak rate)."""

    @abc.abstractmethod
    def step(self, ctx: StepContext) -> StepResult:
        """One step: a batch, its loss(es) through ``ctx.optimize``, and what to report."""

    @abc.abstractmethod
    def save(self, output: Path, step: int, seconds: float) -> None:
        """Write the run's products (model, run description) into ``output``, each file atomically,
        after ``step`` steps and ``seconds`` of training."""

    @abc.abstractmethod
    def load(self, output: Path) -> None:
        """Read back what :meth:`save` wrote (to resume)."""

    def spent(self, step: int, seconds: float) -> bool:
        """Whether the task's own budget is spent after ``step`` steps and ``seconds`` of training
        (the job's seconds: the same on every rank), ending the run before the engine's
        ``max_steps`` / ``max_seconds`` do: a run of stages each with its own budget. Default: never."""
        return False

    def state(self) -> tuple[dict[str, Tensor], dict]:
        """Training-only state beyond the optimisers: tensors and JSON-ready values."""
        return {}, {}

    def load_state(self, tensors: dict[str, Tensor], values: dict) -> None:
        """Inverse of :meth:`state`."""

    def evaluate(self, step: int) -> dict[str, Figure]:
        """Every ``eval_every`` steps: validation figures, preview files; returns what to report."""
        return {}

    def finish(self, step: int) -> None:
        """After the last checkpoint (at ``step``): final products (videos, meshes)."""
