"""Gzip-aware opening and header-skipping line reading, for every text format.

A file is gzip when its first two bytes are the gzip magic (plain gzip and bgzip
alike), whatever its name says. `open_text` gives decoded lines, `open_binary`
raw bytes (for FASTA and other byte-oriented readers). `numbered_lines` is the
one line reader of tabular formats (BED, bedGraph): it skips blank, `#`, `track`
and `browser` lines and splits on tabs, or on runs of spaces when a line has no
tab, so space-separated files read like tab-separated ones.
"""

from __future__ import annotations

import gzip
import os
from typing import IO, Iterator, TextIO

from dnahnet.errors import DnahnetInputError

PathLike = str | os.PathLike
HEADER_PREFIXES = ("#", "track", "browser")
GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: PathLike) -> bool:
    """True when the file starts with the gzip magic bytes (plain gzip or bgzip)."""
    try:
        with open(path, "rb") as probe:
            return probe.read(2) == GZIP_MAGIC
    except OSError as exc:
        raise DnahnetInputError(f"cannot read file ({exc.strerror})", file=str(path)) from None


def open_text(path: PathLike) -> TextIO:
    """Open a plain or gzip-compressed text file for reading (decided by its magic bytes, not its name)."""
    if is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8", newline=None)
    return open(path, encoding="utf-8", newline=None)


def open_binary(path: PathLike) -> IO[bytes]:
    """Open a plain or gzip-compressed file for reading bytes (decided by its magic bytes)."""
    if is_gzip(path):
        return gzip.open(path, "rb")
    return open(path, "rb")


def is_header(line: str) -> bool:
    """Blank, comment (`#`), `track` and `browser` lines carry no data."""
    return not line.strip() or line.startswith(HEADER_PREFIXES)


def split_fields(line: str) -> list[str]:
    """Fields of one data line: tab-separated, or separated by spaces when the line has no tab."""
    return line.split("\t") if "\t" in line else line.split()


def numbered_lines(path: PathLike) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, fields) for every data line of a plain or gzip text file."""
    with open_text(path) as handle:
        try:
            for lineno, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if not is_header(line):
                    yield lineno, split_fields(line)
        except UnicodeDecodeError:
            raise DnahnetInputError("not a UTF-8 text file", file=str(path)) from None
        except (OSError, EOFError) as exc:
            raise DnahnetInputError(f"cannot read file ({exc})", file=str(path)) from None
