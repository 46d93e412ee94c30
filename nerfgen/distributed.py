"""Ranks of a ``torchrun`` job: who this process is, and the few collectives training needs.

nerfgen runs on :mod:`torch.distributed` as PyTorch users launch it::

    torchrun --standalone --nproc-per-node 2 -m nerfgen train DATA --output runs/x

:func:`launched` joins the process group ``torchrun`` describes in the environment (gloo for CPU
tensors, NCCL for CUDA ones) and leaves it on every way out. A :class:`World` is what the rest of
nerfgen sees: rank, size, the ranks on this node, and collectives that do nothing when the world
is one process, so single-process code runs the same lines. A collective that fails because
another rank stopped (an error of the backend: :func:`backend_error`) raises :class:`RankLost`,
which says so, instead of the backend's message; any other error propagates as itself. Gradients
are averaged by :class:`nerfgen.engine.buckets.GradientBuckets` while backward runs.

>>> world = World()
>>> world.parallel, world.share(10)
(False, range(0, 10))
"""

from __future__ import annotations

import contextvars
import datetime
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

TIMEOUT_ENV = "NERFGEN_DIST_TIMEOUT"
"""Seconds a collective waits for the other ranks before failing (default :data:`TIMEOUT_SECONDS`)."""
TIMEOUT_SECONDS = 1800.0
"""Default wait: long enough for rank 0's periodic evaluation, short enough that a lost node ends the job."""


class RankLost(RuntimeError):
    """A collective failed: another rank of the job stopped (its own error is in its output)."""


@dataclass(frozen=True)
class World:
    """This process's place in a job: ``rank`` of ``size`` ranks, ``local_rank`` of the
    ``local_size`` ranks on its node. The default is a job of one process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def parallel(self) -> bool:
        """Whether there are other ranks (collectives talk to them)."""
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes checkpoints, logs and the progress bar."""
        return self.rank == 0

    def share(self, n: int) -> range:
        """This rank's items of ``n`` dealt round-robin (item ``i`` goes to rank ``i % size``)."""
        return range(self.rank, n, self.size)

    def threads(self) -> int:
        """CPU threads for this rank: the node's cores split between its ranks."""
        return max(1, (os.cpu_count() or 1) // self.local_size)

    def seed(self, seed: int) -> int:
        """This rank's own random stream: ``seed`` itself on rank 0 (a one-rank run draws what a
        run without torchrun draws), a distinct 63-bit seed on every other rank."""
        return seed if self.rank == 0 else (seed + 0x9E3779B97F4A7C15 * self.rank) % (1 << 63)

    # -- collectives (no-ops in a world of one) ------------------------------------------------
    def all_reduce(self, tensor: Tensor, op: str = "sum") -> Tensor:
        """Reduce ``tensor`` in place across ranks (``sum``, ``max``, ``min``) and return it."""
        if self.parallel:
            ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
            self.guard(lambda: dist.all_reduce(tensor, ops[op]), "all_reduce")
        return tensor

    def broadcast(self, tensors: Sequence[Tensor]) -> None:
        """Overwrite ``tensors`` in place with rank 0's."""
        if self.parallel:
            for tensor in tensors:
                self.guard(lambda t=tensor: dist.broadcast(t, 0), "broadcast")

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` (picklable) on every rank."""
        if not self.parallel:
            return obj
        box = [obj]
        self.guard(lambda: dist.broadcast_object_list(box, 0, device=torch.device("cpu")), "broadcast")
        return box[0]

    def gather_object(self, obj) -> list | None:
        """Every rank's ``obj`` in rank order on rank 0; None on the others."""
        if not self.parallel:
            return [obj]
        out = [None] * self.size if self.main else None
        self.guard(lambda: dist.gather_object(obj, out, 0), "gather")
        return out

    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.parallel:
            self.guard(dist.barrier, "barrier")

    def guard(self, collective, name: str):
        """Run ``collective()`` (a call into :mod:`torch.distributed`); an error of the collective
        backend (another rank stopped, or did not answer in time) becomes :class:`RankLost`, any
        other error (out of memory, a wrong argument) propagates as itself."""
        try:
            return collective()
        except Exception as exc:
            if not backend_error(exc):
                raise
            raise RankLost(f"rank {self.rank} of {self.size}: {name} with the other ranks failed, so one of them has "
                           f"stopped (its own error is in its output); this rank stops too ({exc})") from exc


BACKEND_MESSAGES = ("gloo/", "Connection reset by peer", "Connection closed by peer", "Connection refused",
                    "Broken pipe", "Timed out", "timed out", "NCCL error", "ncclRemoteError", "Socket Timeout")
"""What the collective backends' own errors say where they raise a plain RuntimeError (gloo does:
``[.../gloo/transport/tcp/pair.cc:537] Read error ...: Connection reset by peer``, ``Timed out
waiting 1800000ms for recv operation``)."""


def backend_error(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a collective, is the backend's: torch.distributed's own errors
    (``DistBackendError``, ``DistNetworkError``, ``DistStoreError``), or a RuntimeError in the words
    of gloo or NCCL (:data:`BACKEND_MESSAGES`). Out of memory never is.

    >>> backend_error(torch.distributed.DistNetworkError("Connection reset by peer"))
    True
    >>> backend_error(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    False
    """
    if isinstance(exc, torch.OutOfMemoryError):
        return False
    if isinstance(exc, dist.DistError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in BACKEND_MESSAGES)


SINGLE = World()
"""A job of one process."""


def env_world() -> World:
    """The job ``torchrun`` (or any launcher that sets ``RANK`` / ``WORLD_SIZE``) started this
    process in; :data:`SINGLE` when none did."""
    env = os.environ
    size = int(env.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    rank = int(env.get("RANK", "0"))
    local_size = int(env.get("LOCAL_WORLD_SIZE", str(size)))
    return World(rank, size, int(env.get("LOCAL_RANK", str(rank % local_size))), local_size)


_ALONE: contextvars.ContextVar[bool] = contextvars.ContextVar("nerfgen_alone", default=False)


@contextmanager
def alone() -> Iterator[None]:
    """Within the block, runs train by themselves (:func:`current` is :data:`SINGLE`) although
    this process is one rank of a job: how a batch job runs each of its items."""
    token = _ALONE.set(True)
    try:
        yield
    finally:
        _ALONE.reset(token)


def current() -> World:
    """The world of the process group this process has joined (:data:`SINGLE` when none, or
    inside :func:`alone`)."""
    if _ALONE.get() or not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    env = env_world()
    if env.size == dist.get_world_size() and env.rank == dist.get_rank():
        return env
    return World(dist.get_rank(), dist.get_world_size(), dist.get_rank(), dist.get_world_size())


def backend() -> str:
    """gloo for CPU tensors, plus NCCL for CUDA tensors when torch sees a GPU."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


@contextmanager
def launched() -> Iterator[World]:
    """Join the job the environment describes for the block, and leave it on the way out (also
    on errors); a process not started by a launcher gets :data:`SINGLE` and no process group.

    The wait for other ranks is :data:`TIMEOUT_ENV` seconds; a lost rank ends the others with a
    :class:`RankLost` that names it as the cause.
    """
    world = env_world()
    if not world.parallel or dist.is_initialized():  # nothing to join, or joined already
        yield current()
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank % torch.cuda.device_count())
    timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, TIMEOUT_SECONDS)))
    dist.init_process_group(backend(), timeout=timeout)
    try:
        yield current()
    finally:
        dist.destroy_process_group()


__all__ = ["RankLost", "SINGLE", "World", "alone", "backend_error", "current", "env_world", "launched"]
