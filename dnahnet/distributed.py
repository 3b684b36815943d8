"""torchrun's environment and process group, for training and inference alike: where this rank sits, sums.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything here is a
single-process no-op, so callers read the same with and without it. CUDA ranks
use NCCL and one GPU each (cuda:LOCAL_RANK); CPU ranks use gloo, which is how the
tests run two processes on one machine; when every gloo rank is on this host
(torchrun's LOCAL_WORLD_SIZE equals WORLD_SIZE) they talk over the loopback
interface rather than whatever address the host name resolves to, unless
GLOO_SOCKET_IFNAME says otherwise. Wrapping a model for data parallelism
(DDP/FSDP) is training's business: `dnahnet.train.distributed`.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

from dnahnet.devices import resolve_device


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


def _loopback_for_single_host_gloo(world: int) -> None:
    """Pin gloo to the loopback interface when all `world` ranks run on this host and nobody chose one."""
    if "GLOO_SOCKET_IFNAME" in os.environ or int(os.environ.get("LOCAL_WORLD_SIZE", "0")) != world:
        return
    loopback = [name for _, name in socket.if_nameindex() if name in ("lo", "lo0")]
    if loopback:
        os.environ["GLOO_SOCKET_IFNAME"] = loopback[0]


def setup(device: str = "auto") -> DistEnv:
    """Join the torchrun process group if there is one; pick this rank's device."""
    world = launched_world_size()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        else:
            _loopback_for_single_host_gloo(world)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def teardown(meet: bool) -> None:
    """Leave the process group, if this process joined one; a gloo rank that is to `meet` the others first
    waits at a barrier with every rank.

    Why the barrier: gloo's worker threads drop each finished collective's tensors while holding their
    queue lock, and dropping a tensor Python has seen takes the GIL; the last reference to the process
    group (DDP's reducer holds one) is released under the GIL, and its destructor takes that queue lock.
    Released right after a collective, the two waited on each other forever: 2 of 72 two-rank torchrun
    runs of the tiny preset on the loaded 2-core VM hung that way (gdb: `~ProcessGroupGloo` in
    `pthread_mutex_lock`, a `pt_gloo_runloop` thread in `take_gil` under `~AsyncWork`). A barrier moves
    no Python tensors, and this thread waits on it without the GIL, so a worker still dropping the last
    collective's tensors gets the GIL while the ranks meet (after the change: 0 hangs in 220 such runs).
    After a failure the other ranks may never arrive, so there is no barrier then; NCCL has no such
    worker threads, and its ranks are not held back (a rank that merges outputs may take minutes)."""
    if dist.is_initialized():
        if meet and dist.get_backend() == "gloo":
            dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[DistEnv]:
    """`setup(device)` for the body; on the way out every rank leaves the process group, together after a
    clean run and at once after a failure (see `teardown`)."""
    env = setup(device)
    try:
        yield env
    except BaseException:
        teardown(meet=False)
        raise
    teardown(meet=True)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks in place (identity in a single process) and return it."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t
