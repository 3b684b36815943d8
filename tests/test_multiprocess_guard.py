"""The launch helpers of the multi-process tests turn a stalled rank or launcher into a prompt test failure."""

from __future__ import annotations

import sys
import time

import pytest

from multiprocess import arm_rank_deadline, run_command, spawn


def _stalled_rank(rank: int) -> None:
    arm_rank_deadline(60)
    time.sleep(600)


def test_a_stalled_spawned_rank_fails_the_test_within_its_deadline():
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="still running after 2 s; killed"):
        spawn(_stalled_rank, args=(), nprocs=2, deadline_s=2)
    assert time.monotonic() - start < 30


def _rank_past_its_own_deadline(rank: int) -> None:
    arm_rank_deadline(1)
    time.sleep(600)


def test_a_rank_past_its_own_deadline_exits_and_the_spawn_raises():
    from torch.multiprocessing.spawn import ProcessExitedException

    with pytest.raises(ProcessExitedException):
        spawn(_rank_past_its_own_deadline, args=(), nprocs=1, deadline_s=60)


def test_a_stalled_launcher_is_killed_with_its_children(tmp_path):
    start = time.monotonic()
    pid_file = tmp_path / "child.pid"
    launcher = ("import subprocess, sys, time; "
                "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
                f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(600)")
    with pytest.raises(pytest.fail.Exception, match="killed with its process group"):
        run_command([sys.executable, "-c", launcher], env={}, deadline_s=3)
    assert time.monotonic() - start < 30
    child = int(pid_file.read_text())
    time.sleep(0.5)
    assert not _running(child), "the launcher's child outlived it"


def _running(pid: int) -> bool:
    """Whether `pid` is alive and not a zombie awaiting its (killed) parent's reaper."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
