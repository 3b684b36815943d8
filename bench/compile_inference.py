"""Whole-backbone `torch.compile` (Inductor) against eager, forward only, in one process.

Loads one checkpoint twice (`dnahnet.load(..., compile=True)` and eager), then at each
length runs both on fresh random DNA, interleaved (A B A B ...), batch 1. The first
compiled call per length is reported apart (it compiles, or recompiles once when the
length first changes and the length becomes dynamic); after it, every input brings new
chunk counts, so "graphs" staying put shows nothing recompiles for them. Prints best and
median seconds, the median of paired speed-ups, the largest logit difference and the
compile seconds.

    OMP_NUM_THREADS=1 python bench/compile_inference.py --checkpoint runs/x/latest --lengths 4096,16384 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch._dynamo.utils import counters

import dnahnet
from dnahnet.nn.compile import compile_seconds
from dnahnet.perf.inference import random_dna
from dnahnet.perf.measure import machine


def _ids(length: int, seed: int) -> torch.Tensor:
    return torch.as_tensor(random_dna(length, seed)).long()[None]


def _timed(net, ids):
    started = time.perf_counter()
    with torch.no_grad():
        out = net(ids)
    return time.perf_counter() - started, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--lengths", default="4096,16384")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    eager = dnahnet.load(args.checkpoint, device="cpu").net
    compiled = dnahnet.load(args.checkpoint, device="cpu", compile=True).net
    print(f"machine: {machine('cpu')}; checkpoint {args.checkpoint}; batch 1, fp32, forward")
    seed = 0
    for length in (int(x) for x in args.lengths.split(",")):
        seed += 1
        c0 = compile_seconds()
        first, _ = _timed(compiled, _ids(length, seed))
        compile_s = compile_seconds() - c0
        graphs = counters["stats"]["unique_graphs"]
        te, tc, ratios, diff, chunks = [], [], [], 0.0, set()
        for _ in range(args.repeats):
            seed += 1
            ids = _ids(length, seed)
            a, out_a = _timed(eager, ids)
            b, out_b = _timed(compiled, ids)
            te.append(a)
            tc.append(b)
            ratios.append(a / b)
            diff = max(diff, (out_a.logits - out_b.logits).abs().max().item())
            chunks.add(tuple(int(r.boundary_mask.sum()) for r in out_a.routing))
        print(f"L={length:>7,}: eager best {min(te) * 1e3:8.1f} ms median {statistics.median(te) * 1e3:8.1f} | "
              f"compiled best {min(tc) * 1e3:8.1f} ms median {statistics.median(tc) * 1e3:8.1f} | "
              f"paired speed-up (median) {statistics.median(ratios):.2f}x | first compiled call {first:.1f} s "
              f"({compile_s:.1f} s compiling) | {len(chunks)} distinct chunk counts, "
              f"{counters['stats']['unique_graphs'] - graphs} graphs added after the first call | max |logit diff| {diff:.1e}")


if __name__ == "__main__":
    main()
