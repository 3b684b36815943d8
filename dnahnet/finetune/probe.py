"""Linear probes on frozen pooled embeddings (scikit-learn), kept as plain arrays.

Features are standardised on the training set; the regularisation strength is
chosen on the dev set (logistic regression: C by dev AUROC, with balanced class
weights when the classes are unbalanced; ridge: alpha by dev R²). The fitted
model is stored as arrays (mean, scale, coef, intercept), not as a pickle, and
predicted with numpy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score, roc_auc_score

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
ALPHA_GRID = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
UNBALANCED = 0.1  # minority share below 0.5 - this: balanced class weights


@dataclass
class LinearProbe:
    """y = link(((x - mean) / scale) @ coef + intercept); link = sigmoid (classify) or identity (regress)."""

    task: str
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    strength: float  # the chosen C (logistic) or alpha (ridge)

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z)) if self.task == "classify" else z

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale, "coef": self.coef,
                "intercept": np.array([self.intercept]), "strength": np.array([self.strength])}

    @classmethod
    def from_arrays(cls, task: str, a: dict[str, np.ndarray]) -> "LinearProbe":
        return cls(task, a["mean"].astype(np.float64), a["scale"].astype(np.float64), a["coef"].astype(np.float64),
                   float(a["intercept"][0]), float(a["strength"][0]))


def class_weight(y: np.ndarray) -> str | None:
    share = float(np.mean(y))
    return "balanced" if min(share, 1 - share) < 0.5 - UNBALANCED else None


def fit_probe(task: str, x_train: np.ndarray, y_train: np.ndarray, x_dev: np.ndarray, y_dev: np.ndarray,
              seed: int = 0) -> tuple[LinearProbe, dict[float, float]]:
    """Fit on train for each strength in the grid; keep the best on dev. Returns (probe, dev score per strength)."""
    x_train = np.asarray(x_train, np.float64)
    mean = x_train.mean(0)
    scale = x_train.std(0)
    scale[~(scale > 1e-12)] = 1.0
    xt = (x_train - mean) / scale
    xd = (np.asarray(x_dev, np.float64) - mean) / scale
    scores: dict[float, float] = {}
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at the weakest regularisation
        for strength in (C_GRID if task == "classify" else ALPHA_GRID):
            if task == "classify":
                model = LogisticRegression(C=strength, class_weight=class_weight(y_train), max_iter=2000, random_state=seed)
                model.fit(xt, y_train.astype(int))
                score = float(roc_auc_score(y_dev, model.decision_function(xd))) if 0 < y_dev.sum() < len(y_dev) else 0.0
                coef, intercept = model.coef_[0], float(model.intercept_[0])
            else:
                model = Ridge(alpha=strength, random_state=seed)
                model.fit(xt, y_train)
                score = float(r2_score(y_dev, model.predict(xd)))
                coef, intercept = model.coef_, float(model.intercept_)
            scores[strength] = score
            if best is None or score > best[0]:
                best = (score, LinearProbe(task, mean, scale, np.asarray(coef, np.float64), intercept, strength))
    return best[1], scores
