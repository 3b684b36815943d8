"""`dnahnet compare`: the data-efficiency comparison (pipelines/data_efficiency) as a command."""

from __future__ import annotations

from pathlib import Path

import typer

from dnahnet_cli.invocation import command_line


def register(app: typer.Typer) -> None:
    from dnahnet_pipelines.data_efficiency import DEFAULT_MODELS

    @app.command()
    def compare(
        genome: Path = typer.Option(..., help="FASTA to train and evaluate on (held out: windows of the valid split)"),
        bases: str = typer.Option(..., help="Training bases per run (model x seed), e.g. 4000000, 4M or 2e7"),
        out: Path = typer.Option(..., help="Output folder (rerun to resume)"),
        models: str = typer.Option(",".join(DEFAULT_MODELS), help="Comma-separated presets"),
        seeds: int = typer.Option(3, help="Seeds per model (seed s sets init and data order for every model)"),
        seed: int = typer.Option(0, help="First seed"),
        eval_points: int = typer.Option(12, help="Log-spaced curve points over the stable phase"),
        dense_points: int = typer.Option(6, help="Extra points over the second half of the stable phase"),
        eval_windows: int = typer.Option(64, help="Held-out windows scored at every curve point (a fixed subset)"),
        heldout_bases: str = typer.Option("1M", help="Scored bases of the full held-out set (scored at the readouts), e.g. 1M"),
        seq_len: int = typer.Option(None, help="Override the presets' window length"),
        batch_size: int = typer.Option(32, help="Evaluation windows per forward pass"),
        decay_fraction: float = typer.Option(None, help="WSD decay fraction (default: the presets')"),
        valid_fraction: float = typer.Option(0.05, help="Fraction split: valid = this share of each chromosome's ACGT bases before the test share"),
        test_fraction: float = typer.Option(0.05, help="Fraction split: test = the last share of each chromosome's ACGT bases (never used)"),
        split_bed: Path = typer.Option(None, help="BED labelled train/valid/test (split_by bed) instead of the fraction split"),
        device: str = typer.Option("auto", help="auto, cpu or cuda"),
        bootstrap: int = typer.Option(1000, help="Bootstrap replicates over held-out windows"),
        shard: str = typer.Option("0/1", help="K/N: train only every N-th run, starting at K (parallel processes; no report)"),
        report_only: bool = typer.Option(False, help="Write the report from the seeds finished for every model"),
        allow_unmatched: bool = typer.Option(False, help="Compare models not matched in FLOPs per base within 5%"),
    ) -> None:
        """Held-out bits per base against bases seen for each model and seed, and multipliers with intervals.

        Example: dnahnet compare --genome chr22.fa.gz --bases 4M --out runs/compare
        """
        from dnahnet.io.options import parse_count
        from dnahnet_pipelines.data_efficiency import CompareConfig, parse_shard, run, split_models

        cfg = CompareConfig(genome=str(genome), models=split_models(models), bases=parse_count(bases, "--bases"), out=str(out), seeds=seeds,
                            seed=seed, eval_points=eval_points, dense_points=dense_points, eval_windows=eval_windows,
                            heldout_bases=parse_count(heldout_bases, "--heldout-bases"), seq_len=seq_len, batch_size=batch_size,
                            decay_fraction=decay_fraction, split_by="bed" if split_bed else "fraction",
                            valid_fraction=valid_fraction, test_fraction=test_fraction,
                            split_bed=str(split_bed) if split_bed else None, device=device, bootstrap=bootstrap,
                            shard=parse_shard(shard), report_only=report_only, allow_unmatched=allow_unmatched)
        results = run(cfg, command=command_line())
        if results is None:
            typer.echo(f"shard {shard} done; rerun without --shard to write the report")
            return
        for line in results["summary_lines"]:
            typer.echo(line)
        typer.echo(f"report: {out / 'report.md'}")
