"""Annotation files (GFF3, GTF, GenBank, BED3-BED12) read into one feature table.

Rows of `FeatureTable`: chrom, start, end (0-based half-open), strand, type, id,
parent, gene, and phase (CDS reading frame offset, -1 when not a contiguous
coding piece). Canonical type names: gene, mRNA (also for `transcript`), exon,
CDS, five_prime_UTR, three_prime_UTR. Only what the file says is read here;
derived features (introns, intergenic gaps, promoters, codon sites, repeats)
are `dnahnet.analysis.annotations`.

Choices, so that the formats agree on the same genes:
- GFF3/GTF `CDS` rows are one per line (one coding piece, with its phase). A
  GFF3 feature with several parents (`Parent=t1,t2`) becomes one row per parent.
- GenBank `CDS` rows span the whole location (start..end, as the record lists
  one CDS); a compound (join) location also gives one `CDS_part` row per piece
  with its phase, and the spanning row gets phase -1. A GenBank mRNA gives an
  mRNA row and one `exon` row per piece. GenBank locations are 0-based
  half-open already in Biopython; the file is parsed once (`dnahnet.io.genbank`).
- BED12 rows are transcripts (type = the label): blocks become `exon` rows,
  blocks clipped to thickStart..thickEnd become `CDS` rows.
- GTF `CDS` excludes the stop codon by that format's convention; coordinates
  are kept as written.
Chromosome names are kept as written; `FeatureTable.on_genome` maps them onto a
genome's names with the one rule set of `dnahnet.io.chrom_names`. A bad line is
one `DnahnetInputError` naming the file and `line N`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence
from urllib.parse import unquote

import numpy as np

from dnahnet.errors import DnahnetInputError
from dnahnet.io.bed import read_bed
from dnahnet.io.chrom_names import reconcile_chrom_names
from dnahnet.io.genbank import GENBANK_SUFFIXES, qualifier, read_genbank
from dnahnet.io.text import open_text

PathLike = str | os.PathLike

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
ANNOTATION_FORMATS = {".bed": "bed", ".gff": "gff3", ".gff3": "gff3", ".gtf": "gtf",
                      **{suffix: "genbank" for suffix in GENBANK_SUFFIXES}}
COLUMNS = ("chrom", "start", "end", "strand", "type", "id", "parent", "gene", "phase")


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
        cols = list(zip(*rows)) if rows else [()] * len(COLUMNS)
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
        merged = {name: np.concatenate([getattr(t, name) for t in tables]) for name in COLUMNS}
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
            **{name: getattr(self, name)[mask] for name in COLUMNS}, topology=dict(self.topology), sizes=dict(self.sizes)
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

    def on_genome(self, genome_names: Iterable[str], *, file: str | None = None) -> tuple["FeatureTable", dict]:
        """The features on the genome's chromosome names (chr22↔22, chrM↔MT, NC_1.1↔NC_1), and the renaming report."""
        mapping, report = reconcile_chrom_names(dict.fromkeys(self.chrom.tolist()), genome_names, file=file)
        return self.rename_chroms(mapping), report


def canonical_type(type_name: str) -> str:
    """gene, mRNA (for transcript), exon, CDS, five/three_prime_UTR whatever the spelling; others as given."""
    return _TYPE_ALIASES.get(type_name.lower(), type_name)


def annotation_format(path: PathLike) -> str:
    """'bed', 'gff3', 'gtf' or 'genbank' by file name (optionally .gz)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = ANNOTATION_FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        known = ", ".join(sorted(ANNOTATION_FORMATS))
        raise DnahnetInputError(f"unknown annotation format; expected one of {known} (optionally .gz)", file=str(path))
    return fmt


def piece_phases(lengths: Sequence[int], first_phase: int) -> list[int]:
    """Phase of each coding piece in transcript order (GFF3 rule)."""
    phases = [first_phase]
    for length in lengths[:-1]:
        phases.append((3 - ((length - phases[-1]) % 3)) % 3)
    return phases


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
    """Features of a GFF3 file (plain or .gz) of `types` (canonical names, default GFF_TYPES)."""
    keep = frozenset(types) if types is not None else GFF_TYPES
    rows: list[list] = []
    gene_of: dict[str, str] = {}
    for lineno, cols in _gff_lines(path):
        chrom, start, end, strand, phase = _gff_common(cols, path, lineno)
        attrs = _gff3_attributes(cols[8], path, lineno)
        ftype = canonical_type(cols[2])
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
    return FeatureTable.from_rows([tuple(r) for r in rows])


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
    """Features of a GTF file (plain or .gz); `transcript` rows become `mRNA`."""
    keep = frozenset(types) if types is not None else GFF_TYPES
    rows = []
    for lineno, cols in _gff_lines(path):
        chrom, start, end, strand, phase = _gff_common(cols, path, lineno)
        attrs = _gtf_attributes(cols[8], path, lineno)
        ftype = canonical_type(cols[2])
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
    return FeatureTable.from_rows(rows)


# ---------------------------------------------------------------- GenBank


def _genbank_rows(chrom: str, features: Sequence, keep: frozenset[str]) -> list[tuple]:
    rows = []
    for n, feat in enumerate(features):
        if feat.type not in keep or feat.location is None:
            continue
        loc = feat.location
        strand = {1: "+", -1: "-"}.get(loc.strand, ".")
        locus = qualifier(feat, "locus_tag", "gene")
        fid = qualifier(feat, "locus_tag", "gene", "protein_id") or f"{feat.type}:{chrom}:{n}"
        parent = "" if feat.type == "gene" else locus
        parts = list(loc.parts)
        phase = -1
        if feat.type == "CDS":
            codon_start = qualifier(feat, "codon_start") or "1"
            first = int(codon_start) - 1 if codon_start in ("1", "2", "3") else 0
            phase = first if len(parts) == 1 else -1
            if len(parts) > 1:
                phases = piece_phases([len(p) for p in parts], first)
                rows += [(chrom, int(p.start), int(p.end), strand, "CDS_part", f"{fid}.{i + 1}", fid, locus, ph)
                         for i, (p, ph) in enumerate(zip(parts, phases))]
        if feat.type == "mRNA":
            rows += [(chrom, int(p.start), int(p.end), strand, "exon", f"{fid}.exon{i + 1}", fid, locus, -1)
                     for i, p in enumerate(parts)]
        rows.append((chrom, int(loc.start), int(loc.end), strand, feat.type, fid, parent, locus, phase))
    return rows


def read_genbank_features(path: PathLike, types: Iterable[str] | None = None) -> FeatureTable:
    """Features of a GenBank file (plain or .gz), with each record's size and topology; chrom = accession.version."""
    keep = frozenset(types) if types is not None else GENBANK_TYPES
    rows: list[tuple] = []
    gb = read_genbank(path)
    for rec in gb.records:
        rows += _genbank_rows(rec.name, rec.features, keep)
    return FeatureTable.from_rows(rows, topology={r.name: r.topology for r in gb.records},
                                  sizes={r.name: r.length for r in gb.records})


# ---------------------------------------------------------------- BED


def bed_label(path: PathLike) -> str:
    """Feature type for a BED file: its name up to the first dot (RefSeqExon.chr22.bed -> RefSeqExon)."""
    return Path(path).name.split(".")[0]


def read_bed_features(path: PathLike, feature_type: str | None = None) -> FeatureTable:
    """BED3–BED12 as features of one type (`feature_type`, else the file's label).

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
    return FeatureTable.from_rows(rows)


def _bed12_parts(rec, name: str) -> list[tuple]:
    rows = [(rec.chrom, s, e, rec.strand, "exon", "", name, "", -1) for s, e in rec.blocks]
    coding = [(max(s, rec.thick_start), min(e, rec.thick_end)) for s, e in rec.blocks]
    coding = [(s, e) for s, e in coding if s < e]
    if rec.strand == "-":
        coding = coding[::-1]
    phases = piece_phases([e - s for s, e in coding], 0) if coding else []
    rows += [(rec.chrom, s, e, rec.strand, "CDS", "", name, "", ph) for (s, e), ph in zip(coding, phases)]
    return rows


# ---------------------------------------------------------------- dispatch


def read_annotation(path: PathLike, feature_type: str | None = None, types: Iterable[str] | None = None) -> FeatureTable:
    """BED, GFF3, GTF or GenBank (by extension, optionally .gz) as written in the file.

    `feature_type` names the type of BED features (default: the file's label);
    `types` restricts GFF3/GTF/GenBank types.
    """
    path = Path(path)
    if not path.is_file():
        raise DnahnetInputError("annotation file not found", file=str(path))
    fmt = annotation_format(path)
    if fmt == "bed":
        return read_bed_features(path, feature_type)
    if fmt == "gff3":
        return read_gff3(path, types)
    if fmt == "gtf":
        return read_gtf(path, types)
    return read_genbank_features(path, types)
