"""Files written whole or not at all: JSON and safetensors through a temporary name and a rename.

Everything nerfgen writes into a run directory goes through :func:`atomic_write`, so a crash
never leaves a half-written file behind; readers name the file in every error. Temporary files
and folders are created with the mode the user's umask gives any new file (``0o666 & ~umask``)
or folder (``0o777 & ~umask``), so what is renamed into place is not private by accident, as
``tempfile.mkstemp`` (0o600) and ``tempfile.mkdtemp`` (0o700) would make it.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

_NAME_TRIES = 100


def _create_beside(path: Path, suffix: str, create) -> Path:
    """``create(candidate)`` for a fresh hidden sibling ``.{name}.tmp-{random}{suffix}`` of ``path``;
    ``create`` must raise FileExistsError when the name is taken."""
    for _ in range(_NAME_TRIES):
        candidate = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}{suffix}")
        try:
            create(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{path.parent}: found no free temporary name for {path.name} in {_NAME_TRIES} tries")


def _create_file(path: Path) -> None:
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    os.close(os.open(path, flags, 0o666))  # the kernel applies the umask


def make_temp_file(path: Path) -> Path:
    """Create an empty file beside ``path`` under a fresh hidden name that ends in ``path``'s
    suffix (so writers that go by the suffix pick the right format), mode ``0o666 & ~umask``."""
    return _create_beside(Path(path), Path(path).suffix, _create_file)


def make_temp_dir(path: Path) -> Path:
    """Create an empty folder beside ``path`` under a fresh hidden name, mode ``0o777 & ~umask``."""
    return _create_beside(Path(path), "", lambda candidate: os.mkdir(candidate, 0o777))


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to the disk."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if Path(path).is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Write through ``write(tmp_path)`` to a temp file beside ``path``, flush it to the disk, then
    rename it into place: after a crash ``path`` holds the old contents or the new, never a part.

    The temp file already exists (empty, mode ``0o666 & ~umask``, same suffix as ``path``) when
    ``write`` is called. A writer that replaces it with a file of its own mode (safetensors 0.8
    writes a fresh 0o600 file) has the temp file's mode put back. On any error the temp file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_file(path)
    try:
        mode = stat.S_IMODE(os.stat(tmp).st_mode)  # 0o666 & ~umask, as the kernel applied it
        write(str(tmp))
        if stat.S_IMODE(os.stat(tmp).st_mode) != mode:
            os.chmod(tmp, mode)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict) -> None:
    """Atomically write ``data`` as indented JSON."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")

    atomic_write(Path(path), write)


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write tensors (made contiguous, on the CPU) as safetensors, with optional
    string ``metadata`` in the header."""
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(Path(path), lambda tmp: save_file(clean, tmp, metadata=metadata))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, with an error naming it when it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file not found")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc


def load_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """Load ``tensors`` (read from ``path``) into ``module``, every key and shape matching; else one
    ValueError naming ``path`` and ``what`` it should have held (missing, unexpected, mis-shaped)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [f"{k} {list(tensors[k].shape)} (expected {list(own[k].shape)})" for k in sorted(set(own) & set(tensors))
              if tensors[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{label} {items[:4]}{' ...' if len(items) > 4 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)) if items]
        raise ValueError(f"{path}: does not match {what} ({'; '.join(parts)})")
    module.load_state_dict(tensors)


def read_json(path: Path) -> dict:
    """Read a JSON file, with an error naming it when it is missing, a folder, not UTF-8 text,
    malformed or nested too deep to read."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a JSON file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a JSON file (not UTF-8 text: {exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed JSON ({exc})") from exc
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deep to read, expected a JSON file as nerfgen writes them") from None
