"""Generation runs from text: an object (kind ``generation``: :func:`generation` gives the prepared
engine, :func:`generate` runs it) or a scene of several objects (kind ``scene``:
:func:`scene_generation`, :func:`generate_scene`), by score distillation against a diffusion prior.

>>> cube = nerfgen.generate("a red cube", "runs/red-cube")                                # doctest: +SKIP
>>> stack = nerfgen.generate_scene("a red cube on a blue sphere", "runs/stack")           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from nerfgen.engine import Engine, Hook
from nerfgen.generate.scene_run import open_scene_run
from nerfgen.kinds import KindSpec, RunKind, register
from nerfgen.run_config import check_output, resolve_config
from nerfgen.runs import Run, RunInfo, open_run

def _generation_config(prompt: str | None, config: Any, output: Path, resume: bool, kind: RunKind,
                       options: dict[str, Any]):
    """The config of a ``kind`` run from a prompt (default ``generate_{prior}``) and, when resuming,
    its :class:`~nerfgen.runs.RunInfo` (a prompt given then must be the run's)."""
    from nerfgen.generate.config import GenerateConfig, SceneConfig

    check_output(output, resume)
    default = f"generate_{(options.get('prior') or 'builtin').replace('-', '_')}"
    cls = SceneConfig if kind is RunKind.SCENE else GenerateConfig
    cfg, info = resolve_config(cls, config or default, output, resume, kind, options)
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
        options: config keys to override (``max_steps=500``, ``prior="stable-diffusion"``,
            ``refine={"enabled": True}``: a refinement stage after the coarse steps, see
            :mod:`nerfgen.generate.refine`).
    """
    from nerfgen.engine import resolve_device
    from nerfgen.generate.task import GenerationTask
    from nerfgen.prior import build_prior

    output = Path(output)
    cfg, info = _generation_config(prompt, config, output, resume, RunKind.GENERATION, options)
    if info is not None:
        prompt = info.prompt
    if not prompt:
        raise ValueError("generation needs a prompt")
    if loaded_prior is None:
        loaded_prior = build_prior(cfg.prior, cfg.model, resolve_device(cfg.device))
    if cfg.refine.enabled:
        from nerfgen.generate.refine import RefinedGenerationTask, engine_budget

        return Engine(engine_budget(cfg), RefinedGenerationTask(prompt, cfg, loaded_prior), output, resume=resume)
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
        options: config keys to override (``refine={"enabled": True}``: each object refined into
            a solid surface after the coarse steps, see :mod:`nerfgen.generate.scene_refine`).
    """
    from nerfgen.engine import resolve_device
    from nerfgen.generate.layout import LAYOUT_FILE, read_layout
    from nerfgen.generate.scene_task import SceneGenerationTask
    from nerfgen.prior import build_prior

    output = Path(output)
    cfg, info = _generation_config(prompt, config, output, resume, RunKind.SCENE, options)
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
    if cfg.refine.enabled:
        from nerfgen.generate.refine_stages import engine_budget
        from nerfgen.generate.scene_refine import RefinedSceneTask

        if cfg.scene.refine_max_seconds is not None and "max_seconds" not in (options.get("refine") or {}):
            cfg = dataclasses.replace(cfg, refine=dataclasses.replace(cfg.refine,
                                                                      max_seconds=cfg.scene.refine_max_seconds))
        return Engine(engine_budget(cfg), RefinedSceneTask(plan, cfg, loaded_prior), output, resume=resume)
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
    (``output`` also gets previews, ``orbit.mp4``, ``mesh.ply`` and ``mesh.glb``)."""
    engine = generation(prompt, output, config, resume, loaded_prior, **options)
    engine.run([on_step] if on_step is not None else [])
    return engine.task.live_run(output)


register(KindSpec(RunKind.GENERATION, RunInfo, open_run, generation, target="prompt", shares_prior=True))
register(KindSpec(RunKind.SCENE, RunInfo, open_scene_run, scene_generation, target="prompt", shares_prior=True))
