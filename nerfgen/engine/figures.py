"""A step's figures as the task left them (0-d tensors on the run's device, or numbers) and as
people read them (numbers): reading is what makes the host wait for a GPU, so the engine reads
them only where they are shown, logged or asked for, all at once.

>>> read_figures({"loss": torch.tensor(0.25), "psnr": 12.5, "shading": "albedo"})
{'loss': 0.25, 'psnr': 12.5, 'shading': 'albedo'}
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor

Number = float | int
"""A figure as it is shown and logged."""


def read_values(tensors: Sequence[Tensor]) -> list[Number]:
    """The values of 0-d (or one-element) tensors, read with one host transfer per device: floats,
    ints for integer tensors."""
    values: list[Number | None] = [None] * len(tensors)
    by_device: dict[torch.device, list[int]] = {}
    for i, tensor in enumerate(tensors):
        by_device.setdefault(tensor.device, []).append(i)
    for indices in by_device.values():
        read = torch.stack([tensors[i].detach().reshape(()).double() for i in indices]).tolist()
        for i, value in zip(indices, read):
            values[i] = value if tensors[i].is_floating_point() else int(value)
    return values


def read_figures(figures: Mapping[str, object]) -> dict[str, Number | str]:
    """``figures`` with every tensor read as a number (one transfer per device)."""
    keys = [k for k, v in figures.items() if isinstance(v, Tensor)]
    values = dict(zip(keys, read_values([figures[k] for k in keys])))
    return {k: values.get(k, v) for k, v in figures.items()}


class LazyFigures(Mapping):
    """Figures that are read (by ``read()``) the first time a value is looked up; their names are
    known without reading."""

    def __init__(self, names: Sequence[str], read: Callable[[], Mapping[str, Number | str]]) -> None:
        self._names, self._read = list(names), read
        self._values: Mapping[str, Number | str] | None = None

    def __getitem__(self, key: str) -> Number | str:
        if key not in self._names:
            raise KeyError(key)
        if self._values is None:
            self._values = self._read()
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return repr(dict(self)) if self._values is not None else f"LazyFigures({self._names})"


__all__ = ["LazyFigures", "read_figures", "read_values"]
