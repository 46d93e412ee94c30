"""Starting GAN runs: :func:`gan_training` gives the prepared engine, :func:`train_gan` runs it.

>>> run = nerfgen.train_gan("data/clevr", "runs/clevr", config="giraffe", max_seconds=600)  # doctest: +SKIP
>>> run.write_sample_sheet("samples.png", 64)                                             # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nerfgen.api import check_output
from nerfgen.config import config_path, config_to_dict, load_config, override_config
from nerfgen.engine import Engine, Hook
from nerfgen.gan.config import GanConfig
from nerfgen.gan.run import RUN_FILE, GanRun, read_gan_info


def gan_training(data: str | Path | None, output: str | Path, config: Any = "giraffe", resume: bool = False,
                 **options: Any) -> Engine:
    """The engine of a GAN run on the images in ``data`` into ``output``, ready to :meth:`~Engine.run`.

    Args:
        data: a folder of images (any: photos, renders; ``nerfgen gan data`` writes embedded sets);
            None when resuming (the run's own).
        output: run directory.
        config: a shipped config name (``giraffe``, ``graf``), a YAML path or a :class:`GanConfig`.
        resume: continue the run in ``output`` (its config, with ``options`` on top).
        options: config keys to override (``max_seconds=600``); None values are ignored.
    """
    from nerfgen.gan.data import ImageCollection
    from nerfgen.gan.task import GanTask

    output = Path(output)
    check_output(output, resume)
    if resume:
        info = read_gan_info(output)
        cfg = override_config(GanConfig, config_to_dict(info.config), str(output / RUN_FILE), options)
        data = data or info.data
    elif isinstance(config, GanConfig):
        cfg = override_config(GanConfig, config_to_dict(config), "GanConfig", options)
    else:
        cfg = load_config(GanConfig, config_path(config), options)
    if data is None:
        raise ValueError("a GAN run needs an image folder")
    collection = ImageCollection.from_folder(data, cfg.size, cfg.held_out)
    return Engine(cfg, GanTask(cfg, collection, str(data)), output, resume=resume)


def train_gan(data: str | Path | None, output: str | Path, config: Any = "giraffe", resume: bool = False,
              on_step: Hook | None = None, **options: Any) -> GanRun:
    """Train a GAN (see :func:`gan_training`) and return its EMA generator as a :class:`GanRun`."""
    engine = gan_training(data, output, config, resume, **options)
    engine.run([on_step] if on_step is not None else [])
    return engine.task.live_run(output)
