"""Data-parallel training under ``torchrun``: who this process is and what the ranks agree on.

``torchrun --nproc-per-node N`` starts N copies of ``czii train`` and tells each its
place through ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``.  With more than one process,
:func:`process_group` joins them (NCCL on GPUs, one GPU per process, gloo on the CPU),
the network is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, and every
decision that changes the control flow (time budget, Ctrl-C) is agreed through
:class:`World`, so no rank waits for a collective the others skip.  A single process,
with or without ``torchrun``, never touches :mod:`torch.distributed`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..errors import UsageError

# Rank 0 validates alone while the others wait at a barrier; give it time.
TIMEOUT = timedelta(minutes=60)

_T = TypeVar("_T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes.

    Attributes
    ----------
    rank : int
        0 is the main process: it validates, logs and writes every file.
    size : int
        Number of processes; 1 means plain single-process training.
    local_rank : int
        Index on this machine (the GPU a process uses).

    Examples
    --------
    >>> World.from_env({"WORLD_SIZE": "4", "RANK": "1", "LOCAL_RANK": "1"})
    World(rank=1, size=4, local_rank=1)
    >>> World.from_env({}).is_main
    True
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> World:
        """Read what ``torchrun`` sets; without ``WORLD_SIZE`` this is the only process."""
        environ = os.environ if environ is None else environ
        defaults = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}
        try:
            rank, size, local_rank = (int(environ.get(name, default)) for name, default in defaults.items())
        except ValueError:
            values = ", ".join(f"{name}={environ.get(name)!r}" for name in defaults)
            raise UsageError(f"torchrun environment is not numeric ({values})") from None
        if size < 1 or not 0 <= rank < size or local_rank < 0:
            raise UsageError(
                f"torchrun environment is inconsistent (RANK={rank}, WORLD_SIZE={size}, LOCAL_RANK={local_rank})"
            )
        return cls(rank, size, local_rank)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, network: nn.Module) -> nn.Module:
        """The module to train with: ``network`` itself, or its DistributedDataParallel wrapper.

        The wrapper shares ``network``'s parameters, so saving ``network`` never adds a
        ``module.`` prefix.
        """
        if self.size == 1:
            return network
        device = next(network.parameters()).device
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(network, device_ids=device_ids)

    def maximum(self, *values: float) -> list[float]:
        """The largest of each value over all ranks (all ranks must call)."""
        if self.size == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.tolist()

    def mean(self, value: float) -> float:
        """The mean of ``value`` over all ranks (all ranks must call)."""
        if self.size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(tensor)
        return tensor.item() / self.size

    def gather(self, value: _T) -> list[_T]:
        """Every rank's ``value`` (plain data), in rank order (all ranks must call)."""
        if self.size == 1:
            return [value]
        values: list[Any] = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.size == 1:
            return
        if dist.get_backend() == dist.Backend.NCCL:
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()

    @contextmanager
    def deferred_interrupts(self) -> Iterator[Callable[[], bool]]:
        """Under several processes, Ctrl-C only raises a flag; yields the function that reads it.

        The terminal interrupts every rank at a different point (and ``torchrun`` passes
        the signal on once more), so the ranks check the flag together after a step and
        stop at the same one.  A single process keeps Python's immediate
        :class:`KeyboardInterrupt`, and the flag stays down.
        """
        if self.size == 1:
            yield lambda: False
            return
        received = []
        previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
        try:
            yield lambda: bool(received)
        finally:
            signal.signal(signal.SIGINT, previous)


def _collective_device() -> torch.device:
    """NCCL reduces tensors on the process's GPU, gloo on the CPU."""
    if dist.get_backend() == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@contextmanager
def process_group(world: World, device: torch.device) -> Iterator[torch.device]:
    """Join the other ranks for the duration of the block; yields this rank's device.

    With one process nothing happens and ``device`` is yielded as is.  Otherwise a CUDA
    ``device`` becomes ``cuda:LOCAL_RANK`` with the NCCL backend, a CPU one uses gloo; the
    group is destroyed when the block ends, after a barrier when it ends normally and at once
    on an error.
    """
    if world.size == 1:
        yield device
        return
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"LOCAL_RANK {world.local_rank} has no GPU (this machine has "
                f"{torch.cuda.device_count()}); start at most that many processes per node"
            )
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo", rank=world.rank, world_size=world.size, timeout=TIMEOUT
    )
    try:
        yield device
        # Ranks leave together: a gloo rank that tears its group down while a peer is
        # still writing the model can abort at exit.
        dist.barrier()
    finally:
        dist.destroy_process_group()
