"""Checkpoint folders, the model half: `config.json` + `model.safetensors` (+ `train.json`), read and written.

This is all that inference, fine-tuning, the hub and `convert` need, so it lives
with the other file formats and imports nothing from training; the trainer's
half (`trainer.pt`, `metrics.jsonl`, `latest/` and `best/`, `--resume`) is
`dnahnet.train.checkpoint`, built on this one.

Every file is written atomically; a folder whose `trainer.pt` exists without the
`COMPLETE` marker (written last) was interrupted mid-write and is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from dnahnet.config import ModelConfig
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, atomic_path, check_writable_dir, staged_folder
from dnahnet.io.torch_state import read_torch_state
from dnahnet.io.weights import load_weights, save_weights
from dnahnet.nn.hnet import HNetLM

# the files of a checkpoint folder
CONFIG = "config.json"
TRAIN = "train.json"
WEIGHTS = "model.safetensors"
TRAINER = "trainer.pt"
METRICS = "metrics.jsonl"
COMPLETE = "COMPLETE"
LATEST = "latest"  # a training run's newest checkpoint folder (named in the "did you mean" hint)


def first_line(exc: BaseException) -> str:
    """An exception as one short line for a user message."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def write_weights(path: Path, state: dict[str, torch.Tensor], tie_embeddings: bool) -> None:
    """model.safetensors from a state dict (on CPU; the tied lm_head left out), atomically."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    if tie_embeddings:
        state.pop("lm_head.weight", None)
    with atomic_path(path) as tmp:
        mode = tmp.stat().st_mode  # safetensors recreates the file private (0600); keep the usual permissions
        save_weights(tmp, state, metadata={"format": "pt", "dnahnet": "1"})
        tmp.chmod(mode)


def write_json(path: Path, data: dict) -> None:
    """An indented JSON file (train.json), atomically."""
    with atomic_open(path) as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.write("\n")


def save_model(directory: str | Path, model: HNetLM, train_info: dict | None = None) -> Path:
    """Write config.json, train.json (if given) and model.safetensors atomically."""
    directory = check_writable_dir(directory)
    (directory / COMPLETE).unlink(missing_ok=True)
    model.config.to_json(directory / CONFIG)
    if train_info is not None:
        write_json(directory / TRAIN, train_info)
    write_weights(directory / WEIGHTS, model.state_dict(), model.config.tie_embeddings)
    return directory


def mark_complete(directory: str | Path) -> None:
    """Write the `COMPLETE` marker: the last file of a checkpoint folder."""
    with atomic_open(Path(directory) / COMPLETE) as fh:
        fh.write("ok\n")


def read_config(directory: str | Path) -> ModelConfig:
    """config.json of a checkpoint folder; a run folder is answered with "did you mean RUN/latest?"."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise DnahnetInputError("expected a checkpoint folder, got a file", file=str(directory))
    if not directory.is_dir():
        raise DnahnetInputError("checkpoint folder not found", file=str(directory))
    path = directory / CONFIG
    if not path.exists():
        hint = f"; did you mean {directory / LATEST}?" if (directory / LATEST / CONFIG).exists() else ""
        raise DnahnetInputError(f"not a dnahnet checkpoint: {CONFIG} is missing{hint}", file=str(directory))
    return ModelConfig.from_checkpoint_json(path)


def read_weights(directory: str | Path, config: ModelConfig) -> dict[str, torch.Tensor]:
    """model.safetensors as a state dict, refusing a truncated, corrupted or non-finite file."""
    directory = Path(directory)
    weights = directory / WEIGHTS
    if not weights.exists():
        raise DnahnetInputError(f"checkpoint has no {WEIGHTS}", file=str(directory))
    if (directory / TRAINER).exists() and not (directory / COMPLETE).exists():
        raise DnahnetInputError("checkpoint was not completely written (no COMPLETE marker); use an earlier one", file=str(directory))
    state = load_weights(weights)  # refuses a truncated file or one whose recorded checksum does not match
    if config.tie_embeddings:
        state.setdefault("lm_head.weight", state.get("embeddings.weight"))
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise DnahnetInputError(f"weights contain NaN/inf in {name}", file=str(weights))
    return state


def load_state_strict(model: HNetLM, state: dict[str, torch.Tensor], *, file: str, against: str) -> None:
    """load_state_dict(strict=True), with a mismatch (names or shapes) as a one-line input error."""
    missing, unexpected = [], []
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # size mismatches raise even when strict=False
        shapes = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise DnahnetInputError(f"weights do not match {against}: {shapes[0] if shapes else first_line(exc)}", file=file) from None
    if missing or unexpected:
        raise DnahnetInputError(
            f"weights do not match {against} (missing {len(missing)}: {missing[:3]}, unexpected {len(unexpected)}: {unexpected[:3]})",
            file=file,
        )


def load_model(
    directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> HNetLM:
    """Build the model from config.json and load model.safetensors (strict), refusing damaged files."""
    directory = Path(directory)
    config = read_config(directory)
    state = read_weights(directory, config)
    model = HNetLM(config)
    load_state_strict(model, state, file=str(directory / WEIGHTS), against="config.json")
    model.to(device=device)
    if dtype is not None:
        model.to(dtype=dtype)
    model.eval()
    return model


def replace_folder(out_dir: str | Path, write, *, overwrite: bool = False) -> Path:
    """Write a checkpoint folder whole with `write(staging_folder)`, then swap it in.

    A non-empty `out_dir` is refused unless `overwrite`; then it is replaced whole
    (no file of the old checkpoint survives). An interrupted write leaves `out_dir`
    as it was.
    """
    with staged_folder(out_dir, overwrite=overwrite) as partial:
        write(partial)
        mark_complete(partial)
    return Path(out_dir)


def import_official(config_json: str | Path, weights: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Turn an official H-Net release (config JSON + torch state dict, .pt or .safetensors) into a checkpoint folder.

    The state dict must load with strict=True: same names and shapes as the
    official implementation, which is what dnahnet builds from the same config.
    """
    config = ModelConfig.from_json(config_json)
    weights = Path(weights)
    if not weights.exists():
        raise DnahnetInputError("weights file not found", file=str(weights))
    if weights.suffix == ".safetensors":
        try:
            state = load_file(str(weights))
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
            raise DnahnetInputError(f"cannot read weights ({first_line(exc)})", file=str(weights)) from None
    else:  # a pickle: tensors and the omegaconf configs official releases carry, nothing else
        state = read_torch_state(weights)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DnahnetInputError(
            f"expected a state dict (parameter name -> tensor), got {type(state).__name__}", file=str(weights))
    model = HNetLM(config)
    load_state_strict(model, state, file=str(weights), against="the config")
    info = {"imported_from": {"config": str(config_json), "weights": str(weights)}}
    return replace_folder(out_dir, lambda folder: save_model(folder, model, train_info=info), overwrite=overwrite)
