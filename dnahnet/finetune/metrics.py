"""Held-out metrics with percentile-bootstrap 95% intervals.

Classification (binary, scores = P(label 1)): AUROC, AUPRC (average precision),
MCC and accuracy (both at threshold 0.5). Regression: Spearman, Pearson, R².
Intervals resample the examples with replacement (`n_boot` times, seeded); a
resample where a metric is undefined (one class only, constant values) is skipped.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import r2_score

N_BOOT = 1000
HEADLINE = {"classify": "auroc", "regress": "spearman"}


@dataclass
class Metric:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _groups(scores: np.ndarray, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """(order that sorts the scores, tie-group id of each sorted position)."""
    order = np.argsort(-scores if descending else scores, kind="stable")
    s = scores[order]
    group = np.concatenate([[0], np.cumsum(s[1:] != s[:-1])])
    return order, group


def _group_sums(w: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum weights (B, n) over runs of equal (sorted) group ids -> (B, n_groups)."""
    starts = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]])) if len(group) else np.zeros(0, np.int64)
    return np.add.reduceat(w, starts, axis=1) if len(starts) else np.zeros((w.shape[0], 0))


def classification_table(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """AUROC, AUPRC (average precision), MCC and accuracy (threshold 0.5) for each row of example weights (B, n).

    Weights are bootstrap counts (a row of ones is the data itself); ties count half in
    AUROC and as one threshold in AUPRC, as in scikit-learn.
    """
    pos, neg = weights * (y == 1), weights * (y == 0)
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    order, group = _groups(p, descending=False)
    g = int(group[-1]) + 1 if len(group) else 0
    gp, gn = _group_sums(pos[:, order], group, g), _group_sums(neg[:, order], group, g)
    below = np.cumsum(gn, axis=1) - gn
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = (gp * (below + 0.5 * gn)).sum(1) / (n_pos * n_neg)
        # Average precision: thresholds from the highest score down.
        tp, fp = np.cumsum(gp[:, ::-1], axis=1), np.cumsum(gn[:, ::-1], axis=1)
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        auprc = (gp[:, ::-1] * precision).sum(1) / n_pos
        hit = p >= 0.5
        tp1, fp1 = (pos * hit).sum(1), (neg * hit).sum(1)
        fn1, tn1 = n_pos - tp1, n_neg - fp1
        denom = np.sqrt((tp1 + fp1) * (tp1 + fn1) * (tn1 + fp1) * (tn1 + fn1))
        mcc = np.where(denom > 0, (tp1 * tn1 - fp1 * fn1) / np.where(denom > 0, denom, 1), 0.0)
        accuracy = (tp1 + tn1) / (n_pos + n_neg)
    undefined = (n_pos == 0) | (n_neg == 0)
    return {"auroc": np.where(undefined, np.nan, auroc), "auprc": np.where(n_pos == 0, np.nan, auprc),
            "mcc": mcc, "accuracy": accuracy}


def regression_table(y: np.ndarray, p: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
    """Spearman, Pearson and R² for each row of example indices (B, n)."""
    out: dict[str, list[float]] = {"spearman": [], "pearson": [], "r2": []}
    for idx in index:
        a, b = y[idx], p[idx]
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            out["spearman"].append(np.nan)
            out["pearson"].append(np.nan)
            out["r2"].append(np.nan if np.ptp(a) == 0 else float(r2_score(a, b)))
            continue
        out["spearman"].append(float(stats.spearmanr(a, b).statistic))
        out["pearson"].append(float(stats.pearsonr(a, b).statistic))
        out["r2"].append(float(r2_score(a, b)))
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def evaluate(task: str, y: np.ndarray, p: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Metric]:
    """Every metric of `task` with its bootstrap 95% interval (NaN when undefined on the data)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    n = len(y)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(n_boot, n)) if n else np.zeros((0, 0), np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task == "classify":
            point = classification_table(y, p, np.ones((1, n)))
            counts = np.stack([np.bincount(row, minlength=n) for row in index]).astype(np.float64) if n_boot else None
            boots = classification_table(y, p, counts) if n_boot else {k: np.zeros(0) for k in point}
        else:
            point = regression_table(y, p, np.arange(n)[None])
            boots = regression_table(y, p, index)
    out = {}
    for name, value in point.items():
        b = boots[name][np.isfinite(boots[name])]
        low, high = np.percentile(b, [2.5, 97.5]) if len(b) else (math.nan, math.nan)
        out[name] = Metric(float(value[0]), float(low), float(high))
    return out


def paired_auroc_difference(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, n_boot: int = N_BOOT,
                            seed: int = 0) -> tuple[Metric, np.ndarray]:
    """AUROC(a) - AUROC(b) on the same examples, 95% interval from a paired bootstrap.

    Both scores are resampled with the same example counts, so the interval reflects how the
    two models differ on these examples rather than the sum of their separate uncertainties.
    Returns the metric and the bootstrap differences (to pool several tasks replicate by replicate).
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)]).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = (classification_table(y, np.asarray(p_a, np.float64), np.ones((1, n)))["auroc"]
                 - classification_table(y, np.asarray(p_b, np.float64), np.ones((1, n)))["auroc"])[0]
        boots = (classification_table(y, np.asarray(p_a, np.float64), counts)["auroc"]
                 - classification_table(y, np.asarray(p_b, np.float64), counts)["auroc"])
    ok = boots[np.isfinite(boots)]
    low, high = np.percentile(ok, [2.5, 97.5]) if len(ok) else (math.nan, math.nan)
    return Metric(float(point), float(low), float(high)), boots


def as_dict(metrics: dict[str, Metric]) -> dict[str, dict[str, float]]:
    return {k: m.as_dict() for k, m in metrics.items()}


def summary(metrics: dict[str, Metric]) -> str:
    return ", ".join(f"{k} {m}" for k, m in metrics.items())
