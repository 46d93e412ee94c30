"""The training engine: one loop for every kind of run (reconstruction, generation, the prior).

>>> engine = Engine(config, ReconstructionTask(config, dataset), "runs/lego")  # doctest: +SKIP
>>> summary = engine.run()                                                        # doctest: +SKIP
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from nerfgen import distributed
from nerfgen.distributed import World
from nerfgen.engine import checkpoint as ckpt
from nerfgen.engine.buckets import GradientBuckets
from nerfgen.engine.config import EngineConfig, resolve_device
from nerfgen.engine.figures import LazyFigures, Number, read_figures, read_values
from nerfgen.engine.progress import RunProgress, format_figures
from nerfgen.engine.schedule import progress
from nerfgen.engine.task import Env, Figure, StepContext, StepResult, Task
from nerfgen.files import read_tensors, write_json, write_tensors

ALL_CORES = torch.get_num_threads()
"""torch's own thread count (all cores), what ``threads: 0`` sets back after a run that asked for fewer."""
RATE_SMOOTHING = 0.9
"""Weight of the previous value in the smoothed per-second rates shown and reported."""


@dataclass
class StepReport:
    """What hooks see after each step: the step count, training seconds so far, the task's figures
    as numbers and smoothed per-second rates (``it/s``, ``rays/s``, ...).

    The figures are read from the device when a hook first looks one up (on a GPU that waits for
    the step to finish); a hook that only looks at ``step``, ``seconds`` or ``rates`` costs no wait.
    """

    step: int
    seconds: float
    figures: Mapping[str, Number | str]
    rates: dict[str, float]


@dataclass
class Summary:
    """Totals of a finished run: steps, training seconds, summed counts, the last step's figures."""

    steps: int
    seconds: float
    totals: dict[str, int] = field(default_factory=dict)
    figures: dict[str, Number | str] = field(default_factory=dict)


Hook = Callable[[StepReport], None]
"""Called after every step; time spent in it is not training time (the viewer renders there)."""


class Engine:
    """Runs ``task`` under ``config``: seeds torch and the run's generator, sets threads and device,
    builds the task, steps its optimisers on the learning-rate schedule until the nearer budget is
    spent, and writes ``output`` (checkpoints, tensorboard/).

    A task's figures may be 0-d tensors on the device: they are read (one transfer, the only wait
    for the device the engine makes) every ``log_every`` steps, when the progress bar redraws them,
    when a hook looks at them, before a checkpoint and at the end (:meth:`settle`). A non-finite
    loss ends the run there with a FloatingPointError naming the step that produced it.

    In a job of several ranks (``world``) every rank builds the same task, starts from rank 0's
    parameters and draws its batches from its own random stream; gradients are averaged over the
    ranks while backward runs (:class:`~nerfgen.engine.buckets.GradientBuckets`), so the ranks'
    parameters stay equal and a step trains on ``world.size`` batches. Step times and the loss are
    averaged (the budgets end on the same step everywhere) and counts summed; only rank 0 writes
    checkpoints, tensorboard, the progress bar, evaluations and final products, and runs ``hooks``.

    Args:
        config: budgets, seed, threads, device, intervals.
        task: what is trained.
        output: run directory (written at the first checkpoint, never before).
        resume: continue from the checkpoint in ``output``: the same run as if never stopped
            (model, optimisers, random states, counters), on any number of ranks.
        world: the ranks that train together (default: the job this process has joined, see
            :mod:`nerfgen.distributed`; :data:`~nerfgen.distributed.SINGLE` trains alone).
    """

    def __init__(self, config: EngineConfig, task: Task, output: str | Path, resume: bool = False,
                 world: World | None = None) -> None:
        self.world = world or distributed.current()
        torch.manual_seed(config.seed)
        node = distributed.env_world()  # the cores of a node are split between the ranks on it
        torch.set_num_threads(config.threads or (node.threads() if node.local_size > 1 else ALL_CORES))
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
        self.figures: dict[str, Figure | Tensor] = {}  # the last step's, as the task gave them
        self._losses: list[tuple[int, Tensor]] = []  # losses not yet checked finite, by step
        self._read: tuple[int, dict[str, Number | str]] | None = None  # the figures last read, at a step
        self._diverged: FloatingPointError | None = None  # once a read found a non-finite loss
        self._figures_lock = threading.Lock()
        self.saved: int | None = None  # the step of the last checkpoint written
        self.saved_seconds = 0.0  # training seconds at that checkpoint
        self.averager = GradientBuckets(self.world) if self.world.parallel else None
        self._own_streams(self.world.seed(config.seed))
        self.world.broadcast([p.data for p in self._params(o for o, _ in self.optimizers.values())])
        if resume:
            self._resume()

    def _own_streams(self, seed: int) -> None:
        """This rank's random streams from ``seed`` (rank 0's are the run's seed, already set)."""
        if not self.world.main:
            self.generator.manual_seed(seed)
            torch.manual_seed(seed)

    @staticmethod
    def _params(optimizers: Iterable[torch.optim.Optimizer]) -> list[torch.Tensor]:
        return [p for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]]

    # -- one step ------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Whether the step or time budget (or the task's own, :meth:`Task.spent`) is spent."""
        done = progress(self.step, self.config.max_steps, self.seconds, self.config.max_seconds) >= 1.0
        return done or self.task.spent(self.step, self.seconds)

    def optimize(self, names: str | Sequence[str], loss: torch.Tensor | float) -> None:
        """Zero, backpropagate (averaging over the ranks in buckets as gradients arrive), clip and
        step optimiser(s) ``names`` (one backward fills the gradients of all of them; see
        :meth:`StepContext.optimize`). A loss that reaches no parameter (a batch with no samples)
        steps nothing, but still takes part in the ranks' averaging."""
        chosen = [self.optimizers[name][0] for name in ([names] if isinstance(names, str) else names)]
        for optimizer in chosen:
            optimizer.zero_grad(set_to_none=True)
        if self.averager is not None:
            self.averager.begin(self._params(chosen))
        try:
            if isinstance(loss, torch.Tensor) and loss.requires_grad:
                loss.backward()
        except BaseException:
            if self.averager is not None:
                self.averager.abandon()
            raise
        if self.averager is not None:
            self.averager.finish()
        for optimizer in chosen:
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self._params([optimizer]), self.config.grad_clip)
            optimizer.step()

    def train_step(self) -> StepResult:
        """Set the learning rates, run one task step and count it; returns its result (figures as
        the task gave them: possibly tensors; :meth:`settle` reads them)."""
        cfg = self.config
        done = progress(self.step, cfg.max_steps, self.seconds, cfg.max_seconds)
        start = time.perf_counter()
        for optimizer, schedule in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = schedule.rate(group["initial_lr"], self.step, done)
        result = self.task.step(StepContext(self, done))
        result.figures = {k: v.detach() if isinstance(v, Tensor) else v for k, v in result.figures.items()}
        seconds = time.perf_counter() - start
        if self.world.parallel:
            result, seconds = self._job_result(result, seconds)
        loss = result.figures.get("loss")
        with self._figures_lock:  # a viewer's thread may settle while this one steps
            self.step += 1
            self.seconds += seconds
            self._count(result, seconds)
            if isinstance(loss, Tensor):
                self._losses.append((self.step, loss))
        if isinstance(loss, float) and not math.isfinite(loss):
            raise FloatingPointError(f"{self.task.name} diverged at step {self.step} (loss {loss})")
        if self.step % cfg.log_every == 0:
            self.settle()
        return result

    def settle(self) -> dict[str, Number | str]:
        """The last step's figures as numbers, after checking that every loss since the last call
        is finite: one read from the device (none when nothing changed since the last call).

        Raises:
            FloatingPointError: a loss was NaN or infinite; names the first step that gave one (and
                is raised again by every later call: whichever thread reads first, the loop sees it).
        """
        with self._figures_lock:
            if self._diverged is not None:
                raise self._diverged
            if self._read is not None and self._read[0] == self.step:
                return self._read[1]
            losses, self._losses = self._losses, []
            names = [k for k, v in self.figures.items() if isinstance(v, Tensor)]
            values = read_values([t for _, t in losses] + [self.figures[k] for k in names])
            for (step, _), value in zip(losses, values):
                if not math.isfinite(value):
                    self._diverged = FloatingPointError(f"{self.task.name} diverged at step {step} (loss {value}; "
                                                        f"seen at step {self.step})")
                    raise self._diverged
            read = dict(zip(names, values[len(losses):]))
            figures = {k: read.get(k, v) for k, v in self.figures.items()}
            self._read = (self.step, figures)
            return figures

    def _job_result(self, result: StepResult, seconds: float) -> tuple[StepResult, float]:
        """The step as the job saw it, the same on every rank: mean step time and loss, summed
        counts (host values in one all-reduce; a loss on a GPU in its own, which the host does not
        wait for); the other figures stay this rank's."""
        keys = sorted(result.counts)
        loss = result.figures.get("loss")
        host = torch.tensor([seconds] + [float(result.counts[k]) for k in keys], dtype=torch.float64)
        on_host = loss is not None and not (isinstance(loss, Tensor) and loss.device.type != "cpu")
        if on_host:
            host = torch.cat([host, torch.as_tensor(loss, dtype=torch.float64).reshape(1)])
        values = self.world.all_reduce(host).tolist()
        figures = dict(result.figures)
        if on_host:
            figures["loss"] = values[-1] / self.world.size
        elif loss is not None:
            figures["loss"] = self.world.all_reduce(loss.double()) / self.world.size
        counts = {k: int(v) for k, v in zip(keys, values[1:1 + len(keys)])}
        return StepResult(figures, counts), values[0] / self.world.size

    def _count(self, result: StepResult, seconds: float) -> None:
        rates = {"it/s": 1.0, **{f"{k}/s": float(v) for k, v in result.counts.items()}}
        for key, value in rates.items():
            now = value / max(seconds, 1e-9)
            old = self.rates.get(key)
            self.rates[key] = now if old is None else RATE_SMOOTHING * old + (1 - RATE_SMOOTHING) * now
        for key, value in result.counts.items():
            self.totals[key] = self.totals.get(key, 0) + int(value)
        self.figures = result.figures

    def _report(self) -> StepReport:
        """What hooks see now (the figures read only if a hook looks at them)."""
        step, figures = self.step, self.figures
        return StepReport(step, self.seconds, LazyFigures(list(figures), lambda: self.settle() if self.step == step
                                                          else read_figures(figures)), dict(self.rates))

    # -- the loop -------------------------------------------------------------------------------
    def run(self, hooks: Sequence[Hook] = ()) -> Summary:
        """Train until the budget is spent: checkpoints every ``checkpoint_every`` steps or
        ``checkpoint_seconds`` of training, whichever comes first, and at the end; evaluation
        every ``eval_every``, tensorboard every ``log_every``; then the task's final products.
        ``hooks`` are called after every step (on rank 0)."""
        cfg, main = self.config, self.world.main
        writer = _tensorboard(self.output) if main else None
        hooks = hooks if main else ()
        try:
            with RunProgress(self.task.name, cfg.max_steps, cfg.max_seconds, self.step, self.seconds,
                             shown=main) as bar:
                while not self.finished:
                    self.train_step()
                    bar.update(self.step, self.seconds, {**self.rates, **self.settle()} if bar.due() else None)
                    if hooks:
                        report = self._report()
                        for hook in hooks:
                            hook(report)
                    if main and self.step % cfg.log_every == 0:
                        self._log(writer, f"{self.task.name}/", {**self.settle(), **self.rates})
                    if main and cfg.eval_every > 0 and self.step % cfg.eval_every == 0:
                        self._evaluate(writer, bar)
                    if self._checkpoint_due():
                        self.save()
            if self.saved != self.step:  # the last step's checkpoint, unless it was just written
                self.save()
        finally:
            if writer is not None:
                writer.close()
        if main:
            self.task.finish(self.step)
        return Summary(self.step, self.seconds, dict(self.totals), dict(self.settle()))

    def _evaluate(self, writer, bar: RunProgress) -> None:
        figures = self.task.evaluate(self.step)
        if figures:
            self._log(writer, "eval/", figures)
            bar.note(f"step {self.step}: {format_figures(figures)}")

    def _log(self, writer, prefix: str, figures: Mapping[str, Number | str]) -> None:
        for key, value in figures.items():
            if not isinstance(value, str):
                writer.add_scalar(prefix + key, value, self.step)

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self) -> None:
        """Checkpoint (:mod:`nerfgen.engine.checkpoint`): the task's files, optimisers, every rank's
        random states and the task's training state (one file), ``state.json`` last, into a step
        folder that becomes ``latest`` only once complete; then its files are mirrored at the top
        of the run directory. Rank 0 writes; the others hand it their random states."""
        self.settle()  # never a checkpoint of a run that has diverged
        streams = self.world.gather_object(ckpt.rng_tensors(self.generator))
        self.saved, self.saved_seconds = self.step, self.seconds
        if not self.world.main:
            return

        def fill(folder: Path) -> None:
            tensors, values = self.task.state()
            state = {f"task.{k}": v for k, v in tensors.items()}
            for name, (optimizer, _) in self.optimizers.items():
                state.update({f"opt.{name}.{k}": v for k, v in ckpt.optimizer_tensors(optimizer).items()})
            for rank, rng in enumerate(streams):
                state.update({ckpt.rank_key(k, rank): v for k, v in rng.items()})
            self.task.save(folder, self.step, self.seconds)
            write_tensors(folder / ckpt.TRAIN_STATE_FILE, state, {"step": str(self.step)})
            write_json(folder / ckpt.STATE_FILE, {"step": self.step, "seconds": self.seconds, "totals": self.totals,
                                                  "task": values, "ranks": self.world.size})

        point = ckpt.write_checkpoint(self.output, self.step, fill, self.config.keep_checkpoints)
        ckpt.publish(point, self.output)

    def _checkpoint_due(self) -> bool:
        """Whether this step ends a checkpoint interval: ``checkpoint_every`` steps, or
        ``checkpoint_seconds`` of training since the last one (training seconds, the same on
        every rank of a job, so all ranks decide alike)."""
        cfg = self.config
        if cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0:
            return True
        return cfg.checkpoint_seconds > 0 and self.seconds - self.saved_seconds >= cfg.checkpoint_seconds

    def _resume(self) -> None:
        """Load the newest checkpoint of ``output`` that reads back whole; a damaged one (a file
        cut short, edited, or from another run) is passed over for the one before, and said."""
        points = ckpt.checkpoints(self.output)
        if not points:
            raise FileNotFoundError(f"{self.output}: no checkpoint to resume (not a run directory, or it never "
                                    "reached its first checkpoint)")
        problems = []
        for point in points:
            try:
                self._load(point)
            except (ValueError, FileNotFoundError, KeyError, TypeError, RuntimeError, OverflowError) as exc:
                problems.append(f"{point.folder}: {exc}" if str(point.folder) not in str(exc) else str(exc))
                continue
            if self.world.main:
                if problems:
                    ckpt.say(f"passed over {len(problems)} damaged checkpoint(s): {'; '.join(problems)}")
                where = "the run directory (an earlier nerfgen's layout)" if point.legacy else str(point.folder)
                ckpt.say(f"resuming {self.output} at step {point.step} from {where}")
                ckpt.publish(point, self.output)  # the top of the run directory shows the state resumed
            return
        raise ValueError(f"{self.output}: no checkpoint reads back whole: {'; '.join(problems)}")

    def _load(self, point: ckpt.Checkpoint) -> None:
        state = ckpt.check(point)
        tensors = read_tensors(point.folder / ckpt.TRAIN_STATE_FILE)
        self.task.load(point.folder)
        for name, (optimizer, _) in self.optimizers.items():
            prefix = f"opt.{name}."
            ckpt.load_optimizer_tensors(optimizer, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        self.step, self.seconds, self.totals = int(state["step"]), float(state["seconds"]), dict(state["totals"])
        rng = ckpt.rank_rng(tensors, self.world.rank)
        if rng:  # this rank's streams where it left them
            ckpt.load_rng_tensors(self.generator, rng)
        else:  # a rank the checkpoint had not: a fresh stream of its own for this step
            self._own_streams(self.world.seed(self.config.seed + self.step))
        self.task.load_state({k[5:]: v for k, v in tensors.items() if k.startswith("task.")}, state.get("task", {}))
        self.saved, self.saved_seconds = self.step, self.seconds


def _tensorboard(output: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(output / "tensorboard"))
