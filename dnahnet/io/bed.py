"""BED and bedGraph: readers that name the bad line, writers that bedtools accepts.

Coordinates are 0-based half-open, as in the files. Every reader accepts plain
or gzip/bgzip files, tab- or space-separated columns, and skips blank, `#`,
`track` and `browser` lines (`dnahnet.io.text`). Three readers serve three uses:
`iter_bed_intervals` streams the regions of a BED3+ (every `--bed` and training
split); `read_bed` returns one `BedRecord` per line (BED3 to BED12, blocks
checked) for annotation-sized files; `read_bed_columns` and `read_bedgraph` parse
millions of lines (boundary calls, per-base tracks) with numpy's C parser into
arrays. All check chrom/start/end the same way and raise `DnahnetInputError`
with the file and 1-based line number of the first bad line. Writers sort by a chromosome order (e.g. the FASTA .fai order, which is
what `bedtools sort -faidx` expects) then by start, and write atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open
from dnahnet.io.text import is_header as _is_header
from dnahnet.io.text import numbered_lines as _numbered_lines
from dnahnet.io.text import open_text, split_fields

__all__ = ["BedColumns", "BedGraph", "BedInterval", "BedRecord", "bed6_lines", "bedgraph_base_lines", "check_interval",
           "iter_bed_intervals", "open_text", "read_bed", "read_bed_columns", "read_bedgraph", "sort_key", "write_bed6",
           "write_bedgraph"]

PathLike = str | os.PathLike
_STRANDS = ("+", "-", ".")


@dataclass(frozen=True, slots=True)
class BedRecord:
    """One BED line; optional columns keep their BED defaults when absent."""

    chrom: str
    start: int
    end: int
    name: str = "."
    score: float = 0.0
    strand: str = "."
    thick_start: int | None = None
    thick_end: int | None = None
    item_rgb: str | None = None
    blocks: tuple[tuple[int, int], ...] = ()  # absolute (start, end) per block
    n_columns: int = 3


@dataclass(frozen=True)
class BedColumns:
    """The first (up to six) BED columns as arrays, for files too big for records."""

    chrom: np.ndarray  # object (str)
    start: np.ndarray  # int64
    end: np.ndarray  # int64
    name: np.ndarray | None  # object (str); None for BED3
    score: np.ndarray | None  # float64 ('.' reads as NaN)
    strand: np.ndarray | None  # object (str)
    n_columns: int

    def __len__(self) -> int:
        return int(self.start.shape[0])


@dataclass(frozen=True)
class BedGraph:
    """A bedGraph track as arrays (chrom, start, end, value)."""

    chrom: np.ndarray  # object (str)
    start: np.ndarray  # int64
    end: np.ndarray  # int64
    value: np.ndarray  # float64

    def __len__(self) -> int:
        return int(self.start.shape[0])


# ---------------------------------------------------------------- reading


def _int(text: str, what: str, path: PathLike, lineno: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise DnahnetInputError(f"{what} {text!r} is not an integer", file=str(path), record=f"line {lineno}") from None


def _float(text: str, what: str, path: PathLike, lineno: int) -> float:
    if text == ".":
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise DnahnetInputError(f"{what} {text!r} is not a number", file=str(path), record=f"line {lineno}") from None


def check_interval(fields: list[str], path: PathLike, lineno: int, min_columns: int = 3) -> tuple[str, int, int]:
    """Check the column count and chrom/start/end shared by BED and bedGraph lines; (chrom, start, end)."""
    def fail(message: str) -> DnahnetInputError:
        return DnahnetInputError(message, file=str(path), record=f"line {lineno}")

    if len(fields) < min_columns:
        raise fail(f"expected at least {min_columns} columns, found {len(fields)}")
    chrom = fields[0]
    if not chrom:
        raise fail("empty chromosome name")
    start = _int(fields[1], "start", path, lineno)
    end = _int(fields[2], "end", path, lineno)
    if start < 0:
        raise fail(f"start {start} is negative")
    if end < start:
        raise fail(f"end {end} < start {start}")
    return chrom, start, end


def _blocks(fields: list[str], start: int, end: int, path: PathLike, lineno: int) -> tuple[tuple[int, int], ...]:
    """BED12 blocks as absolute intervals, checked the way UCSC defines them."""
    def fail(message: str) -> DnahnetInputError:
        return DnahnetInputError(message, file=str(path), record=f"line {lineno}")

    count = _int(fields[9], "blockCount", path, lineno)
    sizes = [_int(x, "blockSizes entry", path, lineno) for x in fields[10].rstrip(",").split(",") if x != ""]
    offsets = [_int(x, "blockStarts entry", path, lineno) for x in fields[11].rstrip(",").split(",") if x != ""]
    if count < 1 or len(sizes) != count or len(offsets) != count:
        raise fail(f"blockCount {count} does not match {len(sizes)} sizes and {len(offsets)} starts")
    blocks = tuple((start + o, start + o + s) for o, s in zip(offsets, sizes))
    if offsets[0] != 0 or blocks[-1][1] != end:
        raise fail("blocks must start at chromStart and end at chromEnd")
    for (s0, e0), (s1, _) in zip(blocks, blocks[1:]):
        if e0 > s1:
            raise fail("blocks overlap or are not in ascending order")
    if any(s < 0 for s in sizes):
        raise fail("negative block size")
    return blocks


def _bed_record(fields: list[str], path: PathLike, lineno: int, n_columns: int) -> BedRecord:
    """Parse and check one BED line that should have `n_columns` columns."""
    chrom, start, end = check_interval(fields, path, lineno, 3)
    if len(fields) != n_columns:
        raise DnahnetInputError(
            f"found {len(fields)} columns but the first data line has {n_columns}",
            file=str(path),
            record=f"line {lineno}",
        )
    if n_columns > 12:
        raise DnahnetInputError(f"BED has at most 12 columns, found {n_columns}", file=str(path), record=f"line {lineno}")
    name = fields[3] if n_columns >= 4 else "."
    score = _float(fields[4], "score", path, lineno) if n_columns >= 5 else 0.0
    strand = fields[5] if n_columns >= 6 else "."
    if strand not in _STRANDS:
        raise DnahnetInputError(f"strand {strand!r} is not +, - or .", file=str(path), record=f"line {lineno}")
    thick_start = thick_end = None
    if n_columns >= 8:
        thick_start = _int(fields[6], "thickStart", path, lineno)
        thick_end = _int(fields[7], "thickEnd", path, lineno)
        if not start <= thick_start <= thick_end <= end:
            raise DnahnetInputError(
                f"thickStart..thickEnd {thick_start}..{thick_end} not inside {start}..{end}",
                file=str(path),
                record=f"line {lineno}",
            )
    item_rgb = fields[8] if n_columns >= 9 else None
    if n_columns in (10, 11):
        raise DnahnetInputError("blockCount, blockSizes and blockStarts come together (BED12)", file=str(path), record=f"line {lineno}")
    blocks = _blocks(fields, start, end, path, lineno) if n_columns == 12 else ()
    return BedRecord(chrom, start, end, name, score, strand, thick_start, thick_end, item_rgb, blocks, n_columns)


def read_bed(path: PathLike) -> list[BedRecord]:
    """Read BED3–BED12 (plain or gzip) into records; header lines are skipped.

    Every line is checked; the first bad one raises `DnahnetInputError` naming
    the file and its line number.
    """
    records: list[BedRecord] = []
    n_columns = 0
    for lineno, fields in _numbered_lines(path):
        n_columns = n_columns or max(len(fields), 3)
        records.append(_bed_record(fields, path, lineno, n_columns))
    return records


class BedInterval(NamedTuple):
    """One region of a BED3+ file: the interval, its name (None when absent or '.'), its line and all its fields."""

    chrom: str
    start: int
    end: int
    name: str | None
    lineno: int
    fields: list[str]


def iter_bed_intervals(path: PathLike, sizes: Mapping[str, int] | None = None) -> Iterator[BedInterval]:
    """The regions of a BED3+ file (plain or gzip; tabs or spaces), lazily, in file order.

    The one reader of region BEDs (`--bed`, training splits): only chrom, start
    and end are checked (as `read_bed` checks them, with the same messages), so
    extra columns of any kind are allowed. With `sizes` each interval must also
    lie inside its chromosome.
    """
    if not os.path.isfile(path):
        raise DnahnetInputError("BED file not found", file=str(path))
    for lineno, fields in _numbered_lines(path):
        chrom, start, end = check_interval(fields, path, lineno, 3)
        if sizes is not None:
            where = {"file": str(path), "record": f"line {lineno}"}
            if chrom not in sizes:
                raise DnahnetInputError(f"chromosome {chrom!r} is not in the genome", **where)
            if end > sizes[chrom]:
                raise DnahnetInputError(f"interval {chrom}:{start}-{end} is outside {chrom} "
                                        f"(length {sizes[chrom]:,}; BED is 0-based half-open)", **where)
        name = fields[3] if len(fields) > 3 and fields[3] not in ("", ".") else None
        yield BedInterval(chrom, start, end, name, lineno, fields)


def _leading_header_lines(path: PathLike) -> tuple[int, int]:
    """(number of header lines before the first data line, columns in that line)."""
    with open_text(path) as handle:
        for skipped, line in enumerate(handle):
            line = line.rstrip("\r\n")
            if not _is_header(line):
                return skipped, len(split_fields(line))
    return 0, 0


def _loadtxt(path: PathLike, dtype: list[tuple[str, str]], skiprows: int) -> np.ndarray | None:
    """numpy's C parser on tab-separated columns; None when any line does not parse."""
    try:
        return np.loadtxt(
            path, delimiter="\t", dtype=dtype, comments=None, skiprows=skiprows, usecols=range(len(dtype)), ndmin=1
        )
    except (ValueError, IndexError):
        return None


def _intervals_ok(table: np.ndarray) -> bool:
    return bool(np.all(table["start"] >= 0) and np.all(table["end"] >= table["start"]) and np.all(table["chrom"] != ""))


def read_bed_columns(path: PathLike, max_columns: int = 6) -> BedColumns:
    """Read the first `max_columns` (at most six) columns of a large BED file into arrays.

    The fast path is `numpy.loadtxt`; if it rejects anything (a bad line, a
    header line in the middle, a '.' score), the file is re-read line by line,
    which either raises the located error or yields the same arrays.
    """
    skip, n_found = _leading_header_lines(path)
    n_columns = min(max(n_found, 3), max(3, min(max_columns, 6)))
    names = ["chrom", "start", "end", "name", "score", "strand"][:n_columns]
    dtype = [(n, {"start": "i8", "end": "i8", "score": "f8"}.get(n, "O")) for n in names]
    table = _loadtxt(path, dtype, skip) if n_found else np.zeros(0, dtype=dtype)
    ok = table is not None and _intervals_ok(table)
    if ok and n_columns == 6:
        ok = bool(np.isin(table["strand"], _STRANDS).all())
    if not ok:
        table = _bed_columns_slow(path, n_found, dtype)
    return BedColumns(
        chrom=table["chrom"],
        start=table["start"],
        end=table["end"],
        name=table["name"] if n_columns >= 4 else None,
        score=table["score"] if n_columns >= 5 else None,
        strand=table["strand"] if n_columns == 6 else None,
        n_columns=n_found,
    )


def _bed_columns_slow(path: PathLike, n_found: int, dtype: list[tuple[str, str]]) -> np.ndarray:
    """Line-by-line reading: raises at the first bad line, else builds the same table."""
    rows = []
    for lineno, fields in _numbered_lines(path):
        check_interval(fields, path, lineno, 3)
        if len(fields) != n_found:
            raise DnahnetInputError(
                f"found {len(fields)} columns but the first data line has {n_found}", file=str(path), record=f"line {lineno}"
            )
        rec = _bed_record(fields[:6], path, lineno, min(n_found, 6))  # checks all six even if fewer are kept
        rows.append((rec.chrom, rec.start, rec.end, rec.name, rec.score, rec.strand)[: len(dtype)])
    return np.array(rows, dtype=dtype)


def read_bedgraph(path: PathLike) -> BedGraph:
    """Read a bedGraph track (chrom, start, end, value) into arrays."""
    skip, n_found = _leading_header_lines(path)
    dtype = [("chrom", "O"), ("start", "i8"), ("end", "i8"), ("value", "f8")]
    table = np.zeros(0, dtype=dtype) if not n_found else (_loadtxt(path, dtype, skip) if n_found == 4 else None)
    if table is None or not _intervals_ok(table):
        rows = []
        for lineno, fields in _numbered_lines(path):
            chrom, start, end = check_interval(fields, path, lineno, 4)
            if len(fields) != 4:
                raise DnahnetInputError(f"bedGraph has 4 columns, found {len(fields)}", file=str(path), record=f"line {lineno}")
            rows.append((chrom, start, end, _float(fields[3], "value", path, lineno)))
        table = np.array(rows, dtype=dtype)
    return BedGraph(table["chrom"], table["start"], table["end"], table["value"])


# ---------------------------------------------------------------- writing
#
# Streaming formatters (for output written as it is computed, already in order) and
# whole-table writers (sorted, atomic). Numbers: coordinates and integer scores as
# integers; per-base bedGraph values to a stated number of significant digits
# (p_t: 6, log2 P: 9, so sums over a track agree with the TSV to float32 precision).


def bed6_lines(chrom: str, starts: Iterable[int], ends: Iterable[int], names: Iterable[str], scores: Iterable[int],
               offset: int = 0, strand: str = ".") -> list[str]:
    """BED6 lines `chrom start+offset end+offset name score strand` (newline-terminated), one per interval."""
    return [f"{chrom}\t{a + offset}\t{b + offset}\t{n}\t{c}\t{strand}\n" for a, b, n, c in zip(starts, ends, names, scores)]


def bedgraph_base_lines(chrom: str, positions: Iterable[int], values: Iterable[float], digits: int, offset: int = 0) -> str:
    """Per-base bedGraph text: `chrom p p+1 value` for each position + offset, values to `digits` significant digits."""
    return "".join(f"{chrom}\t{p + offset}\t{p + offset + 1}\t{v:.{digits}g}\n" for p, v in zip(positions, values))


ChromOrder = Sequence[str] | Mapping[str, int] | None


def _chrom_rank(chrom_order: ChromOrder) -> Mapping[str, int]:
    if chrom_order is None:
        return {}
    if isinstance(chrom_order, Mapping):
        return chrom_order
    return {name: i for i, name in enumerate(chrom_order)}


def sort_key(chrom_order: ChromOrder = None) -> Callable[[Sequence], tuple]:
    """Key for (chrom, start, end, ...) rows: chromosome order, then start, end, rest.

    With `chrom_order` (e.g. the names in a .fai, in file order) the result is
    what `bedtools sort -faidx` produces; chromosomes not in it come after, by
    name. Without it, chromosomes sort by name, as plain `bedtools sort` does.
    The writers below sort the same way, vectorised.
    """
    rank = _chrom_rank(chrom_order)
    unknown = len(rank)

    def key(row: Sequence) -> tuple:
        r = rank.get(row[0], unknown)
        return (r, row[0] if r == unknown else "", row[1], row[2], *row[3:])

    return key


def _columns(records: Iterable[BedRecord | Sequence] | BedColumns | BedGraph, names: tuple[str, ...]) -> list[np.ndarray]:
    """Records (objects or tuples) or a column table as one array per field."""
    if isinstance(records, (BedColumns, BedGraph)):
        return [np.asarray(getattr(records, n)) for n in names]
    rows = [(r.chrom, r.start, r.end, r.name, r.score, r.strand) if isinstance(r, BedRecord) else r for r in records]
    if not rows:
        return [np.zeros(0, dtype=np.int64 if n in ("start", "end") else object) for n in names]
    if min(map(len, rows)) < len(names):
        raise ValueError(f"every row needs the fields {', '.join(names)}")
    cols = list(zip(*rows))[: len(names)]
    return [np.array(c, dtype=np.int64 if n in ("start", "end") else object) for n, c in zip(names, cols)]


def _sorted_order(chrom: np.ndarray, start: np.ndarray, end: np.ndarray, name: np.ndarray | None,
                  chrom_order: ChromOrder) -> np.ndarray:
    """Row order of `sort_key`: chromosome rank (unknown ones by name), start, end, name."""
    rank = _chrom_rank(chrom_order)
    distinct = sorted(set(chrom.tolist()), key=lambda c: (rank.get(c, len(rank)), c if c not in rank else ""))
    code = {c: i for i, c in enumerate(distinct)}
    keys = [end, start, np.array([code[c] for c in chrom.tolist()], dtype=np.int64)]
    if name is not None:
        names = sorted(set(name.tolist()))
        name_code = {n: i for i, n in enumerate(names)}
        keys.insert(0, np.array([name_code[n] for n in name.tolist()], dtype=np.int64))
    return np.lexsort(keys)


def _number_strings(values: np.ndarray) -> list[str]:
    """Integers without a decimal point, other values to 6 significant digits, NaN as '.'."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all() and np.all(values == np.round(values)) and np.abs(values).max(initial=0) < 2**53:
        return list(map(str, values.astype(np.int64).tolist()))
    out = list(map("{:.6g}".format, values.tolist()))
    for i in np.flatnonzero(np.isnan(values)).tolist():
        out[i] = "."
    return out


def _check_intervals(chrom: np.ndarray, start: np.ndarray, end: np.ndarray) -> None:
    bad = np.flatnonzero((start < 0) | (end < start))
    if bad.size:
        i = bad[0]
        raise ValueError(f"invalid interval {chrom[i]}:{start[i]}-{end[i]}")


def _write_lines(path: PathLike, columns: list, track_line: str | None) -> int:
    with atomic_open(path, "w") as out:
        if track_line:
            out.write((track_line if track_line.startswith("track") else f"track {track_line}") + "\n")
        lines = "\n".join(map("\t".join, zip(*columns)))
        out.write(lines + "\n" if lines else "")
    return len(columns[0])


def write_bed6(
    path: PathLike,
    records: Iterable[BedRecord | Sequence] | BedColumns,
    track_line: str | None = None,
    chrom_order: ChromOrder = None,
) -> int:
    """Write BED6 sorted by `chrom_order` then start, atomically; return the row count.

    `records` are `BedRecord`s, (chrom, start, end, name, score, strand) tuples
    or a `BedColumns`; for millions of rows pass a `BedColumns` (no per-row
    Python objects to build; sorting is vectorised either way).
    """
    chrom, start, end, name, score, strand = _columns(records, ("chrom", "start", "end", "name", "score", "strand"))
    _check_intervals(chrom, start, end)
    if not np.isin(strand, _STRANDS).all():
        raise ValueError(f"strand must be one of {_STRANDS}")
    order = _sorted_order(chrom, start, end, name, chrom_order)
    cols = [chrom[order].tolist(), list(map(str, start[order].tolist())), list(map(str, end[order].tolist())),
            list(map(str, name[order].tolist())), _number_strings(score[order]), strand[order].tolist()]
    return _write_lines(path, cols, track_line)


def write_bedgraph(
    path: PathLike,
    records: Iterable[Sequence] | BedGraph,
    track_line: str | None = None,
    chrom_order: ChromOrder = None,
) -> int:
    """Write bedGraph (chrom, start, end, value) sorted like `write_bed6`; return the row count.

    Values are written with 6 significant digits (integers exactly). A track line
    without `type=bedGraph` gets it, so genome browsers read it as one. For
    per-base tracks pass a `BedGraph` of arrays rather than tuples.
    """
    chrom, start, end, value = _columns(records, ("chrom", "start", "end", "value"))
    _check_intervals(chrom, start, end)
    if track_line is not None and "type=bedGraph" not in track_line:
        track_line = (track_line if track_line.startswith("track") else f"track {track_line}") + " type=bedGraph"
    order = _sorted_order(chrom, start, end, None, chrom_order)
    cols = [chrom[order].tolist(), list(map(str, start[order].tolist())), list(map(str, end[order].tolist())),
            _number_strings(value[order])]
    return _write_lines(path, cols, track_line)
