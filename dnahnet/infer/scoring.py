"""Sequence log-likelihoods as a TSV (and per-base bedGraph), written as batches finish.

Columns: name, length, n_count, scored_bases (scored_bytes in text mode),
loglik_bits (sum of log2 P over scored positions), bits_per_base (bits_per_byte:
-loglik_bits / scored), score (the headline: loglik_bits for `reduce="sum"`, the
mean log2 P = -bits_per_base for `reduce="mean"`), note ("ok", "empty",
"invalid: ..."). The header comment lines restate the conventions of
`dnahnet.infer.model` (first position and N never scored, rc, windows).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import deque
from dataclasses import dataclass
from typing import IO, Iterable, Iterator

import numpy as np

from dnahnet.errors import DnahnetInputError
from dnahnet.infer.fasta_input import InputRecord
from dnahnet.infer.model import AUTO, DnaModel
from dnahnet.io.atomic import atomic_open

REDUCTIONS = ("sum", "mean")


@dataclass
class ScoreSummary:
    records: int = 0
    flagged: int = 0
    scored_positions: int = 0
    loglik_bits: float = 0.0

    @property
    def bits_per_position(self) -> float:
        return -self.loglik_bits / self.scored_positions if self.scored_positions else math.nan


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.10g}"


def header_lines(model: DnaModel, *, reduce: str, rc: bool, window: int | None, context: int, dna: bool) -> list[str]:
    unit = "base" if dna else "byte"
    lines = [
        f"# dnahnet score: model {model.name}",
        "# units: bits (log base 2); loglik_bits = sum of log2 P(x_t | x_<t) over scored positions; "
        f"bits_per_{unit} = -loglik_bits / scored_{unit}s",
        "# first position: not scored (the model predicts position t from positions < t; position 0 has no context)",
    ]
    if dna:
        lines.append("# N handling: N (any non-ACGT IUPAC code) is never scored nor counted in scored_bases; it still serves as context")
    else:
        lines.append("# text mode: raw bytes, every byte after the first is scored; n_count is 0")
    if rc:
        lines.append("# rc: per-position mean of the forward strand and the reverse-complement strand (mirrored position); "
                     "scored only where both strands are, so the last position is not scored either")
    if window is not None:
        lines.append(f"# windows: sequences longer than {window} are scored in windows of {window} whose first {context} "
                     "positions only provide context; shorter ones in one exact pass")
    headline = "loglik_bits (sum)" if reduce == "sum" else f"mean log2 P per scored {unit} (= -bits_per_{unit})"
    lines.append(f"# score: {headline}")
    return lines


def columns(dna: bool) -> list[str]:
    unit = "base" if dna else "byte"
    return ["name", "length", "n_count", f"scored_{unit}s", "loglik_bits", f"bits_per_{unit}", "score", "note"]


class _PerBase:
    """Streams (chrom, pos, pos+1, log2 p) lines for scored positions."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle

    def write(self, record: InputRecord, start: int, values: np.ndarray) -> None:
        idx = np.flatnonzero(np.isfinite(values))
        if not len(idx):
            return
        base = record.offset + start
        chrom = record.chrom
        self.handle.write("".join(
            f"{chrom}\t{p}\t{p + 1}\t{v:.9g}\n" for p, v in zip((idx + base).tolist(), values[idx].astype(np.float64).tolist())
        ))


def score_to_tsv(
    model: DnaModel,
    records: Iterable[InputRecord],
    out: str | os.PathLike,
    per_base: str | os.PathLike | None = None,
    reduce: str = "sum",
    rc: bool = False,
    window: int | None = AUTO,
    context: int = AUTO,
    batch_size: int = 16,
    dna: bool = True,
) -> ScoreSummary:
    """Score `records` and write one TSV row per record in input order (`out` "-" = stdout).

    Rows are written as soon as their record is scored, and per-base values as each
    block of a long record finishes: nothing is gathered over the whole input.
    """
    if reduce not in REDUCTIONS:
        raise DnahnetInputError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    window, context = model.resolve_windows(window, context)
    summary = ScoreSummary()
    with contextlib.ExitStack() as stack:
        table = stack.enter_context(atomic_open(out))
        track = _PerBase(stack.enter_context(atomic_open(per_base))) if per_base is not None else None
        table.write("\n".join(header_lines(model, reduce=reduce, rc=rc, window=window, context=context, dna=dna)) + "\n")
        table.write("\t".join(columns(dna)) + "\n")
        queue: deque[InputRecord] = deque()

        def scorable() -> Iterator[np.ndarray]:
            for rec in records:
                queue.append(rec)
                if rec.seq is not None:
                    yield rec.seq

        def write_flagged_until_scorable() -> None:
            while queue and queue[0].seq is None:
                _write_row(table, queue.popleft(), 0, 0, 0.0, reduce, dna, summary)

        total, scored, n_count = 0.0, 0, 0
        for block in model.iter_score(scorable(), batch_size=batch_size, rc=rc, window=window, context=context, dna=dna):
            write_flagged_until_scorable()
            rec = queue[0]
            finite = np.isfinite(block.values)
            total += float(block.values[finite].astype(np.float64).sum())
            scored += int(finite.sum())
            if dna:
                n_count += int(np.count_nonzero(rec.seq[block.start : block.start + len(block.values)] == ord("N")))
            if track is not None:
                track.write(rec, block.start, block.values)
            if block.last:
                _write_row(table, queue.popleft(), n_count, scored, total, reduce, dna, summary)
                total, scored, n_count = 0.0, 0, 0
        write_flagged_until_scorable()
    return summary


def _write_row(table: IO[str], rec: InputRecord, n_count: int, scored: int, total: float, reduce: str, dna: bool,
               summary: ScoreSummary) -> None:
    summary.records += 1
    if rec.seq is None:
        summary.flagged += 1
        table.write(f"{rec.name}\t{rec.length}\tnan\t0\tnan\tnan\tnan\t{rec.note}\n")
        return
    summary.scored_positions += scored
    summary.loglik_bits += total
    mean = total / scored if scored else math.nan  # nothing scored: the sum is 0, the mean undefined
    headline = total if reduce == "sum" else mean
    table.write(f"{rec.name}\t{rec.length}\t{n_count if dna else 0}\t{scored}\t{_fmt(total)}\t{_fmt(-mean)}\t{_fmt(headline)}\t{rec.note}\n")
