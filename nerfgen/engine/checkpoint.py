"""Checkpoints: tensors in safetensors, everything else in JSON, both written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "state.json"


def atomic_write(path: Path, write) -> None:
    """Write through ``write(tmp_path)`` to a temp file beside ``path``, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict) -> None:
    """Atomically write ``data`` as indented JSON."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")

    atomic_write(Path(path), write)


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Atomically write tensors (made contiguous, on the CPU) as safetensors."""
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(Path(path), lambda tmp: save_file(clean, tmp))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, with an error naming it when it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file not found")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc


def read_json(path: Path) -> dict:
    """Read a JSON file, with an error naming it when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed JSON ({exc})") from exc


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
