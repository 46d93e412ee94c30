"""GAN runs (kind ``gan``): :func:`gan_training` gives the prepared engine, :func:`train_gan` runs
it, :func:`load_gan_run` opens one.

>>> run = nerfgen.train_gan("data/clevr", "runs/clevr", config="giraffe", max_seconds=600)  # doctest: +SKIP
>>> run.write_sample_sheet("samples.png", 64)                                             # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nerfgen.engine import Engine, Hook
from nerfgen.gan.config import GanConfig
from nerfgen.gan.run import GanRun, GanRunInfo, open_gan_run
from nerfgen.kinds import KindSpec, RunKind, load_run, register
from nerfgen.run_config import check_output, resolve_config


def gan_training(data: str | Path | None, output: str | Path, config: Any = None, resume: bool = False,
                 **options: Any) -> Engine:
    """The engine of a GAN run on the images in ``data`` into ``output``, ready to :meth:`~Engine.run`.

    Args:
        data: a folder of images (any: photos, renders; ``nerfgen gan data`` writes embedded sets);
            None when resuming (the run's own).
        output: run directory.
        config: a shipped config name (``giraffe``, the default, or ``graf``), a YAML path or a
            :class:`GanConfig`.
        resume: continue the run in ``output`` (its config, with ``options`` on top).
        options: config keys to override (``max_seconds=600``); None values are ignored.
    """
    from nerfgen.gan.data import ImageCollection
    from nerfgen.gan.task import GanTask

    output = Path(output)
    check_output(output, resume)
    cfg, info = resolve_config(GanConfig, config or "giraffe", output, resume, RunKind.GAN, options)
    data = data or (info.data if info is not None else None)
    if data is None:
        raise ValueError("a GAN run needs an image folder")
    collection = ImageCollection.from_folder(data, cfg.size, cfg.held_out)
    return Engine(cfg, GanTask(cfg, collection, str(data)), output, resume=resume)


def train_gan(data: str | Path | None, output: str | Path, config: Any = None, resume: bool = False,
              on_step: Hook | None = None, **options: Any) -> GanRun:
    """Train a GAN (see :func:`gan_training`) and return its EMA generator as a :class:`GanRun`."""
    engine = gan_training(data, output, config, resume, **options)
    engine.run([on_step] if on_step is not None else [])
    return engine.task.live_run(output)


def load_gan_run(run_dir: str | Path, device: str = "auto") -> GanRun:
    """Open the GAN run in ``run_dir`` on ``device`` (:func:`nerfgen.load_run`, refusing other kinds)."""
    run = load_run(run_dir, device)
    if not isinstance(run, GanRun):
        raise ValueError(f"{run_dir}: a {run.info.kind.value} run, not a gan run")
    return run


register(KindSpec(RunKind.GAN, GanRunInfo, open_gan_run, gan_training, target="path"))
