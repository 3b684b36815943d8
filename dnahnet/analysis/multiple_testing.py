"""P-values, their floors, Benjamini-Hochberg q-values and bootstrap fold intervals for boundary reports."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import false_discovery_control

BOOTSTRAP = 1_000
LEVEL = 0.95
MIN_UNITS = 10  # fewer features than this: no bootstrap interval (resampling 1-9 units says little)
MIN_EXPECTED = 5.0  # fewer boundaries expected than this: no interval (a percentile interval of near-empty counts is [0, 0])


def empirical_p(null: np.ndarray, observed: float) -> tuple[float, float, float]:
    """One-sided (enriched, depleted) and two-sided empirical p-values, +1 corrected.

    The two-sided p is twice the smaller one-sided p, capped at 1; its floor is 2/(n+1).
    """
    n = null.size
    up = (1 + int((null >= observed).sum())) / (n + 1)
    down = (1 + int((null <= observed).sum())) / (n + 1)
    return up, down, min(1.0, 2 * min(up, down))


def two_sided_floor(draws: int) -> float:
    """Smallest two-sided p that `draws` null draws can give."""
    return min(1.0, 2 / (draws + 1))


def bh_qvalues(p: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg q-values (adjusted p) over every finite p; NaN stays NaN and is not counted as a test."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = false_discovery_control(p[ok], method="bh")
    return q


def bootstrap_folds(observed: np.ndarray, expected: Sequence[np.ndarray], rng: np.random.Generator,
                    n: int = BOOTSTRAP) -> list[np.ndarray]:
    """Fold = sum(observed) / sum(expected) over `n` resamples of the units (features), one array per expectation.

    All NaN with fewer than MIN_UNITS units, so no interval (and no bootstrap p) is read from a handful of features.

    The same resamples serve every expectation, so the intervals of the nulls are paired.
    """
    units = observed.size
    out = [np.full(n, np.nan) for _ in expected]
    if units < MIN_UNITS:
        return out
    step = max(1, 4_000_000 // units)
    for lo in range(0, n, step):
        m = min(step, n - lo)
        draws = rng.integers(0, units, size=(m, units)) + units * np.arange(m)[:, None]
        weights = np.bincount(draws.ravel(), minlength=m * units).reshape(m, units).astype(np.float64)
        obs = weights @ np.asarray(observed, np.float64)
        for arr, exp in zip(out, expected):
            den = weights @ np.asarray(exp, np.float64)
            arr[lo : lo + m] = np.divide(obs, den, out=np.full(m, np.nan), where=den > 0)
    return out


def interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap samples (NaN when fewer than half are finite)."""
    ok = samples[np.isfinite(samples)]
    if ok.size < max(1, samples.size // 2):
        return float("nan"), float("nan")
    lo, hi = np.percentile(ok, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def bootstrap_p(samples: np.ndarray) -> float:
    """Two-sided p for fold = 1 from bootstrap folds (twice the smaller tail, +1 corrected); NaN without samples."""
    ok = samples[np.isfinite(samples)]
    if ok.size == 0:
        return float("nan")
    below = (1 + int((ok <= 1).sum())) / (ok.size + 1)
    above = (1 + int((ok >= 1).sum())) / (ok.size + 1)
    return min(1.0, 2 * min(below, above))
