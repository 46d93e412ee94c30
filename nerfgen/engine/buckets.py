"""Averaging gradients over the ranks of a job while backward runs: parameters in buckets, each
bucket all-reduced as soon as its last gradient has been accumulated.

This is DDP's reducer for the engine's optimisers instead of a wrapped module (tasks render through
methods other than ``forward``, which DDP's hooks would miss, and step several optimisers from one
backward). Buckets hold the parameters of one :meth:`~nerfgen.engine.Engine.optimize` call, the
first one small so that communication starts early, the others up to :data:`BUCKET_BYTES`: at
first in reverse order (gradients arrive roughly last layer first), after the first backward in
the order rank 0's gradients arrived in (DDP rebuilds its buckets so too), the parameters none
arrived for last. A hook on each parameter
(``register_post_accumulate_grad_hook``) copies its gradient into its bucket and frees it; a full
bucket is launched (``all_reduce(async_op=True)``), always in bucket order so that every rank
issues the same collectives in the same order. After backward the buckets nobody filled are
launched too, every one is waited for, and each gradient becomes a view into its averaged bucket
(one copy of the gradients, as DDP's ``gradient_as_bucket_view``).

Parameters a rank's batch did not reach count as zeros there; one that no rank reached keeps no
gradient, so the optimiser skips it as a single process would. Which parameters were reached is
known on the host (whether the hook ran), and is summed over the ranks in a small CPU tensor, so
no value is read back from a GPU. Sparse gradients (hash tables with ``sparse=True``) are added
into their dense slot and come back dense.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from nerfgen.distributed import World

FIRST_BUCKET_BYTES = 1 << 20
"""The first bucket (the last layers' gradients, ready first) is small: communication starts early."""
BUCKET_BYTES = 25 << 20
"""Largest bucket (a parameter larger than this has one of its own); DDP's default."""


class _Bucket:
    """Parameters of one device and dtype, and a flat buffer holding their gradients."""

    def __init__(self, params: list[Tensor], start: int) -> None:
        self.params, self.start = params, start  # start: the index of its first parameter in the plan
        self.offsets = [0]
        for p in params:
            self.offsets.append(self.offsets[-1] + p.numel())
        self.buffer = torch.empty(self.offsets[-1], device=params[0].device, dtype=params[0].dtype)
        self.taken = [False] * len(params)
        self.pending = len(params)
        self.work = None

    def slot(self, j: int) -> Tensor:
        return self.buffer[self.offsets[j]:self.offsets[j + 1]]

    def take(self, j: int, grad: Tensor) -> None:
        """Put a parameter's gradient into its slot (added to it if it came in parts)."""
        slot = self.slot(j).view_as(self.params[j])
        if not self.taken[j]:
            if grad.is_sparse:
                slot.zero_()
            else:
                slot.copy_(grad)
                grad = None
        if grad is not None:
            slot.add_(grad)
        if not self.taken[j]:
            self.taken[j] = True
            self.pending -= 1


class _Plan:
    """The buckets of one set of parameters, filled in the order given, and where each sits."""

    def __init__(self, params: Sequence[Tensor], first_bytes: int, bucket_bytes: int, rebuilt: bool = False) -> None:
        self.rebuilt = rebuilt  # whether the order is the one gradients arrived in
        self.order: list[int] | None = None  # that order, once known, for the next begin to rebuild with
        self.buckets: list[_Bucket] = []
        groups: dict[tuple, list[Tensor]] = {}
        for p in params:
            groups.setdefault((p.device, p.dtype), []).append(p)
        for group in groups.values():
            current: list[Tensor] = []
            size, cap = 0, first_bytes if not self.buckets else bucket_bytes
            for p in group:
                nbytes = p.numel() * p.element_size()
                if current and size + nbytes > cap:
                    self._add(current)
                    current, size, cap = [], 0, bucket_bytes
                current.append(p)
                size += nbytes
            if current:
                self._add(current)
        self.params = [p for b in self.buckets for p in b.params]  # bucket by bucket: positions are bucket.start + j
        self.slots = {id(p): (i, j) for i, b in enumerate(self.buckets) for j, p in enumerate(b.params)}
        self.next = 0  # buckets before this one are launched
        self.arrived: list[int] = []  # positions in ``params``, in the order their gradients came

    def _add(self, params: list[Tensor]) -> None:
        start = self.buckets[-1].start + len(self.buckets[-1].params) if self.buckets else 0
        self.buckets.append(_Bucket(params, start))

    def reset(self) -> None:
        for bucket in self.buckets:
            bucket.taken, bucket.pending, bucket.work = [False] * len(bucket.params), len(bucket.params), None
        self.next, self.arrived = 0, []

    def arrival_order(self) -> list[int]:
        """Positions of the parameters in the order their gradients arrived, the others after."""
        came = set(self.arrived)
        return self.arrived + [k for k in range(len(self.params)) if k not in came]


class GradientBuckets:
    """Averages the gradients of the parameters given to :meth:`begin` over ``world`` while
    backward runs; :meth:`finish` completes it.

    >>> averager = GradientBuckets(world)                      # doctest: +SKIP
    >>> averager.begin(params); loss.backward(); averager.finish()  # doctest: +SKIP

    Attributes:
        launched_early: buckets whose all-reduce started before :meth:`finish` (while backward
            ran), over the averager's life.
    """

    def __init__(self, world: World, first_bytes: int = FIRST_BUCKET_BYTES, bucket_bytes: int = BUCKET_BYTES) -> None:
        self.world, self.first_bytes, self.bucket_bytes = world, first_bytes, bucket_bytes
        self._plans: dict[tuple[int, ...], _Plan] = {}
        self._hooked: set[int] = set()
        self._active: _Plan | None = None
        self.launched_early = 0

    def begin(self, params: Sequence[Tensor]) -> None:
        """Collect the gradients of ``params`` (those that require one) from the next backward."""
        params = [p for p in params if p.requires_grad]
        key = tuple(id(p) for p in params)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan(params[::-1], self.first_bytes, self.bucket_bytes)
        elif plan.order is not None:  # rebuilt here, once the optimiser dropped the old buckets' views
            plan = self._plans[key] = _Plan([plan.params[k] for k in plan.order], self.first_bytes,
                                            self.bucket_bytes, rebuilt=True)
        plan.reset()
        for p in params:
            if id(p) not in self._hooked:
                p.register_post_accumulate_grad_hook(_hook(weakref.ref(self)))
                self._hooked.add(id(p))
        self._active = plan

    def _arrived(self, p: Tensor) -> None:
        plan = self._active
        where = plan.slots.get(id(p)) if plan is not None else None
        if where is None:
            return
        i, j = where
        if i < plan.next:
            raise RuntimeError(f"a gradient of a parameter ({list(p.shape)}) arrived after its bucket was averaged: "
                               "backward ran twice into it within one optimize call")
        bucket = plan.buckets[i]
        if not bucket.taken[j]:
            plan.arrived.append(bucket.start + j)
        bucket.take(j, p.grad)
        p.grad = None
        while plan.next < len(plan.buckets) and plan.buckets[plan.next].pending == 0:
            self._launch(plan.buckets[plan.next])
            plan.next += 1
            self.launched_early += 1

    def _launch(self, bucket: _Bucket) -> None:
        for j, taken in enumerate(bucket.taken):
            if not taken:  # this rank's batch did not reach it: zeros
                bucket.slot(j).zero_()
        bucket.work = self.world.guard(lambda: dist.all_reduce(bucket.buffer, async_op=True), "all_reduce")

    def finish(self) -> None:
        """Launch the buckets backward did not fill, wait for all, and give each parameter its
        averaged gradient (None where no rank reached it)."""
        plan, self._active = self._active, None
        for bucket in plan.buckets[plan.next:]:
            self._launch(bucket)
        plan.next = len(plan.buckets)
        # Which parameters some rank reached: host knowledge (the hooks ran), summed in a CPU tensor.
        reached = torch.tensor([float(t) for bucket in plan.buckets for t in bucket.taken])
        seen = self.world.all_reduce(reached).tolist()
        for bucket in plan.buckets:
            self.world.guard(bucket.work.wait, "all_reduce")
            bucket.work = None  # nothing of the process group is held between steps (it may be destroyed)
            bucket.buffer.div_(self.world.size)
            for j, p in enumerate(bucket.params):
                p.grad = bucket.slot(j).view_as(p) if seen[bucket.start + j] > 0 else None
        if not plan.rebuilt and plan.order is None:  # from the next call, in the order rank 0's gradients came
            plan.order = self.world.broadcast_object(plan.arrival_order())

    def abandon(self) -> None:
        """Stop collecting (backward failed): what was launched is left to the process group."""
        self._active = None


def _hook(ref: weakref.ref):
    def arrived(p: Tensor) -> None:
        averager = ref()
        if averager is not None:
            averager._arrived(p)

    return arrived


__all__ = ["BUCKET_BYTES", "FIRST_BUCKET_BYTES", "GradientBuckets"]
