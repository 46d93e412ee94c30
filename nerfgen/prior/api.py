"""Prior runs (kind ``prior``): :func:`prior_training` gives the prepared engine of the built-in
prior's training, :func:`train_prior` runs it and then the guidance model's, and returns the
:class:`~nerfgen.prior.run.PriorRun`.

>>> run = nerfgen.train_prior("runs/prior", max_steps=500)             # doctest: +SKIP
>>> images = run.sample("a red cube", views=4)                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nerfgen import distributed
from nerfgen.config import stored_config
from nerfgen.engine import Engine, Hook
from nerfgen.files import read_json, write_json
from nerfgen.kinds import RUN_FILE, KindSpec, RunKind, load_run, register
from nerfgen.prior.run import PriorRun, PriorRunInfo, open_prior_run
from nerfgen.prior.train_config import PriorTrainConfig
from nerfgen.run_config import check_output, resolve_config

LEGACY_CONFIG = "config.json"
"""Where prior runs of earlier versions kept their config (before ``run.json``)."""


def _adopt_legacy(output: Path) -> None:
    """Give a prior run of an earlier version (``config.json``, no ``run.json``) its ``run.json``."""
    legacy = output / LEGACY_CONFIG
    if not (output / RUN_FILE).is_file() and legacy.is_file():
        config = stored_config(PriorTrainConfig, read_json(legacy), str(legacy))
        write_json(output / RUN_FILE, PriorRunInfo(config).to_dict())


def report_rendering(done: int, total: int) -> None:
    if done % 100 == 0 or done == total:
        print(f"prior: rendered {done}/{total} objects", file=sys.stderr, flush=True)


def prior_training(output: str | Path, config: Any = None, resume: bool = False,
                   progress: Callable[[int, int], None] | None = report_rendering, **options: Any) -> Engine:
    """The engine of a prior training run into ``output``, ready to :meth:`~Engine.run`: the object
    library rendered (or read from ``output``'s cache; under torchrun rank 0 renders, the others
    read what it wrote) and its captions embedded.

    Args:
        output: run directory.
        config: a shipped config name (``prior``, the default: the shipped weights'), a YAML
            path or a :class:`PriorTrainConfig`.
        resume: continue the run in ``output`` (its config, with ``options`` on top).
        progress: called with ``(done, total)`` objects while rendering (None: silent).
        options: config keys to override (``max_steps=500``, ``device="cuda"``); None values ignored.
    """
    from nerfgen.prior.train import PriorTask, prepare

    output = Path(output)
    if resume:
        _adopt_legacy(output)
    check_output(output, resume)
    cfg, _ = resolve_config(PriorTrainConfig, config or "prior", output, resume, RunKind.PRIOR, options)
    world = distributed.current()
    if world.main:
        views, text = prepare(cfg, output, progress)
    world.barrier()  # the other ranks read what rank 0 rendered
    if not world.main:
        views, text = prepare(cfg, output)
    return Engine(cfg, PriorTask(cfg, views, text), output, resume=resume)


def guide_training(engine: Engine) -> bool:
    """The second stage of a prior run whose first stage ``engine`` has run: train the guidance
    model (``guide`` in the config; ``max_steps: 0`` trains none) in ``output/guide``, on the
    prior's device and threads, resuming what an earlier run left there. Whether one was trained."""
    from nerfgen.engine.checkpoint import has_checkpoint
    from nerfgen.prior.guide_train import train_guide

    cfg, task = engine.config, engine.task
    guide = dataclasses.replace(cfg.guide, device=cfg.device, threads=cfg.threads)
    if guide.max_steps <= 0 and guide.max_seconds <= 0:
        return False
    train_guide(task.views, task.text, guide, engine.output, resume=has_checkpoint(engine.output / "guide"))
    return True


def train_prior(output: str | Path, config: Any = None, resume: bool = False, on_step: Hook | None = None,
                **options: Any) -> PriorRun:
    """Train the built-in prior (see :func:`prior_training`), then its guidance model
    (:func:`guide_training`), and return the :class:`PriorRun`."""
    engine = prior_training(output, config, resume, **options)
    engine.run([on_step] if on_step is not None else [])
    guide_training(engine)
    return load_run(output, engine.config.device)


register(KindSpec(RunKind.PRIOR, PriorRunInfo, open_prior_run, prior_training, target="none"))
