"""The command line of the running `dnahnet` call, for reports that must name it.

`main()` records its argv here, so a call made from Python (tests, pipelines)
is reported with the arguments it was given rather than the host process's
own `sys.argv`.
"""

from __future__ import annotations

import shlex
import sys

_argv: list[str] | None = None


def record(argv: list[str] | None) -> None:
    """Remember the arguments `main()` runs with (None: the process's own)."""
    global _argv
    _argv = None if argv is None else [str(a) for a in argv]


def command_line() -> str:
    """`dnahnet ARGS...`, shell-quoted so it can be pasted back."""
    return "dnahnet " + shlex.join(sys.argv[1:] if _argv is None else _argv)
