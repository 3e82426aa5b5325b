"""Data-parallel training on torch.distributed: process-group set-up from torchrun's environment (gloo on CPU,
NCCL on CUDA, with timeouts so a lost rank ends the job instead of hanging it) and the few collectives the
Trainer needs."""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    """This process's place in the job: rank, world size, local rank (its GPU on a node)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE_PROCESS = Context()


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) set the environment for more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str = "auto", timeout_s: float = 300.0) -> Context:
    """Join the process group torchrun described (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); a single
    process gets the trivial context. The backend follows the device: NCCL for CUDA, gloo for CPU."""
    if not launched_by_torchrun():
        return Context()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    return Context(dist.get_rank(), dist.get_world_size(), local_rank)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_sum(value: float, context: Context) -> float:
    """Sum of a number over all ranks."""
    if context.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t)


def all_max(value: float, context: Context) -> float:
    """Largest value of a number over all ranks (so that every rank takes the same decision on it)."""
    if context.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t)


def all_gather(obj: Any, context: Context) -> list[Any]:
    """Every rank's `obj` (picklable; used for small metric lists), in rank order."""
    if context.world == 1:
        return [obj]
    out: list[Any] = [None] * context.world
    dist.all_gather_object(out, obj)
    return out


def barrier(context: Context) -> None:
    if context.world > 1:
        dist.barrier()

