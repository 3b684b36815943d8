"""`dnahnet boundaries`: a model's chunk boundaries over a genome as BED6 (thin wrapper)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

import typer

from dnahnet.errors import DnahnetInputError
from dnahnet_cli.progress import progress


def register(app: typer.Typer) -> None:
    @app.command()
    def boundaries(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint folder of a model with routed stages."),
        genome: Path = typer.Option(..., "--genome", help="Genome FASTA (plain or bgzip; indexed or indexable) or GenBank."),
        region: Optional[list[str]] = typer.Option(None, "--region", help="chr or chr:start-end (samtools style, 1-based inclusive); repeatable."),
        bed: Optional[Path] = typer.Option(None, "--bed", help="BED file of regions (0-based half-open)."),
        out: str = typer.Option(..., "--out", help="Output BED6 ('-' = stdout)."),
        probs: Optional[Path] = typer.Option(None, "--probs", help="Also write p_t as bedGraph (stage k>1 in <stem>.stageK<suffix>)."),
        window: int = typer.Option(16384, "--window", help="Bases per forward pass."),
        context: int = typer.Option(4096, "--context", help="Warm-up bases at the start of each later window (not reported)."),
        track_line: bool = typer.Option(False, "--track-line", help="Start each output with a UCSC track line."),
        batch_size: int = typer.Option(4, "--batch-size", help="Windows per forward pass."),
        device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda or cuda:N."),
        dtype: str = typer.Option("auto", "--dtype", help="auto (fp32), fp32, or on CUDA bf16/fp16."),
    ) -> None:
        """Chunk boundaries as BED6 (name = stage, score = 1000 x p_t at the chunk start), sorted, 0-based.

        Without --region or --bed, every sequence of the genome. No chunk covers an N.

        Example: dnahnet boundaries --checkpoint runs/demo/checkpoint --genome chr22.fa.gz --region chr22:20,000,001-20,100,000 --out chunks.bed --probs p.bedGraph
        """
        from dnahnet.data.corpus import open_genome
        from dnahnet.infer.boundaries import export_boundaries
        from dnahnet.infer.fasta_input import iter_bed_intervals, parse_region
        from dnahnet.infer.model import load

        if region and bed is not None:
            raise DnahnetInputError("give --region or --bed, not both")
        ref = open_genome(genome)
        regions = None
        if region:
            regions = [parse_region(r, ref) for r in region]
        elif bed is not None:
            regions = [(c, s, e) for c, s, e, _, _ in iter_bed_intervals(bed, ref)]
        model = load(checkpoint, device=device, dtype=dtype)
        s = export_boundaries(model, ref, regions, out, probs_bedgraph=probs, window=window, context=context,
                              track_line=track_line, batch_size=batch_size,
                              progress=functools.partial(progress, unit="bases", label="boundaries"))
        chunks = ", ".join(f"stage{k + 1} {c:,}" for k, c in enumerate(s.chunks))
        print(f"dnahnet: {s.regions} regions, {s.bases:,} bases ({s.n_bases:,} N): chunks {chunks}; "
              f"{s.regions_all_n} all-N regions, {s.windows_skipped_all_n} of {s.windows} windows all N (skipped)",
              file=sys.stderr)
