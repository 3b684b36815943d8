"""Data-efficiency comparison: H-Net against isotropic baselines on identical data.

Every model trains on the same windows in the same order (the loader is a pure
function of seed and step), is evaluated on the same held-out windows at
log-spaced points of bases seen, and each H-Net / baseline pair gets a
data-efficiency multiplier: the bases the baseline needs to reach its final
held-out loss divided by the bases the H-Net needs to reach that same loss
(interpolated on the H-Net's curve in log-bases; "not reached" when it never
gets there). The order-K Markov model and general-purpose compressors (lzma,
bz2) on the same held-out sequence give the scale.

    python -m pipelines.data_efficiency --genome chr22.fa.gz --models cpu-transformer,cpu-hnet-transformer --bases 2000000 --out runs/compare
    dnahnet compare ... (same options)

Resumable: each model trains into OUT/models/NAME with checkpoints; a rerun
continues unfinished models and reuses finished ones.
"""

from __future__ import annotations

import argparse
import bz2
import json
import lzma
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnahnet.config import DataConfig, ModelConfig, TrainConfig, dataclass_from_dict, load_preset
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, check_writable_dir
from dnahnet.perf.allocator import keep_freed_memory

# Which baseline each H-Net is compared with, by the presets' families.
FLOP_TOLERANCE = 0.05


@dataclass
class CompareConfig:
    """One comparison: models, shared data, budget and evaluation points."""

    genome: str
    models: list[str]
    bases: int
    out: str
    eval_points: int = 12
    seed: int = 0
    seq_len: int | None = None
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    eval_windows: int | None = None
    allow_unmatched: bool = False
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (hnet, baseline); default from names


def log_spaced_steps(total_steps: int, points: int) -> list[int]:
    """`points` distinct steps from ~1% of the run to its end, evenly spaced in log(step)."""
    first = max(1, total_steps // 100)
    raw = np.geomspace(first, total_steps, num=max(points, 2))
    return sorted({int(round(x)) for x in raw} | {total_steps})


def bases_to_reach(bases: list[float], losses: list[float], target: float) -> float | None:
    """First point where the curve reaches `target`, linearly interpolated in log(bases); None if never."""
    for i, loss in enumerate(losses):
        if loss <= target:
            if i == 0:
                return bases[0]
            b0, b1, l0, l1 = math.log(bases[i - 1]), math.log(bases[i]), losses[i - 1], losses[i]
            frac = 0.0 if l0 == l1 else (l0 - target) / (l0 - l1)
            return math.exp(b0 + frac * (b1 - b0))
    return None


def data_efficiency_multiplier(
    baseline: tuple[list[float], list[float]], hnet: tuple[list[float], list[float]]
) -> float | None:
    """Bases the baseline needs for its final loss / bases the H-Net needs for the same loss."""
    b_bases, b_losses = baseline
    target = b_losses[-1]
    needed_baseline = bases_to_reach(b_bases, b_losses, target)
    needed_hnet = bases_to_reach(*hnet, target)
    if needed_hnet is None or needed_baseline is None:
        return None
    return needed_baseline / needed_hnet


def default_pairs(models: list[str], configs: dict[str, ModelConfig]) -> list[tuple[str, str]]:
    """Pair each routed model with each isotropic model, preferring matching main-network families."""
    hnets = [m for m in models if configs[m].n_routed > 0]
    isos = [m for m in models if configs[m].n_routed == 0]
    pairs = []
    for h in hnets:
        for b in isos:
            pairs.append((h, b))
    return pairs


def compressor_bits_per_base(seq: bytes) -> dict[str, float]:
    """lzma and bz2 at their strongest settings on the upper-case ACGT held-out sequence."""
    n = len(seq)
    return {
        "lzma": 8 * len(lzma.compress(seq, preset=9 | lzma.PRESET_EXTREME)) / n,
        "bz2": 8 * len(bz2.compress(seq, compresslevel=9)) / n,
    }


def _configs(cfg: CompareConfig) -> tuple[dict[str, ModelConfig], dict[str, TrainConfig], DataConfig]:
    models, trains = {}, {}
    data_dict = None
    for name in cfg.models:
        preset = load_preset(name)
        models[name] = ModelConfig.from_dict(preset["model"])
        trains[name] = dataclass_from_dict(TrainConfig, preset.get("train", {}), what=f"{name} train config")
        if data_dict is None:
            data_dict = dict(preset.get("data", {}))
    data_dict.update(genome=[str(Path(cfg.genome).resolve())], seed=cfg.seed, split_by="fraction",
                     valid_fraction=cfg.valid_fraction, test_fraction=cfg.test_fraction)
    if cfg.seq_len:
        data_dict["seq_len"] = cfg.seq_len
    if cfg.eval_windows:
        data_dict["eval_windows"] = cfg.eval_windows
    data = dataclass_from_dict(DataConfig, data_dict, what="data config")
    return models, trains, data


def check_matched(models: dict[str, ModelConfig], seq_len: int, allow_unmatched: bool) -> dict[str, float]:
    """Training FLOPs per base of each model; refuse a comparison that is not matched within 5%."""
    from dnahnet.nn.flops import count_flops

    flops = {name: count_flops(c, seq_len).per_base() for name, c in models.items()}
    lo, hi = min(flops, key=flops.get), max(flops, key=flops.get)
    spread = flops[hi] / flops[lo] - 1
    if spread > FLOP_TOLERANCE and not allow_unmatched:
        raise DnahnetInputError(
            f"models are not matched in FLOPs per base: {hi} needs {spread:.0%} more than {lo} "
            f"({flops[hi] / 1e6:.2f} vs {flops[lo] / 1e6:.2f} MFLOP/base; tolerance {FLOP_TOLERANCE:.0%}); "
            "pass --allow-unmatched to compare anyway (the paper's protocol)"
        )
    return flops


def _train_one(name, model_cfg, train_cfg, data_cfg, out_dir: Path, checkpoints: list[int]) -> list[dict]:
    """Train (or resume) one model, evaluating at `checkpoints`; return its curve."""
    from dnahnet.train import checkpoint as ckpt
    from dnahnet.train.trainer import pretrain

    curve_path = out_dir / "curve.jsonl"
    curve = [json.loads(x) for x in curve_path.read_text().splitlines()] if curve_path.exists() else []
    done = {p["step"] for p in curve}
    if curve and all(k in done for k in checkpoints):  # finished (or trained further for a larger grid)
        return [p for p in curve if p["step"] in set(checkpoints)]

    def on_step(trainer, metrics):
        k = trainer.step
        if k in checkpoints and k not in done:
            ev = trainer.evaluate()
            point = {"step": k, "bases": k * trainer.config.tokens_per_step, "elapsed_s": trainer.elapsed,
                     "train_bases_per_s": metrics.get("bases_per_s"), **ev}
            curve.append(point)
            done.add(k)
            with open(curve_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(point) + "\n")
            trainer.save([ckpt.LATEST])  # every curve point is also a resume point

    resume = ckpt.find_checkpoint(out_dir) is not None
    if resume:
        # Points after the last checkpoint are recomputed on resume; drop them now.
        step = json.loads((ckpt.find_checkpoint(out_dir) / ckpt.TRAIN).read_text()).get("step", 0)
        curve = [p for p in curve if p["step"] <= step]
        done = {p["step"] for p in curve}
        with atomic_open(curve_path) as fh:
            fh.writelines(json.dumps(p) + "\n" for p in curve)
    pretrain(model_cfg, train_cfg, data_cfg, out_dir, resume=resume, overwrite=not resume, on_step=on_step)
    return curve


def run(cfg: CompareConfig, command: str | None = None) -> dict:
    """Run (or resume) a comparison and write results.json, curves.tsv, curves.png and report.md."""
    out = check_writable_dir(cfg.out)
    models, trains, data = _configs(cfg)
    flops = check_matched(models, data.seq_len, cfg.allow_unmatched)
    tokens = {trains[m].tokens_per_step for m in cfg.models}
    if len(tokens) != 1:
        raise DnahnetInputError(f"presets disagree on tokens_per_step ({sorted(tokens)}); identical data order needs one value")
    tokens_per_step = tokens.pop()
    total_steps = math.ceil(cfg.bases / tokens_per_step)
    if total_steps < 2:
        raise DnahnetInputError(
            f"--bases {cfg.bases:,} is less than two optimiser steps of {tokens_per_step:,} bases; a curve needs more"
        )
    points = log_spaced_steps(total_steps, cfg.eval_points)
    pairs = cfg.pairs or default_pairs(cfg.models, models)

    curves: dict[str, list[dict]] = {}
    for name in cfg.models:
        train = trains[name]
        train.steps, train.bases = total_steps, None
        train.eval_every, train.keep_best, train.checkpoint_every = 0, False, max(train.checkpoint_every, 1)
        train.seed = cfg.seed
        t0 = time.perf_counter()
        curves[name] = _train_one(name, models[name], train, data, check_writable_dir(out / "models" / name), points)
        print(f"[compare] {name}: final {curves[name][-1]['eval_bits_per_base']:.4f} bits/base "
              f"({time.perf_counter() - t0:.0f} s this run)", flush=True)

    baselines = classical_baselines(data)
    results = summarise(cfg, curves, pairs, flops, baselines, command)
    write_outputs(out, results, curves)
    return results


def classical_baselines(data: DataConfig) -> dict:
    """Markov (best order on the held-out windows) and compressors on the same held-out windows."""
    from dnahnet.data.baseline import markov_baseline

    markov = markov_baseline(data.genome[0], data, order=None, max_order=10)
    parts = []
    for w in markov.held_out:
        ids = markov.genome.read(w.chrom, w.start, w.end)[0]
        parts.append(ids[ids != ord("N")].tobytes())
    seq = b"".join(parts)
    return {"markov": {"order": markov.order, "bits_per_base": markov.bits_per_base, "by_order": markov.by_order},
            **{k: {"bits_per_base": v} for k, v in compressor_bits_per_base(seq).items()},
            "held_out_bases": len(seq)}


def summarise(cfg, curves, pairs, flops, baselines, command) -> dict:
    models = {}
    for name, curve in curves.items():
        final = curve[-1]
        models[name] = {
            "final_bits_per_base": final["eval_bits_per_base"],
            "final_compression": final.get("eval_compression", []),
            "bases": final["bases"],
            "train_flops_per_base": flops[name],
            "wall_s": final["elapsed_s"],
            "wall_s_per_million_bases": final["elapsed_s"] / final["bases"] * 1e6,
            "wall_s_per_petaflop": final["elapsed_s"] / (flops[name] * final["bases"] / 1e15),
        }
    multipliers = []
    for hnet, base in pairs:
        curve_b = ([p["bases"] for p in curves[base]], [p["eval_bits_per_base"] for p in curves[base]])
        curve_h = ([p["bases"] for p in curves[hnet]], [p["eval_bits_per_base"] for p in curves[hnet]])
        mult = data_efficiency_multiplier(curve_b, curve_h)
        multipliers.append({"hnet": hnet, "baseline": base, "target_bits_per_base": curve_b[1][-1],
                            "multiplier": mult, "reached": mult is not None})
    return {"command": command, "genome": cfg.genome, "bases": cfg.bases, "seed": cfg.seed,
            "date": time.strftime("%Y-%m-%d"), "models": models, "multipliers": multipliers, "baselines": baselines}


def write_outputs(out: Path, results: dict, curves: dict[str, list[dict]]) -> None:
    with atomic_open(out / "results.json") as fh:
        json.dump(results, fh, indent=2)
    with atomic_open(out / "curves.tsv") as fh:
        fh.write("model\tstep\tbases\teval_bits_per_base\tcompression\telapsed_s\n")
        for name, curve in curves.items():
            for p in curve:
                comp = ",".join(f"{c:.3f}" for c in p.get("eval_compression", []))
                fh.write(f"{name}\t{p['step']}\t{p['bases']}\t{p['eval_bits_per_base']:.5f}\t{comp or '-'}\t{p['elapsed_s']:.1f}\n")
    plot_curves(out / "curves.png", results, curves)
    with atomic_open(out / "report.md") as fh:
        fh.write(report_markdown(results))


def plot_curves(path: Path, results: dict, curves: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dnahnet.io.atomic import save_png

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    markov = results["baselines"]["markov"]
    finals = [curve[-1]["eval_bits_per_base"] for curve in curves.values()]
    for ax, zoom in zip(axes, (False, True)):
        for name, curve in curves.items():
            ax.plot([p["bases"] for p in curve], [p["eval_bits_per_base"] for p in curve], marker="o", ms=3, label=name)
        ax.axhline(markov["bits_per_base"], color="grey", ls="--", lw=1, label=f"Markov order {markov['order']}")
        ax.set_xscale("log")
        ax.set_xlabel("bases seen (log scale)")
        ax.set_ylabel("held-out bits per base")
        ax.grid(alpha=0.3, which="both")
        if zoom:  # the part where the models separate: around their final losses
            lo = min(finals + [markov["bits_per_base"]])
            hi = max(finals + [markov["bits_per_base"]])
            pad = max(0.02, 0.5 * (hi - lo))
            ax.set_ylim(lo - pad, hi + 3 * pad)
            ax.set_title("zoom on the final losses")
        else:
            ax.set_title("Data efficiency at matched FLOPs per base")
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def report_markdown(results: dict) -> str:
    lines = ["# Data-efficiency comparison", ""]
    if results.get("command"):
        lines += ["Command:", "", f"    {results['command']}", ""]
    lines += [f"Genome `{results['genome']}`, {results['bases']:,} training bases per model, seed {results['seed']}, {results['date']}.", ""]
    lines += ["| model | held-out bits/base | compression L/M | train MFLOP/base | wall s per Mbase | wall s per PFLOP |",
              "|---|---|---|---|---|---|"]
    for name, m in results["models"].items():
        comp = ", ".join(f"{c:.2f}" for c in m["final_compression"]) or "-"
        lines.append(f"| {name} | {m['final_bits_per_base']:.4f} | {comp} | {m['train_flops_per_base'] / 1e6:.2f} | "
                     f"{m['wall_s_per_million_bases']:.1f} | {m['wall_s_per_petaflop']:.0f} |")
    b = results["baselines"]
    lines += ["", "| classical baseline | bits/base |", "|---|---|",
              f"| Markov order {b['markov']['order']} (best of 1-10) | {b['markov']['bits_per_base']:.4f} |",
              f"| lzma (preset 9e) | {b['lzma']['bits_per_base']:.4f} |", f"| bz2 (level 9) | {b['bz2']['bits_per_base']:.4f} |", ""]
    lines += ["| H-Net | baseline | baseline's final bits/base | data-efficiency multiplier |", "|---|---|---|---|"]
    for m in results["multipliers"]:
        value = f"{m['multiplier']:.2f}x" if m["reached"] else "not reached"
        lines.append(f"| {m['hnet']} | {m['baseline']} | {m['target_bits_per_base']:.4f} | {value} |")
    lines += ["", "Multiplier = bases the baseline needs to reach its final held-out loss / bases the H-Net needs to reach "
              "the same loss (linear interpolation in log-bases). Held-out: the last 5% of each chromosome's ACGT bases "
              "(fraction split); N never scored.", "", "![curves](curves.png)", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> CompareConfig:
    ap = argparse.ArgumentParser(prog="python -m pipelines.data_efficiency", description=__doc__.splitlines()[0])
    ap.add_argument("--genome", required=True)
    ap.add_argument("--models", required=True, help="comma-separated presets")
    ap.add_argument("--bases", type=int, required=True, help="training bases per model")
    ap.add_argument("--out", required=True)
    ap.add_argument("--eval-points", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--eval-windows", type=int)
    ap.add_argument("--allow-unmatched", action="store_true")
    a = ap.parse_args(argv)
    return CompareConfig(genome=a.genome, models=[m.strip() for m in a.models.split(",") if m.strip()], bases=a.bases,
                         out=a.out, eval_points=a.eval_points, seed=a.seed, seq_len=a.seq_len,
                         eval_windows=a.eval_windows, allow_unmatched=a.allow_unmatched)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = parse_args(argv)
        results = run(cfg, command="python -m pipelines.data_efficiency " + shlex.join(argv))
    except DnahnetInputError as exc:
        print(f"data_efficiency: error: {exc.one_line()}", file=sys.stderr)
        return 2
    for m in results["multipliers"]:
        print(f"{m['hnet']} vs {m['baseline']}: " + (f"{m['multiplier']:.2f}x" if m["reached"] else "not reached"))
    return 0


if __name__ == "__main__":
    keep_freed_memory()
    sys.exit(main())
