"""Compute scaling: held-out loss against training FLOPs per family, read off the measured points.

Each family (H-Net 1-stage, H-Net 2-stage, isotropic Transformer, isotropic
Mamba-2) is trained at several sizes on the same data (same windows, same order).
Each size trains once to the largest compute budget and is evaluated when its
training FLOPs pass each budget (constant learning rate after warm-up, so every
budget point is read in the same phase); the family's loss at a budget is the best
over its sizes (the compute-efficient frontier).

Compute multipliers are measured, not fitted: for each H-Net budget, the compute at
which the baseline's frontier first reaches the H-Net's held-out loss, read by
linear interpolation of loss against log compute between the two measured budgets
that bracket it, over the H-Net's compute. A multiplier is printed unmarked only
when that crossing lies inside the baseline's measured budgets; otherwise the
measurements give a bound ("> 4x": not reached by the largest budget; "< 1x":
already passed at the smallest), and a fit's value beyond the largest budget is
printed only marked "extrapolated", with a percentile bootstrap interval over the
points of the fit.

Fits, per family: loss = a * C^(-b) by least squares in log space (CI of b from its
standard error, t with n - 2 degrees of freedom), and, with at least four budgets,
a loss floor L = E + A * (C / C_min)^(-b) (scipy.optimize.curve_fit; CIs from its
covariance, t with n - 3 degrees of freedom). Extrapolations use the floor fit
where there is one, else the power law.

    python -m dnahnet_pipelines.scaling --grid cpu --genome ../shared/data/hg19-chr22/chr22.fa.gz --out runs/scaling-cpu
    python -m dnahnet_pipelines.scaling --grid gpu --genome hg38.fa.gz --out runs/scaling-gpu
    python -m dnahnet_pipelines.scaling --report-only --out runs/scaling-cpu   # re-analyse results.json, no training

Resumable: each (family, size) trains into OUT/models/NAME; a rerun continues.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import optimize, stats

from dnahnet.config import DataConfig, ModelConfig, TrainConfig
from dnahnet.errors import DnahnetInputError, report_input_error
from dnahnet.io.atomic import atomic_open, check_writable_dir, save_png
from dnahnet.perf.allocator import keep_freed_memory
from dnahnet_pipelines.readout import precision_sentence

HNET_FAMILIES = ("hnet-1stage", "hnet-2stage")
BASELINE_FAMILIES = ("transformer", "mamba2")


@dataclass
class Grid:
    """Sizes (d_model per family) and compute budgets (training FLOPs) of one scaling study."""

    sizes: dict[str, list[int]]
    budgets: dict[str, list[float]]
    seq_len: int = 1024
    tokens_per_step: int = 8192
    micro_batch_size: int = 8
    lr: float = 3e-3
    warmup_steps: int = 20
    eval_windows: int = 32
    depth: int = 4  # main-network layers; encoders/decoders are m2 (2-stage: m2 / T1m2 ... m2T1 / m2)


# Budgets are training FLOPs per model (3 x forward, analytic). cpu: 8 models x 4e12 FLOPs, about
# 45 minutes on one core of the 2-core VM (~8-17 GFLOP/s reached per core in training); a 3-size,
# 5e13 grid would take 5-7 hours there. gpu: one H100 for ~a day.
GRIDS = {
    "cpu": Grid(sizes={f: [64, 128] for f in (*HNET_FAMILIES, *BASELINE_FAMILIES)},
                budgets={f: [1e12, 2e12, 4e12] for f in (*HNET_FAMILIES, *BASELINE_FAMILIES)}),
    "gpu": Grid(sizes={f: [256, 384, 512, 768] for f in (*HNET_FAMILIES, *BASELINE_FAMILIES)},
                budgets={f: [1e16, 3e16, 1e17, 3e17, 1e18] for f in (*HNET_FAMILIES, *BASELINE_FAMILIES)},
                seq_len=4096, tokens_per_step=262144, micro_batch_size=16, lr=2e-3, warmup_steps=200, eval_windows=128,
                depth=8),
}


def family_config(family: str, d: int, depth: int = 4) -> ModelConfig:
    """A model of `family` at width d (main network d * 1.5 for H-Nets, rounded to 16)."""
    d_main = int(round(d * 1.5 / 16) * 16)
    heads = max(d // 32, 2)
    # MLP widths as written (not rounded up to 128 as official configs are): the committed grid measured these.
    common = {"vocab_size": 256, "tie_embeddings": False, "ratio_loss_weight": 0.03, "mlp_multiple_of": 1,
              "ssm_cfg": {"d_state": 32, "d_conv": 4, "expand": 2, "headdim": 32, "chunk_size": 64}}
    if family == "transformer":
        layout, dims, inter = [f"T{depth}"], [d], [int(d * 1.5)]
    elif family == "mamba2":
        layout, dims, inter = [f"M{max(depth * 2 // 3, 1)}"], [d], [int(d * 1.5)]
    elif family == "hnet-1stage":
        layout, dims, inter = ["m2", [f"T{depth}"], "m2"], [d, d_main], [0, int(d_main * 1.5)]
        common.update(target_ratio=[3.0], lr_multiplier=[1.5, 1.0])
    elif family == "hnet-2stage":
        layout, dims, inter = ["m2", ["T1m2", [f"T{depth}"], "m2T1"], "m2"], [d, d_main, d_main], [0, int(d_main * 1.5), int(d_main * 1.5)]
        common.update(target_ratio=[3.0, 2.0], lr_multiplier=[2.0, 1.5, 1.0])
    else:
        raise DnahnetInputError(f"unknown family {family!r}; expected one of {', '.join((*HNET_FAMILIES, *BASELINE_FAMILIES))}")
    n = len(dims)
    heads_cfg = {"num_heads": [heads] * n, "rotary_emb_dim": [16] * n, "window_size": [-1] * n}
    return ModelConfig.from_dict({**common, "arch_layout": layout, "d_model": dims, "d_intermediate": inter,
                                  "attn_cfg": heads_cfg})


MIN_FLOOR_BUDGETS = 4  # L = E + A C^-b has three parameters: four budgets leave one degree of freedom
N_BOOT = 1000
LEVEL = 0.95


@dataclass
class PowerLawFit:
    """loss = a * C^(-b), fitted in log space; CI of b at `level` from its standard error."""

    a: float
    b: float
    b_stderr: float
    b_ci: tuple[float, float]
    r2: float
    n: int
    level: float = 0.95

    def loss_at(self, compute: float) -> float:
        return self.a * compute ** (-self.b)

    def compute_for(self, loss: float) -> float:
        """Compute at which the fit reaches `loss`; inf when the fitted loss does not fall with compute."""
        if self.b <= 0:
            return math.inf
        return (self.a / loss) ** (1.0 / self.b)


def fit_power_law(compute, loss, level: float = 0.95) -> PowerLawFit:
    """Least squares of log(loss) = log(a) - b log(C); needs three points (one degree of freedom)."""
    c = np.asarray(compute, dtype=float)
    y = np.asarray(loss, dtype=float)
    if c.shape != y.shape or c.size < 3:
        raise DnahnetInputError(f"a power-law fit needs at least three (compute, loss) points, got {c.size}")
    if np.any(c <= 0) or np.any(y <= 0):
        raise DnahnetInputError("a power-law fit needs positive compute and loss")
    x, ly = np.log(c), np.log(y)
    res = stats.linregress(x, ly)
    t = stats.t.ppf(0.5 + level / 2, c.size - 2)
    b, se = -res.slope, res.stderr
    return PowerLawFit(a=math.exp(res.intercept), b=b, b_stderr=se, b_ci=(b - t * se, b + t * se),
                       r2=res.rvalue**2, n=int(c.size), level=level)


@dataclass
class LossFloorFit:
    """L = E + A * (C / c0)^(-b): a power law that levels off at the irreducible loss E.

    CIs (None when the covariance is not identified) at `level` from curve_fit's covariance.
    """

    E: float
    A: float
    b: float
    c0: float
    E_ci: tuple[float, float] | None
    b_ci: tuple[float, float] | None
    r2: float
    n: int
    level: float = 0.95

    def loss_at(self, compute: float) -> float:
        return self.E + self.A * (compute / self.c0) ** (-self.b)

    def compute_for(self, loss: float) -> float:
        """Compute at which the fit reaches `loss`; inf at or below the floor E (or a flat fit)."""
        if loss <= self.E or self.A <= 0 or self.b <= 0:
            return math.inf
        return self.c0 * ((loss - self.E) / self.A) ** (-1.0 / self.b)


def _floor_curve(x, e, a, b):
    return e + a * x ** (-b)


def fit_loss_floor(compute, loss, level: float = 0.95) -> LossFloorFit:
    """Fit L = E + A (C / C_min)^-b with scipy.optimize.curve_fit; E is kept in [0, min loss], b in [0, 10]."""
    c = np.asarray(compute, dtype=float)
    y = np.asarray(loss, dtype=float)
    n_distinct = len(np.unique(c))
    if c.shape != y.shape or n_distinct < MIN_FLOOR_BUDGETS:
        raise DnahnetInputError(f"a loss-floor fit L = E + A*C^-b has three parameters and needs at least "
                                f"{MIN_FLOOR_BUDGETS} budgets, got {n_distinct}")
    if np.any(c <= 0) or np.any(y <= 0):
        raise DnahnetInputError("a loss-floor fit needs positive compute and loss")
    c0 = float(c.min())
    spread = float(y.max() - y.min())
    e0 = max(float(y.min()) - spread, 0.0)
    p0 = (e0, max(float(y.max()) - e0, 1e-9), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        popt, pcov = optimize.curve_fit(_floor_curve, c / c0, y, p0=p0, bounds=([0.0, 0.0, 0.0], [float(y.min()), np.inf, 10.0]),
                                        maxfev=20000)
    e, a, b = (float(v) for v in popt)
    resid = y - _floor_curve(c / c0, e, a, b)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    dof = c.size - 3
    e_ci = b_ci = None
    if dof > 0 and np.all(np.isfinite(pcov)):
        t = stats.t.ppf(0.5 + level / 2, dof)
        se = np.sqrt(np.clip(np.diag(pcov), 0, None))
        e_ci, b_ci = (e - t * se[0], e + t * se[0]), (b - t * se[2], b + t * se[2])
    return LossFloorFit(E=e, A=a, b=b, c0=c0, E_ci=e_ci, b_ci=b_ci, r2=r2, n=int(c.size), level=level)


def compute_multiplier(hnet: PowerLawFit, baseline: PowerLawFit, budget: float) -> float:
    """Compute the baseline's fit needs to reach the H-Net fit's loss at `budget`, over `budget` (fit against fit)."""
    return baseline.compute_for(hnet.loss_at(budget)) / budget


# ----- measured crossings --------------------------------------------------------------------------
@dataclass
class MeasuredCrossing:
    """Where a measured loss curve first reaches `target`.

    status "measured": reached between two measured points (or at one), at `compute`;
    "beyond": not reached by the largest measured compute (`bound` = that compute, a lower bound);
    "below": already below `target` at the smallest measured compute (`bound` = it, an upper bound).
    """

    status: str
    compute: float | None
    bound: float | None


def measured_crossing(compute, loss, target: float) -> MeasuredCrossing:
    """First compute at which the measured curve (points sorted by compute) reaches `target`.

    Between two measured points loss is linear in log(compute); nothing is read outside them.
    """
    order = np.argsort(np.asarray(compute, dtype=float))
    c = np.asarray(compute, dtype=float)[order]
    y = np.asarray(loss, dtype=float)[order]
    if c.size == 0:
        raise DnahnetInputError("no measured points to read a crossing from")
    if y[0] <= target:
        return MeasuredCrossing("measured", float(c[0]), None) if y[0] == target else MeasuredCrossing("below", None, float(c[0]))
    for j in range(c.size - 1):
        if y[j] > target >= y[j + 1]:
            frac = (y[j] - target) / (y[j] - y[j + 1])
            return MeasuredCrossing("measured", float(math.exp(math.log(c[j]) + frac * (math.log(c[j + 1]) - math.log(c[j])))), None)
    return MeasuredCrossing("beyond", None, float(c[-1]))


def _fit(kind: str, compute, loss):
    return fit_loss_floor(compute, loss) if kind == "loss floor" else fit_power_law(compute, loss)


def bootstrap_compute_for(kind: str, compute, loss, target: float, *, n_boot: int = N_BOOT, level: float = LEVEL,
                          seed: int = 0) -> tuple[tuple[float, float], int]:
    """Percentile interval of the fitted compute to reach `target`, resampling the fit's points with replacement.

    Resamples with too few distinct budgets for the fit (2 for the power law, 3 for the floor) or where the
    fit fails are drawn again (at most 20 x n_boot draws); a resampled fit that never reaches `target`
    counts as infinite compute. Returns ((lo, hi), resamples used).
    """
    c = np.asarray(compute, dtype=float)
    y = np.asarray(loss, dtype=float)
    need = 3 if kind == "loss floor" else 2
    rng = np.random.default_rng(seed)
    values: list[float] = []
    for _ in range(20 * n_boot):
        if len(values) == n_boot:
            break
        idx = rng.integers(0, c.size, c.size)
        if len(np.unique(c[idx])) < need:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = _fit_resample(kind, c[idx], y[idx])
        except (RuntimeError, ValueError, DnahnetInputError):
            continue
        values.append(fit.compute_for(target))
    if not values:
        return (math.nan, math.nan), 0
    lo, hi = np.quantile(np.array(values), [0.5 - level / 2, 0.5 + level / 2], method="inverted_cdf")
    return (float(lo), float(hi)), len(values)


def _fit_resample(kind: str, c: np.ndarray, y: np.ndarray):
    """The fit on a resample: the power law needs only two distinct budgets, the floor three."""
    if kind == "loss floor":
        c0 = float(c.min())
        e0 = max(float(y.min()) - float(y.max() - y.min()), 0.0)
        popt, _ = optimize.curve_fit(_floor_curve, c / c0, y, p0=(e0, max(float(y.max()) - e0, 1e-9), 0.5),
                                     bounds=([0.0, 0.0, 0.0], [float(y.min()), np.inf, 10.0]), maxfev=20000)
        return LossFloorFit(E=float(popt[0]), A=float(popt[1]), b=float(popt[2]), c0=c0, E_ci=None, b_ci=None, r2=math.nan, n=c.size)
    res = stats.linregress(np.log(c), np.log(y))
    return PowerLawFit(a=math.exp(res.intercept), b=-res.slope, b_stderr=math.nan, b_ci=(math.nan, math.nan), r2=math.nan, n=c.size)


def _finite(x: float) -> float | None:
    """JSON has no infinity or NaN: None stands for 'never reached' / 'not defined'."""
    return float(x) if math.isfinite(x) else None


def crossings(fronts: dict[str, list[dict]], fits: dict[str, dict], floor_fits: dict[str, dict], families: list[str], *,
              n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> list[dict]:
    """For every H-Net x baseline pair and every measured H-Net budget: the measured multiplier or the
    bound the measurements give, and (only where the crossing is beyond the baseline's largest budget)
    the fit's extrapolated multiplier with its bootstrap interval."""
    out = []
    for h in [f for f in families if f in HNET_FAMILIES]:
        for base in [f for f in families if f in BASELINE_FAMILIES]:
            bc = [p["train_flops"] for p in fronts[base]]
            bl = [p["eval_bits_per_base"] for p in fronts[base]]
            for p in fronts[h]:
                hc, target = p["train_flops"], p["eval_bits_per_base"]
                m = measured_crossing(bc, bl, target)
                entry = {"hnet": h, "baseline": base, "budget": p["budget"], "hnet_model": p["model"], "hnet_flops": hc,
                         "hnet_loss": target, "status": m.status, "baseline_flops_range": [min(bc), max(bc)],
                         "baseline_flops": m.compute, "multiplier": None if m.compute is None else m.compute / hc,
                         "bound": None if m.bound is None else m.bound / hc, "extrapolated": None}
                kind = "loss floor" if "E" in floor_fits.get(base, {}) else "power law" if base in fits else None
                if m.status == "beyond" and kind is not None:
                    fit = _fit(kind, bc, bl)
                    (lo, hi), used = bootstrap_compute_for(kind, bc, bl, target, n_boot=n_boot, level=level, seed=seed)
                    entry["extrapolated"] = {"fit": kind, "multiplier": _finite(fit.compute_for(target) / hc),
                                             "interval": [_finite(lo / hc), _finite(hi / hc)], "level": level,
                                             "n_boot": used, "n_points": len(bc)}
                check_crossing(entry)
                out.append(entry)
    return out


def check_crossing(entry: dict) -> None:
    """Refuse a crossing that would print a figure outside the measured budgets as a measured one."""
    lo, hi = entry["baseline_flops_range"]
    if entry["status"] == "measured":
        c = entry.get("baseline_flops")
        if c is None or not (lo * (1 - 1e-9) <= c <= hi * (1 + 1e-9)) or entry.get("multiplier") is None \
                or not math.isclose(entry["multiplier"], c / entry["hnet_flops"], rel_tol=1e-9):
            raise ValueError(f"{entry['hnet']} vs {entry['baseline']} at {entry['budget']:.3g}: a measured multiplier "
                             f"needs a crossing inside the baseline's measured compute [{lo:.4g}, {hi:.4g}]; got {c}")
    elif entry.get("multiplier") is not None:
        raise ValueError(f"{entry['hnet']} vs {entry['baseline']} at {entry['budget']:.3g}: status {entry['status']!r} "
                         "(outside the measured budgets) cannot carry an unmarked multiplier")


def check_grid(grid: Grid) -> None:
    for family in grid.sizes:
        family_config(family, grid.sizes[family][0], grid.depth)  # unknown family -> input error
        budgets = grid.budgets.get(family, [])
        if len(set(budgets)) < 3:
            raise DnahnetInputError(f"grid: family {family} has {len(set(budgets))} compute budget(s); a power-law fit "
                                    "with a confidence interval needs at least three")
        if not grid.sizes[family]:
            raise DnahnetInputError(f"grid: family {family} has no sizes")


@dataclass
class ScalingConfig:
    genome: str
    out: str
    grid: str | Grid = "cpu"
    seed: int = 0
    families: list[str] = field(default_factory=list)  # default: all in the grid
    n_boot: int = N_BOOT  # bootstrap resamples for the intervals of extrapolated multipliers


def _data(cfg: ScalingConfig, grid: Grid) -> DataConfig:
    return DataConfig(genome=[str(Path(cfg.genome).resolve())], seq_len=grid.seq_len, split_by="fraction",
                      eval_windows=grid.eval_windows, seed=cfg.seed, max_n_fraction=0.05)


def train_to_budgets(model_cfg: ModelConfig, train_cfg: TrainConfig, data_cfg: DataConfig, out_dir: Path,
                     checkpoints: list[int]) -> list[dict]:
    """Train (or resume) one model, evaluating the held-out windows at `checkpoints`; return its curve.

    Each evaluation is appended to OUT_DIR/curve.jsonl and followed by a checkpoint, so a rerun resumes
    and a finished model (or one trained further for a larger grid) is read back without training.
    """
    from dnahnet.train import checkpoint as ckpt
    from dnahnet.train.trainer import pretrain

    curve_path = out_dir / "curve.jsonl"
    curve = [json.loads(x) for x in curve_path.read_text().splitlines()] if curve_path.exists() else []
    done = {p["step"] for p in curve}
    if curve and all(k in done for k in checkpoints):
        return [p for p in curve if p["step"] in set(checkpoints)]

    def on_step(trainer, metrics):
        k = trainer.step
        if k in checkpoints and k not in done:
            ev = trainer.evaluate(fp32=True)  # readouts compare across training precisions
            point = {"step": k, "bases": k * trainer.config.tokens_per_step, "elapsed_s": trainer.elapsed,
                     "train_bases_per_s": metrics.get("bases_per_s"), "train_precision": trainer.precision.describe(), **ev}
            curve.append(point)
            done.add(k)
            with open(curve_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(point) + "\n")
            trainer.save([ckpt.LATEST])  # every curve point is also a resume point

    resume = ckpt.find_checkpoint(out_dir) is not None
    if resume:  # points after the last checkpoint are recomputed on resume; drop them now
        step = json.loads((ckpt.find_checkpoint(out_dir) / ckpt.TRAIN).read_text()).get("step", 0)
        curve = [p for p in curve if p["step"] <= step]
        done = {p["step"] for p in curve}
        with atomic_open(curve_path) as fh:
            fh.writelines(json.dumps(p) + "\n" for p in curve)
    pretrain(model_cfg, train_cfg, data_cfg, out_dir, resume=resume, overwrite=not resume, on_step=on_step)
    return curve


def run(cfg: ScalingConfig, command: str | None = None) -> dict:
    """Train (or resume) the grid, fit per family, write results.json, frontier.tsv, scaling.png and report.md."""
    import platform

    from dnahnet.nn.flops import count_flops

    if isinstance(cfg.grid, str) and cfg.grid not in GRIDS:
        raise DnahnetInputError(f"--grid: unknown grid {cfg.grid!r}; available: {', '.join(GRIDS)}")
    grid = GRIDS[cfg.grid] if isinstance(cfg.grid, str) else cfg.grid
    families = cfg.families or list(grid.sizes)
    unknown = [f for f in families if f not in grid.sizes]
    if unknown:
        raise DnahnetInputError(f"--families: {', '.join(unknown)} not in the grid; available: {', '.join(grid.sizes)}")
    grid = Grid(**{**grid.__dict__, "sizes": {f: grid.sizes[f] for f in families},
                   "budgets": {f: grid.budgets.get(f, []) for f in families}})
    check_grid(grid)
    out = check_writable_dir(cfg.out)
    data = _data(cfg, grid)
    points: list[dict] = []
    for family in families:
        budgets = sorted(set(grid.budgets[family]))
        for d in grid.sizes[family]:
            model = family_config(family, d, grid.depth)
            per_base = count_flops(model, grid.seq_len).per_base(training=True)
            steps = [max(1, math.ceil(c / per_base / grid.tokens_per_step)) for c in budgets]
            train = TrainConfig(tokens_per_step=grid.tokens_per_step, micro_batch_size=grid.micro_batch_size, lr=grid.lr,
                                warmup_steps=min(grid.warmup_steps, max(steps[0] - 1, 0)), schedule="wsd",
                                decay_fraction=0.0, steps=steps[-1], eval_every=0, keep_best=False,
                                checkpoint_every=max(steps[-1] // 10, 1), log_every=max(steps[-1] // 20, 1), seed=cfg.seed)
            name = f"{family}-d{d}"
            t0 = time.perf_counter()
            curve = train_to_budgets(model, train, data, check_writable_dir(out / "models" / name), sorted(set(steps)))
            by_step = {p["step"]: p for p in curve}
            for budget, k in zip(budgets, steps):
                p = by_step[k]
                points.append({"family": family, "model": name, "d_model": d, "budget": budget, "step": k,
                               "train_flops": k * grid.tokens_per_step * per_base, "eval_bits_per_base": p["eval_bits_per_base"],
                               "train_precision": p.get("train_precision")})
            print(f"[scaling] {name}: {curve[-1]['eval_bits_per_base']:.4f} bits/base at {budgets[-1]:.3g} FLOPs "
                  f"({time.perf_counter() - t0:.0f} s this run)", flush=True)
    results = {"command": command, "genome": cfg.genome, "date": time.strftime("%Y-%m-%d"),
               "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}", "grid": grid.__dict__,
               "points": points, **summarise(points, families, n_boot=cfg.n_boot, seed=cfg.seed)}
    write_outputs(out, results)
    return results


def frontier(points: list[dict], family: str) -> list[dict]:
    """Per budget, the point of the family with the lowest held-out loss."""
    best: dict[float, dict] = {}
    for p in points:
        if p["family"] == family and (p["budget"] not in best or p["eval_bits_per_base"] < best[p["budget"]]["eval_bits_per_base"]):
            best[p["budget"]] = p
    return [best[b] for b in sorted(best)]


def summarise(points: list[dict], families: list[str], *, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Frontiers, fits (power law with >= 3 budgets, loss floor with >= 4) and crossings, from the points alone."""
    fronts, fits, floors = {}, {}, {}
    for family in families:
        fronts[family] = frontier(points, family)
        c = [p["train_flops"] for p in fronts[family]]
        y = [p["eval_bits_per_base"] for p in fronts[family]]
        if len(c) >= 3:
            fit = fit_power_law(c, y)
            fits[family] = fit.__dict__ | {"b_ci": list(fit.b_ci)}
        if len(c) >= MIN_FLOOR_BUDGETS:
            try:
                floor = fit_loss_floor(c, y)
                floors[family] = floor.__dict__ | {"E_ci": None if floor.E_ci is None else list(floor.E_ci),
                                                   "b_ci": None if floor.b_ci is None else list(floor.b_ci)}
            except RuntimeError as exc:  # curve_fit did not converge
                floors[family] = {"not_fitted": f"curve_fit did not converge ({exc})"}
        else:
            floors[family] = {"not_fitted": f"{len(c)} budgets; L = E + A*C^-b has three parameters and needs at least "
                                            f"{MIN_FLOOR_BUDGETS}"}
    return {"frontier": fronts, "fits": fits, "floor_fits": floors,
            "crossings": crossings(fronts, fits, floors, families, n_boot=n_boot, seed=seed),
            "bootstrap": {"n_boot": n_boot, "level": LEVEL, "seed": seed}}


def reanalyse(out: str | Path, command: str | None = None, *, n_boot: int = N_BOOT) -> dict:
    """Re-read OUT/results.json and rewrite every output from its points (no model is trained or loaded)."""
    out = Path(out)
    path = out / "results.json"
    if not path.is_file():
        raise DnahnetInputError("no results.json to re-render (run the grid first)", file=str(path))
    try:
        old = json.loads(path.read_text())
        points = old["points"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DnahnetInputError(f"not a scaling results file ({exc})", file=str(path)) from None
    families = list(dict.fromkeys(p["family"] for p in points))
    seed = old.get("bootstrap", {}).get("seed", 0)
    keep = {k: old[k] for k in ("command", "genome", "date", "machine", "grid") if k in old}
    results = {**keep, "points": points, **summarise(points, families, n_boot=n_boot, seed=seed),
               "report_command": command, "report_date": time.strftime("%Y-%m-%d")}
    write_outputs(check_writable_dir(out), results)
    return results


# ----- report --------------------------------------------------------------------------------------
def _x(v: float | None) -> str:
    if v is None:
        return "∞"
    return f"{v:.2f}x" if v < 100 else f"{v:.3g}x"


def measured_cell(entry: dict) -> str:
    """What the measurements say about a multiplier: a number only inside the measured budgets, else a bound."""
    check_crossing(entry)
    lo, hi = entry["baseline_flops_range"]
    if entry["status"] == "measured":
        return f"{entry['multiplier']:.2f}x (reached at {entry['baseline_flops']:.3g} FLOPs)"
    if entry["status"] == "beyond":
        return f"> {entry['bound']:.2f}x (not reached by its largest budget, {hi:.3g} FLOPs)"
    return f"< {entry['bound']:.2f}x (already lower at its smallest budget, {lo:.3g} FLOPs)"


def extrapolated_cell(entry: dict) -> str:
    """A fit's value beyond the measured budgets, always marked, with its interval."""
    e = entry["extrapolated"]
    if e is None:
        return "-"
    pct = f"{round(e['level'] * 100)}%"
    lo, hi = e["interval"]
    value = "never (the fit does not reach this loss)" if e["multiplier"] is None else _x(e["multiplier"])
    if e["multiplier"] is not None and entry["bound"] is not None and e["multiplier"] < entry["bound"]:
        value += f" (below the measured bound > {entry['bound']:.2f}x: the fit misdescribes these points)"
    interval = f"{pct} bootstrap interval [{_x(lo)}, {_x(hi)}] over {e['n_boot']} resamples of its {e['n_points']} points"
    return f"extrapolated ({e['fit']} fit): {value}, {interval}"


def render_report(results: dict) -> str:
    lines = ["# Compute scaling", ""]
    if results.get("command"):
        lines += ["Training command:", "", f"    {results['command']}", ""]
    if results.get("report_command"):
        lines += [f"Report re-rendered from `results.json` on {results.get('report_date')} (no retraining) with:", "",
                  f"    {results['report_command']}", ""]
    machine = f" on {results['machine']}" if results.get("machine") else ""
    lines += [f"Genome `{results['genome']}`, trained {results['date']}{machine}. Loss = held-out bits/base (mean, "
              "N excluded) of each family's best width at each budget (the compute-efficient frontier); "
              "C = training FLOPs (analytic). One seed per model; per-window losses were not stored, so measured "
              "figures carry no interval.", "", precision_sentence(p.get("train_precision") for p in results.get("points", [])), ""]
    lines += ["## Compute multipliers, measured", "",
              "The compute at which the baseline's measured frontier first reaches the H-Net's loss at that budget "
              "(loss linear in log compute between the two measured budgets that bracket it), over the H-Net's compute. "
              "A number appears only when the crossing lies inside the baseline's measured budgets; otherwise the "
              "measurements give a bound.", "",
              "| H-Net | budget | H-Net bits/base | baseline | measured multiplier |", "|---|---|---|---|---|"]
    for e in results["crossings"]:
        lines.append(f"| {e['hnet']} | {e['budget']:.3g} | {e['hnet_loss']:.4f} | {e['baseline']} | {measured_cell(e)} |")
    extra = [e for e in results["crossings"] if e["extrapolated"] is not None]
    if extra:
        lines += ["", "## Extrapolated beyond the measured budgets", "",
                  "Where the baseline does not reach the H-Net's loss within its measured budgets, its fit's compute for "
                  "that loss. These are extrapolations, not measurements: percentile bootstrap over the frontier points "
                  "of the fit (with a few points the intervals are wide and themselves rough; where an interval reaches "
                  "below the measured bound, the bound is what the points show).", "",
                  "| H-Net | budget | baseline | extrapolated multiplier |", "|---|---|---|---|"]
        for e in extra:
            lines.append(f"| {e['hnet']} | {e['budget']:.3g} | {e['baseline']} | {extrapolated_cell(e)} |")
    lines += ["", "## Fits", "", "loss = a * C^(-b), least squares in log space on the frontier; "
              "95% CI of b from its standard error (t, n - 2 degrees of freedom).", "",
              "| family | b | 95% CI | a | R^2 | points |", "|---|---|---|---|---|---|"]
    for family, f in results["fits"].items():
        lines.append(f"| {family} | {f['b']:.4f} | [{f['b_ci'][0]:.4f}, {f['b_ci'][1]:.4f}] | {f['a']:.4g} | {f['r2']:.3f} | {f['n']} |")
    floors = results.get("floor_fits", {})
    fitted = {k: v for k, v in floors.items() if "E" in v}
    if fitted:
        lines += ["", "Loss floor L = E + A * (C / C_min)^(-b) (scipy curve_fit; 95% CIs from its covariance, t with n - 3 "
                  "degrees of freedom):", "", "| family | E (bits/base) | 95% CI | b | 95% CI | R^2 | points |",
                  "|---|---|---|---|---|---|---|"]
        for family, f in fitted.items():
            e_ci = "not identified" if f["E_ci"] is None else f"[{f['E_ci'][0]:.4f}, {f['E_ci'][1]:.4f}]"
            b_ci = "not identified" if f["b_ci"] is None else f"[{f['b_ci'][0]:.4f}, {f['b_ci'][1]:.4f}]"
            lines.append(f"| {family} | {f['E']:.4f} | {e_ci} | {f['b']:.4f} | {b_ci} | {f['r2']:.3f} | {f['n']} |")
    for family, f in floors.items():
        if "not_fitted" in f:
            lines.append(f"\nLoss floor not fitted for {family}: {f['not_fitted']}.")
    budgets = sorted({p["budget"] for p in results["points"]})
    lines += ["", "## Every model at every budget", "", "Held-out bits/base (frontier = best per column within a family):", "",
              "| model | " + " | ".join(f"{b:.3g}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for model in dict.fromkeys(p["model"] for p in results["points"]):
        by_budget = {p["budget"]: p["eval_bits_per_base"] for p in results["points"] if p["model"] == model}
        lines.append(f"| {model} | " + " | ".join(f"{by_budget[b]:.4f}" if b in by_budget else "-" for b in budgets) + " |")
    lines += ["", "![scaling](scaling.png)", ""]
    return "\n".join(lines)


def write_outputs(out: Path, results: dict) -> None:
    report = render_report(results)  # first: a crossing that fails its check stops before anything is written
    with atomic_open(out / "results.json") as fh:
        json.dump(results, fh, indent=2, allow_nan=False)
    with atomic_open(out / "frontier.tsv") as fh:
        fh.write("family\tbudget\tmodel\ttrain_flops\teval_bits_per_base\n")
        for family, front in results["frontier"].items():
            for p in front:
                fh.write(f"{family}\t{p['budget']:.4g}\t{p['model']}\t{p['train_flops']:.4g}\t{p['eval_bits_per_base']:.5f}\n")
    plot(out / "scaling.png", results)
    with atomic_open(out / "report.md") as fh:
        fh.write(report)


def plot(path: Path, results: dict) -> None:
    """Frontier points per family; fitted curves drawn only over the measured budgets (no extrapolated line)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for family, front in results["frontier"].items():
        c = np.array([p["train_flops"] for p in front])
        f = results["fits"].get(family)
        label = family + (f" (b={f['b']:.3f})" if f else "")
        line = ax.plot(c, [p["eval_bits_per_base"] for p in front], "o-", lw=0.6, label=label)
        xs = np.geomspace(c.min(), c.max(), 50)
        if f:
            ax.plot(xs, f["a"] * xs ** (-f["b"]), "--", color=line[0].get_color(), lw=1)
        floor = results.get("floor_fits", {}).get(family, {})
        if "E" in floor:
            ax.plot(xs, floor["E"] + floor["A"] * (xs / floor["c0"]) ** (-floor["b"]), ":", color=line[0].get_color(), lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.2f"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.2f"))
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("held-out bits per base")
    ax.set_title("points: measured frontier (solid lines: the interpolation measured multipliers use)\n"
                 "dashed: power-law fit, dotted: loss-floor fit, both drawn over the measured range only", fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def _print_crossings(results: dict) -> None:
    for e in results["crossings"]:
        print(f"{e['baseline']} vs {e['hnet']} at {e['budget']:.3g} FLOPs: measured {measured_cell(e)}"
              + (f"; {extrapolated_cell(e)}" if e["extrapolated"] else ""))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m dnahnet_pipelines.scaling", description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="cpu", help=f"one of {', '.join(GRIDS)}")
    ap.add_argument("--genome", help="genome FASTA (required unless --report-only)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--families", default="", help="comma-separated subset of the grid's families")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report-only", action="store_true",
                    help="re-analyse OUT/results.json and rewrite the report, table and plot; trains nothing")
    ap.add_argument("--n-boot", type=int, default=N_BOOT, help="bootstrap resamples for extrapolation intervals")
    a = ap.parse_args(argv)
    command = "python -m dnahnet_pipelines.scaling " + shlex.join(argv)
    try:
        if a.n_boot < 10:
            raise DnahnetInputError(f"--n-boot must be at least 10, got {a.n_boot}")
        if a.report_only:
            if a.genome or a.families:
                raise DnahnetInputError("--report-only reads OUT/results.json; --genome and --families do not apply")
            results = reanalyse(a.out, command=command, n_boot=a.n_boot)
        else:
            if not a.genome:
                raise DnahnetInputError("--genome is required (or --report-only to re-render OUT/results.json)")
            results = run(ScalingConfig(genome=a.genome, out=a.out, grid=a.grid, seed=a.seed,
                                        families=[f for f in a.families.split(",") if f], n_boot=a.n_boot),
                          command=command)
    except DnahnetInputError as exc:
        return report_input_error(exc, "scaling")
    _print_crossings(results)
    return 0


if __name__ == "__main__":
    keep_freed_memory()
    sys.exit(main())
