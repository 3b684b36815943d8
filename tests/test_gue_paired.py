"""Paired AUROC differences: the comparison the GUE report draws between models on the same test set."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from dnahnet.finetune.metrics import paired_auroc_difference
from dnahnet_pipelines.gue import render_paired


def _data(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(float)
    good = y + rng.normal(0, 0.7, n)
    weak = y + rng.normal(0, 3.0, n)
    return y, good, weak


def test_point_difference_is_the_difference_of_sklearn_aurocs():
    y, good, weak = _data()
    metric, boots = paired_auroc_difference(y, good, weak, n_boot=200, seed=1)
    assert metric.value == __import__("pytest").approx(roc_auc_score(y, good) - roc_auc_score(y, weak), abs=1e-12)
    assert boots.shape == (200,)
    assert metric.low > 0  # a clearly better scorer is detected
    assert metric.low <= metric.value <= metric.high


def test_identical_scores_differ_by_exactly_zero_and_pairing_narrows_the_interval():
    y, good, weak = _data()
    same, _ = paired_auroc_difference(y, good, good, n_boot=200)
    assert same.value == 0 and same.low == 0 and same.high == 0
    # two nearly identical scorers: the paired interval is far narrower than either model's own interval
    nudged = good + np.random.default_rng(3).normal(0, 0.01, len(y))
    close, _ = paired_auroc_difference(y, good, nudged, n_boot=200)
    assert close.high - close.low < 0.01


def test_report_says_no_detectable_difference_when_the_pooled_interval_holds_zero():
    paired = [{"a": "ck/h|probe", "b": "ck/t|probe", "per_task": {"t1": {"value": 0.01, "low": -0.02, "high": 0.04}},
               "pooled": {"value": 0.01, "low": -0.02, "high": 0.04, "tasks": 1}},
              {"a": "ck/h|probe", "b": "k-mer", "per_task": {"t1": {"value": -0.05, "low": -0.08, "high": -0.02}},
               "pooled": {"value": -0.05, "low": -0.08, "high": -0.02, "tasks": 1}}]
    text = "\n".join(render_paired(paired))
    rows = [line for line in text.splitlines() if line.startswith("| h probe |")]
    assert "no detectable difference" in rows[0] and "| 0 / 0 |" in rows[0]
    assert "B higher" in rows[1] and "| 0 / 1 |" in rows[1]
