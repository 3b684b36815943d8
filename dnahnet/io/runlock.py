"""An exclusive lock on a run folder, so two runs never write into one folder at once.

`fcntl.flock` on `FOLDER/.lock`: the kernel drops the lock when its holder exits,
however it exits (SIGKILL included), so a stale lock never blocks a new run. The
file names its holder (host, PID, start time, command) for the refusal message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from dnahnet.errors import DnahnetInputError

LOCK = ".lock"


def _holder(handle) -> str:
    handle.seek(0)
    text = handle.read().strip()
    return text or "another process (it has not written its name yet)"


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, what: str = "run folder") -> Iterator[Path]:
    """Hold an exclusive lock on `folder` for the block; refuse at once, naming the holder, if one is held."""
    folder = Path(folder)
    path = folder / LOCK
    try:
        handle = open(path, "a+", encoding="utf-8")
    except OSError as exc:
        raise DnahnetInputError(f"cannot create the lock file ({exc.strerror})", file=str(path)) from None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DnahnetInputError(
                f"this {what} is in use by {_holder(handle)}; wait for it to finish or choose another --out",
                file=str(folder),
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime())} ({command})\n")
            handle.flush()
            yield path
        finally:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
