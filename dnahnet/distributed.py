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
import time
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


# How long a gloo rank lets go of the GIL after the teardown barrier (see `teardown`).
GLOO_SETTLE_S = 0.2


def teardown(meet: bool) -> None:
    """Leave the process group, if this process joined one; a gloo rank that is to `meet` the others first
    waits at a barrier with every rank, then sleeps `GLOO_SETTLE_S` without the GIL.

    Why: gloo's worker threads drop a finished collective's tensors on their own, and dropping a tensor
    Python has seen takes the GIL. Two ways this went wrong at the end of a run:
    - Released under the GIL right after a collective, the last reference to the process group (DDP's reducer
      holds one) ran its destructor, which waits for those workers: 2 of 72 two-rank torchrun runs of the tiny
      preset on the loaded 2-core VM hung (gdb: `~ProcessGroupGloo` in `pthread_mutex_lock`, a
      `pt_gloo_runloop` thread in `take_gil` under `~AsyncWork`). The barrier moves no Python tensors and
      waits without the GIL, so the workers drop the earlier collectives' tensors while the ranks meet
      (0 hangs in 220 such runs after it).
    - The barrier's own work holds the collectives queued before it, and the worker that ran it drops them
      after the barrier has returned. When that worker reached the GIL only once the interpreter was
      finalizing, Python ended the thread mid-destructor and C++ aborted the process ("terminate called
      without an active exception"; a core dump put a gloo worker in `take_gil` under
      `runLoop` -> `~AsyncBarrierWork` -> `~AsyncAllgatherCoalescedWork`). The sleep gives that worker the
      GIL before anything else runs: two-rank FSDP runs of the tiny preset on the 2-core VM, 3 steps each,
      aborted in 4 of 350 without it and 0 of 500 with it (Fisher's exact test, one-sided p = 0.028; 2026-12-05,
      with the worker of `python -m bench.gloo_teardown`, run from a scratch copy of that script). It is
      a margin, not a guarantee (gloo has no call that waits until its workers are idle): a worker the OS
      leaves unscheduled for longer could still be late.
    After a failure the other ranks may never arrive, so there is no barrier then; NCCL has no such
    worker threads, and its ranks are not held back (a rank that merges outputs may take minutes)."""
    if dist.is_initialized():
        if meet and dist.get_backend() == "gloo":
            dist.barrier()
            time.sleep(GLOO_SETTLE_S)
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
