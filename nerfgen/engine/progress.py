"""Training progress bar: step, rays/s, loss, PSNR, ETA."""

from __future__ import annotations

import math
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn


class TrainProgress:
    """A rich progress bar over steps or seconds, whichever budget binds; plain lines when the
    output is not a terminal (CI logs)."""

    def __init__(
        self, max_steps: int, max_seconds: float, start_step: int = 0, start_seconds: float = 0.0, label: str = "train",
    ) -> None:
        self.max_steps, self.max_seconds, self.label = max_steps, max_seconds, label
        self.console = Console(stderr=True)
        self.interactive = self.console.is_terminal
        self.progress = Progress(
            TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[info]}"), console=self.console, transient=False, disable=not self.interactive,
        )
        self.task = self.progress.add_task("train", total=1.0, info="", completed=0.0)
        self.start_step, self.start_seconds = start_step, start_seconds
        self.last_print = 0.0
        self.rays_per_s = 0.0

    def __enter__(self) -> "TrainProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, step: int, seconds: float, loss: float, rays_per_s: float) -> None:
        """Record a finished training step (``seconds`` is total training time so far)."""
        self.rays_per_s = rays_per_s if self.rays_per_s == 0 else 0.9 * self.rays_per_s + 0.1 * rays_per_s
        psnr = -10 * math.log10(max(loss, 1e-10))
        self.show(step, seconds, f"step {step}  {self.rays_per_s:,.0f} rays/s  loss {loss:.4f}  PSNR {psnr:.2f}")

    def show(self, step: int, seconds: float, info: str) -> None:
        """Move the bar to ``step`` / ``seconds`` with ``info`` beside it (elapsed time and ETA added)."""
        done = step / max(self.max_steps, 1)
        if self.max_seconds > 0:
            done = max(done, seconds / self.max_seconds)
        done = min(done, 1.0)
        rate = (done - 0) / max(seconds, 1e-9)
        eta = (1.0 - done) / rate if rate > 0 else math.inf
        info = f"{info}  {seconds:,.0f}s  ETA {eta:,.0f}s"
        self.progress.update(self.task, completed=done, info=info)
        now = time.monotonic()
        if not self.interactive and now - self.last_print > 10:
            self.last_print = now
            print(f"{self.label} {done:4.0%} {info}", file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        """Print a line above the bar."""
        self.console.print(message) if self.interactive else print(message, file=sys.stderr, flush=True)
