"""The training engine: one loop for every kind of run (reconstruction, generation, the prior).

>>> engine = Engine(config, ReconstructionTask(config, dataset), "runs/lego")  # doctest: +SKIP
>>> summary = engine.run()                                                        # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nerfgen.engine import checkpoint as ckpt
from nerfgen.engine.config import EngineConfig, resolve_device
from nerfgen.engine.progress import RunProgress, format_figures
from nerfgen.engine.schedule import progress
from nerfgen.engine.task import Env, Figure, StepContext, StepResult, Task
from nerfgen.files import read_json, read_tensors, write_json, write_tensors

RATE_SMOOTHING = 0.9
"""Weight of the previous value in the smoothed per-second rates shown and reported."""


@dataclass
class StepReport:
    """What hooks see after each step: the step count, training seconds so far, the task's figures
    and smoothed per-second rates (``it/s``, ``rays/s``, ...)."""

    step: int
    seconds: float
    figures: dict[str, Figure]
    rates: dict[str, float]


@dataclass
class Summary:
    """Totals of a finished run: steps, training seconds, summed counts, the last step's figures."""

    steps: int
    seconds: float
    totals: dict[str, int] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)


Hook = Callable[[StepReport], None]
"""Called after every step; time spent in it is not training time (the viewer renders there)."""


class Engine:
    """Runs ``task`` under ``config``: seeds torch and the run's generator, sets threads and device,
    builds the task, steps its optimisers on the learning-rate schedule until the nearer budget is
    spent, and writes ``output`` (checkpoints, tensorboard/).

    Args:
        config: budgets, seed, threads, device, intervals.
        task: what is trained.
        output: run directory (written at the first checkpoint, never before).
        resume: continue from the checkpoint in ``output``: the same run as if never stopped
            (model, optimisers, random states, counters).
    """

    def __init__(self, config: EngineConfig, task: Task, output: str | Path, resume: bool = False) -> None:
        torch.manual_seed(config.seed)
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.config, self.task, self.output = config, task, Path(output)
        self.device = torch.device(resolve_device(config.device))
        self.generator = torch.Generator().manual_seed(config.seed)  # on the CPU: same draws on any device
        task.build(Env(self.device, self.generator, self.output))
        self.optimizers = task.optimizers()
        for optimizer, _ in self.optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        self.step, self.seconds = 0, 0.0
        self.totals: dict[str, int] = {}
        self.rates: dict[str, float] = {}
        self.figures: dict[str, Figure] = {}
        self.saved: int | None = None  # the step of the last checkpoint written
        if resume:
            self._resume()

    # -- one step ------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Whether the step or time budget is spent."""
        return progress(self.step, self.config.max_steps, self.seconds, self.config.max_seconds) >= 1.0

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """Zero, backpropagate, clip and step optimiser ``name`` (see :meth:`StepContext.optimize`)."""
        optimizer, _ = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        optimizer.step()

    def train_step(self) -> StepResult:
        """Set the learning rates, run one task step and count it; returns its result."""
        cfg = self.config
        done = progress(self.step, cfg.max_steps, self.seconds, cfg.max_seconds)
        start = time.perf_counter()
        for optimizer, schedule in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = schedule.rate(group["initial_lr"], self.step, done)
        result = self.task.step(StepContext(self, done))
        seconds = time.perf_counter() - start
        self.step += 1
        self.seconds += seconds
        self._count(result, seconds)
        loss = result.figures.get("loss")
        if isinstance(loss, float) and not math.isfinite(loss):
            raise FloatingPointError(f"{self.task.name} diverged at step {self.step} (loss {loss})")
        return result

    def _count(self, result: StepResult, seconds: float) -> None:
        rates = {"it/s": 1.0, **{f"{k}/s": float(v) for k, v in result.counts.items()}}
        for key, value in rates.items():
            now = value / max(seconds, 1e-9)
            old = self.rates.get(key)
            self.rates[key] = now if old is None else RATE_SMOOTHING * old + (1 - RATE_SMOOTHING) * now
        for key, value in result.counts.items():
            self.totals[key] = self.totals.get(key, 0) + int(value)
        self.figures = result.figures

    # -- the loop -------------------------------------------------------------------------------
    def run(self, hooks: Sequence[Hook] = ()) -> Summary:
        """Train until the budget is spent: checkpoints every ``checkpoint_every`` steps and at the
        end, evaluation every ``eval_every``, tensorboard every ``log_every``; then the task's
        final products. ``hooks`` are called after every step."""
        from torch.utils.tensorboard import SummaryWriter

        cfg = self.config
        writer = SummaryWriter(str(self.output / "tensorboard"))
        try:
            with RunProgress(self.task.name, cfg.max_steps, cfg.max_seconds, self.step, self.seconds) as bar:
                while not self.finished:
                    result = self.train_step()
                    bar.update(self.step, self.seconds, {**self.rates, **result.figures})
                    report = StepReport(self.step, self.seconds, result.figures, dict(self.rates))
                    for hook in hooks:
                        hook(report)
                    if self.step % cfg.log_every == 0:
                        self._log(writer, f"{self.task.name}/", {**result.figures, **self.rates})
                    if cfg.eval_every > 0 and self.step % cfg.eval_every == 0:
                        self._evaluate(writer, bar)
                    if cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0:
                        self.save()
            if self.saved != self.step:  # the last step's checkpoint, unless it was just written
                self.save()
        finally:
            writer.close()
        self.task.finish(self.step)
        return Summary(self.step, self.seconds, dict(self.totals), dict(self.figures))

    def _evaluate(self, writer, bar: RunProgress) -> None:
        figures = self.task.evaluate(self.step)
        if figures:
            self._log(writer, "eval/", figures)
            bar.note(f"step {self.step}: {format_figures(figures)}")

    def _log(self, writer, prefix: str, figures: dict[str, Figure]) -> None:
        for key, value in figures.items():
            if not isinstance(value, str):
                writer.add_scalar(prefix + key, value, self.step)

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self) -> None:
        """Checkpoint: optimisers, random states and the task's training state (one file), the
        task's products, then ``state.json`` last (every file atomically)."""
        tensors, values = self.task.state()
        state = {f"task.{k}": v for k, v in tensors.items()}
        for name, (optimizer, _) in self.optimizers.items():
            state.update({f"opt.{name}.{k}": v for k, v in ckpt.optimizer_tensors(optimizer).items()})
        state.update(ckpt.rng_tensors(self.generator))
        write_tensors(self.output / ckpt.TRAIN_STATE_FILE, state, {"step": str(self.step)})
        self.task.save(self.output, self.step, self.seconds)
        write_json(self.output / ckpt.STATE_FILE, {"step": self.step, "seconds": self.seconds, "totals": self.totals,
                                                   "task": values})
        self.saved = self.step

    def _resume(self) -> None:
        state_file, tensors_file = self.output / ckpt.STATE_FILE, self.output / ckpt.TRAIN_STATE_FILE
        state = read_json(state_file)
        if not tensors_file.is_file():
            raise FileNotFoundError(f"{tensors_file}: not found; {self.output} cannot be resumed (written by an "
                                    "earlier nerfgen, or not a run directory)")
        stamped = ckpt.tensors_metadata(tensors_file).get("step")
        if stamped != str(state.get("step")):
            raise ValueError(f"{self.output}: its checkpoint was interrupted while being written ({tensors_file.name} "
                             f"is from step {stamped}, {state_file.name} from step {state.get('step')})")
        tensors = read_tensors(tensors_file)
        self.task.load(self.output)
        for name, (optimizer, _) in self.optimizers.items():
            prefix = f"opt.{name}."
            ckpt.load_optimizer_tensors(optimizer, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        ckpt.load_rng_tensors(self.generator, tensors)
        self.task.load_state({k[5:]: v for k, v in tensors.items() if k.startswith("task.")}, state.get("task", {}))
        self.step, self.seconds, self.totals = int(state["step"]), float(state["seconds"]), dict(state["totals"])
        self.saved = self.step
