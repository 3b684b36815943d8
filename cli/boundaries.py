"""`dnahnet boundaries`: a model's chunk boundaries over a genome as BED6 (thin wrapper)."""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from dnahnet.progress import silent
from dnahnet_cli.progress import progress


def register(app: typer.Typer) -> None:
    @app.command()
    def boundaries(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint folder of a model with routed stages."),
        genome: Path = typer.Option(..., "--genome", help="Genome FASTA (plain or bgzip; indexed or indexable) or GenBank."),
        region: Optional[list[str]] = typer.Option(None, "--region", help="chr or chr:start-end (samtools style, 1-based inclusive); repeatable."),
        bed: Optional[Path] = typer.Option(None, "--bed", help="BED file of regions (0-based half-open)."),
        contigs: Optional[list[str]] = typer.Option(None, "--contigs", help="Whole contigs, comma-separated; repeatable."),
        out: str = typer.Option(..., "--out", help="Output BED6 ('-' = stdout); name.bed.gz = bgzip + tabix index."),
        probs: Optional[Path] = typer.Option(None, "--probs", help="Also write p_t: bedGraph, .bedGraph.gz (bgzip + tabix) or .bw (bigWig); stage k>1 in <stem>.stageK<suffix>."),
        window: int = typer.Option(16384, "--window", help="Bases per forward pass."),
        context: int = typer.Option(4096, "--context", help="Warm-up bases at the start of each later window (not reported)."),
        track_line: bool = typer.Option(True, "--track-line/--no-track-line", help="Start plain-text outputs with a UCSC track line."),
        batch_size: int = typer.Option(4, "--batch-size", help="Windows per forward pass."),
        shard_bases: int = typer.Option(1_000_000, "--shard-bases", help="Bases per shard: the unit of work per process and of restart (parts in <out>.parts/)."),
        device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda or cuda:N."),
        dtype: str = typer.Option("auto", "--dtype", help="auto (fp32), fp32, bf16 (CPU: autocast, where the CPU has avx512_bf16/amx_bf16), or on CUDA fp16."),
        compile_: bool = typer.Option(False, "--compile", help="torch.compile the whole backbone, one graph (compile time reported separately)."),
    ) -> None:
        """Chunk boundaries as BED6 (name = stage, score = 1000 x p_t at the chunk start), sorted, 0-based.

        Without --region, --bed or --contigs, every sequence of the genome. No chunk covers an N; all-N
        windows are skipped and counted. The work is cut into shards: under `torchrun --nproc-per-node N
        -m dnahnet_cli boundaries ...` each process takes its shards, and the same output comes out
        byte for byte; an interrupted run restarted with the same command skips finished shards.

        Example: dnahnet boundaries --checkpoint runs/demo/train/latest --genome chr22.fa.gz --region chr22:20,000,001-20,100,000 --out chunks.bed --probs p.bedGraph
        """
        from dnahnet.data.corpus import open_genome
        from dnahnet.distributed import process_group
        from dnahnet.infer.boundaries import export_boundaries
        from dnahnet.infer.model import load
        from dnahnet.infer.sharding import select_regions

        from dnahnet.infer.boundaries import probs_paths
        from dnahnet.io.paths import check_command

        check_command({"--out": out, "--probs": probs_paths(probs, 4) if probs is not None else None},
                      {"--checkpoint": checkpoint, "--genome": genome, "--bed": bed},
                      {"--batch-size": (batch_size, 1), "--window": (window, 1), "--context": (context, 0),
                       "--shard-bases": (shard_bases, 1)})
        ref = open_genome(genome)
        regions = select_regions(ref, regions=region, bed=bed, contigs=contigs)
        with process_group(device) as env:
            started = time.perf_counter()
            model = load(checkpoint, device=env.device, dtype=dtype, compile=compile_)
            show = functools.partial(progress, unit="bases", label="boundaries") if env.is_main else silent
            s = export_boundaries(model, ref, regions, out, probs_bedgraph=probs, window=window, context=context,
                                  track_line=track_line, batch_size=batch_size, progress=show,
                                  shard_bases=shard_bases, env=env)
        if not env.is_main:
            return
        chunks = ", ".join(f"stage{k + 1} {c:,}" for k, c in enumerate(s.chunks))
        print(f"dnahnet: {s.regions} regions, {s.bases:,} bases ({s.n_bases:,} N): chunks {chunks}; "
              f"{s.regions_all_n} all-N regions, {s.windows_skipped_all_n} of {s.windows} windows all N (skipped); "
              f"{s.shards} shards on {env.world_size} process(es), {s.shards_reused} reused from an interrupted run",
              file=sys.stderr)
        if model.compiled:
            from dnahnet.nn.compile import compile_summary

            print(f"dnahnet: {compile_summary(model.compiled, time.perf_counter() - started)}", file=sys.stderr)
