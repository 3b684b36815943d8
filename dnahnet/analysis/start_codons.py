"""Start-codon control: are annotated start ATGs selected more than ATGs that start nothing?

A router that cuts at ATG wherever it occurs shows a high start-codon selection
rate without knowing anything about genes. The control compares, per strand
and pooled, the boundary rate over the three codon bases (the selection-rate
table's measure) at annotated start codons that read ATG with the same rate at
every other ATG (CAT on the reverse strand) in the analysed regions. Unit = one
codon (0-3 boundaries); the ratio of mean rates gets a bootstrap interval over
codons of both groups and a two-sided Mann-Whitney p.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy.stats import mannwhitneyu

from dnahnet.analysis.annotations import derive_codon_sites
from dnahnet.analysis.context_null import SequenceAxis
from dnahnet.analysis.multiple_testing import BOOTSTRAP, interval
from dnahnet.io.annotations import FeatureTable

_ATG = (0, 3, 2)  # A, T, G in SequenceAxis codes (A0 C1 G2 T3)
_CAT = (1, 0, 3)


def _codon_starts(axis: SequenceAxis, codon: tuple[int, int, int]) -> np.ndarray:
    """Axis positions p where bases p, p+1, p+2 spell `codon` inside one region (clean context at p+2)."""
    base = axis.code & 3  # the base at each position
    n = axis.size
    if n < 3:
        return np.zeros(0, np.int64)
    hit = (base[:-2] == codon[0]) & (base[1:-1] == codon[1]) & (base[2:] == codon[2]) & (axis.clean[2:] >= 3)
    return np.flatnonzero(hit)


def _annotated(features: FeatureTable, axis: SequenceAxis, spaces: Mapping, strand: str) -> np.ndarray:
    """Axis positions of the first (leftmost) base of annotated start codons on `strand` wholly inside the regions."""
    codons = derive_codon_sites(features).of_type("start_codon")
    out = []
    for chrom in dict.fromkeys(codons.chrom.tolist()):
        if chrom not in spaces:
            continue
        on = (codons.chrom == chrom) & (codons.strand == strand)
        s = codons.start[on]
        j, inside = spaces[chrom].region_of(s)
        j2, inside2 = spaces[chrom].region_of(s + 2)
        ok = inside & inside2 & (j == j2)
        out.append(axis.offsets[chrom] + spaces[chrom].coords(s[ok]))
    return np.unique(np.concatenate(out)) if out else np.zeros(0, np.int64)


def _resampled_means(values: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Means of `n` bootstrap resamples of per-codon counts (values 0..3), drawn as multinomial counts."""
    freq = np.bincount(values, minlength=4)[:4] / values.size
    return rng.multinomial(values.size, freq, size=n) @ np.arange(4) / values.size


def _ratio_interval(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n: int) -> tuple[float, float]:
    means_a, means_b = _resampled_means(a, rng, n), _resampled_means(b, rng, n)
    return interval(np.divide(means_a, means_b, out=np.full(n, np.nan), where=means_b > 0))


def start_codon_control(boundaries_flags: np.ndarray, features: FeatureTable, axis: SequenceAxis, spaces: Mapping,
                        seed: int = 0, bootstrap: int = BOOTSTRAP) -> dict:
    """Rates at annotated start ATGs vs all other ATGs, per strand and pooled.

    `boundaries_flags` is the set's boundary indicator on `axis`. Annotated start
    codons that do not read ATG are counted (`not_atg`) and left out.
    """
    rng = np.random.default_rng([seed, 3])
    flags = boundaries_flags.astype(np.int64)
    per_codon = flags[:-2] + flags[1:-1] + flags[2:] if axis.size >= 3 else np.zeros(0, np.int64)
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    not_atg = 0
    for strand, codon in (("+", _ATG), ("-", _CAT)):
        every = _codon_starts(axis, codon)
        annotated = _annotated(features, axis, spaces, strand)
        is_codon = np.isin(annotated, every)
        not_atg += int((~is_codon).sum())
        annotated = annotated[is_codon]
        groups[strand] = (per_codon[annotated], per_codon[np.setdiff1d(every, annotated)])
    groups["both"] = tuple(np.concatenate([groups["+"][i], groups["-"][i]]) for i in range(2))
    out = {"not_atg": not_atg, "strands": {}}
    for label, (ann, other) in groups.items():
        row = {"annotated": int(ann.size), "other": int(other.size),
               "rate_annotated": float(ann.mean() / 3) if ann.size else float("nan"),
               "rate_other": float(other.mean() / 3) if other.size else float("nan")}
        if ann.size >= 2 and other.size >= 2 and other.sum() > 0:
            row["ratio"] = row["rate_annotated"] / row["rate_other"]
            row["ratio_lo"], row["ratio_hi"] = _ratio_interval(ann, other, rng, bootstrap)
            row["p"] = float(mannwhitneyu(ann, other, alternative="two-sided").pvalue)
        else:
            row.update({"ratio": float("nan"), "ratio_lo": float("nan"), "ratio_hi": float("nan"), "p": float("nan")})
        out["strands"][label] = row
    return out
