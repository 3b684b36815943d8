"""Data-efficiency comparison: H-Nets against isotropic and fixed-chunk baselines, with seeds and intervals.

Protocol (what `dnahnet compare` measures):
- every model trains with a warmup-stable-decay schedule for the same number of
  steps; seed s sets both the initialisation and the data order, and all models
  of seed s see the same training windows in the same order;
- held-out = windows of the valid split (never the test split): a full set of at
  least `heldout_bases` scored bases, evaluated at the two readout points (end of
  the stable phase = pre-decay, end of the run = post-decay), and a fixed random
  subset of it (`eval_windows` windows) evaluated at every point of the curve:
  log-spaced points plus points dense in the second half of the stable phase;
- per model: bits per base at both readouts on the full set, with intervals;
  per H-Net / baseline pair: the multiplier read pre-decay against pre-decay
  (the H-Net paper's protocol) and post-decay against post-decay, on the subset
  curves (dnahnet/analysis/multiplier.py holds the statistics);
- an order-k Markov model fitted on the train split (k chosen on valid windows
  outside the held-out set) scored on the same windows, and lzma/bz2 for scale.

    python -m dnahnet_pipelines.data_efficiency --genome chr22.fa.gz --bases 2000000 --out runs/compare
    dnahnet compare ... (same options)

Resumable: each (model, seed) trains into OUT/models/NAME/seedS with a checkpoint
at every curve point; a rerun continues unfinished runs and reuses finished ones.
`--shard K/N` trains only every N-th run (for parallel processes) and writes no
report; `--report-only` writes the report from the seeds every model has finished.
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

from dnahnet.config import DataConfig, ModelConfig, TrainConfig, dataclass_from_dict, load_preset
from dnahnet.errors import DnahnetInputError, report_input_error
from dnahnet.io.atomic import atomic_open, check_writable_dir
from dnahnet.perf.allocator import keep_freed_memory

DEFAULT_MODELS = ["cpu-transformer", "cpu-mamba2", "cpu-hnet-transformer", "cpu-hnet-mamba2", "cpu-every-k"]
FLOP_TOLERANCE = 0.05
PARAM_TOLERANCE = 0.10
EVAL_SEED = 0  # the held-out windows do not depend on the training seeds: every seed is scored on the same set
MARKOV_SELECT_WINDOWS = 128  # valid windows outside the held-out set that choose the Markov order
MAX_MARKOV_ORDER = 10


@dataclass
class CompareConfig:
    """One comparison: models, shared data, budget, seeds and evaluation design."""

    genome: str
    bases: int
    out: str
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    seeds: int = 3
    seed: int = 0  # first seed; seeds are seed, seed + 1, ...
    eval_points: int = 12  # log-spaced points over the stable phase
    dense_points: int = 6  # extra points evenly spaced over the second half of the stable phase
    eval_windows: int = 64  # the subset scored at every point
    heldout_bases: int = 1_000_000  # the full held-out set scored at the readouts
    seq_len: int | None = None
    batch_size: int = 32  # evaluation windows per forward pass
    decay_fraction: float | None = None  # default: the presets' (must agree); 0.2 when a preset is not WSD
    split_by: str = "fraction"
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    split_bed: str | None = None  # one BED labelled train/valid/test (split_by "bed")
    device: str = "auto"
    bootstrap: int = 1000
    allow_unmatched: bool = False
    shard: tuple[int, int] = (0, 1)
    report_only: bool = False
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (hnet, baseline); default from the configs

    def check(self) -> None:
        """Refuse settings that cannot give a curve, with one line naming the option."""
        if not self.models:
            raise DnahnetInputError("--models: no model named (give comma-separated presets)")
        if len(set(self.models)) != len(self.models):
            raise DnahnetInputError(f"--models: a model is named twice ({','.join(self.models)})")
        checks = [
            (self.bases > 0, f"--bases must be positive, got {self.bases}"),
            (self.seeds >= 1, f"--seeds must be at least 1, got {self.seeds}"),
            (self.eval_points >= 2, f"--eval-points must be at least 2, got {self.eval_points}"),
            (self.dense_points >= 0, f"--dense-points must be >= 0, got {self.dense_points}"),
            (self.eval_windows >= 1, f"--eval-windows must be at least 1, got {self.eval_windows}"),
            (self.heldout_bases >= 1, f"--heldout-bases must be positive, got {self.heldout_bases}"),
            (self.seq_len is None or self.seq_len >= 2, f"--seq-len must be at least 2, got {self.seq_len}"),
            (self.batch_size >= 1, f"--batch-size must be positive, got {self.batch_size}"),
            (self.bootstrap >= 100, f"--bootstrap must be at least 100 replicates, got {self.bootstrap}"),
            (self.decay_fraction is None or 0 < self.decay_fraction < 1,
             f"--decay-fraction must be in (0, 1), got {self.decay_fraction}"),
            (0 <= self.shard[0] < self.shard[1], f"--shard must be K/N with 0 <= K < N, got {self.shard[0]}/{self.shard[1]}"),
        ]
        for ok, message in checks:
            if not ok:
                raise DnahnetInputError(message)


# ----- plan: configs, steps, windows ---------------------------------------------------------------
@dataclass
class Plan:
    """Everything fixed before training: configs, steps, readouts and the held-out windows."""

    models: dict[str, ModelConfig]
    trains: dict[str, TrainConfig]
    data: DataConfig
    total_steps: int
    tokens_per_step: int
    decay_fraction: float
    decay_start: int  # pre-decay readout: steps done when the learning rate first drops
    steps: list[int]
    seeds: list[int]

    @property
    def readouts(self) -> dict[str, int]:
        return {"pre_decay": self.decay_start, "post_decay": self.total_steps}


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise DnahnetInputError(f"--shard must look like K/N (e.g. 0/2), got {text!r}") from None
    return k, n


def curve_steps(total: int, decay_start: int, points: int, dense: int) -> list[int]:
    """Log-spaced steps from 5% of the run to the end of the stable phase, `dense` more evenly spaced over
    its second half, the middle of the decay and the last step."""
    first = max(1, round(total * 0.05))
    steps = {int(round(x)) for x in np.geomspace(first, decay_start, num=max(points, 2))}
    if dense:
        steps |= {int(round(x)) for x in np.linspace(decay_start / 2, decay_start, dense + 1)}
    steps |= {decay_start, (decay_start + total) // 2, total}
    return sorted(s for s in steps if 1 <= s <= total)


def decay_start_step(total: int, decay_fraction: float) -> int:
    """Steps done when the WSD learning rate first drops (dnahnet/train/schedule.py's arithmetic)."""
    return total - max(round(decay_fraction * total), 1)


def make_plan(cfg: CompareConfig) -> Plan:
    """Configs and steps of every run; refuse comparisons whose models cannot share one data order."""
    cfg.check()
    models, trains, data_dict = {}, {}, None
    fractions = set()
    for name in cfg.models:
        preset = load_preset(name)
        models[name] = ModelConfig.from_dict(preset["model"])
        train = dataclass_from_dict(TrainConfig, preset.get("train", {}), what=f"{name} train config")
        fractions.add(train.decay_fraction if train.schedule == "wsd" else None)
        trains[name] = train
        if data_dict is None:
            data_dict = dict(preset.get("data", {}))
    if cfg.decay_fraction is not None:
        decay = cfg.decay_fraction
    else:
        wsd = {f for f in fractions if f is not None}
        if len(wsd) > 1:
            raise DnahnetInputError(f"the presets disagree on decay_fraction ({sorted(wsd)}); pass --decay-fraction")
        decay = wsd.pop() if wsd else 0.2
    data_dict.update(genome=[str(Path(cfg.genome).resolve())], seed=cfg.seed, eval_windows=0, split_by=cfg.split_by,
                     valid_fraction=cfg.valid_fraction, test_fraction=cfg.test_fraction)
    if cfg.split_by == "bed":
        if not cfg.split_bed:
            raise DnahnetInputError("--split-by bed needs --split-bed (a BED labelled train/valid/test)")
        data_dict["train_bed"] = str(Path(cfg.split_bed).resolve())
    if cfg.seq_len:
        data_dict["seq_len"] = cfg.seq_len
    data = dataclass_from_dict(DataConfig, data_dict, what="data config")
    tokens = {trains[m].tokens_per_step for m in cfg.models}
    if len(tokens) != 1:
        raise DnahnetInputError(f"presets disagree on tokens_per_step ({sorted(tokens)}); identical data order needs one value")
    tokens_per_step = tokens.pop()
    if tokens_per_step % data.seq_len:
        raise DnahnetInputError(f"--seq-len {data.seq_len} does not divide tokens_per_step {tokens_per_step}")
    total = math.ceil(cfg.bases / tokens_per_step)
    decay_start = decay_start_step(total, decay)
    if decay_start < 4:
        raise DnahnetInputError(
            f"--bases {cfg.bases:,} gives {total} optimiser steps of {tokens_per_step:,} bases, "
            f"too few for a stable phase and a decay (need at least {math.ceil(4 / (1 - decay)) + 1})"
        )
    for name, train in trains.items():
        train.schedule, train.decay_fraction = "wsd", decay
        train.steps, train.bases = total, None
        train.eval_every, train.keep_best = 0, False
        train.checkpoint_every = max(train.checkpoint_every, 1)
        train.device = cfg.device
    steps = curve_steps(total, decay_start, cfg.eval_points, cfg.dense_points)
    return Plan(models, trains, data, total, tokens_per_step, decay, decay_start, steps,
                list(range(cfg.seed, cfg.seed + cfg.seeds)))


@dataclass
class HeldOut:
    """The held-out windows: `full` (readouts), `subset` (indices into full; every point), `select` (Markov order)."""

    full: list
    subset: np.ndarray
    select: list
    counts: np.ndarray  # scored bases per full window
    split_bases: int
    split_intervals: list


def held_out_windows(cfg: CompareConfig, data: DataConfig) -> HeldOut:
    """Non-overlapping valid-split tiles: enough for `heldout_bases` scored bases plus the Markov selection set."""
    from dnahnet.data.intervals import eval_windows
    from dnahnet.data.setup import genome_source_and_splits

    source, splits = genome_source_and_splits(data)
    valid = splits["valid"]
    if not valid.intervals:
        raise DnahnetInputError("the valid split is empty; the comparison scores held-out windows of the valid split")
    n_full = math.ceil(cfg.heldout_bases / (data.seq_len - 1) * 1.02)
    n_select = min(MARKOV_SELECT_WINDOWS, max(4, n_full // 8))
    wins = eval_windows(valid, n_full + n_select, data.seq_len, EVAL_SEED, max_n_fraction=data.max_n_fraction)
    overlap = any(a.chrom == b.chrom and b.start < a.end for a, b in zip(wins, wins[1:]))
    if overlap or len(wins) < n_full + n_select:
        raise DnahnetInputError(
            f"the valid split ({valid.bases:,} bases) holds too few non-overlapping {data.seq_len}-base windows "
            f"for --heldout-bases {cfg.heldout_bases:,} plus {n_select} Markov-selection windows; lower --heldout-bases"
        )
    rng = np.random.default_rng([EVAL_SEED, 7])
    perm = rng.permutation(len(wins))
    select = [wins[i] for i in sorted(perm[:n_select])]
    full = [wins[i] for i in sorted(perm[n_select:])]
    counts = np.array([_scored(source, w) for w in full], dtype=float)
    if counts.sum() < cfg.heldout_bases:
        raise DnahnetInputError(f"the held-out windows score {int(counts.sum()):,} bases, fewer than --heldout-bases "
                                f"{cfg.heldout_bases:,} (too many N in the valid split)")
    n_sub = min(cfg.eval_windows, len(full))
    subset = np.sort(np.random.default_rng([EVAL_SEED, 11]).choice(len(full), size=n_sub, replace=False))
    return HeldOut(full, subset, select, counts, valid.bases, [(iv.chrom, iv.start, iv.end) for iv in valid.intervals])


def _scored(source, w) -> int:
    """Scored targets of a window: positions 1..L-1 that are not N (the training loss's convention)."""
    ids, _ = source.read(w.chrom, w.start, w.end)
    return int((ids[1:] != ord("N")).sum())


# ----- evaluation and training ----------------------------------------------------------------------------
class WindowScorer:
    """Per-window bits (sum over scored bases) of a model on fixed windows, batched, no gradients."""

    def __init__(self, data: DataConfig, windows: list, batch_size: int) -> None:
        from dnahnet.data.loader import collate
        from dnahnet.data.setup import genome_source_and_splits

        source, _ = genome_source_and_splits(data)
        rows = [source.read(w.chrom, w.start, w.end) for w in windows]
        self.batches = [collate(rows[a : a + batch_size], is_dna=source.is_dna, softmask_weight=1.0)
                        for a in range(0, len(rows), batch_size)]

    def score(self, trainer) -> tuple[np.ndarray, list[float]]:
        """(bits per window, realised compression L/M per routed stage) with the trainer's model.

        Scored in fp32 (the weights' dtype), outside the training autocast, as `dnahnet score`
        scores by default: models trained in bf16 and fp32 are read out alike.
        """
        import torch
        import torch.nn.functional as F

        model = trainer.raw_model
        model.eval()
        bits, totals = [], None
        try:
            with torch.no_grad():
                for batch in self.batches:
                    ids = batch["input_ids"].to(trainer.device)
                    mask = batch["loss_mask"].to(trainer.device)
                    out = model(ids)
                    logits = out.logits[:, :-1].float()
                    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
                    bits.append(((ce.view(ids.shape[0], -1) * mask[:, 1:]).sum(-1) / math.log(2)).cpu().numpy())
                    stage = torch.tensor([[float(x) for x in r.stats()] for r in out.routing], dtype=torch.float64)
                    totals = stage if totals is None else totals + stage
        finally:
            model.train()
        compression = [] if totals is None else [float(t[2] / max(t[0], 1.0)) for t in totals]
        return np.concatenate(bits), compression


def _read_curve(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def run_dir(out: Path, name: str, seed: int) -> Path:
    return out / "models" / name / f"seed{seed}"


def train_one(plan: Plan, name: str, seed: int, out_dir: Path, scorers: dict, held: HeldOut) -> list[dict]:
    """Train (or resume) one (model, seed) run, scoring the held-out windows at the plan's steps."""
    import dataclasses

    from dnahnet.train import checkpoint as ckpt
    from dnahnet.train.trainer import pretrain

    curve_path = out_dir / "curve.jsonl"
    curve = _read_curve(curve_path)
    if {p["step"] for p in curve} >= set(plan.steps):
        return curve
    readout_steps = set(plan.readouts.values())
    existing = ckpt.find_checkpoint(out_dir)
    if existing is not None:  # points after the last checkpoint are recomputed on resume
        step = json.loads((existing / ckpt.TRAIN).read_text()).get("step", 0)
        curve = [p for p in curve if p["step"] <= step]
    else:
        curve = []
    with atomic_open(curve_path) as fh:
        fh.writelines(json.dumps(p) + "\n" for p in curve)
    done = {p["step"] for p in curve}

    def on_step(trainer, metrics):
        k = trainer.step
        if k in plan.steps and k not in done:
            which = "full" if k in readout_steps else "subset"
            t0 = time.perf_counter()
            bits, compression = scorers[which].score(trainer)
            point = {"step": k, "bases": k * plan.tokens_per_step, "set": which, "bits": [round(float(b), 4) for b in bits],
                     "compression": compression, "train_s": trainer.elapsed, "eval_s": time.perf_counter() - t0,
                     "train_precision": trainer.precision.describe()}
            curve.append(point)
            done.add(k)
            with open(curve_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(point) + "\n")
            trainer.save([ckpt.LATEST])  # every curve point is also a resume point

    train = dataclasses.replace(plan.trains[name], seed=seed)
    data = dataclasses.replace(plan.data, seed=seed)  # the data order of seed s, the same for every model
    pretrain(plan.models[name], train, data, out_dir, resume=existing is not None, overwrite=existing is None, on_step=on_step)
    return curve


def run(cfg: CompareConfig, command: str | None = None) -> dict | None:
    """Run (or resume) a comparison; write results.json, curves.tsv, curves.png and report.md (None for a shard)."""
    from dnahnet_pipelines.data_efficiency_report import summarise, write_outputs

    plan = make_plan(cfg)
    flops = model_flops(plan)
    check_matched(flops, cfg.allow_unmatched)
    held = held_out_windows(cfg, plan.data)
    out = check_writable_dir(cfg.out)  # created only once the inputs are known to be usable
    jobs = [(name, seed) for seed in plan.seeds for name in cfg.models]
    shard_k, shard_n = cfg.shard
    if not cfg.report_only:
        scorers = {"full": WindowScorer(plan.data, held.full, cfg.batch_size),
                   "subset": WindowScorer(plan.data, [held.full[i] for i in held.subset], cfg.batch_size)}
        for i, (name, seed) in enumerate(jobs):
            if i % shard_n != shard_k:
                continue
            t0 = time.perf_counter()
            curve = train_one(plan, name, seed, check_writable_dir(run_dir(out, name, seed)), scorers, held)
            last = curve[-1]
            print(f"[compare] {name} seed {seed}: {np.sum(last['bits']) / held.counts.sum():.4f} bits/base at step "
                  f"{last['step']} ({time.perf_counter() - t0:.0f} s this run)", flush=True)
        if shard_n > 1:
            return None
    curves = finished_curves(out, plan, cfg.models)
    if not curves:
        raise DnahnetInputError(f"no seed has finished for every model in {out}; run without --report-only first")
    baselines = classical_baselines(plan.data, held)
    results = summarise(cfg, plan, held, curves, flops, baselines, command)
    write_outputs(out, results)
    return results


def finished_curves(out: Path, plan: Plan, models: list[str]) -> dict[int, dict[str, list[dict]]]:
    """{seed: {model: curve}} for the seeds whose runs are finished for every model."""
    got = {}
    for seed in plan.seeds:
        per = {name: _read_curve(run_dir(out, name, seed) / "curve.jsonl") for name in models}
        if all({p["step"] for p in c} >= set(plan.steps) for c in per.values()):
            got[seed] = {n: sorted((p for p in c if p["step"] in plan.steps), key=lambda p: p["step"]) for n, c in per.items()}
    return got


# ----- model facts -------------------------------------------------------------------------------------------
def model_flops(plan: Plan) -> dict[str, dict]:
    """Parameters and training FLOPs per base (full and causal-half attention) of every model."""
    import torch

    from dnahnet.nn.flops import count_flops
    from dnahnet.nn.hnet import HNetLM

    facts = {}
    for name, c in plan.models.items():
        with torch.device("meta"):
            params = sum(p.numel() for p in HNetLM(c).parameters())
        facts[name] = {"params": int(params), "routed": c.n_routed, "chunking": c.chunking,
                       "train_flops_per_base": count_flops(c, plan.data.seq_len).per_base(),
                       "train_flops_per_base_causal": count_flops(c, plan.data.seq_len, attention="causal").per_base()}
    return facts


def check_matched(flops: dict[str, dict], allow_unmatched: bool) -> None:
    """Refuse a comparison whose models are not matched within 5% in training FLOPs per base (full attention)."""
    per = {n: f["train_flops_per_base"] for n, f in flops.items()}
    lo, hi = min(per, key=per.get), max(per, key=per.get)
    spread = per[hi] / per[lo] - 1
    if spread > FLOP_TOLERANCE and not allow_unmatched:
        raise DnahnetInputError(
            f"models are not matched in FLOPs per base: {hi} needs {spread:.0%} more than {lo} "
            f"({per[hi] / 1e6:.2f} vs {per[lo] / 1e6:.2f} MFLOP/base; tolerance {FLOP_TOLERANCE:.0%}); "
            "pass --allow-unmatched to compare anyway (the paper's protocol)"
        )


def default_pairs(models: list[str], facts: dict[str, dict]) -> list[tuple[str, str]]:
    """Every dynamic-chunking H-Net against every isotropic and every fixed-chunk model."""
    hnets = [m for m in models if facts[m]["routed"] > 0 and facts[m]["chunking"] == "dynamic"]
    bases = [m for m in models if m not in hnets]
    return [(h, b) for h in hnets for b in bases]


def matching(h: dict, b: dict) -> str:
    """Which budgets a pair shares: FLOP-matched (training FLOPs/base, full attention, within 5%),
    parameter-matched (within 10%), both, or neither ('width-matched' at most, the paper's protocol)."""
    flop = abs(h["train_flops_per_base"] / b["train_flops_per_base"] - 1) <= FLOP_TOLERANCE
    param = abs(h["params"] / b["params"] - 1) <= PARAM_TOLERANCE
    return {(True, True): "FLOP- and parameter-matched", (True, False): "FLOP-matched",
            (False, True): "parameter-matched", (False, False): "neither"}[(flop, param)]


# ----- classical baselines -------------------------------------------------------------------------------------
def classical_baselines(data: DataConfig, held: HeldOut) -> dict:
    """Markov (train split; order chosen on the selection windows) per held-out window, and lzma/bz2."""
    import bz2
    import lzma

    from dnahnet.data.markov import fit
    from dnahnet.data.setup import genome_source_and_splits

    source, splits = genome_source_and_splits(data)
    full_model = fit(source, splits["train"].intervals, MAX_MARKOV_ORDER)
    by_order = {k: full_model.with_order(k).bits_per_base(held.select, source) for k in range(1, MAX_MARKOV_ORDER + 1)}
    order = min(by_order, key=by_order.get)
    model = full_model.with_order(order)
    bits = []
    parts = []
    for w in held.full:
        ids, _ = source.read(w.chrom, w.start, w.end)
        lp = model.log2_probs(ids)[1:]
        bits.append(-float(np.nansum(lp)))
        parts.append(ids[ids != ord("N")].tobytes())
    seq = b"".join(parts)
    return {
        "markov": {"order": order, "by_order_on_selection_windows": by_order, "bits": bits,
                   "bits_per_base": float(np.sum(bits) / held.counts.sum()), "selection_windows": len(held.select)},
        "lzma": {"bits_per_base": 8 * len(lzma.compress(seq, preset=9 | lzma.PRESET_EXTREME)) / len(seq)},
        "bz2": {"bits_per_base": 8 * len(bz2.compress(seq, compresslevel=9)) / len(seq)},
    }


# ----- command line -----------------------------------------------------------------------------------------------
def split_models(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def parse_args(argv: list[str] | None = None) -> CompareConfig:
    ap = argparse.ArgumentParser(prog="python -m dnahnet_pipelines.data_efficiency", description=__doc__.splitlines()[0])
    ap.add_argument("--genome", required=True)
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated presets")
    ap.add_argument("--bases", type=int, required=True, help="training bases per run")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-points", type=int, default=12)
    ap.add_argument("--dense-points", type=int, default=6)
    ap.add_argument("--eval-windows", type=int, default=64)
    ap.add_argument("--heldout-bases", type=int, default=1_000_000)
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--decay-fraction", type=float)
    ap.add_argument("--valid-fraction", type=float, default=0.05)
    ap.add_argument("--test-fraction", type=float, default=0.05)
    ap.add_argument("--split-bed")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--allow-unmatched", action="store_true")
    a = ap.parse_args(argv)
    return CompareConfig(genome=a.genome, models=split_models(a.models), bases=a.bases, out=a.out, seeds=a.seeds,
                         seed=a.seed, eval_points=a.eval_points, dense_points=a.dense_points, eval_windows=a.eval_windows,
                         heldout_bases=a.heldout_bases, seq_len=a.seq_len, batch_size=a.batch_size,
                         decay_fraction=a.decay_fraction, split_by="bed" if a.split_bed else "fraction",
                         valid_fraction=a.valid_fraction, test_fraction=a.test_fraction, split_bed=a.split_bed, device=a.device, bootstrap=a.bootstrap, shard=parse_shard(a.shard),
                         report_only=a.report_only, allow_unmatched=a.allow_unmatched)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = parse_args(argv)
        results = run(cfg, command="python -m dnahnet_pipelines.data_efficiency " + shlex.join(argv))
    except DnahnetInputError as exc:
        return report_input_error(exc, "data_efficiency")
    if results is not None:
        for line in results["summary_lines"]:
            print(line)
    return 0


if __name__ == "__main__":
    keep_freed_memory()
    sys.exit(main())
