"""bigWig: per-base tracks (p_t, log2 P) in the indexed binary form genome browsers stream.

Written with pyBigWig (libBigWig): the header lists the chromosomes in the order
entries will come, and entries must arrive sorted. Consecutive positions go in as
fixed-step runs (span 1, step 1: 4 bytes a base before compression); a gap (an N
run, an unscored position) starts a new run. Values are float32, as bigWig stores them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_path


def _pybigwig():
    try:
        import pyBigWig
    except ImportError:
        raise DnahnetInputError("writing bigWig needs pyBigWig (pip install pyBigWig)") from None
    return pyBigWig


class BigWigWriter:
    """Append sorted (chrom, positions, values) to a bigWig that appears at `path` on `close()`."""

    def __init__(self, path: str | os.PathLike, chrom_sizes: Sequence[tuple[str, int]]) -> None:
        self.path = Path(path)
        self._atomic = atomic_path(self.path, suffix=".bw")
        self._tmp = self._atomic.__enter__()
        self._bw = _pybigwig().open(str(self._tmp), "w")
        self._bw.addHeader([(str(c), int(n)) for c, n in chrom_sizes], maxZooms=10)
        self.entries = 0

    def add(self, chrom: str, positions: np.ndarray, values: np.ndarray) -> None:
        """Values at 0-based `positions` (sorted, after everything added before; NaN skipped)."""
        positions = np.asarray(positions, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        keep = np.isfinite(values)
        positions, values = positions[keep], values[keep]
        if not len(positions):
            return
        cuts = np.flatnonzero(np.diff(positions) != 1) + 1
        for pos, val in zip(np.split(positions, cuts), np.split(values, cuts)):
            self._bw.addEntries(chrom, int(pos[0]), values=val, span=1, step=1)
        self.entries += len(positions)

    def close(self) -> None:
        self._bw.close()
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            self._bw.close()
        self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)  # removes the temporary file

    def __enter__(self) -> "BigWigWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_bigwig(path: str | os.PathLike, chrom: str) -> tuple[np.ndarray, np.ndarray]:
    """(positions, values) of every base with a value on `chrom` (for checks and small regions)."""
    bw = _pybigwig().open(str(path))
    try:
        intervals = bw.intervals(chrom) or ()
    finally:
        bw.close()
    pos, val = [], []
    for start, end, value in intervals:
        pos.append(np.arange(start, end, dtype=np.int64))
        val.append(np.full(end - start, value, dtype=np.float32))
    if not pos:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(pos), np.concatenate(val)
