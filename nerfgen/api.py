"""nerfgen's public API, what a notebook and the viewer use (re-exported as ``nerfgen.*``).

>>> import nerfgen
>>> run = nerfgen.train("data/tabletop", "runs/tabletop", config="demo", max_seconds=60)  # doctest: +SKIP
>>> image = run.render(run.orbit_cameras(8), 3)                                           # doctest: +SKIP
>>> run.render_orbit("runs/tabletop/orbit.mp4", frames=60)                                # doctest: +SKIP
>>> run.export_mesh("runs/tabletop/mesh.ply")                                             # doctest: +SKIP
>>> cube = nerfgen.generate("a red cube", "runs/red-cube")                                # doctest: +SKIP
>>> same = nerfgen.load_run("runs/red-cube", device="cpu")                                # doctest: +SKIP

:func:`reconstruction` and :func:`generation` give the prepared :class:`~nerfgen.engine.Engine`
instead of running it (the command line and the live viewer start runs that way).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from nerfgen.config import build_config, config_path, load_config, merge_overrides
from nerfgen.engine import Engine, Hook
from nerfgen.engine.checkpoint import STATE_FILE, TRAIN_STATE_FILE
from nerfgen.runs import RUN_FILE, Run, load_run, read_run_info

__all__ = ["generate", "generation", "load_run", "reconstruction", "train"]


def check_output(output: Path, resume: bool) -> None:
    """A new run needs a fresh directory; a resumed one a complete checkpoint."""
    if resume:
        for name in (STATE_FILE, TRAIN_STATE_FILE, RUN_FILE):
            if not (output / name).is_file():
                raise FileNotFoundError(f"{output / name}: nothing to resume (no checkpoint of this nerfgen in {output})")
    elif (output / STATE_FILE).exists():
        raise FileExistsError(f"{output}: already holds a run; pass --resume to continue it or pick another --output")


def _config(cls: type, config: Any, output: Path, resume: bool, kind: str, options: dict[str, Any]):
    """The run's config and, when resuming, its :class:`~nerfgen.runs.RunInfo`: the resumed run's
    own config, a ``cls`` instance, or a shipped config name / YAML path, with ``options`` on top
    (None values ignored)."""
    given = {k: v for k, v in options.items() if v is not None}
    if resume:
        info = read_run_info(output)
        if info.kind != kind:
            raise ValueError(f"{output / RUN_FILE}: a {info.kind} run, not a {kind} run")
        return build_config(cls, {**info.config, **merge_overrides(info.config, given)}, str(output / RUN_FILE)), info
    if isinstance(config, cls):
        return build_config(cls, {**vars(config), **given}, cls.__name__), None
    return load_config(cls, config_path(config), given), None


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
                   format: str | None = None, **options: Any) -> Engine:
    """The engine of a reconstruction run on ``data`` into ``output``, ready to :meth:`~Engine.run`.

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
        options: config keys to override (``max_seconds=60``); None values are ignored.
    """
    from nerfgen.data import DatasetError, load_dataset, scene_layout
    from nerfgen.data.dataset import spread_views
    from nerfgen.reconstruct import ReconstructionTask, TrainConfig

    output = Path(output)
    check_output(output, resume)
    data = data or (read_run_info(output).data if resume else None)
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
    cfg, _ = _config(TrainConfig, config, output, resume, "reconstruction", options)
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


def train(data: str | Path | None, output: str | Path, config: Any = "auto", resume: bool = False,
          on_step: Hook | None = None, format: str | None = None, **options: Any) -> Run:
    """Train a radiance field on posed images (see :func:`reconstruction`; ``format`` names the
    capture's reader) and return it as a :class:`Run`.

    ``on_step`` is called after every step with a :class:`~nerfgen.engine.StepReport`.
    """
    engine = reconstruction(data, output, config, resume, format, **options)
    engine.run([on_step] if on_step is not None else [])
    return engine.task.live_run(output)


def _generation_config(prompt: str | None, config: Any, output: Path, resume: bool, kind: str,
                       options: dict[str, Any]):
    """The config of a ``kind`` run from a prompt (default ``generate_{prior}``) and, when resuming,
    its :class:`~nerfgen.runs.RunInfo` (a prompt given then must be the run's)."""
    from nerfgen.generate.config import GenerateConfig

    check_output(output, resume)
    default = f"generate_{(options.get('prior') or 'builtin').replace('-', '_')}"
    cfg, info = _config(GenerateConfig, config or default, output, resume, kind, options)
    if info is not None and prompt is not None and prompt != info.prompt:
        raise ValueError(f"{output}: generated {info.prompt!r}; it cannot resume as {prompt!r}")
    return cfg, info


def generation(prompt: str | None, output: str | Path, config: Any = None, resume: bool = False,
               loaded_prior: Any = None, **options: Any) -> Engine:
    """The engine of a text-to-3D run into ``output``, ready to :meth:`~Engine.run`.

    Args:
        prompt: the text (None when resuming: the run's own).
        output: run directory.
        config: a shipped config name, a YAML path or a ``GenerateConfig``; default
            ``generate_{prior}`` for the prior the options name (``builtin`` unless told).
        resume: continue the run in ``output``.
        loaded_prior: a loaded :class:`~nerfgen.prior.DiffusionPrior` to use (shared by several
            prompts); default: load the one the config names (``prior``, ``model``).
        options: config keys to override (``max_steps=500``, ``prior="stable-diffusion"``).
    """
    from nerfgen.engine import resolve_device
    from nerfgen.generate.task import GenerationTask
    from nerfgen.prior import build_prior

    output = Path(output)
    cfg, info = _generation_config(prompt, config, output, resume, "generation", options)
    if info is not None:
        prompt = info.prompt
    if not prompt:
        raise ValueError("generation needs a prompt")
    if loaded_prior is None:
        loaded_prior = build_prior(cfg.prior, cfg.model, resolve_device(cfg.device))
    return Engine(cfg, GenerationTask(prompt, cfg, loaded_prior), output, resume=resume)


def scene_layout(prompt: str | None, layout: Any, radius: float) -> Any:
    """The :class:`~nerfgen.generate.layout.Layout` of a scene: ``layout`` (a ``Layout`` or a
    layout file; what it breaks of its own relations is warned about) or, from ``prompt``, its
    objects and relations (:func:`~nerfgen.generate.scene_prompt.parse_scene`) placed by
    :func:`~nerfgen.generate.layout_solver.solve_layout` in a sphere of ``radius``."""
    import warnings

    from nerfgen.generate.layout import Layout, check_layout, read_layout
    from nerfgen.generate.layout_solver import solve_layout
    from nerfgen.generate.scene_prompt import parse_scene

    if layout is None:
        if not prompt:
            raise ValueError("a scene needs a prompt or a layout")
        return solve_layout(parse_scene(prompt), radius=radius)
    layout = layout if isinstance(layout, Layout) else read_layout(layout)
    if prompt:
        layout = Layout(prompt, layout.objects, layout.relations)
    for problem in check_layout(layout):
        warnings.warn(f"the layout breaks its own relations: {problem}", stacklevel=3)
    return layout


def scene_generation(prompt: str | None, output: str | Path, config: Any = None, resume: bool = False,
                     loaded_prior: Any = None, layout: Any = None, **options: Any) -> Engine:
    """The engine of a text-to-scene run into ``output``: one field per object, composed.

    Args:
        prompt: the scene's text ("a red cube on a blue sphere"), split into objects and relations
            and laid out; or None with ``layout``, or when resuming.
        output: run directory (its ``layout.json`` is the layout, kept up to date).
        config: as :func:`generation` (``config.scene`` holds what is particular to scenes).
        resume: continue the run in ``output``.
        loaded_prior: a loaded prior to use.
        layout: a :class:`~nerfgen.generate.layout.Layout` or a layout JSON file: objects, their
            prompts and boxes given instead of solved from the prompt (a prompt given too replaces
            the layout's scene prompt).
        options: config keys to override.
    """
    from nerfgen.engine import resolve_device
    from nerfgen.generate.layout import read_layout
    from nerfgen.generate.scene_task import LAYOUT_FILE, SceneGenerationTask
    from nerfgen.prior import build_prior

    output = Path(output)
    cfg, info = _generation_config(prompt, config, output, resume, "scene", options)
    if info is not None:
        if layout is not None:
            raise ValueError(f"{output}: a resumed scene keeps its own layout; give no layout")
        plan = read_layout(output / LAYOUT_FILE)
    else:
        plan = scene_layout(prompt, layout, cfg.scene.radius)
        if options.get("max_seconds") is None and cfg.scene.max_seconds is not None:
            cfg = dataclasses.replace(cfg, max_seconds=cfg.scene.max_seconds)
    if loaded_prior is None:
        loaded_prior = build_prior(cfg.prior, cfg.model, resolve_device(cfg.device))
    return Engine(cfg, SceneGenerationTask(plan, cfg, loaded_prior), output, resume=resume)


def generate_scene(prompt: str | None, output: str | Path, config: Any = None, resume: bool = False,
                   loaded_prior: Any = None, layout: Any = None, on_step: Hook | None = None, **options: Any):
    """Generate a scene of several objects (see :func:`scene_generation`) and return it as a
    :class:`~nerfgen.generate.scene_run.SceneRun` (``output`` also gets previews, ``orbit.mp4``
    and ``scene.glb``)."""
    engine = scene_generation(prompt, output, config, resume, loaded_prior, layout, **options)
    engine.run([on_step] if on_step is not None else [])
    return engine.task.live_run(output)


def generate(prompt: str | None, output: str | Path, config: Any = None, resume: bool = False,
             loaded_prior: Any = None, on_step: Hook | None = None, **options: Any) -> Run:
    """Generate an object from ``prompt`` (see :func:`generation`) and return it as a :class:`Run`
    (``output`` also gets previews, ``orbit.mp4`` and ``mesh.ply``)."""
    engine = generation(prompt, output, config, resume, loaded_prior, **options)
    engine.run([on_step] if on_step is not None else [])
    return engine.task.live_run(output)
