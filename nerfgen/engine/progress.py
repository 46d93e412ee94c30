"""The progress bar of a run: step, it/s, the task's own figures, elapsed time and ETA."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from nerfgen.engine.schedule import progress

PLAIN_EVERY = 10.0
"""Seconds between plain progress lines when the output is not a terminal (CI logs)."""
FIGURES_EVERY = 0.5
"""Seconds between redraws of the figures beside the bar (reading them waits for a GPU)."""


def format_figures(figures: Mapping[str, float | int | str]) -> str:
    """``key value`` pairs: large numbers with thousands separators, others to 4 significant digits.

    >>> format_figures({"loss": 0.012345, "rays/s": 40123.4, "shading": "albedo"})
    'loss 0.01235  rays/s 40,123  shading albedo'
    """
    parts = []
    for key, value in figures.items():
        if isinstance(value, str):
            parts.append(f"{key} {value}")
        elif abs(value) >= 1000:
            parts.append(f"{key} {value:,.0f}")
        else:
            parts.append(f"{key} {value:.4g}")
    return "  ".join(parts)


class RunProgress:
    """A rich progress bar over the nearer of the step and time budgets; plain lines every
    :data:`PLAIN_EVERY` seconds when the output is not a terminal.

    Args:
        label: what runs (``train``, ``generate``, ``prior``).
        max_steps, max_seconds: the budgets (``max_seconds`` 0: none).
        start_step, start_seconds: where a resumed run starts.
        shown: False draws nothing (the ranks of a job other than rank 0).
    """

    def __init__(self, label: str, max_steps: int, max_seconds: float, start_step: int = 0,
                 start_seconds: float = 0.0, shown: bool = True) -> None:
        self.label, self.max_steps, self.max_seconds, self.shown = label, max_steps, max_seconds, shown
        self.console = Console(stderr=True, quiet=not shown)
        self.interactive = self.console.is_terminal and shown
        self.progress = Progress(
            TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[info]}"), console=self.console, transient=False, disable=not self.interactive,
        )
        done = progress(start_step, max_steps, start_seconds, max_seconds)
        self.task = self.progress.add_task(label, total=1.0, info="", completed=done)
        self.start_done, self.start_seconds = done, start_seconds
        self.figures, self.figures_at = "", -math.inf

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def due(self) -> bool:
        """Whether the figures beside the bar are to be redrawn now (every :data:`FIGURES_EVERY`
        seconds on a terminal, with each plain line otherwise, never when nothing is shown)."""
        every = FIGURES_EVERY if self.interactive else PLAIN_EVERY
        return self.shown and time.monotonic() - self.figures_at >= every

    def update(self, step: int, seconds: float, figures: Mapping[str, float | int | str] | None = None) -> None:
        """Show the run at ``step`` after ``seconds`` of training, with ``figures`` beside the bar
        (None: the figures shown last); a plain line is printed with new figures."""
        done = progress(step, self.max_steps, seconds, self.max_seconds)
        rate = (done - self.start_done) / max(seconds - self.start_seconds, 1e-9)
        eta = (1.0 - done) / rate if rate > 0 else math.inf
        if figures is not None:
            self.figures, self.figures_at = format_figures(figures), time.monotonic()
        info = f"step {step}  {self.figures}  {seconds:,.0f}s  ETA {eta:,.0f}s"
        self.progress.update(self.task, completed=done, info=info)
        if figures is not None and self.shown and not self.interactive:
            print(f"{self.label} {done:4.0%} {info}", file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        """Print a line above the bar."""
        if self.interactive:
            self.console.print(message)
        elif self.shown:
            print(message, file=sys.stderr, flush=True)
