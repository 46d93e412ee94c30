"""What a checkpoint holds beyond a task's own files: optimiser states and random states."""

from __future__ import annotations

import torch
from safetensors import safe_open

TRAIN_STATE_FILE = "train_state.safetensors"
"""Optimisers, random states and a task's training-only tensors (to resume)."""
STATE_FILE = "state.json"
"""Step, training seconds, totals and a task's training-only values; written last."""


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
