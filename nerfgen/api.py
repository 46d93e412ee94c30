"""nerfgen's public API, what a notebook and the viewer use (re-exported as ``nerfgen.*``).

>>> import nerfgen
>>> run = nerfgen.train("data/tabletop", "runs/tabletop", config="demo", max_seconds=60)  # doctest: +SKIP
>>> image = run.render(run.orbit_cameras(8), 3)                                           # doctest: +SKIP
>>> run.render_orbit("runs/tabletop/orbit.mp4", frames=60)                                # doctest: +SKIP
>>> run.export_mesh("runs/tabletop/mesh.ply")                                             # doctest: +SKIP
>>> cube = nerfgen.generate("a red cube", "runs/red-cube")                                # doctest: +SKIP
>>> same = nerfgen.load_run("runs/red-cube", device="cpu")                                # doctest: +SKIP

Each kind of run (:class:`~nerfgen.kinds.RunKind`) has its functions in its own package, gathered
here: :func:`reconstruction`, :func:`generation`, :func:`scene_generation`, :func:`gan_training`,
:func:`prior_training` and :func:`generalize_training` give the prepared :class:`~nerfgen.engine.Engine` instead of running it
(the command line and the live viewer start runs that way); :func:`training` gives it for any
kind by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nerfgen.gan.api import gan_training, load_gan_run, train_gan
from nerfgen.generalize.api import generalize_training, load_general_run, train_generalizable
from nerfgen.generate.api import generate, generate_scene, generation, scene_generation, scene_layout
from nerfgen.kinds import RunKind, load_run, spec
from nerfgen.prior.api import prior_training, train_prior
from nerfgen.reconstruct.api import reconstruction, train

__all__ = ["gan_training", "generalize_training", "generate", "generate_scene", "generation", "load_gan_run",
           "load_general_run", "load_run", "prior_training", "reconstruction", "scene_generation", "scene_layout",
           "train", "train_gan", "train_generalizable", "train_prior", "training"]


def training(kind: RunKind | str, target: str | Path | None, output: str | Path, config: Any = None,
             resume: bool = False, **options: Any):
    """The prepared engine of a run of ``kind`` on ``target`` (a capture folder, a prompt, an image
    folder; None for the prior, and when resuming) into ``output``: what batch jobs start."""
    entry = spec(kind)
    if entry.target == "none":
        if target is not None:
            raise ValueError(f"a {entry.kind.value} run trains on nothing given; got {target!r}")
        return entry.engine(output, config, resume, **options)
    return entry.engine(target, output, config, resume, **options)
