"""Sequence-context null: where would boundaries fall if the router only read the last k bases?

A learned stage-1 router can be close to a k-mer lookup (it marks AG wherever AG
occurs, splice site or not). Against a circular shift such a router looks
"enriched" at exon starts simply because exon starts carry AG. This null asks
instead: given the boundary rate of each k-mer, measured away from the features
under test, how many boundaries would the features' windows hold?

Conventions (those of `enrichment`):
- A boundary at position x means a chunk starts at base x. The router decides it
  from the encoder state at x, which has read bases ..x (causal), so the context
  of position x is the k bases ending at x inclusive: seq[x-k+1 .. x].
- Positions live on the joined analysed axis of `enrichment._Space` (the analysed
  regions of a chromosome laid end to end), chromosomes concatenated in order.
- Context only counts bases inside the same analysed region, as the model reads
  each exported region from its first base. A position whose last k bases are
  not all ACGT inside the region (near a region start or an N) falls into one
  extra class per k, "short context".
- Rates are shrunk towards the next shorter context: r_k(c) = (b + m r_{k-1}(parent)) /
  (n + m), m = `PSEUDOCOUNT`, so a rare k-mer borrows from its (k-1)-mer suffix.
- The order k is chosen by held-out log-loss (blocks of `BLOCK` positions, half
  fitted, half scored) among the orders the data supports: at least
  `MIN_PER_KMER` positions per k-mer on average.
- Positions are treated as independent Bernoulli draws given their k-mer for the
  p-value; the bootstrap interval over features does not rely on that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from sklearn.metrics import roc_auc_score

MAX_K = 8
MIN_PER_KMER = 20
PSEUDOCOUNT = 1.0  # small: a k-mer that always cuts should keep a rate near 1
BLOCK = 1_000
_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i
    _CODE[_b + 32] = _i


@dataclass
class SequenceAxis:
    """k-mer context of every analysed position, on the joined axis (chromosomes concatenated).

    `code` holds the last MAX_K bases (most recent in the lowest 2 bits); `clean`
    how many of those are ACGT in a row inside the region (capped at MAX_K).
    """

    chroms: list[str]
    offsets: dict[str, int]  # start of each chromosome on the concatenated axis
    code: np.ndarray  # int32
    clean: np.ndarray  # int8

    @property
    def size(self) -> int:
        return int(self.code.size)

    @classmethod
    def from_fasta(cls, fasta_path, spaces: Mapping) -> "SequenceAxis":
        """Read the analysed regions (`enrichment._Space` per chromosome) from a FASTA."""
        from dnahnet.data.corpus import open_faidx

        parts = []
        with open_faidx(fasta_path) as fasta:
            for chrom, space in spaces.items():
                for s, e in zip(space.starts.tolist(), space.ends.tolist()):
                    parts.append(np.frombuffer(fasta.fetch(chrom, s, e).encode("ascii"), dtype=np.uint8))
        return cls.from_regions(spaces, parts)

    @classmethod
    def from_regions(cls, spaces: Mapping, sequences: list) -> "SequenceAxis":
        """Build from the region sequences (bytes or uint8 arrays), in the order of `spaces` and their regions."""
        codes, cleans, offsets, total = [], [], {}, 0
        it = iter(sequences)
        for chrom, space in spaces.items():
            offsets[chrom] = total
            for s, e in zip(space.starts.tolist(), space.ends.tolist()):
                seq = next(it)
                seq = np.frombuffer(seq, dtype=np.uint8) if isinstance(seq, (bytes, bytearray)) else np.asarray(seq, np.uint8)
                if seq.size != e - s:
                    raise ValueError(f"{chrom}:{s}-{e}: got {seq.size} bases")
                c, k = _context_codes(_CODE[seq])
                codes.append(c)
                cleans.append(k)
                total += seq.size
        empty = np.zeros(0, np.int32)
        return cls(list(spaces), offsets, np.concatenate(codes) if codes else empty,
                   np.concatenate(cleans) if cleans else empty.astype(np.int8))

    def classes(self, k: int, index: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Class of each position for order k: the k-mer (0..4^k-1), or 4^k for a short context."""
        if k == 0:
            return np.zeros(self.code[index].size, np.int32)
        return np.where(self.clean[index] >= k, self.code[index] & (4**k - 1), 4**k).astype(np.int32)

    def flags(self, starts: Mapping[str, np.ndarray], spaces: Mapping) -> np.ndarray:
        """0/1 boundary indicator on the axis from boundary positions (genome coordinates) per chromosome."""
        out = np.zeros(self.size, dtype=bool)
        for chrom, space in spaces.items():
            pos = starts.get(chrom, np.zeros(0, np.int64))
            _, inside = space.region_of(pos)
            out[self.offsets[chrom] + space.coords(pos[inside])] = True
        return out

    def positions(self, runs: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """Axis positions covered by joined-axis runs per chromosome, and the run (unit) of each position."""
        starts, lengths = [], []
        for chrom, (a, b) in runs.items():
            starts.append(a + self.offsets[chrom])
            lengths.append(b - a)
        if not starts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        a, n = np.concatenate(starts), np.concatenate(lengths)
        unit = np.repeat(np.arange(a.size), n)
        first = np.cumsum(n) - n
        return np.repeat(a, n) + np.arange(n.sum()) - np.repeat(first, n), unit


def _context_codes(base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rolling MAX_K-mer code and the clean-run length (capped) for one region's base codes (0-3, 4 = N)."""
    n = base.size
    code = np.zeros(n, np.int32)
    ok = base < 4
    b = np.where(ok, base, 0).astype(np.int32)
    for j in range(MAX_K):
        code[j:] |= b[: n - j] << (2 * j)
    # clean[i] = consecutive ACGT ending at i, counted from the region start, capped
    idx = np.arange(n)
    last_bad = np.maximum.accumulate(np.where(~ok, idx, -1)) if n else idx
    clean = np.minimum(idx - last_bad, MAX_K).astype(np.int8)
    return code, clean


# ---------------------------------------------------------------- fitting


@dataclass
class LevelCounts:
    """Positions and boundaries per class, for every order 0..k."""

    n: list[np.ndarray] = field(default_factory=list)
    b: list[np.ndarray] = field(default_factory=list)

    def __sub__(self, other: "LevelCounts") -> "LevelCounts":
        return LevelCounts([x - y for x, y in zip(self.n, other.n)], [x - y for x, y in zip(self.b, other.b)])


def level_counts(axis: SequenceAxis, flags: np.ndarray, k: int, index: np.ndarray | slice = slice(None)) -> LevelCounts:
    """Class counts at orders 0..k over the positions `index`."""
    out = LevelCounts()
    f = flags[index].astype(np.float64)
    for j in range(k + 1):
        cls = axis.classes(j, index)
        out.n.append(np.bincount(cls, minlength=4**j + 1).astype(np.float64))
        out.b.append(np.bincount(cls, weights=f, minlength=4**j + 1))
    return out


def shrunk_rates(counts: LevelCounts, pseudocount: float = PSEUDOCOUNT) -> np.ndarray:
    """Rate per class at the highest order, each order shrunk towards its (k-1)-mer suffix."""
    n0, b0 = counts.n[0].sum(), counts.b[0].sum()
    rate = np.array([b0 / n0 if n0 else 0.0])
    for j in range(1, len(counts.n)):
        parent = np.r_[np.arange(4**j) & (4 ** (j - 1) - 1), 4 ** (j - 1)] if j > 1 else np.zeros(4**j + 1, np.int64)
        prior = rate[parent]
        rate = (counts.b[j] + pseudocount * prior) / (counts.n[j] + pseudocount)
    return rate


def supported_order(n_positions: int, max_k: int = MAX_K) -> int:
    """Largest k with at least MIN_PER_KMER positions per k-mer on average (0 if not even k = 1)."""
    k = 0
    while k < max_k and n_positions / 4 ** (k + 1) >= MIN_PER_KMER:
        k += 1
    return k


def split_halves(size: int, seed: int) -> np.ndarray:
    """True for the fitted half: random blocks of BLOCK positions (neighbours share k-mers, so not single positions)."""
    blocks = -(-size // BLOCK)
    pick = np.random.default_rng(seed).permutation(blocks) < (blocks + 1) // 2
    return np.repeat(pick, BLOCK)[:size]


def predictability(axis: SequenceAxis, flags: np.ndarray, seed: int = 0, max_k: int = MAX_K) -> list[dict]:
    """Held-out AUROC and log-loss of the k-mer model for k = 1..max_k (fit on one half of the blocks, score the other)."""
    fit = split_halves(axis.size, seed)
    held = np.flatnonzero(~fit)
    y = flags[held].astype(np.float64)
    counts = level_counts(axis, flags, max_k, np.flatnonzero(fit))
    rows = []
    for k in range(1, max_k + 1):
        rates = shrunk_rates(LevelCounts(counts.n[: k + 1], counts.b[: k + 1]))
        cls = axis.classes(k, held)
        pos = np.bincount(cls, weights=y, minlength=rates.size)
        neg = np.bincount(cls, minlength=rates.size) - pos
        q = np.clip(rates, 1e-6, 1 - 1e-6)
        two = pos.sum() > 0 and neg.sum() > 0
        # scores take one value per class, so AUROC over (class, label) pairs weighted by their counts is exact
        auroc = (float(roc_auc_score(np.r_[np.ones(rates.size), np.zeros(rates.size)], np.r_[rates, rates],
                                     sample_weight=np.r_[pos, neg])) if two else float("nan"))
        loss = -(pos @ np.log(q) + neg @ np.log1p(-q)) / max(held.size, 1)
        rows.append({"k": k, "auroc": auroc, "log_loss": float(loss) if held.size else float("nan"),
                     "positions_per_kmer": axis.size / 4**k, "held_out": int(held.size)})
    return rows


@dataclass
class ContextChoice:
    """The order used for a stage's context null, and why."""

    k: int
    supported: int
    requested: int | None
    note: str | None  # set when the requested order was lowered


def choose_order(curve: list[dict], n_positions: int, requested: int | None = None) -> ContextChoice:
    """`requested` if the data supports it (else the largest supported, with a note); otherwise the best held-out log-loss."""
    supported = supported_order(n_positions)
    if supported == 0:
        return ContextChoice(0, 0, requested, f"only {n_positions} analysed positions: too few for even a 1-mer context "
                             f"(needs {4 * MIN_PER_KMER}); the context null uses the overall boundary rate")
    if requested is not None:
        if requested > supported:
            return ContextChoice(supported, supported, requested,
                                 f"context order k={requested} needs {MIN_PER_KMER} positions per {requested}-mer on average; "
                                 f"{n_positions:,} analysed positions give {n_positions / 4**requested:.1f}: using k={supported}")
        return ContextChoice(requested, supported, requested, None)
    usable = [r for r in curve if r["k"] <= supported and np.isfinite(r["log_loss"])]
    if not usable:
        return ContextChoice(supported, supported, None, None)
    best = min(usable, key=lambda r: (round(r["log_loss"], 9), r["k"]))
    return ContextChoice(best["k"], supported, None, None)


# ---------------------------------------------------------------- the null for one window set


@dataclass
class ContextModel:
    """One boundary set's context counts at order k, ready to be refitted without any window set."""

    axis: SequenceAxis
    flags: np.ndarray
    k: int
    totals: LevelCounts

    @classmethod
    def fit(cls, axis: SequenceAxis, flags: np.ndarray, k: int) -> "ContextModel":
        return cls(axis, flags, k, level_counts(axis, flags, k))

    def expected(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per position of `pos` the boundary probability fitted on every analysed position outside `pos`.

        Returns (probability per position, class per position, rates per class).
        """
        rates = shrunk_rates(self.totals - level_counts(self.axis, self.flags, self.k, pos))
        cls = self.axis.classes(self.k, pos)
        return rates[cls], cls, rates

    def null_counts(self, cls: np.ndarray, rates: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
        """Boundary counts in the window set under the null: one binomial per class with its outside rate."""
        present, n = np.unique(cls, return_counts=True)
        p = np.clip(rates[present], 0.0, 1.0)
        out = np.zeros(draws, np.int64)
        step = max(1, 2_000_000 // max(present.size, 1))
        for lo in range(0, draws, step):
            m = min(step, draws - lo)
            out[lo : lo + m] = rng.binomial(n[None, :], p[None, :], size=(m, present.size)).sum(axis=1)
        return out
