"""The launch helpers of the multi-process tests turn a stalled rank or launcher into a prompt test failure."""

from __future__ import annotations

import sys
import time

import pytest

from multiprocess import StalledRun, arm_rank_deadline, proc_stat_fields, retry_if_stalled, run_command, spawn


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
    # the child starts a session of its own, as torchrun's workers do, so the launcher's process group misses it
    launcher = ("import subprocess, sys, time; "
                "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], "
                "stdout=sys.stdout, stderr=sys.stderr, start_new_session=True); "
                f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(600)")
    with pytest.raises(pytest.fail.Exception, match="killed with every process below it"):
        run_command([sys.executable, "-c", launcher], env={}, deadline_s=3)
    assert time.monotonic() - start < 30
    child = int(pid_file.read_text())
    time.sleep(0.5)
    assert not _running(child), "the launcher's child outlived it"


def _running(pid: int) -> bool:
    """Whether `pid` is alive and not a zombie awaiting its (killed) parent's reaper."""
    try:
        return proc_stat_fields(pid)[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_stall_is_retried_once_and_a_second_stall_fails():
    calls = []

    def stalls_then_passes():
        calls.append(1)
        if len(calls) == 1:
            raise StalledRun("stalled")
        return "done"

    with pytest.warns(UserWarning, match="attempt 1 stalled"):
        assert retry_if_stalled(stalls_then_passes) == "done"

    def always_stalls():
        raise StalledRun("stalled again")

    with pytest.warns(UserWarning), pytest.raises(StalledRun, match="stalled again"):
        retry_if_stalled(always_stalls)


def test_a_retry_starts_from_empty_output_folders(tmp_path):
    """What broke CI once: the stalled attempt's half-written run made the retried `pretrain` refuse the folder."""
    out = tmp_path / "run"
    out.mkdir()
    seen = []

    def writes_then_stalls_once():
        seen.append(sorted(p.name for p in out.iterdir()))
        (out / "latest").mkdir()
        (out / "metrics.jsonl").write_text("{}\n")
        if len(seen) == 1:
            raise StalledRun("stalled")

    with pytest.warns(UserWarning, match="attempt 1 stalled"):
        retry_if_stalled(writes_then_stalls_once, outputs=[out])
    assert seen == [[], []]


def test_a_wrong_result_is_not_retried():
    calls = []

    def fails():
        calls.append(1)
        raise AssertionError("wrong")

    with pytest.raises(AssertionError):
        retry_if_stalled(fails)
    assert len(calls) == 1


def test_a_rank_at_the_rank_deadline_is_reported_as_a_stall():
    with pytest.raises(StalledRun, match="stalled and exited at its 1 s deadline"):
        spawn(_rank_past_its_own_deadline, args=(), nprocs=1, deadline_s=60, rank_deadline_s=1)
