"""Launching test processes that can never hang the suite: bounded waits, stack dumps, whole trees killed.

A gloo rendezvous or collective that stalls waits out torch's 30-minute default;
three such tests once used up a CI run's whole time budget with no clue why. Here
every rank arms `faulthandler` to print all its threads' stacks and exit before the
parent's deadline, and the parent kills what is left, so a stall fails one test in
minutes and says where it stood.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Callable

import pytest
import torch.multiprocessing as mp

RANK_DEADLINE_S = 240  # a rank that runs longer dumps its stacks and exits (the tests' runs take ~5-20 s)
PARENT_DEADLINE_S = RANK_DEADLINE_S + 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def single_host_env(rank: int, world: int, port: int) -> dict[str, str]:
    """torchrun's variables for rank `rank` of `world` processes on this host."""
    return {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world)}


def arm_rank_deadline(seconds: float = RANK_DEADLINE_S) -> None:
    """Call first in a spawned rank: past `seconds` it prints every thread's stack to stderr and exits 1."""
    faulthandler.dump_traceback_later(seconds, exit=True)


def spawn(fn: Callable, args: tuple, nprocs: int, deadline_s: float = PARENT_DEADLINE_S) -> None:
    """`mp.spawn(fn, args, nprocs)` that fails the test instead of waiting past `deadline_s`."""
    context = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    give_up = time.monotonic() + deadline_s
    while not context.join(timeout=1.0):  # raises when a rank fails, after terminating the others
        if time.monotonic() > give_up:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            pytest.fail(f"{nprocs} spawned processes still running after {deadline_s:.0f} s; killed")


def run_command(cmd: list[str], env: dict[str, str], deadline_s: float = PARENT_DEADLINE_S) -> subprocess.CompletedProcess:
    """`subprocess.run` in a session of its own, so a stall kills the launcher and every process it started."""
    env = {**env, "PYTHONFAULTHANDLER": "1"}  # SIGABRT below makes each Python process print its stacks
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGABRT)
        time.sleep(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        sys.stderr.write(stderr[-5000:])
        pytest.fail(f"{cmd[:4]}... still running after {deadline_s:.0f} s; killed with its process group")
    return subprocess.CompletedProcess(cmd, process.returncode, stdout, stderr)
