"""Per-scene fine-tuning from a generalizable model (``nerfgen train CAPTURE --init RUN``): the
model's weights are the start, the capture's training views the only scene; each step renders
random pixels of one training view from all the others (leave one out), as IBRNet and pixelNeRF
fine-tune. The result is a generalizable run whose source views are the capture's training views.

>>> engine = finetune_training("data/mug", "runs/mug_ft", "runs/pixelnerf", max_seconds=120)  # doctest: +SKIP
>>> engine.run()                                                                               # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from nerfgen.config import build_config, config_to_dict, merge_overrides
from nerfgen.engine import Engine
from nerfgen.generalize.config import GeneralizeConfig
from nerfgen.kinds import RUN_FILE, RunKind, read_info
from nerfgen.run_config import check_output, resolve_config

OPTIONS = {"max_steps", "max_seconds", "seed", "eval_every", "threads", "device", "downscale", "train_views", "lr",
           "rays", "checkpoint_every", "checkpoint_seconds"}
"""The options of ``nerfgen train`` a fine-tuning run takes (others are refused)."""
DEFAULTS = {"lr_warmup_steps": 10, "eval_every": 0, "checkpoint_every": 0, "scenes_per_step": 1, "max_steps": 2000,
            "max_seconds": 0.0}
"""Settings of a fine-tuning run that differ from the generalizable run it starts from (its
budget is its own: 2000 steps unless given)."""


def finetune_config(init: Path, capture: str, options: dict[str, Any]) -> GeneralizeConfig:
    """The generalizable run's config with the fine-tuning section and ``options`` on top."""
    info = read_info(init)
    if info.kind is not RunKind.GENERALIZABLE:
        raise ValueError(f"{init / RUN_FILE}: --init takes a generalizable run, this is a {info.kind.value} run")
    if info.model != "pixelnerf":
        raise ValueError(f"{init / RUN_FILE}: fine-tuning starts from a trained pixelnerf run, this is {info.model}")
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ValueError(f"fine-tuning from {init} takes none of {', '.join(unknown)} "
                         f"(it takes {', '.join(sorted(OPTIONS))})")
    given = dict(options)
    section = {"init": str(Path(init).resolve()), "capture": str(Path(capture).resolve()),
               "views": given.pop("train_views", 0) or 0, "downscale": given.pop("downscale", 1.0) or 1.0}
    values = {**config_to_dict(info.config), **DEFAULTS, "finetune": section}
    return build_config(GeneralizeConfig, {**values, **merge_overrides(values, given)}, f"fine-tuning {init}")


def finetune_training(data: str | Path | None, output: str | Path, init: str | Path | None, resume: bool = False,
                      **options: Any) -> Engine:
    """The engine of a run fine-tuning the generalizable run ``init`` on the capture ``data``
    (``init`` None when resuming: the run's own), ready to :meth:`~Engine.run`."""
    from nerfgen.data import load_dataset
    from nerfgen.data.dataset import spread_views
    from nerfgen.files import load_state, read_tensors
    from nerfgen.generalize.data import OneScene, TrainingScene
    from nerfgen.generalize.models import orbit_of
    from nerfgen.generalize.run import MODEL_FILE, SourceRecord
    from nerfgen.generalize.sources import SourceViews
    from nerfgen.generalize.task import GeneralizeTask
    from nerfgen.render import background_color

    output = Path(output)
    check_output(output, resume)
    given = {k: v for k, v in options.items() if v is not None}
    if resume:
        cfg, _ = resolve_config(GeneralizeConfig, None, output, True, RunKind.GENERALIZABLE, given)
    else:
        if data is None:
            raise ValueError("fine-tuning needs the capture to fine-tune on")
        cfg = finetune_config(Path(init), str(data), given)
    ft = cfg.finetune
    dataset = load_dataset(ft.capture, "train", downscale=ft.downscale)
    views = spread_views(len(dataset), ft.views) if ft.views > 0 else list(range(len(dataset)))
    background = background_color(cfg.background)
    sources = SourceViews.from_dataset(dataset, views, background)
    scene = TrainingScene((sources.images * 255 + 0.5).byte(), sources.cameras, ft.capture)
    n = len(views)
    cfg = dataclasses.replace(cfg, sources=(max(1, n - 1), max(1, n - 1)))
    task = GeneralizeTask(cfg, OneScene(scene), [], SourceRecord(ft.capture, views, "train", ft.downscale))
    engine = Engine(cfg, task, output, resume=resume)
    task.orbit = orbit_of(sources, task.model)
    if not resume:  # the generalizable model's weights are the start
        path = Path(ft.init) / MODEL_FILE
        load_state(task.model, read_tensors(path), path, "the model fine-tuning starts from")
    return engine


__all__ = ["finetune_config", "finetune_training"]
