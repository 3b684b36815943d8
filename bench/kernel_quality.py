"""The fused CPU kernels against pure PyTorch in training: held-out bits/base and step time over seeds.

The kernels (`dnahnet.nn.cpu_kernel`, on by default where they build) compute what the PyTorch path computes up to float32
rounding, which its tests check operator by operator. Rounding still steers training (the routing's boundary
decisions are discrete), so this checks the end result: for each seed, two `dnahnet pretrain` runs of the same
preset, steps and windows, one with DNAHNET_CPU_KERNEL=1 and one with 0, each evaluated once at the last step.
Reported per seed: held-out bits/base, compression and seconds per step; over seeds, the mean paired difference
(kernel - pure) with a t interval, beside the spread between seeds of the pure runs themselves.

    python bench/kernel_quality.py --config cpu-hnet-mamba2 --steps 150 --seeds 0,1,2 --out runs/kernel_quality

`--arms pure-fp32-scan,mamba2-kernels` adds, per seed, runs with one difference between the two paths taken away
(bench/kernel_arms.py), each compared with both sides: where a difference between the paths comes from.

Results: <out>/results.json and <out>/report.md (command, machine, date at the top).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
from pathlib import Path

try:  # run as a script (bench/ on the path) or imported as bench.kernel_quality (tests)
    from bf16_cpu import pretrain_run
    from kernel_arms import ARMS
except ImportError:
    from bench.bf16_cpu import pretrain_run
    from bench.kernel_arms import ARMS

from dnahnet.perf.measure import machine, save_paired_bench

LEVEL = 0.95
PATHS = {"kernel": "1", "pure": "0"}  # DNAHNET_CPU_KERNEL for each side
REPO = Path(__file__).resolve().parent.parent  # on an arm's PYTHONPATH, so `-m bench.kernel_arms` runs from any folder


def mean_interval(values: list[float], level: float = LEVEL) -> tuple[float, float, float] | None:
    """The mean of `values` and its t interval at `level`; None for fewer than two values."""
    from scipy import stats

    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def measure(args) -> dict:
    runs: dict[str, dict[str, dict]] = {}
    arm_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    for seed in args.seeds:
        runs[str(seed)] = {}
        for side, setting in PATHS.items():
            env = {**os.environ, "DNAHNET_CPU_KERNEL": setting}
            runs[str(seed)][side] = pretrain_run(args.out / f"seed{seed}-{side}", args.config, args.steps, seed,
                                                 list(args.set), env, f"pretrain seed {seed} ({side})")
        for arm in args.arms:
            env = {**os.environ, "DNAHNET_CPU_KERNEL": ARMS[arm].setting, "PYTHONPATH": arm_path}
            runs[str(seed)][arm] = pretrain_run(args.out / f"seed{seed}-{arm}", args.config, args.steps, seed,
                                                list(args.set), env, f"pretrain seed {seed} ({arm})",
                                                launcher=("-m", "bench.kernel_arms", arm))
    differences = [r["kernel"]["eval_bits_per_base"] - r["pure"]["eval_bits_per_base"] for r in runs.values()]
    pure = [r["pure"]["eval_bits_per_base"] for r in runs.values()]
    speed = [r["pure"]["s_per_step_median"] / r["kernel"]["s_per_step_median"] for r in runs.values()
             if r["pure"]["s_per_step_median"] and r["kernel"]["s_per_step_median"]]
    return {"runs": runs, "difference": mean_interval(differences), "differences": differences,
            "pure_spread": max(pure) - min(pure) if pure else None, "speed_ratios": speed, "arms": list(args.arms)}


def verdict(interval: tuple[float, float, float] | None, subject: str = "kernel") -> str:
    if interval is None:
        return "one seed: no interval"
    _, low, high = interval
    return "no detectable difference" if low <= 0.0 <= high else (f"{subject} higher" if low > 0 else f"{subject} lower")


def report(results: dict) -> str:
    lines = ["# The fused CPU kernels against pure PyTorch in training", "",
             f"Command: `{results['command']}`", f"Machine: {results['machine']}", "",
             f"{results['config']}, {results['steps']} steps per run, the same windows per seed; held-out bits/base at the "
             f"last step, each run {_precision(results.get('overrides', []))}.", "",
             "| seed | pure PyTorch | fused kernels | kernels - pure | compression pure / kernels | s/step pure / kernels |",
             "|---|---|---|---|---|---|"]
    for seed, r in results["runs"].items():
        p, k = r["pure"], r["kernel"]
        lines.append(f"| {seed} | {p['eval_bits_per_base']:.4f} | {k['eval_bits_per_base']:.4f} | "
                     f"{k['eval_bits_per_base'] - p['eval_bits_per_base']:+.4f} | {_compression(p)} / {_compression(k)} | "
                     f"{_seconds(p)} / {_seconds(k)} |")
    diff = results["difference"]
    lines.append("")
    if diff is not None:
        lines.append(f"Mean difference {diff[0]:+.4f} bits/base; a t interval ({LEVEL:.0%}) over the "
                     f"{len(results['runs'])} seeds is {diff[1]:+.4f} to {diff[2]:+.4f}: **{verdict(diff)}**. "
                     f"The pure runs differ by {results['pure_spread']:.4f} bits/base between seeds.")
    else:
        lines.append("One seed: no interval.")
    compression = mean_interval(_compression_differences(results["runs"]))
    if compression is not None:
        lines.append(f"Compression of the first routed stage, kernels - pure: mean {compression[0]:+.3f}, t interval "
                     f"{compression[1]:+.3f} to {compression[2]:+.3f}: **{verdict(compression)}**.")
    if results["speed_ratios"]:
        lines.append(f"Step time pure / kernels (median log window per run): "
                     + ", ".join(f"{s:.2f}x" for s in results["speed_ratios"])
                     + " (runs one after another, not interleaved: `bench/train_pairs.py` measures speed).")
    lines += arms_report(results)
    settings = {**PATHS, **{arm: ARMS[arm].setting for arm in results.get("arms", [])}}
    lines += ["", *(f"- seed {seed} {side}: `DNAHNET_CPU_KERNEL={setting} {r[side]['command']}`"
                    for seed, r in results["runs"].items() for side, setting in settings.items())]
    return "\n".join(lines) + "\n"


def arms_report(results: dict) -> list[str]:
    """Each diagnostic arm's runs, and its paired differences from both sides in bits/base and compression."""
    arms = results.get("arms", [])
    if not arms:
        return []
    runs = results["runs"]
    lines = ["", "Diagnostic arms (`bench/kernel_arms.py`), the same seeds and windows:", "",
             "| seed | " + " | ".join(f"{arm}: bits/base, compression" for arm in arms) + " |",
             "|---|" + "---|" * len(arms)]
    for seed, r in runs.items():
        lines.append(f"| {seed} | " + " | ".join(f"{r[arm]['eval_bits_per_base']:.4f}, {_compression(r[arm])}"
                                                for arm in arms) + " |")
    lines.append("")
    for arm in arms:
        for side in PATHS:
            bits = mean_interval([r[arm]["eval_bits_per_base"] - r[side]["eval_bits_per_base"] for r in runs.values()])
            compression = mean_interval(_compression_differences(runs, arm, side))
            lines.append(f"- {arm} - {side}: bits/base {_difference(bits, '.4f', arm)}; "
                         f"compression {_difference(compression, '.3f', arm)}")
    return lines


def _difference(interval: tuple[float, float, float] | None, form: str, subject: str) -> str:
    """'+0.0012 (t interval -0.0030 to +0.0054: no detectable difference)', or why there is no interval."""
    if interval is None:
        return verdict(None)
    mean, low, high = interval
    return f"{mean:+{form}} (t interval {low:+{form}} to {high:+{form}}: {verdict(interval, subject)})"


def _precision(overrides: list[str]) -> str:
    """How the runs' precision was chosen: a `--set train.precision=...` override, else the trainer's default."""
    chosen = [o for o in overrides if o.replace(" ", "").startswith("train.precision=")]
    return f"with `--set {chosen[-1]}`" if chosen else "in the trainer's default precision on this CPU"


def _first_stage(value) -> float | None:
    """A run's compression of its first routed stage (a run records one per stage, or a number, or nothing)."""
    if isinstance(value, list):
        return value[0] if value else None
    return value if isinstance(value, (int, float)) else None


def _compression_differences(runs: dict, side: str = "kernel", against: str = "pure") -> list[float]:
    """Per seed, one side's first-stage compression minus another's (seeds missing either are left out)."""
    pairs = [(_first_stage(r[side].get("eval_compression")), _first_stage(r[against].get("eval_compression")))
             for r in runs.values()]
    return [k - p for k, p in pairs if k is not None and p is not None]


def _seconds(run: dict) -> str:
    """Seconds per step, or '-' for a run too short to have a log window after its first."""
    value = run.get("s_per_step_median")
    return "-" if value is None else f"{value:.3f}"


def _compression(run: dict) -> str:
    value = run.get("eval_compression")
    if isinstance(value, list):
        return "/".join(f"{v:.2f}" for v in value)
    return "-" if value is None else f"{value:.2f}"


def _arms(text: str) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown arm {unknown[0]!r}; arms: {', '.join(ARMS)}")
    return arms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="cpu-hnet-mamba2")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",") if s.strip()], default=[0, 1, 2],
                    help="comma-separated seeds, one pair of runs each")
    ap.add_argument("--set", action="append", default=[], help="a config override passed to every pretrain run")
    ap.add_argument("--arms", type=_arms, default=[],
                    help="comma-separated diagnostic arms run for every seed too: " + ", ".join(ARMS))
    ap.add_argument("--out", type=Path, default=Path("runs/kernel_quality"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"command": shlex.join(["python", "bench/kernel_quality.py", *(sys.argv[1:] if argv is None else argv)]),
               "machine": machine(), "config": args.config, "steps": args.steps, "overrides": list(args.set),
               **measure(args)}
    text = report(results)
    save_paired_bench(args.out, results, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
