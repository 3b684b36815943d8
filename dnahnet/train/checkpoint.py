"""Training checkpoints: the model half (`dnahnet.io.checkpoint`) plus `trainer.pt` and `metrics.jsonl`.

The model half (config + weights) is all that inference needs and is read and
written by `dnahnet.io.checkpoint`; the trainer half here (optimiser, scheduler,
step, RNG and sampler state) makes `--resume` exact. Every file is written
atomically, weights last-but-one and a `COMPLETE` marker last, so a folder
interrupted mid-write is recognised and refused.

A training run keeps its checkpoints in one output folder: `latest/` (and
`best/`, the lowest held-out bits per base). Each is written whole into a hidden
`.NAME.partial/` folder and then renamed into place; the previous one waits as
`.NAME.old/` until the rename is done, so a crash at any moment leaves one
complete checkpoint to resume from.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from dnahnet.config import ModelConfig
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, atomic_path, check_writable_dir
from dnahnet.io.checkpoint import (
    COMPLETE, CONFIG, LATEST, METRICS, TRAIN, TRAINER, WEIGHTS, first_line, mark_complete, read_config, read_weights,
    write_json, write_weights,
)
from dnahnet.io.jsonfile import dumps

BEST = "best"
TRAINER_KEYS = ("step", "bases_seen", "optimizer", "scheduler", "rng", "data")


@dataclass
class TrainingCheckpoint:
    """Everything `--resume` reads back: the model config and weights, the trainer state, the log."""

    directory: Path
    config: ModelConfig
    model_state: dict[str, torch.Tensor]
    trainer_state: dict
    train_info: dict
    metrics: list[dict]


def write_checkpoint(
    out_dir: str | Path,
    name: str,
    *,
    config: ModelConfig,
    model_state: dict[str, torch.Tensor],
    trainer_state: dict,
    train_info: dict,
    metrics: list[dict],
) -> Path:
    """Write `out_dir/name/` whole, then swap it in; returns its path."""
    out_dir = check_writable_dir(out_dir)
    final, partial, old = out_dir / name, out_dir / f".{name}.partial", out_dir / f".{name}.old"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        config.to_json(partial / CONFIG)
        write_json(partial / TRAIN, train_info)
        with atomic_open(partial / METRICS) as fh:
            fh.writelines(dumps(m) + "\n" for m in metrics)
        with atomic_path(partial / TRAINER) as tmp:
            torch.save(trainer_state, tmp)
        write_weights(partial / WEIGHTS, model_state, config.tie_embeddings)
        mark_complete(partial)
    except BaseException as exc:  # a full disk or a signal: the previous checkpoint stays, nothing half-written remains
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, DnahnetInputError) and exc.message.startswith("no space left on device"):
            kept = "the previous one is kept" if final.exists() else "none was written"
            raise DnahnetInputError(f"no space left on device writing this checkpoint; {kept}", file=str(final)) from None
        raise
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    partial.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(out_dir: str | Path, name: str = LATEST) -> Path | None:
    """`out_dir/name`, or the previous one if a crash came between the two renames of `write_checkpoint`."""
    out_dir = Path(out_dir)
    for candidate in (out_dir / name, out_dir / f".{name}.old"):
        if candidate.is_dir():
            return candidate
    return None


def read_checkpoint(directory: str | Path) -> TrainingCheckpoint:
    """Read a training checkpoint folder, refusing any missing, truncated or corrupted part."""
    directory = Path(directory)
    config = read_config(directory)
    if not (directory / COMPLETE).exists():
        raise DnahnetInputError("checkpoint was not completely written (no COMPLETE marker); use an earlier one", file=str(directory))
    for part in (TRAIN, TRAINER):
        if not (directory / part).exists():
            raise DnahnetInputError(f"checkpoint has no {part}, so training cannot resume from it", file=str(directory))
    model_state = read_weights(directory, config)
    try:
        trainer_state = torch.load(directory / TRAINER, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - garbage makes the unpickler fail in many ways (IndexError, KeyError, ...)
        raise DnahnetInputError(f"trainer state is truncated or corrupted ({first_line(exc)})", file=str(directory / TRAINER)) from None
    if not isinstance(trainer_state, dict) or any(k not in trainer_state for k in TRAINER_KEYS):
        raise DnahnetInputError(f"trainer state lacks one of {', '.join(TRAINER_KEYS)}", file=str(directory / TRAINER))
    try:
        train_info = json.loads((directory / TRAIN).read_text())
        metrics_path = directory / METRICS
        lines = metrics_path.read_text().splitlines() if metrics_path.exists() else []
        metrics = [json.loads(line) for line in lines if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DnahnetInputError(f"checkpoint JSON is corrupted ({exc})", file=str(directory)) from None
    return TrainingCheckpoint(directory, config, model_state, trainer_state, train_info, metrics)
