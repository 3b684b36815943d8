"""Atomic writes: a reader never sees a half-written output or checkpoint.

Everything is written to a temporary file in the destination folder, flushed,
fsynced and renamed over the target (rename is atomic on POSIX within a folder).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Iterator

from dnahnet.errors import DnahnetInputError


def check_writable_dir(path: str | os.PathLike, *, create: bool = True) -> Path:
    """Return `path` as a folder we can write to, or raise a one-line input error."""
    folder = Path(path)
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DnahnetInputError(f"cannot create output folder ({exc.strerror})", file=str(folder)) from None
    if not folder.is_dir():
        raise DnahnetInputError("output path exists and is not a folder", file=str(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DnahnetInputError("output folder is not writable", file=str(folder))
    return folder


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` on success."""
    target = Path(target)
    check_writable_dir(target.parent if str(target.parent) else Path("."))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; outputs should get the usual permissions (0666 minus umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open `target` for writing atomically; `-` means stdout (not atomic, by nature)."""
    if str(target) == "-":
        yield sys.stdout if "b" not in mode else sys.stdout.buffer
        sys.stdout.flush()
        return
    if "b" in mode:
        encoding = None
    with atomic_path(target) as tmp:
        with open(tmp, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def save_png(fig, target: str | os.PathLike, dpi: int = 120, **savefig_kwargs) -> Path:
    """Write a matplotlib figure as PNG atomically (a viewer never sees half an image)."""
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", **savefig_kwargs)
    return Path(target)
