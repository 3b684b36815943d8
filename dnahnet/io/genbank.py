"""GenBank files, parsed once: one Biopython pass yields every record's sequence, topology and features.

A command often needs both halves of one file (`zeroshot essentiality --genome
g.gbk --annotation g.gbk`, `annotate` on a GenBank genome reads its sizes, its
features and its soft-masked bases). `read_genbank` keeps the last few parsed
files (keyed by path, inode, size and modification time, so an edited file is
parsed again), so every reader of the same file in one process shares one pass.
Plain or gzip/bgzip through `dnahnet.io.text`; a bad file is one
`DnahnetInputError` naming the file and the record.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from dnahnet.errors import DnahnetInputError
from dnahnet.io.text import open_text

PathLike = str | os.PathLike
GENBANK_SUFFIXES = (".gb", ".gbk", ".gbff", ".genbank")
CACHE_FILES = 2  # parsed files kept: a genome and its annotation are usually one file


@dataclass(frozen=True)
class GenBankRecord:
    """One LOCUS: `name` is its accession.version (else the LOCUS name); `sequence` None without ORIGIN."""

    name: str
    length: int
    topology: str  # "circular" or "linear"
    sequence: bytes | None  # upper case (Biopython's reading; GenBank has no soft-masking)
    features: tuple  # Bio.SeqFeature.SeqFeature, locations 0-based half-open


@dataclass(frozen=True)
class GenBankFile:
    path: Path
    records: tuple[GenBankRecord, ...]


_CACHE: "OrderedDict[tuple, GenBankFile]" = OrderedDict()


def clear_cache() -> None:
    """Forget parsed files (tests that count parses start from here)."""
    _CACHE.clear()


def qualifier(feature, *names: str) -> str:
    """The first value of the first of `names` the feature carries ('' if none)."""
    for name in names:
        values = feature.qualifiers.get(name)
        if values:
            return str(values[0])
    return ""


def read_genbank(path: PathLike) -> GenBankFile:
    """All records of a GenBank file (plain or gz), parsed once per file version in this process."""
    path = Path(path)
    if not path.is_file():
        raise DnahnetInputError("GenBank file not found", file=str(path))
    st = path.stat()
    key = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    parsed = GenBankFile(path, _parse(path))
    _CACHE[key] = parsed
    while len(_CACHE) > CACHE_FILES:
        _CACHE.popitem(last=False)
    return parsed


def _parse(path: Path) -> tuple[GenBankRecord, ...]:
    from Bio import SeqIO
    from Bio.Seq import UndefinedSequenceError

    records: list[GenBankRecord] = []
    index = 0
    try:
        with open_text(path) as handle:
            for index, record in enumerate(SeqIO.parse(handle, "genbank"), start=1):
                name = record.id if record.id and record.id != "<unknown id>" else record.name
                try:
                    sequence: bytes | None = bytes(record.seq)
                except UndefinedSequenceError:  # a record without ORIGIN (annotation only)
                    sequence = None
                records.append(GenBankRecord(name, len(record), record.annotations.get("topology", "linear"),
                                             sequence, tuple(record.features)))
    except UnicodeDecodeError:
        raise DnahnetInputError("not a UTF-8 text file", file=str(path)) from None
    except (ValueError, AssertionError) as exc:
        raise DnahnetInputError(f"not valid GenBank ({exc})", file=str(path), record=str(index + 1)) from None
    except (OSError, EOFError) as exc:
        raise DnahnetInputError(f"cannot read file ({exc})", file=str(path)) from None
    if not records:
        raise DnahnetInputError("no GenBank records found", file=str(path))
    return tuple(records)
