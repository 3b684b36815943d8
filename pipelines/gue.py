"""GUE benchmark: k-mer baseline, frozen probe and full fine-tune of each checkpoint, published AUROC beside.

Per task (the 13 binary GUE folders of ../shared/data/gue, read at run time and
never copied): a k-mer frequency logistic regression (k = 1..kmax chosen on dev
AUROC), then for every checkpoint and mode (`probe`, `full`) a
`dnahnet.finetune.finetune` run on the same training subset, model selection or
early stopping on dev, test AUROC with a bootstrap 95% interval, and the
wall-clock of each. The report puts the published test AUROC of five pretrained
models beside them, quoted from the data README with its source.

    python -m dnahnet_pipelines.gue --checkpoints runs/demo/train/latest --tasks prom_prom_core_tata --modes probe --out runs/gue
    dnahnet benchmark gue ... (same options)

Resumable: each run writes OUT/runs/TASK/NAME-MODE (a fine-tuned run folder); a
rerun reuses finished ones (their finetune.json) and the k-mer results in
OUT/kmer/TASK.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from dnahnet.errors import DnahnetInputError, report_input_error

# Folder -> published name (Nat. Commun. 2025 benchmark, Tables 1-2), as listed in gue/README.md.
TASKS = {
    "prom_prom_core_all": "Promoter All 70 bps",
    "prom_prom_core_notata": "Promoter NonTATA 70 bps",
    "prom_prom_core_tata": "Promoter TATA 70 bps",
    "prom_prom_300_tata": "Promoter TATA 300 bps",
    "tf_0": "Human TFBS 1", "tf_1": "Human TFBS 2", "tf_2": "Human TFBS 3", "tf_3": "Human TFBS 4", "tf_4": "Human TFBS 5",
    "mouse_0": "Mouse TFBS 1", "mouse_2": "Mouse TFBS 3", "mouse_3": "Mouse TFBS 4", "mouse_4": "Mouse TFBS 5",
}
PUBLISHED_MODELS = ("DNABERT-2", "NT-v2", "HyenaDNA", "Caduceus-Ph", "GROVER")
# Test AUROC, frozen embeddings, mean pooling, a simple classifier on top: quoted exactly from
# ../shared/data/gue/README.md ("Published anchors"), which cites the source below.
PUBLISHED = {
    "prom_prom_core_all": (0.831, 0.853, 0.832, 0.875, 0.851),
    "prom_prom_core_notata": (0.853, 0.873, 0.852, 0.896, 0.870),
    "prom_prom_core_tata": (0.778, 0.795, 0.783, 0.810, 0.796),
    "prom_prom_300_tata": (0.765, 0.779, 0.808, 0.760, 0.780),
    "tf_0": (0.838, 0.832, 0.830, 0.880, 0.862),
    "tf_1": (0.821, 0.809, 0.821, 0.869, 0.850),
    "tf_2": (0.790, 0.797, 0.788, 0.825, 0.816),
    "tf_3": (0.726, 0.710, 0.715, 0.773, 0.763),
    "tf_4": (0.920, 0.915, 0.916, 0.929, 0.931),
    "mouse_0": (0.711, 0.704, 0.590, 0.684, 0.695),
    "mouse_2": (0.931, 0.927, 0.894, 0.935, 0.933),
    "mouse_3": (0.762, 0.694, 0.588, 0.705, 0.682),
    "mouse_4": (0.678, 0.708, 0.627, 0.715, 0.682),
}
SOURCE = ('"Benchmarking DNA foundation models for genomic and genetic tasks", Nature Communications 2025, '
          "Tables 1 and 2 (test AUROC, frozen embeddings, mean pooling, simple classifier), as quoted in "
          "../shared/data/gue/README.md")
KMER_C = 1.0


def gue_dir(data: str | os.PathLike | None = None) -> Path:
    """The GUE folder: `data`, else $DNAHNET_GUE, else ../shared/data/gue beside the checkout."""
    if data is None:
        data = os.environ.get("DNAHNET_GUE") or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gue"
    path = Path(data)
    if not path.is_dir():
        raise DnahnetInputError("GUE data folder not found (give --data or set DNAHNET_GUE)", file=str(path))
    return path


@dataclass
class GueConfig:
    checkpoints: list[str]
    out: Path
    data: Path | None = None
    tasks: list[str] | None = None
    modes: list[str] = field(default_factory=lambda: ["probe", "full"])
    max_train: int | None = None
    kmax: int = 6
    epochs: float = 3.0
    eval_every: int = 100
    batch_size: int = 32
    n_boot: int = 1000
    seed: int = 0
    device: str = "auto"
    report_only: bool = False  # use finished run folders only; train nothing (a report over runs of several invocations)


# ----- k-mer baseline -------------------------------------------------------------------------------
_CODE = np.full(256, -1, np.int64)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i


def kmer_features(seqs: list[np.ndarray], k: int):
    """Sparse (n, 4^k) k-mer frequencies per sequence; k-mers containing N are skipped."""
    from scipy import sparse

    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    code = _CODE[np.concatenate(seqs)] if len(seqs) else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(seqs)), lengths)
    n_windows = max(len(code) - k + 1, 0)
    index = np.zeros(n_windows, np.int64)
    ok = np.ones(n_windows, bool)
    for j in range(k):  # rolling base-4 index over the concatenation
        part = code[j : j + n_windows]
        index = index * 4 + np.maximum(part, 0)
        ok &= part >= 0
    ok &= owner[:n_windows] == owner[k - 1 : k - 1 + n_windows]  # the window stays inside one sequence
    counts = sparse.csr_matrix((np.ones(int(ok.sum())), (owner[:n_windows][ok], index[ok])), shape=(len(seqs), 4**k))
    totals = np.asarray(counts.sum(1)).ravel()
    totals[totals == 0] = 1
    return sparse.diags(1.0 / totals) @ counts


def kmer_baseline(train, dev, test, kmax: int = 6, seed: int = 0, n_boot: int = 1000) -> dict:
    """Logistic regression on k-mer frequencies (features scaled by their train std), k chosen on dev AUROC."""
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from dnahnet.finetune.metrics import as_dict, evaluate

    started = time.perf_counter()
    dev_auroc, best = {}, None
    for k in range(1, kmax + 1):
        xt = kmer_features(train.seqs, k)
        scale = np.sqrt(np.asarray(xt.multiply(xt).mean(0)).ravel() - np.asarray(xt.mean(0)).ravel() ** 2)
        scale[~(scale > 1e-12)] = 1.0
        xt = xt @ _diag(1.0 / scale)
        model = LogisticRegression(C=KMER_C, max_iter=1000, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(xt, train.labels.astype(int))
        p = model.predict_proba(kmer_features(dev.seqs, k) @ _diag(1.0 / scale))[:, 1]
        dev_auroc[k] = float(roc_auc_score(dev.labels, p))
        if best is None or dev_auroc[k] > dev_auroc[best[0]]:
            best = (k, model, scale)
    k, model, scale = best
    p_test = model.predict_proba(kmer_features(test.seqs, k) @ _diag(1.0 / scale))[:, 1]
    return {"k": k, "dev_auroc_by_k": dev_auroc, "test": as_dict(evaluate("classify", test.labels, p_test, n_boot=n_boot, seed=seed)),
            "wall_s": time.perf_counter() - started, "C": KMER_C, "test_predictions": [float(x) for x in p_test]}


def _diag(values: np.ndarray):
    from scipy import sparse

    return sparse.diags(values)


# ----- the benchmark ------------------------------------------------------------------------------------
def _label(checkpoint: str) -> str:
    return re.sub(r"[^\w.-]+", "_", checkpoint.strip("/")).strip("_") or "checkpoint"


def load_task(folder: Path, task: str, max_train: int | None, seed: int):
    from dnahnet.finetune.data import read_labelled

    split = {}
    for name in ("train", "dev", "test"):
        path = folder / task / f"{name}.csv.gz"
        if not path.exists():
            path = folder / task / f"{name}.csv"
        split[name] = read_labelled(path, "classify", need_both_classes=True)
    if max_train is not None and len(split["train"]) > max_train:
        keep = np.sort(np.random.default_rng(seed).choice(len(split["train"]), max_train, replace=False))
        split["train"] = split["train"].subset(keep)
    return split


def _write_json(path: Path, data: dict) -> None:
    from dnahnet.io.atomic import atomic_open

    with atomic_open(path) as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.write("\n")


def run_gue(cfg: GueConfig, command: str | None = None, log: Callable[[str], None] = print) -> Path:
    """Run every task x (k-mer, checkpoint x mode); write OUT/results.json and OUT/report.md."""
    from dnahnet.finetune import FullConfig, finetune
    from dnahnet.io.atomic import check_writable_dir

    data = gue_dir(cfg.data)
    tasks = cfg.tasks or list(TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise DnahnetInputError(f"unknown GUE task(s) {', '.join(unknown)} (known: {', '.join(TASKS)})")
    for mode in cfg.modes:
        if mode not in ("probe", "full"):
            raise DnahnetInputError(f"mode must be probe or full, got {mode!r}")
    out = check_writable_dir(cfg.out)
    results: dict = {"config": {**asdict(cfg), "out": str(cfg.out), "data": str(data)}, "command": command,
                     "machine": f"{platform.node()} ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)",
                     "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "tasks": {}}
    for task in tasks:
        split = load_task(data, task, cfg.max_train, cfg.seed)
        row: dict = {"name": TASKS[task], "published": dict(zip(PUBLISHED_MODELS, PUBLISHED[task])),
                     "sizes": {k: len(v) for k, v in split.items()}, "runs": {}}
        kmer_path = out / "kmer" / f"{task}.json"
        key = {"max_train": cfg.max_train, "kmax": cfg.kmax, "seed": cfg.seed, "n_boot": cfg.n_boot}
        cached = json.loads(kmer_path.read_text()) if kmer_path.exists() else None
        if cached is not None and cached.get("key") == key and "test_predictions" in cached:
            row["kmer"] = cached
        else:
            row["kmer"] = {**kmer_baseline(split["train"], split["dev"], split["test"], cfg.kmax, cfg.seed, cfg.n_boot), "key": key}
            check_writable_dir(kmer_path.parent)
            _write_json(kmer_path, row["kmer"])
        log(f"{task}: k-mer (k={row['kmer']['k']}) test AUROC {row['kmer']['test']['auroc']['value']:.3f}")
        for checkpoint in cfg.checkpoints:
            for mode in cfg.modes:
                run = out / "runs" / task / f"{_label(checkpoint)}-{mode}"
                if (run / "finetune.json").exists():
                    meta = json.loads((run / "finetune.json").read_text())
                elif cfg.report_only:
                    log(f"{task}: {checkpoint} {mode}: no finished run, left out of the report (--report-only)")
                    continue
                else:
                    full = FullConfig(epochs=cfg.epochs, eval_every=cfg.eval_every, batch_size=cfg.batch_size, seed=cfg.seed)
                    meta = finetune(checkpoint, split["train"], split["dev"], run, test=split["test"], mode=mode,
                                    config=full, batch_size=cfg.batch_size, device=cfg.device, n_boot=cfg.n_boot,
                                    command=command, log=log)
                auroc = meta["metrics"]["test"]["auroc"]
                row["runs"][f"{checkpoint}|{mode}"] = {"checkpoint": checkpoint, "mode": mode, "test_auroc": auroc,
                                                       "wall_s": meta["wall_clock_s"]["total_s"], "run": str(run),
                                                       "hierarchical": _hierarchical(run),
                                                       "best_step": (meta.get("fit") or {}).get("best_step") if mode == "full" else None}
                log(f"{task}: {checkpoint} {mode} test AUROC {auroc['value']:.3f} [{auroc['low']:.3f}, {auroc['high']:.3f}]")
        results["tasks"][task] = row
    results["paired"] = paired_differences(results, data, cfg)
    results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_json(out / "results.json", results)
    report = out / "report.md"
    from dnahnet.io.atomic import atomic_open

    with atomic_open(report) as fh:
        fh.write(render_report(results))
    return report


def _hierarchical(run: Path) -> bool:
    """Whether a run's backbone is an H-Net (nested arch_layout) rather than an isotropic model."""
    layout = json.loads((run / "config.json").read_text()).get("arch_layout", [])
    return any(isinstance(part, list) for part in layout)


def _verdict(m: dict, a: str, b: str) -> str:
    if not (m["low"] > 0 or m["high"] < 0):
        return "no detectable difference"
    return f"{a} higher" if m["low"] > 0 else f"{b} higher"


def paired_differences(results: dict, data: Path, cfg: GueConfig) -> list[dict]:
    """Test-AUROC differences on the same test examples: every model against the k-mer baseline,
    and every H-Net against every isotropic model (same mode), per task and pooled over tasks.

    Per task: paired bootstrap over test examples. Pooled: the mean of the per-task differences,
    its interval from the per-task bootstrap replicates averaged replicate by replicate (tasks
    resampled independently); tasks weigh equally.
    """
    from dnahnet.finetune.data import read_labelled
    from dnahnet.finetune.metrics import paired_auroc_difference
    from dnahnet.finetune.run import read_predictions

    @functools.lru_cache(maxsize=None)  # each file is read once, though it takes part in several pairs
    def scores(task: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        row = results["tasks"][task]
        if key == "k-mer":
            path = data / task / "test.csv.gz"
            labels = read_labelled(path if path.exists() else data / task / "test.csv", "classify").labels
            return np.asarray(labels, np.float64), np.asarray(row["kmer"]["test_predictions"], np.float64)
        return read_predictions(Path(row["runs"][key]["run"]) / "predictions_test.tsv")

    runs = {key: run for row in results["tasks"].values() for key, run in row["runs"].items()}
    pairs = [(key, "k-mer") for key in runs]
    pairs += [(a, b) for a in runs for b in runs
              if runs[a]["hierarchical"] and not runs[b]["hierarchical"] and runs[a]["mode"] == runs[b]["mode"]]
    out = []
    for a, b in pairs:
        per_task, boots = {}, []
        for task, row in results["tasks"].items():
            if a not in row["runs"] and a != "k-mer" or b not in row["runs"] and b != "k-mer":
                continue
            (y, pa), (y2, pb) = scores(task, a), scores(task, b)
            if len(y) != len(y2) or not np.array_equal(y, y2):
                raise DnahnetInputError(f"{task}: the test predictions of {a} and {b} are not over the same examples")
            metric, boot = paired_auroc_difference(y, pa, pb, n_boot=cfg.n_boot, seed=cfg.seed)
            per_task[task] = metric.as_dict()
            boots.append(boot)
        if not boots:
            continue
        pooled = np.nanmean(np.stack(boots), axis=0)
        value = float(np.mean([m["value"] for m in per_task.values()]))
        low, high = np.nanpercentile(pooled, [2.5, 97.5])
        out.append({"a": a, "b": b, "per_task": per_task,
                    "pooled": {"value": value, "low": float(low), "high": float(high), "tasks": len(per_task)}})
    return out


def _short(key: str) -> str:
    checkpoint, _, mode = key.partition("|")
    return f"{Path(checkpoint).name} {mode}".strip() if mode else key


def render_paired(paired: list[dict]) -> list[str]:
    if not paired:
        return []
    lines = ["", "## Paired differences in test AUROC (A - B, same test examples)", "",
             "Per task: paired bootstrap over test examples (95%). Pooled: mean over tasks of the per-task "
             "difference, interval from averaging the tasks' bootstrap replicates (tasks weigh equally). "
             "Per-task intervals are not adjusted for the number of comparisons; read the pooled row first.", "",
             "| A | B | tasks | mean difference [95%] | tasks with A higher / B higher (interval excludes 0) | verdict |",
             "|---|---|---|---|---|---|"]
    for p in paired:
        a, b = _short(p["a"]), _short(p["b"])
        ups = sum(m["low"] > 0 for m in p["per_task"].values())
        downs = sum(m["high"] < 0 for m in p["per_task"].values())
        lines.append(f"| {a} | {b} | {p['pooled']['tasks']} | {p['pooled']['value']:+.3f} "
                     f"[{p['pooled']['low']:+.3f}, {p['pooled']['high']:+.3f}] | {ups} / {downs} | "
                     f"{_verdict(p['pooled'], 'A', 'B')} |")
    tasks = list(paired[0]["per_task"])
    lines += ["", "Per task (difference [95%]):", "",
              "| A - B | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for p in paired:
        cells = [f"{p['per_task'][t]['value']:+.3f} [{p['per_task'][t]['low']:+.3f}, {p['per_task'][t]['high']:+.3f}]"
                 if t in p["per_task"] else "-" for t in tasks]
        lines.append(f"| {_short(p['a'])} - {_short(p['b'])} | " + " | ".join(cells) + " |")
    return lines


def _fmt(m: dict) -> str:
    return f"{m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"


def render_report(results: dict) -> str:
    cfg = results["config"]
    names = [Path(c).name for c in cfg["checkpoints"]]
    names = names if len(set(names)) == len(names) else list(cfg["checkpoints"])  # folder names when they identify
    columns = [f"{n} {m}" for n in names for m in cfg["modes"]]
    lines = [
        "# GUE: k-mer baseline, probe and full fine-tune vs published AUROC",
        "",
        f"Command: `{results.get('command') or 'not recorded'}`  ",
        f"Machine: {results['machine']}; started {results['started']}, finished {results.get('finished')}.  ",
        f"Training subset: {cfg['max_train'] or 'all'} sequences per task (seed {cfg['seed']}); dev and test complete. "
        f"Intervals: percentile bootstrap 95% over test examples ({cfg['n_boot']} resamples).",
        "",
        "Test AUROC [95% interval]:",
        "",
        "| " + " | ".join(["task", "published name", "k-mer (k)", *columns, *PUBLISHED_MODELS]) + " |",
        "|---|---|---|" + "---|" * len(columns) + "---|" * len(PUBLISHED_MODELS),
    ]
    for task, row in results["tasks"].items():
        cells = [_fmt(row["kmer"]["test"]["auroc"]) + f" ({row['kmer']['k']})"]
        for c in cfg["checkpoints"]:
            for m in cfg["modes"]:
                run = row["runs"].get(f"{c}|{m}")
                cells.append(_fmt(run["test_auroc"]) if run else "-")
        pub = [f"{row['published'][m]:.3f}" for m in PUBLISHED_MODELS]
        lines.append("| " + " | ".join([task, row["name"], *cells, *pub]) + " |")
    full = [r for row in results["tasks"].values() for r in row["runs"].values() if r["mode"] == "full"]
    at_zero = [r for r in full if r.get("best_step") == 0]
    if full:
        lines += ["", f"Full fine-tuning starts from a linear-probe head (step 0) and keeps the step with the best dev "
                  f"AUROC: in {len(at_zero)} of {len(full)} full runs that was step 0, i.e. training the backbone did not "
                  "improve dev AUROC and the figure is that of the step-0 probe head."]
    lines += ["", "Wall-clock (s; k-mer: all k fitted; runs: embedding or training, prediction and bootstrap):", "",
              "| " + " | ".join(["task", "train / dev / test", "k-mer", *columns]) + " |",
              "|---|---|---|" + "---|" * len(columns)]
    for task, row in results["tasks"].items():
        s = row["sizes"]
        cells = [f"{row['kmer']['wall_s']:.1f}"]
        for c in cfg["checkpoints"]:
            for m in cfg["modes"]:
                run = row["runs"].get(f"{c}|{m}")
                cells.append(f"{run['wall_s']:.1f}" if run else "-")
        lines.append("| " + " | ".join([task, f"{s['train']:,} / {s['dev']:,} / {s['test']:,}", *cells]) + " |")
    lines += ["", "`-`: no finished run for that task and checkpoint (not estimated). Columns name the checkpoint folders: "
              + ", ".join(f"`{n}` = `{c}`" for n, c in zip(names, cfg["checkpoints"])) + "."]
    lines += render_paired(results.get("paired", []))
    lines += ["", f"Published columns: {SOURCE}. Those models were pretrained on whole genomes on GPU clusters "
              "and probed on complete training sets; they are anchors, not like-for-like comparisons.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import shlex
    import sys

    parser = argparse.ArgumentParser(prog="python -m dnahnet_pipelines.gue", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default="", help="comma-separated checkpoints (empty: k-mer baseline only)")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tasks", default="all")
    parser.add_argument("--modes", default="probe,full")
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--kmax", type=int, default=6)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--report-only", action="store_true", help="report finished runs only; train nothing")
    args = parser.parse_args(argv)
    cfg = GueConfig(
        checkpoints=[c for c in args.checkpoints.split(",") if c], data=args.data, out=args.out,
        tasks=None if args.tasks == "all" else args.tasks.split(","), modes=args.modes.split(","),
        max_train=args.max_train, kmax=args.kmax, epochs=args.epochs, eval_every=args.eval_every, batch_size=args.batch_size,
        n_boot=args.bootstrap, seed=args.seed, device=args.device, report_only=args.report_only,
    )
    command = "python -m dnahnet_pipelines.gue " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        print(run_gue(cfg, command=command))
    except DnahnetInputError as exc:
        return report_input_error(exc, "dnahnet_pipelines.gue")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
