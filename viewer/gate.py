"""Taking turns on one model: a training loop and the viewer's renderers never touch it at once.

The training thread holds the gate while it steps and opens it only between steps
(:meth:`ModelGate.between_steps`, called from the engine's per-step hook). Renderers wait in
:meth:`ModelGate.render`. The split of time follows ``train_share``: each training step of
``dt`` seconds earns the renderers ``dt * (1 - share) / share`` seconds; a render that ran
longer is paid back by the steps that follow. Without a training loop the gate is a plain lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

MAX_CREDIT = 2.0
"""Seconds of render time the renderers may bank while they are busy."""


@dataclass
class TrainStats:
    """The latest training step, as the panel shows it: the run's own figures (``loss``, ``psnr``,
    ``sds``, ...) and smoothed rates (``it/s``, ``rays/s``)."""

    step: int = 0
    figures: Mapping = field(default_factory=dict)
    rates: dict = field(default_factory=dict)
    done: bool = False

    @classmethod
    def of(cls, report) -> TrainStats:
        """The stats of an engine's :class:`nerfgen.StepReport` (its figures are read from the
        device only when the panel shows them, not at every step)."""
        return cls(report.step, report.figures, dict(report.rates))


class ModelGate:
    """Serialises training steps and renders on one model, sharing time between them.

    Args:
        train_share: fraction of the time that goes to training while someone is viewing (used within
            [0.05, 0.95], so that neither side ever starves).
    """

    def __init__(self, train_share: float = 0.7) -> None:
        self._lock = threading.Lock()
        self._waiting_lock = threading.Lock()
        self._waiting = 0
        self._credit = 0.0
        self._running = threading.Event()
        self._running.set()
        self._last_step_end: float | None = None
        self._training = False
        self.train_share = train_share
        self.stats = TrainStats()

    # -- renderers ---------------------------------------------------------------------------
    @contextmanager
    def render(self) -> Iterator[None]:
        """Hold the model for one render (waits for the training step in progress)."""
        with self._waiting_lock:
            self._waiting += 1
        try:
            with self._lock:
                start = time.perf_counter()
                try:
                    yield
                finally:
                    self._credit -= time.perf_counter() - start
        finally:
            with self._waiting_lock:
                self._waiting -= 1

    # -- the training loop -----------------------------------------------------------------------
    @contextmanager
    def training(self) -> Iterator[None]:
        """Hold the model for a training loop; it is let go only in :meth:`between_steps`."""
        with self._lock:
            self._last_step_end = time.perf_counter()
            self._training = True
            try:
                yield
            finally:
                self._training = False
                self.stats.done = True

    def between_steps(self, stats: TrainStats) -> None:
        """The training loop's per-step hook: record the step, let renderers run for their share,
        and wait here while training is paused."""
        now = time.perf_counter()
        step_seconds = now - (self._last_step_end or now)
        self.stats = stats
        if not self._running.is_set():
            self._lock.release()
            try:
                self._running.wait()
            finally:
                self._lock.acquire()
        elif self._waiting > 0:
            share = self._share()
            self._credit = min(self._credit + step_seconds * (1 - share) / share, MAX_CREDIT)
            if self._credit > 0:
                deadline = time.perf_counter() + self._credit
                self._lock.release()
                try:
                    while self._waiting > 0 and time.perf_counter() < deadline:
                        time.sleep(0.002)
                finally:
                    self._lock.acquire()
        else:
            self._credit = 0.0  # nobody is watching: idle time is not banked
        self._last_step_end = time.perf_counter()

    def _share(self) -> float:
        return min(max(self.train_share, 0.05), 0.95)

    @property
    def render_share(self) -> float:
        """Fraction of the time renders get: all of it unless a training loop is running."""
        return 1.0 - self._share() if self._training and not self.paused else 1.0

    @property
    def paused(self) -> bool:
        """Whether training waits between steps."""
        return not self._running.is_set()

    def pause(self) -> None:
        """Stop training after the current step (renders go on)."""
        self._running.clear()

    def resume(self) -> None:
        """Let training continue."""
        self._running.set()
