"""Labelled sequence sets for fine-tuning: CSV/TSV tables, labelled FASTA, BED + genome.

- Table (`.csv`, `.tsv`, `.txt`, plain or gzip): a header line with a `sequence`
  column and (for training) a `label` column, as in GUE (`sequence,label`); an
  optional `name` column names the rows (else `row N`, 1-based after the header).
  The delimiter is a tab if the header has one, else a comma (parsed by
  `dnahnet.io.tables.iter_sequence_table`).
- FASTA (`.fa`, `.fasta`, `.fna`, plain or gzip): the label is a `label=VALUE` word
  of the header, else its second word (`>seq1 1`).
- BED + genome: the sequence of each interval (0-based half-open); the label is
  column `label_column` (1-based; default 5, the BED score column).

Classification labels must be 0 or 1 (binary tasks); regression labels any finite
number. Sequences must be IUPAC (normalised to ACGTN) and non-empty. Every problem
is a `DnahnetInputError` naming the file and record.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from dnahnet.alphabet import as_bytes_array, invalid_dna_positions, normalize_dna
from dnahnet.errors import DnahnetInputError
from dnahnet.io.fasta import FASTA_SUFFIXES, iter_fasta_records
from dnahnet.io.tables import iter_sequence_table

TASKS = ("classify", "regress")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")


@dataclass
class LabelledSet:
    """Sequences (ACGTN uint8) with names and labels (float64; NaN where a table has no label column)."""

    path: str
    names: list[str] = field(default_factory=list)
    seqs: list[np.ndarray] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.seqs)

    @property
    def has_labels(self) -> bool:
        return bool(len(self.labels)) and bool(np.isfinite(self.labels).all())

    @property
    def bases(self) -> int:
        return int(sum(len(s) for s in self.seqs))

    def subset(self, index: np.ndarray) -> "LabelledSet":
        return LabelledSet(self.path, [self.names[i] for i in index], [self.seqs[i] for i in index], self.labels[index])


def _kind(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(FASTA_SUFFIXES):
        return "fasta"
    if name.endswith(".bed"):
        return "bed"
    return "table"


def _sequence(raw: str, path: Path, record: str) -> np.ndarray:
    raw = raw.strip()
    if not raw:
        raise DnahnetInputError("empty sequence", file=str(path), record=record)
    try:
        arr = as_bytes_array(raw)
    except UnicodeEncodeError as exc:
        raise DnahnetInputError("non-ASCII character in sequence", file=str(path), record=record, position=exc.start + 1) from None
    bad = invalid_dna_positions(arr)
    if len(bad):
        raise DnahnetInputError(f"non-IUPAC character {chr(arr[bad[0]])!r} in sequence (1-based)", file=str(path),
                                record=record, position=int(bad[0]) + 1)
    return normalize_dna(arr)[0].copy()


def parse_label(text: str, task: str, path: Path, record: str) -> float:
    """A label as float: 0/1 for classification, any finite number for regression."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        kind = "binary (0 or 1)" if task == "classify" else "numeric"
        raise DnahnetInputError(f"label {text!r} is not {kind} for task {task}", file=str(path), record=record) from None
    if not math.isfinite(value):
        raise DnahnetInputError(f"label {text!r} is not finite", file=str(path), record=record)
    if task == "classify" and value not in (0.0, 1.0):
        raise DnahnetInputError(f"label {text!r} is not binary (0 or 1) for task classify "
                                "(use --task regress for numeric targets)", file=str(path), record=record)
    return value


def _sequences(raws: list[str], records: list[str], path: Path) -> list[np.ndarray]:
    """Check and normalise many sequences at once (one pass over their concatenation)."""
    stripped = [r.strip() for r in raws]
    lengths = np.fromiter((len(r) for r in stripped), dtype=np.int64, count=len(stripped))
    if len(lengths) and (lengths == 0).any():
        raise DnahnetInputError("empty sequence", file=str(path), record=records[int(np.flatnonzero(lengths == 0)[0])])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    joined = "".join(stripped)
    try:
        arr = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError as exc:
        row = int(np.searchsorted(offsets, exc.start, side="right")) - 1
        raise DnahnetInputError("non-ASCII character in sequence", file=str(path), record=records[row],
                                position=int(exc.start - offsets[row]) + 1) from None
    bad = invalid_dna_positions(arr)
    if len(bad):
        row = int(np.searchsorted(offsets, bad[0], side="right")) - 1
        raise DnahnetInputError(f"non-IUPAC character {chr(arr[bad[0]])!r} in sequence (1-based)", file=str(path),
                                record=records[row], position=int(bad[0] - offsets[row]) + 1)
    norm = normalize_dna(arr)[0]
    return [norm[offsets[i] : offsets[i + 1]] for i in range(len(stripped))]


def _iter_table(path: Path, task: str, need_label: bool) -> Iterator[tuple[str, np.ndarray, float]]:
    names, raws, labels, records = [], [], [], []
    for row in iter_sequence_table(path, need_label):
        names.append(row.name)
        labels.append(parse_label(row.label, task, path, row.record) if row.label is not None else math.nan)
        raws.append(row.sequence)
        records.append(row.record)
    yield from zip(names, _sequences(raws, records, path), labels)


def _iter_fasta(path: Path, task: str, need_label: bool) -> Iterator[tuple[str, np.ndarray, float]]:
    for rec in iter_fasta_records(path):
        words = rec.description.split()
        tokens = [t for t in words if t.startswith("label=")]
        text = tokens[0][6:] if tokens else (words[0] if words else None)
        if text is None:
            if need_label:
                raise DnahnetInputError("FASTA header has no label ('>name label=1' or '>name 1')", file=str(path), record=rec.name)
            label = math.nan
        else:
            label = parse_label(text, task, path, rec.name)
        yield rec.name, _sequence(rec.seq.decode("utf-8", errors="replace"), path, rec.name), label


def _iter_bed(path: Path, task: str, need_label: bool, genome, label_column: int) -> Iterator[tuple[str, np.ndarray, float]]:
    from dnahnet.io.bed import iter_bed_intervals

    if genome is None:
        raise DnahnetInputError("a BED input needs --genome", file=str(path))
    for chrom, start, end, name, lineno, fields in iter_bed_intervals(path, genome.sizes):
        record = f"line {lineno}"
        label = math.nan
        if need_label or len(fields) >= label_column:
            if len(fields) < label_column:
                raise DnahnetInputError(f"no label column {label_column} (line has {len(fields)} columns)", file=str(path), record=record)
            label = parse_label(fields[label_column - 1].strip(), task, path, record)
        if end == start:
            raise DnahnetInputError("empty interval", file=str(path), record=record)
        seq = genome.fetch_normalized(chrom, start, end)[0]
        yield name or f"{chrom}:{start}-{end}", np.asarray(seq, dtype=np.uint8), label


def read_labelled(
    path: str | os.PathLike,
    task: str = "classify",
    *,
    genome=None,
    label_column: int = 5,
    need_label: bool = True,
    need_both_classes: bool = False,
) -> LabelledSet:
    """Read a whole labelled set (tables of fine-tuning size fit in memory)."""
    if task not in TASKS:
        raise DnahnetInputError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    path = Path(path)
    kind = _kind(path)
    if kind == "fasta":
        rows = _iter_fasta(path, task, need_label)
    elif kind == "bed":
        rows = _iter_bed(path, task, need_label, genome, label_column)
    else:
        rows = _iter_table(path, task, need_label)
    out = LabelledSet(str(path))
    labels = []
    for name, seq, label in rows:
        out.names.append(name)
        out.seqs.append(seq)
        labels.append(label)
    out.labels = np.asarray(labels, dtype=np.float64)
    if not len(out):
        raise DnahnetInputError("no records", file=str(path))
    if need_both_classes and task == "classify":
        for cls in (0, 1):
            if not np.any(out.labels == cls):
                raise DnahnetInputError(f"class {cls} has no examples (classification needs both 0 and 1)", file=str(path))
    if need_both_classes and task == "regress" and np.ptp(out.labels) == 0:
        raise DnahnetInputError("all labels are equal; nothing to regress", file=str(path))
    return out
