"""Order-K Markov baseline: the bits per base a language model has to beat.

Counts of (K preceding bases, next base) over the training intervals, with
add-one smoothing over ACGT: P(b | ctx) = (n(ctx, b) + 1) / (n(ctx) + 4). Only
positions whose K-base context and target are all ACGT are counted (contexts
with N are skipped). Counting is vectorised: each chunk of an interval becomes
base-4 codes, every (K+1)-mer is one integer built by K multiply-adds over the
whole chunk, and `np.bincount` counts them. Intervals are streamed in chunks, so
memory is one chunk whatever the genome size.

Scoring follows the language models' convention: N targets are not scored, and
a position with fewer than K ACGT bases before it in its window (window start,
or an N) backs off to the longest context it has; lower-order tables are the
order-K counts summed over their oldest base.

Both strands (`both_strands=True`): the reverse complement of every interval is
counted as well, so the model is strand-symmetric; `score_intervals` scores long
intervals in chunks (context carried over chunk edges) on one or both strands.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from dnahnet.alphabet import as_bytes_array, normalize_dna
from dnahnet.data.intervals import Interval, Window, WindowSource
from dnahnet.errors import DnahnetInputError

MAX_ORDER = 12  # 4**13 counters of 8 bytes = 0.5 GB; beyond that counts are too sparse anyway
CHUNK = 4_000_000

_CODE = np.full(256, -1, dtype=np.int64)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i


def base_codes(seq: np.ndarray | bytes | str) -> np.ndarray:
    """0..3 for A C G T (any case), -1 for everything else."""
    return _CODE[normalize_dna(as_bytes_array(seq))[0]]


def reverse_complement_codes(codes: np.ndarray) -> np.ndarray:
    """Codes of the reverse complement (A<->T is 0<->3, C<->G is 1<->2; -1 stays -1)."""
    rc = codes[::-1]
    return np.where(rc >= 0, 3 - rc, -1)


def count_kmers(codes: np.ndarray, order: int, first_target: int = 0) -> np.ndarray:
    """Counts (4**order, 4) of contexts and next bases, for targets at positions >= max(order, first_target)."""
    k1 = order + 1
    out = np.zeros(4 ** k1, dtype=np.int64)
    n = len(codes)
    if n >= k1:
        bad = np.concatenate([[0], np.cumsum(codes < 0)])
        ok = (bad[k1:] - bad[: n - order]) == 0  # window [t-order, t] all ACGT, t = order..n-1
        ok[: max(0, first_target - order)] = False
        c = np.where(codes < 0, 0, codes)
        kmer = np.zeros(n - order, dtype=np.int64)
        for j in range(k1):
            kmer = kmer * 4 + c[j : n - order + j]
        out += np.bincount(kmer[ok], minlength=4 ** k1)
    return out.reshape(4**order, 4)


class MarkovModel:
    """Smoothed order-K transition counts with backoff for short contexts."""

    def __init__(self, counts: np.ndarray) -> None:
        order = int(round(np.log(counts.shape[0]) / np.log(4)))
        if counts.shape != (4**order, 4):
            raise ValueError(f"counts must have shape (4**K, 4), got {counts.shape}")
        self.order = order
        self.counts = counts
        tables = [counts]
        for _ in range(order):
            prev = tables[-1]
            tables.append(prev.reshape(4, prev.shape[0] // 4, 4).sum(axis=0))  # drop the oldest base
        self._log2p = [np.log2((t + 1) / (t.sum(axis=1, keepdims=True) + 4)) for t in reversed(tables)]

    def with_order(self, k: int) -> "MarkovModel":
        """The order-k model implied by these counts (k <= order)."""
        if not 0 <= k <= self.order:
            raise ValueError(f"order {k} is not in 0..{self.order}")
        t = self.counts
        while t.shape[0] > 4**k:
            t = t.reshape(4, t.shape[0] // 4, 4).sum(axis=0)
        return MarkovModel(t)

    def log2_probs(self, seq: np.ndarray | bytes | str) -> np.ndarray:
        """log2 P(base_t | up to K preceding ACGT bases in `seq`) per position; NaN where the base is N."""
        return self.log2_probs_codes(base_codes(seq))

    def log2_probs_codes(self, codes: np.ndarray) -> np.ndarray:
        """`log2_probs` of base codes (0..3, -1 for N), e.g. a reverse complement from `reverse_complement_codes`."""
        n = len(codes)
        pos = np.arange(n)
        invalid_at = np.where(codes < 0, pos, -1)
        last_bad = np.concatenate([[-1], np.maximum.accumulate(invalid_at)[:-1]]) if n else invalid_at
        avail = np.minimum(pos - last_bad - 1, self.order)
        c = np.where(codes < 0, 0, codes)
        out = np.full(n, np.nan)
        ctx = np.zeros(n, dtype=np.int64)
        target_ok = codes >= 0
        for k in range(self.order + 1):
            if k:
                shifted = np.zeros(n, dtype=np.int64)
                shifted[k:] = c[: n - k]
                ctx = ctx + shifted * 4 ** (k - 1)  # codes[t-k] is the oldest, most significant digit
            use = target_ok & (avail == k)
            out[use] = self._log2p[k][ctx[use], codes[use]]
        return out

    def bits_per_base(
        self, windows: Iterable, source: WindowSource | None = None, *, skip_first: bool = True
    ) -> float:
        """Mean −log2 P over the ACGT targets of `windows` (Window tuples read from `source`, or sequences).

        With `skip_first` (the training loss's convention) position 0 of each window is not a target.
        """
        total = 0.0
        count = 0
        for w in windows:
            seq = source.read(w.chrom, w.start, w.end)[0] if source is not None else w
            lp = self.log2_probs(seq)[1 if skip_first else 0 :]
            lp = lp[~np.isnan(lp)]
            total -= float(lp.sum())
            count += len(lp)
        if count == 0:
            raise DnahnetInputError("no ACGT bases to score in the given windows")
        return total / count


def fit(source: WindowSource, intervals: list[Interval], order: int, *, chunk: int = CHUNK,
        both_strands: bool = False) -> MarkovModel:
    """Count order-`order` transitions over `intervals`, streamed `chunk` bases at a time.

    With `both_strands`, each interval's reverse complement is counted too (every target once per strand).
    """
    if not 0 <= order <= MAX_ORDER:
        raise DnahnetInputError(f"Markov order must be in 0..{MAX_ORDER}, got {order}")
    counts = np.zeros((4**order, 4), dtype=np.int64)
    for iv in intervals:
        for a in range(iv.start, iv.end, chunk):
            b = min(a + chunk, iv.end)
            lo = max(iv.start, a - order)  # context reaches back into the previous chunk, not past the interval
            ids, _ = source.read(iv.chrom, lo, b)
            counts += count_kmers(base_codes(ids), order, first_target=a - lo)
            if both_strands:  # targets a..b-1 on the minus strand take their context from the bases after them
                hi = min(iv.end, b + order)
                rc = reverse_complement_codes(base_codes(source.read(iv.chrom, a, hi)[0]))
                counts += count_kmers(rc, order, first_target=hi - b)
    return MarkovModel(counts)


def score_intervals(model: MarkovModel, source: WindowSource, intervals: Iterable[Interval], *,
                    both_strands: bool = False, skip_first: bool = True, chunk: int = 1_000_000) -> tuple[float, int]:
    """(total bits, positions scored) of −log2 P over the ACGT targets of whole intervals, read in chunks.

    Each chunk carries the K bases before it as context, so the result equals scoring each interval at once.
    N targets are not scored; with `skip_first` (the language models' convention) the first base of each
    interval on each strand is not a target. With `both_strands`, the minus strand (read 5'->3') is scored as
    well and both strands' positions are counted.
    """
    k = model.order
    total, count = 0.0, 0

    def add(lp: np.ndarray) -> None:
        nonlocal total, count
        lp = lp[~np.isnan(lp)]
        total -= float(lp.sum())
        count += len(lp)

    for iv in intervals:
        for a in range(iv.start, iv.end, chunk):
            b = min(a + chunk, iv.end)
            lo = max(iv.start, a - k)
            lp = model.log2_probs_codes(base_codes(source.read(iv.chrom, lo, b)[0]))[a - lo :]
            add(lp[1:] if skip_first and a == iv.start else lp)
        if both_strands:
            for b in range(iv.end, iv.start, -chunk):
                a = max(iv.start, b - chunk)
                hi = min(iv.end, b + k)
                lp = model.log2_probs_codes(reverse_complement_codes(base_codes(source.read(iv.chrom, a, hi)[0])))[hi - b :]
                add(lp[1:] if skip_first and b == iv.end else lp)
    return total, count


def best_order(
    source: WindowSource, train: list[Interval], valid: list[Window], max_order: int = 8
) -> tuple[int, dict[int, float], MarkovModel]:
    """(order with the lowest validation bits per base, {order: bits per base}, that order's model)
    for orders 1..max_order.

    One pass counts order max_order; lower orders are its marginals.
    """
    if not 1 <= max_order <= MAX_ORDER:
        raise DnahnetInputError(f"--max-order: the largest Markov order tried must be in 1..{MAX_ORDER}, got {max_order}")
    full = fit(source, train, max_order)
    scores = {k: full.with_order(k).bits_per_base(valid, source) for k in range(1, max_order + 1)}
    best = min(scores, key=scores.get)
    return best, scores, full.with_order(best)
