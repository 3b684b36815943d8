"""dnahnet.io.annotations: GFF3, GTF and GenBank read into one feature table; GenBank parsed once per file.

Coordinates are checked against the lines of the real files (1-based closed in GFF3/GTF
and GenBank, 0-based half-open in the table); plain and gzip give the same table; a bad
line is one line naming the file and the line.
"""

from __future__ import annotations

import collections
import gzip

import numpy as np
import pytest

from dnahnet.errors import DnahnetInputError
from dnahnet.io import genbank as gbio
from dnahnet.io.annotations import COLUMNS, FeatureTable, read_annotation, read_genbank_features, read_gff3, read_gtf
from infer_fixtures import checkpoints, tiny  # noqa: F401  (session fixtures: a tiny model)

UMAYDIS_ROWS = 12  # the first 12 feature lines of umaydis.gff3.gz: 6 single-CDS transcripts, CDS line before mRNA line


def rows(table: FeatureTable) -> list[tuple]:
    return list(zip(*(getattr(table, c).tolist() for c in COLUMNS)))


def same_table(a: FeatureTable, b: FeatureTable) -> bool:
    return rows(a) == rows(b) and a.sizes == b.sizes and a.topology == b.topology


@pytest.fixture
def umaydis_head(shared_data, tmp_path):
    """The header and first feature lines of the U. maydis GFF3, as plain and gz files, and the lines themselves."""
    with gzip.open(shared_data / "umaydis" / "umaydis.gff3.gz", "rt") as fh:
        lines = [next(fh) for _ in range(3 + UMAYDIS_ROWS)]
    plain = tmp_path / "head.gff3"
    plain.write_text("".join(lines))
    packed = tmp_path / "head.gff3.gz"
    with gzip.open(packed, "wt") as fh:
        fh.write("".join(lines))
    return plain, packed, [ln.rstrip("\n").split("\t") for ln in lines[3:]]


def test_gff3_rows_are_the_file_lines_0_based_half_open(umaydis_head):
    plain, packed, lines = umaydis_head
    table = read_gff3(plain)
    assert collections.Counter(table.type.tolist()) == {"CDS": 6, "mRNA": 6}  # parsed only: no introns derived here
    assert rows(table)[:2] == [
        ("chr01", 1448, 2078, "-", "CDS", "", "mRNA:um06480", "", 0),  # chr01 MIPS CDS 1449 2078 . - 0 Parent=...
        ("chr01", 1448, 2078, "-", "mRNA", "mRNA:um06480", "", "", -1),
    ]
    expected = [(c[0], int(c[3]) - 1, int(c[4]), c[6]) for c in lines]
    assert list(zip(table.chrom.tolist(), table.start.tolist(), table.end.tolist(), table.strand.tolist())) == expected
    assert set(table.strand.tolist()) == {"+", "-"}
    assert same_table(read_gff3(packed), table)
    assert same_table(read_annotation(packed), table)  # dispatch by name, through .gz


def test_gtf_of_the_same_lines_gives_the_same_features(umaydis_head, tmp_path):
    _, _, lines = umaydis_head
    gtf = []
    for c in lines:
        tx = c[8].split(";")[0].split("=", 1)[1].removeprefix("Parent=").removeprefix("ID=")
        c = c[:2] + ["transcript" if c[2] == "mRNA" else c[2]] + c[3:8] + [f'gene_id "{tx[5:]}"; transcript_id "{tx}";']
        gtf.append("\t".join(c))
    plain, packed = tmp_path / "head.gtf", tmp_path / "head.gtf.gz"
    plain.write_text("\n".join(gtf) + "\n")
    with gzip.open(packed, "wt") as fh:
        fh.write("\n".join(gtf) + "\n")
    table, gff = read_gtf(plain), read_gff3(umaydis_head[0])
    place = ("chrom", "start", "end", "strand", "type", "phase")
    assert [tuple(getattr(table, c)[i] for c in place) for i in range(len(table))] == \
        [tuple(getattr(gff, c)[i] for c in place) for i in range(len(gff))]
    cds = table.of_type("CDS")
    assert cds.parent.tolist()[0] == "mRNA:um06480" and cds.gene.tolist()[0] == "um06480"
    assert same_table(read_gtf(packed), table)


@pytest.fixture(scope="module")
def lepto_path(shared_data):
    return shared_data / "leptospira" / "leptospira_kirschneri_H1.gbk.gz"


def test_genbank_features_counts_coordinates_and_strands(lepto_path, tmp_path):
    table = read_genbank_features(lepto_path)
    counts = collections.Counter(table.type.tolist())
    # the file's own annotation summary: Genes (total) 4,207, CDS (total) 4,162, tRNAs 37; 10 join() CDS of 2 parts
    assert {t: counts[t] for t in ("gene", "CDS", "tRNA", "rRNA", "repeat_region", "CDS_part")} == {
        "gene": 4207, "CDS": 4162, "tRNA": 37, "rRNA": 6, "repeat_region": 8, "CDS_part": 20}
    assert "intron" not in counts and "intergenic" not in counts  # derived features are analysis's, not io's
    assert len(table.sizes) == 75 and sum(table.sizes.values()) == 4_594_734
    assert table.sizes["NZ_AHMY02000075.1"] == 683 and set(table.topology.values()) == {"linear"}
    got = set(rows(table))
    assert {
        # CDS <1..227, /codon_start=3, first record
        ("NZ_AHMY02000075.1", 0, 227, "+", "CDS", "LEP1GSC081_RS0208190", "LEP1GSC081_RS0208190", "LEP1GSC081_RS0208190", 2),
        # CDS complement(1574..2548)
        ("NZ_AHMY02000074.1", 1573, 2548, "-", "CDS", "LEP1GSC081_RS208755", "LEP1GSC081_RS208755", "LEP1GSC081_RS208755", 0),
        # CDS join(65307..65559,65559..66454) (programmed frameshift): the span, phase -1, and its two pieces
        ("NZ_AHMY02000074.1", 65306, 66454, "+", "CDS", "LEP1GSC081_RS208510", "LEP1GSC081_RS208510", "LEP1GSC081_RS208510", -1),
        ("NZ_AHMY02000074.1", 65306, 65559, "+", "CDS_part", "LEP1GSC081_RS208510.1", "LEP1GSC081_RS208510", "LEP1GSC081_RS208510", 0),
        ("NZ_AHMY02000074.1", 65558, 66454, "+", "CDS_part", "LEP1GSC081_RS208510.2", "LEP1GSC081_RS208510", "LEP1GSC081_RS208510", 2),
    } <= got
    plain = tmp_path / "lepto.gbk"
    with gzip.open(lepto_path, "rb") as src:
        plain.write_bytes(src.read())
    assert same_table(read_genbank_features(plain), table)


@pytest.mark.parametrize(
    "name, line, message",
    [
        ("bad.gff3", "chr01\tMIPS\tCDS\t1449\t2078\t.\tx\t0\tParent=mRNA:um1", "strand 'x' is not +, -, . or ?"),
        ("bad.gff3.gz", "chr01\tMIPS\tCDS\t1449\t2078\t.\t-\t0", "expected 9 tab-separated columns, found 8"),
        ("bad.gtf", 'chr01\tMIPS\tCDS\t1449\tend\t.\t-\t0\tgene_id "a"; transcript_id "t";', "start/end '1449'/'end' are not integers"),
    ],
)
def test_a_bad_line_is_one_line_naming_file_and_line(tmp_path, name, line, message):
    good = ["##gff-version 3", "chr01\tMIPS\tmRNA\t10\t20\t.\t+\t.\tID=t1" if "gff" in name
            else 'chr01\tMIPS\ttranscript\t10\t20\t.\t+\t.\tgene_id "g"; transcript_id "t1";']
    path = tmp_path / name
    text = "\n".join(good + [line]) + "\n"
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    with pytest.raises(DnahnetInputError) as err:
        read_annotation(path)
    assert str(err.value) == f"{path}, record line 3: {message}"


def test_bad_genbank_is_one_line_naming_file_and_record(tmp_path):
    locus = "LOCUS       c{}                         8 bp    DNA     linear   UNK 01-JAN-2000\n"
    path = tmp_path / "broken.gbk"  # a good record, then one cut off inside its feature table
    path.write_text(locus.format(1) + "ORIGIN\n        1 acgtacgt\n//\n" + locus.format(2)
                    + "FEATURES             Location/Qualifiers\n     CDS             1..4\n")
    gbio.clear_cache()
    with pytest.raises(DnahnetInputError) as err:
        read_genbank_features(path)
    assert str(err.value) == f"{path}, record 2: not valid GenBank (Premature end of line during features table)"
    (tmp_path / "empty.gb").write_text("nothing here\n")
    with pytest.raises(DnahnetInputError, match=r"empty\.gb: no GenBank records found"):
        read_annotation(tmp_path / "empty.gb")


def _small_genbank(path, seed: int = 0):
    """One linear 3 kb record with three CDSs that start with ATG (two on +, one on -)."""
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqFeature import FeatureLocation, SeqFeature
    from Bio.SeqRecord import SeqRecord

    rng = np.random.default_rng(seed)
    seq = list("".join(rng.choice(list("ACGT"), 3000)))
    features = []
    for tag, start, end, strand in (("G1", 400, 700, 1), ("G2", 1200, 1500, 1), ("G3", 2000, 2300, -1)):
        if strand == 1:
            seq[start:start + 3] = "ATG"
        else:
            seq[end - 3:end] = "CAT"
        features.append(SeqFeature(FeatureLocation(start, end, strand=strand), type="CDS",
                                   qualifiers={"locus_tag": [tag], "codon_start": ["1"], "product": ["hypothetical protein"]}))
    record = SeqRecord(Seq("".join(seq)), id="ctg1.1", name="ctg1", description="test",
                       annotations={"molecule_type": "DNA", "topology": "linear"}, features=features)
    SeqIO.write([record], path, "genbank")
    return path


@pytest.fixture
def count_parses(monkeypatch):
    """Count Biopython parses from now on (with an empty GenBank cache)."""
    from Bio import SeqIO

    calls = collections.Counter()
    real = SeqIO.parse

    def counting(handle, fmt, *args, **kwargs):
        calls[fmt] += 1
        return real(handle, fmt, *args, **kwargs)

    gbio.clear_cache()
    monkeypatch.setattr(SeqIO, "parse", counting)
    yield calls
    gbio.clear_cache()


def test_genbank_read_once_for_sequence_features_repeats_and_labels(tmp_path, count_parses):
    from dnahnet.analysis.annotations import load_annotation, softmask_repeats
    from dnahnet.data.corpus import open_faidx, open_genome
    from dnahnet_pipelines.proxy_essential_labels import proxy_labels

    gbk = _small_genbank(tmp_path / "g.gbk")
    genome = open_genome(gbk)
    table = load_annotation(gbk)
    repeats = softmask_repeats(gbk)
    with open_faidx(gbk) as view:
        assert view.lengths == (3000,)
    labels = proxy_labels(gbk)
    assert count_parses["genbank"] == 1
    assert genome.fetch("ctg1.1", 400, 403) == b"ATG" and genome.topology == {"ctg1.1": "linear"}
    assert rows(table.of_type("CDS"))[2] == ("ctg1.1", 2000, 2300, "-", "CDS", "G3", "G3", "G3", 0)
    assert len(repeats) == 0  # GenBank sequence is lower case by convention: Biopython reads it upper case, no mask
    assert [r[:2] for r in labels] == [("G1", 0), ("G2", 0), ("G3", 0)]
    _small_genbank(gbk, seed=1)  # a changed file is parsed again
    assert open_genome(gbk).fetch("ctg1.1", 0, 50) != genome.fetch("ctg1.1", 0, 50)
    assert count_parses["genbank"] == 2


def test_essentiality_on_one_genbank_parses_it_once(tmp_path, tiny, count_parses):  # noqa: F811
    from dnahnet.zeroshot.essentiality import run_essentiality

    gbk = _small_genbank(tmp_path / "g.gbk")
    packed = tmp_path / "g.gbk.gz"
    packed.write_bytes(gzip.compress(gbk.read_bytes()))
    summary = run_essentiality(tiny, packed, packed, tmp_path / "out", window=256)
    assert summary["genes"] == 3 and summary["scored"] == 3 and summary["no_start_codon"] == 0
    assert count_parses["genbank"] == 1
