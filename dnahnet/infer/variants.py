"""Variant effects: ΔlogL = logL(window with ALT) − logL(window with REF), in bits.

For each VCF record (plain or bgzip, read by pysam; POS is 1-based) and each of
its ALT alleles (multi-allelic records are split), two windows are scored: ±`flank`
bases of genome around the REF allele, once with REF and once with ALT in place.
For an indel the shorter window is extended with the genome sequence that follows,
so both have the same length (near a contig end both are cut to the shorter).
logL is the sum of log2 P over the window's scored positions (the conventions of
`dnahnet.infer.model`: first position and N never scored; `rc` averages strands).
Identical windows are scored once, so ALT == REF gives exactly 0.

Rows that are not scored are still written, with delta NaN and a note:
`ref_mismatch` (VCF REF differs from the genome: counted, never scored),
`outside_contig` (also POS 0), `unsupported_alt` (symbolic, breakend, `*`, missing,
or any base other than ACGT: an ambiguous `N` or `R` would drop a scored position
and look like the best change at the site), `ref_in_N` (the genome's REF bases
include N) and `unequal_N` (the REF and ALT windows hold different numbers of N,
so their sums cover different numbers of scored positions).
Records on contigs absent from the genome are matched by name (chr1 <-> 1,
chrM <-> MT, NC_1.1 <-> NC_1; `dnahnet.io.chrom_names`); unmatched ones are
skipped and counted per contig in the summary.
Nothing matching at all is an input error.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable

import numpy as np
import pysam

from dnahnet.alphabet import N_BYTE, invalid_dna_positions, normalize_dna
from dnahnet.errors import DnahnetInputError
from dnahnet.infer.model import DnaModel
from dnahnet.io.atomic import atomic_open
from dnahnet.io.chrom_names import ChromMatcher
from dnahnet.progress import ProgressFactory, silent

DEFAULT_FLANK = 256
COLUMNS = ["chrom", "pos", "id", "ref", "alt", "ref_match", "contains_N", "delta_bits", "logL_ref", "logL_alt", "note"]


@dataclass
class VariantSummary:
    records: int = 0
    alleles: int = 0
    scored: int = 0
    ref_mismatch: int = 0
    outside_contig: int = 0
    unsupported_alt: int = 0
    contains_n: int = 0
    ambiguous: int = 0  # rows with N in the REF allele or unequal N counts in the two windows: not scored
    missing_contigs: dict[str, int] = field(default_factory=dict)  # VCF contig -> records skipped
    renamed_contigs: dict[str, str] = field(default_factory=dict)  # VCF contig -> genome name


def match_contig(name: str, genome_names: Iterable[str]) -> str | None:
    """The genome's name for a VCF contig (`dnahnet.io.chrom_names`: as is, with/without 'chr', M/MT, .N versions)."""
    return ChromMatcher(genome_names)(name)


def variant_windows(genome, chrom: str, pos0: int, ref: str, alt: str, flank: int) -> tuple[np.ndarray, np.ndarray]:
    """(REF window, ALT window) as normalised byte arrays of equal length, REF taken from the genome."""
    size = genome.sizes[chrom]
    r, a = len(ref), len(alt)
    left_start = max(0, pos0 - flank)
    ref_end = min(size, pos0 + r + flank + max(0, a - r))
    alt_end = min(size, pos0 + r + flank + max(0, r - a))
    ref_seq = genome.fetch_normalized(chrom, left_start, ref_end)[0]
    left = ref_seq[: pos0 - left_start]
    alt_right = genome.fetch_normalized(chrom, pos0 + r, alt_end)[0]
    alt_seq = np.concatenate([left, normalize_dna(alt)[0], alt_right])
    length = min(len(ref_seq), len(alt_seq))
    return ref_seq[:length], alt_seq[:length]


def _supported(alt: str | None) -> bool:
    """A concrete ALT allele of A, C, G and T only (no symbolic allele, no IUPAC ambiguity code, no N)."""
    return bool(alt) and alt not in ("*", ".") and not alt.startswith("<") and set(alt.upper()) <= set("ACGT")


@contextlib.contextmanager
def _quiet_htslib():
    """htslib warns once per record whose contig the VCF header lacks; the summary reports those instead."""
    previous = pysam.set_verbosity(0)
    try:
        yield
    finally:
        pysam.set_verbosity(previous)


def _header_lines(path: Path) -> int:
    """Number of `#` lines at the top of a VCF (plain or bgzip), to give a record's line number."""
    from dnahnet.io.text import open_binary

    n = 0
    with open_binary(path) as fh:
        for line in fh:
            if not line.startswith(b"#"):
                break
            n += 1
    return n


def _open_vcf(path: Path) -> pysam.VariantFile:
    if not path.is_file():
        raise DnahnetInputError("VCF file not found", file=str(path))
    from dnahnet.data.genome import is_bgzip_header

    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] == b"\x1f\x8b" and not is_bgzip_header(head):
        raise DnahnetInputError(
            "compressed with plain gzip, which htslib cannot read as VCF; recompress it with bgzip "
            "(`gunzip -c in.vcf.gz | bgzip -c > out.vcf.gz`) or give it uncompressed", file=str(path))
    try:
        return pysam.VariantFile(str(path))
    except (ValueError, OSError) as exc:
        raise DnahnetInputError(f"cannot read as VCF ({exc})", file=str(path)) from None


def score_variants(
    model: DnaModel,
    genome,
    vcf: str | os.PathLike,
    out: str | os.PathLike,
    flank: int = DEFAULT_FLANK,
    rc: bool = False,
    batch_size: int = 32,
    progress: ProgressFactory = silent,
) -> VariantSummary:
    """Write one TSV row per (record, ALT) of `vcf` on contigs the genome has; return the counts.

    `progress` is told the number of records (one quick pass over the VCF) and hears of each one read.
    """
    if flank < 1:
        raise DnahnetInputError(f"flank must be at least 1, got {flank}")
    if isinstance(genome, (str, os.PathLike)):
        from dnahnet.data.genome import Genome

        genome = Genome(genome)
    path = Path(vcf)
    match = ChromMatcher(genome.names)
    summary = VariantSummary()
    total = _count_records(path) if progress is not silent else 0
    with _quiet_htslib(), _open_vcf(path) as vf, atomic_open(out) as table, progress(total) as advance:
        declared = list(vf.header.contigs)
        if declared and not any(match(c) for c in declared):
            raise DnahnetInputError(
                f"none of the VCF's contigs ({', '.join(declared[:4])}{', ...' if len(declared) > 4 else ''}) "
                f"is in the genome ({', '.join(genome.names[:4])}{', ...' if len(genome.names) > 4 else ''})",
                file=str(path),
            )
        _write_header(table, model, flank, rc)
        pending: list[dict] = []
        matched = 0
        try:
            for rec in vf:
                summary.records += 1
                advance(1)
                chrom = match(rec.chrom)
                if chrom is None:
                    summary.missing_contigs[rec.chrom] = summary.missing_contigs.get(rec.chrom, 0) + 1
                    continue
                matched += 1
                if chrom != rec.chrom:
                    summary.renamed_contigs[rec.chrom] = chrom
                for alt in rec.alts or (None,):
                    pending.append(_prepare_row(genome, rec, chrom, alt, flank, summary))
                if len(pending) >= batch_size * 4:
                    _flush(model, pending, table, rc, batch_size, summary)
                    pending = []
        except (ValueError, OSError) as exc:
            line = _header_lines(path) + summary.records + 1
            raise DnahnetInputError(f"malformed VCF record ({exc})", file=str(path), position=f"line {line}") from None
        _flush(model, pending, table, rc, batch_size, summary)
        if summary.records and not matched:
            raise DnahnetInputError(
                f"no VCF record is on a contig of the genome (VCF contigs: {', '.join(list(summary.missing_contigs)[:4])}; "
                f"genome: {', '.join(genome.names[:4])})",
                file=str(path),
            )
    return summary


def _count_records(path: Path) -> int:
    """Records in the VCF, for progress (0 when it does not parse: the scoring pass then says where)."""
    try:
        with _quiet_htslib(), _open_vcf(path) as vf:
            return sum(1 for _ in vf)
    except (ValueError, OSError, DnahnetInputError):
        return 0


def _write_header(table: IO[str], model: DnaModel, flank: int, rc: bool) -> None:
    table.write(
        f"# dnahnet variants: model {model.name}\n"
        f"# delta_bits = logL_alt - logL_ref; logL = sum of log2 P (bits) over the scored positions of a window of "
        f"+-{flank} bases around the allele (indels: the shorter window extended with following genome sequence)\n"
        "# first window position and N are not scored; pos is the VCF's 1-based POS; ref_match=0 rows are never scored\n"
        + ("# rc: per-position mean of both strands\n" if rc else "")
        + "\t".join(COLUMNS) + "\n"
    )


def _prepare_row(genome, rec, chrom: str, alt: str | None, flank: int, summary: VariantSummary) -> dict:
    summary.alleles += 1
    ref = rec.ref or ""
    row = {"chrom": rec.chrom, "pos": rec.pos, "id": rec.id or ".", "ref": ref, "alt": alt or ".", "ref_match": 0,
           "contains_N": 0, "note": "ok", "windows": None}
    pos0 = rec.pos - 1
    if pos0 < 0 or pos0 + len(ref) > genome.sizes[chrom] or not ref:
        summary.outside_contig += 1
        row["note"] = "outside_contig"
        return row
    genome_ref = normalize_dna(genome.fetch(chrom, pos0, pos0 + len(ref)))[0]
    if invalid_dna_positions(ref).size or not np.array_equal(genome_ref, normalize_dna(ref)[0]):
        summary.ref_mismatch += 1
        row["note"] = "ref_mismatch"
        return row
    row["ref_match"] = 1
    if (genome_ref == N_BYTE).any():
        summary.ambiguous += 1
        row["note"] = "ref_in_N"
        return row
    if not _supported(alt):
        summary.unsupported_alt += 1
        row["note"] = "unsupported_alt"
        return row
    ref_w, alt_w = variant_windows(genome, chrom, pos0, ref, alt, flank)
    row["contains_N"] = int(bool((ref_w == N_BYTE).any() or (alt_w == N_BYTE).any()))
    summary.contains_n += row["contains_N"]
    if int((ref_w == N_BYTE).sum()) != int((alt_w == N_BYTE).sum()):
        summary.ambiguous += 1
        row["note"] = "unequal_N"
        return row
    row["windows"] = (ref_w, alt_w)
    return row


def _flush(model: DnaModel, rows: list[dict], table: IO[str], rc: bool, batch_size: int, summary: VariantSummary) -> None:
    """Score the distinct windows of `rows` in one go and write the rows in order."""
    index: dict[bytes, int] = {}
    seqs: list[np.ndarray] = []
    for row in rows:
        if row["windows"] is not None:
            for w in row["windows"]:
                key = w.tobytes()
                if key not in index:
                    index[key] = len(seqs)
                    seqs.append(w)
    sums = [float(np.nansum(v.astype(np.float64))) for v in model.score(seqs, batch_size=batch_size, rc=rc, window=None)] if seqs else []
    for row in rows:
        logl_ref = logl_alt = math.nan
        if row["windows"] is not None:
            logl_ref, logl_alt = (sums[index[w.tobytes()]] for w in row["windows"])
            summary.scored += 1
        delta = logl_alt - logl_ref
        fields = [row["chrom"], row["pos"], row["id"], row["ref"], row["alt"], row["ref_match"], row["contains_N"]]
        fields += [_num(delta), _num(logl_ref), _num(logl_alt), row["note"]]
        table.write("\t".join(str(f) for f in fields) + "\n")


def _num(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.8g}"

