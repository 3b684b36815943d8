"""`dnahnet embed` and `dnahnet export --hub-folder`: thin wrappers over dnahnet.infer.embed and dnahnet.hub."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import typer

from dnahnet.errors import DnahnetInputError
from dnahnet_cli.progress import progress


def _note(message: str) -> None:
    print(f"dnahnet: {message}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    @app.command()
    def embed(
        checkpoint: str = typer.Option(..., "--checkpoint", help="Checkpoint folder, fine-tuned run, or Hub id org/name[@revision]."),
        fasta: Optional[Path] = typer.Option(None, "--fasta", help="FASTA (plain or gzip) of sequences to embed."),
        genome: Optional[Path] = typer.Option(None, "--genome", help="Indexed genome FASTA, with --bed."),
        bed: Optional[Path] = typer.Option(None, "--bed", help="BED intervals of --genome (0-based half-open)."),
        table: Optional[Path] = typer.Option(None, "--table", help="CSV/TSV with a 'sequence' column (optional 'name')."),
        out: Path = typer.Option(..., "--out", help="Output .safetensors or .npz (one row or row group per record, with names)."),
        layer: str = typer.Option("final", "--layer", help="final (backbone output), encoder, or main (see dnahnet.infer.embed)."),
        stage: int = typer.Option(0, "--stage", help="0 = bases; k = the chunks of the k-th router."),
        pool: str = typer.Option("mean", "--pool", help="mean (one vector per record, N excluded), none (per base) or chunks."),
        rc: bool = typer.Option(False, "--rc", help="Average with the reverse-complement strand (pool none/mean)."),
        window: int = typer.Option(-1, "--window", help="Longer sequences in windows of this size (-1 = training length, 0 = never)."),
        context: int = typer.Option(-1, "--context", help="Warm-up bases at the start of each later window (-1 = half the window)."),
        batch_size: int = typer.Option(16, "--batch-size", help="Sequences (or windows) per forward pass."),
        device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda or cuda:N."),
        dtype: str = typer.Option("auto", "--dtype", help="auto (fp32), fp32, bf16 (CPU: autocast, where the CPU has avx512_bf16/amx_bf16), or on CUDA fp16."),
        compile_: bool = typer.Option(False, "--compile", help="torch.compile each Mamba-2/attention block (stage outputs are tapped; compile time reported separately)."),
    ) -> None:
        """Hidden-state embeddings of sequences: mean-pooled, per base, or per chunk with base spans.

        Example: dnahnet embed --checkpoint runs/demo/train/latest --fasta seqs.fa --pool mean --out emb.safetensors
        """
        from dnahnet.infer.embed import embed_to_file
        from dnahnet.infer.model import load
        from dnahnet.io.embeddings import embedding_format
        from dnahnet.io.paths import check_command

        chosen = [fasta is not None, genome is not None or bed is not None, table is not None]
        if sum(chosen) != 1 or (chosen[1] and (genome is None or bed is None)):
            raise DnahnetInputError("give exactly one input: --fasta F, --genome G --bed B, or --table T")
        embedding_format(out)
        check_command({"--out": out}, {"--fasta": fasta, "--genome": genome, "--bed": bed, "--table": table,
                                       "--checkpoint": checkpoint if Path(checkpoint).exists() else None},
                      {"--batch-size": (batch_size, 1)})
        if fasta is not None:
            from dnahnet.infer.fasta_input import iter_fasta
            from dnahnet.io.fasta import fasta_bases

            total = fasta_bases(fasta)
            records: Iterator = ((r.name, r.seq) for r in iter_fasta(fasta))
        elif table is not None:
            from dnahnet.finetune.data import read_labelled

            data = read_labelled(table, need_label=False)
            total, records = data.bases, iter(zip(data.names, data.seqs))
        else:
            from dnahnet.data.genome import Genome
            from dnahnet.infer.fasta_input import iter_genome_intervals

            ref = Genome(genome)
            records_list = [(r.name, r.seq) for r in iter_genome_intervals(ref, bed)]
            total, records = sum(0 if s is None else len(s) for _, s in records_list), iter(records_list)
        started = time.perf_counter()
        # per block: embedding taps stage outputs with forward hooks (see dnahnet.nn.compile)
        model = load(checkpoint, device=device, dtype=dtype, compile="blocks" if compile_ else False)
        with progress(total, unit="bases", label="embed") as advance:
            n = embed_to_file(model, records, out, layer=layer, stage=stage, pool=pool, rc=rc, window=window or None,
                              context=context, batch_size=batch_size, on_bases=advance)
        _note(f"embedded {n} records ({total:,} bases), layer {layer} stage {stage} pool {pool}: {out}")
        if model.compiled:
            from dnahnet.nn.compile import compile_summary

            _note(compile_summary(model.compiled, time.perf_counter() - started))

    @app.command()
    def export(
        checkpoint: str = typer.Option(..., "--checkpoint", help="Checkpoint folder (or fine-tuned run) to publish."),
        hub_folder: Path = typer.Option(..., "--hub-folder", help="New folder to write: weights, config and a model card README.md."),
        repo_id: Optional[str] = typer.Option(None, "--repo-id", help="The Hub id it will have (org/name), for the model card."),
        train_command: Optional[str] = typer.Option(None, "--train-command", help="The command that trained it, for the model card."),
    ) -> None:
        """A folder that `huggingface-cli upload ORG/NAME FOLDER` publishes as is (model card included).

        Example: dnahnet export --checkpoint runs/demo/train/latest --hub-folder hub/dnahnet-demo --repo-id me/dnahnet-demo
        """
        from dnahnet.hub import export_hub_folder

        folder = export_hub_folder(checkpoint, hub_folder, repo_id=repo_id, command=train_command)
        _note(f"wrote {folder} ({', '.join(sorted(p.name for p in folder.iterdir()))}); "
              f"publish with: huggingface-cli upload {repo_id or 'ORG/NAME'} {folder}")

