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
import json
import math
import os
import shutil
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

import numpy as np

from dnahnet.alphabet import N_BYTE, reverse_complement
from dnahnet.distributed import DistEnv
from dnahnet.errors import DnahnetInputError
from dnahnet.infer.fasta_input import InputRecord
from dnahnet.infer.model import AUTO, MAX_BATCH_TOKENS, DnaModel, Window, _mean_of_strands, plan_windows
from dnahnet.infer.sharding import (
    DEFAULT_SHARD_BASES, PartStore, Region, Shard, genome_identity, model_identity, parts_folder, plan_shards,
    regions_digest, run_sharded, scratch_store,
)
from dnahnet.io.atomic import atomic_open, check_writable_dir
from dnahnet.io.bed import bedgraph_base_lines
from dnahnet.io.bigwig import BigWigWriter
from dnahnet.io.tracks import bedgraph_track_line, open_text_track, track_format
from dnahnet.progress import ProgressFactory, silent

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
        f"# precision: {model.precision.describe()}",
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


class _Utf8:
    """str writes onto a binary handle (a bgzip stream)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle

    def write(self, text: str) -> None:
        self.handle.write(text.encode())


class _PerBase:
    """Streams (chrom, pos, pos+1, log2 p) lines for scored positions (to a binary handle)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle

    def write(self, record: InputRecord, start: int, values: np.ndarray) -> None:
        idx = np.flatnonzero(np.isfinite(values))
        if not len(idx):
            return
        base = record.offset + start
        chrom = record.chrom
        self.handle.write(bedgraph_base_lines(chrom, (idx + base).tolist(), values[idx].astype(np.float64).tolist(), 9).encode())


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
    track_line: bool = True,
    progress: ProgressFactory = silent,
    total: int = 0,
) -> ScoreSummary:
    """Score `records` and write one TSV row per record in input order (`out` "-" = stdout).

    Rows are written as soon as their record is scored, and per-base values as each
    block of a long record finishes: nothing is gathered over the whole input.
    `per_base` is a bedGraph (with a track line when `track_line`) or, named
    `.gz`, bgzip + tabix; a bigWig needs chromosome sizes: `score_regions`.
    `progress` is told `total` (the positions to score, when known) and hears of each block's.
    """
    if reduce not in REDUCTIONS:
        raise DnahnetInputError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    if per_base is not None and track_format(per_base) == "bigwig":
        raise DnahnetInputError("a bigWig per-base track needs chromosome sizes: score a --genome, or write a .bedGraph",
                                file=str(per_base))
    window, context = model.resolve_windows(window, context)
    summary = ScoreSummary()
    line = bedgraph_track_line("dnahnet_log2p", "dnahnet per-base log2 P (bits; N and first position not scored)")
    with contextlib.ExitStack() as stack:
        table = stack.enter_context(atomic_open(out)) if track_format(out) != "bgzip" else \
            _Utf8(stack.enter_context(open_text_track(out, index=False)))
        track = _PerBase(stack.enter_context(open_text_track(per_base, line if track_line else None))) \
            if per_base is not None else None
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

        advance = stack.enter_context(progress(total))  # `total`: positions to score, for the progress bar
        bits, scored, n_count = 0.0, 0, 0
        for block in model.iter_score(scorable(), batch_size=batch_size, rc=rc, window=window, context=context, dna=dna):
            advance(len(block.values))
            write_flagged_until_scorable()
            rec = queue[0]
            finite = np.isfinite(block.values)
            bits += float(block.values[finite].astype(np.float64).sum())
            scored += int(finite.sum())
            if dna:
                n_count += int(np.count_nonzero(rec.seq[block.start : block.start + len(block.values)] == ord("N")))
            if track is not None:
                track.write(rec, block.start, block.values)
            if block.last:
                _write_row(table, queue.popleft(), n_count, scored, bits, reduce, dna, summary)
                bits, scored, n_count = 0.0, 0, 0
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


# ---------------------------------------------------------------- genome-scale (sharded) scoring


@dataclass
class GenomeScoreSummary(ScoreSummary):
    """A sharded run: the table's totals plus what was skipped and reused."""

    bases: int = 0
    n_bases: int = 0
    regions_all_n: int = 0
    windows: int = 0
    windows_skipped_all_n: int = 0
    shards: int = 0
    shards_computed: int = 0
    shards_reused: int = 0


def score_regions(
    model: DnaModel,
    genome,
    regions: Sequence[Region],
    out: str | os.PathLike,
    per_base: str | os.PathLike | None = None,
    reduce: str = "sum",
    rc: bool = False,
    window: int | None = AUTO,
    context: int = AUTO,
    batch_size: int = 16,
    track_line: bool = True,
    progress: ProgressFactory = silent,
    shard_bases: int = DEFAULT_SHARD_BASES,
    env: DistEnv | None = None,
) -> GenomeScoreSummary:
    """Score genome regions (one TSV row each, in the given order) in shards, on one or many ranks.

    Each region is read window by window from the genome (memory is bounded by
    the shards' windows, never by a contig); windows whose kept range is all N
    are skipped (they could score nothing). `per_base` is a bedGraph (`.gz`:
    bgzip + tabix) or a bigWig (`.bw`, regions must then be sorted and not
    overlap). Parts, restarts and ranks: `dnahnet.infer.sharding`.
    """
    if reduce not in REDUCTIONS:
        raise DnahnetInputError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    if batch_size < 1:
        raise DnahnetInputError(f"batch size must be at least 1, got {batch_size}")
    env = env or DistEnv(device=model.device)
    window, context = model.resolve_windows(window, context)
    if window is not None:
        plan_windows(window + 1, window, context)  # validates window/context early
    base_format = track_format(per_base) if per_base is not None else None
    if base_format == "bigwig":
        _check_sorted_disjoint(genome, regions)
    for path in [out, per_base]:
        if path is not None and str(path) != "-":
            check_writable_dir(Path(path).parent if str(Path(path).parent) else Path("."))
    shards = plan_shards(regions, window, context, shard_bases)
    per_pass = max(1, min(batch_size, MAX_BATCH_TOKENS // ((window or 1) * (2 if rc else 1)))) if window else 1
    manifest = {
        "command": "dnahnet score", "--checkpoint": model_identity(model), "--genome": genome_identity(genome),
        "regions (--region/--bed/--contigs)": regions_digest(regions), "--window": window, "--context": context,
        "windows per forward pass (--batch-size)": per_pass, "--shard-bases": shard_bases, "--rc": rc,
        "--per-base": base_format, "dtype": str(model.dtype), "precision": model.precision.name, "device": model.device.type,
    }
    summary = GenomeScoreSummary()
    plans: dict[int, list[Window]] = {}

    def compute(shard: Shard, folder: Path) -> None:
        region = regions[shard.region]
        if rc and shard.region not in plans:
            plans.clear()
            plans[shard.region] = plan_windows(region.length, window, context)
        values, meta = _score_shard(model, genome, region, shard, per_pass, plans.get(shard.region))
        finite = np.isfinite(values)
        meta.update(loglik=float(values[finite].astype(np.float64).sum()), scored=int(finite.sum()))
        if base_format == "bigwig":
            np.save(folder / "values.npy", values)
        elif base_format is not None:
            with open(folder / "values.txt", "wb") as fh:
                idx = np.flatnonzero(finite)
                base = region.start + shard.a
                fh.write(bedgraph_base_lines(region.chrom, (idx + base).tolist(),
                                             values[idx].astype(np.float64).tolist(), 9).encode())
        (folder / "meta.json").write_text(json.dumps(meta))

    def merge() -> None:
        _merge_scores(store, model, regions, shards, genome, out, per_base, base_format, reduce, rc, window, context,
                      track_line, summary)

    mine = sum(s.bases for s in shards[env.rank :: env.world_size])
    with contextlib.ExitStack() as stack:
        if str(out) == "-":
            store = stack.enter_context(scratch_store(manifest, env)) if per_base is None or str(per_base) == "-" \
                else PartStore(parts_folder(per_base), manifest)
        else:
            store = PartStore(parts_folder(out), manifest)
        advance = stack.enter_context(progress(mine))
        counts = run_sharded(shards, store, env, compute, merge, advance)
    summary.shards, summary.shards_computed, summary.shards_reused = counts.shards, counts.computed, counts.reused
    return summary


def _check_sorted_disjoint(genome, regions: Sequence[Region]) -> None:
    rank = {name: i for i, name in enumerate(genome.names)}
    for a, b in zip(regions, regions[1:]):
        if rank[b.chrom] < rank[a.chrom] or (b.chrom == a.chrom and b.start < a.end):
            raise DnahnetInputError(
                f"a bigWig needs sorted regions that do not overlap, but {b.name} comes after {a.name}; "
                "sort and merge them (bedtools sort -faidx G.fai | bedtools merge) or write a .bedGraph"
            )


def _score_shard(model: DnaModel, genome, region: Region, shard: Shard, per_pass: int,
                 rc_plan: list[Window] | None) -> tuple[np.ndarray, dict]:
    """log2 P over the shard's kept range (NaN where not scored), and its counts."""
    chrom, start, length = region.chrom, region.start, region.length
    a = shard.a
    out = np.full(shard.bases, np.nan, dtype=np.float32)
    meta = {"n_count": 0, "windows": len(shard.windows), "skipped": 0}

    def fetch(w: Window, mirrored: bool = False) -> np.ndarray:
        if not mirrored:
            return genome.fetch_normalized(chrom, start + w.start, start + w.end)[0]
        return reverse_complement(genome.fetch_normalized(chrom, start + length - w.end, start + length - w.start)[0])

    for g in range(0, len(shard.windows), per_pass):
        group = list(shard.windows[g : g + per_pass])
        ga, gb = group[0].count_start, group[-1].count_end
        rows = [fetch(w) for w in group]
        kept_n = [row[w.count_start - w.start :] == N_BYTE for w, row in zip(group, rows)]
        meta["n_count"] += sum(int(k.sum()) for k in kept_n)
        live = [i for i, k in enumerate(kept_n) if not k.all()]
        meta["skipped"] += len(group) - len(live)
        if not live:
            continue
        values = np.full(gb - ga, np.nan, dtype=np.float32)
        for i, lp in zip(live, model.log2probs([rows[i] for i in live])):
            w = group[i]
            values[w.count_start - ga : w.count_end - ga] = lp[w.count_start - w.start :]
        if rc_plan is not None:
            ra, rb = length - gb, length - ga
            rc_group = [w for w in rc_plan if w.count_end > ra and w.count_start < rb]
            mirrored = np.empty(rb - ra, dtype=np.float32)
            for w, lp in zip(rc_group, model.log2probs([fetch(w, mirrored=True) for w in rc_group])):
                lo, hi = max(w.count_start, ra), min(w.count_end, rb)
                mirrored[lo - ra : hi - ra] = lp[lo - w.start : hi - w.start]
            values = _mean_of_strands(values, mirrored[::-1])
        values[np.concatenate(kept_n)] = np.nan
        out[ga - a : gb - a] = values
    return out, meta


def _merge_scores(store: PartStore, model: DnaModel, regions: Sequence[Region], shards: Sequence[Shard], genome, out,
                  per_base, base_format, reduce: str, rc: bool, window, context, track_line: bool,
                  summary: GenomeScoreSummary) -> None:
    """Parts in shard order into the TSV (one row per region) and the per-base track; fill `summary`."""
    by_region: dict[int, list[Shard]] = {}
    for s in shards:
        by_region.setdefault(s.region, []).append(s)
    line = bedgraph_track_line("dnahnet_log2p", "dnahnet per-base log2 P (bits; N and first position not scored)")
    with contextlib.ExitStack() as stack:
        table = stack.enter_context(open_text_track(out, index=False))
        track = None
        if base_format == "bigwig":
            chroms = list(dict.fromkeys(r.chrom for r in regions))
            track = stack.enter_context(BigWigWriter(per_base, [(c, genome.sizes[c]) for c in chroms]))
        elif base_format is not None:
            track = stack.enter_context(open_text_track(per_base, line if track_line else None))
        head = header_lines(model, reduce=reduce, rc=rc, window=window, context=context, dna=True)
        table.write(("\n".join(head) + "\n" + "\t".join(columns(True)) + "\n").encode())
        for r, region in enumerate(regions):
            total, scored, n_count = 0.0, 0, 0
            for shard in by_region.get(r, []):
                part = store.part(shard)
                meta = json.loads((part / "meta.json").read_text())
                total += meta["loglik"]
                scored += meta["scored"]
                n_count += meta["n_count"]
                summary.windows += meta["windows"]
                summary.windows_skipped_all_n += meta["skipped"]
                if base_format == "bigwig":
                    values = np.load(part / "values.npy")
                    track.add(region.chrom, np.arange(shard.a, shard.b) + region.start, values)
                elif track is not None:
                    with open(part / "values.txt", "rb") as fh:
                        shutil.copyfileobj(fh, track)
            summary.records += 1
            summary.bases += region.length
            summary.n_bases += n_count
            if region.length == 0:
                summary.flagged += 1
                table.write(f"{region.name}\t0\tnan\t0\tnan\tnan\tnan\tempty\n".encode())
                continue
            all_n = n_count == region.length
            summary.regions_all_n += all_n
            summary.scored_positions += scored
            summary.loglik_bits += total
            mean = total / scored if scored else math.nan
            headline = total if reduce == "sum" else mean
            note = "all N (skipped)" if all_n else "ok"
            table.write(f"{region.name}\t{region.length}\t{n_count}\t{scored}\t{_fmt(total)}\t{_fmt(-mean)}\t"
                        f"{_fmt(headline)}\t{note}\n".encode())
