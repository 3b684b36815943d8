"""model.safetensors with a checksum of its tensors and a byte-stable header.

- `save_weights` records `sha256` of the tensors (names, dtypes, shapes and bytes,
  in name order) in the file's metadata; `load_weights` recomputes it, so a flipped
  bit anywhere in the tensor data is refused instead of silently changing scores.
- safetensors writes its metadata map in hash-map order, which varies between
  processes, so identical weights gave files with different hashes. The header is
  rewritten in place with sorted keys (same length; the tensor bytes never move).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from dnahnet.errors import DnahnetInputError

CHECKSUM_KEY = "sha256"


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, bytes) of every tensor, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{list(t.shape)}\0".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def sort_header(path: str | os.PathLike) -> None:
    """Rewrite a safetensors header with sorted keys, in place (same length, padded with spaces)."""
    with open(path, "r+b") as fh:
        size = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(size))
        text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        if len(text) > size:  # cannot happen for a header safetensors wrote compactly; leave it as written
            return
        fh.seek(8)
        fh.write(text.ljust(size, b" "))


def save_weights(path: str | os.PathLike, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """safetensors file at `path` (not atomic: give it a temporary path) with the tensors' checksum in its metadata."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    meta = {**(metadata or {}), CHECKSUM_KEY: tensors_sha256(state)}
    save_file(state, str(path), metadata=meta)
    sort_header(path)


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, refusing a truncated file or one whose checksum does not match."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            state = {name: fh.get_tensor(name) for name in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DnahnetInputError(f"weights file is truncated or corrupted ({exc})", file=str(path)) from None
    expected = metadata.get(CHECKSUM_KEY)
    if expected is not None and tensors_sha256(state) != expected:
        raise DnahnetInputError(
            "weights do not match the checksum recorded when they were written (the file was damaged or edited "
            "after it was saved); use another copy of the checkpoint",
            file=str(path),
        )
    return state
