"""What every kind of run does before training: check its output directory, and resolve its config
(a resumed run's own, a config object, or a shipped name / YAML file, with keyword options on top)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from nerfgen.config import config_path, config_to_dict, load_config, override_config, stored_config
from nerfgen.engine import checkpoint as ckpt
from nerfgen.engine.checkpoint import STATE_FILE, has_checkpoint
from nerfgen.kinds import RUN_FILE, RunKind, read_info


def check_output(output: Path, resume: bool) -> None:
    """A new run needs a fresh directory; a resumed one a checkpoint and its ``run.json`` (put
    back from the newest checkpoint when a kill came between writing it and mirroring its files
    at the top of the run directory)."""
    output = Path(output)
    if resume:
        if has_checkpoint(output) and not (output / RUN_FILE).is_file():
            _restore_top(output)
        if not has_checkpoint(output) or not (output / RUN_FILE).is_file():
            raise FileNotFoundError(f"{output}: nothing to resume (no checkpoint of this nerfgen in {output})")
    elif has_checkpoint(output) or (output / STATE_FILE).exists():
        raise FileExistsError(f"{output}: already holds a run; pass --resume to continue it or pick another --output")


def _restore_top(output: Path) -> None:
    for point in ckpt.checkpoints(output):
        try:
            ckpt.check(point)
        except (ValueError, FileNotFoundError):
            continue
        if (point.folder / RUN_FILE).is_file():
            ckpt.publish(point, output)
            ckpt.say(f"{output}: restored the run's files from {point.folder} (the run was stopped while writing them)")
            return


def resolve_config(cls: type, config: Any, output: Path, resume: bool, kind: RunKind, options: dict[str, Any]):
    """The run's config and, when resuming, its info (``run.json``, of ``kind``): the resumed run's
    own config (keys earlier versions wrote and this kind never reads left out, with a warning), a
    config instance (of ``cls`` or another kind's with the same keys), or a shipped config name /
    YAML path, with ``options`` on top (None values ignored)."""
    if resume:
        info = read_info(output)
        if info.kind is not kind:
            raise ValueError(f"{output / RUN_FILE}: a {info.kind.value} run, not a {kind.value} run")
        own = info.config if isinstance(info.config, dict) else config_to_dict(info.config)
        return stored_config(cls, own, str(output / RUN_FILE), options), info
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return override_config(cls, config_to_dict(config), type(config).__name__, options), None
    return load_config(cls, config_path(config), options), None
