"""A fine-tuning run folder: a checkpoint that predicts.

Layout (everything a checkpoint has, plus the head):
- `config.json`, `model.safetensors` (the backbone: unchanged for `probe`, fine-tuned
  for `full`), `train.json` copied from the pretrained checkpoint (training length);
- `head.safetensors`: probe arrays (mean, scale, coef, intercept, strength) or the
  full head (weight, bias, target_mean, target_std);
- `finetune.json`: task, mode, layer/stage, inputs, hyper-parameters, the dev/test
  metrics with bootstrap 95% intervals, wall-clock and the command;
- `predictions_dev.tsv`, `predictions_test.tsv`: name, label, prediction.

The folder is written whole under a hidden `.NAME.partial` sibling and renamed
into place: an interrupted run leaves no half-written folder at `out`.
`dnahnet.load(RUN).predict(seqs)` and `dnahnet predict --checkpoint RUN` use it.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from dnahnet.errors import DnahnetInputError
from dnahnet.finetune.data import LabelledSet, read_labelled
from dnahnet.finetune.full import FullConfig, train_full
from dnahnet.finetune.metrics import HEADLINE, as_dict, evaluate, summary
from dnahnet.finetune.probe import LinearProbe, fit_probe
from dnahnet.infer.embed import check_spec
from dnahnet.io.atomic import atomic_open, check_writable_dir, staged_folder
from dnahnet.progress import ProgressFactory, silent

FINETUNE = "finetune.json"
HEAD = "head.safetensors"
MODES = ("probe", "full")


@dataclass
class Head:
    """The prediction head of a run: how features are taken and how they become predictions."""

    task: str
    mode: str
    layer: str
    stage: int
    arrays: dict[str, np.ndarray]

    def features(self, model, seqs: Iterable, batch_size: int = 16, progress: ProgressFactory = silent,
                 total_bases: int = 0) -> np.ndarray:
        """Mean-pooled embeddings as the head was trained on them (full: whole sequences, no windows)."""
        from dnahnet.infer.embed import iter_embed

        window = None if self.mode == "full" else -1
        with progress(total_bases) as advance:
            rows = list(iter_embed(model, seqs, layer=self.layer, stage=self.stage, pool="mean", window=window,
                                   batch_size=batch_size, on_bases=advance))
        x = np.stack(rows) if rows else np.zeros((0, 1), np.float32)
        return np.nan_to_num(x.astype(np.float64))  # an all-N sequence pools to the zero vector

    def apply(self, x: np.ndarray) -> np.ndarray:
        if self.mode == "probe":
            return LinearProbe.from_arrays(self.task, self.arrays).predict(x)
        raw = x @ self.arrays["weight"].astype(np.float64) + float(self.arrays["bias"][0])
        if self.task == "classify":
            return 1.0 / (1.0 + np.exp(-raw))
        return raw * float(self.arrays["target_std"][0]) + float(self.arrays["target_mean"][0])

    def predict(self, model, seqs: Iterable, batch_size: int = 16, progress: ProgressFactory = silent,
                total_bases: int = 0) -> np.ndarray:
        """P(label 1) (classify) or the predicted value (regress), one per sequence."""
        return self.apply(self.features(model, seqs, batch_size, progress, total_bases))


def load_head(directory: str | os.PathLike) -> Head | None:
    """The head of a run folder, or None for a plain pretrained checkpoint."""
    directory = Path(directory)
    meta_path = directory / FINETUNE
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        arrays = load_file(str(directory / HEAD))
        return Head(meta["task"], meta["mode"], meta["layer"], int(meta["stage"]), arrays)
    except (OSError, json.JSONDecodeError, KeyError, ValueError) as exc:
        raise DnahnetInputError(f"fine-tuned run is damaged ({type(exc).__name__}: {exc})", file=str(directory)) from None


def _write_predictions(path: Path, data: LabelledSet, pred: np.ndarray) -> None:
    """Predictions in full (shortest round-trip) precision: rounded, saturated probabilities
    tie, and metrics recomputed from the file would differ from the run's own."""
    with atomic_open(path) as fh:
        fh.write("name\tlabel\tprediction\n")
        for name, y, p in zip(data.names, data.labels, pred):
            fh.write(f"{name}\t{'' if not math.isfinite(y) else f'{y:g}'}\t{float(p)!r}\n")


def read_predictions(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of a run's `predictions_*.tsv`, in file order (the examples' order)."""
    try:
        table = np.genfromtxt(path, delimiter="\t", skip_header=1, usecols=(1, 2), dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise DnahnetInputError(f"cannot read predictions ({exc})", file=str(path)) from None
    return table[:, 0], table[:, 1]


def check_run_target(out: str | os.PathLike) -> Path:
    """Refuse an existing non-empty output folder before any work is done."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DnahnetInputError("output run folder exists and is not empty (choose a new --out)", file=str(out))
    check_writable_dir(out.parent if str(out.parent) else Path("."))
    return out


def finetune(
    checkpoint: str | os.PathLike,
    train: str | os.PathLike | LabelledSet,
    dev: str | os.PathLike | LabelledSet | None,
    out: str | os.PathLike,
    *,
    test: str | os.PathLike | LabelledSet | None = None,
    task: str = "classify",
    mode: str = "probe",
    genome=None,
    label_column: int = 5,
    config: FullConfig | None = None,
    batch_size: int = 32,
    max_train: int | None = None,
    device: str | None = None,
    n_boot: int = 1000,
    command: str | None = None,
    log: Callable[[str], None] = lambda _m: None,
    progress: ProgressFactory = silent,
) -> dict:
    """Fine-tune `checkpoint` on `train` (model selection / early stopping on `dev`), evaluate, write the run folder.

    Returns the content of finetune.json.
    """
    from dnahnet.infer.model import load

    if mode not in MODES:
        raise DnahnetInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if dev is None:
        raise DnahnetInputError("a dev split is required (--dev): it chooses the probe's regularisation and stops full fine-tuning early")
    cfg = config or FullConfig()
    out = check_run_target(out)
    started = time.perf_counter()

    def read(x, both: bool) -> LabelledSet:
        if isinstance(x, LabelledSet):
            return x
        return read_labelled(x, task, genome=genome, label_column=label_column, need_both_classes=both)

    sets = {"train": read(train, True), "dev": read(dev, True)}
    if test is not None:
        sets["test"] = read(test, False)
    if max_train is not None and len(sets["train"]) > max_train:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(sets["train"]), max_train, replace=False))
        sets["train"] = sets["train"].subset(keep)
    model = load(checkpoint, device=device)
    spec = check_spec(model.net, cfg.layer, cfg.stage, "mean")
    width = int(_width(model, spec.stage))
    log(f"{mode} fine-tune of {checkpoint} on {len(sets['train']):,} training sequences "
        f"({sets['train'].bases:,} bases), layer {spec.layer} stage {spec.stage}, width {width}")
    timing: dict[str, float] = {}
    info: dict = {}
    if mode == "probe":
        head = Head(task, "probe", spec.layer, spec.stage, {})
        tick = time.perf_counter()
        feats = {k: head.features(model, v.seqs, batch_size, progress, v.bases) for k, v in sets.items() if k != "test"}
        timing["embed_s"] = time.perf_counter() - tick
        probe, grid = fit_probe(task, feats["train"], sets["train"].labels, feats["dev"], sets["dev"].labels, seed=cfg.seed)
        head.arrays = {k: np.asarray(v) for k, v in probe.arrays().items()}
        info = {"strength": probe.strength, "dev_grid": {str(k): v for k, v in grid.items()},
                "embed_bases_per_s": (sets["train"].bases + sets["dev"].bases) / max(timing["embed_s"], 1e-9)}
    else:
        torch.manual_seed(cfg.seed)
        tick = time.perf_counter()
        res = train_full(model.net, task, sets["train"], sets["dev"], cfg, spec, width, log=log)
        timing["train_s"] = time.perf_counter() - tick
        w = res.model.head.weight.detach().double().cpu().numpy()[0]
        b = res.model.head.bias.detach().double().cpu().numpy()
        head = Head(task, "full", spec.layer, spec.stage, {
            "weight": w, "bias": b, "target_mean": np.array([res.target_mean]), "target_std": np.array([res.target_std]),
        })
        model.net.eval()
        info = {"history": res.history, "best_step": res.best_step, "steps": res.steps,
                "train_bases_per_s": res.bases_per_s}
    preds, metrics = {}, {}
    for split in ("dev", "test"):
        if split not in sets:
            continue
        tick = time.perf_counter()
        preds[split] = head.predict(model, sets[split].seqs, batch_size, progress, sets[split].bases)
        timing[f"predict_{split}_s"] = time.perf_counter() - tick
        if sets[split].has_labels:
            metrics[split] = evaluate(task, sets[split].labels, preds[split], n_boot=n_boot, seed=cfg.seed)
            log(f"{split}: {summary(metrics[split])}")
    timing["total_s"] = time.perf_counter() - started
    meta = {
        "task": task, "mode": mode, "layer": spec.layer, "stage": spec.stage, "pool": "mean",
        "base_checkpoint": str(checkpoint),
        "inputs": {k: {"path": v.path, "records": len(v), "bases": v.bases,
                       "positives": int(np.sum(v.labels == 1)) if task == "classify" else None} for k, v in sets.items()},
        "max_train": max_train, "seed": cfg.seed, "batch_size": batch_size,
        "full_config": asdict(cfg) if mode == "full" else None,
        "headline": HEADLINE[task],
        "metrics": {k: as_dict(m) for k, m in metrics.items()},
        "bootstrap": {"resamples": n_boot, "interval": "percentile 95%"},
        "fit": info, "wall_clock_s": timing, "command": command,
        "device": str(model.device),
    }
    _write_run(out, checkpoint, model, head, meta, sets, preds)
    return meta


def _width(model, stage: int) -> int:
    from dnahnet.infer.embed import _level

    return _level(model.net, stage).d_model


def _write_run(out: Path, checkpoint, model, head: Head, meta: dict, sets: dict, preds: dict) -> None:
    from dnahnet.hub import resolve_checkpoint
    from dnahnet.io.checkpoint import TRAIN, save_model

    with staged_folder(out) as partial:
        source = resolve_checkpoint(checkpoint)
        train_info = None
        if (source / TRAIN).exists():
            train_info = json.loads((source / TRAIN).read_text())
        save_model(partial, model.net, train_info=train_info)
        save_file({k: np.ascontiguousarray(v) for k, v in head.arrays.items()}, str(partial / HEAD))
        for split, p in preds.items():
            _write_predictions(partial / f"predictions_{split}.tsv", sets[split], p)
        with atomic_open(partial / FINETUNE) as fh:
            json.dump(meta, fh, indent=2, default=str)
            fh.write("\n")


def predict_table(
    run: str | os.PathLike,
    table: str | os.PathLike,
    out: str | os.PathLike,
    *,
    genome=None,
    label_column: int = 5,
    batch_size: int = 32,
    device: str | None = None,
    n_boot: int = 1000,
    progress: ProgressFactory = silent,
) -> dict | None:
    """Write name, label, prediction for every record of `table`; metrics (with intervals) when it has labels."""
    from dnahnet.infer.model import load

    model = load(run, device=device)
    if model.head is None:
        raise DnahnetInputError("not a fine-tuned run (no finetune.json); make one with `dnahnet finetune`", file=str(run))
    data = read_labelled(table, model.head.task, genome=genome, label_column=label_column, need_label=False)
    pred = model.head.predict(model, data.seqs, batch_size, progress, data.bases)
    _write_predictions(Path(out), data, pred)  # "-" = stdout
    if data.has_labels:
        return as_dict(evaluate(model.head.task, data.labels, pred, n_boot=n_boot))
    return None

