"""`dnahnet view`: one self-contained HTML page showing a region's tracks, readable offline.

The page embeds the data of one region (chunks of each stage, p_t per stage,
per-base bits, any BED annotation) as JSON and draws it with a small SVG viewer
(`dnahnet.io.viewer_page`): no CDN, no library, so it opens from a laptop, an
e-mail attachment or a cluster without network. Inputs are read for the region
only (tabix/bigWig indexes when present, else a scan of the text).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open
from dnahnet.io.tracks import check_contigs, read_intervals, read_signal, track_contigs
from dnahnet.io.viewer_page import PAGE

MAX_VIEW_BASES = 2_000_000  # per-base tracks of a larger region make a page too big to open quickly
STAGE_COLORS = [("#1f77b4", "#8fbbd9"), ("#d62728", "#eb9394"), ("#2ca02c", "#96d096")]
ANNOTATION_COLORS = [("#6a3d9a", "#b49bcc"), ("#ff7f00", "#ffbf80"), ("#8c564b", "#c6aba5"), ("#17becf", "#8bdee7")]


@dataclass
class ViewTracks:
    """What to show: file paths (any may be absent)."""

    chunks: str | os.PathLike | None = None  # BED6 from `dnahnet boundaries` (name = stageK)
    probs: Sequence[str | os.PathLike] = ()  # p_t per stage (bedGraph/.gz/bigWig), stage 1 first
    per_base: str | os.PathLike | None = None  # log2 P per base from `dnahnet score --per-base`
    annotations: Sequence[str | os.PathLike] = field(default_factory=list)


def _runs(signal: list[tuple[int, int, float]], start: int, end: int) -> list[list]:
    """(start, end, value) -> [start, span, [values...]] runs: consecutive 1-base entries share a run."""
    runs: list[list] = []
    for a, b, v in signal:
        a, b = max(a, start), min(b, end)
        if b <= a:
            continue
        value = round(v, 4) if math.isfinite(v) else None
        if runs and b - a == 1 and runs[-1][1] == 1 and runs[-1][0] + len(runs[-1][2]) == a:
            runs[-1][2].append(value)
        else:
            runs.append([a, b - a, [value]])
    return runs


def build_page_data(chrom: str, start: int, end: int, tracks: ViewTracks, title: str = "",
                    genome_names: Sequence[str] | None = None) -> dict:
    """The JSON the page draws: the region, then one entry per track."""
    paths = [p for p in [tracks.chunks, *tracks.probs, tracks.per_base, *tracks.annotations] if p is not None]
    for path in paths:
        if not Path(path).is_file():
            raise DnahnetInputError("track file not found", file=str(path))
        if genome_names is not None:
            check_contigs(path, list(genome_names))
        elif chrom not in track_contigs(path) and track_contigs(path):
            names = ", ".join(track_contigs(path)[:5])
            raise DnahnetInputError(f"contig {chrom!r} of the region is not in this track (it has {names})", file=str(path))
    out: list[dict] = []
    if tracks.chunks is not None:
        by_stage: dict[str, list] = {}
        for a, b, name, score in read_intervals(tracks.chunks, chrom, start, end):
            by_stage.setdefault(name or "chunks", []).append([a, b, "", None if math.isnan(score) else score])
        for k, stage in enumerate(sorted(by_stage)):
            color, color2 = STAGE_COLORS[k % len(STAGE_COLORS)]
            out.append({"name": f"chunks {stage}", "kind": "intervals", "features": by_stage[stage],
                        "color": color, "color2": color2, "names": False})
    for k, path in enumerate(tracks.probs, start=1):
        out.append({"name": f"p_t stage{k}", "kind": "signal", "runs": _runs(read_signal(path, chrom, start, end), start, end),
                    "min": 0, "max": 1, "negate": False, "color": STAGE_COLORS[(k - 1) % len(STAGE_COLORS)][0],
                    "unit": "boundary prob."})
    if tracks.per_base is not None:
        out.append({"name": "bits per base", "kind": "signal", "unit": "-log2 P (bits)",
                    "runs": _runs(read_signal(tracks.per_base, chrom, start, end), start, end),
                    "min": 0, "max": 4, "negate": True, "color": "#444"})
    for k, path in enumerate(tracks.annotations):
        color, color2 = ANNOTATION_COLORS[k % len(ANNOTATION_COLORS)]
        feats = [[a, b, name, None if math.isnan(score) else score] for a, b, name, score in
                 read_intervals(path, chrom, start, end)]
        out.append({"name": _track_name(path), "kind": "intervals", "features": sorted(feats), "color": color,
                    "color2": color2, "names": True})
    width = end - start
    view_start, view_end = (start, end) if width <= 20_000 else (start + width // 2 - 10_000, start + width // 2 + 10_000)
    return {"chrom": chrom, "start": start, "end": end, "view_start": view_start, "view_end": view_end,
            "title": title or f"{chrom}:{start + 1:,}-{end:,}", "tracks": out}


def _track_name(path) -> str:
    name = Path(path).name
    for suffix in (".gz", ".bed", ".bedGraph", ".bw"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return name


def write_page(out: str | os.PathLike, chrom: str, start: int, end: int, tracks: ViewTracks, title: str = "",
               genome_names: Sequence[str] | None = None, max_bases: int = MAX_VIEW_BASES) -> dict:
    """Write the page atomically; return a summary (tracks and features per track)."""
    if end - start > max_bases:
        raise DnahnetInputError(f"region of {end - start:,} bases is larger than the page limit ({max_bases:,}); "
                                "choose a smaller --region (or raise --max-bases)")
    data = build_page_data(chrom, start, end, tracks, title, genome_names)
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # never closes the <script>
    with atomic_open(out) as fh:
        fh.write(PAGE.replace("__DATA__", payload))
    return {"tracks": [(t["name"], len(t.get("features") or t.get("runs") or [])) for t in data["tracks"]],
            "bytes": Path(out).stat().st_size}


def browser_bundle(folder: str | os.PathLike, *, chunks, probs: Sequence, per_base, annotations: dict[str, os.PathLike],
                   chrom_map: dict[str, tuple[str, int]], sizes: dict[str, int], region: tuple[str, int, int],
                   title: str = "") -> dict[str, str]:
    """Tracks moved onto assembly coordinates, in the formats browsers open, and a page over `region` (new coordinates).

    Writes `chunks.bed.gz` (+ .tbi), `p.stageK.bw`, `bits.bw`, `<name>.bed` per
    annotation and `view.html` into `folder`; returns name -> path. Load the files
    into IGV or a UCSC track hub next to the assembly's own annotation.
    """
    from dnahnet.io.atomic import check_writable_dir
    from dnahnet.io.tracks import bed_track_line, relocate_track

    folder = check_writable_dir(folder)
    written: dict[str, str] = {}
    relocate_track(chunks, folder / "chunks.bed.gz", chrom_map)
    written["chunks"] = str(folder / "chunks.bed.gz")
    prob_out = []
    for k, path in enumerate(probs, start=1):
        prob_out.append(folder / f"p.stage{k}.bw")
        relocate_track(path, prob_out[-1], chrom_map, sizes)
        written[f"p_stage{k}"] = str(prob_out[-1])
    relocate_track(per_base, folder / "bits.bw", chrom_map, sizes)
    written["bits"] = str(folder / "bits.bw")
    ann_out = []
    for name, path in annotations.items():
        ann_out.append(folder / f"{name}.bed")
        relocate_track(path, ann_out[-1], chrom_map, track_line=bed_track_line(name, name))
        written[name] = str(ann_out[-1])
    chrom, start, end = region
    write_page(folder / "view.html", chrom, start, end,
               ViewTracks(folder / "chunks.bed.gz", prob_out, folder / "bits.bw", ann_out), title=title)
    written["view"] = str(folder / "view.html")
    return written
