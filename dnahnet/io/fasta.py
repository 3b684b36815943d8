"""FASTA records read in file order: the one streaming reader of `>name description` + sequence lines.

Plain, gzip or bgzip (decided by the magic bytes, `dnahnet.io.text`). Every
command that reads FASTA records itself (score/embed `--fasta`, fine-tuning sets,
the reference CDSs of `zeroshot fitness`) reads them here, so all accept the same
files and say the same thing about a bad one. Sequences are the bytes of the
file without line breaks or white space: case is kept (soft-masked repeats stay
lower case) and nothing is checked, because what counts as valid differs
(IUPAC DNA for scoring, anything for a text model). Random access to an indexed
genome is `dnahnet.data.genome.Genome` (`dnahnet.io.fasta_index` checks its index).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from dnahnet.errors import DnahnetInputError
from dnahnet.io.text import open_binary

PathLike = str | os.PathLike
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".ffn")
_SPACE = b" \t\r\n\v\f"


@dataclass(frozen=True, slots=True)
class FastaRecord:
    """One record: `name` is the header's first word (`line{N}` for an empty header)."""

    name: str
    description: str  # the rest of the header line ('' if none)
    seq: bytes  # as written, white space removed, case kept
    lineno: int  # 1-based line of the header


def _header(line: bytes, lineno: int) -> tuple[str, str]:
    words = line[1:].decode("utf-8", errors="replace").split(None, 1)
    return (words[0] if words else f"line{lineno}"), (words[1].strip() if len(words) > 1 else "")


def iter_fasta_records(path: PathLike, what: str = "FASTA") -> Iterator[FastaRecord]:
    """Records of a FASTA file one at a time; `what` names the file in errors ("reference CDS FASTA")."""
    path = Path(path)
    if not path.is_file():
        raise DnahnetInputError(f"{what} file not found", file=str(path))
    header: tuple[str, str, int] | None = None
    parts: list[bytes] = []
    with open_binary(path) as handle:
        try:
            for lineno, line in enumerate(handle, start=1):
                if line.startswith(b">"):
                    if header is not None:
                        yield FastaRecord(header[0], header[1], b"".join(parts), header[2])
                    header = (*_header(line, lineno), lineno)
                    parts = []
                elif header is None:
                    if line.strip():
                        hint = " (it looks like GenBank)" if line.startswith(b"LOCUS") else ""
                        raise DnahnetInputError(f"not FASTA: sequence before the first '>' header line{hint}",
                                                file=str(path), record=f"line {lineno}")
                else:
                    parts.append(b"".join(line.split()))
        except (OSError, EOFError) as exc:
            raise DnahnetInputError(f"cannot read file ({exc})", file=str(path)) from None
    if header is None:
        raise DnahnetInputError("no FASTA records ('>' header lines) found", file=str(path))
    yield FastaRecord(header[0], header[1], b"".join(parts), header[2])


def read_fasta(path: PathLike, what: str = "FASTA") -> dict[str, bytes]:
    """name -> sequence for a whole (small) FASTA; a name given twice is an error, not a silent overwrite."""
    out: dict[str, bytes] = {}
    first: dict[str, int] = {}
    for rec in iter_fasta_records(path, what):
        if rec.name in out:
            raise DnahnetInputError(f"record name {rec.name!r} is used twice (first at line {first[rec.name]})",
                                    file=str(path), record=f"line {rec.lineno}")
        out[rec.name], first[rec.name] = rec.seq, rec.lineno
    return out


def fasta_bases(path: PathLike) -> int:
    """Sequence bytes of a FASTA in one quick pass (a progress bar's total); 0 when it cannot be read."""
    total = 0
    try:
        with open_binary(path) as handle:
            for line in handle:
                if not line.startswith(b">"):
                    total += len(line.translate(None, _SPACE))  # the bases iter_fasta_records keeps
    except (OSError, EOFError, DnahnetInputError):
        return 0
    return total
