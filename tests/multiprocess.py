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
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch.multiprocessing as mp
from _pytest.outcomes import Failed

RANK_DEADLINE_S = 120  # a rank that runs longer dumps its stacks and exits (the tests' launches take 5-22 s,
PARENT_DEADLINE_S = RANK_DEADLINE_S + 30  # the latter on the 2-core VM running three of them at once)


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


class StalledRun(Failed):
    """A run that passed its deadline: a failure that `retry_if_stalled` may try once more."""


def retry_if_stalled(action: Callable[[], object], outputs: Sequence[Path] = (), attempts: int = 2) -> object:
    """Run `action`; when it stalls, warn and run it again, so one stall is reported but `attempts` stalls
    fail the test. A wrong result is never retried: only `StalledRun` is. (Gloo ranks once hung at exit in
    3 of 15 runs of tests/test_ddp.py, a GIL deadlock that `dnahnet.distributed.teardown` now avoids;
    this keeps a stall of that kind from failing CI while it is reported.)

    Each folder in `outputs` is emptied before a retry: the stalled attempt left a half-written run there
    (a training run the CLI rightly refuses to overwrite, shard parts a resume would reuse)."""
    for attempt in range(1, attempts):
        try:
            return action()
        except StalledRun as stall:
            warnings.warn(f"attempt {attempt} stalled and was retried: {stall}", stacklevel=2)
            for folder in outputs:
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
    return action()


def spawn(fn: Callable, args: tuple, nprocs: int, deadline_s: float = PARENT_DEADLINE_S,
          rank_deadline_s: float = RANK_DEADLINE_S) -> None:
    """`mp.spawn(fn, args, nprocs)` that fails the test instead of waiting past `deadline_s`; a rank that exits
    at its own deadline (`arm_rank_deadline(rank_deadline_s)`) is reported as a stall too."""
    context = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    start = time.monotonic()
    try:
        while not context.join(timeout=1.0):  # raises when a rank fails, after terminating the others
            if time.monotonic() - start > deadline_s:
                for process in context.processes:
                    if process.is_alive():
                        process.kill()
                raise StalledRun(f"{nprocs} spawned processes still running after {deadline_s:.0f} s; killed")
    except mp.ProcessExitedException as exited:
        if time.monotonic() - start >= rank_deadline_s:
            raise StalledRun(f"a rank stalled and exited at its {rank_deadline_s:.0f} s deadline: {exited}") from exited
        raise


def proc_stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (state first, then the parent's pid); the name may hold
    spaces and parentheses, so split after its last ')'. Raises OSError when the process is gone."""
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, found through /proc, including those that started sessions of their own
    (torchrun's workers do, so killing the launcher's process group misses them)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                children.setdefault(int(proc_stat_fields(int(entry))[1]), []).append(int(entry))
    found, frontier = [], [pid]
    while frontier:
        below = children.get(frontier.pop(), [])
        found += below
        frontier += below
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def run_command(cmd: list[str], env: dict[str, str], deadline_s: float = PARENT_DEADLINE_S) -> subprocess.CompletedProcess:
    """`subprocess.run` that kills the launcher and every process below it, whatever their session, when it
    runs past `deadline_s`; otherwise a worker holding the output pipes keeps the test waiting forever."""
    env = {**env, "PYTHONFAULTHANDLER": "1"}  # SIGABRT below makes each Python process print its stacks
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        tree = [process.pid, *descendants(process.pid)]
        _signal_all(tree, signal.SIGABRT)
        time.sleep(5)
        _signal_all(tree, signal.SIGKILL)
        stdout, stderr = process.communicate()
        sys.stderr.write(stderr[-5000:])
        raise StalledRun(f"{cmd[:4]}... still running after {deadline_s:.0f} s; killed with every process below it")
    return subprocess.CompletedProcess(cmd, process.returncode, stdout, stderr)
