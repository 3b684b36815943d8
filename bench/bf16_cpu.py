"""bf16 autocast against fp32 on CPU: training speed and held-out quality, then scoring throughput.

1. Two `dnahnet pretrain` runs of the same preset, steps and seed, one per precision
   (`--set train.precision=fp32|bf16`), evaluated once at the last step. Reported:
   seconds per optimiser step (median over the log windows after the first, and
   the whole-run mean; evaluation and checkpoints excluded), the last training loss
   and the held-out bits/base each run measured in its own precision.
2. The fp32-trained checkpoint scores one genome region in fp32 and in bf16 (the
   code `dnahnet score` runs: `load(..., dtype=...)` then `DnaModel.score` with the
   default windows), alternating precisions `--repeats` times: bases/s (best and
   median), bits/base of each, and the largest per-base difference.

On a CPU without native bf16 (no avx512_bf16/amx_bf16) the bf16 runs need
DNAHNET_CPU_BF16=1 and measure PyTorch's emulation; the report says which.

    OMP_NUM_THREADS=1 python bench/bf16_cpu.py --steps 40 --out runs/bf16-cpu

Results: <out>/results.json and <out>/report.md (command, machine, date at the top).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_GENOME = Path(os.environ.get("DNAHNET_SHARED_DATA", "/work/shared/data")) / "hg19-chr22" / "chr22.fa.gz"


def pretrain(precision: str, args, env: dict) -> dict:
    """One pretrain run in a subprocess; its metrics.jsonl summarised."""
    run = pretrain_run(args.out / f"train-{precision}", args.config, args.steps, args.seed,
                       [f"train.precision={precision}"], env if precision == "bf16" else None, f"pretrain {precision}")
    info = json.loads((Path(run["checkpoint"]) / "train.json").read_text())
    return {**run, "precision": info["precision"], "precision_note": info.get("precision_note")}


def pretrain_run(out: Path, config: str, steps: int, seed: int, sets: list[str], env: dict | None, label: str,
                 launcher: tuple[str, ...] = ("-m", "dnahnet_cli")) -> dict:
    """`dnahnet pretrain` of `config` for `steps` steps in a subprocess (environment `env`, None: this one's), evaluated
    once at the last step; its metrics.jsonl summarised: seconds per step (median over the log windows after the
    first, and the whole-run mean; evaluation and checkpoints excluded), the last loss, the held-out bits/base.
    `launcher` is what the interpreter runs the command with (bench/kernel_arms.py's arms put themselves first)."""
    cmd = [sys.executable, *launcher, "pretrain", "--config", config, "--steps", str(steps),
           "--eval-every", str(steps), "--seed", str(seed), "--device", "cpu", "--out", str(out),
           "--overwrite", "--set", f"train.checkpoint_every={steps}", *(a for s in sets for a in ("--set", s))]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{label} failed:\n{proc.stderr[-3000:]}")
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    logged = [m for m in lines if "elapsed_s" in m]
    per_window = [(b["elapsed_s"] - a["elapsed_s"]) / (b["step"] - a["step"]) for a, b in zip(logged, logged[1:])]
    evals = [m for m in lines if "eval_bits_per_base" in m]
    return {
        "command": shlex.join(cmd), "wall_s": wall, "steps": steps,
        "s_per_step_median": statistics.median(per_window) if per_window else None,
        "s_per_step_mean": logged[-1]["elapsed_s"] / logged[-1]["step"],
        "last_loss": logged[-1]["loss"], "eval_bits_per_base": evals[-1]["eval_bits_per_base"],
        "eval_compression": evals[-1].get("eval_compression"),
        "checkpoint": str(out / "latest"), "stdout_tail": proc.stdout[-400:],
    }


def score_region(args, env: dict) -> dict:
    """fp32 vs bf16 scoring of one region with the fp32-trained checkpoint, alternating."""
    import numpy as np
    import pysam
    import torch

    from dnahnet.infer.model import load

    torch.manual_seed(0)
    chrom, span = args.region.replace(",", "").split(":")
    start, end = (int(x) for x in span.split("-"))
    seq = pysam.FastaFile(str(args.genome)).fetch(chrom, start - 1, end)
    models = {"fp32": load(args.out / "train-fp32" / "latest", device="cpu", dtype="fp32")}
    saved = os.environ.get("DNAHNET_CPU_BF16")
    os.environ.update({k: v for k, v in env.items() if k == "DNAHNET_CPU_BF16"})
    models["bf16"] = load(args.out / "train-fp32" / "latest", device="cpu", dtype="bf16")
    if saved is None:
        os.environ.pop("DNAHNET_CPU_BF16", None)
    times: dict[str, list[float]] = {p: [] for p in models}
    scores = {}
    for _ in range(args.repeats):
        for p, model in models.items():
            t0 = time.perf_counter()
            scores[p] = model.score([seq])[0]
            times[p].append(time.perf_counter() - t0)
    delta = np.abs(scores["fp32"] - scores["bf16"])
    delta = delta[np.isfinite(delta)]
    out = {"region": args.region, "bases": len(seq), "n_bases": seq.upper().count("N"), "repeats": args.repeats,
           "max_abs_delta_log2p": float(delta.max()), "mean_abs_delta_log2p": float(delta.mean())}
    for p, model in models.items():
        out[p] = {"precision": model.precision.describe(), "seconds": times[p],
                  "bases_per_s_best": len(seq) / min(times[p]), "bases_per_s_median": len(seq) / statistics.median(times[p]),
                  "bits_per_base": float(-np.nanmean(scores[p]))}
    return out


def report(results: dict) -> str:
    tr, sc = results["train"], results["score"]
    lines = [f"# bf16 autocast vs fp32 on CPU ({results['date']})", "",
             f"Command: `{results['command']}`", f"Machine: {results['machine']}", f"CPU bf16: {results['cpu_bf16']}", "",
             "| | fp32 | bf16 autocast | bf16 / fp32 |", "|---|---|---|---|"]
    f, b = tr["fp32"], tr["bf16"]
    lines.append(f"| train s/step (median of log windows) | {f['s_per_step_median']:.3f} | {b['s_per_step_median']:.3f} | "
                 f"{b['s_per_step_median'] / f['s_per_step_median']:.2f}x |")
    lines.append(f"| train s/step (whole-run mean) | {f['s_per_step_mean']:.3f} | {b['s_per_step_mean']:.3f} | "
                 f"{b['s_per_step_mean'] / f['s_per_step_mean']:.2f}x |")
    lines.append(f"| last training loss (nats) | {f['last_loss']:.4f} | {b['last_loss']:.4f} | {b['last_loss'] - f['last_loss']:+.4f} |")
    lines.append(f"| held-out bits/base at step {f['steps']} | {f['eval_bits_per_base']:.4f} | {b['eval_bits_per_base']:.4f} | "
                 f"{b['eval_bits_per_base'] - f['eval_bits_per_base']:+.4f} |")
    sf, sb = sc["fp32"], sc["bf16"]
    lines.append(f"| score bases/s, {sc['region']} (best of {sc['repeats']}) | {sf['bases_per_s_best']:,.0f} | "
                 f"{sb['bases_per_s_best']:,.0f} | {sb['bases_per_s_best'] / sf['bases_per_s_best']:.2f}x |")
    lines.append(f"| score bits/base (fp32-trained checkpoint) | {sf['bits_per_base']:.5f} | {sb['bits_per_base']:.5f} | "
                 f"{sb['bits_per_base'] - sf['bits_per_base']:+.5f} |")
    lines += ["", f"Per-base |delta log2 P| scoring the region: max {sc['max_abs_delta_log2p']:.4f}, "
              f"mean {sc['mean_abs_delta_log2p']:.5f} bits.", "",
              *(f"- {p}: `{tr[p]['command']}` ({tr[p]['precision_note']})" for p in ("fp32", "bf16"))]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="cpu-hnet-transformer")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--genome", type=Path, default=DEFAULT_GENOME)
    ap.add_argument("--region", default="chr22:20,000,001-20,200,000")
    ap.add_argument("--repeats", type=int, default=1, help="Alternating fp32/bf16 scoring passes.")
    ap.add_argument("--out", type=Path, default=Path("runs/bf16-cpu"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from dnahnet.devices import cpu_bf16_support

    native, because = cpu_bf16_support()
    env = dict(os.environ)
    if not native:  # measure the emulation (the bf16 runs only), and say so
        env["DNAHNET_CPU_BF16"] = "1"
    results = {
        "command": shlex.join([sys.executable, *sys.argv]), "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        "cpu_bf16": f"{'native' if native else 'NOT native (emulated; forced with DNAHNET_CPU_BF16=1)'}: {because}",
        "train": {p: pretrain(p, args, env) for p in ("fp32", "bf16")},
    }
    results["score"] = score_region(args, env)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "report.md").write_text(report(results))
    print(report(results))


if __name__ == "__main__":
    main()
