"""Text mode: any file or folder of files as a raw byte corpus.

Every file is memory-mapped with numpy (nothing is read until a window asks for
it) and is one "sequence" named by its path relative to the corpus root. Splits
are byte ranges of the corpus taken as the concatenation of its files in sorted
order: the last `test_fraction` of the bytes is test, the `valid_fraction` before
it valid, the rest train, each cut at file boundaries into intervals; so a folder
of many small documents holds out whole documents, a single file its tail.
Windows never cross a file boundary. The `WindowSampler` and the loader work
unchanged: a corpus has no N (every byte is scored) and no soft mask.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dnahnet.errors import DnahnetInputError
from dnahnet.data.intervals import check_in_sequence, text_splits

__all__ = ["ByteCorpus", "text_splits"]


class ByteCorpus:
    """Files of raw bytes addressed like a genome: `read(name, start, end)`."""

    is_dna = False

    def __init__(self, paths: str | os.PathLike | list[str | os.PathLike]) -> None:
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not paths:
            raise DnahnetInputError("text mode needs at least one file or folder")
        self.files: dict[str, Path] = {}
        for p in map(Path, paths):
            if not p.exists():
                raise DnahnetInputError("text file or folder not found", file=str(p))
            found = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
            for f in found:
                rel = f.relative_to(p) if p.is_dir() else Path(f.name)
                if any(part.startswith(".") for part in rel.parts):
                    continue  # hidden files and folders (.git, editor swap files)
                name = str(Path(p.name) / rel) if p.is_dir() else f.name
                if name in self.files:
                    name = str(f)
                if f.stat().st_size > 0:
                    self.files[name] = f
        if not self.files:
            raise DnahnetInputError("no non-empty files found", file=str(paths[0]))
        self.path = Path(paths[0])
        self.names = list(self.files)
        self.sizes = {name: f.stat().st_size for name, f in self.files.items()}
        self._maps: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"ByteCorpus({str(self.path)!r}, {len(self.names)} files, {sum(self.sizes.values()):,} bytes)"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_maps"] = {}  # memory maps are reopened in each worker process
        return state

    def _map(self, name: str) -> np.ndarray:
        if name not in self._maps:
            self._maps[name] = np.memmap(self.files[name], dtype=np.uint8, mode="r")
        return self._maps[name]

    def check_range(self, chrom: str, start: int, end: int, *, file: str | None = None) -> None:
        check_in_sequence(self.sizes, chrom, start, end, source=str(self.path), kind="text corpus", unit="bytes",
                          file=file)

    def read(self, chrom: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """(bytes as uint8, all-False soft mask) of `chrom[start:end]`."""
        self.check_range(chrom, start, end)
        ids = np.array(self._map(chrom)[start:end], dtype=np.uint8)
        return ids, np.zeros(len(ids), dtype=bool)

    def n_runs(self, chrom: str) -> tuple[np.ndarray, np.ndarray]:
        self.check_range(chrom, 0, 0)
        return np.zeros(0, np.int64), np.zeros(0, np.int64)

    def n_counts(self, chrom: str, starts: np.ndarray | int, ends: np.ndarray | int) -> np.ndarray:
        return np.zeros_like(np.asarray(starts, dtype=np.int64))
