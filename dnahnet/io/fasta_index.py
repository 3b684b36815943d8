"""Whether a `.fai` (and `.gzi`) index really describes a FASTA file, checked cheaply.

An index is trusted by htslib on its word; one copied with `cp -p`, `rsync -a` or
`tar x` next to a different FASTA serves wrong bases without an error. The checks
here read a few kilobytes wherever the file is, and catch a foreign index:

- the `.gzi` block offsets must land on BGZF blocks and end at the file's end;
- the first and the last record's header line must sit just before its offset;
- consecutive records must follow each other (a gap larger than a header line
  means a record the index does not know, e.g. a duplicate name faidx dropped);
- the last record must end where the file ends (only white space after it).

`duplicate_header_lines` finds the lines of a duplicated record name, for the
error that refuses such a FASTA (faidx keeps the first record and drops the rest).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

MAX_HEADER = 4096  # bytes a header line (name, description, blank lines before it) may take in the gap checks
_PROBE = 65536  # bytes read before a record's offset to find its header line


@dataclass(frozen=True)
class FaiRecord:
    name: str
    length: int
    offset: int
    line_bases: int
    line_width: int

    def end(self) -> int:
        """Offset just past the record's last base (its final newline not included)."""
        if self.length == 0 or self.line_bases == 0:
            return self.offset
        full, rest = divmod(self.length, self.line_bases)
        if rest:
            return self.offset + full * self.line_width + rest
        return self.offset + full * self.line_width - (self.line_width - self.line_bases)


def read_fai(path: Path) -> list[FaiRecord]:
    records = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 5:
                raise ValueError(f"malformed index line {line[:60]!r}")
            records.append(FaiRecord(cols[0], *(int(c) for c in cols[1:5])))
    return records


def read_gzi(path: Path) -> list[tuple[int, int]]:
    """(compressed, uncompressed) offsets of the BGZF blocks after the first."""
    data = Path(path).read_bytes()
    if len(data) < 8:
        raise ValueError("truncated .gzi")
    (count,) = struct.unpack_from("<Q", data, 0)
    if len(data) != 8 + 16 * count:
        raise ValueError(".gzi size does not match its entry count")
    values = struct.unpack_from(f"<{2 * count}Q", data, 8)
    return list(zip(values[0::2], values[1::2]))


class _Reader:
    """Bytes at uncompressed offsets of a plain or bgzip file (bgzip through its .gzi)."""

    def __init__(self, path: Path, blocks: list[tuple[int, int]] | None) -> None:
        self.path = path
        self.blocks = None if blocks is None else [(0, 0), *blocks]

    def read(self, start: int, n: int) -> bytes:
        start = max(0, start)
        if self.blocks is None:
            with open(self.path, "rb") as fh:
                fh.seek(start)
                return fh.read(n)
        # the last block starting at or before `start`, then decompress from there
        lo, hi = 0, len(self.blocks) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.blocks[mid][1] <= start:
                lo = mid
            else:
                hi = mid - 1
        coffset, uoffset = self.blocks[lo]
        out = bytearray()
        skip = start - uoffset
        with open(self.path, "rb") as fh:
            fh.seek(coffset)
            while len(out) < skip + n:
                head = fh.read(18)
                if len(head) < 18:
                    break
                bsize = struct.unpack_from("<H", head, 16)[0] + 1
                block = head + fh.read(bsize - 18)
                out += gzip.decompress(block)
        return bytes(out[skip : skip + n])


def _bgzip_size(path: Path, blocks: list[tuple[int, int]]) -> int | str:
    """Uncompressed size from the last .gzi entry and the blocks after it; a reason string if they do not fit."""
    size = path.stat().st_size
    coffset, uoffset = blocks[-1] if blocks else (0, 0)
    if any(b[0] <= a[0] or b[1] <= a[1] for a, b in zip([(0, 0), *blocks], blocks)):
        return ".gzi offsets are not increasing"
    if coffset >= size:
        return f".gzi points at byte {coffset:,} of a {size:,}-byte file"
    total, pos, n = uoffset, coffset, 0
    with open(path, "rb") as fh:
        while pos < size:
            fh.seek(pos)
            head = fh.read(18)
            if len(head) < 18 or head[:2] != b"\x1f\x8b" or head[12:14] != b"BC":
                return f"no BGZF block at byte {pos:,} where the .gzi says one starts"
            bsize = struct.unpack_from("<H", head, 16)[0] + 1
            fh.seek(pos + bsize - 4)
            total += struct.unpack("<I", fh.read(4))[0]
            pos += bsize
            n += 1
            if n > 3:  # after the last indexed block come one data block and the empty EOF block
                return "the .gzi ends long before the file does"
    return total


def _header_before(reader: _Reader, record: FaiRecord) -> bytes:
    text = reader.read(record.offset - _PROBE, min(_PROBE, record.offset))
    if not text.endswith(b"\n"):
        return b""
    return text[:-1].rstrip(b"\r").rsplit(b"\n", 1)[-1]


def index_problem(fasta: Path, fai: Path, gzi: Path | None) -> str | None:
    """Why `fai` (+ `gzi`) does not describe `fasta`, or None when it does (as far as a few reads tell)."""
    try:
        records = read_fai(fai)
        blocks = read_gzi(gzi) if gzi is not None else None
    except (OSError, ValueError) as exc:
        return f"unreadable index ({exc})"
    if not records:
        return "the index lists no record"
    if blocks is not None:
        size = _bgzip_size(fasta, blocks)
        if isinstance(size, str):
            return size
    else:
        size = fasta.stat().st_size
    reader = _Reader(fasta, blocks)
    for prev, rec in zip(records, records[1:]):
        gap = rec.offset - prev.end()
        if not len(rec.name) + 2 <= gap <= len(rec.name) + 2 + MAX_HEADER:
            return (f"records {prev.name!r} and {rec.name!r} are {gap:,} bytes apart in the index, "
                    "which is not one header line (another file's index, or a record the index lacks)")
    for rec in (records[0], records[-1]):
        header = _header_before(reader, rec)
        fields = header[1:].split()
        if not header.startswith(b">") or not fields or fields[0].decode("utf-8", "replace") != rec.name:
            return f"no '>{rec.name}' header line where the index puts record {rec.name!r}"
    end = records[-1].end()
    if end > size:
        return f"the index's last record ends at byte {end:,}, past the end of the {size:,}-byte file"
    if size - end > _PROBE or reader.read(end, size - end).strip():
        return f"the file goes on after the index's last record {records[-1].name!r} (a record the index lacks)"
    return None


def duplicate_header_lines(fasta: Path, name: str, kind: str) -> list[int]:
    """1-based line numbers of the header lines whose name (first word) is `name`."""
    opener = gzip.open if kind == "bgzip" else open
    lines = []
    with opener(fasta, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if line.startswith(b">"):
                fields = line[1:].split()
                if fields and fields[0].decode("utf-8", "replace") == name:
                    lines.append(number)
    return lines


def unique_names(records: Iterable, path: Path):
    """Pass records (with a `.name`) through, refusing a name seen before: its outputs would overwrite each other."""
    from dnahnet.errors import DnahnetInputError

    seen: set[str] = set()
    for rec in records:
        if rec.name in seen:
            with open(path, "rb") as fh:
                kind = "bgzip" if fh.read(2) == b"\x1f\x8b" else "plain"
            lines = duplicate_header_lines(Path(path), rec.name, kind)
            where = f" (header lines {lines[0]} and {lines[1]})" if len(lines) > 1 else ""
            raise DnahnetInputError(f"record name {rec.name!r} appears more than once{where}; every record needs its own name",
                                    file=str(path), record=rec.name)
        seen.add(rec.name)
        yield rec
