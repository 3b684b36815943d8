"""The one JSON writer for summaries: strict JSON (NaN and inf become null), written atomically.

Python's `json` writes bare `NaN`/`Infinity`, which strict parsers (JavaScript's
`JSON.parse`, `jq`, Python with `parse_constant` raising) reject.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from dnahnet.io.atomic import atomic_open


def strict(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (recursively; numpy scalars and arrays included)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalar or array, torch tensor
        return strict(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(value: Any, **kwargs) -> str:
    """Strict JSON text of `value` (non-finite numbers as null)."""
    return json.dumps(strict(value), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike, value: Any, *, indent: int | None = 2) -> Path:
    """Write `value` as strict JSON to `path` atomically, with a final newline."""
    with atomic_open(path) as fh:
        fh.write(dumps(value, indent=indent, default=str) + "\n")
    return Path(path)
