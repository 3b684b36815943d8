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
        window: int = typer.Option(5, "--flank", "--window", help="Boundaries within ±flank bases of a feature start/end count as at the edge (--window: the old name)"),
        permutations: int = typer.Option(
            1000, help="Draws of the circular-shift and sequence-context nulls (p floor 2/(n+1) two-sided)"),
        promoter_window: int = typer.Option(100, "--promoter-bases", "--promoter-window", help="Promoter = this many bases upstream of each gene"),
        stage: Optional[int] = typer.Option(None, help="Only this stage (1 or 2)"),
        context_k: Optional[int] = typer.Option(
            None, help="Order of the sequence-context null (1-8; default: chosen by held-out log-loss; "
                       "lowered with a note when the data cannot support it)"),
        bootstrap: int = typer.Option(1000, help="Bootstrap resamples of the features for the fold intervals"),
        seed: int = typer.Option(0),
    ) -> None:
        """Boundary enrichment at feature starts/ends under three nulls: circular shift, fixed grid, sequence context.

        Folds carry 95% bootstrap intervals and Benjamini-Hochberg q over all tests;
        an association is claimed only where the sequence-context interval excludes 1.

        Example: dnahnet annotate --boundaries b.bed --annotation genes.gff3 --genome g.fa.gz --out report/
        """
        from dnahnet.analysis.report import annotate as run_annotate
        from dnahnet.analysis.report import headline_table

        from dnahnet.io.paths import check_command

        check_command({"--out": [out / name for name in ("enrichment.tsv", "summary.json", "report.md")]},
                      {"--boundaries": boundaries, "--annotation": annotation, "--genome": genome, "--probs": probs},
                      {"--flank": (window, 0), "--permutations": (permutations, 1),
                       "--promoter-bases": (promoter_window, 0), "--stage": (stage, 1),
                       "--context-k": (context_k, 1), "--bootstrap": (bootstrap, 1)})
        summary = run_annotate(boundaries, annotation, genome, out, window=window, permutations=permutations,
                               probs_bedgraph=probs, seed=seed, stage=stage, promoter_window=promoter_window,
                               command=command_line(), context_k=context_k, bootstrap=bootstrap)
        for note in summary["notes"]:
            typer.echo(f"annotate: note: {note}", err=True)
        typer.echo(headline_table(summary))
        typer.echo(f"\nreport: {out / 'report.md'}")
