"""Sequences to score: FASTA records, BED intervals of a genome, or a text file.

Every source yields `InputRecord`s lazily, in file order, so scoring streams.
A record that cannot be scored is either an error (`DnahnetInputError` naming the
file, record and 1-based position) or, with `skip_invalid`, a record carrying a
`note` that the TSV writer reports as a flagged row. Empty sequences are always
flagged rows, never errors.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from dnahnet.alphabet import as_bytes_array, invalid_dna_positions, normalize_dna
from dnahnet.errors import DnahnetInputError
from dnahnet.io.bed import iter_bed_intervals as read_bed_intervals
from dnahnet.io.fasta import iter_fasta_records

_REGION = re.compile(r"^(?P<chrom>[^:\s]+)(?::(?P<start>[\d,]+)-(?P<end>[\d,]+))?$")


@dataclass
class InputRecord:
    """One sequence: `seq` is normalised ACGTN (DNA) or raw bytes (text); None when flagged.

    `chrom` and `offset` place its positions in per-base tracks (the record name and
    0 for FASTA; the chromosome and interval start for BED intervals).
    """

    name: str
    seq: np.ndarray | None
    length: int
    chrom: str
    offset: int = 0
    note: str = "ok"


def _dna_record(name: str, raw: bytes, path: Path, skip_invalid: bool) -> InputRecord:
    if not raw:
        return InputRecord(name, None, 0, name, note="empty")
    arr = as_bytes_array(raw)
    bad = invalid_dna_positions(arr)
    if len(bad):
        pos, ch = int(bad[0]) + 1, chr(arr[bad[0]])
        if not skip_invalid:
            raise DnahnetInputError(
                f"non-IUPAC character {ch!r} (positions are 1-based; use --skip-invalid to report and skip such records)",
                file=str(path), record=name, position=pos,
            )
        return InputRecord(name, None, len(arr), name, note=f"invalid: non-IUPAC {ch!r} at {pos}")
    return InputRecord(name, normalize_dna(arr)[0], len(arr), name)


def iter_fasta(path: str | os.PathLike, skip_invalid: bool = False) -> Iterator[InputRecord]:
    """Records of a FASTA file (`dnahnet.io.fasta`), one at a time, checked and normalised to ACGTN."""
    for rec in iter_fasta_records(path):
        yield _dna_record(rec.name, rec.seq, Path(path), skip_invalid)


def iter_bed_intervals(path: str | os.PathLike, genome) -> Iterator[tuple[str, int, int, str | None, int]]:
    """(chrom, start, end, name or None, line number) of each BED line, checked against `genome` (`dnahnet.io.bed`)."""
    for iv in read_bed_intervals(path, genome.sizes):
        yield iv.chrom, iv.start, iv.end, iv.name, iv.lineno


def iter_genome_intervals(genome, bed_path: str | os.PathLike) -> Iterator[InputRecord]:
    """One record per BED interval (name: the BED name, else chrom:start-end, 0-based half-open)."""
    for chrom, start, end, name, _ in iter_bed_intervals(bed_path, genome):
        label = name or f"{chrom}:{start}-{end}"
        if end == start:
            yield InputRecord(label, None, 0, chrom, start, note="empty")
            continue
        yield InputRecord(label, genome.fetch_normalized(chrom, start, end)[0], end - start, chrom, start)


def text_record(path: str | os.PathLike) -> InputRecord:
    """A whole file as one byte sequence (memory-mapped: windows read only what they need)."""
    path = Path(path)
    if not path.is_file():
        raise DnahnetInputError("text file not found", file=str(path))
    size = path.stat().st_size
    if size == 0:
        return InputRecord(path.name, None, 0, path.name, note="empty")
    return InputRecord(path.name, np.memmap(path, dtype=np.uint8, mode="r"), size, path.name)


def parse_region(text: str, genome) -> tuple[str, int, int]:
    """samtools-style `chr`, `chr:start-end` (1-based, inclusive; commas allowed) -> 0-based half-open."""
    match = _REGION.match(text.strip())
    if not match:
        raise DnahnetInputError(f"region {text!r} is not chr or chr:start-end")
    chrom = match["chrom"]
    if chrom not in genome.sizes:
        raise DnahnetInputError(f"region {text!r}: chromosome {chrom!r} is not in the genome")
    size = genome.sizes[chrom]
    if match["start"] is None:
        return chrom, 0, size
    start, end = int(match["start"].replace(",", "")), int(match["end"].replace(",", ""))
    if not 1 <= start <= end <= size:
        raise DnahnetInputError(f"region {text!r} is outside {chrom} (1..{size:,}; regions are 1-based inclusive)")
    return chrom, start - 1, end
