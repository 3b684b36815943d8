"""Train/valid/test splits and the window sampler.

A split is a list of half-open intervals on a window source (a `Genome`, or a
`ByteCorpus` in text mode). Three ways to build one:

- by chromosome lists (`train_chroms`, `valid_chroms`, `test_chroms`; an empty
  train list means every chromosome not held out);
- by BED files (BED3+; one file per split, or one file whose 4th column says
  `train`/`valid`/`test` for every row, as the Basenji/Enformer
  `sequences_human.bed` that HyenaDNA uses). Intervals of a split are merged;
  where splits overlap, test wins over valid and valid over train, so no held-out
  base is ever trained on;
- by fractions: the last `valid_fraction + test_fraction` of each chromosome's
  ACGT bases are held out, valid first, then test at the very end; train is the
  rest (`[0, valid_start)`, `[valid_start, test_start)`, `[test_start, size)`).

`WindowSampler` draws windows of `seq_len` bases uniformly over every valid start
position of a split (an interval of length n offers n - L + 1), never crossing an
interval boundary, and rejects windows with more than `max_n_fraction` N. Window
number i is a pure function of (seed, i): resuming, or splitting the stream over
ranks and workers, reproduces it exactly. N runs longer than
`floor(max_n_fraction * seq_len)` cannot lie inside an accepted window, so they
are cut out of the intervals first (assembly gaps cost no rejected draws).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Protocol

import numpy as np

from dnahnet.config import DataConfig
from dnahnet.errors import DnahnetInputError
from dnahnet.io.bed import iter_bed_intervals

SPLITS = ("train", "valid", "test")
_EVAL_STREAM = 0x5EED_E7A1  # keeps eval-window draws apart from training draws


class Interval(NamedTuple):
    """A half-open range `[start, end)` on one sequence (also used for windows)."""

    chrom: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


Window = Interval


class WindowSource(Protocol):
    """What a sampler needs from a genome or a byte corpus."""

    path: Path
    is_dna: bool
    names: list[str]
    sizes: dict[str, int]

    def read(self, chrom: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]: ...
    def n_runs(self, chrom: str) -> tuple[np.ndarray, np.ndarray]: ...
    def n_counts(self, chrom: str, starts: np.ndarray | int, ends: np.ndarray | int) -> np.ndarray: ...
    def check_range(self, chrom: str, start: int, end: int, *, file: str | None = None) -> None: ...


# ----- interval arithmetic ------------------------------------------------------------
def check_in_sequence(sizes: dict[str, int], chrom: str, start: int, end: int, *, source: str, kind: str,
                      unit: str = "bases", file: str | None = None) -> None:
    """Raise a one-line input error unless `chrom[start:end]` lies inside `sizes`.

    One wording for every window source (FASTA, GenBank, byte corpus): `kind`
    names the container ("FASTA", "GenBank", "text corpus") and `unit` what a
    position counts. Coordinates are 0-based half-open.
    """
    if chrom not in sizes:
        names = list(sizes)
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise DnahnetInputError(f"{chrom!r} is not in {kind} {source} (it has: {shown})", file=file or source,
                                record=chrom)
    size = sizes[chrom]
    if not 0 <= start <= end <= size:
        raise DnahnetInputError(
            f"range {chrom}:{start}-{end} is outside {chrom} ({size:,} {unit}; coordinates are 0-based half-open)",
            file=file or source, record=chrom, position=start,
        )


def merge_arrays(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals as sorted, disjoint intervals (touching ones are joined)."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.size == 0:
        return starts, ends
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    run_end = np.maximum.accumulate(e)
    new = np.ones(s.size, dtype=bool)
    new[1:] = s[1:] > run_end[:-1]
    idx = np.flatnonzero(new)
    return s[idx], np.maximum.reduceat(e, idx)


def merge_intervals(intervals: list[Interval], order: list[str] | None = None) -> list[Interval]:
    """Sort (by `order` of sequence names, then start) and merge overlapping or touching intervals; empty ones go."""
    by_chrom: dict[str, list[Interval]] = {}
    for iv in intervals:
        if iv.end > iv.start:
            by_chrom.setdefault(iv.chrom, []).append(iv)
    rank = {c: i for i, c in enumerate(order or sorted(by_chrom))}
    merged: list[Interval] = []
    for chrom in sorted(by_chrom, key=lambda c: rank[c]):
        starts, ends = merge_arrays([iv.start for iv in by_chrom[chrom]], [iv.end for iv in by_chrom[chrom]])
        merged += [Interval(chrom, s, e) for s, e in zip(starts.tolist(), ends.tolist())]
    return merged


def subtract_intervals(keep: list[Interval], remove: list[Interval]) -> list[Interval]:
    """Parts of `keep` (merged, sorted) not covered by `remove`."""
    by_chrom: dict[str, list[tuple[int, int]]] = {}
    for iv in merge_intervals(remove):
        by_chrom.setdefault(iv.chrom, []).append((iv.start, iv.end))
    out: list[Interval] = []
    for iv in keep:
        cuts = by_chrom.get(iv.chrom, [])
        starts = [c[0] for c in cuts]
        pos = iv.start
        k = max(int(np.searchsorted(starts, iv.start, side="right")) - 1, 0)
        for s, e in cuts[k:]:
            if s >= iv.end:
                break
            if e <= pos:
                continue
            if s > pos:
                out.append(Interval(iv.chrom, pos, s))
            pos = max(pos, e)
        if pos < iv.end:
            out.append(Interval(iv.chrom, pos, iv.end))
    return out


def cut_long_n_runs(source: WindowSource, intervals: list[Interval], max_gap: int) -> list[Interval]:
    """Remove from `intervals` every N run longer than `max_gap` (no accepted window can contain one)."""
    gaps: list[Interval] = []
    for chrom in {iv.chrom for iv in intervals}:
        rs, re = source.n_runs(chrom)
        long = (re - rs) > max_gap
        gaps.extend(Interval(chrom, int(s), int(e)) for s, e in zip(rs[long], re[long]))
    return subtract_intervals(intervals, gaps) if gaps else list(intervals)


# ----- BED ---------------------------------------------------------------------------------
def read_bed(path: str | os.PathLike) -> list[tuple[Interval, str | None]]:
    """BED3+ rows as (interval, 4th column or None), read by `dnahnet.io.bed.iter_bed_intervals`."""
    return [(Interval(iv.chrom, iv.start, iv.end), iv.fields[3].strip() if len(iv.fields) > 3 else None)
            for iv in iter_bed_intervals(path)]


# ----- splits --------------------------------------------------------------------------------
@dataclass
class Split:
    """Named intervals on a source; what a sampler or an eval set draws from."""

    name: str
    source: WindowSource
    intervals: list[Interval]

    @property
    def bases(self) -> int:
        return sum(iv.length for iv in self.intervals)

    def sampler(self, seq_len: int, *, max_n_fraction: float = 0.1, seed: int = 0) -> "WindowSampler":
        return WindowSampler(self, seq_len, max_n_fraction=max_n_fraction, seed=seed)


def _check_chroms(source: WindowSource, chroms: list[str], what: str) -> None:
    for chrom in chroms:
        if chrom not in source.sizes:
            raise DnahnetInputError(
                f"{what} names chromosome {chrom!r}, which {source.path} does not contain", file=str(source.path), record=chrom
            )


def chromosome_splits(source: WindowSource, train: list[str], valid: list[str], test: list[str]) -> dict[str, Split]:
    """Whole chromosomes per split; an empty train list means all chromosomes not held out."""
    for what, chroms in (("train_chroms", train), ("valid_chroms", valid), ("test_chroms", test)):
        _check_chroms(source, chroms, what)
    held = set(valid) | set(test)
    both = (set(train) & held) | (set(valid) & set(test))
    if both:
        raise DnahnetInputError(f"chromosome(s) {', '.join(sorted(both))} appear in more than one split")
    train = train or [c for c in source.names if c not in held]
    lists = {"train": train, "valid": valid, "test": test}
    return {name: Split(name, source, [Interval(c, 0, source.sizes[c]) for c in lists[name]]) for name in SPLITS}


def bed_splits(
    source: WindowSource, train_bed: str | None, valid_bed: str | None = None, test_bed: str | None = None
) -> dict[str, Split]:
    """Splits from BED files: one per split, or one labelled file (4th column train/valid/test)."""
    raw: dict[str, list[Interval]] = {name: [] for name in SPLITS}
    files = {"train": train_bed, "valid": valid_bed, "test": test_bed}
    for name, bed in files.items():
        if bed is None:
            continue
        rows = read_bed(bed)
        labelled = valid_bed is None and test_bed is None and bool(rows) and all(label in SPLITS for _, label in rows)
        for iv, label in rows:
            source.check_range(iv.chrom, iv.start, iv.end, file=str(bed))
            raw[label if labelled else name].append(iv)
    order = source.names
    test = merge_intervals(raw["test"], order)
    valid = subtract_intervals(merge_intervals(raw["valid"], order), test)
    train = subtract_intervals(merge_intervals(raw["train"], order), test + valid)
    return {"train": Split("train", source, train), "valid": Split("valid", source, valid), "test": Split("test", source, test)}


def _position_with_acgt_after(source: WindowSource, chrom: str, target: int) -> int:
    """Largest position p with at least `target` non-N bases in `[p, size)` (binary search on the N-run table)."""
    size = source.sizes[chrom]
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi + 1) // 2
        acgt = (size - mid) - int(source.n_counts(chrom, mid, size))
        if acgt >= target:
            lo = mid
        else:
            hi = mid - 1
    return lo


def fraction_splits(source: WindowSource, valid_fraction: float, test_fraction: float) -> dict[str, Split]:
    """Hold out the last fractions of every chromosome's ACGT bases: valid, then test at the end."""
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise DnahnetInputError(
            f"valid_fraction {valid_fraction} and test_fraction {test_fraction} must be in [0, 1) with a sum below 1"
        )
    out: dict[str, list[Interval]] = {name: [] for name in SPLITS}
    for chrom in source.names:
        size = source.sizes[chrom]
        acgt = size - int(source.n_counts(chrom, 0, size))
        if acgt == 0:
            continue
        test_start = _position_with_acgt_after(source, chrom, round(acgt * test_fraction)) if test_fraction else size
        valid_start = (
            _position_with_acgt_after(source, chrom, round(acgt * (valid_fraction + test_fraction)))
            if valid_fraction
            else test_start
        )
        for name, a, b in (("train", 0, valid_start), ("valid", valid_start, test_start), ("test", test_start, size)):
            if b > a:
                out[name].append(Interval(chrom, a, b))
    return {name: Split(name, source, out[name]) for name in SPLITS}


def text_splits(corpus: WindowSource, valid_fraction: float, test_fraction: float) -> dict[str, Split]:
    """Byte-range splits of a text corpus taken as the concatenation of its files (see `dnahnet.data.text`)."""
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise DnahnetInputError(
            f"valid_fraction {valid_fraction} and test_fraction {test_fraction} must be in [0, 1) with a sum below 1"
        )
    total = sum(corpus.sizes.values())
    test_start = total - round(total * test_fraction)
    valid_start = test_start - round(total * valid_fraction)
    bounds = {"train": (0, valid_start), "valid": (valid_start, test_start), "test": (test_start, total)}
    out: dict[str, list[Interval]] = {name: [] for name in SPLITS}
    offset = 0
    for name in corpus.names:
        size = corpus.sizes[name]
        for split, (a, b) in bounds.items():
            lo, hi = max(a, offset), min(b, offset + size)
            if hi > lo:
                out[split].append(Interval(name, lo - offset, hi - offset))
        offset += size
    return {name: Split(name, corpus, out[name]) for name in SPLITS}


def build_splits(source: WindowSource, cfg: DataConfig) -> dict[str, Split]:
    """The three splits a `DataConfig` asks for (text corpora split by byte ranges); train must not be empty."""
    if cfg.split_by == "chromosomes":
        splits = chromosome_splits(source, cfg.train_chroms, cfg.valid_chroms, cfg.test_chroms)
    elif cfg.split_by == "bed":
        if cfg.train_bed is None:
            raise DnahnetInputError("split_by 'bed' needs train_bed (a BED file, or one labelled train/valid/test)")
        splits = bed_splits(source, cfg.train_bed, cfg.valid_bed, cfg.test_bed)
    elif cfg.split_by == "fraction" and not source.is_dna:
        splits = text_splits(source, cfg.valid_fraction, cfg.test_fraction)
    elif cfg.split_by == "fraction":
        splits = fraction_splits(source, cfg.valid_fraction, cfg.test_fraction)
    else:
        raise DnahnetInputError(f"split_by: must be 'chromosomes', 'bed' or 'fraction', got {cfg.split_by!r}")
    if not splits["train"].intervals:
        raise DnahnetInputError(f"the train split is empty (split_by {cfg.split_by!r})", file=str(source.path))
    return splits


# ----- sampling --------------------------------------------------------------------------------
def window_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """The generator for draw `index`: independent of every other index, rank and worker."""
    return np.random.default_rng([stream, seed, index])


class WindowSampler:
    """Uniform windows of `seq_len` inside a split's intervals, window i a pure function of (seed, i)."""

    def __init__(
        self, split: Split, seq_len: int, *, max_n_fraction: float = 0.1, seed: int = 0, max_tries: int = 100
    ) -> None:
        if seq_len < 1:
            raise DnahnetInputError(f"seq_len must be positive, got {seq_len}")
        if not 0 <= max_n_fraction <= 1:
            raise DnahnetInputError(f"max_n_fraction must be in [0, 1], got {max_n_fraction}")
        self.split = split
        self.source = split.source
        self.seq_len = int(seq_len)
        self.max_n_fraction = float(max_n_fraction)
        self.max_n = int(np.floor(max_n_fraction * seq_len))
        self.seed = int(seed)
        self.max_tries = int(max_tries)
        self.index = 0
        where = str(self.source.path)
        if not split.intervals:
            raise DnahnetInputError(f"split {split.name!r} is empty", file=where)
        longest = max(iv.length for iv in split.intervals)
        if longest < seq_len:
            raise DnahnetInputError(
                f"seq_len {seq_len} is longer than every interval of split {split.name!r} (longest: {longest:,})", file=where
            )
        usable = [iv for iv in cut_long_n_runs(self.source, split.intervals, self.max_n) if iv.length >= seq_len]
        if not usable:
            raise DnahnetInputError(
                f"split {split.name!r} has no window of {seq_len} bases with at most {max_n_fraction:.0%} N "
                "(all-N sequence?)",
                file=where,
            )
        self.intervals = usable
        counts = np.array([iv.length - seq_len + 1 for iv in usable], dtype=np.int64)
        self._cum = np.cumsum(counts)
        self.positions = int(self._cum[-1])

    def _draw(self, rng: np.random.Generator) -> Window:
        u = int(rng.integers(self.positions))
        k = int(np.searchsorted(self._cum, u, side="right"))
        iv = self.intervals[k]
        start = iv.start + u - (int(self._cum[k - 1]) if k else 0)
        return Window(iv.chrom, start, start + self.seq_len)

    def window(self, index: int) -> Window:
        """Window number `index` (the first draw of its own generator with at most max_n N)."""
        rng = window_rng(self.seed, index)
        for _ in range(self.max_tries):
            w = self._draw(rng)
            if self.max_n >= self.seq_len or int(self.source.n_counts(w.chrom, w.start, w.end)) <= self.max_n:
                return w
        raise DnahnetInputError(
            f"split {self.split.name!r}: no window with at most {self.max_n_fraction:.0%} N in {self.max_tries} draws; "
            "raise max_n_fraction or shorten seq_len",
            file=str(self.source.path),
        )

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 ids, soft-mask flags) of a window."""
        return self.source.read(window.chrom, window.start, window.end)

    def sample(self, index: int) -> tuple[Window, np.ndarray, np.ndarray]:
        w = self.window(index)
        ids, soft = self.read(w)
        return w, ids, soft

    # ----- sequential use with a restorable position --------------------------------------------
    def __iter__(self) -> Iterator[Window]:
        return self

    def __next__(self) -> Window:
        w = self.window(self.index)
        self.index += 1
        return w

    def fingerprint(self) -> str:
        """Identifies the usable intervals, so a saved position is never applied to another split."""
        text = "\n".join(f"{c}\t{s}\t{e}" for c, s, e in self.intervals)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def state_dict(self) -> dict:
        return {"index": self.index, "seed": self.seed, "seq_len": self.seq_len, "fingerprint": self.fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        mine = self.state_dict()
        for key in ("seed", "seq_len", "fingerprint"):
            if state.get(key) != mine[key]:
                raise DnahnetInputError(
                    f"sampler state was saved with {key}={state.get(key)!r}, this sampler has {mine[key]!r}"
                )
        self.index = int(state["index"])


def eval_windows(
    split: Split, n: int, seq_len: int, seed: int = 0, *, max_n_fraction: float = 0.1
) -> list[Window]:
    """A fixed held-out set of `n` windows: non-overlapping tiles chosen at random, sorted by position.

    Only when the split holds fewer than `n` acceptable tiles are the rest drawn
    by the sampler (and may overlap).
    """
    sampler = WindowSampler(split, seq_len, max_n_fraction=max_n_fraction, seed=seed)
    src = split.source
    tiles: list[np.ndarray] = []
    owner: list[np.ndarray] = []
    for k, iv in enumerate(sampler.intervals):
        starts = iv.start + seq_len * np.arange(iv.length // seq_len, dtype=np.int64)
        ok = src.n_counts(iv.chrom, starts, starts + seq_len) <= sampler.max_n
        tiles.append(starts[ok])
        owner.append(np.full(int(ok.sum()), k, dtype=np.int64))
    all_starts = np.concatenate(tiles)
    all_owner = np.concatenate(owner)
    rng = np.random.default_rng([_EVAL_STREAM, seed, seq_len])
    if len(all_starts) >= n:
        pick = np.sort(rng.choice(len(all_starts), size=n, replace=False))
        chosen = [Window(sampler.intervals[o].chrom, int(s), int(s) + seq_len) for o, s in zip(all_owner[pick], all_starts[pick])]
    else:
        chosen = [Window(sampler.intervals[o].chrom, int(s), int(s) + seq_len) for o, s in zip(all_owner, all_starts)]
        extra = WindowSampler(split, seq_len, max_n_fraction=max_n_fraction, seed=seed + _EVAL_STREAM)
        chosen += [extra.window(i) for i in range(n - len(chosen))]
    rank = {c: i for i, c in enumerate(src.names)}
    return sorted(chosen, key=lambda w: (rank[w.chrom], w.start))
