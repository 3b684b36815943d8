"""`dnahnet score`, `dnahnet variants`, `dnahnet generate`: thin wrappers over dnahnet.infer."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

from dnahnet.errors import DnahnetInputError

CHECKPOINT = typer.Option(..., "--checkpoint", help="Checkpoint folder (config.json + model.safetensors).")
DEVICE = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda or cuda:N.")
COMPILE = typer.Option(False, "--compile", help="torch.compile the whole backbone, one graph (compile time reported separately).")
DTYPE = typer.Option("auto", "--dtype", help="auto (fp32), fp32, bf16 (CPU: autocast, where the CPU has avx512_bf16/amx_bf16), or on CUDA fp16.")


def _note(message: str) -> None:
    print(f"dnahnet: {message}", file=sys.stderr)


def _compile_note(model, started: float) -> None:
    """With --compile: compile time apart from run time, on stderr."""
    if model.compiled:
        from dnahnet.nn.compile import compile_summary

        _note(compile_summary(model.compiled, time.perf_counter() - started))


def _score_genome(checkpoint, genome, region, bed, contigs, out, per_base, rc, window, context, reduce, batch_size,
                  track_line, shard_bases, device, dtype, compile_=False) -> None:
    """`score --genome`: regions of a genome in shards, on every torchrun process."""
    import functools

    from dnahnet.data.genome import Genome
    from dnahnet.distributed import process_group
    from dnahnet.infer.model import load
    from dnahnet.infer.scoring import score_regions
    from dnahnet.infer.sharding import select_regions
    from dnahnet.progress import silent
    from dnahnet_cli.progress import progress

    ref = Genome(genome)
    regions = select_regions(ref, regions=region, bed=bed, contigs=contigs)
    with process_group(device) as env:
        started = time.perf_counter()
        model = load(checkpoint, device=env.device, dtype=dtype, compile=compile_)
        show = functools.partial(progress, unit="bases", label="score") if env.is_main else silent
        s = score_regions(model, ref, regions, out, per_base=per_base, reduce=reduce, rc=rc, window=window or None,
                          context=context, batch_size=batch_size, track_line=track_line, progress=show,
                          shard_bases=shard_bases, env=env)
    if env.is_main:
        _note(f"scored {s.records - s.flagged} of {s.records} regions ({s.bases:,} bases, {s.n_bases:,} N), "
              f"{s.bits_per_position:.4f} bits per base overall; {s.regions_all_n} all-N regions, "
              f"{s.windows_skipped_all_n} of {s.windows} windows all N (skipped); {s.shards} shards on "
              f"{env.world_size} process(es), {s.shards_reused} reused from an interrupted run")
        _compile_note(model, started)


def register(app: typer.Typer) -> None:
    @app.command()
    def score(
        checkpoint: Path = CHECKPOINT,
        fasta: Optional[Path] = typer.Option(None, "--fasta", help="FASTA (plain or gzip) of sequences to score."),
        genome: Optional[Path] = typer.Option(None, "--genome", help="Genome FASTA (indexed or indexable): every contig, or --region/--bed/--contigs."),
        region: Optional[list[str]] = typer.Option(None, "--region", help="With --genome: chr or chr:start-end (1-based inclusive); repeatable."),
        bed: Optional[Path] = typer.Option(None, "--bed", help="With --genome: BED intervals to score, one row each (0-based half-open)."),
        contigs: Optional[list[str]] = typer.Option(None, "--contigs", help="With --genome: whole contigs, comma-separated; repeatable."),
        text: Optional[Path] = typer.Option(None, "--text", help="Score a file's raw bytes (bits per byte)."),
        out: str = typer.Option("-", "--out", help="Output TSV ('-' = stdout; .gz = bgzip)."),
        per_base: Optional[Path] = typer.Option(None, "--per-base", help="Also write per-position log2 P: bedGraph, .bedGraph.gz (bgzip + tabix) or, with --genome, .bw (bigWig)."),
        track_line: bool = typer.Option(True, "--track-line/--no-track-line", help="Start a plain-text per-base bedGraph with a UCSC track line."),
        shard_bases: int = typer.Option(1_000_000, "--shard-bases", help="With --genome: bases per shard, the unit of work per process and of restart."),
        rc: bool = typer.Option(False, "--rc", help="Average each position over both strands."),
        window: int = typer.Option(-1, "--window", help="Score longer sequences in windows of this size (-1 = the model's training length, 0 = never)."),
        context: int = typer.Option(-1, "--context", help="Warm-up positions at the start of each later window (-1 = half the window)."),
        reduce: str = typer.Option("sum", "--reduce", help="Headline score column: sum (log2 likelihood) or mean (per base)."),
        batch_size: int = typer.Option(16, "--batch-size", help="Sequences (or windows) per forward pass."),
        skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Flag FASTA records with non-IUPAC characters instead of stopping."),
        device: str = DEVICE,
        dtype: str = DTYPE,
        compile_: bool = COMPILE,
    ) -> None:
        """Log-likelihood (bits) of each sequence: TSV with name, length, N count, scored bases, sum, bits per base.

        Position 0 and N positions are never scored (see the TSV header). With --genome the work is cut
        into shards: `torchrun --nproc-per-node N -m dnahnet_cli score ...` spreads them over processes
        (same output byte for byte), and an interrupted run restarted with the same command skips
        finished shards. All-N windows are skipped and counted.

        Example: dnahnet score --checkpoint runs/demo/train/latest --fasta seqs.fa --per-base seqs.bedGraph --out scores.tsv
        """
        from dnahnet.infer.fasta_input import iter_fasta, text_record
        from dnahnet.infer.model import load
        from dnahnet.infer.scoring import score_to_tsv

        chosen = [fasta is not None, genome is not None, text is not None]
        if sum(chosen) != 1:
            raise DnahnetInputError("give exactly one input: --fasta F, --genome G (with --region/--bed/--contigs or none), or --text FILE")
        if genome is None and (bed is not None or region or contigs):
            raise DnahnetInputError("--region, --bed and --contigs select parts of --genome; give --genome too")
        if text is not None and rc:
            raise DnahnetInputError("--rc applies to DNA, not to --text")
        from dnahnet.io.paths import check_command

        check_command({"--out": out, "--per-base": per_base},
                      {"--checkpoint": checkpoint, "--fasta": fasta, "--genome": genome, "--bed": bed, "--text": text},
                      {"--batch-size": (batch_size, 1), "--window": (window, -1), "--context": (context, -1),
                       "--shard-bases": (shard_bases, 1)}, files={"--fasta": fasta, "--text": text, "--bed": bed})
        if genome is not None:
            _score_genome(checkpoint, genome, region, bed, contigs, out, per_base, rc, window, context, reduce,
                          batch_size, track_line, shard_bases, device, dtype, compile_)
            return
        from functools import partial

        from dnahnet.io.fasta import fasta_bases
        from dnahnet_cli.progress import progress

        if fasta is not None:
            from dnahnet.io.fasta_index import unique_names

            records = unique_names(iter_fasta(fasta, skip_invalid=skip_invalid), fasta)
            total = fasta_bases(fasta)
        else:
            records = iter([text_record(text)])
            total = text.stat().st_size
        started = time.perf_counter()
        model = load(checkpoint, device=device, dtype=dtype, compile=compile_)
        unit = "byte" if text is not None else "base"
        summary = score_to_tsv(
            model, records, out, per_base=per_base, reduce=reduce, rc=rc, window=window or None, context=context,
            batch_size=batch_size, dna=text is None, track_line=track_line,
            progress=partial(progress, unit=f"{unit}s", label="score"), total=total,
        )
        _note(f"scored {summary.records - summary.flagged} of {summary.records} sequences "
              f"({summary.flagged} flagged), {summary.bits_per_position:.4f} bits per {unit} overall")
        _compile_note(model, started)

    @app.command()
    def variants(
        checkpoint: Path = CHECKPOINT,
        genome: Path = typer.Option(..., "--genome", help="Reference genome FASTA (indexed or indexable)."),
        vcf: Path = typer.Option(..., "--vcf", help="VCF, plain or bgzip."),
        out: str = typer.Option("-", "--out", help="Output TSV ('-' = stdout)."),
        flank: int = typer.Option(256, "--flank", help="Bases each side of the allele in the scored windows."),
        rc: bool = typer.Option(False, "--rc", help="Average both strands."),
        batch_size: int = typer.Option(32, "--batch-size", help="Windows per forward pass."),
        device: str = DEVICE,
        dtype: str = DTYPE,
    ) -> None:
        """ΔlogL (bits) of each ALT allele against REF: logL(window with ALT) - logL(window with REF).

        Example: dnahnet variants --checkpoint runs/demo/train/latest --genome hg19.fa.gz --vcf calls.vcf.gz --out effects.tsv
        """
        from dnahnet.data.genome import Genome
        from dnahnet.infer.model import load
        from dnahnet.infer.variants import score_variants

        from dnahnet.io.paths import check_command

        check_command({"--out": out}, {"--checkpoint": checkpoint, "--genome": genome, "--vcf": vcf},
                      {"--batch-size": (batch_size, 1), "--flank": (flank, 1)}, files={"--vcf": vcf})
        ref = Genome(genome)
        model = load(checkpoint, device=device, dtype=dtype)
        from functools import partial

        from dnahnet_cli.progress import progress

        s = score_variants(model, ref, vcf, out, flank=flank, rc=rc, batch_size=batch_size,
                           progress=partial(progress, unit="records", label="variants"))
        missing = ", ".join(f"{c} ({n})" for c, n in list(s.missing_contigs.items())[:5])
        _note(f"{s.alleles} alleles from {s.records} records: {s.scored} scored, {s.ref_mismatch} REF mismatches, "
              f"{s.unsupported_alt} unsupported ALT, {s.outside_contig} outside contig, {s.contains_n} with N in the window, "
              f"{s.ambiguous} not scored for N in REF or unequal N in the windows")
        if s.missing_contigs:
            _note(f"{sum(s.missing_contigs.values())} records skipped on {len(s.missing_contigs)} contigs not in the genome: {missing}")

    @app.command()
    def generate(
        checkpoint: Path = CHECKPOINT,
        prompt: str = typer.Option("", "--prompt", help="Starting sequence (default: one random base)."),
        n: int = typer.Option(..., "-n", "--num-bases", help="Bases to generate after the prompt."),
        temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature; 0 = greedy."),
        top_k: Optional[int] = typer.Option(None, "--top-k", help="Sample among the k most likely bases."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (reproducible output)."),
        show_boundaries: bool = typer.Option(False, "--show-boundaries", help="Also print the sequence cut into each stage's chunks."),
        any_byte: bool = typer.Option(False, "--any-byte", help="Sample all 256 bytes (text models), not just ACGT."),
        device: str = DEVICE,
        dtype: str = DTYPE,
    ) -> None:
        """Generate DNA after a prompt with the model's incremental caches; prints prompt + continuation.

        Example: dnahnet generate --checkpoint runs/demo/train/latest --prompt ACGTTGCA -n 200 --temperature 0.8 --seed 1 --show-boundaries
        """
        from dnahnet.infer.model import load

        model = load(checkpoint, device=device, dtype=dtype)
        result = model.generate(prompt, n, temperature=temperature, top_k=top_k, seed=seed,
                                return_boundaries=show_boundaries, alphabet=None if any_byte else "ACGT")
        if not show_boundaries:
            typer.echo(result)
            return
        seq, stages = result
        typer.echo(seq)
        for sb in stages:
            cuts = [int(p) for p in sb.positions if p > 0]
            pieces = [seq[a:b] for a, b in zip([0, *cuts], [*cuts, len(seq)])]
            typer.echo(f"stage{sb.stage}\t" + "|".join(pieces))
