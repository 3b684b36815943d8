"""Annotation loaders that all return one feature table.

Whatever the source (BED, GFF3, GTF, GenBank, soft-masked FASTA), features end up
as rows of `FeatureTable`: chrom, start, end (0-based half-open), strand, type, id,
parent, gene, and phase (CDS reading frame offset, -1 when not a contiguous
coding piece). Canonical type names: gene, mRNA (also for `transcript`), exon,
CDS, five_prime_UTR, three_prime_UTR, plus what we derive: intron, intergenic,
promoter, repeat.

Choices, so that the formats agree on the same genes:
- GFF3/GTF `CDS` rows are one per line (one coding piece, with its phase). A
  GFF3 feature with several parents (`Parent=t1,t2`) becomes one row per parent.
- GenBank `CDS` rows span the whole location (start..end, as the record lists
  one CDS); a compound (join) location also gives one `CDS_part` row per piece
  with its phase, and the spanning row gets phase -1. A GenBank mRNA gives an
  mRNA row and one `exon` row per piece. GenBank locations are 0-based
  half-open already in Biopython.
- BED12 rows are transcripts (type = the label): blocks become `exon` rows,
  blocks clipped to thickStart..thickEnd become `CDS` rows.
- Introns are the gaps between a transcript's exons; GFF3/GTF transcripts listed
  with CDS lines only (e.g. U. maydis) take the gaps between their CDS pieces.
  GenBank CDS joins (ribosomal slippage in bacteria) are not introns.
- Intergenic = gaps between merged genes (mRNA when a file has no genes) on
  chromosomes that have at least one gene.
- GTF `CDS` excludes the stop codon by that format's convention; coordinates
  are kept as written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence
from urllib.parse import unquote

import numpy as np

from dnahnet.data.intervals import merge_arrays as merge_intervals  # one merge rule for lists and arrays
from dnahnet.errors import DnahnetInputError
from dnahnet.io.bed import read_bed
from dnahnet.io.chrom_names import reconcile_chrom_names  # noqa: F401  (re-exported: analysis API)
from dnahnet.io.text import open_text

PathLike = str | os.PathLike
Intervals = Mapping[str, Sequence[tuple[int, int]]]

GFF_TYPES = frozenset({"gene", "mRNA", "exon", "CDS", "five_prime_UTR", "three_prime_UTR"})
GENBANK_TYPES = frozenset({"gene", "mRNA", "CDS", "tRNA", "rRNA", "repeat_region"})
_TYPE_ALIASES = {
    "gene": "gene",
    "mrna": "mRNA",
    "transcript": "mRNA",
    "exon": "exon",
    "cds": "CDS",
    "five_prime_utr": "five_prime_UTR",
    "5utr": "five_prime_UTR",
    "three_prime_utr": "three_prime_UTR",
    "3utr": "three_prime_UTR",
}
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
_EXTENSIONS = {
    ".bed": "bed",
    ".gff": "gff3",
    ".gff3": "gff3",
    ".gtf": "gtf",
    ".gb": "genbank",
    ".gbk": "genbank",
    ".gbff": "genbank",
    ".genbank": "genbank",
}
_COLUMNS = ("chrom", "start", "end", "strand", "type", "id", "parent", "gene", "phase")


@dataclass
class FeatureTable:
    """Features as parallel numpy arrays (one row per feature)."""

    chrom: np.ndarray  # object (str)
    start: np.ndarray  # int64, 0-based
    end: np.ndarray  # int64, exclusive
    strand: np.ndarray  # object: "+", "-" or "."
    type: np.ndarray  # object (str)
    id: np.ndarray  # object (str)
    parent: np.ndarray  # object (str): transcript of an exon/CDS/intron, gene of an mRNA
    gene: np.ndarray  # object (str)
    phase: np.ndarray  # int8: CDS phase 0/1/2, -1 otherwise
    topology: dict[str, str] = field(default_factory=dict)  # chrom -> "circular"/"linear" (GenBank)
    sizes: dict[str, int] = field(default_factory=dict)  # chrom -> length, when the file says (GenBank)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple], topology: dict | None = None, sizes: dict | None = None) -> "FeatureTable":
        """Build from (chrom, start, end, strand, type, id, parent, gene, phase) tuples."""
        cols = list(zip(*rows)) if rows else [()] * len(_COLUMNS)
        obj = [np.array(c, dtype=object) for c in cols]
        return cls(
            chrom=obj[0],
            start=np.array(cols[1], dtype=np.int64),
            end=np.array(cols[2], dtype=np.int64),
            strand=obj[3],
            type=obj[4],
            id=obj[5],
            parent=obj[6],
            gene=obj[7],
            phase=np.array(cols[8], dtype=np.int8),
            topology=dict(topology or {}),
            sizes=dict(sizes or {}),
        )

    @classmethod
    def concat(cls, tables: Iterable["FeatureTable"]) -> "FeatureTable":
        tables = list(tables)
        if not tables:
            return cls.from_rows([])
        merged = {name: np.concatenate([getattr(t, name) for t in tables]) for name in _COLUMNS}
        topology: dict[str, str] = {}
        sizes: dict[str, int] = {}
        for t in tables:
            topology.update(t.topology)
            sizes.update(t.sizes)
        return cls(**merged, topology=topology, sizes=sizes)

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def subset(self, mask: np.ndarray) -> "FeatureTable":
        return FeatureTable(
            **{name: getattr(self, name)[mask] for name in _COLUMNS}, topology=dict(self.topology), sizes=dict(self.sizes)
        )

    def of_type(self, *types: str) -> "FeatureTable":
        return self.subset(np.isin(self.type, list(types)))

    def types(self) -> list[str]:
        """Type names in first-seen order."""
        return list(dict.fromkeys(self.type.tolist()))

    def rename_chroms(self, mapping: Mapping[str, str]) -> "FeatureTable":
        """Rename chromosomes by `mapping`, dropping features on chromosomes it lacks."""
        keep = np.array([c in mapping for c in self.chrom.tolist()], dtype=bool)
        out = self.subset(keep)
        out.chrom = np.array([mapping[c] for c in out.chrom.tolist()], dtype=object)
        out.topology = {mapping[c]: v for c, v in self.topology.items() if c in mapping}
        out.sizes = {mapping[c]: v for c, v in self.sizes.items() if c in mapping}
        return out


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


def _canonical_type(type_name: str) -> str:
    return _TYPE_ALIASES.get(type_name.lower(), type_name)


def _format_of(path: PathLike) -> str:
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = _EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        known = ", ".join(sorted(_EXTENSIONS))
        raise DnahnetInputError(f"unknown annotation format; expected one of {known} (optionally .gz)", file=str(path))
    return fmt


# ---------------------------------------------------------------- GFF3 / GTF


def _gff_lines(path: PathLike) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, 9 columns) for every feature line, checking the column count."""
    try:
        with open_text(path) as handle:
            for lineno, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if line.startswith("##FASTA"):
                    return
                if not line.strip() or line.startswith("#"):
                    continue
                cols = line.split("\t")
                if len(cols) != 9:
                    raise DnahnetInputError(
                        f"expected 9 tab-separated columns, found {len(cols)}", file=str(path), record=f"line {lineno}"
                    )
                yield lineno, cols
    except UnicodeDecodeError:
        raise DnahnetInputError("not a UTF-8 text file", file=str(path)) from None
    except (OSError, EOFError) as exc:
        raise DnahnetInputError(f"cannot read file ({exc})", file=str(path)) from None


def _gff_common(cols: list[str], path: PathLike, lineno: int) -> tuple[str, int, int, str, int]:
    """Check and convert seqid, start, end (1-based closed -> 0-based half-open), strand, phase."""
    def fail(message: str) -> DnahnetInputError:
        return DnahnetInputError(message, file=str(path), record=f"line {lineno}")

    try:
        start, end = int(cols[3]), int(cols[4])
    except ValueError:
        raise fail(f"start/end {cols[3]!r}/{cols[4]!r} are not integers") from None
    if start < 1 or end < start:
        raise fail(f"invalid coordinates {start}..{end} (1-based, end >= start)")
    strand = {"+": "+", "-": "-", ".": ".", "?": "."}.get(cols[6])
    if strand is None:
        raise fail(f"strand {cols[6]!r} is not +, -, . or ?")
    if cols[7] not in (".", "0", "1", "2"):
        raise fail(f"phase {cols[7]!r} is not ., 0, 1 or 2")
    phase = -1 if cols[7] == "." else int(cols[7])
    return unquote(cols[0]), start - 1, end, strand, phase


def _gff3_attributes(text: str, path: PathLike, lineno: int) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if text in (".", ""):
        return attrs
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            hint = " (this looks like GTF; name the file .gtf)" if '"' in part else ""
            raise DnahnetInputError(f"attribute {part!r} is not tag=value{hint}", file=str(path), record=f"line {lineno}")
        attrs[key] = value
    return attrs


def read_gff3(path: PathLike, types: Iterable[str] | None = None) -> FeatureTable:
    """Load a GFF3 file (plain or .gz); keep `types` (canonical names, default GFF_TYPES)."""
    keep = frozenset(types) if types is not None else GFF_TYPES
    rows: list[list] = []
    gene_of: dict[str, str] = {}
    for lineno, cols in _gff_lines(path):
        chrom, start, end, strand, phase = _gff_common(cols, path, lineno)
        attrs = _gff3_attributes(cols[8], path, lineno)
        ftype = _canonical_type(cols[2])
        fid = unquote(attrs.get("ID", ""))
        parents = [unquote(p) for p in attrs.get("Parent", "").split(",") if p] or [""]
        if fid and parents[0] and ftype not in ("exon", "CDS", "five_prime_UTR", "three_prime_UTR"):
            gene_of.setdefault(fid, parents[0])  # transcript -> gene, for the exons and CDS below it
        if ftype not in keep:
            continue
        for parent in parents:
            gene = fid if ftype == "gene" else (parent if ftype == "mRNA" else "")
            rows.append([chrom, start, end, strand, ftype, fid, parent, gene, phase])
    for row in rows:
        if not row[7]:
            row[7] = gene_of.get(row[6], "")
    table = FeatureTable.from_rows([tuple(r) for r in rows])
    return FeatureTable.concat([table, derive_introns(table, from_cds=True)])


def _gtf_attributes(text: str, path: PathLike, lineno: int) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition(" ")
        if not sep or part.count('"') % 2:
            hint = " (this looks like GFF3; name the file .gff3)" if "=" in part else ""
            raise DnahnetInputError(f'attribute {part!r} is not key "value"{hint}', file=str(path), record=f"line {lineno}")
        attrs.setdefault(key, value.strip().strip('"'))
    return attrs


def read_gtf(path: PathLike, types: Iterable[str] | None = None) -> FeatureTable:
    """Load a GTF file (plain or .gz); `transcript` rows become `mRNA`."""
    keep = frozenset(types) if types is not None else GFF_TYPES
    rows = []
    for lineno, cols in _gff_lines(path):
        chrom, start, end, strand, phase = _gff_common(cols, path, lineno)
        attrs = _gtf_attributes(cols[8], path, lineno)
        ftype = _canonical_type(cols[2])
        if ftype not in keep:
            continue
        gene_id, transcript_id = attrs.get("gene_id", ""), attrs.get("transcript_id", "")
        if ftype == "gene":
            fid, parent = gene_id, ""
        elif ftype == "mRNA":
            fid, parent = transcript_id, gene_id
        else:
            fid, parent = attrs.get({"exon": "exon_id", "CDS": "protein_id"}.get(ftype, ""), ""), transcript_id
        rows.append((chrom, start, end, strand, ftype, fid, parent, gene_id, phase))
    table = FeatureTable.from_rows(rows)
    return FeatureTable.concat([table, derive_introns(table, from_cds=True)])


# ---------------------------------------------------------------- GenBank


def _piece_phases(lengths: Sequence[int], first_phase: int) -> list[int]:
    """Phase of each coding piece in transcript order (GFF3 rule)."""
    phases = [first_phase]
    for length in lengths[:-1]:
        phases.append((3 - ((length - phases[-1]) % 3)) % 3)
    return phases


def genbank_qualifier(feature, *names: str) -> str:
    """The first value of the first of `names` the GenBank feature carries ('' if none)."""
    for name in names:
        values = feature.qualifiers.get(name)
        if values:
            return str(values[0])
    return ""


def _record_name(record) -> str:
    """Chromosome name of a GenBank record: its accession.version, else its LOCUS name."""
    return record.id if record.id and record.id != "<unknown id>" else record.name


def _genbank_rows(record, keep: frozenset[str]) -> list[tuple]:
    chrom = _record_name(record)
    rows = []
    for n, feat in enumerate(record.features):
        if feat.type not in keep or feat.location is None:
            continue
        loc = feat.location
        strand = {1: "+", -1: "-"}.get(loc.strand, ".")
        locus = genbank_qualifier(feat, "locus_tag", "gene")
        fid = genbank_qualifier(feat, "locus_tag", "gene", "protein_id") or f"{feat.type}:{chrom}:{n}"
        parent = "" if feat.type == "gene" else locus
        parts = list(loc.parts)
        phase = -1
        if feat.type == "CDS":
            codon_start = genbank_qualifier(feat, "codon_start") or "1"
            first = int(codon_start) - 1 if codon_start in ("1", "2", "3") else 0
            phase = first if len(parts) == 1 else -1
            if len(parts) > 1:
                phases = _piece_phases([len(p) for p in parts], first)
                rows += [(chrom, int(p.start), int(p.end), strand, "CDS_part", f"{fid}.{i + 1}", fid, locus, ph)
                         for i, (p, ph) in enumerate(zip(parts, phases))]
        if feat.type == "mRNA":
            rows += [(chrom, int(p.start), int(p.end), strand, "exon", f"{fid}.exon{i + 1}", fid, locus, -1)
                     for i, p in enumerate(parts)]
        rows.append((chrom, int(loc.start), int(loc.end), strand, feat.type, fid, parent, locus, phase))
    return rows


def read_genbank(path: PathLike, types: Iterable[str] | None = None) -> FeatureTable:
    """Load GenBank records (plain or .gz) with Biopython; chrom = record id (accession.version)."""
    from Bio import SeqIO

    keep = frozenset(types) if types is not None else GENBANK_TYPES
    rows: list[tuple] = []
    topology: dict[str, str] = {}
    sizes: dict[str, int] = {}
    index = 0
    try:
        with open_text(path) as handle:
            for index, record in enumerate(SeqIO.parse(handle, "genbank"), start=1):
                chrom = _record_name(record)
                topology[chrom] = record.annotations.get("topology", "linear")
                sizes[chrom] = len(record)
                rows += _genbank_rows(record, keep)
    except UnicodeDecodeError:
        raise DnahnetInputError("not a UTF-8 text file", file=str(path)) from None
    except (ValueError, AssertionError) as exc:
        raise DnahnetInputError(f"not valid GenBank ({exc})", file=str(path), record=str(index + 1)) from None
    except (OSError, EOFError) as exc:
        raise DnahnetInputError(f"cannot read file ({exc})", file=str(path)) from None
    if not sizes:
        raise DnahnetInputError("no GenBank records found", file=str(path))
    table = FeatureTable.from_rows(rows, topology=topology, sizes=sizes)
    return FeatureTable.concat([table, derive_introns(table, from_cds=False)])


# ---------------------------------------------------------------- BED


def bed_label(path: PathLike) -> str:
    """Feature type for a BED file: its name up to the first dot (RefSeqExon.chr22.bed -> RefSeqExon)."""
    return Path(path).name.split(".")[0]


def read_bed_features(path: PathLike, feature_type: str | None = None) -> FeatureTable:
    """Load BED3–BED12 as features of one type (`feature_type`, else the file's label).

    BED12 rows are transcripts: their blocks become `exon` rows and the blocks
    clipped to thickStart..thickEnd become `CDS` rows (with phases).
    """
    label = feature_type or bed_label(path)
    rows: list[tuple] = []
    for rec in read_bed(path):
        name = "" if rec.name == "." else rec.name
        rows.append((rec.chrom, rec.start, rec.end, rec.strand, label, name, "", "", -1))
        if rec.blocks:
            rows += _bed12_parts(rec, name)
    table = FeatureTable.from_rows(rows)
    return FeatureTable.concat([table, derive_introns(table, from_cds=False)])


def _bed12_parts(rec, name: str) -> list[tuple]:
    rows = [(rec.chrom, s, e, rec.strand, "exon", "", name, "", -1) for s, e in rec.blocks]
    coding = [(max(s, rec.thick_start), min(e, rec.thick_end)) for s, e in rec.blocks]
    coding = [(s, e) for s, e in coding if s < e]
    if rec.strand == "-":
        coding = coding[::-1]
    phases = _piece_phases([e - s for s, e in coding], 0) if coding else []
    rows += [(rec.chrom, s, e, rec.strand, "CDS", "", name, "", ph) for (s, e), ph in zip(coding, phases)]
    return rows


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


# ---------------------------------------------------------------- dispatch (chromosome names: dnahnet.io.chrom_names)


def load_annotation(
    path: PathLike,
    feature_type: str | None = None,
    chrom_sizes: Mapping[str, int] | None = None,
    types: Iterable[str] | None = None,
) -> FeatureTable:
    """Load BED, GFF3, GTF or GenBank (by extension, optionally .gz) into a FeatureTable.

    `feature_type` names the type of BED features (default: the file's label);
    `types` restricts GFF3/GTF/GenBank types; with `chrom_sizes` (or sizes the
    file itself gives, as GenBank does) intergenic features are added.
    """
    path = Path(path)
    if not path.is_file():
        raise DnahnetInputError("annotation file not found", file=str(path))
    fmt = _format_of(path)
    if fmt == "bed":
        table = read_bed_features(path, feature_type)
    elif fmt == "gff3":
        table = read_gff3(path, types)
    elif fmt == "gtf":
        table = read_gtf(path, types)
    else:
        table = read_genbank(path, types)
    sizes = dict(table.sizes)
    sizes.update(chrom_sizes or {})
    if sizes:
        table = FeatureTable.concat([table, derive_intergenic(table, sizes)])
    return table
