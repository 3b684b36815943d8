"""Data parallelism under torchrun, in a few explicit lines: process group, wrapping, sums.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything here is a
single-process no-op, so the Trainer reads the same with and without it. CUDA
ranks use NCCL and one GPU each (cuda:LOCAL_RANK); CPU ranks use gloo, which is
how the tests run two processes on one machine.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn

from dnahnet.devices import resolve_device
from dnahnet.errors import DnahnetInputError


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: rank r of world_size, on `device`."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_world_size() -> int:
    """Processes torchrun started (1 without torchrun); known before any process group exists."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str = "auto") -> DistEnv:
    """Join the torchrun process group if there is one; pick this rank's device."""
    world = launched_world_size()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks in place (identity in a single process) and return it."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def wrap_model(model: nn.Module, env: DistEnv, kind: str = "ddp") -> nn.Module:
    """DDP (gradients averaged) or FSDP2 (each block and the root sharded); the model itself when alone.

    Every parameter takes part in every forward pass (routing-free stages included),
    so DDP runs without `find_unused_parameters`.
    """
    if not env.distributed:
        return model
    if kind == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    if kind == "fsdp":
        from torch.distributed.fsdp import fully_shard

        from dnahnet.nn.isotropic import Block

        for module in model.modules():
            if isinstance(module, Block):
                fully_shard(module)
        return fully_shard(model)
    raise DnahnetInputError(f"distributed: must be 'ddp' or 'fsdp', got {kind!r}")


def unwrap(model: nn.Module) -> nn.Module:
    """The HNetLM inside a DDP wrapper (FSDP2 shards in place and needs no unwrapping)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@contextlib.contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on all but the last micro-batch of a step."""
    if enabled or not dist.is_initialized():
        yield
    elif isinstance(model, nn.parallel.DistributedDataParallel):
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield
