"""`annotate`: boundary calls + annotations + genome -> tables, figures and a report.

Outputs in `out_dir` (all written atomically): `enrichment.tsv` (one row per
stage × feature × edge, fixed-grid controls included), `summary.json`,
`boundary_profiles.png`, `chunk_lengths.png`, `cds_phase.png` (when CDS are
annotated) and `report.md`, whose text about published findings is built from
the numbers of this run.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from dnahnet.analysis.annotations import (
    FeatureTable,
    derive_codon_sites,
    derive_intergenic,
    derive_promoters,
    feature_role,
    load_annotation,
    reconcile_chrom_names,
    softmask_repeats,
)
from dnahnet.analysis.enrichment import (
    BoundarySet,
    Regions,
    analyse_boundaries,
    edge_anchors,
    edge_profile,
    read_boundaries,
    summarise_lengths,
)
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, check_writable_dir, save_png
from dnahnet.io.bed import BedGraph, read_bedgraph

PathLike = str | os.PathLike
TSV_COLUMNS = ("stage", "feature", "edge", "window", "n_features", "bases", "observed", "expected", "fold", "z",
               "p_enriched", "p_depleted", "rate_in", "rate_out")
PROFILE_FLANK = 100
ALPHA = 0.05


def annotate(
    boundaries_bed: PathLike,
    annotation_paths: Sequence[PathLike],
    genome_fasta: PathLike,
    out_dir: PathLike,
    window: int = 5,
    permutations: int = 200,
    probs_bedgraph: PathLike | None = None,
    seed: int = 0,
    stage: int | str | None = None,
    promoter_window: int = 100,
    command: str | None = None,
) -> dict:
    """Compare chunk boundaries with genome features; write tables, figures and report.md.

    Soft-masked repeats of `genome_fasta` are added as feature type `repeat`,
    intergenic gaps and promoters (`promoter_window` bases upstream of genes) are
    derived. `probs_bedgraph` (per-base p_t) adds AUROC/AUPRC of p_t for feature
    edges; `stage` (1, 2 or "stage1") limits the analysis to one stage. Returns
    the summary written to summary.json. `command` (the command line that ran
    this) is recorded in the report; without it, the Python call is.
    """
    if permutations < 1 or window < 0 or promoter_window < 0:
        raise DnahnetInputError(
            f"need permutations >= 1, window >= 0 and promoter_window >= 0 (got {permutations}, {window}, {promoter_window})")
    out = check_writable_dir(out_dir)
    genome_names, sizes = _genome_index(genome_fasta)
    sets, regions = read_boundaries(boundaries_bed)
    mapping, _ = reconcile_chrom_names(list(regions), genome_names, file=str(boundaries_bed))
    sets = {name: _rename_set(b, mapping) for name, b in sorted(sets.items())}
    regions = {mapping[c]: r for c, r in regions.items() if c in mapping}
    sets = _select_stage(sets, stage, boundaries_bed)
    features, name_reports = _load_features(annotation_paths, genome_fasta, genome_names, sizes, regions, promoter_window)
    probs = _read_probs(probs_bedgraph, genome_names) if probs_bedgraph is not None else None
    result = analyse_boundaries(sets.values(), features, regions, window, permutations, seed, probs)

    summary = _summary(result, features, name_reports, window, permutations, seed, promoter_window)
    summary["inputs"] = {
        "boundaries": str(boundaries_bed), "annotations": [str(p) for p in annotation_paths],
        "genome": str(genome_fasta), "probs": None if probs_bedgraph is None else str(probs_bedgraph),
    }
    summary["run"] = _run_info(command, boundaries_bed, annotation_paths, genome_fasta, out_dir, window, permutations,
                               probs_bedgraph, seed, stage, promoter_window)
    figures = _write_figures(out, result, features, regions, summary)
    summary["outputs"] = {"tsv": "enrichment.tsv", "json": "summary.json", "report": "report.md", "figures": figures}
    _write_tsv(out / "enrichment.tsv", result["enrichment"])
    _write_report(out / "report.md", summary, figures)
    with atomic_open(out / "summary.json", "w") as fh:
        json.dump(_jsonable(summary), fh, indent=1, allow_nan=False)
        fh.write("\n")
    return summary


# ---------------------------------------------------------------- inputs


def _genome_index(genome_fasta: PathLike) -> tuple[list[str], dict[str, int]]:
    from dnahnet.data.corpus import open_faidx

    with open_faidx(genome_fasta) as fasta:
        return list(fasta.references), dict(zip(fasta.references, fasta.lengths))


def _rename_set(bset: BoundarySet, mapping: dict[str, str]) -> BoundarySet:
    return BoundarySet(bset.name, {mapping[c]: v for c, v in bset.starts.items() if c in mapping},
                       {mapping[c]: v for c, v in bset.ends.items() if c in mapping})


def _select_stage(sets: dict[str, BoundarySet], stage: int | str | None, path: PathLike) -> dict[str, BoundarySet]:
    if stage is None:
        return sets
    name = f"stage{stage}" if isinstance(stage, int) else str(stage)
    if name not in sets:
        raise DnahnetInputError(f"no boundaries for {name}; the file has {', '.join(sets)}", file=str(path))
    return {name: sets[name]}


def _load_features(
    paths: Sequence[PathLike], genome_fasta: PathLike, genome_names: list[str], sizes: dict[str, int],
    regions: Regions, promoter_window: int,
) -> tuple[FeatureTable, dict[str, dict]]:
    """All annotation files on genome names, plus repeats, intergenic gaps and promoters."""
    tables, reports = [], {}
    for path in paths:
        table = load_annotation(path)
        mapping, reports[str(path)] = reconcile_chrom_names(dict.fromkeys(table.chrom.tolist()), genome_names, file=str(path))
        tables.append(table.rename_chroms(mapping))
    features = FeatureTable.concat(tables)
    derived = [softmask_repeats(genome_fasta, {c: list(zip(s.tolist(), e.tolist())) for c, (s, e) in regions.items()})]
    if "intergenic" not in features.types():
        derived.append(derive_intergenic(features, sizes))
    if "promoter" not in features.types():
        derived.append(derive_promoters(features, promoter_window, sizes))
    return FeatureTable.concat([features, *derived]), reports


def _read_probs(path: PathLike, genome_names: list[str]) -> BedGraph:
    track = read_bedgraph(path)
    mapping, _ = reconcile_chrom_names(dict.fromkeys(track.chrom.tolist()), genome_names, file=str(path))
    keep = np.isin(track.chrom, list(mapping))
    chrom = np.array([mapping[c] for c in track.chrom[keep].tolist()], dtype=object)
    return BedGraph(chrom, track.start[keep], track.end[keep], track.value[keep])


def _run_info(command: str | None, *args) -> dict:
    names = ("boundaries_bed", "annotation_paths", "genome_fasta", "out_dir", "window", "permutations",
             "probs_bedgraph", "seed", "stage", "promoter_window")
    if command is None:
        values = ([str(p) for p in a] if isinstance(a, (list, tuple)) else str(a) if isinstance(a, Path) else a for a in args)
        command = "dnahnet.analysis.annotate(" + ", ".join(f"{n}={v!r}" for n, v in zip(names, values)) + ")"
    return {
        "call": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({platform.platform()}, {os.cpu_count()} CPUs)",
    }


# ---------------------------------------------------------------- summary and findings


def _summary(result: dict, features: FeatureTable, name_reports: dict, window: int, permutations: int, seed: int,
             promoter_window: int) -> dict:
    learned = [s["name"] for s in result["stages"]]
    lengths = {name: {t: summarise_lengths(v) for t, v in by_type.items()}
               for name, by_type in result["chunk_lengths"].items()}
    summary = {
        "analysed_bases": result["analysed_bases"],
        "parameters": {"window": window, "permutations": permutations, "seed": seed, "promoter_window": promoter_window},
        "stages": result["stages"],
        "chromosome_names": name_reports,
        "topology": features.topology,
        "feature_types": features.types(),
        "enrichment": result["enrichment"],
        "selection_rates": result["selection"],
        "codon": result["codon"],
        "chunk_lengths": lengths,
        "auc": result["auc"],
    }
    summary["findings"] = [f for stage in learned for f in _findings(stage, result, summary)]
    return summary


def _row(rows: list[dict], stage: str, feature: str, edge: str) -> dict | None:
    return next((r for r in rows if r["stage"] == stage and r["feature"] == feature and r["edge"] == edge), None)


def _types_with_role(summary: dict, role: str) -> list[str]:
    return [t for t in summary["feature_types"] if feature_role(t) == role]


def _grid_of(stage: str, summary: dict) -> str:
    return next(s["grid"] for s in summary["stages"] if s["name"] == stage)


def _edge_finding(stage: str, summary: dict, feature: str, edge: str, what: str, source: str, claim: str) -> dict:
    rows, grid = summary["enrichment"], _grid_of(stage, summary)
    obs, ctl = _row(rows, stage, feature, edge), _row(rows, grid, feature, edge)
    w = summary["parameters"]["window"]
    if obs is None or not obs["expected"] > 0:
        where = "are annotated" if not feature else "lie in the analysed regions"
        return {"stage": stage, "source": source, "claim": claim, "verdict": "not testable",
                "text": f"No {what} {where}, so {source}'s {claim} cannot be checked."}
    agrees = obs["fold"] > 1 and obs["p_enriched"] < ALPHA and (ctl is None or obs["fold"] > ctl["fold"])
    grid_text = f"; fixed-grid control {ctl['fold']:.2f}x" if ctl else ""
    direction = "enriched" if obs["fold"] > 1 else "depleted"
    text = (f"{stage} boundaries are {obs['fold']:.2f}x {direction} within ±{w} bp of {what} "
            f"({obs['observed']} observed vs {obs['expected']:.1f} expected, z = {obs['z']:.1f}, "
            f"p = {obs['p_enriched']:.3g} from {summary['parameters']['permutations']} circular shifts{grid_text}): "
            + (f"this agrees with {source}'s {claim}." if agrees else f"this does not reproduce {source}'s {claim}."))
    return {"stage": stage, "source": source, "claim": claim, "verdict": "agrees" if agrees else "does not reproduce",
            "fold": obs["fold"], "p": obs["p_enriched"], "grid_fold": ctl["fold"] if ctl else None, "text": text}


def _length_finding(stage: str, result: dict, summary: dict, feature: str, what: str, shorter: bool, claim: str) -> dict:
    lengths = result["chunk_lengths"][stage]
    if not feature:
        return {"stage": stage, "source": "DNAChunker", "claim": claim, "verdict": "not testable",
                "text": f"No {what} are annotated, so DNAChunker's {claim} cannot be checked."}
    if feature not in lengths or lengths[feature].size < 2:
        return {"stage": stage, "source": "DNAChunker", "claim": claim, "verdict": "not testable",
                "text": f"No {stage} chunks start in {what}, so DNAChunker's {claim} cannot be checked."}
    inside, everything = lengths[feature], lengths["all"]
    alternative = "less" if shorter else "greater"
    p = float(stats.mannwhitneyu(inside, everything, alternative=alternative).pvalue)
    ratio = inside.mean() / everything.mean()
    agrees = (ratio < 1) == shorter and p < ALPHA
    word = "shorter" if ratio < 1 else "longer"
    text = (f"{stage} chunks starting in {what} are {word} than average (mean {inside.mean():.2f} vs "
            f"{everything.mean():.2f} bp, ratio {ratio:.2f}, one-sided Mann-Whitney p = {p:.3g}, n = {inside.size}): "
            + (f"this agrees with DNAChunker's {claim}." if agrees else f"this does not reproduce DNAChunker's {claim}."))
    return {"stage": stage, "source": "DNAChunker", "claim": claim, "verdict": "agrees" if agrees else "does not reproduce",
            "ratio": float(ratio), "p": p, "text": text}


def _findings(stage: str, result: dict, summary: dict) -> list[dict]:
    """Published claims checked against this run's numbers."""
    out = []
    promoter = (_types_with_role(summary, "promoter") or [None])[0]
    exon = (_types_with_role(summary, "exon") or [None])[0]
    repeat = "repeat" if "repeat" in summary["feature_types"] else None
    for feature, what, shorter, claim in ((promoter, "promoters", True, "shorter chunks at promoters"),
                                          (exon, "exons", True, "shorter chunks in exons"),
                                          (repeat, "soft-masked repeats", False, "longer chunks in repeats")):
        out.append(_length_finding(stage, result, summary, feature or "", what, shorter, claim))
    tss = (_types_with_role(summary, "tss") or _types_with_role(summary, "gene") or _types_with_role(summary, "mRNA")
           or [None])[0]
    what = {"tss": "transcription start sites", "gene": "gene starts", "mRNA": "transcript starts"}.get(
        feature_role(tss or ""), "gene starts")
    out.append(_edge_finding(stage, summary, tss or "", "start", what, "LDARNet", "boundaries at promoters"))
    splice = (_types_with_role(summary, "intron") or _types_with_role(summary, "exon") or [None])[0]
    for edge in ("start", "end"):
        out.append(_edge_finding(stage, summary, splice or "", edge, f"{splice} {edge}s" if splice else "splice sites",
                                 "LDARNet", "boundaries at splice junctions"))
    return out


# ---------------------------------------------------------------- figures


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    save_png(fig, path, dpi=110, bbox_inches="tight")


def _profile_panels(features: FeatureTable) -> list[tuple[str, list[tuple[str, tuple]]]]:
    """(title, [(line label, anchors)]) for TSS/gene starts, exon edges, CDS starts."""
    roles = {t: feature_role(t) for t in features.types()}
    tss = [t for t, r in roles.items() if r == "tss"] or [t for t, r in roles.items() if r in ("gene", "mRNA")]
    exon = [t for t, r in roles.items() if r == "exon"]
    codons = derive_codon_sites(features).of_type("start_codon")
    panels = [("TSS / gene starts" if tss else "TSS / gene starts (none annotated)",
               [("start", edge_anchors(features.of_type(*tss), "start"))] if tss else []),
              ("exon edges" if exon else "exon edges (none annotated)",
               [(e, edge_anchors(features.of_type(*exon), e)) for e in ("start", "end")] if exon else []),
              ("CDS starts (start codons)" if len(codons) else "CDS starts (none annotated)",
               [("start", edge_anchors(codons, "start"))] if len(codons) else [])]
    return panels


def _write_figures(out: Path, result: dict, features: FeatureTable, regions: Regions, summary: dict) -> list[str]:
    figures = ["boundary_profiles.png", "chunk_lengths.png"]
    _plot_profiles(out / figures[0], result, features, regions)
    _plot_lengths(out / figures[1], result)
    if any(result["codon"][s["name"]]["pieces"] for s in result["stages"]):
        figures.append("cds_phase.png")
        _plot_phase(out / figures[2], result)
    return figures


def _plot_profiles(path: Path, result: dict, features: FeatureTable, regions: Regions) -> None:
    panels = _profile_panels(features)
    fig = Figure(figsize=(5 * len(panels), 3.6))
    d = np.arange(-PROFILE_FLANK, PROFILE_FLANK + 1)
    for k, (title, lines) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        grids = {s["grid"] for s in result["stages"]}
        for i, name in enumerate(result["sets"]):
            grid = name in grids
            for edge, anchors in lines:
                style = "-" if edge == "start" else "--"
                label = f"{name} ({edge})" if len(lines) > 1 else name
                ax.plot(d, edge_profile(result["sets"][name], anchors, regions, PROFILE_FLANK), style,
                        color=f"C{i}", lw=0.6 if grid else 1.1, alpha=0.5 if grid else 1.0, label=label)
        ax.axvline(0, color="grey", lw=0.5)
        if not lines:
            ax.text(0, 0.5, "no such features in the analysed regions", ha="center", fontsize=8)
            ax.set_xlim(-PROFILE_FLANK, PROFILE_FLANK)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("offset from edge (bp, transcript direction)")
        if k == 0:
            ax.set_ylabel("boundary rate")
        if lines:
            ax.legend(fontsize=6)
    _save(fig, path)


def _plot_lengths(path: Path, result: dict) -> None:
    learned = [s["name"] for s in result["stages"]]
    fig = Figure(figsize=(5.5 * len(learned), 3.8))
    for k, stage in enumerate(learned):
        ax = fig.add_subplot(1, len(learned), k + 1)
        by_type = result["chunk_lengths"][stage]
        top = int(np.percentile(by_type["all"], 99)) + 2
        bins = np.arange(1, max(top, 3)) - 0.5
        for i, (ftype, lengths) in enumerate(sorted(by_type.items(), key=lambda kv: kv[0] != "all")):
            ax.hist(np.minimum(lengths, top), bins=bins, density=True, histtype="step",
                    color="black" if ftype == "all" else f"C{i}", lw=1.4 if ftype == "all" else 0.9,
                    label=f"{ftype} (mean {lengths.mean():.1f})")
        ax.set_title(f"{stage} chunk lengths by feature of the chunk start", fontsize=10)
        ax.set_xlabel("chunk length (bp)")
        ax.set_ylabel("density")
        ax.legend(fontsize=6)
    _save(fig, path)


def _plot_phase(path: Path, result: dict) -> None:
    names = list(result["codon"])
    fig = Figure(figsize=(1.2 + 1.1 * len(names), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / 3
    for j in range(3):
        rates = [result["codon"][n]["all"]["rates"][j] for n in names]
        ax.bar(np.arange(len(names)) + (j - 1) * width, rates, width, label=f"codon position {j + 1}", color=f"C{j}")
    ax.set_xticks(np.arange(len(names)), names, rotation=20, fontsize=7)
    ax.set_ylabel("boundary rate (chunk-start bases)")
    ax.set_title("Boundary rate by codon position inside CDS", fontsize=10)
    ax.legend(fontsize=7)
    _save(fig, path)


# ---------------------------------------------------------------- tables and report


def _fmt(value, digits: int = 6) -> str:
    """Numbers for tables: `digits` significant digits, NA for missing or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _short(value) -> str:
    return _fmt(value, 3)


def _write_tsv(path: Path, rows: list[dict]) -> None:
    with atomic_open(path, "w") as fh:
        fh.write("\t".join(TSV_COLUMNS) + "\n")
        for row in rows:
            fh.write("\t".join(_fmt(row[c]) for c in TSV_COLUMNS) + "\n")


def _jsonable(value):
    """numpy scalars to Python, NaN/inf to null, so summary.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _md_table(header: Sequence[str], rows: list[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_short(v) if not isinstance(v, str) else v for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _fold_cell(row: dict | None) -> str:
    return "NA" if row is None else f"{_short(row['fold'])} (p {_short(row['p_enriched'])})"


def headline_table(summary: dict) -> str:
    """The headline enrichment table (markdown), as report.md shows it."""
    rows = summary["enrichment"]
    out = []
    for stage in summary["stages"]:
        name, grid = stage["name"], stage["grid"]
        for ftype in summary["feature_types"]:
            body = _row(rows, name, ftype, "body")
            if body is None:
                continue
            out.append([name, ftype, str(body["n_features"]), _fold_cell(_row(rows, name, ftype, "start")),
                        _fold_cell(_row(rows, grid, ftype, "start")), _fold_cell(_row(rows, name, ftype, "end")),
                        f"{_short(body['rate_in'])} / {_short(body['rate_out'])}"])
    return _md_table(["stage", "feature", "n", "start fold (p)", "grid start fold (p)", "end fold (p)",
                      "rate in / out"], out)


def _selection_table(summary: dict) -> str:
    sets = list(summary["selection_rates"])
    regions = list(dict.fromkeys(r for s in sets for r in summary["selection_rates"][s]))
    rows = [[region] + [_short(summary["selection_rates"][s].get(region, {}).get("rate")) for s in sets] for region in regions]
    return _md_table(["region"] + sets, rows)


# dnaHNet (Shah et al., arXiv 2602.10603) on B. subtilis: stage-1 rate is a share of bases, stage-2 rate a
# share of stage-1 boundaries; stage 1 was "about 36% everywhere".
DNAHNET_BSUBTILIS = {
    "stage1": 0.36,  # every region
    "stage2 of stage1": {"promoter": 0.72, "start_codon": 0.81, "CDS": 0.48, "intergenic": 0.75},
    "codon": (0.065, 0.426, 0.584),
}


def _dnahnet_table(summary: dict) -> str | None:
    """This genome's selection rates next to dnaHNet's published B. subtilis figures (2-stage models)."""
    rates = summary["selection_rates"]
    if "stage2 of stage1" not in rates or "stage1" not in rates:
        return None
    rows = []
    for region in ("promoter", "start_codon", "CDS", "stop_codon", "intergenic", "all"):
        ours = [rates[k].get(region, {}).get("rate") for k in ("stage1", "stage2 of stage1")]
        ref2 = DNAHNET_BSUBTILIS["stage2 of stage1"].get(region)
        ref1 = f"~{_short(DNAHNET_BSUBTILIS['stage1'])}" if region != "all" else "-"
        rows.append([region, _short(ours[0]), ref1, _short(ours[1]), _short(ref2) if ref2 else "-"])
    codon = summary.get("codon", {}).get("stage1", {})
    if codon.get("pieces"):
        for j, ref in enumerate(DNAHNET_BSUBTILIS["codon"]):
            rows.append([f"CDS codon position {j + 1}", _short(codon["all"]["rates"][j]), _short(ref), "", ""])
    return _md_table(["region", "stage 1 (share of bases)", "dnaHNet stage 1", "stage 2 (share of stage-1 boundaries)",
                      "dnaHNet stage 2"], rows)


def _codon_table(summary: dict) -> str:
    rows = []
    for name, c in summary["codon"].items():
        if not c["pieces"]:
            continue
        for strand in ("+", "-", "all"):
            rows.append([name, strand, *[_short(r) for r in c[strand]["rates"]], str(sum(c[strand]["counts"])),
                         _short(c["rotation_p"]) if strand == "all" else "",
                         _short(c["period3_power_ratio"]) if strand == "all" else ""])
    return _md_table(["set", "strand", "pos 1", "pos 2", "pos 3", "boundaries", "p (codon labels rotated per CDS)", "period-3 power ratio"], rows)


def _length_table(summary: dict) -> str:
    rows = []
    for stage in summary["stages"]:
        for ftype, s in summary["chunk_lengths"][stage["name"]].items():
            rows.append([stage["name"], ftype, str(s["n"]), _short(s["mean"]), _short(s["median"]),
                         f"{_short(s['q25'])}–{_short(s['q75'])}"])
    return _md_table(["stage", "chunks starting in", "n", "mean", "median", "IQR"], rows)


def _write_report(path: Path, summary: dict, figures: list[str]) -> None:
    p = summary["parameters"]
    stages = "; ".join(f"{s['name']}: {s['boundaries']} boundaries, compression {s['compression']:.2f} "
                       f"(grid control every {s['grid_k']} bp)" for s in summary["stages"])
    parts = [
        "# Chunk boundaries vs genome annotation",
        f"Command: `{summary['run']['call']}`  \nMachine: {summary['run']['machine']}  \nDate: {summary['run']['date']}",
        f"Analysed bases: {summary['analysed_bases']}. {stages}. Edge window ±{p['window']} bp; null = "
        f"{p['permutations']} circular shifts per chromosome (seed {p['seed']}); p-values are one-sided, +1 corrected.",
        "## Headline", headline_table(summary),
        "## Published findings",
        "\n\n".join(f["text"] for f in summary["findings"]),
        "## Selection rate (fraction of positions that start a chunk)", _selection_table(summary),
        f"Promoter = {p['promoter_window']} bp upstream of each gene start; start/stop codon = first/last 3 coding bases.",
        *(["## Against dnaHNet (B. subtilis, arXiv 2602.10603)", table] if (table := _dnahnet_table(summary)) else []),
        "## Boundary density around feature edges", "![profiles](boundary_profiles.png)",
        "## Chunk lengths", _length_table(summary), "![chunk lengths](chunk_lengths.png)",
    ]
    if "cds_phase.png" in figures:
        parts += ["## Codon position of chunk starts inside CDS", _codon_table(summary), "![CDS phase](cds_phase.png)"]
    else:
        parts += ["## Codon position of chunk starts inside CDS", "No CDS with a known frame lie in the analysed regions."]
    if summary["auc"]:
        parts += ["## p_t as a predictor of feature edges (±window)",
                  _md_table(["feature", "edge", "AUROC", "AUPRC", "AUPRC baseline"],
                            [[r["feature"], r["edge"], r["auroc"], r["auprc"], r["auprc_baseline"]] for r in summary["auc"]])]
    parts.append("Full table: `enrichment.tsv`; everything above in `summary.json`.")
    with atomic_open(path, "w") as fh:
        fh.write("\n\n".join(parts) + "\n")
