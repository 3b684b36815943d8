"""`dnahnet view`: one offline HTML page with a region's chunks, p_t, per-base bits and annotations (thin wrapper)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def view(
        region: str = typer.Option(..., "--region", help="chr:start-end (1-based inclusive, commas allowed) the page holds."),
        out: Path = typer.Option(..., "--out", help="The HTML page to write."),
        boundaries: Optional[Path] = typer.Option(None, "--boundaries", help="BED6 chunks from `dnahnet boundaries` (.bed or .bed.gz)."),
        probs: Optional[Path] = typer.Option(None, "--probs", help="p_t track from `boundaries --probs` (stage-k files beside it are found)."),
        per_base: Optional[Path] = typer.Option(None, "--per-base", help="Per-base log2 P from `score --per-base` (bedGraph, .gz or .bw)."),
        annotation: Optional[List[Path]] = typer.Option(None, "--annotation", help="BED annotation track; repeatable."),
        genome: Optional[Path] = typer.Option(None, "--genome", help="The genome the tracks are on: checks the region and the contig names."),
        title: str = typer.Option("", "--title", help="Line shown above the tracks."),
        max_bases: int = typer.Option(2_000_000, "--max-bases", help="Largest region a page may hold."),
    ) -> None:
        """Write one self-contained HTML page (no network needed) showing a region's tracks, with a region picker.

        Example: dnahnet view --region chr22:40,000,001-40,050,000 --boundaries chunks.bed.gz --probs p.bw --per-base bits.bw --annotation genes.bed --out view.html
        """
        from dnahnet.errors import DnahnetInputError
        from dnahnet.infer.boundaries import probs_paths
        from dnahnet.io.viewer import ViewTracks, write_page

        genome_names = None
        if genome is not None:
            from dnahnet.data.corpus import open_genome
            from dnahnet.infer.fasta_input import parse_region

            ref = open_genome(genome)
            chrom, start, end = parse_region(region, ref)
            genome_names = list(ref.names)
        else:
            from dnahnet.infer.fasta_input import _REGION

            m = _REGION.match(region.strip())
            if not m or m["start"] is None:
                raise DnahnetInputError(f"region {region!r} is not chr:start-end (without --genome the page needs both ends)")
            chrom, start, end = m["chrom"], int(m["start"].replace(",", "")) - 1, int(m["end"].replace(",", ""))
            if not 0 <= start < end:
                raise DnahnetInputError(f"region {region!r} is empty or starts before 1")
        prob_files = []
        if probs is not None:
            prob_files = [p for p in probs_paths(probs, 9) if p.exists()] or [probs]
        tracks = ViewTracks(boundaries, prob_files, per_base, list(annotation or []))
        s = write_page(out, chrom, start, end, tracks, title=title, genome_names=genome_names, max_bases=max_bases)
        shown = ", ".join(f"{name} ({n:,})" for name, n in s["tracks"])
        print(f"dnahnet: wrote {out} ({s['bytes']:,} bytes): {shown or 'no tracks'}", file=sys.stderr)
