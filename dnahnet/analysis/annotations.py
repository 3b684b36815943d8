"""Derived features and the annotation loader of the analyses: what the files say, plus what follows from it.

Files are read by `dnahnet.io.annotations` (GFF3, GTF, GenBank, BED3-BED12 into
one `FeatureTable`); here come the features derived from them, with the same
row layout and type names: intron, intergenic, promoter, start/stop codon and
(soft-masked) repeat.

- Introns are the gaps between a transcript's exons; GFF3/GTF transcripts listed
  with CDS lines only (e.g. U. maydis) take the gaps between their CDS pieces.
  GenBank CDS joins (ribosomal slippage in bacteria) are not introns.
- Intergenic = gaps between merged genes (mRNA when a file has no genes) on
  chromosomes that have at least one gene.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, Sequence

import numpy as np

from dnahnet.data.intervals import merge_arrays as merge_intervals  # one merge rule for lists and arrays
from dnahnet.io.annotations import FeatureTable, annotation_format, read_annotation

PathLike = str | os.PathLike
Intervals = Mapping[str, Sequence[tuple[int, int]]]

# Role of a type name, by suffix, so BED labels such as "RefSeqGene" or "RefSeqTSS" are understood.
_ROLE_SUFFIXES = (
    ("intergenic", "intergenic"),
    ("intron", "intron"),
    ("promoter", "promoter"),
    ("tss", "tss"),
    ("tes", "tes"),
    ("exon", "exon"),
    ("cds", "CDS"),
    ("mrna", "mRNA"),
    ("transcript", "mRNA"),
    ("gene", "gene"),
    ("repeat", "repeat"),
)


def feature_role(type_name: str) -> str | None:
    """What a type name stands for (gene, mRNA, exon, CDS, tss, ...), by its suffix.

    Lets BED files named after their track (RefSeqGene.bed, RefSeqTSS.bed) take part
    in analyses that need genes or TSSs; returns None for anything else.
    """
    lower = type_name.lower()
    for suffix, role in _ROLE_SUFFIXES:
        if lower.endswith(suffix):
            return role
    return None


# ---------------------------------------------------------------- derived features


def derive_introns(table: FeatureTable, from_cds: bool = False) -> FeatureTable:
    """Introns: gaps between the exons of each transcript (parent).

    With `from_cds`, a transcript that has no exon rows uses its CDS pieces.
    """
    exon = (table.type == "exon") & (table.parent != "")
    pieces = exon
    if from_cds:
        with_exons = set(table.parent[exon].tolist())
        cds = (table.type == "CDS") & (table.parent != "")
        pieces = exon | (cds & ~np.isin(table.parent, list(with_exons)))
    idx = np.flatnonzero(pieces)
    order = idx[np.lexsort((table.start[idx], table.chrom[idx].astype(str), table.parent[idx].astype(str)))]
    rows = []
    prev = None
    for i in order.tolist():
        key = (table.parent[i], table.chrom[i])
        if prev is not None and prev[0] == key and table.start[i] > prev[1]:
            k = prev[2] + 1
            rows.append((table.chrom[i], prev[1], int(table.start[i]), table.strand[i], "intron",
                         f"{key[0]}.intron{k}", key[0], table.gene[i], -1))
            prev = (key, max(prev[1], int(table.end[i])), k)
        elif prev is not None and prev[0] == key:
            prev = (key, max(prev[1], int(table.end[i])), prev[2])
        else:
            prev = (key, int(table.end[i]), 0)
    return FeatureTable.from_rows(rows)


def _rows_with_role(table: FeatureTable, role: str) -> np.ndarray:
    roles = {t: feature_role(t) for t in table.types()}
    return np.array([roles[t] == role for t in table.type.tolist()], dtype=bool)


def derive_intergenic(table: FeatureTable, chrom_sizes: Mapping[str, int]) -> FeatureTable:
    """Gaps between merged genes on each chromosome with genes, up to the chromosome ends."""
    genes = _rows_with_role(table, "gene")
    if not genes.any():
        genes = _rows_with_role(table, "mRNA")
    rows = []
    for chrom in dict.fromkeys(table.chrom[genes].tolist()):
        if chrom not in chrom_sizes:
            continue
        on = genes & (table.chrom == chrom)
        s, e = merge_intervals(table.start[on], table.end[on])
        gap_s = np.concatenate([[0], e])
        gap_e = np.concatenate([s, [chrom_sizes[chrom]]])
        for k, (a, b) in enumerate(zip(gap_s.tolist(), gap_e.tolist())):
            if a < b:
                rows.append((chrom, a, b, ".", "intergenic", f"{chrom}.intergenic{k}", "", "", -1))
    return FeatureTable.from_rows(rows)


def derive_promoters(table: FeatureTable, window: int = 100, chrom_sizes: Mapping[str, int] | None = None) -> FeatureTable:
    """`window` bases upstream of each stranded gene (else mRNA, else TSS) start."""
    stranded = np.isin(table.strand, ["+", "-"])
    for role in ("gene", "mRNA", "tss"):
        anchors = _rows_with_role(table, role) & stranded
        if anchors.any():
            break
    plus = anchors & (table.strand == "+")
    minus = anchors & (table.strand == "-")
    start = np.where(plus, np.maximum(table.start - window, 0), table.end)
    end = np.where(plus, table.start, table.end + window)
    if chrom_sizes:
        limit = np.array([chrom_sizes.get(c, np.iinfo(np.int64).max) for c in table.chrom.tolist()], dtype=np.int64)
        end = np.minimum(end, limit)
    rows = [
        (table.chrom[i], int(start[i]), int(end[i]), table.strand[i], "promoter", f"{table.id[i]}.promoter",
         table.id[i], table.gene[i], -1)
        for i in np.flatnonzero((plus | minus) & (end > start)).tolist()
    ]
    return FeatureTable.from_rows(rows)


def derive_codon_sites(table: FeatureTable) -> FeatureTable:
    """`start_codon` and `stop_codon`: first and last three coding bases of each coding span.

    A coding span is the extent of the stranded `CDS` rows that share a parent
    (a transcript, or a GenBank locus), so the 5' end is taken from the strand.
    """
    spans: dict[tuple, list] = {}
    for i in np.flatnonzero((table.type == "CDS") & np.isin(table.strand, ["+", "-"])).tolist():
        key = (table.chrom[i], table.parent[i] or f"#{i}", table.strand[i])
        s, e = int(table.start[i]), int(table.end[i])
        span = spans.setdefault(key, [s, e, table.gene[i]])
        span[0], span[1] = min(span[0], s), max(span[1], e)
    rows = []
    for (chrom, parent, strand), (s, e, gene) in spans.items():
        if e - s < 3:
            continue
        first, last = ((s, s + 3), (e - 3, e)) if strand == "+" else ((e - 3, e), (s, s + 3))
        rows.append((chrom, *first, strand, "start_codon", f"{parent}.start_codon", parent, gene, 0))
        rows.append((chrom, *last, strand, "stop_codon", f"{parent}.stop_codon", parent, gene, 0))
    return FeatureTable.from_rows(rows)


def softmask_repeats(fasta_path: PathLike, regions: Intervals | None = None, block: int = 8_000_000) -> FeatureTable:
    """Lower-case (soft-masked) runs of a FASTA (or GenBank) as `repeat` features.

    Reads one block of at most `block` bases at a time through pysam's faidx
    (plain or bgzip FASTA), so memory stays bounded whatever the chromosome
    size. `regions` (chrom -> [(start, end)]) limits the scan.
    """
    from dnahnet.data.corpus import open_faidx

    with open_faidx(fasta_path) as fasta:
        lengths = dict(zip(fasta.references, fasta.lengths))
        wanted = regions if regions is not None else {c: [(0, n)] for c, n in lengths.items()}
        rows: list[tuple] = []
        for chrom, spans in wanted.items():
            if chrom not in lengths:
                continue
            runs = [_lower_runs(fasta, chrom, s, min(e, lengths[chrom]), block) for s, e in spans]
            starts = np.concatenate([r[0] for r in runs]) if runs else np.zeros(0, np.int64)
            ends = np.concatenate([r[1] for r in runs]) if runs else np.zeros(0, np.int64)
            starts, ends = merge_intervals(starts, ends)
            rows += [(chrom, s, e, ".", "repeat", "", "", "", -1) for s, e in zip(starts.tolist(), ends.tolist())]
    return FeatureTable.from_rows(rows)


def _lower_runs(fasta, chrom: str, start: int, end: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    starts, ends = [], []
    for lo in range(start, end, block):
        hi = min(lo + block, end)
        seq = np.frombuffer(fasta.fetch(chrom, lo, hi).encode("ascii"), dtype=np.uint8)
        lower = np.zeros(seq.size + 2, dtype=np.int8)
        lower[1:-1] = seq >= ord("a")
        edges = np.diff(lower)
        starts.append(np.flatnonzero(edges == 1) + lo)
        ends.append(np.flatnonzero(edges == -1) + lo)
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(starts).astype(np.int64), np.concatenate(ends).astype(np.int64)


# ---------------------------------------------------------------- loading


def load_annotation(
    path: PathLike,
    feature_type: str | None = None,
    chrom_sizes: Mapping[str, int] | None = None,
    types: Iterable[str] | None = None,
) -> FeatureTable:
    """BED, GFF3, GTF or GenBank (`dnahnet.io.annotations.read_annotation`) plus introns and intergenic gaps.

    `feature_type` names the type of BED features (default: the file's label);
    `types` restricts GFF3/GTF/GenBank types; with `chrom_sizes` (or sizes the
    file itself gives, as GenBank does) intergenic features are added.
    """
    table = read_annotation(path, feature_type, types)
    table = FeatureTable.concat([table, derive_introns(table, from_cds=annotation_format(path) in ("gff3", "gtf"))])
    sizes = dict(table.sizes)
    sizes.update(chrom_sizes or {})
    if sizes:
        table = FeatureTable.concat([table, derive_intergenic(table, sizes)])
    return table
