"""Data-efficiency multipliers and their uncertainty, as pure functions of loss curves.

A comparison evaluates every (model, seed) on the same held-out windows at the
same points of bases seen; the raw material is, per model, an array of bits
summed over each window's scored bases, shape (seeds, points, windows), and
the windows' scored-base counts. Everything here works on those arrays, so the
statistics can be checked on synthetic curves in milliseconds.

Multiplier at a readout point R (bases seen), read as in the H-Net paper: each
curve is restricted to points <= R and smoothed to be non-increasing (isotonic
regression), then
- H-Net at or below the baseline at R: m = R / (bases the H-Net needs to reach
  the baseline's loss at R);
- H-Net above: m = (bases the baseline needs to reach the H-Net's loss at R) / R,
  so m < 1 says the H-Net is the less data-efficient one.
Crossings are linear interpolations in log(bases). When the crossing lies before
the first evaluated point, m is only bounded (reported as >= or <=).

Interval (95% by default) of a statistic theta computed on the seed-averaged
curves (log m for a multiplier, bits per base for a loss):
- windows: bootstrap over held-out windows with the seeds fixed, the same
  resampled windows for every model and point (the comparison is paired);
  variance V_w of the replicates;
- seeds: jackknife over seeds (leave one seed out of the average), variance V_s,
  which carries init and data-order variation that no window resampling sees;
- theta +/- t * sqrt(V_w + V_s), Student t with Satterthwaite degrees of
  freedom (S - 1) * (V_w + V_s)^2 / V_s^2, so three seeds give wide intervals,
  as they should. A percentile bootstrap over three seeds covers ~75%, not 95%.
With one seed there is no seed variance to estimate: no interval ("one seed: none").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.optimize import isotonic_regression

ONE_SEED = "one seed: none"


@dataclass
class Estimate:
    """A point estimate with its interval (None with one seed) and, for multipliers, a bound flag."""

    value: float
    low: float | None = None
    high: float | None = None
    bound: str = ""  # ">=" or "<=" when the crossing lies before the first evaluated point
    seeds: int = 1

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def contains(self, x: float) -> bool:
        return self.has_interval and self.low <= x <= self.high  # type: ignore[operator]

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "bound": self.bound, "seeds": self.seeds,
                "interval": None if self.has_interval else ONE_SEED}


# ----- curves -----------------------------------------------------------------------------------------
def monotone(losses: np.ndarray) -> np.ndarray:
    """The closest non-increasing curve (least squares): one noisy dip cannot fake an early crossing."""
    losses = np.asarray(losses, dtype=float)
    if len(losses) < 2:
        return losses.copy()
    return np.asarray(isotonic_regression(losses, increasing=False).x)


def bases_to_reach(bases, losses, target: float) -> float | None:
    """First point where the curve reaches `target`, linearly interpolated in log(bases); None if never."""
    for i, loss in enumerate(losses):
        if loss <= target:
            if i == 0:
                return float(bases[0])
            b0, b1, l0, l1 = math.log(bases[i - 1]), math.log(bases[i]), losses[i - 1], losses[i]
            frac = 0.0 if l0 == l1 else (l0 - target) / (l0 - l1)
            return math.exp(b0 + frac * (b1 - b0))
    return None


def readout_multiplier(bases, hnet_losses, base_losses, readout: float) -> tuple[float, str]:
    """(multiplier, bound) of an H-Net against a baseline at `readout` bases (module docstring).

    Both curves are given on the same `bases` grid; points after `readout` are ignored.
    """
    bases = np.asarray(bases, dtype=float)
    keep = bases <= readout * (1 + 1e-9)
    if keep.sum() < 1 or not math.isclose(bases[keep][-1], readout, rel_tol=1e-9):
        raise ValueError(f"readout {readout} is not one of the evaluated points")
    b = bases[keep]
    h = monotone(np.asarray(hnet_losses, dtype=float)[keep])
    s = monotone(np.asarray(base_losses, dtype=float)[keep])
    if h[-1] <= s[-1]:
        need = bases_to_reach(b, h, s[-1])
        assert need is not None  # h reaches s[-1] at the readout at the latest
        return readout / need, (">=" if need <= b[0] and h[0] < s[-1] else "")
    need = bases_to_reach(b, s, h[-1])
    assert need is not None
    return need / readout, ("<=" if need <= b[0] and s[0] < h[-1] else "")


# ----- intervals --------------------------------------------------------------------------------------
def bootstrap_weights(n_windows: int, replicates: int, seed: int = 0) -> np.ndarray:
    """(replicates, windows) resampling counts: window i drawn w[r, i] times in replicate r."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_windows, np.full(n_windows, 1.0 / n_windows), size=replicates).astype(float)


def _combine(theta: float, window_reps: np.ndarray, jack: np.ndarray | None, level: float) -> tuple[float, float] | None:
    """theta +/- t * sqrt(V_w + V_s) (module docstring); None without a seed jackknife (one seed)."""
    if jack is None:
        return None
    s = len(jack)
    v_w = float(np.var(window_reps, ddof=1)) if len(window_reps) > 1 else 0.0
    v_s = (s - 1) / s * float(np.sum((jack - jack.mean()) ** 2))
    total = v_w + v_s
    if total == 0:
        return theta, theta
    df = math.inf if v_s == 0 else (s - 1) * total**2 / v_s**2
    t = stats.norm.ppf(0.5 + level / 2) if math.isinf(df) else stats.t.ppf(0.5 + level / 2, df)
    half = t * math.sqrt(total)
    return theta - half, theta + half


def _curves(sums: np.ndarray, counts: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Bits per base per (seed, point) — or (replicate, seed, point) under window weights."""
    if weights is None:
        return sums.sum(-1) / counts.sum()
    return np.einsum("spw,rw->rsp", sums, weights) / (weights @ counts)[:, None, None]


def loss_estimate(sums: np.ndarray, counts: np.ndarray, point: int, *, weights: np.ndarray, level: float = 0.95,
                  reference: np.ndarray | None = None) -> Estimate:
    """Seed-mean bits per base at `point` (minus a seedless `reference` per-window sum array if given)."""
    sums = np.asarray(sums, dtype=float)[:, point : point + 1, :]
    counts = np.asarray(counts, dtype=float)
    if reference is not None:
        sums = sums - np.asarray(reference, dtype=float)[None, None, :]
    per_seed = _curves(sums, counts)[:, 0]
    theta = float(per_seed.mean())
    reps = _curves(sums, counts, weights)[:, :, 0].mean(axis=1)
    s = len(per_seed)
    jack = None if s < 2 else np.array([np.delete(per_seed, i).mean() for i in range(s)])
    ci = _combine(theta, reps, jack, level)
    return Estimate(theta, *(ci or (None, None)), seeds=s)


def multiplier_estimate(bases, hnet_sums: np.ndarray, base_sums: np.ndarray, counts: np.ndarray, readout: float,
                        *, weights: np.ndarray, level: float = 0.95) -> Estimate:
    """Multiplier at `readout` on seed-averaged curves, with the interval of the module docstring.

    `hnet_sums` and `base_sums` are (seeds, points, windows); seed i of both saw the same data order.
    """
    hnet_sums, base_sums = np.asarray(hnet_sums, dtype=float), np.asarray(base_sums, dtype=float)
    if hnet_sums.shape != base_sums.shape:
        raise ValueError(f"curves differ in shape: {hnet_sums.shape} vs {base_sums.shape}")
    counts = np.asarray(counts, dtype=float)
    h, b = _curves(hnet_sums, counts), _curves(base_sums, counts)  # (S, P)
    value, bound = readout_multiplier(bases, h.mean(0), b.mean(0), readout)
    theta = math.log(value)
    hr, br = _curves(hnet_sums, counts, weights).mean(1), _curves(base_sums, counts, weights).mean(1)  # (R, P)
    reps = np.array([math.log(readout_multiplier(bases, x, y, readout)[0]) for x, y in zip(hr, br)])
    s = h.shape[0]
    jack = None
    if s >= 2:
        idx = np.arange(s)
        jack = np.array([math.log(readout_multiplier(bases, h[idx != i].mean(0), b[idx != i].mean(0), readout)[0])
                         for i in range(s)])
    ci = _combine(theta, reps, jack, level)
    if ci is None:
        return Estimate(value, bound=bound, seeds=s)
    return Estimate(value, math.exp(ci[0]), math.exp(ci[1]), bound=bound, seeds=s)


def describe_multiplier(est: Estimate) -> str:
    """'3.10x [1.20, 8.00]', '>= 5.00x ...', or '1.10x (one seed: none)'; plus a verdict when the interval allows."""
    text = f"{est.bound + ' ' if est.bound else ''}{est.value:.2f}x"
    if not est.has_interval:
        return f"{text} ({ONE_SEED})"
    text += f" [{est.low:.2f}, {est.high:.2f}]"
    if est.contains(1.0):
        text += " no detectable difference"
    return text


def describe_loss(est: Estimate, digits: int = 4, signed: bool = False) -> str:
    """'1.9012 ± 0.0040' style: the estimate with its interval, or the one-seed note."""
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    if not est.has_interval:
        return f"{fmt.format(est.value)} ({ONE_SEED})"
    return f"{fmt.format(est.value)} [{fmt.format(est.low)}, {fmt.format(est.high)}]"
