"""Kinds of run: one name for each (:class:`RunKind`, what ``run.json``, batch jobs and the command
line all say) and one registry of what a kind is made of (:class:`KindSpec`).

Each kind registers itself, from its own package, with the class of its ``run.json`` (``info``),
the function that opens a run directory of it (``open``) and the one that prepares the training
engine of a new or resumed run (``engine``). Nothing here imports a kind: :func:`spec` imports the
module a kind lives in (:data:`MODULES`) the first time the kind is asked for, so the flow stays
one-directional (kinds depend on this module, never the other way).

>>> RunKind("gan").value, RunKind.parse("reconstruction") is RunKind.RECONSTRUCTION
('gan', True)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from nerfgen.files import read_json

RUN_FILE = "run.json"
"""What a run directory says about its run besides the tensors."""
LEGACY_FILE = "config.json"
"""What described a reconstruction or generation run before ``run.json`` (read, never written)."""


class RunKind(str, Enum):
    """What trained a run, and so how its directory is opened."""

    RECONSTRUCTION = "reconstruction"
    """A radiance field from posed images (``nerfgen train``)."""
    GENERATION = "generation"
    """An object from a prompt by score distillation (``nerfgen generate``)."""
    SCENE = "scene"
    """A scene of several objects from a prompt, one field each, placed by a layout (``generate --scene``)."""
    GAN = "gan"
    """A generative radiance field (GRAF / GIRAFFE) from unposed images (``nerfgen gan train``)."""
    PRIOR = "prior"
    """The built-in diffusion prior, trained on the procedural object library (``nerfgen prior train``)."""
    DYNAMIC = "dynamic"
    """A radiance field that changes over time, from a capture whose frames carry times (``nerfgen train``)."""
    GENERALIZABLE = "generalizable"
    """A field that renders any scene from a few of its photos (pixelNeRF, MVSNeRF: ``nerfgen generalize``)."""

    @classmethod
    def parse(cls, value: Any, source: str = "kind") -> RunKind:
        """``value`` as a kind, with an error naming ``source`` and the kinds there are."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"{source}: unknown run kind {value!r}; expected one of "
                             f"{', '.join(k.value for k in cls)}") from None

    def __str__(self) -> str:
        return self.value


MODULES = {
    RunKind.RECONSTRUCTION: "nerfgen.reconstruct.api",
    RunKind.GENERATION: "nerfgen.generate.api",
    RunKind.SCENE: "nerfgen.generate.api",
    RunKind.GAN: "nerfgen.gan.api",
    RunKind.PRIOR: "nerfgen.prior.api",
    RunKind.DYNAMIC: "nerfgen.dynamic.api",
    RunKind.GENERALIZABLE: "nerfgen.generalize.api",
}
"""Where each kind registers itself (imported on first use)."""


@dataclass(frozen=True)
class KindSpec:
    """What a kind of run is made of.

    Attributes:
        kind: its name.
        info: the class of its ``run.json``: ``from_dict(d, source)``, ``to_dict()``, and
            attributes ``kind`` and ``config`` (the run's config, a dataclass or a mapping).
        open: ``open(run_dir, info, device)``: the run, ready to use (rendering, sampling).
        engine: ``engine(target, output, config=None, resume=False, **options)``: the prepared
            training engine of a run (``target``: a capture folder, a prompt, an image folder, or
            None for kinds that train on nothing given, and when resuming).
        target: what ``target`` is: ``"path"``, ``"prompt"`` or ``"none"``.
        shares_prior: whether several runs of the kind in one process can share one loaded
            diffusion prior (``engine(..., loaded_prior=...)``; ``engine.task.prior``).
    """

    kind: RunKind
    info: type
    open: Callable[[Path, Any, str], Any]
    engine: Callable[..., Any]
    target: str = "path"
    shares_prior: bool = False


_REGISTRY: dict[RunKind, KindSpec] = {}


def register(entry: KindSpec) -> KindSpec:
    """Make ``entry`` the spec of its kind (called by the kind's own module)."""
    _REGISTRY[entry.kind] = entry
    return entry


def spec(kind: RunKind | str) -> KindSpec:
    """The spec of ``kind`` (its module imported on first use)."""
    kind = RunKind.parse(kind)
    if kind not in _REGISTRY:
        importlib.import_module(MODULES[kind])
    if kind not in _REGISTRY:
        raise RuntimeError(f"{MODULES[kind]} did not register the run kind {kind.value!r}")
    return _REGISTRY[kind]


def read_info(run_dir: str | Path):
    """The info of the run in ``run_dir``, of its kind's class (``run.json`` read once; a
    directory of an earlier version with ``config.json`` is read as a reconstruction or
    generation run)."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    if not path.is_file() and (run_dir / LEGACY_FILE).is_file():
        legacy = run_dir / LEGACY_FILE
        return spec(RunKind.RECONSTRUCTION).info.from_legacy(read_json(legacy), str(legacy))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; {run_dir} is not a nerfgen run directory")
    values = read_json(path)
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(values).__name__}")
    kind = RunKind.parse(values.get("kind"), str(path))
    return spec(kind).info.from_dict(values, str(path))


@contextmanager
def described_by(run_dir: str | Path) -> Iterator[None]:
    """Within the block (building a run's modules from its ``run.json``), an error that names no
    file becomes one ValueError naming ``run.json``: settings that no model can be built from."""
    path = Path(run_dir) / RUN_FILE
    try:
        yield
    except (RuntimeError, TypeError, OverflowError, ValueError, MemoryError) as exc:
        if isinstance(exc, ValueError) and str(Path(run_dir)) in str(exc):
            raise
        raise ValueError(f"{path}: no model can be built from its settings ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from exc


def load_run(run_dir: str | Path, device: str = "auto"):
    """Open the run in ``run_dir`` on ``device`` (``cpu``, ``cuda[:n]``, ``auto``), whatever its
    kind: a :class:`~nerfgen.runs.Run` (reconstruction, generation), a
    :class:`~nerfgen.generate.scene_run.SceneRun`, a :class:`~nerfgen.gan.run.GanRun` or a
    :class:`~nerfgen.prior.run.PriorRun`. Runs that show a scene are
    :class:`~nerfgen.renderable.Renderable`."""
    from nerfgen.engine.config import resolve_device

    device = resolve_device(device)  # an unusable device fails before anything is read
    info = read_info(run_dir)
    return spec(info.kind).open(Path(run_dir), info, device)


__all__ = ["KindSpec", "MODULES", "RUN_FILE", "RunKind", "described_by", "load_run", "read_info", "register", "spec"]
