"""Embedding files: `.safetensors` or `.npz`, one row (or row group) per record, with its name.

Arrays (float32 vectors, int64 positions):
- pool "mean": `embeddings` (n, d); row i is record i.
- pool "none": `embeddings` (sum of lengths, d) and `offsets` (n + 1): record i is
  rows offsets[i]:offsets[i+1], one per base.
- pool "chunks": as "none", one row per chunk, plus `starts`/`ends` (0-based
  half-open base spans of each chunk).
Names: in `.npz` a unicode array `names`; in `.safetensors` (which holds only
tensors) the JSON list `names` in the header metadata, with the other options
(`pool`, `layer`, `stage`, `rc`, `model`). `.npz` files also hold them as 0-d arrays.
Both load without pickle (`np.load(path)`, `safetensors.numpy.load_file`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_path

FORMATS = (".safetensors", ".npz")


def embedding_format(path: str | os.PathLike) -> str:
    """The output format from the file name, checked before any work is done."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DnahnetInputError(f"embedding output must end in {' or '.join(FORMATS)}, got {suffix or 'no suffix'!r}", file=str(path))
    return suffix


def write_embeddings(path: str | os.PathLike, names: list[str], arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write arrays + names + metadata atomically in the format of `path`'s suffix."""
    suffix = embedding_format(path)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    with atomic_path(path) as tmp:
        if suffix == ".npz":
            extra = {k: np.asarray(str(v)) for k, v in meta.items()}
            with open(tmp, "wb") as fh:
                np.savez(fh, names=np.asarray(names, dtype=np.str_), **arrays, **extra)
        else:
            from safetensors.numpy import save_file

            mode = tmp.stat().st_mode
            save_file(arrays, str(tmp), metadata={"names": json.dumps(names), **{k: str(v) for k, v in meta.items()}})
            tmp.chmod(mode)
    return Path(path)


def read_embeddings(path: str | os.PathLike) -> tuple[list[str], dict[str, np.ndarray], dict[str, str]]:
    """(names, arrays, metadata) of a file written by `write_embeddings`."""
    path = Path(path)
    suffix = embedding_format(path)
    if suffix == ".npz":
        with np.load(path) as data:
            names = [str(n) for n in data["names"]]
            arrays = {k: data[k] for k in data.files if k in ("embeddings", "offsets", "starts", "ends")}
            meta = {k: str(data[k]) for k in data.files if k not in arrays and k != "names"}
        return names, arrays, meta
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        meta = dict(fh.metadata() or {})
        arrays = {k: fh.get_tensor(k) for k in fh.keys()}
    names = json.loads(meta.pop("names", "[]"))
    return names, arrays, meta
