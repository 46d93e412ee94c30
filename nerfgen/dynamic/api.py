"""Dynamic runs (kind ``dynamic``): :func:`dynamic` gives the prepared engine of a radiance field
trained on a capture whose frames carry times, :func:`train_dynamic` runs it and returns the
:class:`~nerfgen.dynamic.run.DynamicRun`. :func:`nerfgen.train` comes here by itself for such a
capture, so ``nerfgen train FOLDER`` on a D-NeRF folder needs no flag.

>>> run = nerfgen.train("data/dnerf/lego", "runs/dlego", max_seconds=300)   # doctest: +SKIP
>>> run.render(run.orbit_cameras(8), 0, time=0.5)                            # doctest: +SKIP
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from nerfgen.dynamic.run import DynamicInfo, DynamicRun, open_dynamic
from nerfgen.engine import Engine, Hook
from nerfgen.kinds import KindSpec, RunKind, read_info, register
from nerfgen.run_config import check_output, resolve_config

CAPTURE_CONFIGS = {"multi-view": "kplanes", "monocular": "kplanes"}
"""The shipped config ``config="auto"`` picks for each kind of dynamic capture."""


def dynamic(data: str | Path | None, output: str | Path, config: Any = "auto", resume: bool = False,
            **options: Any) -> Engine:
    """The engine of a dynamic run on ``data`` into ``output``, ready to :meth:`~Engine.run`.

    Args:
        data: a capture whose frames carry times (D-NeRF's layout, or instant-ngp / nerfstudio
            ``transforms.json`` with ``time`` or ``timestamp``); None when resuming (the run's own).
        output: run directory.
        config: ``"auto"`` (the shipped config for the capture, said on stderr), a shipped config
            name (``kplanes``, ``deform``, ...), a YAML path, or a :class:`DynamicConfig`.
        resume: continue the run in ``output``.
        options: config keys to override (``max_seconds=60``); None values are ignored.
    """
    from nerfgen.data import DatasetError
    from nerfgen.data.times import load_timed
    from nerfgen.dynamic.config import DynamicConfig
    from nerfgen.dynamic.task import DynamicTask
    from nerfgen.reconstruct.config import TrainConfig

    output, config = Path(output), "auto" if config is None else config  # a batch job names none
    check_output(output, resume)
    data = data or (read_info(output).data if resume else None)
    if data is None:
        raise ValueError("a dynamic run needs a dataset path")
    train = None
    if config == "auto" and not resume:
        train = load_timed(data, "train", downscale=options.get("downscale") or 1.0)
        config = CAPTURE_CONFIGS[train.capture.kind]
        print(f"nerfgen: {data}: dynamic scene, {train.capture.describe()}: config {config}", file=sys.stderr)
    if isinstance(config, TrainConfig) and not isinstance(config, DynamicConfig):
        raise ValueError(f"{data}: its frames carry times, so it trains a dynamic run: give a DynamicConfig or a "
                         f"dynamic config ({', '.join(sorted(set(CAPTURE_CONFIGS.values()) | {'deform', 'nsff'}))}), "
                         f"not a static TrainConfig")
    cfg, _ = resolve_config(DynamicConfig, config, output, resume, RunKind.DYNAMIC, options)
    memory = cfg.image_memory_mb << 20
    if train is None or cfg.downscale != (options.get("downscale") or 1.0):
        train = load_timed(data, "train", downscale=cfg.downscale, image_memory=memory)
    if cfg.train_views > 0:
        from nerfgen.data.dataset import spread_views

        train = train.subset(spread_views(len(train), cfg.train_views))
    val = None
    for split in ("val", "test") if cfg.eval_every > 0 else ():
        try:
            val = load_timed(data, split, downscale=cfg.downscale, image_memory=memory)
            break
        except DatasetError:
            continue
    return Engine(cfg, DynamicTask(cfg, train, val), output, resume=resume)


def train_dynamic(data: str | Path | None, output: str | Path, config: Any = "auto", resume: bool = False,
                  on_step: Hook | None = None, **options: Any) -> DynamicRun:
    """Train a dynamic radiance field (see :func:`dynamic`) and return it as a :class:`DynamicRun`."""
    engine = dynamic(data, output, config, resume, **options)
    engine.run([on_step] if on_step is not None else [])
    return engine.task.live_run(output)


register(KindSpec(RunKind.DYNAMIC, DynamicInfo, open_dynamic, dynamic, target="path"))
