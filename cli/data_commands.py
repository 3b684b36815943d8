"""`dnahnet data fetch` and `dnahnet baseline markov`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from dnahnet.errors import DnahnetInputError

data_app = typer.Typer(help="Genome data: download and index reference genomes.", no_args_is_help=True)
baseline_app = typer.Typer(help="Classical baselines: scored on the trainer's held-out windows, or fitted on one genome and scored on another.", no_args_is_help=True)


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

    from dnahnet.io.paths import input_file

    manifest = read_mapping(input_file(name, "manifest", "manifest file")) if name.endswith(".json") else name
    path = fetch_genome(manifest, dest, url_override=url, bed_url_override=bed_url, source=name)
    typer.echo(f"{name}: {path}")


@baseline_app.command("markov")
def markov(
    genome: Optional[Path] = typer.Option(None, help="FASTA scored on its own held-out windows (default: the bundled demo genome)"),
    fit_genome: Optional[Path] = typer.Option(None, "--fit", help="Cross-genome mode: FASTA/GenBank whose ACGT bases the model is fitted on"),
    eval_genome: Optional[Path] = typer.Option(None, "--eval", help="Cross-genome mode: FASTA/GenBank scored with the --fit model"),
    region: Optional[list[str]] = typer.Option(None, "--region", help="With --eval: chr or chr:start-end of it (samtools style, 1-based inclusive); repeatable"),
    bed: Optional[Path] = typer.Option(None, "--bed", help="With --eval: BED file of its regions to score (0-based half-open)"),
    both_strands: bool = typer.Option(False, "--both-strands", help="With --fit: count both strands of the fitting genome and score both strands of --eval"),
    holdout_fraction: float = typer.Option(0.1, "--holdout-fraction", help="With --fit: last fraction of each fitting sequence held out to choose the order"),
    order: Optional[int] = typer.Option(None, help="Markov order K, 0..12 (default: the best of 1..--max-order on held-out data)"),
    max_order: Optional[int] = typer.Option(None, help="Largest order tried when --order is not given, 1..12 (default 10)"),
    config: str = typer.Option("cpu-small", help="Preset or JSON whose data section fixes splits and eval windows (--genome mode)"),
    seq_len: Optional[int] = typer.Option(None, help="Eval window length (default: the config's; --genome mode)"),
    split: str = typer.Option("valid", help="Held-out split to score: valid or test (--genome mode)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the result as JSON"),
) -> None:
    """Order-K Markov model (add-one smoothing) scored in bits per base (mean over ACGT positions; N not scored).

    --genome: fitted on the genome's train split, scored on the trainer's held-out windows; the order is
    chosen on the valid split's windows. --fit/--eval: fitted on every ACGT base of one genome, scored on
    another (or on its --region/--bed); the order is chosen on a held-out part of the fitting genome only.

    Examples: dnahnet baseline markov --genome chr22.fa.gz --max-order 10;
    dnahnet baseline markov --fit umaydis.fa.gz --eval chr22.fa.gz --region chr22:20,000,001-21,000,000 --both-strands
    """
    from dnahnet.io.atomic import atomic_open
    from dnahnet.io.options import check_int
    from dnahnet.io.paths import check_command
    from dnahnet_cli import invocation

    cross = fit_genome is not None or eval_genome is not None
    if cross:
        if fit_genome is None or eval_genome is None:
            raise DnahnetInputError("cross-genome mode needs both --fit GENOME and --eval GENOME")
        if genome is not None:
            raise DnahnetInputError("give --genome (held-out windows of one genome) or --fit/--eval (two genomes), not both")
        given = [flag for flag, v, default in (("--config", config, "cpu-small"), ("--seq-len", seq_len, None),
                                               ("--split", split, "valid")) if v != default]
        if given:
            raise DnahnetInputError(f"{', '.join(given)}: for --genome mode only, not --fit/--eval")
        if region and bed is not None:
            raise DnahnetInputError("give --region or --bed, not both")
    else:
        given = [flag for flag, v in (("--region", region), ("--bed", bed), ("--both-strands", both_strands)) if v]
        if given or holdout_fraction != 0.1:
            raise DnahnetInputError(f"{', '.join(given) or '--holdout-fraction'}: for --fit/--eval mode only")
    check_int(seq_len, "--seq-len", minimum=2, what="the first base of each window is not scored")
    check_command({"--json": json_out}, {"--genome": genome, "--fit": fit_genome, "--eval": eval_genome, "--bed": bed})
    if cross:
        _cross_genome(fit_genome, eval_genome, region, bed, both_strands, holdout_fraction, order, max_order, json_out,
                      invocation.command_line())
        return

    from dnahnet.config import DataConfig, dataclass_from_dict, load_preset
    from dnahnet.data.baseline import check_markov_options, markov_baseline
    from dnahnet.data.demo import demo_genome_path, demo_manifest

    check_markov_options(order, max_order, split)
    data_dict = dict(load_preset(config).get("data", {}))
    if genome is None:
        genome = demo_genome_path()
        data_dict.update({k: v for k, v in demo_manifest()["splits"].items() if k in ("split_by", "valid_fraction", "test_fraction")})
    if seq_len is not None:
        data_dict["seq_len"] = seq_len
    data = dataclass_from_dict(DataConfig, data_dict, what="data config")
    result = markov_baseline(str(genome), data, order=order, max_order=max_order, split=split)
    if result.order_chosen_on is not None:
        typer.echo(f"orders compared on the {result.order_chosen_on} split's {result.windows} windows:")
        for k, bpb in sorted(result.by_order.items()):
            mark = "  <- best" if k == result.order and len(result.by_order) > 1 else ""
            typer.echo(f"order {k:2d}: {bpb:.4f} bits/base{mark}")
    same = " (the windows that chose the order)" if result.order_chosen_on == result.split else ""
    typer.echo(f"order {result.order}: {result.bits_per_base:.4f} bits/base on the {result.split} split{same}, "
               f"{result.windows} windows of {result.seq_len} bases (N excluded, first base of each window not scored)")
    if json_out is not None:
        with atomic_open(json_out) as fh:
            json.dump(result.summary(), fh, indent=2)


def _cross_genome(fit_genome: Path, eval_genome: Path, region, bed, both_strands: bool, holdout_fraction: float,
                  order, max_order, json_out: Optional[Path], command: str) -> None:
    """`baseline markov --fit G1 --eval G2`: print the order choice, the score and the command; optionally JSON."""
    from dnahnet.data.baseline import cross_genome_markov
    from dnahnet.data.corpus import open_genome
    from dnahnet.infer.fasta_input import iter_bed_intervals, parse_region
    from dnahnet.io.atomic import atomic_open

    regions = None
    if region or bed is not None:
        ref = open_genome(eval_genome)
        regions = [parse_region(r, ref) for r in region] if region else [(c, s, e) for c, s, e, _, _ in iter_bed_intervals(bed, ref)]
    r = cross_genome_markov(str(fit_genome), str(eval_genome), order=order, max_order=max_order, both_strands=both_strands,
                            regions=regions, holdout_fraction=holdout_fraction)
    strands = "both strands" if both_strands else "plus strand"
    what = "compared" if len(r.by_order) > 1 else "checked"
    typer.echo(f"orders {what} on the last {r.holdout_fraction:.0%} of each {fit_genome} sequence "
               f"({r.holdout_positions:,} positions, {strands}; model counted on the rest):")
    for k, bpb in sorted(r.by_order.items()):
        mark = "  <- chosen" if k == r.order and len(r.by_order) > 1 else ""
        typer.echo(f"order {k:2d}: {bpb:.4f} bits/base{mark}")
    typer.echo(f"order {r.order} refitted on all of {fit_genome} ({r.fit_kmers:,} {r.order + 1}-mers, {strands})")
    typer.echo(f"{eval_genome}: {r.bits_per_base:.4f} bits/base (mean over {r.positions_scored:,} ACGT positions scored, "
               f"{strands}; {r.n_bases:,} N bases not scored; first base of each of the {r.regions} regions not scored)")
    typer.echo(f"command: {command}")
    if json_out is not None:
        with atomic_open(json_out) as fh:
            json.dump({**r.summary(), "command": command}, fh, indent=2)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.add_typer(baseline_app, name="baseline")
