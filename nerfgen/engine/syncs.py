"""Counting the calls that make the host wait for the device, on any device.

On a GPU, reading a tensor's value on the host (``.item()``, ``float(t)``, ``int(t)``,
``bool(t)``: all of them ``aten._local_scalar_dense``; and ``.tolist()``) waits for every kernel
queued before it, and so does an op whose output size depends on the data (``nonzero``, boolean
indexing, ``masked_select``, ``unique``). :func:`torch.cuda.set_sync_debug_mode` reports them on a
GPU; :class:`SyncCounter` records the same calls on any device, with the line that made each, so
a CPU test can hold training to "no value read per step, one read per log interval".

On a CPU every tensor is a host tensor, so the counter also sees reads that never wait for a GPU
(a draw from the run's CPU generator, an optimiser's step counter): callers tell those apart by
their site.

>>> with SyncCounter() as syncs:
...     total = torch.ones(2).sum()
...     shown = float(total)
>>> len(syncs.reads), len(syncs.shapes)
(1, 0)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
READS = {aten._local_scalar_dense.default}
"""Ops that copy one value to the host."""
DATA_DEPENDENT = {aten.nonzero.default, aten.masked_select.default, aten._unique2.default, aten.unique_dim.default,
                  aten.unique_consecutive.default, aten.repeat_interleave.Tensor}
"""Ops whose output size depends on the data (the host learns it from the device)."""
_TORCH_DIR = str(Path(torch.__file__).parent)
_PLUMBING = ("/_dynamo/", "/utils/_python_dispatch.py", "/_tensor.py", "/overrides.py", "/_ops.py", "/_compile.py")
"""torch's own frames between a call and this module's hook."""
_HERE = __file__


def _site() -> str:
    """``file:function`` of the innermost Python frame outside torch's dispatch plumbing and this
    module (torch's own files count: its optimisers read their step counters)."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if path != _HERE and not (path.startswith(_TORCH_DIR) and any(p in path for p in _PLUMBING)):
            break
        frame = frame.f_back
    if frame is None:
        return "?"
    path = frame.f_code.co_filename
    for root in (_TORCH_DIR, str(Path(_HERE).parents[2])):
        if path.startswith(root + "/"):
            path = Path(root).name + "/" + path[len(root) + 1:] if root == _TORCH_DIR else path[len(root) + 1:]
            break
    return f"{path}:{frame.f_code.co_name}"


class SyncCounter(TorchDispatchMode):
    """Within the block, records every host read (``reads``) and every op of data-dependent
    size (``shapes``) by the site that made it (``file:function``, repository-relative)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []
        self.shapes: list[str] = []
        self._tolist = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in READS:
            self.reads.append(_site())
        elif func in DATA_DEPENDENT or (func is aten.index.Tensor and _bool_index(args)):
            self.shapes.append(_site())
        return func(*args, **(kwargs or {}))

    def __enter__(self) -> SyncCounter:
        self._tolist = torch.Tensor.__dict__.get("tolist")  # a C method of the base: no dispatch on a CPU tensor
        counter, tolist = self, torch.Tensor.tolist

        def counted_tolist(tensor):
            counter.reads.append(_site())
            return tolist(tensor)

        torch.Tensor.tolist = counted_tolist
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        if self._tolist is None:
            del torch.Tensor.tolist
        else:
            torch.Tensor.tolist = self._tolist
        return super().__exit__(*exc)


def _bool_index(args) -> bool:
    return len(args) > 1 and any(i is not None and i.dtype == torch.bool for i in args[1])


__all__ = ["SyncCounter"]
