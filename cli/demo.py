"""`dnahnet demo`: pretrain, export boundaries, annotate and score on the bundled genome."""

from __future__ import annotations

from pathlib import Path

import typer

from dnahnet_cli.invocation import command_line


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: Path = typer.Option(Path("runs/demo"), help="Output folder"),
        bases: str = typer.Option("2.5M", help="Training bases, e.g. 2500000, 2.5M or 1e6"),
        seed: int = typer.Option(0),
    ) -> None:
        """The whole workflow on the bundled hg19 chr22 slice (about 10 minutes on 2 CPU cores).

        Example: dnahnet demo --out runs/demo
        """
        from dnahnet.io.options import parse_count
        from dnahnet_cli.pretrain import ProgressReporter
        from dnahnet_pipelines.demo import run_demo

        n_bases = parse_count(bases, "--bases")

        reporter = ProgressReporter()
        try:
            run_demo(out, n_bases, seed, log=typer.echo, on_step=reporter, command=command_line())
        finally:
            reporter.stop()
