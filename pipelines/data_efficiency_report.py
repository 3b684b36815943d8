"""The data-efficiency comparison's figures and report: intervals, multipliers, tables, plot.

Reads the per-window bits of every (model, seed, point) written by pipelines/data_efficiency.py
and turns them into the numbers of results.json and the sentences of report.md; every sentence
is generated from those numbers (dnahnet/analysis/multiplier.py holds the statistics).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dnahnet.analysis.multiplier import (
    ONE_SEED,
    Estimate,
    bootstrap_weights,
    describe_loss,
    describe_multiplier,
    loss_estimate,
    multiplier_estimate,
)
from dnahnet.io.atomic import atomic_open
from dnahnet_pipelines.readout import NOT_RECORDED, precision_sentence


def _arrays(curves_by_seed: dict, name: str, plan, held) -> tuple[np.ndarray, np.ndarray]:
    """(subset bits (S, P, Wsub) at every point, full bits (S, 2, W) at the pre/post-decay readouts)."""
    sub, full = [], []
    readouts = [plan.decay_start, plan.total_steps]
    for seed in sorted(curves_by_seed):
        curve = {p["step"]: p for p in curves_by_seed[seed][name]}
        rows = []
        for step in plan.steps:
            bits = np.asarray(curve[step]["bits"], dtype=float)
            rows.append(bits[held.subset] if curve[step]["set"] == "full" else bits)
        sub.append(rows)
        full.append([np.asarray(curve[s]["bits"], dtype=float) for s in readouts])
    return np.array(sub), np.array(full)


def summarise(cfg, plan, held, curves_by_seed: dict, facts: dict, baselines: dict, command: str | None) -> dict:
    """Every figure of the report, JSON-ready."""
    from dnahnet_pipelines.data_efficiency import default_pairs, matching

    seeds = sorted(curves_by_seed)
    bases = [s * plan.tokens_per_step for s in plan.steps]
    pre_bases, post_bases = plan.decay_start * plan.tokens_per_step, plan.total_steps * plan.tokens_per_step
    counts, counts_sub = held.counts, held.counts[held.subset]
    w_full = bootstrap_weights(len(counts), cfg.bootstrap, seed=1)
    w_sub = bootstrap_weights(len(counts_sub), cfg.bootstrap, seed=2)
    markov_bits = np.asarray(baselines["markov"]["bits"], dtype=float)
    arrays = {name: _arrays(curves_by_seed, name, plan, held) for name in cfg.models}

    models = {}
    for name, (sub, full) in arrays.items():
        last = {seed: {p["step"]: p for p in curves_by_seed[seed][name]} for seed in seeds}
        compression = {r: np.mean([last[s][step]["compression"] for s in seeds], axis=0).tolist() if facts[name]["routed"] else []
                       for r, step in plan.readouts.items()}
        models[name] = {
            **facts[name],
            "pre_decay": loss_estimate(full, counts, 0, weights=w_full).to_dict(),
            "post_decay": loss_estimate(full, counts, 1, weights=w_full).to_dict(),
            "pre_decay_minus_markov": loss_estimate(full, counts, 0, weights=w_full, reference=markov_bits).to_dict(),
            "post_decay_minus_markov": loss_estimate(full, counts, 1, weights=w_full, reference=markov_bits).to_dict(),
            "compression": compression,
            "pre_decay_by_seed": (full[:, 0].sum(-1) / counts.sum()).tolist(),
            "post_decay_by_seed": (full[:, 1].sum(-1) / counts.sum()).tolist(),
            "curve_subset_mean": (sub.sum(-1) / counts_sub.sum()).mean(0).tolist(),
            "curve_subset_by_seed": (sub.sum(-1) / counts_sub.sum()).tolist(),
            "train_s": float(np.mean([last[s][plan.total_steps]["train_s"] for s in seeds])),
            "eval_s": float(np.mean([sum(p["eval_s"] for p in last[s].values()) for s in seeds])),
            "train_precision": sorted({p.get("train_precision") or NOT_RECORDED for s in seeds for p in last[s].values()}),
        }
    pairs_out = []
    for h, b in (cfg.pairs or default_pairs(cfg.models, facts)):
        (hs, hf), (bs, bf) = arrays[h], arrays[b]
        pre = multiplier_estimate(bases, hs, bs, counts_sub, pre_bases, weights=w_sub)
        post = multiplier_estimate(bases, hs, bs, counts_sub, post_bases, weights=w_sub)
        pairs_out.append({
            "hnet": h, "baseline": b, "matching": matching(facts[h], facts[b]),
            "params": [facts[h]["params"], facts[b]["params"]],
            "train_flops_per_base": [facts[h]["train_flops_per_base"], facts[b]["train_flops_per_base"]],
            "train_flops_per_base_causal": [facts[h]["train_flops_per_base_causal"], facts[b]["train_flops_per_base_causal"]],
            "multiplier_pre_decay": pre.to_dict(), "multiplier_post_decay": post.to_dict(),
            "delta_pre_decay": loss_estimate(hf - bf, counts, 0, weights=w_full).to_dict(),
            "delta_post_decay": loss_estimate(hf - bf, counts, 1, weights=w_full).to_dict(),
        })
    markov_sub = float(markov_bits[held.subset].sum() / counts_sub.sum())
    results = {
        "command": command, "genome": cfg.genome, "date": time.strftime("%Y-%m-%d"),
        "seeds": seeds, "seeds_asked": plan.seeds, "bases_per_run": post_bases, "tokens_per_step": plan.tokens_per_step,
        "total_steps": plan.total_steps, "decay_fraction": plan.decay_fraction, "decay_start": plan.decay_start,
        "pre_decay_bases": pre_bases, "steps": plan.steps, "bases": bases,
        "split": {"split_by": plan.data.split_by, "valid_bases": held.split_bases, "valid_intervals": held.split_intervals,
                  "valid_fraction": cfg.valid_fraction, "test_fraction": cfg.test_fraction, "split_bed": cfg.split_bed},
        "heldout": {"windows": len(held.full), "seq_len": plan.data.seq_len, "scored_bases": int(counts.sum()),
                    "subset_windows": len(held.subset), "subset_scored_bases": int(counts_sub.sum()),
                    "markov_selection_windows": len(held.select)},
        "bootstrap": cfg.bootstrap, "models": models, "pairs": pairs_out,
        "baselines": {**{k: v for k, v in baselines.items() if k != "markov"},
                      "markov": {**{k: v for k, v in baselines["markov"].items() if k != "bits"},
                                 "subset_bits_per_base": markov_sub}},
    }
    results["summary_lines"] = summary_lines(results)
    return results


def _est(d: dict) -> Estimate:
    return Estimate(d["value"], d["low"], d["high"], bound=d.get("bound", ""), seeds=d["seeds"])


def summary_lines(results: dict) -> list[str]:
    """One line per model and per pair: what a terminal shows after a run."""
    lines = [f"{n}: {describe_loss(_est(m['pre_decay']))} bits/base pre-decay, {describe_loss(_est(m['post_decay']))} post-decay"
             for n, m in results["models"].items()]
    lines += [f"{p['hnet']} vs {p['baseline']} ({p['matching']}): pre-decay {describe_multiplier(_est(p['multiplier_pre_decay']))}; "
              f"post-decay {describe_multiplier(_est(p['multiplier_post_decay']))}" for p in results["pairs"]]
    m = results["baselines"]["markov"]
    lines.append(f"Markov order {m['order']} (train split): {m['bits_per_base']:.4f} bits/base on the same held-out windows")
    return lines


def write_outputs(out: Path, results: dict) -> None:
    with atomic_open(out / "results.json") as fh:
        json.dump(results, fh, indent=2)
    with atomic_open(out / "curves.tsv") as fh:
        fh.write("model\tseed\tstep\tbases\tsubset_bits_per_base\n")
        for name, m in results["models"].items():
            for seed, row in zip(results["seeds"], m["curve_subset_by_seed"]):
                for step, b, v in zip(results["steps"], results["bases"], row):
                    fh.write(f"{name}\t{seed}\t{step}\t{b}\t{v:.5f}\n")
    plot_curves(out / "curves.png", results)
    with atomic_open(out / "report.md") as fh:
        fh.write(report_markdown(results))


def plot_curves(path: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dnahnet.io.atomic import save_png

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    bases = np.asarray(results["bases"], dtype=float)
    markov = results["baselines"]["markov"]
    finals = []
    for ax, zoom in zip(axes, (False, True)):
        for name, m in results["models"].items():
            by_seed = np.asarray(m["curve_subset_by_seed"])
            (line,) = ax.plot(bases, by_seed.mean(0), marker="o", ms=3, label=name)
            if len(by_seed) > 1:
                ax.fill_between(bases, by_seed.min(0), by_seed.max(0), color=line.get_color(), alpha=0.15, lw=0)
            finals += list(by_seed[:, -1])
        ax.axhline(markov["subset_bits_per_base"], color="grey", ls="--", lw=1, label=f"Markov order {markov['order']}")
        ax.axvline(results["pre_decay_bases"], color="black", ls=":", lw=1, label="end of stable phase")
        ax.set_xscale("log")
        ax.set_xlabel("bases seen (log scale)")
        ax.set_ylabel("held-out bits per base (subset windows)")
        ax.grid(alpha=0.3, which="both")
        if zoom:
            lo, hi = min(finals + [markov["subset_bits_per_base"]]), max(finals + [markov["subset_bits_per_base"]])
            pad = max(0.02, 0.5 * (hi - lo))
            ax.set_ylim(lo - pad, hi + 3 * pad)
            ax.set_xlim(bases[len(bases) // 3], bases[-1] * 1.05)
            ax.set_title("zoom: the last two thirds of the run")
        else:
            ax.set_title(f"mean over {len(results['seeds'])} seed(s); band = seed range")
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def _held_out_sentence(results: dict) -> str:
    h, sp = results["heldout"], results["split"]
    if sp["split_by"] == "fraction":
        where = (f"the valid split: per chromosome, the {sp['valid_fraction']:.0%} of ACGT bases just before the last "
                 f"{sp['test_fraction']:.0%} (the test split, never used here)")
    else:
        where = f"the valid split of the split BED `{sp['split_bed']}` (its test intervals are never used)"
    return (f"Held out: {h['windows']:,} non-overlapping windows of {h['seq_len']:,} bases ({h['scored_bases']:,} scored "
            f"bases; N never scored) from {where}, {sp['valid_bases']:,} bases in all. They are scored in full at the two "
            f"readouts; a fixed random subset of {h['subset_windows']} of them ({h['subset_scored_bases']:,} scored bases) "
            f"is scored at every curve point, and the multipliers are read on that subset. The windows do not depend on "
            f"the training seed; {h['markov_selection_windows']} further valid windows only choose the Markov order.")


def report_markdown(results: dict) -> str:
    r = results
    seeds = len(r["seeds"])
    lines = ["# Data-efficiency comparison", ""]
    if r.get("command"):
        lines += ["Command:", "", f"    {r['command']}", ""]
    seed_note = "" if r["seeds"] == r["seeds_asked"] else f" (of {len(r['seeds_asked'])} asked; only these finished for every model)"
    lines += [
        f"Genome `{r['genome']}`, {r['date']}. {seeds} seed(s) per model: {', '.join(map(str, r['seeds']))}{seed_note}; "
        "seed s sets the initialisation and the data order, and every model of seed s sees the same training windows in "
        "the same order.",
        "",
        f"Budget: {r['total_steps']} optimiser steps of {r['tokens_per_step']:,} bases = {r['bases_per_run']:,} bases per run, "
        f"warmup-stable-decay schedule with the last {r['decay_fraction']:.0%} of steps decaying; the stable phase ends after "
        f"step {r['decay_start']} ({r['pre_decay_bases']:,} bases): the pre-decay readout. Curve points (steps): "
        f"{', '.join(map(str, r['steps']))}.",
        "",
        _held_out_sentence(r),
        "",
        precision_sentence(k for m in r["models"].values() for k in m.get("train_precision", [None])),
        "",
        "## Held-out bits per base (full held-out set)",
        "",
        "| model | params | train MFLOP/base (full attn) | (causal-half) | pre-decay | post-decay | post-decay − Markov | compression L/M (post) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in r["models"].items():
        comp = ", ".join(f"{c:.2f}" for c in m["compression"]["post_decay"]) or "-"
        lines.append(
            f"| {name} | {m['params'] / 1e6:.2f}M | {m['train_flops_per_base'] / 1e6:.2f} | {m['train_flops_per_base_causal'] / 1e6:.2f} | "
            f"{describe_loss(_est(m['pre_decay']))} | {describe_loss(_est(m['post_decay']))} | "
            f"{describe_loss(_est(m['post_decay_minus_markov']), signed=True)} | {comp} |")
    lines += ["", "Per seed (full held-out set), pre-decay / post-decay bits per base:", "",
              "| model | " + " | ".join(f"seed {s}" for s in r["seeds"]) + " |", "|---|" + "---|" * seeds]
    for name, m in r["models"].items():
        cells = [f"{a:.4f} / {b:.4f}" for a, b in zip(m["pre_decay_by_seed"], m["post_decay_by_seed"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    mk = r["baselines"]["markov"]
    lines += ["", f"Markov order {mk['order']} fitted on the train split (order chosen among 1-{len(mk['by_order_on_selection_windows'])} "
              f"on {mk['selection_windows']} valid windows outside the held-out set): **{mk['bits_per_base']:.4f}** bits/base on the "
              f"same held-out windows ({mk['subset_bits_per_base']:.4f} on the subset; the dashed line of the plot). "
              f"lzma (preset 9e): {r['baselines']['lzma']['bits_per_base']:.4f}; bz2 (level 9): {r['baselines']['bz2']['bits_per_base']:.4f}.", ""]
    lines += ["## Data-efficiency multipliers", "",
              "| H-Net | baseline | matching | params H / B | MFLOP/base H / B (full; causal-half) | multiplier pre-decay | multiplier post-decay | Δ bits/base pre-decay (H − B) |",
              "|---|---|---|---|---|---|---|---|"]
    for p in r["pairs"]:
        f, fc = p["train_flops_per_base"], p["train_flops_per_base_causal"]
        lines.append(
            f"| {p['hnet']} | {p['baseline']} | {p['matching']} | {p['params'][0] / 1e6:.2f}M / {p['params'][1] / 1e6:.2f}M | "
            f"{f[0] / 1e6:.2f} / {f[1] / 1e6:.2f}; {fc[0] / 1e6:.2f} / {fc[1] / 1e6:.2f} | "
            f"{describe_multiplier(_est(p['multiplier_pre_decay']))} | {describe_multiplier(_est(p['multiplier_post_decay']))} | "
            f"{describe_loss(_est(p['delta_pre_decay']), signed=True)} |")
    lines += ["", *_verdicts(r), ""]
    interval = (f"95% interval: bootstrap over held-out windows ({r['bootstrap']} replicates, the same windows for every "
                "model, seed and point) combined with a jackknife over seeds, Student t with Satterthwaite degrees of "
                "freedom (dnahnet/analysis/multiplier.py)" if seeds > 1 else
                f"Intervals: {ONE_SEED} (a single seed cannot measure the variation between seeds, which no resampling "
                "of windows sees)")
    lines += [
        "## How to read this", "",
        "Multiplier (as in the H-Net paper): at a readout point R, the bases R divided by the bases the H-Net needs to "
        "reach the baseline's held-out loss at R (curves averaged over seeds, made non-increasing by isotonic regression, "
        "crossings interpolated linearly in log-bases); when the H-Net is worse at R, the bases the baseline needs to "
        "reach the H-Net's loss divided by R (< 1). Pre-decay = R at the end of the stable phase, with only the points "
        "up to it (the paper's readout); post-decay = R at the end of the run, using every point, including the decay "
        "phase, which steepens the end of every curve. '>=' marks a crossing before the first evaluated point.",
        "",
        f"{interval}. 'no detectable difference' = the interval contains 1. Matching: FLOP-matched = training FLOPs per "
        "base (full-attention convention) within 5%; parameter-matched = parameters within 10%. The causal-half "
        "convention counts half of each global attention score block; under it, Transformer-based models need fewer "
        "FLOPs than the full convention says, so a FLOP match under one convention need not hold under the other.",
        "",
        "![curves](curves.png)", "",
    ]
    return "\n".join(lines)


def _verdicts(r: dict) -> list[str]:
    """Sentences generated from the multiplier intervals; no claim without an interval that excludes 1."""
    out = []
    for p in r["pairs"]:
        est = _est(p["multiplier_pre_decay"])
        who = f"{p['hnet']} against {p['baseline']} ({p['matching']})"
        if not est.has_interval:
            out.append(f"- {who}: pre-decay multiplier {describe_multiplier(est)}; one seed cannot support a claim either way.")
        elif est.contains(1.0):
            out.append(f"- {who}: no detectable difference in data efficiency at the pre-decay readout "
                       f"(interval {est.low:.2f}-{est.high:.2f}x).")
        elif est.low > 1:
            out.append(f"- {who}: the H-Net needs fewer bases (pre-decay multiplier {describe_multiplier(est)}).")
        else:
            out.append(f"- {who}: the H-Net needs more bases (pre-decay multiplier {describe_multiplier(est)}).")
        delta = _est(p["delta_pre_decay"])
        if est.has_interval and delta.has_interval and est.contains(1.0) != delta.contains(0.0):
            out[-1] += (f" The two readings disagree: the full held-out set's difference at the readout, "
                        f"{describe_loss(delta, signed=True)} bits/base, {'excludes' if not delta.contains(0.0) else 'includes'} "
                        f"0, while the multiplier, read on the {r['heldout']['subset_windows']}-window subset, "
                        f"{'includes' if est.contains(1.0) else 'excludes'} 1; neither alone settles this pair.")
    return out
