"""Checkpoint folders: `config.json`, `train.json`, `model.safetensors`, `trainer.pt`, `metrics.jsonl`.

The model half (config + weights) is all that inference needs; the trainer half
(optimiser, scheduler, step, RNG and sampler state) makes `--resume` exact.
Every file is written atomically, weights last-but-one and a `COMPLETE` marker
last, so a folder interrupted mid-write is recognised and refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dnahnet.config import ModelConfig
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, atomic_path, check_writable_dir
from dnahnet.nn.hnet import HNetLM

CONFIG = "config.json"
TRAIN = "train.json"
WEIGHTS = "model.safetensors"
TRAINER = "trainer.pt"
METRICS = "metrics.jsonl"
COMPLETE = "COMPLETE"


def save_model(directory: str | Path, model: HNetLM, train_info: dict | None = None) -> Path:
    """Write config.json, train.json (if given) and model.safetensors atomically."""
    directory = check_writable_dir(directory)
    (directory / COMPLETE).unlink(missing_ok=True)
    model.config.to_json(directory / CONFIG)
    if train_info is not None:
        with atomic_open(directory / TRAIN) as fh:
            json.dump(train_info, fh, indent=2, default=str)
            fh.write("\n")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        state.pop("lm_head.weight", None)
    with atomic_path(directory / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "dnahnet": "1"})
    return directory


def mark_complete(directory: str | Path) -> None:
    with atomic_open(Path(directory) / COMPLETE) as fh:
        fh.write("ok\n")


def read_config(directory: str | Path) -> ModelConfig:
    directory = Path(directory)
    if not directory.is_dir():
        raise DnahnetInputError("checkpoint folder not found", file=str(directory))
    path = directory / CONFIG
    if not path.exists():
        raise DnahnetInputError(f"not a dnahnet checkpoint: {CONFIG} is missing", file=str(directory))
    return ModelConfig.from_json(path)


def load_model(
    directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> HNetLM:
    """Build the model from config.json and load model.safetensors (strict), refusing damaged files."""
    directory = Path(directory)
    config = read_config(directory)
    weights = directory / WEIGHTS
    if not weights.exists():
        raise DnahnetInputError(f"checkpoint has no {WEIGHTS}", file=str(directory))
    if (directory / TRAINER).exists() and not (directory / COMPLETE).exists():
        raise DnahnetInputError("checkpoint was not completely written (no COMPLETE marker); use an earlier one", file=str(directory))
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DnahnetInputError(f"weights file is truncated or corrupted ({exc})", file=str(weights)) from None
    model = HNetLM(config)
    if config.tie_embeddings:
        state.setdefault("lm_head.weight", state.get("embeddings.weight"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DnahnetInputError(
            f"weights do not match config.json (missing {len(missing)}: {missing[:3]}, unexpected {len(unexpected)}: {unexpected[:3]})",
            file=str(weights),
        )
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise DnahnetInputError(f"weights contain NaN/inf in {name}", file=str(weights))
    model.to(device=device)
    if dtype is not None:
        model.to(dtype=dtype)
    model.eval()
    return model
