"""`dnahnet annotate`: chunk boundaries against genome annotations."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from dnahnet_cli.invocation import command_line


def register(app: typer.Typer) -> None:
    @app.command()
    def annotate(
        boundaries: Path = typer.Option(..., help="BED6 from `dnahnet boundaries`"),
        annotation: List[Path] = typer.Option(..., help="GFF3, GTF, BED (3-12 columns) or GenBank; repeat the option for several"),
        genome: Path = typer.Option(..., help="The FASTA or GenBank the boundaries were called on (soft-masked repeats are added)"),
        out: Path = typer.Option(..., help="Output folder: enrichment.tsv, summary.json, PNG figures, report.md"),
        probs: Optional[Path] = typer.Option(None, help="Per-base p_t bedGraph from `dnahnet boundaries --probs` (adds AUROC/AUPRC)"),
        window: int = typer.Option(5, help="Edge window: boundaries within ±window bases of a feature start/end"),
        permutations: int = typer.Option(200, help="Circular-shift permutations per chromosome for the null"),
        promoter_window: int = typer.Option(100, help="Promoter = this many bases upstream of each gene"),
        stage: Optional[int] = typer.Option(None, help="Only this stage (1 or 2)"),
        seed: int = typer.Option(0),
    ) -> None:
        """Boundary enrichment at feature starts/ends against a permutation null, with a fixed-grid control.

        Example: dnahnet annotate --boundaries b.bed --annotation genes.gff3 --genome g.fa.gz --out report/
        """
        from dnahnet.analysis.report import annotate as run_annotate
        from dnahnet.analysis.report import headline_table

        summary = run_annotate(boundaries, annotation, genome, out, window=window, permutations=permutations,
                               probs_bedgraph=probs, seed=seed, stage=stage, promoter_window=promoter_window,
                               command=command_line())
        typer.echo(headline_table(summary))
        typer.echo(f"\nreport: {out / 'report.md'}")
