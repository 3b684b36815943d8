"""Chunk boundaries of whole chromosomes (or regions) as BED6, with optional p_t bedGraphs.

Each region is read as one independent sequence starting at its first base (as
`DnaModel.boundaries` would read it), in overlapping windows: a window's first
`context` bases only warm the model up, and only the boundaries of the rest are
kept, so the kept ranges tile the region exactly once. Output, 0-based half-open:

- BED6, one record per chunk: (chrom, start, end, "stageK", round(1000 * p_t at the
  chunk's first base), "."), sorted by chromosome (FASTA order), start, then stage
  (which is also end order: a deeper chunk starting at a base contains the
  shallower one starting there). Stage-2 chunks are mapped back to bases.
- A chunk ends at the next boundary of its stage, at the first N after it, or at
  the region end: chunks never cover an N and never cross the region end.
- N (assembly gaps, any non-ACGT): the model reads them as context, as in
  training, but no boundary and no p_t inside an N run is reported. Bases after an
  N run and before the next boundary belong to no chunk. Windows whose kept range
  is all N are skipped without running the model (they could report nothing).
- `probs_bedgraph`: per stage, p_t at every base that stage reads (stage 1: every
  non-N base; stage 2: every stage-1 chunk start), one bedGraph per stage (stage 1
  at the given path, stage k at `<stem>.stageK<suffix>`).

Windowed export is not bit-identical to one pass: cutting the context changes
the Mamba states (and full-attention encoders of inner stages) a little, and a
decision flips only when p_t sits that close to 0.5. `window_agreement` measures
it for any model. Measured on real chr22 (17.5 kb, N-free, from 20,070,034) with
window = context + 2,048:
- random tiny / tiny-2stage / cpu-small: stage 1 max |Δp_t| 4e-5 at context 64,
  < 2e-6 from 256 on; stage 2 of tiny-2stage (attention in its encoder) 5e-4 at
  64, 8e-5 at 4,096; every boundary call agrees (100%) at all these contexts.
- the same models with half of all Mamba heads made slow (A = -1, dt = 1e-3: a
  1,000-base memory, longer than trained DNA models typically keep): max |Δp_t|
  1e-3 at 256 (cpu-small: 99.84% of calls agree), 1.4-1.9e-4 at 2,048 and 2e-5 at
  4,096 (100% agree), 4e-7 at 8,192.
Hence the default context 4,096. Exact agreement holds where the routing's
dependence on the past is finite: fixed-k chunking (window starts are aligned to
k^stages) and, for the decisions, a sliding-window attention encoder with context
beyond its reach (tests/test_boundaries_export.py).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable

import numpy as np

from dnahnet.alphabet import N_BYTE
from dnahnet.errors import DnahnetInputError
from dnahnet.infer.model import MAX_BATCH_TOKENS, DnaModel, Window, plan_windows
from dnahnet.io.atomic import atomic_open
from dnahnet.progress import Advance, ProgressFactory, silent

BOUNDARY_WINDOW = 16384
BOUNDARY_CONTEXT = 4096


@dataclass
class BoundaryExportSummary:
    """What an export did: counts per region/window and per stage, and the files written."""

    regions: int = 0
    regions_merged: int = 0  # overlapping input regions joined into one
    regions_all_n: int = 0  # regions with no ACGT base: no chunks
    bases: int = 0
    n_bases: int = 0
    windows: int = 0
    windows_skipped_all_n: int = 0
    chunks: list[int] = field(default_factory=list)  # per stage
    bed: str = ""
    probs: list[str] = field(default_factory=list)


def probs_paths(path: str | os.PathLike, n_stages: int) -> list[Path]:
    """Stage 1 at `path`, stage k at `<stem>.stageK<suffix>`."""
    path = Path(path)
    return [path] + [path.with_name(f"{path.stem}.stage{k}{path.suffix}") for k in range(2, n_stages + 1)]


def normalise_regions(genome, regions: Iterable[tuple[str, int, int]] | None) -> tuple[list[tuple[str, int, int]], int]:
    """Check regions against the genome, sort them in FASTA order and merge overlaps; (regions, merged)."""
    if regions is None:
        return [(name, 0, genome.sizes[name]) for name in genome.names], 0
    rank = {name: i for i, name in enumerate(genome.names)}
    checked = []
    for chrom, start, end in regions:
        genome.check_range(chrom, int(start), int(end))
        checked.append((chrom, int(start), int(end)))
    checked.sort(key=lambda r: (rank[r[0]], r[1], r[2]))
    merged: list[tuple[str, int, int]] = []
    joined = 0
    for chrom, start, end in checked:
        if merged and merged[-1][0] == chrom and start < merged[-1][2]:
            merged[-1] = (chrom, merged[-1][1], max(merged[-1][2], end))
            joined += 1
        else:
            merged.append((chrom, start, end))
    return merged, joined


class _ChunkWriter:
    """Turns per-stage boundary and N-run events (in position order) into sorted BED6 lines.

    A stage's chunk stays open until its next event; closed records are written as
    soon as no open chunk of another stage could sort before them.
    """

    def __init__(self, out: IO[str], n_stages: int) -> None:
        self.out = out
        self.n_stages = n_stages
        self.counts = [0] * n_stages

    def begin(self, chrom: str, offset: int) -> None:
        self.chrom, self.offset = chrom, offset
        self.open: list[tuple[int, float] | None] = [None] * self.n_stages
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def feed(self, stage: int, boundaries: np.ndarray, probs: np.ndarray, n_starts: np.ndarray) -> None:
        """Boundaries (non-N) and N-run starts of one kept range, region coordinates, sorted."""
        pos = np.concatenate([boundaries, n_starts])
        if len(pos) == 0:
            return
        is_b = np.concatenate([np.ones(len(boundaries), bool), np.zeros(len(n_starts), bool)])
        p = np.concatenate([probs, np.zeros(len(n_starts), np.float32)])
        order = np.argsort(pos, kind="stable")
        pos, is_b, p = pos[order], is_b[order], p[order]
        carried = self.open[stage]
        if carried is not None:
            pos = np.concatenate([[carried[0]], pos])
            is_b = np.concatenate([[True], is_b])
            p = np.concatenate([[carried[1]], p]).astype(np.float32)
        closes = is_b[:-1]
        self._add(stage, pos[:-1][closes], pos[1:][closes], p[:-1][closes])
        self.open[stage] = (int(pos[-1]), float(p[-1])) if is_b[-1] else None

    def _add(self, stage: int, starts: np.ndarray, ends: np.ndarray, probs: np.ndarray) -> None:
        if len(starts):
            self.pending.append((starts.astype(np.int64), ends.astype(np.int64), np.full(len(starts), stage), probs))

    def flush(self, final_end: int | None = None) -> None:
        """Write every record that sorts before all open chunks (all of them, closing at `final_end`)."""
        if final_end is not None:
            for stage, chunk in enumerate(self.open):
                if chunk is not None:
                    self._add(stage, np.array([chunk[0]]), np.array([final_end]), np.array([chunk[1]], np.float32))
            self.open = [None] * self.n_stages
        if not self.pending:
            return
        starts, ends, stages, probs = (np.concatenate(c) for c in zip(*self.pending))
        keys = [(c[0], s) for s, c in enumerate(self.open) if c is not None]
        if keys:
            first_start, first_stage = min(keys)
            ready = (starts < first_start) | ((starts == first_start) & (stages < first_stage))
        else:
            ready = np.ones(len(starts), bool)
        order = np.lexsort((stages[ready], starts[ready]))
        s, e, st, p = starts[ready][order], ends[ready][order], stages[ready][order], probs[ready][order]
        score = np.clip(np.rint(p.astype(np.float64) * 1000), 0, 1000).astype(np.int64)
        chrom, off = self.chrom, self.offset
        self.out.write("".join(f"{chrom}\t{a + off}\t{b + off}\tstage{k + 1}\t{c}\t.\n" for a, b, k, c in zip(s.tolist(), e.tolist(), st.tolist(), score.tolist())))
        for k in range(self.n_stages):
            self.counts[k] += int(np.count_nonzero(st == k))
        rest = ~ready
        self.pending = [(starts[rest], ends[rest], stages[rest], probs[rest])] if rest.any() else []


def _n_run_starts(isn: np.ndarray) -> np.ndarray:
    """Indices where an N run starts (the first index counts when it is N)."""
    prev = np.concatenate([[False], isn[:-1]])
    return np.flatnonzero(isn & ~prev)


def export_boundaries(
    model: DnaModel,
    genome,
    regions: Iterable[tuple[str, int, int]] | None,
    out_bed: str | os.PathLike,
    probs_bedgraph: str | os.PathLike | None = None,
    window: int = BOUNDARY_WINDOW,
    context: int = BOUNDARY_CONTEXT,
    track_line: bool = False,
    batch_size: int = 4,
    progress: ProgressFactory = silent,
) -> BoundaryExportSummary:
    """Write BED6 chunks (and p_t bedGraphs) of `regions` (0-based half-open; None = every sequence).

    `genome` is a `dnahnet.data.genome.Genome` (or a FASTA path). See the module
    docstring for coordinates, N handling and windows. `progress` is told the
    bases to export and hears of each window's. Returns a summary.
    """
    if model.n_routed == 0:
        raise DnahnetInputError("model has no routing stages; it has no boundaries")
    if isinstance(genome, (str, os.PathLike)):
        from dnahnet.data.corpus import open_genome

        genome = open_genome(genome)
    plan_windows(window + 1, window, context)  # validate before any output is opened
    region_list, merged = normalise_regions(genome, regions)
    n_stages = model.n_routed
    summary = BoundaryExportSummary(regions=len(region_list), regions_merged=merged, bed=str(out_bed))
    with contextlib.ExitStack() as stack:
        bed = stack.enter_context(atomic_open(out_bed))
        if track_line:
            bed.write('track name="dnahnet_chunks" description="H-Net chunks: name = stage, score = 1000 x p at the chunk start" useScore=1\n')
        graphs: list[IO[str]] = []
        if probs_bedgraph is not None:
            for k, path in enumerate(probs_paths(probs_bedgraph, n_stages), start=1):
                handle = stack.enter_context(atomic_open(path))
                if track_line:
                    handle.write(f'track type=bedGraph name="dnahnet_p_stage{k}" description="H-Net stage-{k} boundary probability p_t"\n')
                graphs.append(handle)
                summary.probs.append(str(path))
        writer = _ChunkWriter(bed, n_stages)
        advance = stack.enter_context(progress(sum(e - s for _, s, e in region_list)))
        for chrom, start, end in region_list:
            _export_region(model, genome, chrom, start, end, window, context, batch_size, writer, graphs, summary,
                           advance)
        summary.chunks = writer.counts
    return summary


def _export_region(model, genome, chrom, start, end, window, context, batch_size, writer, graphs, summary,
                   advance: Advance) -> None:
    length = end - start
    plan = plan_windows(length, window, context, align=model.window_align)
    per_pass = max(1, min(batch_size, MAX_BATCH_TOKENS // max(window, 1)))
    writer.begin(chrom, start)
    region_n = 0
    for g in range(0, len(plan), per_pass):
        group: list[Window] = plan[g : g + per_pass]
        rows = [genome.fetch_normalized(chrom, start + w.start, start + w.end)[0] for w in group]
        live = [not (row[w.count_start - w.start :] == N_BYTE).all() for w, row in zip(group, rows)]
        kept_rows = [row for row, ok in zip(rows, live) if ok]
        results = iter(model.boundaries_batch(kept_rows) if kept_rows else [])
        summary.windows += len(group)
        summary.windows_skipped_all_n += len(group) - len(kept_rows)
        for w, row, ok in zip(group, rows, live):
            isn = row[w.count_start - w.start :] == N_BYTE
            region_n += int(isn.sum())
            n_starts = _n_run_starts(isn) + w.count_start
            stages = next(results) if ok else None
            for k in range(model.n_routed):
                if stages is None:
                    writer.feed(k, np.zeros(0, np.int64), np.zeros(0, np.float32), n_starts)
                    continue
                sb = stages[k]
                b_pos, b_p = _kept(sb.positions, sb.probs, w, isn)
                writer.feed(k, b_pos, b_p, n_starts)
                if graphs:
                    p_pos, p_val = _kept(sb.p_positions, sb.p_values, w, isn)
                    off = start
                    graphs[k].write("".join(f"{chrom}\t{a + off}\t{a + off + 1}\t{v:.6g}\n" for a, v in zip(p_pos.tolist(), p_val.tolist())))
            advance(w.count_end - w.count_start)
        writer.flush()
    writer.flush(final_end=length)
    summary.bases += length
    summary.n_bases += region_n
    if region_n == length:
        summary.regions_all_n += 1


def _kept(positions: np.ndarray, values: np.ndarray, w: Window, isn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Window-relative positions -> region positions inside the kept range and not at N."""
    pos = positions + w.start
    inside = (pos >= w.count_start) & (pos < w.count_end)
    pos, values = pos[inside], values[inside]
    not_n = ~isn[pos - w.count_start]
    return pos[not_n], values[not_n]


def window_agreement(model: DnaModel, seq: str | bytes | np.ndarray, window: int, context: int) -> list[dict[str, float]]:
    """How much windowing changes the routing of `seq`, per stage, against one pass.

    Returns, per routed stage, `agreement` (|common boundaries| / |union|, over
    positions after the first window, where windowing can matter), `max_dp` and
    `mean_dp` (|Δp_t| at positions both computed p_t for). Use it to choose
    `context` for a trained model.
    """
    arr = model.prepare(seq)
    single = model.boundaries_batch([arr])[0]
    plan = plan_windows(len(arr), window, context, align=model.window_align)
    stitched = model.boundaries_batch([arr[w.start : w.end] for w in plan])
    first = plan[0].count_end
    result = []
    for k in range(model.n_routed):
        one_b = single[k].positions[single[k].positions >= first]
        one_p = dict(zip(single[k].p_positions.tolist(), single[k].p_values.tolist()))
        win_b, diffs = [], []
        for w, stages in zip(plan, stitched):
            pos = stages[k].positions + w.start
            win_b.append(pos[(pos >= max(w.count_start, first)) & (pos < w.count_end)])
            p_pos = stages[k].p_positions + w.start
            keep = (p_pos >= w.count_start) & (p_pos < w.count_end)
            diffs += [abs(one_p[a] - v) for a, v in zip(p_pos[keep].tolist(), stages[k].p_values[keep].tolist()) if a in one_p]
        a, b = set(one_b.tolist()), set(np.concatenate(win_b).tolist()) if win_b else set()
        union = a | b
        result.append({
            "stage": k + 1,
            "boundaries": len(a),
            "agreement": len(a & b) / len(union) if union else 1.0,
            "max_dp": max(diffs) if diffs else 0.0,
            "mean_dp": float(np.mean(diffs)) if diffs else 0.0,
        })
    return result
