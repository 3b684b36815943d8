"""Genome-browser track files chosen by name: plain text, bgzip + tabix, or bigWig.

- `*.bw` / `*.bigWig`: bigWig (per-base values; `dnahnet.io.bigwig`).
- `*.gz`: BGZF-compressed (bgzip) and, for interval files, tabix-indexed
  (`<name>.tbi`, preset bed: 0-based half-open columns 1-3); no track line, which
  tabix would not skip. IGV and UCSC open them by name with their index.
- anything else: plain text, starting with a UCSC `track` line unless told not to.

Every file appears atomically at its final path (index first, then the data).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO, Iterator

from dnahnet.io.atomic import atomic_path

BIGWIG_SUFFIXES = (".bw", ".bigwig")


def track_format(path: str | os.PathLike) -> str:
    """"bigwig", "bgzip" or "text", from the file name (case-insensitive)."""
    name = str(path).lower()
    if name.endswith(BIGWIG_SUFFIXES):
        return "bigwig"
    if name.endswith(".gz"):
        return "bgzip"
    return "text"


@contextlib.contextmanager
def open_text_track(path: str | os.PathLike, track_line: str | None = None, index: bool = True) -> Iterator[BinaryIO]:
    """A binary handle for sorted BED/bedGraph lines (or any text with `index=False`), written to `path`.

    `*.gz`: bgzip-compressed, and tabix-indexed (BED columns) when `index`; the
    track line is dropped. Otherwise plain text with the track line first. `-` is stdout.
    """
    if str(path) == "-":
        import sys

        if track_line:
            sys.stdout.buffer.write(track_line.encode() + b"\n")
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    if track_format(target) != "bgzip":
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                if track_line:
                    fh.write(track_line.encode() + b"\n")
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
        return
    import pysam

    tbi = target.with_name(target.name + ".tbi")
    with atomic_path(target) as tmp:
        handle = pysam.BGZFile(str(tmp), "wb")
        try:
            yield handle
        finally:
            handle.close()
        if index:
            pysam.tabix_index(str(tmp), preset="bed", force=True)
            os.replace(str(tmp) + ".tbi", tbi)
        elif tbi.exists():
            tbi.unlink()  # a stale index of an older file would lie


def bed_track_line(name: str, description: str, *, use_score: bool = False) -> str:
    """A UCSC track line for BED chunks."""
    return f'track name="{name}" description="{description}"' + (" useScore=1" if use_score else "")


def bedgraph_track_line(name: str, description: str) -> str:
    """A UCSC track line for a bedGraph."""
    return f'track type=bedGraph name="{name}" description="{description}"'


# ---------------------------------------------------------------- reading a region back (viewer, checks)


def _contig_error(path, contigs: list[str], genome_names: list[str]) -> "DnahnetInputError":
    from dnahnet.errors import DnahnetInputError

    have = ", ".join(contigs[:5]) + (", ..." if len(contigs) > 5 else "")
    want = ", ".join(genome_names[:5]) + (", ..." if len(genome_names) > 5 else "")
    return DnahnetInputError(f"no contig name matches the genome: the file has {have}; the genome has {want}",
                             file=str(path))


def track_contigs(path: str | os.PathLike) -> list[str]:
    """The contig names a track file has records on (bigWig header, tabix index, or a scan of the text)."""
    fmt = track_format(path)
    if fmt == "bigwig":
        from dnahnet.io.bigwig import _pybigwig

        bw = _pybigwig().open(str(path))
        try:
            return list(bw.chroms())
        finally:
            bw.close()
    if fmt == "bgzip" and Path(str(path) + ".tbi").exists():
        import pysam

        with pysam.TabixFile(str(path)) as tbx:
            return list(tbx.contigs)
    from dnahnet.io.text import numbered_lines

    return list(dict.fromkeys(fields[0] for _, fields in numbered_lines(path)))


def check_contigs(path: str | os.PathLike, genome_names: list[str]) -> None:
    """Refuse a track none of whose contigs is in the genome (chr22 against 22), naming both sides."""
    contigs = track_contigs(path)
    if contigs and not set(contigs) & set(genome_names):
        raise _contig_error(path, contigs, genome_names)


def _region_lines(path, chrom: str, start: int, end: int) -> Iterator[list[str]]:
    """Split lines of a BED-like file that overlap chrom:[start, end) (tabix when indexed; else checked as in `io.bed`)."""
    if track_format(path) == "bgzip" and Path(str(path) + ".tbi").exists():
        import pysam

        with pysam.TabixFile(str(path)) as tbx:
            if chrom in tbx.contigs:
                for line in tbx.fetch(chrom, start, end):
                    yield line.split("\t")
        return
    from dnahnet.io.bed import check_interval
    from dnahnet.io.text import is_header, open_text, split_fields

    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.startswith(chrom) or is_header(line):
                continue  # cheap filter first: only this chromosome's lines are split and checked
            f = split_fields(line.rstrip("\r\n"))
            if f[0] == chrom:
                _, a, b = check_interval(f, path, lineno)
                if a < end and b > start:
                    yield f


def read_intervals(path, chrom: str, start: int, end: int) -> list[tuple[int, int, str, float]]:
    """(start, end, name, score) of the BED records overlapping the region ('.' names and scores kept as '' and NaN)."""
    rows = []
    for f in _region_lines(path, chrom, start, end):
        name = f[3] if len(f) > 3 and f[3] != "." else ""
        score = float(f[4]) if len(f) > 4 and f[4] not in ("", ".") else float("nan")
        rows.append((int(f[1]), int(f[2]), name, score))
    return rows


def read_signal(path, chrom: str, start: int, end: int) -> list[tuple[int, int, float]]:
    """(start, end, value) of a bedGraph or bigWig over the region."""
    if track_format(path) == "bigwig":
        from dnahnet.io.bigwig import _pybigwig

        bw = _pybigwig().open(str(path))
        try:
            if chrom not in bw.chroms():
                return []
            return [(int(a), int(b), float(v)) for a, b, v in (bw.intervals(chrom, start, end) or ())]
        finally:
            bw.close()
    return [(int(f[1]), int(f[2]), float(f[3])) for f in _region_lines(path, chrom, start, end)]


def relocate_track(src: str | os.PathLike, dst: str | os.PathLike, chrom_map: dict[str, tuple[str, int]],
                   sizes: dict[str, int] | None = None, track_line: str | None = None, block: int = 200_000) -> int:
    """Copy a BED/bedGraph onto other coordinates: contig c -> chrom_map[c] = (name, offset added to start and end).

    Why: a genome slice (the demo's chr22_slice) is read by the model in its own
    coordinates, while a browser overlays tracks on the assembly's. `dst` takes
    its format from its name (bigWig needs a bedGraph source and `sizes` of the
    new contigs). Lines on contigs not in `chrom_map` are an input error. Returns
    the number of records written.
    """
    from dnahnet.errors import DnahnetInputError
    from dnahnet.io.text import numbered_lines

    fmt = track_format(dst)

    def records():
        for lineno, f in numbered_lines(src):
            if f[0] not in chrom_map:
                raise DnahnetInputError(f"contig {f[0]!r} has no new name/offset", file=str(src), record=f"line {lineno}")
            name, offset = chrom_map[f[0]]
            yield name, int(f[1]) + offset, int(f[2]) + offset, f[3:]

    count = 0
    if fmt == "bigwig":
        from dnahnet.io.bigwig import BigWigWriter

        import numpy as np

        names = list(dict.fromkeys(name for name, _ in chrom_map.values()))
        if sizes is None or any(n not in sizes for n in names):
            raise DnahnetInputError("a bigWig needs the sizes of its contigs", file=str(dst))
        with BigWigWriter(dst, [(n, sizes[n]) for n in names]) as bw:
            pending: list[tuple[str, int, int, float]] = []

            def flush() -> None:
                for chrom in dict.fromkeys(c for c, *_ in pending):
                    rows = [(s, e, v) for c, s, e, v in pending if c == chrom]
                    pos = np.concatenate([np.arange(s, e) for s, e, _ in rows])
                    val = np.concatenate([np.full(e - s, v) for s, e, v in rows])
                    bw.add(chrom, pos, val)
                pending.clear()

            for name, start, end, rest in records():
                pending.append((name, start, end, float(rest[0])))
                count += 1
                if len(pending) >= block:
                    flush()
            flush()
        return count
    with open_text_track(dst, track_line) as out:
        lines: list[str] = []
        for name, start, end, rest in records():
            lines.append("\t".join([name, str(start), str(end), *rest]) + "\n")
            count += 1
            if len(lines) >= block:
                out.write("".join(lines).encode())
                lines.clear()
        out.write("".join(lines).encode())
    return count
