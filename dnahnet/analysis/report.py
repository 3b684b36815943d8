"""`annotate`: boundary calls + annotations + genome -> tables, figures and a report.

Outputs in `out_dir` (all written atomically): `enrichment.tsv` (one row per
stage × feature × edge, fixed-grid controls included), `summary.json`,
`boundary_profiles.png`, `chunk_lengths.png`, `cds_phase.png` (when CDS are
annotated) and `report.md`, whose text about published findings is built from
the numbers of this run: an association is claimed only where the fold's 95%
interval under the sequence-context null excludes 1.
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
    derive_codon_sites,
    derive_intergenic,
    derive_promoters,
    feature_role,
    load_annotation,
    softmask_repeats,
)
from dnahnet.analysis.enrichment import (
    BoundarySet,
    Regions,
    _n_overlapping,
    _spaces,
    analyse_boundaries,
    edge_anchors,
    edge_profile,
    read_boundaries,
    sequence_axis,
    summarise_lengths,
)
from dnahnet.analysis.multiple_testing import BOOTSTRAP, MIN_EXPECTED, MIN_UNITS, two_sided_floor
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, check_writable_dir, save_png
from dnahnet.io.annotations import FeatureTable
from dnahnet.io.bed import BedGraph, read_bedgraph
from dnahnet.io.chrom_names import reconcile_chrom_names

PathLike = str | os.PathLike
TSV_COLUMNS = ("stage", "feature", "edge", "window", "n_features", "units", "bases", "observed",
               "expected", "fold", "fold_lo", "fold_hi", "z", "p_enriched", "p_depleted", "shift_p", "shift_q",
               "grid_expected", "grid_fold", "grid_fold_lo", "grid_fold_hi", "grid_p", "grid_q",
               "context_k", "context_expected", "context_fold", "context_fold_lo", "context_fold_hi", "context_p",
               "context_q", "rate_in", "rate_out")
PROFILE_FLANK = 100
ALPHA = 0.05


def annotate(
    boundaries_bed: PathLike,
    annotation_paths: Sequence[PathLike],
    genome_fasta: PathLike,
    out_dir: PathLike,
    window: int = 5,
    permutations: int = 1000,
    probs_bedgraph: PathLike | None = None,
    seed: int = 0,
    stage: int | str | None = None,
    promoter_window: int = 100,
    command: str | None = None,
    context_k: int | None = None,
    bootstrap: int = BOOTSTRAP,
) -> dict:
    """Compare chunk boundaries with genome features; write tables, figures and report.md.

    Soft-masked repeats of `genome_fasta` are added as feature type `repeat`,
    intergenic gaps and promoters (`promoter_window` bases upstream of genes) are
    derived. `probs_bedgraph` (per-base p_t) adds AUROC/AUPRC of p_t for feature
    edges; `stage` (1, 2 or "stage1") limits the analysis to one stage. Returns
    the summary written to summary.json. `command` (the command line that ran
    this) is recorded in the report; without it, the Python call is.

    Every fold is read against three nulls (circular shift, fixed grid, the
    sequence context of `context_k` bases, chosen by held-out log-loss when None),
    with `bootstrap` resamples of the features for its interval and
    Benjamini-Hochberg q over all tests of the report. A `context_k` the data
    cannot support is lowered, with a note in `summary["notes"]`.
    """
    if permutations < 1 or window < 0 or promoter_window < 0 or bootstrap < 1:
        raise DnahnetInputError(
            f"need permutations >= 1, window >= 0, promoter_window >= 0 and bootstrap >= 1 "
            f"(got {permutations}, {window}, {promoter_window}, {bootstrap})")
    if context_k is not None and not 1 <= context_k <= 8:
        raise DnahnetInputError(f"context order must be 1 to 8 (got {context_k})")
    out = check_writable_dir(out_dir)
    genome_names, sizes = _genome_index(genome_fasta)
    sets, regions = read_boundaries(boundaries_bed)
    mapping, _ = reconcile_chrom_names(list(regions), genome_names, file=str(boundaries_bed))
    sets = {name: _rename_set(b, mapping) for name, b in sorted(sets.items())}
    regions = {mapping[c]: r for c, r in regions.items() if c in mapping}
    sets = _select_stage(sets, stage, boundaries_bed)
    features, name_reports = _load_features(annotation_paths, genome_fasta, genome_names, sizes, regions, promoter_window)
    probs = _read_probs(probs_bedgraph, genome_names) if probs_bedgraph is not None else None
    result = analyse_boundaries(sets.values(), features, regions, window, permutations, seed, probs,
                                sequence=sequence_axis(genome_fasta, regions), context_k=context_k, bootstrap=bootstrap)

    summary = _summary(result, features, name_reports, window, permutations, seed, promoter_window)
    summary["parameters"].update({"bootstrap": bootstrap, "context_k": context_k})
    summary["inputs"] = {
        "boundaries": str(boundaries_bed), "annotations": [str(p) for p in annotation_paths],
        "genome": str(genome_fasta), "probs": None if probs_bedgraph is None else str(probs_bedgraph),
    }
    summary["run"] = _run_info(command, boundaries_bed, annotation_paths, genome_fasta, out_dir, window, permutations,
                               probs_bedgraph, seed, stage, promoter_window, context_k, bootstrap)
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
        table, reports[str(path)] = load_annotation(path).on_genome(genome_names, file=str(path))
        tables.append(table)
    features = FeatureTable.concat(tables)
    spaces = _spaces(regions)
    if _n_overlapping(features, spaces) == 0:
        where = ", ".join(f"{c}:{int(sp.starts[0])}-{int(sp.ends[-1])}" for c, sp in list(spaces.items())[:3])
        raise DnahnetInputError(f"no annotated feature lies inside the boundary regions ({where}); "
                                "check that the annotation and the boundaries are on the same genome and coordinates",
                                file=", ".join(str(p) for p in paths))
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
             "probs_bedgraph", "seed", "stage", "promoter_window", "context_k", "bootstrap")
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
        "context": result["context"],
        "start_codons": result["start_codons"],
        "tests": result["tests"],
        "notes": [f"{name}: {c['note']}" for name, c in result["context"].items() if c["note"]],
    }
    summary["parameters"]["bootstrap"] = result["bootstrap"]
    summary["findings"] = [f for stage in learned for f in _findings(stage, result, summary)]
    return summary


def _row(rows: list[dict], stage: str, feature: str, edge: str) -> dict | None:
    return next((r for r in rows if r["stage"] == stage and r["feature"] == feature and r["edge"] == edge), None)


def _types_with_role(summary: dict, role: str) -> list[str]:
    return [t for t in summary["feature_types"] if feature_role(t) == role]


def _interval(row: dict, prefix: str) -> str:
    return f"{_dec(row[prefix + 'fold'])} [{_dec(row[prefix + 'fold_lo'])}, {_dec(row[prefix + 'fold_hi'])}]"


def _context_verdict(row: dict | None) -> str | None:
    """'enriched' / 'depleted' where the context-matched interval excludes 1, else 'no detectable difference'."""
    if row is None or "context_fold_lo" not in row or not math.isfinite(row["context_fold_lo"]):
        return None
    if row["context_fold_lo"] > 1:
        return "enriched"
    if row["context_fold_hi"] < 1:
        return "depleted"
    return "no detectable difference"


def _edge_finding(stage: str, summary: dict, feature: str, edge: str, what: str, source: str, claim: str) -> dict:
    """A published claim about boundaries at feature edges, judged by the sequence-context null only."""
    rows = summary["enrichment"]
    obs = _row(rows, stage, feature, edge)
    w = summary["parameters"]["window"]
    base = {"stage": stage, "source": source, "claim": claim}
    if obs is None or not obs["expected"] > 0:
        where = "are annotated" if not feature else "lie in the analysed regions"
        return {**base, "verdict": "not testable", "text": f"No {what} {where}, so {source}'s {claim} cannot be checked."}
    if obs["units"] < MIN_UNITS or obs.get("context_expected", MIN_EXPECTED) < MIN_EXPECTED:
        return {**base, "verdict": "not testable",
                "text": f"Only {obs['units']} {what} ({_short(obs.get('context_expected', obs['expected']))} boundaries "
                        f"expected) lie in the analysed regions, fewer than the {MIN_UNITS} features and {MIN_EXPECTED:g} "
                        f"expected boundaries an interval needs, so {source}'s {claim} cannot be checked."}
    verdict = _context_verdict(obs)
    shift = f"circular shift {_interval(obs, '')}"
    grid = f", fixed grid {_interval(obs, 'grid_')}" if "grid_fold" in obs else ""
    lead = f"{stage}, ±{w} bp of {what} ({obs['observed']} boundaries, {obs['units']} units): "
    if verdict is None:
        text = (lead + f"fold {shift}{grid}. Without a sequence-context null no association is claimed, so "
                f"{source}'s {claim} is not assessed.")
        verdict = "not assessed"
    else:
        q = obs["context_q"]
        caution = (f" After Benjamini-Hochberg over the report's {summary['tests']} tests q = {_short(q)}, so this is "
                   "tentative." if not q < ALPHA else "")
        folds = (f"fold {_interval(obs, 'context_')} against the sequence context (k={obs['context_k']}, "
                 f"q = {_short(q)}); {_interval(obs, '')} against a circular shift"
                 + (f", {_interval(obs, 'grid_')} against the fixed grid" if "grid_fold" in obs else ""))
        if verdict == "enriched":
            text = (lead + f"more boundaries than the sequence context predicts: {folds}. The association is "
                    f"consistent with {source}'s {claim}." + caution)
        elif verdict == "depleted":
            text = (lead + f"fewer boundaries than the sequence context predicts: {folds}. This does not support "
                    f"{source}'s {claim}." + caution)
        else:
            explained = (" The circular-shift enrichment is what the k-mers at these edges predict."
                         if obs["fold_lo"] > 1 else "")
            text = (lead + f"no detectable difference from the sequence-context expectation ({folds})."
                    + explained + f" This run does not support {source}'s {claim}.")
    return {**base, "verdict": verdict, "fold": obs["fold"], "context_fold": obs.get("context_fold"),
            "context_interval": [obs.get("context_fold_lo"), obs.get("context_fold_hi")],
            "grid_fold": obs.get("grid_fold"), "text": text}


def _length_finding(stage: str, result: dict, summary: dict, feature: str, what: str, shorter: bool, claim: str) -> dict:
    """A published claim about chunk lengths; beyond Mann-Whitney, the body's context-null fold must agree."""
    lengths = result["chunk_lengths"][stage]
    base = {"stage": stage, "source": "DNAChunker", "claim": claim}
    if not feature:
        return {**base, "verdict": "not testable", "text": f"No {what} are annotated, so DNAChunker's {claim} cannot be checked."}
    if feature not in lengths or lengths[feature].size < 2:
        return {**base, "verdict": "not testable",
                "text": f"No {stage} chunks start in {what}, so DNAChunker's {claim} cannot be checked."}
    inside, everything = lengths[feature], lengths["all"]
    alternative = "less" if shorter else "greater"
    p = float(stats.mannwhitneyu(inside, everything, alternative=alternative).pvalue)
    ratio = inside.mean() / everything.mean()
    word = "shorter" if ratio < 1 else "longer"
    text = (f"{stage} chunks starting in {what} are {word} than average (mean {inside.mean():.2f} vs "
            f"{everything.mean():.2f} bp, ratio {ratio:.2f}, one-sided Mann-Whitney p = {p:.3g}, n = {inside.size})")
    body = _row(summary["enrichment"], stage, feature, "body")
    verdict = _context_verdict(body)
    wanted = "enriched" if shorter else "depleted"  # shorter chunks = denser boundaries
    if not ((ratio < 1) == shorter and p < ALPHA):
        text += f": this does not reproduce DNAChunker's {claim}."
        verdict = "does not reproduce"
    elif verdict is None:
        text += f"; without a sequence-context null, DNAChunker's {claim} is not assessed."
        verdict = "not assessed"
    elif verdict == wanted:
        text += (f", and the boundary density inside them departs from the sequence-context expectation "
                 f"(body fold {_interval(body, 'context_')}, k={body['context_k']}): consistent with DNAChunker's {claim}.")
        verdict = "association"
    else:
        text += (f", but the boundary density inside them shows no detectable difference from the sequence-context "
                 f"expectation in that direction (body fold {_interval(body, 'context_')}, k={body['context_k']}): "
                 f"the difference follows the sequence composition, which does not support DNAChunker's {claim}.")
        verdict = "no detectable difference"
    return {**base, "verdict": verdict, "ratio": float(ratio), "p": p, "text": text}


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
            fh.write("\t".join(_fmt(row.get(c)) for c in TSV_COLUMNS) + "\n")


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


def _null_cell(row: dict | None, prefix: str) -> str:
    """'fold [lo, hi] q' for one null, NA where that null was not run."""
    if row is None or f"{prefix}fold" not in row:
        return "NA"
    q = row.get(f"{'shift_' if prefix == '' else prefix}q")
    return f"{_dec(row[prefix + 'fold'])} [{_dec(row[prefix + 'fold_lo'])}, {_dec(row[prefix + 'fold_hi'])}] q {_short(q)}"


def _dec(value) -> str:
    """Folds and their bounds to 3 decimals, more where that would print a value just off 1 as 1.000."""
    if value is None or not math.isfinite(value):
        return "NA"
    digits = 3
    while digits < 6 and value != 1 and float(f"{value:.{digits}f}") == 1:
        digits += 1
    return f"{value:.{digits}f}"


def headline_table(summary: dict) -> str:
    """The headline enrichment table (markdown), as report.md shows it: learned stages under all three nulls."""
    rows = summary["enrichment"]
    out = []
    for stage in summary["stages"]:
        name = stage["name"]
        for ftype in summary["feature_types"]:
            for edge in ("start", "end"):
                row = _row(rows, name, ftype, edge)
                if row is None:
                    continue
                out.append([name, ftype, edge, str(row["n_features"]), str(row["observed"]), _null_cell(row, ""),
                            _null_cell(row, "grid_"), _null_cell(row, "context_"),
                            _headline_verdict(row)])
    ks = ", ".join(f"{s['name']} k={s['context_k']}" for s in summary["stages"] if "context_k" in s)
    return _md_table(["stage", "feature", "edge", "n", "observed", "circular shift: fold [95% CI] q",
                      "fixed grid: fold [95% CI] q", f"sequence context ({ks or 'not run'}): fold [95% CI] q",
                      "vs sequence context"], out)


def _headline_verdict(row: dict) -> str:
    if row["units"] < MIN_UNITS:
        return "too few features"
    if row.get("context_expected", MIN_EXPECTED) < MIN_EXPECTED:
        return "too few boundaries expected"
    verdict = _context_verdict(row) or "not assessed"
    if verdict in ("enriched", "depleted") and not row.get("context_q", 1.0) < ALPHA:
        verdict += " (tentative: q >= 0.05)"  # the interval excludes 1 but not after correcting for every test
    return verdict


def _floor_note(summary: dict) -> str:
    """Which p-values sit at the floor their number of draws allows (so the true p may be smaller)."""
    p = summary["parameters"]
    floor_perm, floor_boot = two_sided_floor(p["permutations"]), two_sided_floor(p["bootstrap"])
    rows = summary["enrichment"]
    at = {"circular shift": sum(math.isclose(r["shift_p"], floor_perm) for r in rows),
          "sequence context": sum(math.isclose(r.get("context_p", 2.0), floor_perm) for r in rows),
          "fixed grid": sum(math.isclose(r.get("grid_p", 2.0), floor_boot) for r in rows)}
    reached = ", ".join(f"{n} {name}" for name, n in at.items() if n)
    text = (f"P-values are two-sided: circular shift from {p['permutations']} shifts, sequence context from "
            f"{p['permutations']} draws of its null (two-sided floor 2/({p['permutations']}+1) = {_short(floor_perm)}, "
            f"one-sided 1/({p['permutations']}+1)), fixed grid "
            f"from the {p['bootstrap']} bootstrap resamples (floor {_short(floor_boot)}). q = Benjamini-Hochberg over "
            f"all {summary['tests']} tests of this report (every null of every row, grid controls and start-codon "
            "controls included). ")
    return text + (f"P-values at their floor ({reached} tests): the true p may be smaller; more draws would resolve it."
                   if reached else "No p-value reached its floor.")


def _selection_table(summary: dict) -> str:
    sets = list(summary["selection_rates"])
    regions = list(dict.fromkeys(r for s in sets for r in summary["selection_rates"][s]))
    rows = [[region] + [_short(summary["selection_rates"][s].get(region, {}).get("rate")) for s in sets] for region in regions]
    return _md_table(["region"] + sets, rows)


# dnaHNet (arXiv 2602.10603) on B. subtilis: stage-1 rate = share of bases, stage-2 rate = share of stage-1
# boundaries, as published. Stage 1 is flat: start codon 35.1% against 35.8% genome-wide.
DNAHNET_BSUBTILIS = {
    "stage1": {"promoter": 0.356, "start_codon": 0.351, "CDS": 0.358, "stop_codon": 0.345, "intergenic": 0.353,
               "all": 0.358},
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
        ref1 = DNAHNET_BSUBTILIS["stage1"].get(region)
        ref2 = DNAHNET_BSUBTILIS["stage2 of stage1"].get(region)
        rows.append([region, _short(ours[0]), _short(ref1) if ref1 else "-", _short(ours[1]), _short(ref2) if ref2 else "-"])
    codon = summary.get("codon", {}).get("stage1", {})
    if codon.get("pieces"):
        for j, ref in enumerate(DNAHNET_BSUBTILIS["codon"]):
            rows.append([f"CDS codon position {j + 1}", _short(codon["all"]["rates"][j]), _short(ref), "", ""])
    table = _md_table(["region", "stage 1 (share of bases)", "dnaHNet stage 1", "stage 2 (share of stage-1 boundaries)",
                       "dnaHNet stage 2"], rows)
    ref = DNAHNET_BSUBTILIS["stage1"]
    text = (f"dnaHNet's stage 1 is flat across regions ({min(ref.values()):.1%} to {max(ref.values()):.1%}; start codon "
            f"{ref['start_codon']:.1%} against {ref['all']:.1%} genome-wide, ratio {ref['start_codon'] / ref['all']:.2f}).")
    ours_start, ours_all = rates["stage1"].get("start_codon", {}).get("rate"), rates["stage1"]["all"]["rate"]
    if ours_start is not None and ours_all:
        text += (f" Here stage 1 selects {ours_start:.1%} of start-codon bases against {ours_all:.1%} overall "
                 f"(ratio {ours_start / ours_all:.2f}); a ratio away from 1 is a difference from dnaHNet's stage 1, "
                 "not an agreement with it.")
    return table + "\n\n" + text


def _context_section(summary: dict) -> list[str]:
    """How much of each stage's routing a k-mer lookup explains, and the order its context null uses."""
    if not summary["context"]:
        return []
    ks = [r["k"] for r in next(iter(summary["context"].values()))["curve"]]
    rows = []
    for name, c in summary["context"].items():
        by_k = {r["k"]: r for r in c["curve"]}
        rows.append([name, "AUROC", *[_short(by_k[k]["auroc"]) + ("*" if k > c["supported"] else "") for k in ks]])
        rows.append([name, "log-loss (bits)", *[_short(by_k[k]["log_loss"] / math.log(2)) for k in ks]])
    held = next(iter(summary["context"].values()))["curve"][0]["held_out"]
    text = []
    for name, c in summary["context"].items():
        by_k = {r["k"]: r for r in c["curve"]}
        how = (f"requested k={c['requested']}" if c["requested"] is not None else "chosen by held-out log-loss")
        bases = f"{c['k']} base ending at a position predicts" if c["k"] == 1 else f"{c['k']} bases ending at a position predict"
        text.append(f"{name}: the {bases} a boundary there with held-out AUROC "
                    f"{_short(by_k.get(c['k'], {}).get('auroc', float('nan')))} (k=1: {_short(by_k[ks[0]]['auroc'])}; "
                    f"k={ks[-1]}: {_short(by_k[ks[-1]]['auroc'])}); the context null uses k={c['k']} ({how}; the data "
                    f"support k <= {c['supported']})." + (f" Note: {c['note']}." if c["note"] else ""))
    return ["## Context predictability (k-mer lookup)",
            f"A k-mer model (boundary rate of each k-mer, the k bases ending at the position, shrunk towards its "
            f"(k-1)-mer suffix) is fitted on half of the analysed positions (random blocks of 1,000) and scored on "
            f"the other {held:,}. AUROC 0.5 = no information, 1 = a k-mer lookup explains the routing. * = fewer "
            f"than 20 positions per k-mer on average.",
            _md_table(["stage", "held-out", *[f"k={k}" for k in ks]], rows), "\n".join(text)]


def _start_codon_section(summary: dict) -> list[str]:
    if not summary["start_codons"]:
        return []
    rows, text = [], []
    for name, c in summary["start_codons"].items():
        for strand, r in c["strands"].items():
            rows.append([name, strand, str(r["annotated"]), _short(r["rate_annotated"]), str(r["other"]),
                         _short(r["rate_other"]), f"{_short(r['ratio'])} [{_short(r['ratio_lo'])}, {_short(r['ratio_hi'])}]",
                         _short(r["p"]), _short(r.get("q"))])
        both = c["strands"]["both"]
        if not math.isfinite(both["ratio_lo"]):
            text.append(f"{name}: too few annotated start ATGs in the analysed regions for the control.")
        elif both["ratio_lo"] > 1 or both["ratio_hi"] < 1:
            text.append(f"{name}: annotated start ATGs are selected {both['ratio']:.2f}x as often as other ATGs "
                        f"[{both['ratio_lo']:.2f}, {both['ratio_hi']:.2f}], q = {_short(both.get('q'))}.")
        else:
            text.append(f"{name}: no detectable difference between annotated start ATGs and other ATGs (ratio "
                        f"{both['ratio']:.2f} [{both['ratio_lo']:.2f}, {both['ratio_hi']:.2f}]): the start-codon rate is "
                        "what any ATG gets.")
    not_atg = next(iter(summary["start_codons"].values()))["not_atg"]
    return ["## Start codons against other ATGs",
            "Boundary rate over the three codon bases at annotated start codons that read ATG, against every other ATG "
            "(CAT on the reverse strand) in the analysed regions; 95% bootstrap interval over codons, two-sided "
            f"Mann-Whitney p. {not_atg} annotated start codons do not read ATG and are left out.",
            _md_table(["stage", "strand", "annotated ATG", "rate", "other ATG", "rate", "ratio [95% CI]", "p", "q"], rows),
            "\n".join(text)]


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
        f"Analysed bases: {summary['analysed_bases']}. {stages}. Edge window ±{p['window']} bp (seed {p['seed']}).",
        "## Headline",
        "Fold = observed / expected boundaries in the windows under three nulls: a circular shift of the boundaries "
        "along the analysed regions (keeps their spacing, ignores the sequence), a fixed grid with the stage's "
        "density (ignores the sequence), and the sequence context (each position's boundary rate given its k "
        "preceding bases, fitted outside the windows tested). Only the sequence-context null separates \"the router "
        "marks these features\" from \"the router marks k-mers that these features carry\". 95% intervals from "
        f"{p['bootstrap']} bootstrap resamples of the features (features with overlapping windows form one unit).",
        headline_table(summary), _floor_note(summary),
        *_context_section(summary),
        "## Published findings, judged against the sequence-context null",
        "An association is claimed only where the sequence-context interval excludes 1.",
        "\n\n".join(f["text"] for f in summary["findings"]),
        *_start_codon_section(summary),
        "## Selection rate (fraction of positions that start a chunk)", _selection_table(summary),
        f"Promoter = {p['promoter_window']} bp upstream of each gene start; start/stop codon = first/last 3 coding bases.",
        *(["## Against dnaHNet (B. subtilis, arXiv 2602.10603; rates as published)", table]
          if (table := _dnahnet_table(summary)) else []),
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
