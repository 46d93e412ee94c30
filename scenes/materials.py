"""Procedural materials: albedo as a pure function of the hit point in an object's local frame.

A :class:`Material` is a small frozen record; :func:`albedo` evaluates it at points given in the
object's *local* coordinates (so a pattern moves and turns with its object). Patterns are chosen
by name from :data:`PATTERNS`, one explicit registry of pure functions
``fn(material, points [N, 3]) -> weights [N, 3]`` in [0, 1].

>>> m = Material(color=(1.0, 0.0, 0.0), pattern="checker", color2=(1.0, 1.0, 1.0), count=8)
>>> albedo(m, np.zeros((2, 3))).shape
(2, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Color = tuple[float, float, float]


@dataclass(frozen=True)
class Material:
    """Albedo description of one object.

    Attributes:
        color: Base RGB in [0, 1].
        pattern: Name of a pattern in :data:`PATTERNS`: ``"solid"``, ``"checker"`` (latitude x
            longitude checker about the local z axis), ``"sectors"`` (vertical stripes by azimuth
            about local z), ``"bands"`` (horizontal stripes along local z), ``"parquet"``
            (wood tiles in the local xy plane, with grain and grout lines).
        color2: Second RGB of two-colour patterns.
        count: Number of angular cells (``checker``, ``sectors``).
        period: Length of one period in local units (``bands`` stripe pair, ``parquet`` tile).
    """

    color: Color
    pattern: str = "solid"
    color2: Color = (0.95, 0.95, 0.95)
    count: int = 8
    period: float = 0.1


def _two_tone(m: Material, odd: np.ndarray) -> np.ndarray:
    """Pick ``color2`` where ``odd`` [N] is true, else ``color``; returns [N, 3]."""
    return np.where(odd[:, None], np.asarray(m.color2, np.float32), np.asarray(m.color, np.float32))


def _solid(m: Material, p: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.asarray(m.color, dtype=np.float32), p.shape).copy()


def _checker(m: Material, p: np.ndarray) -> np.ndarray:
    az = np.arctan2(p[:, 1], p[:, 0]) / (2 * np.pi) + 0.5  # [N] in [0, 1]
    polar = np.arctan2(np.linalg.norm(p[:, :2], axis=1), p[:, 2]) / np.pi  # [N] in [0, 1]
    cells = np.floor(az * m.count) + np.floor(polar * (m.count // 2))
    return _two_tone(m, cells.astype(np.int64) % 2 == 1)


def _sectors(m: Material, p: np.ndarray) -> np.ndarray:
    az = np.arctan2(p[:, 1], p[:, 0]) / (2 * np.pi) + 0.5
    return _two_tone(m, np.floor(az * m.count).astype(np.int64) % 2 == 1)


def _bands(m: Material, p: np.ndarray) -> np.ndarray:
    return _two_tone(m, np.floor(p[:, 2] / (0.5 * m.period)).astype(np.int64) % 2 == 1)


def _parquet(m: Material, p: np.ndarray) -> np.ndarray:
    """Wood tiles of side ``period``: alternate tiles run their grain along x or y."""
    u = p[:, :2] / m.period  # [N, 2] in tiles
    tile = np.floor(u).astype(np.int64)  # [N, 2]
    frac = u - tile  # [N, 2] in [0, 1)
    odd = (tile[:, 0] + tile[:, 1]) % 2 == 1  # [N]
    along = np.where(odd, p[:, 0], p[:, 1])  # coordinate across the grain
    other = np.where(odd, p[:, 1], p[:, 0])
    jitter = (((tile[:, 0] * 73856093) ^ (tile[:, 1] * 19349663)) % 997).astype(np.float32) / 997  # [N]
    wiggle = 0.8 * np.sin(4.0 * other / m.period + 6.0 * jitter)  # [N] wavy grain lines
    grain = np.sin(2 * np.pi * (3.0 * along / m.period + wiggle))  # ~3 grain lines per tile
    shade = 0.85 + 0.10 * grain + 0.10 * (jitter - 0.5)  # [N]
    grout = np.min(np.minimum(frac, 1.0 - frac), axis=1) < 0.06  # [N] thin dark joints
    rgb = _two_tone(m, odd) * shade[:, None]
    return np.where(grout[:, None], np.float32(0.35) * np.asarray(m.color, np.float32), rgb)


PATTERNS: dict[str, Callable[[Material, np.ndarray], np.ndarray]] = {
    "solid": _solid,
    "checker": _checker,
    "sectors": _sectors,
    "bands": _bands,
    "parquet": _parquet,
}


def albedo(material: Material, points_local: np.ndarray) -> np.ndarray:
    """Evaluate a material's albedo.

    Args:
        material: The material.
        points_local: [N, 3] hit points in the object's local frame.

    Returns:
        [N, 3] float32 RGB albedo in [0, 1].
    """
    if material.pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {material.pattern!r}; expected one of {sorted(PATTERNS)}")
    points_local = np.asarray(points_local, dtype=np.float32)
    if points_local.ndim != 2 or points_local.shape[1] != 3:
        raise ValueError(f"points_local must be [N, 3], got {points_local.shape}")
    rgb = PATTERNS[material.pattern](material, points_local)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)
