"""Learning-rate schedules that follow either a step budget or a time budget."""

from __future__ import annotations

import math


def progress(step: int, max_steps: int, seconds: float, max_seconds: float) -> float:
    """Fraction of the run done: the larger of the step and the time fractions, in [0, 1]."""
    done = step / max(max_steps, 1)
    if max_seconds > 0:
        done = max(done, seconds / max_seconds)
    return min(done, 1.0)


def learning_rate(base: float, step: int, done: float, warmup_steps: int, decay: float) -> float:
    """Linear warm-up from ``base / 100`` over ``warmup_steps``, then ``decay`` applied at 50%, 75%
    and 90% of the run (instant-ngp / nerfacc's multi-step schedule).

    >>> learning_rate(1.0, 1000, 0.8, 100, 0.5)
    0.25
    """
    warm = min(1.0, 0.01 + 0.99 * step / warmup_steps) if warmup_steps > 0 else 1.0
    drops = sum(done >= m for m in (0.5, 0.75, 0.9))
    return base * warm * decay**drops


def cosine_rate(base: float, step: int, done: float, warmup_steps: int) -> float:
    """Warm-up ``(step + 1) / warmup_steps`` (capped at 1), then ``base`` times a cosine from 1 at
    the start of the run to 0 at its end.

    >>> cosine_rate(1.0, 500, 0.5, 100)
    0.5
    """
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return base * warm * 0.5 * (1 + math.cos(math.pi * done))
