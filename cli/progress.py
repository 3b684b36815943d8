"""Progress of long, countable jobs (bases exported, genes scored) on stderr.

A rich bar on a terminal; in a log file, one plain line at most every
`every_s` seconds (and at the end), so a 20-minute run is never silent.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from dnahnet.progress import Advance


@contextlib.contextmanager
def progress(total: int, unit: str, label: str, every_s: float = 60.0) -> Iterator[Advance]:
    """Yield `advance(n)`; report done/total, rate and time left."""
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn(label), MofNCompleteColumn(), TextColumn(unit), BarColumn(bar_width=30),
                      TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)
        return
    started = last = time.monotonic()
    done = 0

    def line() -> str:
        elapsed = max(time.monotonic() - started, 1e-9)
        rate = done / elapsed
        left = f", ~{(total - done) / rate / 60:.0f} min left" if 0 < rate and done < total else ""
        return f"{label}: {done:,} / {total:,} {unit} ({100 * done / max(total, 1):.0f}%), {rate:,.0f} {unit}/s{left}"

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        if time.monotonic() - last >= every_s:
            last = time.monotonic()
            console.print(line(), highlight=False, soft_wrap=True)

    yield advance
    if done:
        console.print(line(), highlight=False, soft_wrap=True)
