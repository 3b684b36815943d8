"""`dnahnet zeroshot essentiality|fitness`: thin wrappers over dnahnet.zeroshot."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

import typer

from dnahnet.io.paths import check_command
from dnahnet_cli.progress import progress

zeroshot_app = typer.Typer(help="Zero-shot evaluations: gene essentiality (knockout cassette) and variant fitness (HGVS c.).", no_args_is_help=True)

CHECKPOINT = typer.Option(..., "--checkpoint", help="Checkpoint folder (config.json + model.safetensors).")
DEVICE = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda or cuda:N.")
DTYPE = typer.Option("auto", "--dtype", help="auto (fp32), fp32, bf16 (CPU: autocast, where the CPU has avx512_bf16/amx_bf16), or on CUDA fp16.")


def _note(message: str) -> None:
    print(f"dnahnet: {message}", file=sys.stderr)


@zeroshot_app.command()
def essentiality(
    checkpoint: Path = CHECKPOINT,
    genome: Path = typer.Option(..., "--genome", help="Genome FASTA (indexed or indexable) or GenBank (circular topology kept)."),
    annotation: Path = typer.Option(..., "--annotation", help="GFF3, GTF or GenBank with CDS features."),
    out: Path = typer.Option(..., "--out", help="Output folder: genes.tsv, summary.json, roc.png (with --labels)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="TSV: gene id, essential (0/1), optional organism."),
    window: int = typer.Option(8192, "--window", help="Bases per window, centred on the gene."),
    skip_no_start: bool = typer.Option(False, "--skip-no-start", help="Skip genes without a start codon at the annotated position (default: score and count them)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per forward pass (WT and KO are scored together)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Score only the first N genes (a quick look)."),
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Per-gene score log2 p(WT) - log2 p(KO) (bits) for a stop-codon cassette 12 bases into each CDS.

    Example: dnahnet zeroshot essentiality --checkpoint runs/dnahnet-corpus/latest --genome lepto.gbk.gz --annotation lepto.gbk.gz --labels essential.tsv --out ess/
    """
    from dnahnet.infer.model import load
    from dnahnet.zeroshot.essentiality import format_summary, run_essentiality

    check_command({"--out": [out / name for name in ("genes.tsv", "summary.json", "roc.png", "scores.png")]},
                  {"--checkpoint": checkpoint, "--genome": genome, "--annotation": annotation, "--labels": labels},
                  {"--batch-size": (batch_size, 1), "--limit": (limit, 1)})
    model = load(checkpoint, device=device, dtype=dtype)
    summary = run_essentiality(model, genome, annotation, out, labels=labels, window=window, skip_no_start=skip_no_start,
                               batch_size=batch_size, limit=limit,
                               progress=functools.partial(progress, unit="bases", label="essentiality"))
    for line in format_summary(summary):
        typer.echo(line)


@zeroshot_app.command()
def fitness(
    checkpoint: Path = CHECKPOINT,
    reference: Path = typer.Option(..., "--fasta", "--reference", help="FASTA of wild-type CDSs (c.1 = first base of each record); --reference: the old name."),
    variants: Path = typer.Option(..., "--variants", help="TSV with header: hgvs [assay] [reference] [fitness]."),
    out: Path = typer.Option(..., "--out", help="Output folder: variants.tsv, unsupported.tsv, summary.json."),
    batch_size: int = typer.Option(16, "--batch-size", help="Sequences per forward pass."),
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Per-variant score log2 p(mutant) - log2 p(WT) (bits); Spearman rho against fitness next to two baselines.

    Example: dnahnet zeroshot fitness --checkpoint runs/dnahnet-corpus/latest --fasta cds.fa --variants dms.tsv --out fit/
    """
    from dnahnet.infer.model import load
    from dnahnet.zeroshot.fitness import format_summary, run_fitness

    check_command({"--out": [out / name for name in ("variants.tsv", "unsupported.tsv", "summary.json")]},
                  {"--checkpoint": checkpoint, "--fasta": reference, "--variants": variants},
                  {"--batch-size": (batch_size, 1)})
    model = load(checkpoint, device=device, dtype=dtype)
    summary = run_fitness(model, reference, variants, out, batch_size=batch_size)
    for line in format_summary(summary):
        typer.echo(line)
    if summary["unsupported"]:
        _note(f"{summary['unsupported']} unsupported variant(s) listed in {out / 'unsupported.tsv'}")


def register(app: typer.Typer) -> None:
    app.add_typer(zeroshot_app, name="zeroshot")
