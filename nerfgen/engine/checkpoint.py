"""Checkpoints: crash-safe step folders, and what one holds beyond a task's own files
(optimiser states and random states).

A run directory keeps its checkpoints in ``checkpoints/``::

    checkpoints/step-000002000/   a complete checkpoint: the task's files (model.safetensors,
                                  run.json, ...), train_state.safetensors, state.json
    checkpoints/step-000004000/   the newest (the last ``keep`` are kept)
    checkpoints/latest            names the newest: "step-000004000"

A checkpoint is written into a hidden temporary folder, every file flushed to the disk, then the
folder is renamed into place and only then does ``latest`` move (itself written to a temporary
name, flushed and renamed). A kill at any moment leaves the previous checkpoint whole and
``latest`` naming a complete one. Resuming takes the newest checkpoint that reads back whole (its
``state.json`` and tensors from the same step) and says which; the files users open
(``model.safetensors``, ``run.json``, ``state.json``, ...) are copied to the top of the run
directory after each checkpoint (each atomically).

Run directories of earlier versions (``train_state.safetensors`` + ``state.json`` at the top)
resume from there; their first new checkpoint retires those two files.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from nerfgen.files import atomic_write, fsync_path, make_temp_dir, make_temp_file, read_json

TRAIN_STATE_FILE = "train_state.safetensors"
"""Optimisers, random states and a task's training-only tensors (to resume)."""
STATE_FILE = "state.json"
"""Step, training seconds, totals and a task's training-only values; written last."""
CHECKPOINTS_DIR = "checkpoints"
"""Folder of a run directory that holds its step folders and the ``latest`` pointer."""
LATEST_FILE = "latest"
"""The name of the newest complete step folder."""
_STEP = re.compile(r"^step-(\d{9})$")
_PRIVATE = (TRAIN_STATE_FILE,)
"""Files of a checkpoint that are not mirrored at the top of the run directory."""


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint: ``folder`` holds the task's files, ``train_state.safetensors`` and
    ``state.json`` of ``step``; ``legacy`` when ``folder`` is the run directory itself (written by
    an earlier nerfgen)."""

    folder: Path
    step: int
    legacy: bool = False


def step_name(step: int) -> str:
    """The folder name of the checkpoint at ``step`` (sorts by step)."""
    return f"step-{step:09d}"


def _entries(run: Path) -> list[tuple[int, Path]]:
    """The step folders of ``run``, newest first (complete by construction: only a whole
    checkpoint is renamed to its step name)."""
    root = Path(run) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP.match(p.name)) and p.is_dir()]
    return sorted(found, reverse=True)


def has_checkpoint(run: str | Path) -> bool:
    """Whether ``run`` holds a checkpoint (of this or an earlier nerfgen) to resume."""
    run = Path(run)
    return bool(_entries(run)) or ((run / STATE_FILE).is_file() and (run / TRAIN_STATE_FILE).is_file())


def check(point: Checkpoint) -> dict:
    """``point``'s ``state.json``; ValueError, naming the file, unless ``point`` reads back as one
    step's state (``state.json`` and the training state stamped with the folder's step)."""
    state_file, tensors_file = point.folder / STATE_FILE, point.folder / TRAIN_STATE_FILE
    state = read_json(state_file)
    if not isinstance(state, dict):
        raise ValueError(f"{state_file}: expected a JSON object, got {type(state).__name__}")
    if not tensors_file.is_file():
        raise ValueError(f"{tensors_file}: not found")
    try:
        stamped = tensors_metadata(tensors_file).get("step")
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{tensors_file}: not a readable safetensors file ({exc})") from exc
    if stamped != str(state.get("step")) or state.get("step") != point.step:
        raise ValueError(f"{point.folder}: its files are from different steps ({tensors_file.name} from step {stamped}, "
                         f"{state_file.name} from step {state.get('step')}, the folder says {point.step})")
    for key, kind in (("seconds", (int, float)), ("totals", dict), ("task", dict)):
        if key in state and (not isinstance(state[key], kind) or isinstance(state[key], bool)):
            raise ValueError(f"{state_file}: '{key}' must be a {kind[0].__name__ if isinstance(kind, tuple) else 'mapping'}, "
                             f"got {state[key]!r}")
    return state


def checkpoints(run: str | Path) -> list[Checkpoint]:
    """The checkpoints of ``run``, newest first (an earlier version's, at the top of ``run``, when
    it has no step folders); each may still turn out damaged when read (:func:`check`)."""
    run = Path(run)
    entries = _entries(run)
    if entries:
        return [Checkpoint(folder, step) for step, folder in entries]
    if not (run / STATE_FILE).is_file():
        return []
    step = read_json(run / STATE_FILE).get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        raise ValueError(f"{run / STATE_FILE}: 'step' must be an integer, got {step!r}")
    return [Checkpoint(run, step, legacy=True)]


def write_checkpoint(run: str | Path, step: int, fill: Callable[[Path], None], keep: int = 2) -> Checkpoint:
    """Write the checkpoint of ``step`` into ``run/checkpoints``: ``fill(folder)`` writes the files
    into a fresh temporary folder (``state.json`` last), which is flushed and renamed to its step
    name; then ``latest`` moves to it and all but the newest ``keep`` step folders are deleted
    (as are leftovers of writes that were cut off, and step folders after ``step``: a timeline
    that was given up when an earlier checkpoint was resumed)."""
    root = Path(run) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    tmp = make_temp_dir(final)
    try:
        fill(tmp)
        for path in tmp.rglob("*"):
            fsync_path(path)
        fsync_path(tmp)
        if final.exists():  # the same step written again (a resumed run's last step): replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_path(root)
    _point_latest(root, final.name)
    _prune(root, step, keep)
    return Checkpoint(final, step)


def _point_latest(root: Path, name: str) -> None:
    tmp = make_temp_file(root / LATEST_FILE)
    try:
        tmp.write_text(name + "\n")
        fsync_path(tmp)
        os.replace(tmp, root / LATEST_FILE)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(root)


def _prune(root: Path, step: int, keep: int) -> None:
    kept = 0
    for other, folder in _entries(root.parent):
        if other > step or (other < step and kept >= max(keep, 1) - 1):
            shutil.rmtree(folder, ignore_errors=True)
        elif other < step:
            kept += 1
    for leftover in [*root.glob(".step-*.tmp-*"), *root.glob(f".{LATEST_FILE}.tmp-*")]:
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def publish(point: Checkpoint, run: str | Path) -> None:
    """Copy ``point``'s files (all but the training state) to the top of ``run``, each replaced
    atomically, ``state.json`` last; a legacy run's top-level training state is retired once a
    new checkpoint exists. Copies, not links: what a user edits at the top of the run directory
    never changes a checkpoint."""
    run = Path(run)
    if point.legacy:
        return
    names = sorted((p for p in point.folder.iterdir() if p.is_file() and p.name not in _PRIVATE),
                   key=lambda p: p.name == STATE_FILE)
    for source in names:
        _mirror(source, run / source.name)
    (run / TRAIN_STATE_FILE).unlink(missing_ok=True)


def _mirror(source: Path, target: Path) -> None:
    atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))


def say(message: str) -> None:
    """A checkpoint message on stderr, one line."""
    print(f"nerfgen: {message}", file=sys.stderr, flush=True)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Adam-style optimizer state flattened to named tensors (``"{param}.{key}"``)."""
    out = {}
    for index, state in optimizer.state_dict()["state"].items():  # keyed by parameter index, any order
        for key, value in state.items():
            out[f"{index}.{key}"] = torch.as_tensor(value, dtype=torch.float32)
    return out


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`optimizer_tensors` for the same parameter layout."""
    sd = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    sd["state"] = state
    optimizer.load_state_dict(sd)


def rng_tensors(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The run's generator and torch's global random states (CPU, and each GPU's when there are any)."""
    out = {"rng.generator": generator.get_state(), "rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return out


def load_rng_tensors(generator: torch.Generator, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`rng_tensors`: a resumed run draws what the uninterrupted run would have."""
    generator.set_state(tensors["rng.generator"].to(torch.uint8))
    torch.set_rng_state(tensors["rng.torch"].to(torch.uint8))
    keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    cuda = [tensors[k].to(torch.uint8) for k in keys]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def rank_key(key: str, rank: int) -> str:
    """Where rank ``rank``'s random state ``key`` (``rng.*``) sits in a checkpoint: rank 0's under
    the plain key (as a one-process run writes it), rank ``r``'s under ``rng.rank{r}.*``."""
    return key if rank == 0 else key.replace("rng.", f"rng.rank{rank}.", 1)


def rank_rng(tensors: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor]:
    """Rank ``rank``'s random states in ``tensors``, under the plain keys (empty when the run that
    wrote them had no such rank)."""
    if rank == 0:
        return {k: v for k, v in tensors.items() if k.startswith("rng.") and not k.startswith("rng.rank")}
    prefix = f"rng.rank{rank}."
    return {"rng." + k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def tensors_metadata(path) -> dict[str, str]:
    """The string metadata in a safetensors file's header."""
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}
