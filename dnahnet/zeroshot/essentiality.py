"""Zero-shot gene essentiality: score = log p(WT) - log p(KO) in bits, per gene.

For each gene (a CDS: GenBank CDS features; GFF3/GTF CDS rows grouped by their
transcript), a window of `window` bases is centred on the CDS and read in gene
orientation (minus-strand genes reverse-complemented). The knockout replaces the
15 bases starting 12 bases after the first base of the start codon with
`TAATAATAATAGTGA` (stops in all three frames; same length, so WT and KO windows
align base for base). Windows:
- on a circular replicon (GenBank `circular`) positions wrap around the origin
  (`wrapped`); a replicon shorter than the window gives a window of its length;
- on a linear contig the window is clipped to the contig (`clipped`), so the
  window is shorter, never padded;
- a CDS longer than the window keeps its start codon and knockout inside: the
  window then starts 12 bases before the start codon (`shifted`).
A CDS whose annotated start is not a start codon (NCBI table 11: ATG GTG TTG CTG
ATT ATC ATA) is counted and flagged (`no_start`), and scored unless skipped.
A CDS spanning the origin of a circular replicon (a join across it) is scored
on its true span: its end is given past the replicon length (end - length =
where it stops after the origin) and it is counted (`origin_spanning`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnahnet.alphabet import reverse_complement
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, check_writable_dir, save_png
from dnahnet.io.tables import read_essentiality_labels
from dnahnet.io.jsonfile import write_json
from dnahnet.io.options import check_int
from dnahnet.progress import ProgressFactory, silent
from dnahnet.zeroshot.stats import auroc, roc_curve

CASSETTE = "TAATAATAATAGTGA"
KO_OFFSET = 12
START_CODONS = frozenset({"ATG", "GTG", "TTG", "CTG", "ATT", "ATC", "ATA"})


@dataclass
class Gene:
    id: str
    chrom: str
    start: int  # 0-based half-open span of the CDS on the genome
    end: int
    strand: str
    alias: str = ""  # the gene/locus name, also accepted in label files

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class GeneWindow:
    gene: Gene
    wt: str
    ko: str
    ko_offset: int  # where the cassette starts in the oriented window
    start_codon: str
    clipped: bool = False
    wrapped: bool = False
    shifted: bool = False


def genes_from_annotation(table) -> tuple[list[Gene], int]:
    """(one Gene per CDS, GFF3/GTF pieces grouped by transcript; number of CDSs spanning a circular origin)."""
    cds = table.of_type("CDS")
    parts = table.of_type("CDS_part")
    groups: dict[str, list[int]] = {}
    for i in range(len(cds)):
        groups.setdefault(str(cds.parent[i] or cds.id[i]), []).append(i)
    genes, spanning = [], 0
    for key, idx in groups.items():
        chrom = str(cds.chrom[idx[0]])
        start, end = int(cds.start[idx].min()), int(cds.end[idx].max())
        size = table.sizes.get(chrom)
        own = parts.parent == cds.id[idx[0]]
        if size and table.topology.get(chrom) == "circular" and start == 0 and end == size and own.any():
            # Biopython reports a join across the origin as the whole replicon; its pieces say where it lies.
            start, end = span_across_origin(parts.start[own], parts.end[own], size)
            spanning += end > size
        genes.append(Gene(key, chrom, start, end, str(cds.strand[idx[0]]), str(cds.gene[idx[0]] or "")))
    return genes, spanning


def span_across_origin(starts: np.ndarray, ends: np.ndarray, size: int) -> tuple[int, int]:
    """Smallest arc of a circular replicon covering all pieces: (start, end), end > size when it wraps.

    The arc is the complement of the largest gap between consecutive pieces
    around the circle.
    """
    order = np.argsort(starts)
    s, e = np.asarray(starts)[order].astype(np.int64), np.asarray(ends)[order].astype(np.int64)
    gaps = np.append(s[1:] - e[:-1], size - e[-1] + s[0])
    k = int(np.argmax(gaps))
    if k == len(s) - 1:  # the largest gap is across the origin: the gene does not wrap
        return int(s[0]), int(e[-1])
    return int(s[k + 1]), int(e[k]) + size


def _fetch(genome, chrom: str, start: int, end: int, circular: bool) -> tuple[str, bool, bool, int]:
    """(sequence, clipped, wrapped, actual start) of [start, end) on `chrom`."""
    size = genome.sizes[chrom]
    if circular:
        if end - start >= size:
            start, end = start, start + size
        pieces, pos = [], start
        while pos < end:
            p = pos % size
            take = min(end - pos, size - p)
            pieces.append(genome.fetch(chrom, p, p + take))
            pos += take
        seq = b"".join(pieces).decode().upper()
        return seq, False, start < 0 or end > size, start % size
    a, b = max(start, 0), min(end, size)
    return genome.fetch(chrom, a, b).decode().upper(), (a, b) != (start, end), False, a


def gene_window(genome, gene: Gene, window: int, circular: bool) -> GeneWindow:
    """WT and KO windows of `gene`, in gene orientation."""
    mid = (gene.start + gene.end) // 2
    ws = mid - window // 2
    shifted = False
    plus = gene.strand != "-"
    # keep the start codon and the cassette inside the window
    if plus and gene.start + KO_OFFSET + len(CASSETTE) > ws + window or (plus and gene.start < ws):
        ws, shifted = gene.start - KO_OFFSET, True
    if not plus and (gene.end - KO_OFFSET - len(CASSETTE) < ws or gene.end > ws + window):
        ws, shifted = gene.end + KO_OFFSET - window, True
    seq, clipped, wrapped, actual = _fetch(genome, gene.chrom, ws, ws + window, circular)
    size = genome.sizes[gene.chrom]
    if circular:
        # oriented offset of the start codon's first base; coordinates relative to the (possibly wrapped) window start
        first = gene.start if plus else gene.end - 1
        rel = (first - ws) % size if len(seq) == size else first - ws
    else:
        first = gene.start if plus else gene.end - 1
        rel = first - actual
    if not plus:
        seq = reverse_complement(seq)
        rel = len(seq) - 1 - rel
    off = rel + KO_OFFSET
    if off + len(CASSETTE) > len(seq) or rel < 0:
        raise DnahnetInputError(f"gene {gene.id}: knockout site falls outside its window", record=gene.chrom, position=gene.start)
    ko = seq[:off] + CASSETTE + seq[off + len(CASSETTE):]
    return GeneWindow(gene, seq, ko, off, seq[rel:rel + 3], clipped, wrapped, shifted)


def run_essentiality(
    model, genome_path: str | os.PathLike, annotation: str | os.PathLike, out_dir: str | os.PathLike, *,
    labels: str | os.PathLike | None = None, window: int = 8192, skip_no_start: bool = False,
    batch_size: int = 8, limit: int | None = None, progress: ProgressFactory = silent,
) -> dict:
    """Score every gene; write `genes.tsv`, `summary.json` (and `roc.png` with labels) into `out_dir`.

    `progress` is told the bases to score (wild type and knockout windows) and hears of each block's.
    """
    from dnahnet.data.corpus import open_genome
    from dnahnet.io.annotations import read_annotation

    check_int(window, "--window", minimum=KO_OFFSET + len(CASSETTE), what="room for the start codon and the knockout cassette")
    check_int(batch_size, "--batch-size")
    check_int(limit, "--limit")
    lab = read_essentiality_labels(labels) if labels else {}  # a bad labels file fails now, not after every gene is scored
    out = check_writable_dir(out_dir)
    genome = open_genome(genome_path)  # a GenBank given as genome and annotation is parsed once (dnahnet.io.genbank)
    table, _ = read_annotation(annotation, types={"CDS"}).on_genome(genome.names, file=str(annotation))
    topology = {**getattr(genome, "topology", {}), **table.topology}
    genes, spanning = genes_from_annotation(table)
    if not genes:
        raise DnahnetInputError("no CDS feature on a sequence of the genome: nothing to score", file=str(annotation))
    for g in genes:
        size = genome.sizes.get(g.chrom)
        if size is not None and g.end > size and topology.get(g.chrom) != "circular":
            raise DnahnetInputError(f"CDS {g.id} ends at {g.end:,}, past the end of {g.chrom} ({size:,} bases)",
                                    file=str(annotation), record=g.chrom)
    genes = genes[:limit] if limit else genes
    windows: list[GeneWindow] = [gene_window(genome, g, window, topology.get(g.chrom) == "circular") for g in genes]
    no_start = [w for w in windows if w.start_codon not in START_CODONS]
    if skip_no_start:
        windows = [w for w in windows if w.start_codon in START_CODONS]
    seqs = [s for w in windows for s in (w.wt, w.ko)]
    logp = np.zeros(len(seqs))
    with progress(sum(len(x) for x in seqs)) as advance:
        for block in model.iter_score(seqs, batch_size=batch_size, window=None):
            logp[block.index] += float(np.nansum(block.values))
            advance(len(block.values))
    scores = [logp[2 * i] - logp[2 * i + 1] for i in range(len(windows))]
    with atomic_open(out / "genes.tsv") as fh:
        fh.write("gene_id\tchrom\tstart\tend\tstrand\tlength\tstart_codon\tscore_bits\twindow_length\tclipped\twrapped\tshifted\tessential\n")
        for w, s in zip(windows, scores):
            g = w.gene
            y = lab.get(g.id, lab.get(g.alias, (None, "")))[0]
            fh.write(f"{g.id}\t{g.chrom}\t{g.start}\t{g.end}\t{g.strand}\t{g.length}\t{w.start_codon}\t{s:.6g}\t{len(w.wt)}\t"
                     f"{int(w.clipped)}\t{int(w.wrapped)}\t{int(w.shifted)}\t{'NA' if y is None else y}\n")
    summary: dict = {
        "genes": len(genes), "scored": len(windows), "no_start_codon": len(no_start),
        "no_start_examples": [w.gene.id for w in no_start[:10]], "skipped_no_start": len(no_start) if skip_no_start else 0,
        "origin_spanning": spanning, "clipped": sum(w.clipped for w in windows),
        "wrapped": sum(w.wrapped for w in windows), "shifted": sum(w.shifted for w in windows), "window": window,
    }
    summary["score_bits"] = score_distribution(windows, scores, out)
    if lab:
        summary.update(evaluate_labels(windows, scores, lab, out))
    write_json(out / "summary.json", summary)
    return summary


def evaluate_labels(windows: list[GeneWindow], scores: list[float], lab: dict, out: Path | None = None) -> dict:
    """AUROC of the model and of the gene-length baseline, pooled and macro over organisms; ROC plot."""
    known = {}
    for w, s in zip(windows, scores):
        hit = lab.get(w.gene.id) or lab.get(w.gene.alias)
        if hit is not None:
            known[w.gene.id if w.gene.id in lab else w.gene.alias] = (hit[0], hit[1], s, w.gene.length)
    missing = [k for k in lab if k not in known]
    y = np.array([v[0] for v in known.values()])
    org = np.array([v[1] for v in known.values()], dtype=object)
    model_s = np.array([v[2] for v in known.values()])
    length_s = np.array([v[3] for v in known.values()], dtype=float)
    res = {"labelled": len(known), "labels_not_in_annotation": len(missing), "labels_missing_examples": missing[:10],
           "auroc": auroc(y, model_s), "auroc_gene_length": auroc(y, length_s), "per_organism": {}}
    orgs = sorted(set(org.tolist()))
    for o in orgs:
        m = org == o
        res["per_organism"][o or "-"] = {"n": int(m.sum()), "auroc": auroc(y[m], model_s[m]), "auroc_gene_length": auroc(y[m], length_s[m])}
    vals = [v["auroc"] for v in res["per_organism"].values()]
    lens = [v["auroc_gene_length"] for v in res["per_organism"].values()]
    res["auroc_macro"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
    res["auroc_gene_length_macro"] = float(np.nanmean(lens)) if np.isfinite(lens).any() else math.nan
    if out is not None and len(known) and 0 < y.sum() < len(y):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4, 4))
        for name, s in (("model", model_s), ("gene length", length_s)):
            fpr, tpr = roc_curve(y, s)
            ax.plot(fpr, tpr, label=f"{name} (AUROC {auroc(y, s):.3f})")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        save_png(fig, out / "roc.png")
        plt.close(fig)
    return res


def score_distribution(windows: list[GeneWindow], scores: list[float], out: Path | None = None) -> dict:
    """Quantiles of the per-gene scores (bits), the share above zero (KO less likely than WT), and
    Spearman's rho against gene length (the confounder the label AUROC is compared with); `scores.png`
    shows the histogram. Useful without labels: a model that ignores the cassette scores ~0 everywhere."""
    from scipy import stats

    x = np.asarray(scores, dtype=float)
    if x.size == 0:
        return {}
    qs = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    lengths = np.array([w.gene.length for w in windows], dtype=float)
    rho = stats.spearmanr(x, lengths).statistic if x.size > 2 else math.nan
    res = {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if x.size > 1 else 0.0, "min": float(x.min()),
           "max": float(x.max()), "quantiles": {f"{q:g}": float(np.quantile(x, q)) for q in qs},
           "fraction_positive": float((x > 0).mean()), "spearman_vs_gene_length": float(rho)}
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.hist(x, bins=min(80, max(10, x.size // 20)), color="#4477aa")
        ax.axvline(0, color="grey", lw=0.6)
        ax.axvline(res["quantiles"]["0.5"], color="#cc3311", lw=0.8, label=f"median {res['quantiles']['0.5']:.2f}")
        ax.set_xlabel("log2 p(WT) - log2 p(KO) (bits, sum over the window)")
        ax.set_ylabel("genes")
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_png(fig, out / "scores.png")
        plt.close(fig)
    return res


def format_summary(summary: dict) -> list[str]:
    lines = [f"{summary['scored']} of {summary['genes']} genes scored; {summary['no_start_codon']} without a start codon at the annotated position"
             f"{' (skipped)' if summary['skipped_no_start'] else ' (scored anyway)'}; {summary['clipped']} clipped, "
             f"{summary['wrapped']} wrapped, {summary['shifted']} shifted windows; {summary['origin_spanning']} CDS across a circular origin"]
    d = summary.get("score_bits")
    if d:
        q = d["quantiles"]
        lines.append(f"score (bits): median {q['0.5']:.3f}, IQR {q['0.25']:.3f} to {q['0.75']:.3f}, 5-95% {q['0.05']:.3f} to "
                     f"{q['0.95']:.3f}; {100 * d['fraction_positive']:.1f}% of genes above 0; Spearman vs gene length "
                     f"{d['spearman_vs_gene_length']:.3f}")
    if "auroc" in summary:
        lines.append(f"{summary['labelled']} labelled genes ({summary['labels_not_in_annotation']} label ids not in the annotation)")
        lines.append(f"AUROC model {summary['auroc']:.4f} (macro over organisms {summary['auroc_macro']:.4f}); "
                     f"gene-length baseline {summary['auroc_gene_length']:.4f} (macro {summary['auroc_gene_length_macro']:.4f})")
    return lines
