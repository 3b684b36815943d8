"""Zero-shot evaluation statistics: scikit-learn's ROC and scipy's Spearman, with the NaN rules reports need.

Non-finite scores are dropped pair-wise; a statistic that is undefined (one class,
fewer than three pairs, a constant input) is NaN instead of a warning.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as _sk_roc_curve


def _finite_labelled(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Labels and scores where the score is finite, and whether both classes remain."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    keep = np.isfinite(s)
    y, s = y[keep], s[keep]
    return y, s, bool(y.any() and not y.all())


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN without both classes."""
    y, s, both = _finite_labelled(labels, scores)
    return float(roc_auc_score(y, s)) if both else float("nan")


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) from (0, 0), thresholds from high to low, ties taken
    together; NaN without both classes."""
    y, s, both = _finite_labelled(labels, scores)
    if not both:
        return np.array([np.nan]), np.array([np.nan])
    fpr, tpr, _ = _sk_roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho over pairs where both are finite; NaN with fewer than 3 pairs or a constant side."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3:
        return float("nan")
    with warnings.catch_warnings():  # a constant input: scipy warns and returns NaN, which is the answer
        warnings.simplefilter("ignore")
        return float(spearmanr(x[keep], y[keep]).statistic)


def partial_spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Spearman correlation of x and y given z: (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)) on ranks."""
    x, y, z = (np.asarray(a, dtype=np.float64) for a in (x, y, z))
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    x, y, z = x[keep], y[keep], z[keep]
    rxy, rxz, ryz = spearman(x, y), spearman(x, z), spearman(y, z)
    if np.isnan(rxz) or np.isnan(ryz):
        return rxy  # a constant covariate explains nothing
    denom = np.sqrt((1 - rxz**2) * (1 - ryz**2))
    return float((rxy - rxz * ryz) / denom) if denom > 0 else float("nan")
