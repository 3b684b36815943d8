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

Genome scale: the windows are cut into shards (`dnahnet.infer.sharding`); a
batch never spans two shards, a chunk still open at a shard's end is closed by
the merge at the next event of its stage, so the output does not depend on the
shard size or the number of processes (tests/test_genome_scale.py). Formats by
name (`dnahnet.io.tracks`): `.bed.gz` chunks and `.bedGraph.gz` p_t are bgzip +
tabix, `.bw` p_t is bigWig; plain text starts with a track line by default.

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
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable

import numpy as np

from dnahnet.alphabet import N_BYTE
from dnahnet.distributed import DistEnv
from dnahnet.errors import DnahnetInputError
from dnahnet.infer.model import MAX_BATCH_TOKENS, DnaModel, Window, plan_windows
from dnahnet.infer.sharding import (
    DEFAULT_SHARD_BASES, PartStore, Region, Shard, genome_identity, model_identity, parts_folder, plan_shards,
    regions_digest, run_sharded, scratch_store,
)
from dnahnet.io.atomic import check_writable_dir
from dnahnet.io.bed import bed6_lines, bedgraph_base_lines
from dnahnet.io.bigwig import BigWigWriter
from dnahnet.io.tracks import bed_track_line, bedgraph_track_line, open_text_track, track_format
from dnahnet.progress import ProgressFactory, silent

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
    shards: int = 0
    shards_computed: int = 0  # by this process in this call
    shards_reused: int = 0  # found complete from an interrupted run (this process's)


def probs_paths(path: str | os.PathLike, n_stages: int) -> list[Path]:
    """Stage 1 at `path`, stage k at `<stem>.stageK<suffix>` (`p.bedGraph.gz` -> `p.stage2.bedGraph.gz`)."""
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.suffix.lower() == ".gz" and len(path.suffixes) >= 2 else path.suffix
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    return [path] + [path.with_name(f"{stem}.stage{k}{suffix}") for k in range(2, n_stages + 1)]


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
    """Turns per-stage boundary and N-run events (in position order) of one shard into sorted BED6 lines.

    A stage's chunk stays open until its next event; closed records are written as
    soon as no open chunk of another stage could sort before them. At the shard's
    end a chunk still open is written with a placeholder end (its line's byte
    offset is kept): the merge knows the next shard's first event and fixes it.
    """

    def __init__(self, out: BinaryIO, n_stages: int, chrom: str, offset: int) -> None:
        self.out, self.n_stages, self.chrom, self.offset = out, n_stages, chrom, offset
        self.counts = [0] * n_stages
        self.bytes = 0
        self.open: list[tuple[int, float] | None] = [None] * n_stages
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.first_event: list[int | None] = [None] * n_stages
        self.placeholders: list[dict | None] = [None] * n_stages

    def feed(self, stage: int, boundaries: np.ndarray, probs: np.ndarray, n_starts: np.ndarray) -> None:
        """Boundaries (non-N) and N-run starts of one kept range, region coordinates, sorted."""
        pos = np.concatenate([boundaries, n_starts])
        if len(pos) == 0:
            return
        is_b = np.concatenate([np.ones(len(boundaries), bool), np.zeros(len(n_starts), bool)])
        p = np.concatenate([probs, np.zeros(len(n_starts), np.float32)])
        order = np.argsort(pos, kind="stable")
        pos, is_b, p = pos[order], is_b[order], p[order]
        if self.first_event[stage] is None:
            self.first_event[stage] = int(pos[0])
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

    def _write(self, text: str) -> None:
        data = text.encode()
        self.out.write(data)
        self.bytes += len(data)

    def flush(self, final: bool = False) -> None:
        """Write every record that sorts before all open chunks (at the shard's end: all, open ones as placeholders)."""
        if final:
            for stage, chunk in enumerate(self.open):
                if chunk is not None:
                    self._add(stage, np.array([chunk[0]]), np.array([PLACEHOLDER_END]), np.array([chunk[1]], np.float32))
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
        lines = bed6_lines(chrom, s.tolist(), e.tolist(), [f"stage{k + 1}" for k in st.tolist()], score.tolist(), offset=off)
        held = np.flatnonzero(e == PLACEHOLDER_END)
        cut = 0
        for i in held.tolist():  # at most one per stage, only at the shard's end
            self._write("".join(lines[cut:i]))
            self.placeholders[int(st[i])] = {"start": int(s[i]), "score": int(score[i]), "offset": self.bytes,
                                             "length": len(lines[i].encode())}
            self._write(lines[i])
            cut = i + 1
        self._write("".join(lines[cut:]))
        for k in range(self.n_stages):
            self.counts[k] += int(np.count_nonzero(st == k))
        rest = ~ready
        self.pending = [(starts[rest], ends[rest], stages[rest], probs[rest])] if rest.any() else []


PLACEHOLDER_END = -1  # a chunk still open at a shard's end; the merge writes its real end


def _n_run_starts(isn: np.ndarray) -> np.ndarray:
    """Indices where an N run starts (the first index counts when it is N)."""
    prev = np.concatenate([[False], isn[:-1]])
    return np.flatnonzero(isn & ~prev)


def export_boundaries(
    model: DnaModel,
    genome,
    regions: Iterable[tuple[str, int, int] | Region] | None,
    out_bed: str | os.PathLike,
    probs_bedgraph: str | os.PathLike | None = None,
    window: int = BOUNDARY_WINDOW,
    context: int = BOUNDARY_CONTEXT,
    track_line: bool = True,
    batch_size: int = 4,
    progress: ProgressFactory = silent,
    shard_bases: int = DEFAULT_SHARD_BASES,
    env: DistEnv | None = None,
) -> BoundaryExportSummary:
    """Write BED6 chunks (and p_t tracks) of `regions` (0-based half-open; None = every sequence).

    `genome` is a `dnahnet.data.genome.Genome` (or a FASTA path). See the module
    docstring for coordinates, N handling and windows, and `dnahnet.infer.sharding`
    for shards, parts (`<out_bed>.parts`), restarts and ranks (`env`, default: one
    process). Output formats follow the file names (`dnahnet.io.tracks`): `.gz`
    bgzip + tabix, `.bw` bigWig (p_t only), else plain text with a track line when
    `track_line`. `progress` is told this rank's bases and hears of each shard's.
    Rank 0 returns the whole run's summary; other ranks return their counts only.
    """
    if model.n_routed == 0:
        raise DnahnetInputError("model has no routing stages; it has no boundaries")
    if isinstance(genome, (str, os.PathLike)):
        from dnahnet.data.corpus import open_genome

        genome = open_genome(genome)
    env = env or DistEnv(device=model.device)
    plan_windows(window + 1, window, context)  # validate before any output is opened
    if batch_size < 1:
        raise DnahnetInputError(f"--batch-size must be at least 1, got {batch_size}")
    tuples = None if regions is None else [(r.chrom, r.start, r.end) if isinstance(r, Region) else r for r in regions]
    region_list, merged = normalise_regions(genome, tuples)
    regions_ = [Region(c, s, e, c) for c, s, e in region_list]
    n_stages = model.n_routed
    bed_format = track_format(out_bed)
    if bed_format == "bigwig":
        raise DnahnetInputError("chunks are intervals, not a signal: write them as .bed or .bed.gz, not bigWig",
                                file=str(out_bed))
    prob_paths = probs_paths(probs_bedgraph, n_stages) if probs_bedgraph is not None else []
    prob_format = track_format(probs_bedgraph) if probs_bedgraph is not None else None
    for path in [out_bed, *prob_paths]:
        if str(path) != "-":
            check_writable_dir(Path(path).parent if str(Path(path).parent) else Path("."))
    shards = plan_shards(regions_, window, context, shard_bases, align=model.window_align)
    per_pass = max(1, min(batch_size, MAX_BATCH_TOKENS // max(window, 1)))
    manifest = {
        "command": "dnahnet boundaries", "--checkpoint": model_identity(model), "--genome": genome_identity(genome),
        "regions (--region/--bed/--contigs)": regions_digest(regions_), "--window": window, "--context": context,
        "windows per forward pass (--batch-size)": per_pass, "--shard-bases": shard_bases,
        "--probs": prob_format, "dtype": str(model.dtype), "precision": model.precision.name,
        "device": model.device.type,
    }
    summary = BoundaryExportSummary(regions=len(regions_), regions_merged=merged, bed=str(out_bed),
                                    probs=[str(p) for p in prob_paths])

    def compute(shard: Shard, folder: Path) -> None:
        _compute_shard(model, genome, regions_[shard.region], shard, per_pass, n_stages, folder, prob_format)

    def merge() -> None:
        _merge(store, regions_, shards, genome, n_stages, out_bed, prob_paths, prob_format, track_line, summary)

    mine = sum(s.bases for s in shards[env.rank :: env.world_size])
    with contextlib.ExitStack() as stack:
        if str(out_bed) == "-":
            store = stack.enter_context(scratch_store(manifest, env))
        else:
            store = PartStore(parts_folder(out_bed), manifest)
        advance = stack.enter_context(progress(mine))
        counts = run_sharded(shards, store, env, compute, merge, advance)
    summary.shards, summary.shards_computed, summary.shards_reused = counts.shards, counts.computed, counts.reused
    return summary


def _compute_shard(model: DnaModel, genome, region: Region, shard: Shard, per_pass: int, n_stages: int, folder: Path,
                   prob_format: str | None) -> None:
    """One shard's chunks (BED lines with placeholders), p_t and counts into `folder`."""
    chrom, start = region.chrom, region.start
    meta = {"n_bases": 0, "windows": len(shard.windows), "skipped": 0}
    probs: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(n_stages)]
    with open(folder / "chunks.bed", "wb") as bed, contextlib.ExitStack() as stack:
        texts = []
        if prob_format is not None and prob_format != "bigwig":
            texts = [stack.enter_context(open(folder / f"p{k + 1}.txt", "wb")) for k in range(n_stages)]
        writer = _ChunkWriter(bed, n_stages, chrom, start)
        for g in range(0, len(shard.windows), per_pass):
            group: list[Window] = list(shard.windows[g : g + per_pass])
            rows = [genome.fetch_normalized(chrom, start + w.start, start + w.end)[0] for w in group]
            live = [not (row[w.count_start - w.start :] == N_BYTE).all() for w, row in zip(group, rows)]
            kept_rows = [row for row, ok in zip(rows, live) if ok]
            results = iter(model.boundaries_batch(kept_rows) if kept_rows else [])
            meta["skipped"] += len(group) - len(kept_rows)
            for w, row, ok in zip(group, rows, live):
                isn = row[w.count_start - w.start :] == N_BYTE
                meta["n_bases"] += int(isn.sum())
                n_starts = _n_run_starts(isn) + w.count_start
                stages = next(results) if ok else None
                for k in range(n_stages):
                    if stages is None:
                        writer.feed(k, np.zeros(0, np.int64), np.zeros(0, np.float32), n_starts)
                        continue
                    sb = stages[k]
                    b_pos, b_p = _kept(sb.positions, sb.probs, w, isn)
                    writer.feed(k, b_pos, b_p, n_starts)
                    if prob_format is None:
                        continue
                    p_pos, p_val = _kept(sb.p_positions, sb.p_values, w, isn)
                    if texts:
                        texts[k].write(bedgraph_base_lines(chrom, p_pos.tolist(), p_val.tolist(), 6, offset=start).encode())
                    else:
                        probs[k].append((p_pos, p_val))  # region coordinates: uint32 on disk (contigs < 4.29 Gb)
            writer.flush()
        writer.flush(final=True)
    for k, parts in enumerate(probs if prob_format == "bigwig" else []):
        pos = np.concatenate([p for p, _ in parts]) if parts else np.zeros(0, np.int64)
        val = np.concatenate([v for _, v in parts]) if parts else np.zeros(0, np.float32)
        np.savez(folder / f"p{k + 1}.npz", pos=pos.astype(np.uint32), val=val.astype(np.float32))
    meta.update(counts=writer.counts, first_event=writer.first_event, open=writer.placeholders)
    (folder / "meta.json").write_text(json.dumps(meta))


def _merge(store: PartStore, regions: list[Region], shards: list[Shard], genome, n_stages: int, out_bed, prob_paths,
           prob_format, track_line: bool, summary: BoundaryExportSummary) -> None:
    """Parts in shard order into the final BED (placeholder ends resolved) and p_t tracks; fill `summary`."""
    metas = [json.loads((store.part(s) / "meta.json").read_text()) for s in shards]
    ends = _resolve_open_ends(regions, shards, metas, n_stages)
    bed_line = bed_track_line("dnahnet_chunks", "H-Net chunks: name = stage, score = 1000 x p at the chunk start",
                              use_score=True) if track_line else None
    summary.chunks = [0] * n_stages
    with contextlib.ExitStack() as stack:
        bed = stack.enter_context(open_text_track(out_bed, bed_line))
        graphs: list = []
        if prob_format == "bigwig":
            chroms = list(dict.fromkeys(r.chrom for r in regions))
            graphs = [stack.enter_context(BigWigWriter(p, [(c, genome.sizes[c]) for c in chroms])) for p in prob_paths]
        elif prob_format is not None:
            graphs = [stack.enter_context(open_text_track(
                p, bedgraph_track_line(f"dnahnet_p_stage{k}", f"H-Net stage-{k} boundary probability p_t")
                if track_line else None)) for k, p in enumerate(prob_paths, start=1)]
        for shard, meta, shard_ends in zip(shards, metas, ends):
            region = regions[shard.region]
            part = store.part(shard)
            data = (part / "chunks.bed").read_bytes()
            cut = 0
            for k, held in sorted(((k, h) for k, h in enumerate(meta["open"]) if h), key=lambda kh: kh[1]["offset"]):
                bed.write(data[cut : held["offset"]])
                off = region.start
                bed.write(bed6_lines(region.chrom, [held["start"]], [shard_ends[k]], [f"stage{k + 1}"], [held["score"]],
                                     offset=off)[0].encode())
                cut = held["offset"] + held["length"]
            bed.write(data[cut:])
            for k, graph in enumerate(graphs):
                if prob_format == "bigwig":
                    with np.load(part / f"p{k + 1}.npz") as z:
                        graph.add(region.chrom, z["pos"].astype(np.int64) + region.start, z["val"])
                else:
                    with open(part / f"p{k + 1}.txt", "rb") as fh:
                        shutil.copyfileobj(fh, graph)
            summary.chunks = [a + b for a, b in zip(summary.chunks, meta["counts"])]
            summary.windows += meta["windows"]
            summary.windows_skipped_all_n += meta["skipped"]
    region_n = [0] * len(regions)
    for shard, meta in zip(shards, metas):
        region_n[shard.region] += meta["n_bases"]
    summary.bases = sum(r.length for r in regions)
    summary.n_bases = sum(region_n)
    summary.regions_all_n = sum(n == r.length for n, r in zip(region_n, regions))


def _resolve_open_ends(regions: list[Region], shards: list[Shard], metas: list[dict], n_stages: int) -> list[list[int]]:
    """Per shard, per stage: where a chunk left open at the shard's end ends (next event of its stage, else region end)."""
    ends: list[list[int]] = [[0] * n_stages for _ in shards]
    following: list[int] = []
    region = -1
    for i in range(len(shards) - 1, -1, -1):
        if shards[i].region != region:
            region = shards[i].region
            following = [regions[region].length] * n_stages
        for k in range(n_stages):
            ends[i][k] = following[k]
            first = metas[i]["first_event"][k]
            if first is not None:
                following[k] = first
    return ends


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
