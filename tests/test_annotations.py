"""Annotation loaders: four formats agree on one gene set; real files load with the documented counts."""

from __future__ import annotations

import collections

import numpy as np
import pysam
import pytest

from dnahnet.alphabet import reverse_complement
from dnahnet.analysis.annotations import (
    derive_codon_sites,
    derive_intergenic,
    derive_promoters,
    feature_role,
    load_annotation,
    softmask_repeats,
)
from dnahnet.errors import DnahnetInputError
from dnahnet.io.annotations import FeatureTable, bed_label
from dnahnet.io.chrom_names import reconcile_chrom_names

# Two spliced transcripts on chrA (one per strand) and one single-exon gene on chrB, 0-based half-open.
GENES = [
    # id, chrom, strand, exons (genome order), CDS extent
    ("gene1", "chrA", "+", [(100, 200), (300, 450), (500, 600)], (150, 560)),
    ("gene2", "chrA", "-", [(1000, 1100), (1200, 1400), (1700, 1800)], (1050, 1750)),
    ("gene3", "chrB", "+", [(10, 310)], (10, 310)),
]
SIZES = {"chrA": 2000, "chrB": 400}
# CDS pieces with their GFF3 phase, worked out by hand (transcript order: the 5' piece has phase 0).
CODING = {
    ("chrA", 150, 200, "+", 0), ("chrA", 300, 450, "+", 1), ("chrA", 500, 560, "+", 1),
    ("chrA", 1700, 1750, "-", 0), ("chrA", 1200, 1400, "-", 1), ("chrA", 1050, 1100, "-", 2),
    ("chrB", 10, 310, "+", 0),
}
INTRONS = {("chrA", 200, 300, "+"), ("chrA", 450, 500, "+"), ("chrA", 1100, 1200, "-"), ("chrA", 1400, 1700, "-")}


def _cds_pieces(exons, cds, strand):
    pieces = [(max(s, cds[0]), min(e, cds[1])) for s, e in exons]
    pieces = [(s, e) for s, e in pieces if s < e]
    return pieces[::-1] if strand == "-" else pieces


def _phases(pieces):
    phases = [0]
    for s, e in pieces[:-1]:
        phases.append((3 - ((e - s - phases[-1]) % 3)) % 3)
    return phases


def write_gff3(path):
    lines = ["##gff-version 3"]
    for gid, chrom, strand, exons, cds in GENES:
        tid = gid.replace("gene", "tx")
        span = (exons[0][0] + 1, exons[-1][1])
        lines.append(f"{chrom}\ttest\tgene\t{span[0]}\t{span[1]}\t.\t{strand}\t.\tID={gid};Name={gid}")
        lines.append(f"{chrom}\ttest\tmRNA\t{span[0]}\t{span[1]}\t.\t{strand}\t.\tID={tid};Parent={gid}")
        lines += [f"{chrom}\ttest\texon\t{s + 1}\t{e}\t.\t{strand}\t.\tParent={tid}" for s, e in exons]
        pieces = _cds_pieces(exons, cds, strand)
        lines += [f"{chrom}\ttest\tCDS\t{s + 1}\t{e}\t.\t{strand}\t{ph}\tID=cds-{tid};Parent={tid}"
                  for (s, e), ph in zip(pieces, _phases(pieces))]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_gtf(path):
    lines = []
    for gid, chrom, strand, exons, cds in GENES:
        tid = gid.replace("gene", "tx")
        span = (exons[0][0] + 1, exons[-1][1])
        ids = f'gene_id "{gid}"; transcript_id "{tid}";'
        lines.append(f'{chrom}\ttest\tgene\t{span[0]}\t{span[1]}\t.\t{strand}\t.\tgene_id "{gid}";')
        lines.append(f"{chrom}\ttest\ttranscript\t{span[0]}\t{span[1]}\t.\t{strand}\t.\t{ids}")
        lines += [f"{chrom}\ttest\texon\t{s + 1}\t{e}\t.\t{strand}\t.\t{ids} exon_number {i + 1};"
                  for i, (s, e) in enumerate(exons)]
        pieces = _cds_pieces(exons, cds, strand)
        lines += [f"{chrom}\ttest\tCDS\t{s + 1}\t{e}\t.\t{strand}\t{ph}\t{ids}" for (s, e), ph in zip(pieces, _phases(pieces))]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_bed12(path):
    lines = []
    for gid, chrom, strand, exons, cds in GENES:
        start, end = exons[0][0], exons[-1][1]
        sizes = ",".join(str(e - s) for s, e in exons)
        starts = ",".join(str(s - start) for s, e in exons)
        lines.append(f"{chrom}\t{start}\t{end}\t{gid.replace('gene', 'tx')}\t0\t{strand}\t{cds[0]}\t{cds[1]}\t0\t{len(exons)}\t{sizes},\t{starts},")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_genbank(path):
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqFeature import CompoundLocation, FeatureLocation, SeqFeature
    from Bio.SeqRecord import SeqRecord

    rng = np.random.default_rng(0)
    records = {}
    for chrom, size in SIZES.items():
        seq = "".join(rng.choice(list("ACGT"), size))
        records[chrom] = SeqRecord(Seq(seq), id=chrom, name=chrom, description="test",
                                   annotations={"molecule_type": "DNA", "topology": "circular" if chrom == "chrB" else "linear"})

    def location(parts, strand):
        locs = [FeatureLocation(s, e, strand=1 if strand == "+" else -1) for s, e in parts]
        locs = locs[::-1] if strand == "-" else locs
        return locs[0] if len(locs) == 1 else CompoundLocation(locs)

    for gid, chrom, strand, exons, cds in GENES:
        tag = {"locus_tag": [gid]}
        features = records[chrom].features
        features.append(SeqFeature(location([(exons[0][0], exons[-1][1])], strand), type="gene", qualifiers=tag))
        features.append(SeqFeature(location(exons, strand), type="mRNA", qualifiers=tag))
        pieces = sorted(_cds_pieces(exons, cds, strand))
        features.append(SeqFeature(location(pieces, strand), type="CDS", qualifiers={**tag, "codon_start": ["1"]}))
    SeqIO.write(list(records.values()), path, "genbank")
    return path


def spans(table: FeatureTable, *types: str, phase: bool = False) -> set:
    t = table.of_type(*types)
    cols = [t.chrom, t.start, t.end, t.strand] + ([t.phase] if phase else [])
    return set(zip(*(c.tolist() for c in cols)))


@pytest.fixture
def four_formats(tmp_path):
    return {
        "gff3": load_annotation(write_gff3(tmp_path / "genes.gff3")),
        "gtf": load_annotation(write_gtf(tmp_path / "genes.gtf")),
        "bed": load_annotation(write_bed12(tmp_path / "genes.bed"), feature_type="mRNA"),
        "genbank": load_annotation(write_genbank(tmp_path / "genes.gbk")),
    }


def test_gff3_gtf_bed12_genbank_agree_on_exons_introns_and_coding_frames(four_formats):
    exons = {(c, s, e, st) for _, c, st, ex, _ in GENES for s, e in ex}
    mrna = {(c, ex[0][0], ex[-1][1], st) for _, c, st, ex, _ in GENES}
    for name, table in four_formats.items():
        assert spans(table, "exon") == exons, name
        assert spans(table, "intron") == INTRONS, name
        assert spans(table, "mRNA") == mrna, name
        coding = spans(table, "CDS", phase=True) | spans(table, "CDS_part", phase=True)
        assert {c for c in coding if c[4] >= 0} == CODING, name
    for name in ("gff3", "gtf", "genbank"):
        assert spans(four_formats[name], "gene") == mrna, name


def test_parents_link_exons_and_cds_to_transcripts_and_genes(four_formats):
    gff = four_formats["gff3"]
    exon = gff.of_type("exon")
    assert collections.Counter(exon.parent.tolist()) == {"tx1": 3, "tx2": 3, "tx3": 1}
    assert set(exon.gene.tolist()) == {"gene1", "gene2", "gene3"}
    gtf = four_formats["gtf"].of_type("CDS")
    assert set(zip(gtf.parent.tolist(), gtf.gene.tolist())) == {("tx1", "gene1"), ("tx2", "gene2"), ("tx3", "gene3")}
    introns = gff.of_type("intron")
    assert sorted(introns.id.tolist()) == ["tx1.intron1", "tx1.intron2", "tx2.intron1", "tx2.intron2"]


def test_genbank_keeps_topology_sizes_and_join_parts(four_formats):
    gb = four_formats["genbank"]
    assert gb.topology == {"chrA": "linear", "chrB": "circular"} and gb.sizes == SIZES
    spanning = gb.subset((gb.type == "CDS") & (gb.phase < 0))
    assert spans(spanning, "CDS") == {("chrA", 150, 560, "+"), ("chrA", 1050, 1750, "-")}
    assert len(gb.of_type("CDS_part")) == 6 and set(gb.of_type("CDS_part").parent.tolist()) == {"gene1", "gene2"}
    # sizes come with GenBank, so intergenic gaps are derived without being asked
    assert spans(gb, "intergenic") == {("chrA", 0, 100, "."), ("chrA", 600, 1000, "."), ("chrA", 1800, 2000, "."),
                                       ("chrB", 0, 10, "."), ("chrB", 310, 400, ".")}


def test_derived_promoters_codons_and_intergenic(four_formats):
    gff = four_formats["gff3"]
    assert spans(derive_promoters(gff, 100, SIZES), "promoter") == {
        ("chrA", 0, 100, "+"), ("chrA", 1800, 1900, "-"), ("chrB", 0, 10, "+")}
    codons = derive_codon_sites(gff)
    assert spans(codons, "start_codon") == {("chrA", 150, 153, "+"), ("chrA", 1747, 1750, "-"), ("chrB", 10, 13, "+")}
    assert spans(codons, "stop_codon") == {("chrA", 557, 560, "+"), ("chrA", 1050, 1053, "-"), ("chrB", 307, 310, "+")}
    assert spans(derive_intergenic(gff, {"chrA": 2000}), "intergenic") == {
        ("chrA", 0, 100, "."), ("chrA", 600, 1000, "."), ("chrA", 1800, 2000, ".")}


@pytest.mark.parametrize(
    "line, message",
    [
        ("chrA\tt\tgene\t10\tx\t.\t+\t.\tID=g9", "start/end '10'/'x' are not integers"),
        ("chrA\tt\tgene\t10\t20\t.\t+\t.", "expected 9 tab-separated columns, found 8"),
        ("chrA\tt\tgene\t30\t20\t.\t+\t.\tID=g9", "invalid coordinates 30..20"),
        ('chrA\tt\tgene\t10\t20\t.\t+\t.\tgene_id "g9";', "is not tag=value (this looks like GTF"),
        ("chrA\tt\tCDS\t10\t20\t.\t+\t5\tParent=tx1", "phase '5'"),
    ],
)
def test_unparsable_gff3_line_names_file_and_line(tmp_path, line, message):
    good = write_gff3(tmp_path / "ok.gff3").read_text().splitlines()
    path = tmp_path / "bad.gff3"
    path.write_text("\n".join(good[:3] + [line] + good[3:]) + "\n")
    with pytest.raises(DnahnetInputError) as err:
        load_annotation(path)
    assert str(path) in str(err.value) and "line 4" in str(err.value) and message in str(err.value)


def test_unparsable_gtf_line_names_file_and_line(tmp_path):
    good = write_gtf(tmp_path / "ok.gtf").read_text().splitlines()
    path = tmp_path / "bad.gtf.gz"
    import gzip

    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(good[:5] + ["chrA\tt\texon\t1\t5\t.\t+\t.\tgene_id=g1;transcript_id=tx1"]) + "\n")
    with pytest.raises(DnahnetInputError, match=r"bad\.gtf\.gz, record line 6: .*looks like GFF3"):
        load_annotation(path)


def test_unknown_extension_and_missing_file_are_input_errors(tmp_path):
    (tmp_path / "genes.txt").write_text("x\n")
    with pytest.raises(DnahnetInputError, match="unknown annotation format"):
        load_annotation(tmp_path / "genes.txt")
    with pytest.raises(DnahnetInputError, match="not found"):
        load_annotation(tmp_path / "absent.gff3")


def test_bed_type_comes_from_label_or_file_stem(tmp_path):
    path = tmp_path / "RefSeqTSS.chr22.bed"
    path.write_text("chr22\t10\t11\tRefSeqTSS\t0\t+\nchr22\t50\t51\tRefSeqTSS\t0\t-\n")
    assert bed_label(path) == "RefSeqTSS" and load_annotation(path).types() == ["RefSeqTSS"]
    assert load_annotation(path, feature_type="TSS").types() == ["TSS"]
    assert [feature_role(t) for t in ("RefSeqTSS", "RefSeqGene", "exon", "intergenic", "CDS_part", "CpGIsland")] == [
        "tss", "gene", "exon", "intergenic", None, None]


def test_reconcile_chr22_with_22_and_chrM_with_MT():
    mapping, report = reconcile_chrom_names(["chr22", "chrM", "chrUn_gl000220"], ["22", "MT", "X"])
    assert mapping == {"chr22": "22", "chrM": "MT"}
    assert report["unmatched"] == ["chrUn_gl000220"] and report["renamed"] == mapping
    assert report["genome_without_features"] == 1
    back, _ = reconcile_chrom_names(["22", "MT"], ["chr22", "chrM"])
    assert back == {"22": "chr22", "MT": "chrM"}
    versioned, _ = reconcile_chrom_names(["NZ_AHMY02000075.1"], ["NZ_AHMY02000075"])
    assert versioned == {"NZ_AHMY02000075.1": "NZ_AHMY02000075"}


def test_reconcile_without_any_match_names_file_and_examples():
    with pytest.raises(DnahnetInputError) as err:
        reconcile_chrom_names(["scaffold_1", "scaffold_2"], ["chr1", "chr2"], file="genes.gff3")
    text = str(err.value)
    assert "genes.gff3" in text and "scaffold_1" in text and "chr1" in text


def test_softmasked_runs_become_repeats_across_block_edges(write_fasta):
    seq = "ACGTacgtacGTAC" + "n" * 3 + "ACGT" + "aaaaaaaaaaaa" + "CG"
    fasta = write_fasta({"c1": seq, "c2": "acgtACGT"})
    expected = [("c1", 4, 10), ("c1", 14, 17), ("c1", 21, 33), ("c2", 0, 4)]
    for block in (5, 7, 1000):
        rep = softmask_repeats(fasta, block=block)
        assert list(zip(rep.chrom.tolist(), rep.start.tolist(), rep.end.tolist())) == expected
        assert rep.types() == ["repeat"]
    limited = softmask_repeats(fasta, {"c1": [(6, 25)]}, block=4)
    assert list(zip(limited.start.tolist(), limited.end.tolist())) == [(6, 10), (14, 17), (21, 25)]


def test_real_umaydis_gff3_counts_and_start_codons(shared_data):
    table = load_annotation(shared_data / "umaydis" / "umaydis.gff3.gz")
    counts = collections.Counter(table.type.tolist())
    # The file has only mRNA and CDS lines; introns are gaps between a transcript's CDS pieces
    # (9778 - 6787 = 2991 gaps, less 2 where um15079's CDS pieces overlap).
    assert counts == {"mRNA": 6787, "CDS": 9778, "intron": 2989}
    assert collections.Counter(table.of_type("CDS").phase.tolist()) == {0: 8576, 1: 530, 2: 672}
    starts = derive_codon_sites(table).of_type("start_codon")
    assert len(starts) == 6787
    with pysam.FastaFile(str(shared_data / "umaydis" / "umaydis.fa.gz")) as fasta:
        codons = [fasta.fetch(c, s, e).upper() for c, s, e in zip(starts.chrom, starts.start.tolist(), starts.end.tolist())]
    codons = [reverse_complement(c) if st == "-" else c for c, st in zip(codons, starts.strand.tolist())]
    assert 0.93 < sum(c == "ATG" for c in codons) / len(codons) < 0.95  # data README: 94% begin with ATG


def test_real_leptospira_genbank_counts(shared_data):
    table = load_annotation(shared_data / "leptospira" / "leptospira_kirschneri_H1.gbk.gz")
    counts = collections.Counter(table.type.tolist())
    assert {t: counts[t] for t in ("gene", "CDS", "tRNA", "rRNA", "repeat_region")} == {
        "gene": 4207, "CDS": 4162, "tRNA": 37, "rRNA": 6, "repeat_region": 8}
    assert counts["CDS_part"] == 20  # 10 CDS with join() locations (programmed frameshifts), 2 parts each
    assert len(table.topology) == 75 and set(table.topology.values()) == {"linear"}
    assert 4_550_000 < sum(table.sizes.values()) < 4_650_000


def test_real_hg19_refseq_tracks_load_with_strands(shared_data):
    tss = load_annotation(shared_data / "hg19-chr22" / "RefSeqTSS.chr22.bed")
    assert len(tss) == 726 and set(tss.strand.tolist()) == {"+", "-"} and np.all(tss.end - tss.start == 1)
    genes = load_annotation(shared_data / "hg19-chr22" / "RefSeqGene.chr22.bed", chrom_sizes={"chr22": 51_304_566})
    assert collections.Counter(genes.type.tolist())["RefSeqGene"] == 770
    inter = genes.of_type("intergenic")
    assert inter.start[0] == 0 and inter.end.max() == 51_304_566 and len(inter) > 100
