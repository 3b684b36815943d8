"""Embedding throughput next to scoring throughput, and full fine-tuning bases/s (a benchmark, not a test).

    python -m bench.embed_throughput --checkpoint runs/demo/train/latest \
        --genome ../shared/data/hg19-chr22/chr22.fa.gz --region chr22:20000001-20200000 --length 1024

Cuts the region into N-free pieces of `--length` bases and times, on the same pieces:
`model.score` (per-base log2 P), `model.embed(pool="mean")` and
`model.embed(pool="none")` (bases/s, one warm-up pass first, best of `--repeats`),
then `--steps` full fine-tuning steps (forward + backward + AdamW on a pooled head,
batches of `--batch-size` pieces with random labels; bases/s over the timed steps).
Prints one JSON object with the figures, the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

import numpy as np
import torch

from dnahnet.data.genome import Genome
from dnahnet.infer.fasta_input import parse_region
from dnahnet.infer.model import load
from dnahnet.perf.measure import machine


def pieces(genome: Genome, region: str, length: int, limit: int) -> list[np.ndarray]:
    chrom, start, end = parse_region(region, genome)
    seq = genome.fetch_normalized(chrom, start, end)[0]
    out = [seq[a : a + length] for a in range(0, len(seq) - length + 1, length)]
    out = [p for p in out if not (p == ord("N")).any()]
    return out[:limit]


def best_rate(fn, bases: int, repeats: int) -> float:
    fn()  # warm-up
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = max(best, bases / (time.perf_counter() - t))
    return best


def finetune_rate(model, seqs: list[np.ndarray], batch_size: int, steps: int) -> float:
    from dnahnet.finetune.full import PooledRegressor, batch_tensors
    from dnahnet.infer.embed import check_spec

    spec = check_spec(model.net, "final", 0, "mean")
    head = PooledRegressor(model.net, spec, model.config.d_model[0]).train()
    opt = torch.optim.AdamW(head.parameters(), lr=1e-5)
    rng = np.random.default_rng(0)
    timed, bases = 0.0, 0
    for step in range(steps + 1):
        idx = rng.choice(len(seqs), batch_size, replace=len(seqs) < batch_size)
        ids, mask, weights = batch_tensors([seqs[i] for i in idx], model.device)
        y = torch.from_numpy(rng.integers(0, 2, batch_size).astype(np.float32)).to(model.device)
        t = time.perf_counter()
        out, ratio = head(ids, mask, weights)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out, y) + ratio
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        if step:  # step 0 is the warm-up
            timed += time.perf_counter() - t
            bases += int(weights.sum())
    return bases / timed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--genome", required=True)
    ap.add_argument("--region", required=True, help="chr:start-end (1-based inclusive)")
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--pieces", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    model = load(args.checkpoint, device=args.device)
    seqs = pieces(Genome(args.genome), args.region, args.length, args.pieces)
    bases = sum(len(s) for s in seqs)
    bs = args.batch_size
    result = {
        "checkpoint": args.checkpoint, "pieces": len(seqs), "length": args.length, "batch_size": bs,
        "score_bases_per_s": best_rate(lambda: model.score(seqs, batch_size=bs), bases, args.repeats),
        "embed_mean_bases_per_s": best_rate(lambda: model.embed(seqs, pool="mean", batch_size=bs), bases, args.repeats),
        "embed_none_bases_per_s": best_rate(lambda: model.embed(seqs, pool="none", batch_size=bs), bases, args.repeats),
        "finetune_full_bases_per_s": finetune_rate(model, seqs, bs, args.steps),
        "machine": machine(), "threads": torch.get_num_threads(),
        "command": "python -m bench.embed_throughput " + shlex.join(sys.argv[1:] if argv is None else argv),
    }
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
