"""Routing, chunking and dechunking as another commit had them, interleaved with the working tree's.

Issue 18 found dnahnet's dynamic-chunking layer (the routing module's cosine boundary
probabilities, `ChunkLayer`'s gather of boundary positions and `DeChunkLayer`'s EMA back to
every position) level with lucidrains' `DynamicSequenceChunker` as a whole layer and ahead
of the official code ported to CPU, and asked that the lead be kept. Neither of those is
installed here, so this checks the lead against the project itself: it loads
`dnahnet/nn/chunking.py` (and the `dnahnet/nn/ssd.py` its EMA may use) as they were at
`--against` (`git show`) into private modules and times one layer of each, built from the
same seed, in alternating order: routing, chunk, dechunk plus a residual projection, as an
H-Net stage wraps its main network (here the identity), forward and backward from a fixed
random gradient. Reported: medians and the median of the per-round old/new ratios with a
percentile-bootstrap 95% interval, and the largest difference between the two outputs.

    python bench/chunking_ab.py --against 97c2320 --repeats 20 --out runs/chunking_ab
"""

from __future__ import annotations

import argparse
import statistics
import types
from typing import Callable

import torch
from torch import nn

import dnahnet.nn.chunking as chunking_module
from dnahnet.io.atomic import check_writable_dir
from dnahnet.perf.measure import (add_paired_bench_arguments, describe_ratio, interleaved_seconds,
                                   paired_ratio_summary, run_bench_script, save_paired_bench, start_paired_bench)

try:  # run as a script (bench/ on the path) or imported as bench.chunking_ab (tests)
    from kernels_ab import module_at
except ImportError:
    from bench.kernels_ab import module_at


def chunking_at(commit: str) -> types.ModuleType:
    """`dnahnet/nn/chunking.py` at `commit`, its `ssd_chunked` (if it imports one) from the same commit."""
    module = module_at(commit, "dnahnet/nn/chunking.py")
    if hasattr(module, "ssd_chunked"):
        module.ssd_chunked = module_at(commit, "dnahnet/nn/ssd.py").ssd_chunked
    return module


def layer_step(module: types.ModuleType, batch: int, length: int, d_model: int, seed: int) -> Callable[[], torch.Tensor]:
    """One forward+backward of routing, chunking, dechunking and the residual projection; returns the output."""
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, length, d_model, generator=gen)
    upstream = torch.randn(batch, length, d_model, generator=gen)
    torch.manual_seed(seed)  # both versions' parameters alike
    routing, chunk, dechunk = module.RoutingModule(d_model), module.ChunkLayer(), module.DeChunkLayer(d_model)
    residual = nn.Linear(d_model, d_model, bias=False)

    def step() -> torch.Tensor:
        h = hidden.clone().requires_grad_()
        decided = routing(h)
        chunks, _ = chunk(h, decided.boundary_mask)
        out = dechunk(chunks, decided.boundary_mask, decided.boundary_prob) + residual(h)
        out.backward(upstream)
        return out.detach()

    return step


def measure(against: str, batch: int, length: int, d_model: int, repeats: int, seed: int) -> dict:
    steps = {"old": layer_step(chunking_at(against), batch, length, d_model, seed),
             "new": layer_step(chunking_module, batch, length, d_model, seed)}
    difference = (steps["old"]() - steps["new"]()).abs().max().item()
    seconds = interleaved_seconds(steps, repeats)
    row = paired_ratio_summary([o / n for o, n in zip(seconds["old"], seconds["new"])], seed=seed)
    row.update(old_seconds=seconds["old"], new_seconds=seconds["new"], old_median_s=statistics.median(seconds["old"]),
               new_median_s=statistics.median(seconds["new"]))
    return {"against": against, "batch": batch, "length": length, "d_model": d_model,
            "max_abs_output_difference": difference, "row": row}


def report(results: dict) -> str:
    row = results["row"]
    return (f"# Routing + chunk + dechunk: {results['against']} against the working tree\n\nCommand:\n\n"
            f"    {results['command']}\n\nMachine: {results['machine']}; fp32, {results['repeats']} rounds, batch {results['batch']} x {results['length']} positions x d_model {results['d_model']}, "
            f"forward and backward, old and new alternating in one process.\n\n"
            "| layer | old median | new median | speed-up (old / new, paired) | largest output difference |\n"
            "|---|---|---|---|---|\n"
            f"| routing + chunk + dechunk + residual | {row['old_median_s'] * 1e3:.1f} ms | {row['new_median_s'] * 1e3:.1f} ms "
            f"| {describe_ratio(row)} | {results['max_abs_output_difference']:.1e} |\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", required=True, help="commit whose dnahnet/nn/chunking.py is the 'old' layer")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--d-model", type=int, default=256)
    add_paired_bench_arguments(p, repeats=20, repeats_help="rounds")
    args = p.parse_args(argv)
    out = check_writable_dir(args.out)
    results = start_paired_bench("bench/chunking_ab.py", argv, args.threads, args.repeats)
    results.update(measure(args.against, args.batch, args.length, args.d_model, args.repeats, args.seed))
    save_paired_bench(out, results, report(results))
    print(report(results).strip().splitlines()[-1])  # the table's row
    return 0


if __name__ == "__main__":
    raise SystemExit(run_bench_script(main, "bench/chunking_ab.py"))
