"""Indexed FASTA access: random windows without ever loading a genome into memory.

`Genome` wraps `pysam.FastaFile` (htslib faidx: plain or bgzip FASTA, `.fai` and,
for bgzip, `.gzi`). A missing index is built next to the FASTA, or, when that
folder is read-only, in a cache folder keyed by the FASTA's absolute path, size
and modification time (`cache_dir`, else `$DNAHNET_CACHE`, else
`~/.cache/dnahnet`). Plain gzip cannot be indexed for random access; it is
refused with the command that fixes it.

Besides raw and normalised fetches, a `Genome` knows where its N runs are (any
code other than ACGT counts as N, as in `dnahnet.alphabet.normalize_dna`), which
the window sampler uses to skip assembly gaps and to count N in a window without
reading it. The runs are computed once per chromosome by a chunked scan and cached
on disk beside the index.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pysam

from dnahnet.alphabet import N_BYTE, normalize_dna
from dnahnet.data.intervals import check_in_sequence
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open
from dnahnet.io.fasta_index import duplicate_header_lines, index_problem

SCAN_CHUNK = 8_000_000  # bases per read when scanning a chromosome for N runs
_FIX_GZIP = (
    "it is compressed with plain gzip, which cannot be indexed for random access; "
    "recompress it with bgzip (`gunzip -c in.fa.gz | bgzip -c > out.fa.gz`, "
    "or `gunzip` it first and `bgzip -c in.fa > in.fa.gz`)"
)
_OTHER_COMPRESSION = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def default_cache_dir() -> Path:
    """Where derived files (indexes of read-only FASTAs, N-run tables) go."""
    env = os.environ.get("DNAHNET_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "dnahnet"


def _dir_is_writable(folder: Path) -> bool:
    """Whether new files may be created in `folder` (a separate function so tests can stand in for a read-only folder when running as root)."""
    return os.access(folder, os.W_OK | os.X_OK)


def is_bgzip_header(head: bytes) -> bool:
    """Whether the first bytes of a file are a BGZF block (gzip with the 'BC' extra field)."""
    return len(head) >= 14 and head[:2] == b"\x1f\x8b" and bool(head[3] & 4) and head[12:14] == b"BC"


def sniff_fasta(path: Path) -> str:
    """Return "plain" or "bgzip" for a FASTA file, or raise a one-line input error saying why it is not usable."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if not head:
        raise DnahnetInputError("empty file, expected FASTA", file=str(path))
    for magic, name in _OTHER_COMPRESSION.items():
        if head.startswith(magic):
            raise DnahnetInputError(
                f"compressed with {name}, which cannot be indexed; decompress it (and optionally `bgzip` it)",
                file=str(path),
            )
    kind = "plain"
    if head[:2] == b"\x1f\x8b":
        if not is_bgzip_header(head):
            raise DnahnetInputError(_FIX_GZIP, file=str(path))
        kind = "bgzip"
    opener = gzip.open if kind == "bgzip" else open
    try:
        with opener(path, "rb") as fh:
            text = fh.read(4096)
    except (OSError, EOFError) as exc:
        raise DnahnetInputError(f"cannot read compressed data ({exc})", file=str(path)) from None
    stripped = text.lstrip()
    if not stripped.startswith(b">"):
        hint = " (it looks like GenBank)" if stripped.startswith(b"LOCUS") else ""
        raise DnahnetInputError(
            f"not a FASTA file{hint}: starts with {stripped[:20]!r}, expected a '>' header line",
            file=str(path),
        )
    return kind


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Capture what htslib prints on file descriptor 2, to turn it into an error message."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", errors="replace").splitlines())


def _build_index(path: Path, kind: str, folder: Path) -> tuple[Path, Path | None]:
    """Build `<name>.fai` (+ `.gzi`) for `path` inside `folder`, atomically.

    htslib writes the index next to the name it is given, so we index a symlink
    to the FASTA inside a private temporary folder and rename the results into
    place: concurrent builders (several ranks) never see a half-written index.
    """
    folder.mkdir(parents=True, exist_ok=True)
    suffixes = [".fai"] + ([".gzi"] if kind == "bgzip" else [])
    with tempfile.TemporaryDirectory(prefix=".dnahnet-index-", dir=folder) as tmp:
        link = Path(tmp) / path.name
        os.symlink(path.resolve(), link)
        with _captured_stderr() as messages:
            try:
                pysam.faidx(str(link))
            except pysam.SamtoolsError:
                pass
        if not all((Path(str(link) + s)).exists() for s in suffixes):
            detail = "; ".join(m.split("] ", 1)[-1] for m in messages if m.startswith("[E::")) or "unknown error"
            if "line length" in detail:
                detail += " (faidx needs every line of a record but the last to have the same length; rewrap it)"
            raise DnahnetInputError(f"cannot index FASTA: {detail}", file=str(path))
        duplicate = next((m.split('"')[1] for m in messages if "duplicate sequence" in m and m.count('"') >= 2), None)
        if duplicate is not None:  # faidx keeps the first record of a name and silently drops the others
            lines = duplicate_header_lines(path, duplicate, kind)
            where = " and ".join(str(n) for n in lines[:2]) if len(lines) > 1 else "several lines"
            raise DnahnetInputError(
                f"record name {duplicate!r} appears more than once (header lines {where}); "
                "every record needs its own name (rename or remove one)",
                file=str(path), record=duplicate)
        for s in suffixes:
            os.replace(str(link) + s, folder / (path.name + s))
    return folder / (path.name + ".fai"), (folder / (path.name + ".gzi")) if kind == "bgzip" else None


class Genome:
    """Random access to an indexed FASTA (plain or bgzip) by 0-based half-open coordinates."""

    is_dna = True

    def __init__(self, path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DnahnetInputError("FASTA file not found", file=str(self.path))
        if not self.path.is_file():
            raise DnahnetInputError("expected a FASTA file, got a folder", file=str(self.path))
        self.kind = sniff_fasta(self.path)
        stat = self.path.stat()
        key = hashlib.sha256(f"{self.path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:20]
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._cache = self.cache_dir / "genomes" / f"{self.path.name}-{key}"
        self.index_path, self.gzi_path = self._find_or_build_index()
        self._handle: pysam.FastaFile | None = None
        self._pid = -1
        fasta = self._fasta()
        self.names: list[str] = list(fasta.references)
        self.sizes: dict[str, int] = dict(zip(fasta.references, fasta.lengths))
        self._runs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # ----- index ---------------------------------------------------------------
    def _find_or_build_index(self) -> tuple[Path, Path | None]:
        mtime = self.path.stat().st_mtime

        stale: list[str] = []

        def fresh(folder: Path) -> bool:
            needed = [".fai"] + ([".gzi"] if self.kind == "bgzip" else [])
            files = [folder / (self.path.name + s) for s in needed]
            if not all(f.exists() and f.stat().st_mtime >= mtime for f in files):
                return False
            # a newer index may still be another file's (cp -p, rsync -a, tar x): check it against this file
            problem = index_problem(self.path, files[0], files[1] if len(files) > 1 else None)
            if problem is not None:
                stale.append(f"{files[0]}: {problem}")
            return problem is None

        for folder in (self.path.parent, self._cache):
            if fresh(folder):
                gzi = folder / (self.path.name + ".gzi")
                return folder / (self.path.name + ".fai"), gzi if self.kind == "bgzip" else None
        if _dir_is_writable(self.path.parent):
            with contextlib.suppress(PermissionError):
                return _build_index(self.path, self.kind, self.path.parent)
        try:
            return _build_index(self.path, self.kind, self._cache)
        except PermissionError:
            why = f"the index does not describe this file ({stale[0]})" if stale else "no index"
            raise DnahnetInputError(
                f"{why}, and neither the FASTA's folder nor the cache folder {self.cache_dir} is writable to rebuild it "
                "(set DNAHNET_CACHE to a writable folder, or run `samtools faidx` on it)",
                file=str(self.path),
            ) from None

    def _fasta(self) -> pysam.FastaFile:
        """The pysam handle, reopened after a fork (a handle's file offset must not be shared)."""
        if self._handle is None or self._pid != os.getpid():
            try:
                self._handle = pysam.FastaFile(
                    str(self.path),
                    filepath_index=str(self.index_path),
                    filepath_index_compressed=None if self.gzi_path is None else str(self.gzi_path),
                )
            except (OSError, ValueError) as exc:
                raise DnahnetInputError(
                    f"cannot open with index {self.index_path} ({exc}); delete the stale .fai/.gzi to rebuild it",
                    file=str(self.path),
                ) from None
            self._pid = os.getpid()
        return self._handle

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handle"] = None
        return state

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "Genome":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}, {len(self.names)} sequences, {sum(self.sizes.values()):,} bases)"

    # ----- fetching --------------------------------------------------------------
    def check_range(self, chrom: str, start: int, end: int, *, file: str | None = None) -> None:
        """Raise a one-line input error unless `chrom:start-end` lies inside this genome."""
        check_in_sequence(self.sizes, chrom, start, end, source=str(self.path), kind="FASTA", file=file)

    def fetch(self, chrom: str, start: int, end: int) -> bytes:
        """Raw bytes of `chrom[start:end]` as stored (case kept)."""
        self.check_range(chrom, start, end)
        if start == end:
            return b""
        return self._fasta().fetch(chrom, start, end).encode("ascii")

    def fetch_normalized(self, chrom: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """(upper-case ACGTN uint8 array, soft-mask bool array) of `chrom[start:end]`."""
        return normalize_dna(self.fetch(chrom, start, end))

    read = fetch_normalized  # the window-source protocol shared with text corpora

    # ----- N runs ----------------------------------------------------------------------
    def n_runs(self, chrom: str) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of the maximal runs of N (non-ACGT) in `chrom`, sorted."""
        starts, ends, _ = self._run_table(chrom)
        return starts, ends

    def _run_table(self, chrom: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if chrom not in self._runs:
            self.check_range(chrom, 0, 0)
            cached = self._cache / "nruns" / (hashlib.sha256(chrom.encode()).hexdigest()[:20] + ".npy")
            if cached.exists():
                starts, ends = np.load(cached)
            else:
                starts, ends = self._scan_n_runs(chrom)
                with contextlib.suppress(OSError, DnahnetInputError):
                    with atomic_open(cached, "wb") as fh:
                        np.save(fh, np.stack([starts, ends]))
            # cum[i] = N bases in runs 0..i-1, for O(log R) counts over any range
            cum = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
            self._runs[chrom] = (starts.astype(np.int64), ends.astype(np.int64), cum)
        return self._runs[chrom]

    def _scan_n_runs(self, chrom: str) -> tuple[np.ndarray, np.ndarray]:
        size = self.sizes[chrom]
        starts: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        for a in range(0, size, SCAN_CHUNK):
            b = min(a + SCAN_CHUNK, size)
            isn = (self.fetch_normalized(chrom, a, b)[0] == N_BYTE).view(np.int8)
            edges = np.diff(isn, prepend=np.int8(0), append=np.int8(0))
            s = np.flatnonzero(edges == 1) + a
            e = np.flatnonzero(edges == -1) + a
            if len(s) and ends and len(ends[-1]) and ends[-1][-1] == s[0]:
                s = s[1:]  # the run continues from the previous chunk
                ends[-1] = ends[-1][:-1]
            starts.append(s)
            ends.append(e)
        if not starts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(starts).astype(np.int64), np.concatenate(ends).astype(np.int64)

    def n_counts(self, chrom: str, starts: np.ndarray | int, ends: np.ndarray | int) -> np.ndarray:
        """Number of N bases in each `[starts[i], ends[i])` of `chrom`, from the run table (no reading)."""
        rs, re, cum = self._run_table(chrom)

        def covered(x: np.ndarray) -> np.ndarray:  # N bases in [0, x)
            if len(rs) == 0:
                return np.zeros_like(x)
            j = np.searchsorted(rs, x, side="left")  # number of runs starting before x
            prev = np.maximum(j - 1, 0)
            return np.where(j > 0, cum[prev] + np.minimum(re[prev], x) - rs[prev], 0)

        a = np.asarray(starts, dtype=np.int64)
        b = np.asarray(ends, dtype=np.int64)
        return covered(b) - covered(a)

    def n_count(self, chrom: str, start: int, end: int) -> int:
        """Number of N bases in `chrom[start:end]`."""
        self.check_range(chrom, start, end)
        return int(self.n_counts(chrom, start, end))

    def n_fraction(self, chrom: str) -> float:
        """Fraction of `chrom` that is N (1.0 for an empty chromosome): 1.0 means nothing to learn from."""
        self.check_range(chrom, 0, 0)
        size = self.sizes[chrom]
        if size == 0:
            return 1.0
        return int(self._run_table(chrom)[2][-1]) / size

    def effective_intervals(self, chrom: str) -> list[tuple[int, int]]:
        """The non-N runs of `chrom` as (start, end) pairs."""
        rs, re, _ = self._run_table(chrom)
        bounds = np.concatenate([[0], re]), np.concatenate([rs, [self.sizes[chrom]]])
        return [(int(s), int(e)) for s, e in zip(*bounds) if e > s]

    def acgt_bases(self, chrom: str) -> int:
        """Number of non-N bases in `chrom`."""
        return self.sizes[chrom] - int(self._run_table(chrom)[2][-1])

