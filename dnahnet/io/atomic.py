"""Atomic writes: a reader never sees a half-written output or checkpoint.

Everything is written to a temporary file in the destination folder, flushed,
fsynced and renamed over the target (rename is atomic on POSIX within a folder).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import IO, Iterator

from dnahnet.errors import DnahnetInputError

_FULL = (errno.ENOSPC, errno.EDQUOT)
_LOW_SPACE = 1 << 20  # bytes: a write that fails with less than this left free failed for want of space
_TMP_PID = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+(?:\.[^.]*)?\.tmp$")


def _disk_full(folder: Path) -> bool:
    """Whether `folder`'s file system has (almost) no space left (torch.save reports ENOSPC only as a short write)."""
    try:
        return shutil.disk_usage(folder).free < _LOW_SPACE
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(folder: Path, name: str) -> None:
    """Remove `.NAME.PID.*.tmp` files left next to `NAME` by killed runs (their PID no longer runs).

    Temporaries carry their writer's PID, so a live writer's file is never touched.
    """
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            match = _TMP_PID.match(entry.name)
            if match and match["name"] == name and int(match["pid"]) != os.getpid() and not _pid_alive(int(match["pid"])):
                with contextlib.suppress(OSError):
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()


def terminate_cleanly() -> None:
    """Turn SIGTERM (cluster preemption, `kill`) into SystemExit so that temporaries are removed on the way out."""

    def _exit(signum, frame):  # noqa: ARG001
        raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, _exit)


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
    if target.is_dir():
        raise DnahnetInputError("output path is an existing folder; give a file name", file=str(target))
    check_writable_dir(target.parent if str(target.parent) else Path("."))
    clean_stale_temporaries(target.parent, target.name)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; outputs should get the usual permissions (0666 minus umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as exc:
        full = (isinstance(exc, OSError) and exc.errno in _FULL) or (
            isinstance(exc, (OSError, RuntimeError)) and _disk_full(target.parent))
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if full:
            raise DnahnetInputError("no space left on device writing this file; nothing was written", file=str(target)) from None
        raise


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty hidden folder beside `target` to fill; on success it replaces `target` whole.

    The folder-sized twin of `atomic_path`: an interrupted or failed write removes
    the staging folder and leaves `target` as it was. A non-empty `target` is
    refused unless `overwrite` (then no file of the old folder survives).
    """
    out = Path(target)
    if out.exists() and not out.is_dir():
        raise DnahnetInputError("output path exists and is not a folder", file=str(out))
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DnahnetInputError("output folder is not empty; pass --overwrite to replace it, or choose another --out",
                                file=str(out))
    parent = check_writable_dir(out.parent if str(out.parent) else Path("."))
    partial, old = parent / f".{out.name}.partial", parent / f".{out.name}.old"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    partial.rename(out)
    shutil.rmtree(old, ignore_errors=True)


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
