"""`dnahnet data fetch` and `dnahnet baseline markov`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

data_app = typer.Typer(help="Genome data: download and index reference genomes.", no_args_is_help=True)
baseline_app = typer.Typer(help="Classical baselines scored on the trainer's held-out windows.", no_args_is_help=True)


@data_app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help="Manifest name in data_manifests/ (e.g. hg38) or a manifest JSON file"),
    dest: Path = typer.Option(Path("genomes"), help="Folder to download into"),
    url: Optional[str] = typer.Option(None, help="Mirror URL for the FASTA (file:// works)"),
    bed_url: Optional[str] = typer.Option(None, help="Mirror URL for the split BED"),
) -> None:
    """Download a genome from its manifest, convert it to bgzip and index it.

    Example: dnahnet data fetch hg38 --dest genomes/
    """
    from dnahnet.config import read_mapping
    from dnahnet.data.fetch import fetch_genome

    manifest = read_mapping(name) if name.endswith(".json") else name
    path = fetch_genome(manifest, dest, url_override=url, bed_url_override=bed_url)
    typer.echo(f"{name}: {path}")


@baseline_app.command("markov")
def markov(
    genome: Optional[Path] = typer.Option(None, help="FASTA (default: the bundled demo genome)"),
    order: Optional[int] = typer.Option(None, help="Markov order K (default: best of 1..--max-order on the held-out windows)"),
    max_order: int = typer.Option(10, help="Largest order tried when --order is not given"),
    config: str = typer.Option("cpu-small", help="Preset or JSON whose data section fixes splits and eval windows"),
    seq_len: Optional[int] = typer.Option(None, help="Eval window length (default: the config's)"),
    split: str = typer.Option("valid", help="Held-out split to score: valid or test"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the result as JSON"),
) -> None:
    """Order-K Markov model (add-one smoothing) trained on the train split, scored in bits per base.

    Example: dnahnet baseline markov --genome chr22.fa.gz --max-order 10
    """
    from dnahnet.config import DataConfig, dataclass_from_dict, load_preset
    from dnahnet.data.baseline import markov_baseline
    from dnahnet.data.demo import demo_genome_path, demo_manifest
    from dnahnet.io.atomic import atomic_open

    data_dict = dict(load_preset(config).get("data", {}))
    if genome is None:
        genome = demo_genome_path()
        data_dict.update({k: v for k, v in demo_manifest()["splits"].items() if k in ("split_by", "valid_fraction", "test_fraction")})
    if seq_len is not None:
        data_dict["seq_len"] = seq_len
    data = dataclass_from_dict(DataConfig, data_dict, what="data config")
    result = markov_baseline(str(genome), data, order=order, max_order=max_order, split=split)
    for k, bpb in sorted(result.by_order.items()):
        mark = "  <- best" if k == result.order and len(result.by_order) > 1 else ""
        typer.echo(f"order {k:2d}: {bpb:.4f} bits/base{mark}")
    typer.echo(f"{result.split} split, {result.windows} windows of {result.seq_len} bases (N excluded, first base of each window not scored)")
    if json_out is not None:
        with atomic_open(json_out) as fh:
            json.dump(result.summary(), fh, indent=2)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.add_typer(baseline_app, name="baseline")
