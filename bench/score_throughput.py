"""Scoring throughput, peak memory and model FLOP utilisation on a real chromosome.

    python -m bench.score_throughput --checkpoint runs/demo/train/latest \
        --genome ../shared/data/hg19-chr22/chr22.fa.gz --region chr22:20000000-22000000

Runs `score_to_tsv` (the code behind `dnahnet score`) over the region with the
model's default windows, writing the TSV and the per-base bedGraph to a temporary
folder. Reports bases/s, peak resident memory (the process's maxrss), and MFU:
the analytic forward FLOPs of every window actually run, at the model's realised
compression, over wall time, against a fp32 matmul peak measured in the same run.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from dnahnet.perf.measure import machine, matmul_peak_flops
from dnahnet.data.genome import Genome
from dnahnet.infer.fasta_input import InputRecord, parse_region
from dnahnet.infer.model import AUTO, load, plan_windows
from dnahnet.infer.scoring import score_to_tsv
from dnahnet.nn.chunking import realised_compression
from dnahnet.nn.flops import count_flops


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--genome", required=True)
    ap.add_argument("--region", required=True, help="chr:start-end (1-based inclusive, samtools style)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--window", type=int, default=AUTO, help="default: the model's training length")
    ap.add_argument("--context", type=int, default=AUTO, help="default: half the window")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model = load(args.checkpoint, device="cpu")
    genome = Genome(args.genome)
    chrom, start, end = parse_region(args.region, genome)
    window, context = model.resolve_windows(args.window, args.context)
    rss_before = peak_rss_mib()
    seq = genome.fetch_normalized(chrom, start, end)[0]
    n_bases = int((seq != ord("N")).sum())
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = score_to_tsv(model, [InputRecord(args.region, seq, end - start, chrom, start)], Path(tmp) / "s.tsv",
                               per_base=Path(tmp) / "s.bedGraph", batch_size=args.batch_size, window=window, context=context)
        seconds = time.perf_counter() - t0
    windows = plan_windows(end - start, window, context)
    ratios = None
    if model.n_routed:
        # Realised compression on the first window that is mostly sequence (an all-N window has no chunks).
        starts = range(0, max(len(seq) - window, 0) + 1, window)
        first = next((a for a in starts if (seq[a : a + window] == ord("N")).mean() < 0.1), 0)
        probe = torch.as_tensor(seq[first : first + window].astype("int64"))[None]
        with torch.no_grad():
            ratios = realised_compression(model.net(probe).routing)
    flops = sum(count_flops(model.config, w.end - w.start, ratios).forward for w in windows)
    peak = matmul_peak_flops()
    print(f"machine: {machine()}")
    print(f"checkpoint {args.checkpoint}: {sum(p.numel() for p in model.net.parameters()):,} parameters; "
          f"windows of {window} with {context} context; compression {ratios}")
    print(f"region {args.region}: {end - start:,} positions, {n_bases:,} non-N, {summary.scored_positions:,} scored")
    print(f"scoring: {seconds:.1f} s -> {(end - start) / seconds:,.0f} positions/s ({n_bases / seconds:,.0f} non-N bases/s)")
    print(f"held-out bits per base over the region: {summary.bits_per_position:.4f}")
    print(f"peak RSS: {peak_rss_mib():,.0f} MiB (before scoring: {rss_before:,.0f} MiB)")
    print(f"forward FLOPs run: {flops / 1e12:.3f} TFLOP -> {flops / seconds / 1e9:.1f} GFLOP/s; "
          f"matmul peak {peak / 1e9:.1f} GFLOP/s; MFU {flops / seconds / peak:.1%}")


if __name__ == "__main__":
    main()
