"""Reconstruction runs (kind ``reconstruction``): :func:`reconstruction` gives the prepared engine of
a radiance field trained on posed images, :func:`train` runs it and returns the :class:`~nerfgen.runs.Run`.

>>> run = nerfgen.train("data/tabletop", "runs/tabletop", config="demo", max_seconds=60)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from nerfgen.engine import Engine, Hook
from nerfgen.kinds import KindSpec, RunKind, read_info, register, spec
from nerfgen.run_config import check_output, resolve_config
from nerfgen.runs import RunInfo, open_run

LAYOUT_CONFIGS = {"object": "ngp", "forward": "llff", "unbounded": "ngp_unbounded"}
"""The shipped config ``config="auto"`` picks for each scene layout (:func:`nerfgen.data.scene_layout`)."""


def _data_format(data: str | Path, name: str) -> str:
    """The reader ``name`` means for ``data`` (``auto``: the folder's), saying why when several matched."""
    from nerfgen.data.formats import choose_format

    choice = choose_format(Path(data), "train", name)
    if choice.reason:
        print(f"nerfgen: {data}: {choice.reason}", file=sys.stderr)
    return choice.reader.name


def reconstruction(data: str | Path | None, output: str | Path, config: Any = "auto", resume: bool = False,
                   format: str | None = None, init: str | Path | None = None, **options: Any) -> Engine:
    """The engine of a reconstruction run on ``data`` into ``output``, ready to :meth:`~Engine.run`.
    A capture whose frames carry times is dynamic: its engine is :func:`nerfgen.dynamic.api.dynamic`'s.

    Args:
        data: capture folder (NeRF-synthetic, instant-ngp / nerfstudio ``transforms.json``, LLFF,
            COLMAP, IDR/NeuS); None when resuming (the run's own).
        output: run directory.
        config: ``"auto"`` (the shipped config for the capture's layout: ``ngp`` for an object in a
            box, ``llff`` for forward-facing, ``ngp_unbounded`` otherwise, said on stderr), a
            shipped config name (``ngp``, ``demo``, ...), a YAML path, or a ``TrainConfig``.
        resume: continue the run in ``output`` (its config, with ``options`` on top).
        format: the capture's reader (``idr``, ``llff``, ... see :func:`nerfgen.data.load_dataset`);
            default: the run's own when resuming, else found from the folder (said on stderr when
            several match). The run records it (``data_format``), so eval and resume read the same.
        init: a run to start from instead of noise (a generalizable run: its kind fine-tunes it on
            ``data``); a resumed run of another kind goes to that kind likewise.
        options: config keys to override (``max_seconds=60``); None values are ignored.
    """
    from nerfgen.data import DatasetError, load_dataset, scene_layout
    from nerfgen.data.dataset import spread_views
    from nerfgen.reconstruct import ReconstructionTask, TrainConfig

    output, config = Path(output), "auto" if config is None else config  # a batch job names none
    check_output(output, resume)
    if init is None and _dynamic(data, output, resume):  # a capture whose frames carry times (or such a run, resumed)
        from nerfgen.dynamic.api import dynamic

        return dynamic(data, output, config, resume, **options)
    if init is not None or resume:
        started = read_info(init if init is not None else output).kind
        if started is not RunKind.RECONSTRUCTION:
            return spec(started).engine(data, output, resume=resume, init=init, **options)
        if init is not None:
            raise ValueError(f"{init}: --init takes a generalizable run to fine-tune, this is a reconstruction run")
    data = data or (read_info(output).data if resume else None)
    if data is None:
        raise ValueError("reconstruction needs a dataset path")
    options["data_format"] = format or options.get("data_format")
    dataset = None
    if config == "auto" and not resume:
        options["data_format"] = _data_format(data, options["data_format"] or "auto")
        dataset = load_dataset(data, "train", downscale=options.get("downscale") or 1.0, format=options["data_format"])
        layout = scene_layout(dataset)
        config = LAYOUT_CONFIGS[layout.kind]
        print(f"nerfgen: {data}: {layout.kind} scene ({layout.reason}): config {config}", file=sys.stderr)
    cfg, _ = resolve_config(TrainConfig, config, output, resume, RunKind.RECONSTRUCTION, options)
    if dataset is None:
        cfg = dataclasses.replace(cfg, data_format=_data_format(data, cfg.data_format))
    memory, fmt = cfg.image_memory_mb << 20, cfg.data_format
    if dataset is None or cfg.downscale != (options.get("downscale") or 1.0):
        dataset = load_dataset(data, "train", downscale=cfg.downscale, image_memory=memory, format=fmt)
    if dataset.background_reason:
        print(f"nerfgen: {dataset.background_reason}", file=sys.stderr)
    if cfg.train_views > 0:
        dataset = dataset.subset(spread_views(len(dataset), cfg.train_views))
    val = None
    for split in ("val", "test") if cfg.eval_every > 0 else ():
        try:
            val = load_dataset(data, split, downscale=cfg.downscale, image_memory=memory, format=fmt)
            break
        except DatasetError:
            continue
    return Engine(cfg, ReconstructionTask(cfg, dataset, val), output, resume=resume)


def _dynamic(data: str | Path | None, output: Path, resume: bool) -> bool:
    """Whether this run is a dynamic one: a capture with times, or a dynamic run to resume."""
    from nerfgen.data.times import is_dynamic

    if resume:
        return read_info(output).kind is RunKind.DYNAMIC
    return data is not None and is_dynamic(data)


def train(data: str | Path | None, output: str | Path, config: Any = "auto", resume: bool = False,
          on_step: Hook | None = None, format: str | None = None, init: str | Path | None = None,
          **options: Any):
    """Train a radiance field on posed images (see :func:`reconstruction`; ``format`` names the
    capture's reader) and return it as a :class:`Run`.

    ``on_step`` is called after every step with a :class:`~nerfgen.engine.StepReport`.
    """
    engine = reconstruction(data, output, config, resume, format, init, **options)
    engine.run([on_step] if on_step is not None else [])
    return engine.task.live_run(output)


register(KindSpec(RunKind.RECONSTRUCTION, RunInfo, open_run, reconstruction, target="path"))


