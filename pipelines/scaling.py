"""Compute scaling: held-out loss against training FLOPs per family, fitted as a power law.

Each family (H-Net 1-stage, H-Net 2-stage, isotropic Transformer, isotropic
Mamba-2) is trained at several sizes on the same data (same windows, same order).
Each size trains once to the largest compute budget and is evaluated when its
training FLOPs pass each budget (constant learning rate after warm-up, so every
budget point is read in the same phase); the family's loss at a budget is the best
over its sizes (the compute-efficient frontier). Per family, loss = a * C^(-b) is
fitted by least squares in log space; the exponent's confidence interval comes from
its standard error (t distribution, n - 2 degrees of freedom). The compute
multiplier of a baseline = the compute its fit needs to reach the H-Net fit's loss
at the largest budget / that budget.

    python -m pipelines.scaling --grid cpu --genome shared/data/hg19_chr22.fa.gz --out runs/scaling-cpu
    python -m pipelines.scaling --grid gpu --genome hg38.fa.gz --out runs/scaling-gpu

Resumable: each (family, size) trains into OUT/models/NAME; a rerun continues.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from dnahnet.config import DataConfig, ModelConfig, TrainConfig
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, check_writable_dir, save_png
from dnahnet.perf.allocator import keep_freed_memory

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
    common = {"vocab_size": 256, "tie_embeddings": False, "ratio_loss_weight": 0.03,
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


def compute_multiplier(hnet: PowerLawFit, baseline: PowerLawFit, budget: float) -> float:
    """Compute the baseline's fit needs to reach the H-Net fit's loss at `budget`, over `budget`."""
    return baseline.compute_for(hnet.loss_at(budget)) / budget


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


def _data(cfg: ScalingConfig, grid: Grid) -> DataConfig:
    return DataConfig(genome=[str(Path(cfg.genome).resolve())], seq_len=grid.seq_len, split_by="fraction",
                      eval_windows=grid.eval_windows, seed=cfg.seed, max_n_fraction=0.05)


def run(cfg: ScalingConfig, command: str | None = None) -> dict:
    """Train (or resume) the grid, fit per family, write results.json, frontier.tsv, scaling.png and report.md."""
    from dnahnet.nn.flops import count_flops
    from pipelines.data_efficiency import _train_one

    grid = GRIDS[cfg.grid] if isinstance(cfg.grid, str) else cfg.grid
    if isinstance(cfg.grid, str) and cfg.grid not in GRIDS:
        raise DnahnetInputError(f"--grid: unknown grid {cfg.grid!r}; available: {', '.join(GRIDS)}")
    families = cfg.families or list(grid.sizes)
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
            curve = _train_one(name, model, train, data, check_writable_dir(out / "models" / name), sorted(set(steps)))
            by_step = {p["step"]: p for p in curve}
            for budget, k in zip(budgets, steps):
                p = by_step[k]
                points.append({"family": family, "model": name, "d_model": d, "budget": budget, "step": k,
                               "train_flops": k * grid.tokens_per_step * per_base, "eval_bits_per_base": p["eval_bits_per_base"]})
            print(f"[scaling] {name}: {curve[-1]['eval_bits_per_base']:.4f} bits/base at {budgets[-1]:.3g} FLOPs "
                  f"({time.perf_counter() - t0:.0f} s this run)", flush=True)
    results = summarise(points, families, grid, command, cfg)
    write_outputs(out, results)
    return results


def frontier(points: list[dict], family: str) -> list[dict]:
    """Per budget, the point of the family with the lowest held-out loss."""
    best: dict[float, dict] = {}
    for p in points:
        if p["family"] == family and (p["budget"] not in best or p["eval_bits_per_base"] < best[p["budget"]]["eval_bits_per_base"]):
            best[p["budget"]] = p
    return [best[b] for b in sorted(best)]


def summarise(points, families, grid, command, cfg) -> dict:
    fits, fronts = {}, {}
    for family in families:
        fronts[family] = frontier(points, family)
        fit = fit_power_law([p["train_flops"] for p in fronts[family]], [p["eval_bits_per_base"] for p in fronts[family]])
        fits[family] = fit.__dict__ | {"b_ci": list(fit.b_ci)}
    top = max(max(grid.budgets[f]) for f in families)
    multipliers = []
    for h in [f for f in families if f in HNET_FAMILIES]:
        for b in [f for f in families if f in BASELINE_FAMILIES]:
            mult = compute_multiplier(PowerLawFit(**{**fits[h], "b_ci": tuple(fits[h]["b_ci"])}),
                                      PowerLawFit(**{**fits[b], "b_ci": tuple(fits[b]["b_ci"])}), top)
            multipliers.append({"hnet": h, "baseline": b, "budget": top, "multiplier": mult})
    return {"command": command, "genome": cfg.genome, "date": time.strftime("%Y-%m-%d"), "grid": grid.__dict__,
            "points": points, "frontier": fronts, "fits": fits, "multipliers": multipliers}


def write_outputs(out: Path, results: dict) -> None:
    with atomic_open(out / "results.json") as fh:
        json.dump(results, fh, indent=2)
    with atomic_open(out / "frontier.tsv") as fh:
        fh.write("family\tbudget\tmodel\ttrain_flops\teval_bits_per_base\n")
        for family, front in results["frontier"].items():
            for p in front:
                fh.write(f"{family}\t{p['budget']:.4g}\t{p['model']}\t{p['train_flops']:.4g}\t{p['eval_bits_per_base']:.5f}\n")
    plot(out / "scaling.png", results)
    lines = ["# Compute scaling", ""]
    if results.get("command"):
        lines += ["Command:", "", f"    {results['command']}", ""]
    lines += [f"Genome `{results['genome']}`, {results['date']}. loss (held-out bits/base) = a * C^(-b), C = training FLOPs "
              "(analytic), fitted on each family's compute-efficient frontier.", "",
              "| family | b | 95% CI | a | R^2 | points |", "|---|---|---|---|---|---|"]
    for family, f in results["fits"].items():
        lines.append(f"| {family} | {f['b']:.4f} | [{f['b_ci'][0]:.4f}, {f['b_ci'][1]:.4f}] | {f['a']:.4g} | {f['r2']:.3f} | {f['n']} |")
    lines += ["", "| H-Net | baseline | compute multiplier at the largest budget |", "|---|---|---|"]
    for m in results["multipliers"]:
        lines.append(f"| {m['hnet']} | {m['baseline']} | {m['multiplier']:.2f}x at {m['budget']:.3g} FLOPs |")
    budgets = sorted({p["budget"] for p in results["points"]})
    lines += ["", "Held-out bits/base of every model at every budget (frontier = best per column within a family):", "",
              "| model | " + " | ".join(f"{b:.3g}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for model in dict.fromkeys(p["model"] for p in results["points"]):
        by_budget = {p["budget"]: p["eval_bits_per_base"] for p in results["points"] if p["model"] == model}
        lines.append(f"| {model} | " + " | ".join(f"{by_budget[b]:.4f}" if b in by_budget else "-" for b in budgets) + " |")
    lines += ["", "![scaling](scaling.png)", ""]
    with atomic_open(out / "report.md") as fh:
        fh.write("\n".join(lines))


def plot(path: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for family, front in results["frontier"].items():
        c = np.array([p["train_flops"] for p in front])
        line = ax.plot(c, [p["eval_bits_per_base"] for p in front], "o", label=f"{family} (b={results['fits'][family]['b']:.3f})")
        f = results["fits"][family]
        xs = np.geomspace(c.min(), c.max(), 50)
        ax.plot(xs, f["a"] * xs ** (-f["b"]), "-", color=line[0].get_color(), lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("held-out bits per base")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m pipelines.scaling", description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="cpu", help=f"one of {', '.join(GRIDS)}")
    ap.add_argument("--genome", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--families", default="", help="comma-separated subset of the grid's families")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        results = run(ScalingConfig(genome=a.genome, out=a.out, grid=a.grid, seed=a.seed,
                                    families=[f for f in a.families.split(",") if f]),
                      command="python -m pipelines.scaling " + shlex.join(argv))
    except DnahnetInputError as exc:
        print(f"scaling: error: {exc.one_line()}", file=sys.stderr)
        return 2
    for m in results["multipliers"]:
        print(f"{m['baseline']} needs {m['multiplier']:.2f}x the compute of {m['hnet']} at {m['budget']:.3g} FLOPs")
    return 0


if __name__ == "__main__":
    keep_freed_memory()
    sys.exit(main())
