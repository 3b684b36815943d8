"""`dnahnet compare`: the data-efficiency comparison (pipelines/data_efficiency) as a command."""

from __future__ import annotations

from pathlib import Path

import typer

from dnahnet_cli.invocation import command_line


def register(app: typer.Typer) -> None:
    @app.command()
    def compare(
        genome: Path = typer.Option(..., help="FASTA to train and evaluate on (fraction split: last 5% held out)"),
        models: str = typer.Option(
            "cpu-transformer,cpu-mamba2,cpu-hnet-transformer,cpu-hnet-mamba2,cpu-every-k", help="Comma-separated presets"
        ),
        bases: int = typer.Option(..., help="Training bases per model"),
        out: Path = typer.Option(..., help="Output folder (rerun to resume)"),
        eval_points: int = typer.Option(12, help="Log-spaced evaluation points"),
        seed: int = typer.Option(0),
        seq_len: int = typer.Option(None, help="Override the presets' window length"),
        eval_windows: int = typer.Option(None, help="Override the number of held-out windows"),
        allow_unmatched: bool = typer.Option(False, help="Compare models not matched in FLOPs per base within 5%"),
    ) -> None:
        """Held-out bits per base against bases seen for each model, and data-efficiency multipliers.

        Example: dnahnet compare --genome chr22.fa.gz --bases 20000000 --out runs/compare
        """
        from pipelines.data_efficiency import CompareConfig, run

        cfg = CompareConfig(genome=str(genome), models=[m.strip() for m in models.split(",") if m.strip()],
                            bases=bases, out=str(out), eval_points=eval_points, seed=seed, seq_len=seq_len,
                            eval_windows=eval_windows, allow_unmatched=allow_unmatched)
        results = run(cfg, command=command_line())
        for m in results["multipliers"]:
            value = f"{m['multiplier']:.2f}x" if m["reached"] else "not reached"
            typer.echo(f"{m['hnet']} vs {m['baseline']}: {value}")
        typer.echo(f"report: {out / 'report.md'}")
