"""Data parallelism: two gloo processes train the same parameters as one process at the same global batch."""

from __future__ import annotations

import contextlib
import json
import os
import sys

import pytest
import torch

from dnahnet.train import checkpoint as ckpt
from dnahnet.train.trainer import pretrain, run_configs
from multiprocess import arm_rank_deadline, free_port, retry_if_stalled, run_command, single_host_env, spawn

STEPS = 3


def configs(**train):
    """The tiny preset: 8 windows of 256 bases per step, on the bundled demo genome; fp32 whatever the CPU
    (auto would autocast to bf16 where the CPU has it, and bf16 rounding hides what these tests compare)."""
    train = {"steps": STEPS, "checkpoint_every": STEPS, "eval_every": STEPS, "device": "cpu", "precision": "fp32", **train}
    return run_configs("tiny", train=train)


def _worker(rank: int, world: int, port: int, out: str, train: dict) -> None:
    arm_rank_deadline()
    os.environ.update(single_host_env(rank, world, port))
    torch.set_num_threads(1)
    pretrain(*configs(**train), out)


def run_two_processes(out, **train) -> None:
    retry_if_stalled(lambda: spawn(_worker, args=(2, free_port(), str(out), train), nprocs=2), outputs=[out])


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process, micro-batches of 4 with 2-step accumulation."""
    out = tmp_path_factory.mktemp("single")
    pretrain(*configs(micro_batch_size=4), out)
    return out


def logged(out, key: str) -> list[float]:
    return [json.loads(line)[key] for line in (out / ckpt.METRICS).read_text().splitlines()]


def assert_same_run(two_dir, single_dir) -> None:
    two = ckpt.read_checkpoint(two_dir / "latest")
    one = ckpt.read_checkpoint(single_dir / "latest")
    assert two.trainer_state["step"] == one.trainer_state["step"] == STEPS
    assert two.train_info["world_size"] == 2
    assert two.model_state.keys() == one.model_state.keys()
    for name, value in one.model_state.items():
        torch.testing.assert_close(two.model_state[name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert logged(two_dir, "loss") == pytest.approx(logged(single_dir, "loss"), rel=1e-5)
    # Adam hides a uniform gradient scale; the pre-clipping norm does not
    assert logged(two_dir, "grad_norm") == pytest.approx(logged(single_dir, "grad_norm"), rel=1e-5)
    assert two.metrics[-1]["eval_bits_per_base"] == pytest.approx(one.metrics[-1]["eval_bits_per_base"], rel=1e-5)


@pytest.mark.parametrize("kind, micro", [("ddp", 2), ("fsdp", 4)], ids=["ddp-accumulating", "fsdp"])
def test_two_processes_train_the_same_parameters_as_one(single, tmp_path, kind, micro):
    """Per rank: micro 2 means 2 micro-batches per step (accumulation under no_sync), micro 4 means one."""
    run_two_processes(tmp_path, distributed=kind, micro_batch_size=micro)
    assert_same_run(tmp_path, single)


def test_torchrun_cli_matches_one_process(single, tmp_path):
    """`torchrun --nproc-per-node 2 -m dnahnet_cli pretrain`: DDP with one micro-batch per rank, rank 0 writes."""
    def cmd() -> list[str]:
        return [
            sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
            "-m", "dnahnet_cli", "pretrain", "--config", "tiny", "--device", "cpu", "--batch-size", "4",
            "--steps", str(STEPS), "--eval-every", str(STEPS), "--out", str(tmp_path), "--set", "train.precision=fp32",
        ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DNAHNET_CACHE": str(tmp_path / "cache")}
    done = retry_if_stalled(lambda: run_command(cmd(), env), outputs=[tmp_path])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("checkpoint  ") == 1  # only rank 0 reports
    assert_same_run(tmp_path, single)


@pytest.mark.parametrize("local_world, preset, expected", [(2, None, "lo"), (1, None, None), (2, "eth9", "eth9")],
                         ids=["one-host", "two-hosts", "user-choice"])
def test_gloo_ranks_on_one_host_talk_over_loopback(monkeypatch, local_world, preset, expected):
    from dnahnet.distributed import _loopback_for_single_host_gloo

    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world))
    if preset is None:
        monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    else:
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", preset)
    _loopback_for_single_host_gloo(world=2)
    assert os.environ.get("GLOO_SOCKET_IFNAME") == expected


@pytest.mark.parametrize("backend, fails, expected", [("gloo", False, ["barrier", "settle", "destroy"]),
                                                      ("gloo", True, ["destroy"]), ("nccl", False, ["destroy"])],
                         ids=["gloo-clean-run", "gloo-failed-run", "nccl"])
def test_gloo_ranks_leave_the_process_group_together_only_after_a_clean_run(monkeypatch, backend, fails, expected):
    """A clean gloo run meets at a barrier, then lets go of the GIL for a while, before destroying the group (so
    gloo's workers drop every tensor whose release needs the GIL before the interpreter may finalize); a failed
    one leaves at once, since the other ranks may never arrive."""
    from dnahnet import distributed

    calls = []
    monkeypatch.setattr(distributed, "setup", lambda device: distributed.DistEnv(rank=0, world_size=2))
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: backend)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.time, "sleep", lambda s: calls.append("settle" if s == distributed.GLOO_SETTLE_S else s))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    with pytest.raises(RuntimeError) if fails else contextlib.nullcontext():
        with distributed.process_group("cpu") as env:
            assert env.world_size == 2
            if fails:
                raise RuntimeError("a rank failed")
    assert calls == expected
