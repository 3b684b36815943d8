"""Data parallelism under torchrun, in a few explicit lines: wrapping the model, gradient sync.

The process group, this rank's place (`DistEnv`) and sums over ranks are in
`dnahnet.distributed`, which inference shares; without torchrun everything here
is a single-process no-op, so the Trainer reads the same with and without it.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch.distributed as dist
from torch import nn

from dnahnet.distributed import DistEnv
from dnahnet.errors import DnahnetInputError


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
