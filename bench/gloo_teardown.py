"""How often a two-rank gloo FSDP run aborts as its processes exit, with and without the teardown's settle.

    python -m bench.gloo_teardown --runs 500
    python -m bench.gloo_teardown --runs 350 --without-settle

Each run trains the tiny preset for 3 steps on two spawned CPU ranks (gloo, FSDP2, fp32, one thread each), as
tests/test_ddp.py does, and counts the runs in which a rank died, or hung past `RANK_DEADLINE_S`. The abort is a
SIGABRT at interpreter exit, "terminate called without an active exception"; `dnahnet.distributed.teardown` says
why it happens and holds the figures. `--without-settle` runs the teardown as it was before: the barrier, then the
group destroyed at once.
Run from the repository root (`-m` needs `bench` importable).
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import shutil
import tempfile
import types

import torch
import torch.multiprocessing as mp

from bench.genome_scale import free_port


RANK_DEADLINE_S = 120  # a run takes 4-6 s; a rank past this prints its threads' stacks and exits 1 (a hang)


def _rank(rank: int, port: int, out: str, settle: bool) -> None:
    faulthandler.dump_traceback_later(RANK_DEADLINE_S, exit=True)
    from dnahnet import distributed
    from dnahnet.train.trainer import pretrain, run_configs

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": "2",
                       "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2"})
    torch.set_num_threads(1)
    if not settle:  # no sleep at all: even sleep(0) lets go of the GIL for a moment, which the old teardown did not
        distributed.time = types.SimpleNamespace(sleep=lambda seconds: None)
    train = {"steps": 3, "checkpoint_every": 3, "eval_every": 3, "device": "cpu", "precision": "fp32",
             "distributed": "fsdp", "micro_batch_size": 4}
    pretrain(*run_configs("tiny", train=train), out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--without-settle", action="store_true", help="no sleep after the teardown barrier")
    args = p.parse_args()
    died = 0
    for run in range(args.runs):
        out = tempfile.mkdtemp(prefix="gloo_teardown")
        try:
            mp.spawn(_rank, args=(free_port(), out, not args.without_settle), nprocs=2)
        except mp.ProcessExitedException as exited:
            died += 1
            print(f"run {run}: {exited}", flush=True)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    settle = "without the settle" if args.without_settle else "with the settle"
    print(f"{died} of {args.runs} runs had a rank die ({settle})", flush=True)


if __name__ == "__main__":
    main()
