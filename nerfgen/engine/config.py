"""Typed training configuration; YAML files under ``configs/`` map onto it one to one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nerfgen.render import OccGridConfig


@dataclass
class TrainConfig:
    """Everything that decides a training run (the dataset path and output are given apart)."""

    field: str = "ngp"
    """Registered field name (``nerfgen.fields.FIELDS``): ngp | vanilla."""
    field_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Keyword options of the field's config dataclass (e.g. ``log2_table_size``)."""
    grid: OccGridConfig = dataclasses.field(default_factory=OccGridConfig)
    """Occupancy grid and ray-marching settings."""
    carve: bool = True
    """Where training images have alpha, start the occupancy grid from their visual hull."""
    downscale: float = 1.0
    """Divide image width and height by this (intrinsics follow)."""
    max_steps: int = 20000
    """Stop after this many optimisation steps."""
    max_seconds: float = 0.0
    """Stop after this much training time (0: no limit); schedules follow the budget."""
    target_samples: int = 1 << 16
    """Field samples per step; the number of rays adapts to reach it (nerfacc's rule)."""
    init_rays: int = 1024
    """Rays in the first step."""
    max_rays: int = 1 << 15
    """Most rays in one step."""
    lr: float = 1e-2
    """Peak Adam learning rate."""
    lr_warmup_steps: int = 20
    """Linear warm-up from 1% of ``lr``."""
    lr_decay: float = 0.33
    """Factor applied at 50%, 75% and 90% of the run (steps or seconds, whichever is nearer)."""
    weight_decay: float = 1e-6
    """L2 on the MLP weights."""
    background: str = "auto"
    """Training background: auto (random where images have alpha, else black) | random | white | black."""
    val_every: int = 1000
    """Steps between validation renders (0: never)."""
    val_views: int = 2
    """Views rendered at each validation."""
    val_downscale: float = 4.0
    """Extra downscale of validation renders."""
    checkpoint_every: int = 2000
    """Steps between checkpoints (one is always written at the end)."""
    log_every: int = 25
    """Steps between tensorboard scalars."""
    seed: int = 0
    """Seed for every random choice; a run is repeatable for a seed."""
    threads: int = 0
    """CPU threads for torch (0: all cores)."""
    device: str = "auto"
    """Where the model trains: ``cpu``, ``cuda[:n]`` or ``auto`` (CUDA when torch sees a GPU)."""


def _build(cls: type, values: dict[str, Any], source: str) -> Any:
    """Build dataclass ``cls`` from ``values``, naming ``source`` and the key on unknown keys."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"{source}: unknown option {key!r} for {cls.__name__}; expected one of {sorted(known)}")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"{source}: option {key!r} must be a mapping")
            value = _build(type(default), value, f"{source} [{key}]")
        kwargs[key] = value
    return cls(**kwargs)


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; other names pass through."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def config_from_dict(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """A :class:`TrainConfig` from a (possibly partial, nested) dict."""
    return _build(TrainConfig, values or {}, source)


def read_options(path: str | Path) -> dict[str, Any]:
    """The mapping of options in a YAML config file, with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: malformed YAML ({exc})") from exc
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of options at the top level")
    return values


def build_dataclass(cls: type, values: dict[str, Any], source: str) -> Any:
    """Dataclass ``cls`` from a nested dict; unknown keys raise an error naming ``source``."""
    return _build(cls, values or {}, source)


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config (or the defaults when ``path`` is None) and apply ``overrides``."""
    values = read_options(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    return config_from_dict(values, str(path) if path is not None else "defaults")


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain dict of a config (JSON/YAML ready)."""
    return dataclasses.asdict(config)
