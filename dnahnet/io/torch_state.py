"""Torch `.pt` state dicts (official H-Net releases), unpickled with an allow-list and nothing else.

The official `generate.py` loads its released `.pt` files with `weights_only=False`
(inside `safe_globals([omegaconf.ListConfig])`, which that flag makes moot): any
class a pickle names is imported and run. The files hold omegaconf containers next
to the tensors, so a plain `weights_only=True` load refuses them. Here a file is
first scanned for the globals it names (without unpickling it); a file naming
anything beyond tensors, plain containers and the omegaconf classes below is
refused by name, and the rest is loaded with `weights_only=True` plus exactly that
allow-list. omegaconf is imported only for a file that needs it.
"""

from __future__ import annotations

import builtins
import collections
import re
import typing
import zipfile
from pathlib import Path

import torch

from dnahnet.errors import DnahnetInputError

# What omegaconf ListConfig/DictConfig pickle into (omegaconf 2.x): the containers, their metadata,
# the untyped value node, and the types recorded in that metadata (element/key types, the flags map).
OMEGACONF_GLOBALS = (
    "omegaconf.listconfig.ListConfig",
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode",
)
PLAIN_GLOBALS = {
    "builtins.dict": builtins.dict,
    "builtins.list": builtins.list,
    "builtins.int": builtins.int,
    "collections.defaultdict": collections.defaultdict,
    "typing.Any": typing.Any,
}
INSTALL_HINT = "pip install omegaconf, or the dnahnet[official] extra"


def _omegaconf_globals() -> dict[str, object]:
    try:
        from omegaconf import DictConfig, ListConfig
        from omegaconf.base import ContainerMetadata, Metadata
        from omegaconf.nodes import AnyNode
    except ImportError:
        return {}
    objects = (ListConfig, DictConfig, ContainerMetadata, Metadata, AnyNode)
    return dict(zip(OMEGACONF_GLOBALS, objects))


def read_torch_state(path: str | Path) -> object:
    """Unpickle a torch file holding tensors and, at most, omegaconf containers; refuse anything else in one line."""
    path = Path(path)
    if not path.exists():
        raise DnahnetInputError("weights file not found", file=str(path))
    if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
        raise DnahnetInputError(f"reading .pt files safely needs torch >= 2.6 (this is {torch.__version__})", file=str(path))
    scanned = zipfile.is_zipfile(path)  # torch.save's format since 1.6 lists its globals without unpickling
    if scanned:
        try:
            named = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception as exc:  # noqa: BLE001 - a damaged archive: the user's input
            raise DnahnetInputError(f"not a readable torch .pt file ({_first_line(exc)})", file=str(path)) from None
        _refuse(sorted(named - set(OMEGACONF_GLOBALS) - set(PLAIN_GLOBALS)), path)
    else:  # the legacy format cannot be scanned; the weights-only unpickler still refuses any other name
        named = set(PLAIN_GLOBALS) | set(OMEGACONF_GLOBALS)
    allowed = dict(PLAIN_GLOBALS)
    if named & set(OMEGACONF_GLOBALS):
        allowed.update(_omegaconf_globals())
    missing = named & set(OMEGACONF_GLOBALS) - set(allowed)
    if scanned and missing:
        _refuse_missing_omegaconf(path)
    try:
        with torch.serialization.safe_globals([(obj, name) for name, obj in allowed.items() if name in named]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file makes the unpickler fail in many ways
        unsupported = re.search(r"GLOBAL (\S+)", str(exc))
        if unsupported and unsupported.group(1) in missing:
            _refuse_missing_omegaconf(path)
        if unsupported:
            _refuse([unsupported.group(1)], path)
        raise DnahnetInputError(f"not a readable torch .pt file ({_reason(exc)})", file=str(path)) from None


def _refuse_missing_omegaconf(path: Path) -> None:
    raise DnahnetInputError(f"the file holds omegaconf configs; reading it needs omegaconf ({INSTALL_HINT})", file=str(path))


def _refuse(names: list[str], path: Path) -> None:
    if names:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise DnahnetInputError(
            f"refusing to unpickle {shown}: only tensors, plain containers and omegaconf configs are read from .pt files",
            file=str(path),
        )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _reason(exc: BaseException) -> str:
    """The line of a weights-only load error that says what was wrong (torch wraps it in advice)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Weights only load failed", "Check the documentation", "Please file an issue"))]
    return (useful or lines or [type(exc).__name__])[0]
