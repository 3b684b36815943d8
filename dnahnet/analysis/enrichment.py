"""Do chunk boundaries fall on genome features more often than chance?

Conventions
- A boundary at position x means a chunk starts at base x: the break lies between
  x-1 and x. A feature [s, e) therefore has its left edge at s and its right edge
  at e; its *start* edge is s on + (and unstranded) features and e on - features.
- Everything is counted inside the analysed regions only (where boundaries could
  be called: the union of the chunks in the boundaries file).
- Circular-shift null: per chromosome, the analysed regions are laid end to end
  into one coordinate axis and the boundary set is shifted by a random offset
  along it, wrapping around (a circular shift keeps the spacing of the boundaries,
  which a uniform shuffle would destroy). Counts for every offset come from one
  prefix sum, so each permutation costs one lookup per feature interval.
- Every learned stage sits next to a fixed-grid control: a boundary every k bases,
  k = the stage's realised compression rounded, which has the same density but no
  knowledge of the sequence. It is also a null for the stage (expected = the grid's
  boundaries in the windows, scaled to the stage's boundary count).
- Sequence-context null (`context_null`): expected = the boundary rate of each
  position's k-mer (the k bases ending there), fitted outside the windows tested. The two nulls
  above ignore the sequence, so they call a router that marks a k-mer "enriched"
  at every feature that carries that k-mer; only this one separates the two.
- Folds under every null get a 95% bootstrap interval over features (windows that
  overlap form one unit); q-values are Benjamini-Hochberg over all tests of a report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
from sklearn.metrics import auc

from dnahnet.analysis.annotations import derive_codon_sites, feature_role, merge_intervals
from dnahnet.analysis.context_null import ContextModel, SequenceAxis, choose_order, predictability
from dnahnet.analysis.multiple_testing import BOOTSTRAP, MIN_EXPECTED, bh_qvalues, bootstrap_folds, bootstrap_p, empirical_p, interval
from dnahnet.analysis.start_codons import start_codon_control
from dnahnet.errors import DnahnetInputError
from dnahnet.io.annotations import FeatureTable
from dnahnet.io.bed import BedGraph, read_bed_columns

Regions = dict[str, tuple[np.ndarray, np.ndarray]]  # chrom -> merged (starts, ends)
EDGES = ("start", "end", "body")
SELECTION_REGIONS = ("promoter", "start_codon", "CDS", "stop_codon", "intergenic")


@dataclass
class BoundarySet:
    """Boundary positions (chunk starts, sorted) and chunk ends of one stage, per chromosome."""

    name: str
    starts: dict[str, np.ndarray]
    ends: dict[str, np.ndarray]

    def count(self) -> int:
        return int(sum(v.size for v in self.starts.values()))


# ---------------------------------------------------------------- inputs


def read_boundaries(path: str | os.PathLike) -> tuple[dict[str, BoundarySet], Regions]:
    """Read a `dnahnet boundaries` BED6 (one record per chunk, name = stage).

    Returns the boundary sets by stage name and the analysed regions (the union
    of all chunks).
    """
    cols = read_bed_columns(path, max_columns=4)  # chrom, start, end, stage
    if len(cols) == 0:
        raise DnahnetInputError("no boundary records", file=str(path))
    if cols.name is None:
        raise DnahnetInputError("expected BED4+ with the stage in the name column (dnahnet boundaries output)", file=str(path))
    chroms, chrom_code = _codes(cols.chrom)
    stages, stage_code = _codes(cols.name)
    key = stage_code * len(chroms) + chrom_code
    order = np.lexsort((cols.start, key))
    cuts = np.searchsorted(key[order], np.arange(len(stages) * len(chroms) + 1))
    sets: dict[str, BoundarySet] = {}
    pieces: dict[str, list] = {c: [] for c in chroms}
    for si, stage in enumerate(stages):
        starts, ends = {}, {}
        for ci, chrom in enumerate(chroms):
            k = si * len(chroms) + ci
            rows = order[cuts[k] : cuts[k + 1]]
            if rows.size:
                starts[chrom], ends[chrom] = cols.start[rows], cols.end[rows]
                pieces[chrom].append(merge_intervals(starts[chrom], ends[chrom]))
        sets[stage] = BoundarySet(stage, starts, ends)
    regions = {c: merge_intervals(*map(np.concatenate, zip(*p))) for c, p in pieces.items()}
    return sets, regions


def _codes(values: np.ndarray) -> tuple[list, np.ndarray]:
    """Distinct values (first-seen order) and each row's index into them."""
    items = values.tolist()
    names = list(dict.fromkeys(items))
    code = {v: i for i, v in enumerate(names)}
    return names, np.fromiter(map(code.__getitem__, items), dtype=np.int64, count=len(items))


def _group(values: np.ndarray) -> dict[str, np.ndarray]:
    """Row indices per distinct value (first-seen order), in one sort rather than one scan per value."""
    names, codes = _codes(values)
    order = np.argsort(codes, kind="stable")
    return dict(zip(names, np.split(order, np.searchsorted(codes[order], np.arange(1, len(names))))))


def analysed_bases(regions: Regions) -> int:
    return int(sum((e - s).sum() for s, e in regions.values()))


def realised_compression(boundaries: BoundarySet, regions: Regions) -> float:
    """Analysed bases per boundary (L/M of the stage, relative to bases)."""
    return analysed_bases(regions) / max(boundaries.count(), 1)


def grid_boundaries(regions: Regions, k: int, name: str) -> BoundarySet:
    """Fixed-grid control: a boundary every `k` bases from the start of each analysed region."""
    starts, ends = {}, {}
    for chrom, (rs, re_) in regions.items():
        pos = [np.arange(s, e, k, dtype=np.int64) for s, e in zip(rs.tolist(), re_.tolist())]
        starts[chrom] = np.concatenate(pos)
        ends[chrom] = np.concatenate([np.minimum(p + k, e) for p, e in zip(pos, re_.tolist())])
    return BoundarySet(name, starts, ends)


# ---------------------------------------------------------------- analysed coordinates


@dataclass
class _Space:
    """The analysed regions of one chromosome laid end to end (for circular shifts)."""

    starts: np.ndarray
    ends: np.ndarray
    offsets: np.ndarray  # position of each region's start on the joined axis
    size: int

    @classmethod
    def of(cls, starts: np.ndarray, ends: np.ndarray) -> "_Space":
        lengths = ends - starts
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return cls(starts, ends, offsets, int(lengths.sum()))

    def region_of(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(region index, inside flag) for genome positions."""
        j = np.searchsorted(self.starts, pos, side="right") - 1
        inside = (j >= 0) & (pos < self.ends[np.maximum(j, 0)])
        return j, inside

    def coords(self, pos: np.ndarray) -> np.ndarray:
        """Joined-axis coordinates of positions that lie inside the regions."""
        j, _ = self.region_of(pos)
        return pos - self.starts[j] + self.offsets[j]

    def clip(self, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Merged genome intervals intersected with the regions, on the joined axis."""
        s, e = merge_intervals(starts, ends)
        j0 = np.searchsorted(self.ends, s, side="right")
        j1 = np.searchsorted(self.starts, e, side="left")
        n = np.maximum(j1 - j0, 0)
        if n.sum() == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        which = np.repeat(np.arange(s.size), n)
        j = np.repeat(j0, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        ps = np.maximum(s[which], self.starts[j])
        pe = np.minimum(e[which], self.ends[j])
        keep = ps < pe
        shift = (self.offsets[j] - self.starts[j])[keep]
        return ps[keep] + shift, pe[keep] + shift


def _spaces(regions: Regions) -> dict[str, _Space]:
    return {chrom: _Space.of(s, e) for chrom, (s, e) in regions.items() if (e - s).sum() > 0}


class _ShiftCounter:
    """Counts of one boundary set inside interval sets, for any circular shift.

    Keeps, per chromosome, the prefix count of boundaries on the joined axis
    (4 bytes per analysed base), so a count over an interval is two lookups.
    """

    def __init__(self, boundaries: BoundarySet, spaces: Mapping[str, _Space], offsets: Mapping[str, np.ndarray]):
        self.cum: dict[str, np.ndarray] = {}
        self.offsets = offsets
        for chrom, space in spaces.items():
            pos = boundaries.starts.get(chrom, np.zeros(0, np.int64))
            _, inside = space.region_of(pos)
            coords = np.sort(space.coords(pos[inside]))
            steps = np.diff(np.concatenate([[0], coords + 1, [space.size + 1]]))
            dtype = np.int32 if coords.size < 2**31 else np.int64
            self.cum[chrom] = np.repeat(np.arange(coords.size + 1, dtype=dtype), steps)  # cum[x] = #coords < x
        self.total = sum(int(c[-1]) for c in self.cum.values())

    def observed(self, runs: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> int:
        return int(sum((self.cum[c][b] - self.cum[c][a]).sum() for c, (a, b) in runs.items()))

    def null(self, runs: Mapping[str, tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
        """Counts after shifting each chromosome's boundaries by its offsets (one per permutation)."""
        out = np.zeros(n, dtype=np.int64)
        for chrom, (a, b) in runs.items():
            if a.size == 0:
                continue
            cum, offsets = self.cum[chrom], self.offsets[chrom]
            size, total = cum.size - 1, int(cum[-1])
            step = max(1, 4_000_000 // a.size)
            for lo in range(0, n, step):
                o = offsets[lo : lo + step, None]
                out[lo : lo + step] += (_wrapped(cum, b - o, size, total) - _wrapped(cum, a - o, size, total)).sum(axis=1)
        return out


def _wrapped(cum: np.ndarray, x: np.ndarray, size: int, total: int) -> np.ndarray:
    """Prefix count at x in (-size, size], continuing the prefix sum below 0 by wrap-around."""
    negative = x < 0
    return np.where(negative, cum[np.where(negative, x + size, x)] - total, cum[x])


def _feature_intervals(features: FeatureTable, edge: str, window: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per chromosome, genome intervals for a feature body or ±window around its start/end edge."""
    out = {}
    for chrom, on in _group(features.chrom).items():
        s, e, minus = features.start[on], features.end[on], features.strand[on] == "-"
        if edge == "body":
            out[chrom] = (s, e)
            continue
        pos = np.where(minus, e, s) if edge == "start" else np.where(minus, s, e)
        out[chrom] = (np.maximum(pos - window, 0), pos + window + 1)
    return out


def _runs(intervals: Mapping[str, tuple[np.ndarray, np.ndarray]], spaces: Mapping[str, _Space]):
    return {c: spaces[c].clip(s, e) for c, (s, e) in intervals.items() if c in spaces}


def _bases(runs) -> int:
    return int(sum((b - a).sum() for a, b in runs.values()))


def _n_overlapping(features: FeatureTable, spaces: Mapping[str, _Space]) -> int:
    """Distinct features that overlap the analysed regions."""
    n = 0
    for chrom, on in _group(features.chrom).items():
        if chrom not in spaces:
            continue
        space = spaces[chrom]
        keys = np.unique(np.stack([features.start[on], features.end[on]]), axis=1)
        j0 = np.searchsorted(space.ends, keys[0], side="right")
        j1 = np.searchsorted(space.starts, keys[1], side="left")
        n += int((j1 > j0).sum())
    return n


# ---------------------------------------------------------------- enrichment table


def _draw_offsets(spaces: Mapping[str, _Space], permutations: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {c: rng.integers(0, s.size, size=permutations) for c, s in sorted(spaces.items())}


def _stats_row(observed: int, null: np.ndarray, expected: float, bases: int, total: int, n_total: int) -> dict:
    sd = float(null.std(ddof=1)) if null.size > 1 else 0.0
    p_up, p_down, p_two = empirical_p(null, observed)
    return {
        "bases": bases,
        "observed": observed,
        "expected": expected,
        "fold": observed / expected if expected > 0 else float("nan"),
        "z": (observed - float(null.mean())) / sd if sd > 0 else float("nan"),
        "p_enriched": p_up,
        "p_depleted": p_down,
        "shift_p": p_two,
        "rate_in": observed / bases if bases else float("nan"),
        "rate_out": (total - observed) / (n_total - bases) if n_total > bases else float("nan"),
    }


def _per_unit(counter: "_ShiftCounter", runs) -> np.ndarray:
    """Boundaries of `counter`'s set in each run (unit), runs concatenated in chromosome order."""
    parts = [counter.cum[c][b] - counter.cum[c][a] for c, (a, b) in runs.items()]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def _shift_expected(counter: "_ShiftCounter", runs) -> np.ndarray:
    """Exact circular-shift expectation per run: its length times its chromosome's boundary density."""
    parts = [(b - a) * (counter.cum[c][-1] / (counter.cum[c].size - 1)) for c, (a, b) in runs.items()]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def _null_columns(prefix: str, observed: float, expected: np.ndarray, folds: np.ndarray, p: float) -> dict:
    total = float(expected.sum())
    lo, hi = interval(folds) if total >= MIN_EXPECTED else (float("nan"), float("nan"))
    return {f"{prefix}expected": total, f"{prefix}fold": observed / total if total > 0 else float("nan"),
            f"{prefix}fold_lo": lo, f"{prefix}fold_hi": hi, f"{prefix}p": p}


def edge_enrichment(
    boundary_sets: Sequence[BoundarySet],
    features: FeatureTable,
    regions: Regions,
    window: int = 5,
    permutations: int = 200,
    seed: int = 0,
    controls: Mapping[str, BoundarySet] | None = None,
    context: Mapping[str, ContextModel] | None = None,
    bootstrap: int = BOOTSTRAP,
) -> list[dict]:
    """One row per boundary set × feature type × edge (start, end, body).

    observed = boundaries within ±`window` of the (strand-aware) edges, or inside
    the features for `body`. Under each null, fold = observed / expected with a
    95% bootstrap interval (features whose windows overlap are merged into one
    unit, and units are resampled):
    - circular shift (every set): expected = window bases × the chromosome's boundary
      density, the exact mean over shifts; z and empirical p (one-sided each way, and
      `shift_p` two-sided, +1 corrected) from `permutations` shifts per chromosome;
    - fixed grid (sets with a `controls` entry): expected = the grid's boundaries in the
      windows scaled to the set's boundary count; p from the bootstrap;
    - sequence context (sets with a `context` model): expected = the boundary rate of each
      position's k-mer fitted outside the windows; p from `permutations` draws of that null.
    """
    if permutations < 1 or window < 0:
        raise ValueError("need permutations >= 1 and window >= 0")
    controls, context = controls or {}, context or {}
    spaces = _spaces(regions)
    n_total = sum(s.size for s in spaces.values())
    rng = np.random.default_rng(seed)
    rng_boot = np.random.default_rng([seed, 1])
    rng_ctx = np.random.default_rng([seed, 2])
    masks = {}
    for ftype in features.types():
        table = features.of_type(ftype)
        n_feat = _n_overlapping(table, spaces)
        if n_feat:
            masks[ftype] = (n_feat, {edge: _runs(_feature_intervals(table, edge, window), spaces) for edge in EDGES})
    rows = []
    for bset in boundary_sets:
        counter = _ShiftCounter(bset, spaces, _draw_offsets(spaces, permutations, rng))
        grid = controls.get(bset.name)
        grid_counter = _ShiftCounter(grid, spaces, {}) if grid is not None else None
        model = context.get(bset.name)
        for ftype, (n_feat, by_edge) in masks.items():
            for edge, runs in by_edge.items():
                obs_units = _per_unit(counter, runs)
                observed = int(obs_units.sum())
                shift_units = _shift_expected(counter, runs)
                expectations = [shift_units]
                if grid_counter is not None:
                    scale = counter.total / max(grid_counter.total, 1)
                    expectations.append(_per_unit(grid_counter, runs) * scale)
                if model is not None:
                    pos, unit = model.axis.positions(runs)
                    prob, cls, rates = model.expected(pos)
                    expectations.append(np.bincount(unit, weights=prob, minlength=obs_units.size))
                folds = bootstrap_folds(obs_units, expectations, rng_boot, bootstrap)
                row = _stats_row(observed, counter.null(runs, permutations), float(shift_units.sum()),
                                 _bases(runs), counter.total, n_total)
                lo, hi = interval(folds[0]) if row["expected"] >= MIN_EXPECTED else (float("nan"), float("nan"))
                row.update({"fold_lo": lo, "fold_hi": hi})
                if grid_counter is not None:
                    grid_p = bootstrap_p(folds[1]) if expectations[1].sum() >= MIN_EXPECTED else float("nan")
                    row.update(_null_columns("grid_", observed, expectations[1], folds[1], grid_p))
                if model is not None:
                    null = model.null_counts(cls, rates, permutations, rng_ctx)
                    row.update(_null_columns("context_", observed, expectations[-1], folds[-1],
                                             empirical_p(null, observed)[2]))
                    row["context_k"] = model.k
                rows.append({"stage": bset.name, "feature": ftype, "edge": edge, "n_features": n_feat,
                             "units": int(obs_units.size), "window": 0 if edge == "body" else window, **row})
    return rows


# ---------------------------------------------------------------- codon phase


def _coding_pieces(features: FeatureTable, spaces: Mapping[str, _Space]) -> FeatureTable:
    """Distinct contiguous coding pieces with a known frame, lying wholly inside the analysed regions."""
    piece = ((features.type == "CDS") & (features.phase >= 0)) | (features.type == "CDS_part")
    piece &= np.isin(features.strand, ["+", "-"])
    inside = np.zeros(len(features), dtype=bool)
    for chrom, on in _group(features.chrom).items():
        on = on[piece[on]]
        if chrom in spaces and on.size:
            j, ok = spaces[chrom].region_of(features.start[on])
            inside[on] = ok & (features.end[on] <= spaces[chrom].ends[np.maximum(j, 0)])
    table = features.subset(inside)
    keys = {(c, s, e, st, ph): i for i, (c, s, e, st, ph) in enumerate(
        zip(table.chrom.tolist(), table.start.tolist(), table.end.tolist(), table.strand.tolist(), table.phase.tolist()))}
    return table.subset(np.array(sorted(keys.values()), dtype=np.int64))


def _hits_in_pieces(boundaries: BoundarySet, pieces: FeatureTable) -> tuple[np.ndarray, np.ndarray]:
    """(piece index, transcript-direction offset) of each boundary inside each piece."""
    which, offset = [], []
    for chrom, idx in _group(pieces.chrom).items():
        pos = boundaries.starts.get(chrom, np.zeros(0, np.int64))
        lo = np.searchsorted(pos, pieces.start[idx])
        n = np.searchsorted(pos, pieces.end[idx]) - lo
        piece = np.repeat(idx, n)
        x = pos[np.repeat(lo, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)]
        minus = pieces.strand[piece] == "-"
        which.append(piece)
        offset.append(np.where(minus, pieces.end[piece] - 1 - x, x - pieces.start[piece]))
    if not which:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(which), np.concatenate(offset)


def codon_periodicity(boundaries: BoundarySet, features: FeatureTable, regions: Regions, rotations: int = 999,
                      seed: int = 0) -> dict:
    """Codon position (1/2/3, in the CDS frame, strand-aware) of the bases that start chunks.

    Uses coding pieces with a known phase (GFF/GTF CDS, GenBank simple CDS and
    CDS_part, BED12 thick blocks) lying wholly in the analysed regions. Reports
    counts, bases and rates per codon position for each strand and overall, a
    test against rates equal across positions, and the spectral power at period
    3 of the boundary indicator (pieces joined in frame, in transcript
    direction) over the mean power at the other periods (about 1 for no signal).

    The test's unit is the coding piece, not the boundary: boundaries of one
    gene share its frame, so a chi-square over pooled boundaries calls even a
    fixed every-3-bases grid "significant" (p ~ 1e-75 on L. kirschneri). The
    null rotates each piece's codon labels by a random 0/1/2 (`rotations` draws,
    seeded), which keeps that clustering; the statistic is the pooled chi-square.
    """
    pieces = _coding_pieces(features, _spaces(regions))
    length = pieces.end - pieces.start
    phase = pieces.phase.astype(np.int64)
    piece, offset = _hits_in_pieces(boundaries, pieces)
    codon_pos = (offset - phase[piece]) % 3
    bases = np.stack([np.maximum((length - (j + phase) % 3 + 2) // 3, 0) for j in range(3)], axis=1)
    out: dict = {"pieces": int(len(pieces))}
    for label, sel in (("+", pieces.strand == "+"), ("-", pieces.strand == "-"), ("all", np.ones(len(pieces), bool))):
        counts = np.bincount(codon_pos[sel[piece]], minlength=3)
        n_bases = bases[sel].sum(axis=0)
        out[label] = {"counts": counts.tolist(), "bases": n_bases.tolist(),
                      "rates": (counts / np.maximum(n_bases, 1)).tolist()}
    per_piece = np.zeros((len(pieces), 3), dtype=np.int64)
    np.add.at(per_piece, (piece, codon_pos), 1)
    out["rotation_p"] = _codon_rotation_p(per_piece, bases, rotations, seed)
    out["rotations"] = rotations
    out["period3_power_ratio"] = _period3_power_ratio(piece, offset, phase, length)
    return out


def _pooled_chi2(counts: np.ndarray, bases: np.ndarray) -> np.ndarray:
    """Chi-square of pooled counts (..., 3) against rates equal across codon positions."""
    expected = bases / np.maximum(bases.sum(-1, keepdims=True), 1) * counts.sum(-1, keepdims=True)
    return (((counts - expected) ** 2) / np.maximum(expected, 1e-12)).sum(-1)


def _codon_rotation_p(counts: np.ndarray, bases: np.ndarray, rotations: int, seed: int) -> float:
    """P-value of the pooled chi-square when each piece's codon labels are rotated at random.

    counts, bases: (pieces, 3). +1 corrected; nan without boundaries or pieces.
    """
    if counts.sum() == 0 or not (bases.sum(0) > 0).all() or rotations < 1:
        return float("nan")
    observed = _pooled_chi2(counts.sum(0), bases.sum(0))
    shifts = np.random.default_rng(seed).integers(0, 3, size=(rotations, len(counts)))
    pooled_counts = np.zeros((rotations, 3))
    pooled_bases = np.zeros((rotations, 3))
    for s in range(3):
        chosen = (shifts == s).astype(np.float64)
        pooled_counts += chosen @ np.roll(counts, s, axis=1)
        pooled_bases += chosen @ np.roll(bases, s, axis=1)
    null = _pooled_chi2(pooled_counts, pooled_bases)
    return float((1 + np.count_nonzero(null >= observed * (1 - 1e-12))) / (rotations + 1))


def _period3_power_ratio(piece: np.ndarray, offset: np.ndarray, phase: np.ndarray, length: np.ndarray) -> float:
    """Power at period 3 over the mean power at all other non-zero frequencies.

    The signal is the 0/1 boundary indicator over the coding pieces joined in
    frame (each trimmed to whole codons). Exact without an FFT: the period-3
    Fourier coefficient is the codon-position counts weighted by the cube roots
    of unity, and Parseval gives the total power of the mean-removed signal.
    """
    usable = np.maximum((length - phase) // 3 * 3, 0)
    n = int(usable.sum())
    t = offset - phase[piece]
    keep = (t >= 0) & (t < usable[piece])
    ones = int(keep.sum())
    if n <= 3 or ones == 0:
        return float("nan")
    counts = np.bincount(t[keep] % 3, minlength=3)
    p3 = abs(np.dot(counts, np.exp(-2j * np.pi * np.arange(3) / 3))) ** 2
    rest = (n * (ones - ones * ones / n) - 2 * p3) / (n - 3)  # each of k = n/3, 2n/3 carries p3
    return float(p3 / rest) if rest > 1e-9 * p3 else float("inf")  # inf: a perfectly period-3 signal


# ---------------------------------------------------------------- chunk lengths, selection rates


def _inside(pos: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Whether each position lies in the merged intervals (s, e)."""
    j = np.searchsorted(s, pos, side="right") - 1
    return (j >= 0) & (pos < e[np.maximum(j, 0)]) if s.size else np.zeros(pos.size, dtype=bool)


def chunk_lengths(boundaries: BoundarySet, features: FeatureTable) -> dict[str, np.ndarray]:
    """Chunk lengths per feature type (a chunk belongs to every type containing its start), plus `all`."""
    out = {"all": np.concatenate([boundaries.ends[c] - boundaries.starts[c] for c in boundaries.starts])}
    for ftype in features.types():
        table = features.of_type(ftype)
        parts = []
        for chrom, on in _group(table.chrom).items():
            if chrom not in boundaries.starts:
                continue
            pos = boundaries.starts[chrom]
            sel = _inside(pos, *merge_intervals(table.start[on], table.end[on]))
            parts.append(boundaries.ends[chrom][sel] - pos[sel])
        lengths = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if lengths.size:
            out[ftype] = lengths
    return out


def summarise_lengths(lengths: np.ndarray) -> dict:
    q25, median, q75 = np.percentile(lengths, [25, 50, 75]) if lengths.size else (np.nan,) * 3
    return {"n": int(lengths.size), "mean": float(lengths.mean()) if lengths.size else float("nan"),
            "median": float(median), "q25": float(q25), "q75": float(q75)}


def selection_regions(features: FeatureTable) -> dict[str, FeatureTable]:
    """The dnaHNet-style regions: promoter, start codon, CDS, stop codon, intergenic (by type role)."""
    roles = {t: feature_role(t) for t in features.types()}
    codons = derive_codon_sites(features)
    out = {}
    for name in SELECTION_REGIONS:
        if name in ("start_codon", "stop_codon"):
            table = codons.of_type(name)
        else:
            table = features.of_type(*[t for t, r in roles.items() if r == name])
        if len(table):
            out[name] = table
    return out


def selection_rates(boundaries: BoundarySet, features: FeatureTable, regions: Regions) -> dict[str, dict]:
    """Fraction of analysed positions that are boundaries, overall and per selection region."""
    spaces = _spaces(regions)
    counter = _ShiftCounter(boundaries, spaces, {})
    n_total = sum(s.size for s in spaces.values())
    out = {"all": {"bases": n_total, "boundaries": counter.total, "rate": counter.total / max(n_total, 1)}}
    for name, table in selection_regions(features).items():
        runs = _runs(_feature_intervals(table, "body", 0), spaces)
        bases, hits = _bases(runs), counter.observed(runs)
        if bases:
            out[name] = {"bases": bases, "boundaries": hits, "rate": hits / bases}
    return out


def conditional_selection_rates(upper: dict[str, dict], lower: dict[str, dict]) -> dict[str, dict]:
    """Per region, the share of stage-s boundaries that stage s+1 keeps (dnaHNet's stage-2 rates).

    A stage-2 chunk starts where a stage-1 chunk starts, so the stage-2 boundaries in a region
    are a subset of its stage-1 boundaries; `upper`/`lower` are `selection_rates` of the two stages.
    """
    out = {}
    for region, low in lower.items():
        up = upper.get(region, {"boundaries": 0})
        out[region] = {"parents": low["boundaries"], "boundaries": up["boundaries"],
                       "rate": up["boundaries"] / low["boundaries"] if low["boundaries"] else float("nan")}
    return out


# ---------------------------------------------------------------- profiles and p_t


def edge_anchors(features: FeatureTable, edge: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (chrom, edge position, strand) of the start or end edges of features."""
    minus = features.strand == "-"
    pos = np.where(minus, features.end, features.start) if edge == "start" else np.where(minus, features.start, features.end)
    keys = dict.fromkeys(zip(features.chrom.tolist(), pos.tolist(), np.where(minus, "-", "+").tolist()))
    if not keys:
        return np.zeros(0, object), np.zeros(0, np.int64), np.zeros(0, object)
    chrom, pos, strand = zip(*keys)
    return np.array(chrom, dtype=object), np.array(pos, dtype=np.int64), np.array(strand, dtype=object)


def edge_profile(
    boundaries: BoundarySet, anchors: tuple[np.ndarray, np.ndarray, np.ndarray], regions: Regions, flank: int = 100
) -> np.ndarray:
    """Boundary rate at each offset -flank..flank from the anchors, in transcript direction.

    Offset d is the break d bases downstream of the edge (upstream when negative);
    the rate at d is over anchors whose offset-d position is analysed.
    """
    d = np.arange(-flank, flank + 1)
    hits = np.zeros(d.size)
    seen = np.zeros(d.size)
    chroms, pos, strand = anchors
    for chrom, on in _group(chroms).items():
        if chrom not in regions:
            continue
        rs, re_ = regions[chrom]
        sign = np.where(strand[on] == "-", -1, 1)
        x = pos[on][:, None] + sign[:, None] * d[None, :]
        analysed = _inside(x.ravel(), rs, re_).reshape(x.shape)
        starts = boundaries.starts.get(chrom, np.zeros(0, np.int64))
        k = np.clip(np.searchsorted(starts, x), 0, max(starts.size - 1, 0))
        is_boundary = (starts[k] == x) if starts.size else np.zeros(x.shape, dtype=bool)
        hits += (is_boundary & analysed).sum(axis=0)
        seen += analysed.sum(axis=0)
    return np.divide(hits, seen, out=np.full(d.size, np.nan), where=seen > 0)


def _ranking(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Descending order of scores and the last index of each run of tied scores."""
    order = np.argsort(-scores)  # order within ties does not matter: only tie-group ends are read
    ranked = scores[order]
    return order, np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]


def auroc_auprc(order: np.ndarray, thresholds: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """AUROC and average precision for labels, given one `_ranking` of the scores.

    The same curves as sklearn's roc_auc_score and average_precision_score, but
    the scores are sorted once and reused for every label set.
    """
    tps = np.cumsum(labels[order])[thresholds].astype(np.float64)
    fps = thresholds + 1 - tps
    if tps[-1] == 0 or fps[-1] == 0:
        return float("nan"), float("nan")
    roc = auc(np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]])
    recall = tps / tps[-1]
    precision = tps / (tps + fps)
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return float(roc), ap


def _covered(sorted_pos: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each sorted position lies in the merged intervals, by a difference array."""
    lo = np.searchsorted(sorted_pos, starts)
    hi = np.searchsorted(sorted_pos, ends)
    n = sorted_pos.size + 1
    return np.cumsum(np.bincount(lo, minlength=n) - np.bincount(hi, minlength=n))[:-1] > 0


def _expand(track: BedGraph, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-base (positions, values) of some bedGraph rows, NaN values dropped, sorted by position."""
    rows = rows[~np.isnan(track.value[rows])]
    rows = rows[np.argsort(track.start[rows], kind="stable")]
    lengths = track.end[rows] - track.start[rows]
    first = np.cumsum(lengths) - lengths
    pos = np.repeat(track.start[rows], lengths) + np.arange(lengths.sum()) - np.repeat(first, lengths)
    return pos, np.repeat(track.value[rows], lengths)


def edge_auc(probs: BedGraph, features: FeatureTable, window: int = 5) -> list[dict]:
    """How well p_t separates positions within ±window of feature edges from the rest (per type, edge)."""
    spans, positions, values = {}, [], []
    offset = 0
    for chrom, rows in _group(probs.chrom).items():
        pos, val = _expand(probs, rows)
        spans[chrom] = slice(offset, offset + pos.size)
        positions.append(pos)
        values.append(val)
        offset += pos.size
    pos = np.concatenate(positions)
    order, thresholds = _ranking(np.concatenate(values))
    rows = []
    for ftype in features.types():
        table = features.of_type(ftype)
        for edge in ("start", "end"):
            labels = np.zeros(pos.size, dtype=bool)
            for c, (s, e) in _feature_intervals(table, edge, window).items():
                if c in spans:
                    labels[spans[c]] = _covered(pos[spans[c]], *merge_intervals(s, e))
            if labels.any() and not labels.all():
                roc, ap = auroc_auprc(order, thresholds, labels)
                rows.append({"feature": ftype, "edge": edge, "window": window, "positives": int(labels.sum()),
                             "positions": int(pos.size), "auroc": roc, "auprc": ap,
                             "auprc_baseline": float(labels.mean())})
    return rows


# ---------------------------------------------------------------- everything at once


def sequence_axis(genome_fasta, regions: Regions) -> SequenceAxis:
    """The k-mer context of every analysed position, read from the genome the boundaries were called on."""
    return SequenceAxis.from_fasta(genome_fasta, _spaces(regions))


def context_models(learned: Sequence[BoundarySet], regions: Regions, axis: SequenceAxis, seed: int = 0,
                   context_k: int | None = None) -> dict[str, dict]:
    """Per learned stage: held-out predictability (k = 1..8), the chosen order and the fitted context model."""
    spaces = _spaces(regions)
    out = {}
    for bset in learned:
        flags = axis.flags(bset.starts, spaces)
        curve = predictability(axis, flags, seed)
        choice = choose_order(curve, axis.size, context_k)
        out[bset.name] = {"curve": curve, "choice": choice, "flags": flags,
                          "model": ContextModel.fit(axis, flags, choice.k)}
    return out


def assign_qvalues(rows: list[dict], extra: Sequence[dict] = ()) -> int:
    """Benjamini-Hochberg q over every p of the report (each null of each row, plus `extra` rows' `p`); returns the test count.

    Writes `<null>_q` next to each `<null>_p` (shift, grid, context) and `q` into the extra rows.
    """
    slots = [(row, key) for row in rows for key in ("shift_p", "grid_p", "context_p") if key in row]
    slots += [(row, "p") for row in extra if "p" in row]
    q = bh_qvalues([row[key] for row, key in slots])
    for (row, key), value in zip(slots, q):
        row[key[:-1] + "q"] = float(value)
    return int(np.isfinite(q).sum())


def analyse_boundaries(
    boundary_sets: Iterable[BoundarySet],
    features: FeatureTable,
    regions: Regions,
    window: int = 5,
    permutations: int = 200,
    seed: int = 0,
    probs: BedGraph | None = None,
    sequence: SequenceAxis | None = None,
    context_k: int | None = None,
    bootstrap: int = BOOTSTRAP,
) -> dict:
    """All statistics for learned stages and their fixed-grid controls.

    Returns {"stages": [{name, boundaries, compression, grid_k, grid}], "enrichment":
    rows, "codon": {set: ...}, "chunk_lengths": {set: {type: lengths}},
    "selection": {set: ...}, "auc": rows, "context": {stage: ...}, "start_codons":
    {stage: ...}, "tests": n}; grid sets are named `<stage>_grid<k>`. With `sequence`
    (the analysed regions' bases) every learned stage gets the sequence-context null,
    its predictability curve and the start-ATG control; `context_k` asks for an order.
    """
    learned = list(boundary_sets)
    stages, sets, controls = [], [], {}
    for bset in learned:
        comp = realised_compression(bset, regions)
        k = max(1, int(round(comp)))
        grid = grid_boundaries(regions, k, f"{bset.name}_grid{k}")
        stages.append({"name": bset.name, "boundaries": bset.count(), "compression": comp, "grid_k": k, "grid": grid.name})
        sets += [bset, grid]
        controls[bset.name] = grid
    selection = {b.name: selection_rates(b, features, regions) for b in sets}
    for lower, upper in zip(learned, learned[1:]):  # nested stages: the share of the lower stage's boundaries kept
        selection[f"{upper.name} of {lower.name}"] = conditional_selection_rates(selection[upper.name], selection[lower.name])
    context = context_models(learned, regions, sequence, seed, context_k) if sequence is not None else {}
    for stage in stages:
        if stage["name"] in context:
            choice = context[stage["name"]]["choice"]
            stage.update({"context_k": choice.k, "context_k_supported": choice.supported, "context_note": choice.note})
    enrichment = edge_enrichment(sets, features, regions, window, permutations, seed, controls,
                                 {name: c["model"] for name, c in context.items()}, bootstrap)
    starts = {}
    if sequence is not None and len(derive_codon_sites(features).of_type("start_codon")):
        spaces = _spaces(regions)
        starts = {name: start_codon_control(c["flags"], features, sequence, spaces, seed, bootstrap)
                  for name, c in context.items()}
    tests = assign_qvalues(enrichment, [row for s in starts.values() for row in s["strands"].values()])
    return {
        "stages": stages,
        "analysed_bases": analysed_bases(regions),
        "enrichment": enrichment,
        "codon": {b.name: codon_periodicity(b, features, regions, seed=seed) for b in sets},
        "chunk_lengths": {b.name: chunk_lengths(b, features) for b in sets},
        "selection": selection,
        "auc": edge_auc(probs, features, window) if probs is not None and len(probs) else [],
        "context": {name: {"curve": c["curve"], "k": c["choice"].k, "supported": c["choice"].supported,
                           "requested": c["choice"].requested, "note": c["choice"].note} for name, c in context.items()},
        "start_codons": starts,
        "tests": tests,
        "bootstrap": bootstrap,
        "sets": {b.name: b for b in sets},
    }
