"""The progress hook long library jobs accept, so the CLI can show a bar or log lines.

A `ProgressFactory` is called once with the total amount of work (in the job's
unit) and returns a context manager yielding `advance(n)`. Library code never
prints progress itself; `silent` is the default.
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterator

Advance = Callable[[int], None]
ProgressFactory = Callable[[int], ContextManager[Advance]]


@contextlib.contextmanager
def silent(total: int) -> Iterator[Advance]:
    """No progress shown."""
    yield lambda n: None
