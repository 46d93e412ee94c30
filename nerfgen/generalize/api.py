"""Generalizable runs (kind ``generalizable``): :func:`generalize_training` gives the prepared
engine of a pixelNeRF model trained on many scenes, :func:`train_generalizable` runs it, and
:func:`load_general_run` opens any generalizable run (trained, or MVSNeRF's imported weights).

>>> run = nerfgen.train_generalizable(None, "runs/pixelnerf", max_seconds=1800)    # doctest: +SKIP
>>> run.use_sources(nerfgen.SourceViews.from_capture("data/mug", [0, 4, 9]))       # doctest: +SKIP
>>> image = run.render(run.orbit_cameras(8), 0)                                    # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nerfgen.engine import Engine, Hook
from nerfgen.generalize.config import GeneralizeConfig
from nerfgen.generalize.run import GeneralRun, GeneralRunInfo, open_general_run
from nerfgen.kinds import KindSpec, RunKind, load_run, read_info, register
from nerfgen.run_config import check_output, resolve_config


def generalize_training(data: str | Path | None, output: str | Path, config: Any = None, resume: bool = False,
                        init: str | Path | None = None, **options: Any) -> Engine:
    """The engine of a generalizable run into ``output``, ready to :meth:`~Engine.run`.

    Args:
        data: a folder of capture folders to train on (any format nerfgen loads, one scene each),
            or None for procedural scenes rendered by nerfgen without end (and when resuming:
            the run's own). With ``init``: the capture to fine-tune on.
        output: run directory.
        config: a shipped config name (``pixelnerf``, the default), a YAML path or a
            :class:`GeneralizeConfig`.
        resume: continue the run in ``output``.
        init: a generalizable run to start from: fine-tune it on the capture ``data``
            (:mod:`nerfgen.generalize.finetune`).
        options: config keys to override; None values are ignored.
    """
    from nerfgen.generalize.finetune import finetune_training

    if init is not None or (resume and _fine_tuned(Path(output))):
        return finetune_training(data, output, init, resume, **options)
    from nerfgen import distributed
    from nerfgen.generalize.data import CaptureCollection, ProceduralScenes
    from nerfgen.generalize.task import HELD_OUT_DIR, GeneralizeTask
    from nerfgen.render import background_color
    from nerfgen.scenes.multiview import write_held_out

    output = Path(output)
    check_output(output, resume)
    cfg, info = resolve_config(GeneralizeConfig, config or "pixelnerf", output, resume, RunKind.GENERALIZABLE, options)
    if data is None and info is not None and info.data != "procedural":
        data = info.data
    background = background_color(cfg.background)
    if data is None:
        scenes = ProceduralScenes(cfg.scenes, cfg.seed, cfg.pool, cfg.refresh_every, background)
    else:
        scenes = CaptureCollection(data, cfg.collection_size, background)
    world = distributed.current()
    held_out = [output / HELD_OUT_DIR / f"scene_{i:03d}" for i in range(cfg.eval_scenes)]
    if world.main:  # rank 0 renders the held-out scenes, the others wait for them
        held_out = write_held_out(output / HELD_OUT_DIR, cfg.eval_scenes, cfg.scenes, sources=3, seed=cfg.seed)
    world.barrier()
    return Engine(cfg, GeneralizeTask(cfg, scenes, held_out), output, resume=resume, world=world)


def _fine_tuned(output: Path) -> bool:
    info = read_info(output)
    return info.kind is RunKind.GENERALIZABLE and info.model == "pixelnerf" and bool(info.config.finetune.init)


def train_generalizable(data: str | Path | None, output: str | Path, config: Any = None, resume: bool = False,
                        on_step: Hook | None = None, **options: Any) -> GeneralRun:
    """Train a generalizable model (see :func:`generalize_training`) and return it as a run."""
    engine = generalize_training(data, output, config, resume, **options)
    engine.run([on_step] if on_step is not None else [])
    return engine.task.live_run(output)


def load_general_run(run_dir: str | Path, device: str = "auto") -> GeneralRun:
    """Open the generalizable run in ``run_dir`` (:func:`nerfgen.load_run`, refusing other kinds)."""
    run = load_run(run_dir, device)
    if not isinstance(run, GeneralRun):
        raise ValueError(f"{run_dir}: a {run.info.kind.value} run, not a generalizable run")
    return run


register(KindSpec(RunKind.GENERALIZABLE, GeneralRunInfo, open_general_run, generalize_training, target="path"))
