"""One exception type for problems with what the user gave us.

The CLI turns a `DnahnetInputError` into one line on stderr and exit code 2;
anything else is an internal bug and keeps its traceback.
"""

from __future__ import annotations

import sys


class DnahnetInputError(Exception):
    """A user-facing input problem, located by file, record and position."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        record: str | None = None,
        position: int | str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.record = record
        self.position = position
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.record is not None:
            where.append(f"record {self.record}")
        if self.position is not None:
            where.append(f"position {self.position}")
        prefix = ": ".join([", ".join(where)]) + ": " if where else ""
        return (prefix + self.message).replace("\n", " ")


def report_input_error(exc: DnahnetInputError, prog: str) -> int:
    """Write the one line a user mistake gets, `PROG: error: ...`, to stderr and return its exit code, 2:
    the CLI, the pipelines and the bench scripts all report one this way."""
    print(f"{prog}: error: {exc.one_line()}", file=sys.stderr)
    return 2
