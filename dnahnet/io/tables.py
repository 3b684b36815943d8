"""Tables of rows: the labelled sequence table (CSV/TSV) and the small TSVs of zero-shot and corpus runs.

Two generic readers do the parsing; the per-format readers sit on top of them:
- `iter_tsv_rows`: the data lines of a tab-separated file (plain or gzip, by its
  magic bytes), as (1-based line number, stripped fields); blank lines and `#`
  lines are skipped. Tabs only, never spaces: a path or name may hold spaces.
- `iter_tsv_records`: the same with a header line naming the columns (case
  insensitive, with accepted aliases); a required column missing from the header,
  or a row that ends before a required column, is one `DnahnetInputError` naming
  the file and line. Optional columns read as "" where absent.
Per format: `iter_sequence_table` (fine-tuning tables, GUE `sequence,label`),
`iter_variant_table` (zero-shot fitness variants), `read_essentiality_labels`
(gene, essential 0/1, organism) and `read_genome_manifest` (corpus manifests:
path, name, weight). What the rows mean (label kinds, which reference a variant
applies to, genome names) is left to the callers.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

from dnahnet.errors import DnahnetInputError
from dnahnet.io.text import open_binary, open_text

PathLike = str | os.PathLike
MISSING = ("", "NA", "nan", "NaN")  # spellings of "no value" in a numeric column


class TsvRow(NamedTuple):
    """One data line: its 1-based line number and its tab-separated fields, each stripped."""

    lineno: int
    fields: list[str]


@dataclass(frozen=True)
class Column:
    """A column a header may name: the key it is read under and the header names accepted (lower case)."""

    key: str
    names: tuple[str, ...]
    required: bool = False

    def describe(self) -> str:
        others = f" (or {'/'.join(repr(n) for n in self.names[1:])})" if len(self.names) > 1 else ""
        return f"{self.names[0]!r} column{others}"


class TsvRecord(NamedTuple):
    """One data line read through a header: its line number and {column key: stripped value or ""}."""

    lineno: int
    values: dict[str, str]


def _where(path: PathLike, lineno: int) -> dict:
    return {"file": str(path), "record": f"line {lineno}"}


def iter_tsv_rows(path: PathLike, what: str = "TSV file") -> Iterator[TsvRow]:
    """The data lines of a plain or gzip TSV; blank and `#` lines skipped; `what` names the file in errors."""
    if not os.path.isfile(path):
        raise DnahnetInputError(f"{what} not found", file=str(path))
    with open_text(path) as handle:
        try:
            for lineno, line in enumerate(handle, start=1):
                if line.strip() and not line.lstrip().startswith("#"):
                    yield TsvRow(lineno, [f.strip() for f in line.rstrip("\r\n").split("\t")])
        except UnicodeDecodeError:
            raise DnahnetInputError("not a UTF-8 text file", file=str(path)) from None
        except (OSError, EOFError) as exc:
            raise DnahnetInputError(f"cannot read file ({exc})", file=str(path)) from None


def column_indices(header: Sequence[str], columns: Sequence[Column], path: PathLike,
                   lineno: int | None = None) -> dict[str, int | None]:
    """Index of each column in a (lower-cased) header; a missing required column is one located error."""
    index: dict[str, int | None] = {}
    for col in columns:
        index[col.key] = next((header.index(n) for n in col.names if n in header), None)
        if index[col.key] is None and col.required:
            located = _where(path, lineno) if lineno is not None else {"file": str(path)}
            raise DnahnetInputError(f"no {col.describe()} in the header (columns: {', '.join(header)})", **located)
    return index


def iter_tsv_records(path: PathLike, columns: Sequence[Column], what: str = "TSV file") -> Iterator[TsvRecord]:
    """Rows of a TSV with a header line (the first data line), read by column name.

    A row must reach every required column (else one error naming its line);
    optional columns past its end, or absent from the header, read as "".
    """
    rows = iter_tsv_rows(path, what)
    header_row = next(rows, None)
    if header_row is None:
        raise DnahnetInputError(f"{what} is empty", file=str(path))
    header = [h.lower() for h in header_row.fields]
    index = column_indices(header, columns, path, header_row.lineno)
    required = [(c, index[c.key]) for c in columns if c.required]
    for row in rows:
        short = next((c for c, i in required if i >= len(row.fields)), None)
        if short is not None:
            raise DnahnetInputError(f"{len(row.fields)} columns, header has {len(header)} (no value for the "
                                    f"{short.names[0]!r} column)", **_where(path, row.lineno))
        yield TsvRecord(row.lineno, {k: row.fields[i] if i is not None and i < len(row.fields) else ""
                                     for k, i in index.items()})


# ---------------------------------------------------------------- fine-tuning tables


class SequenceRow(NamedTuple):
    """One row of a labelled sequence table; `record` is "row N" (1-based after the header)."""

    record: str
    name: str  # the `name` column, else `record`
    sequence: str  # as written (the caller checks and normalises it)
    label: str | None  # stripped label text; None when the table has no label column


def _open_table(path: Path) -> io.TextIOBase:
    if not path.is_file():
        raise DnahnetInputError("file not found", file=str(path))
    # errors="replace": a stray byte becomes U+FFFD and is reported where it sits, as a non-ASCII sequence character
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="replace", newline="")  # newline="" for csv


def iter_sequence_table(path: PathLike, need_label: bool = True) -> Iterator[SequenceRow]:
    """Rows of a CSV/TSV sequence table (plain or gzip), lazily, in file order.

    The header line has a `sequence` column, a `label` column (required when
    `need_label`) and optionally `name`; the delimiter is a tab if the header
    has one, else a comma. `#` lines before the header are skipped; after it,
    rows are CSV records (quoted fields allowed, blank rows skipped, `#` is
    data since a name may start with it), numbered "row N" from 1.
    """
    path = Path(path)
    with _open_table(path) as fh:
        header_line = fh.readline()
        while header_line.startswith("#"):
            header_line = fh.readline()
        if not header_line.strip():
            raise DnahnetInputError("empty file (expected a header line with a 'sequence' column)", file=str(path))
        delimiter = "\t" if "\t" in header_line else ","
        header = [h.strip().lower() for h in next(csv.reader([header_line], delimiter=delimiter))]
        columns = (Column("sequence", ("sequence",), True), Column("label", ("label",), need_label),
                   Column("name", ("name",)))
        index = column_indices(header, columns, path)
        s_col, l_col, n_col = index["sequence"], index["label"], index["name"]
        last = max(i for i in index.values() if i is not None)
        for row_no, row in enumerate(csv.reader(fh, delimiter=delimiter), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            record = f"row {row_no}"
            if len(row) <= last:
                raise DnahnetInputError(f"{len(row)} columns, header has {len(header)}", file=str(path), record=record)
            name = row[n_col].strip() if n_col is not None else ""
            label = row[l_col].strip() if l_col is not None else None
            yield SequenceRow(record, name or record, row[s_col], label)


# ---------------------------------------------------------------- zero-shot fitness variants


class VariantRecord(NamedTuple):
    """One variant line: HGVS text, assay and reference ("" when not given) and fitness (NaN when not given)."""

    lineno: int
    hgvs: str
    assay: str
    reference: str
    fitness: float


VARIANT_COLUMNS = (Column("hgvs", ("hgvs", "variant", "mutant"), required=True), Column("assay", ("assay",)),
                   Column("reference", ("reference", "ref")), Column("fitness", ("fitness", "dms_score", "score")))


def iter_variant_table(path: PathLike) -> Iterator[VariantRecord]:
    """Rows of a variants TSV (header naming `hgvs`/`variant`/`mutant`, optional assay, reference, fitness)."""
    for rec in iter_tsv_records(path, VARIANT_COLUMNS, what="variants TSV"):
        text = rec.values["fitness"]
        try:
            fitness = float(text) if text not in MISSING else math.nan
        except ValueError:
            raise DnahnetInputError(f"fitness must be a number, got {text!r}", **_where(path, rec.lineno)) from None
        v = rec.values
        yield VariantRecord(rec.lineno, v["hgvs"], v["assay"], v["reference"], fitness)


# ---------------------------------------------------------------- essentiality labels


def read_essentiality_labels(path: PathLike) -> dict[str, tuple[int, str]]:
    """gene id -> (essential 0/1, organism or ''), from a TSV `gene<TAB>essential[<TAB>organism]`.

    Columns are by position; a first data line whose second field is not 0/1 is
    a header and skipped.
    """
    out: dict[str, tuple[int, str]] = {}
    for n, (lineno, f) in enumerate(iter_tsv_rows(path, what="labels file")):
        if len(f) < 2:
            raise DnahnetInputError("expected gene id and essential (0/1)", **_where(path, lineno))
        if f[1] not in ("0", "1"):
            if n == 0:
                continue  # header
            raise DnahnetInputError(f"essential must be 0 or 1, got {f[1]!r}", **_where(path, lineno))
        if not f[0]:
            raise DnahnetInputError("empty gene id in column 1", **_where(path, lineno))
        out[f[0]] = (int(f[1]), f[2] if len(f) > 2 else "")
    return out


# ---------------------------------------------------------------- corpus manifests


class ManifestRow(NamedTuple):
    """One genome of a corpus manifest: its path (relative ones resolved against the manifest's folder),
    its name (None when not given) and its sampling weight (> 0; 1 when not given)."""

    lineno: int
    path: Path
    name: str | None
    weight: float


def read_genome_manifest(path: PathLike) -> list[ManifestRow]:
    """Rows of a TSV manifest `path[<TAB>name[<TAB>weight]]`; a first data line starting with `path` is a header."""
    path = Path(path)
    out: list[ManifestRow] = []
    for n, (lineno, fields) in enumerate(iter_tsv_rows(path, what="manifest")):
        if n == 0 and fields[0].lower() == "path":
            continue  # header
        if not fields[0]:
            raise DnahnetInputError("empty path in column 1", **_where(path, lineno))
        p = Path(fields[0])
        p = p if p.is_absolute() else path.parent / p
        weight = 1.0
        if len(fields) > 2 and fields[2]:
            try:
                weight = float(fields[2])
            except ValueError:
                weight = -1.0
            if not weight > 0:
                raise DnahnetInputError(f"weight must be a positive number, got {fields[2]!r}", **_where(path, lineno))
        out.append(ManifestRow(lineno, p, fields[1] if len(fields) > 1 and fields[1] else None, weight))
    if not out:
        raise DnahnetInputError("manifest lists no genomes", file=str(path))
    return out
