"""Zero-shot essentiality: the knockout cassette lands where specified (plus, minus, across the origin), windows clip on linear contigs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dnahnet.alphabet import reverse_complement
from dnahnet.analysis.annotations import load_annotation
from dnahnet.data.corpus import open_genome
from dnahnet.zeroshot.essentiality import CASSETTE, Gene, gene_window, genes_from_annotation, run_essentiality
from dnahnet.zeroshot.stats import auroc, roc_curve
from shared_paths import SHARED_DATA

LEPTO = SHARED_DATA / "leptospira" / "leptospira_kirschneri_H1.gbk.gz"
pytestmark = pytest.mark.skipif(not LEPTO.exists(), reason=f"shared data not found: {LEPTO} (set DNAHNET_SHARED_DATA)")


@pytest.fixture(scope="module")
def lepto():
    genome = open_genome(LEPTO)
    genes, _ = genes_from_annotation(load_annotation(LEPTO))
    return genome, genes


def _check_cassette_in_genome(genome, w, wstart_genomic: int) -> None:
    g = w.gene
    assert w.ko[w.ko_offset:w.ko_offset + 15] == CASSETTE
    assert w.ko[:w.ko_offset] == w.wt[:w.ko_offset] and w.ko[w.ko_offset + 15:] == w.wt[w.ko_offset + 15:]
    if g.strand == "+":
        assert w.start_codon == genome.fetch(g.chrom, g.start, g.start + 3).decode().upper()
        assert w.wt[w.ko_offset - 12:w.ko_offset - 9] == w.start_codon
        # in genome coordinates the cassette covers [start + 12, start + 27)
        assert w.ko_offset == g.start + 12 - wstart_genomic
    else:
        assert w.start_codon == reverse_complement(genome.fetch(g.chrom, g.end - 3, g.end).decode().upper())
        # back on the plus strand the KO window carries RC(cassette) over [end - 27, end - 12)
        ko_plus = reverse_complement(w.ko)
        a = (g.end - 27) - wstart_genomic
        assert ko_plus[a:a + 15] == reverse_complement(CASSETTE)


def test_cassette_on_plus_and_minus_strand_genes(lepto):
    genome, genes = lepto
    plus = next(g for g in genes if g.strand == "+" and g.start > 10_000 and genome.sizes[g.chrom] - g.end > 10_000)
    minus = next(g for g in genes if g.strand == "-" and g.start > 10_000 and genome.sizes[g.chrom] - g.end > 10_000)
    for g in (plus, minus):
        w = gene_window(genome, g, 8192, circular=False)
        assert len(w.wt) == len(w.ko) == 8192 and not (w.clipped or w.wrapped or w.shifted)
        wstart = (g.start + g.end) // 2 - 4096
        plus_strand = genome.fetch(g.chrom, wstart, wstart + 8192).decode().upper()
        assert w.wt == (plus_strand if g.strand == "+" else reverse_complement(plus_strand))
        assert w.start_codon in ("ATG", "GTG", "TTG")
        _check_cassette_in_genome(genome, w, wstart)


def test_window_leaving_a_linear_contig_is_clipped_and_flagged(lepto):
    genome, genes = lepto
    g = next(g for g in genes if g.strand == "+" and 100 < g.start < 2000 and genome.sizes[g.chrom] > 20_000)
    w = gene_window(genome, g, 8192, circular=False)
    assert w.clipped and not w.wrapped
    assert w.wt == genome.fetch(g.chrom, 0, len(w.wt)).decode().upper() and len(w.wt) < 8192
    _check_cassette_in_genome(genome, w, 0)


@pytest.fixture(scope="module")
def circular_record(tmp_path_factory, lepto):
    """A 6 kb circular replicon cut from a real L. kirschneri contig, with genes by the origin."""
    from Bio.Seq import Seq
    from Bio.SeqFeature import FeatureLocation, SeqFeature
    from Bio.SeqRecord import SeqRecord
    from Bio import SeqIO

    genome, genes = lepto
    chrom = max(genome.sizes, key=genome.sizes.get)
    seq = genome.fetch(chrom, 100_000, 106_000).decode().upper()
    # plant start codons so the checks are exact: plus gene at 5,700 (window runs past the end), minus gene ending at 400
    seq = seq[:5700] + "ATG" + seq[5703:]
    seq = seq[:397] + "CAT" + seq[400:]
    rec = SeqRecord(Seq(seq), id="circ1.1", name="circ1", description="test replicon",
                    annotations={"molecule_type": "DNA", "topology": "circular"})
    rec.features = [
        SeqFeature(FeatureLocation(5700, 5940, strand=1), type="CDS", qualifiers={"locus_tag": ["PLUS1"]}),
        SeqFeature(FeatureLocation(100, 400, strand=-1), type="CDS", qualifiers={"locus_tag": ["MINUS1"]}),
        SeqFeature(FeatureLocation(3000, 3300, strand=1), type="CDS", qualifiers={"locus_tag": ["NOSTART"]}),
    ]
    seq2 = seq[:3000] + "CCC" + seq[3003:]
    rec.seq = Seq(seq2)
    path = tmp_path_factory.mktemp("circ") / "circ.gbk"
    SeqIO.write([rec], path, "genbank")
    return path, seq2


def test_cassette_across_the_origin_of_a_circular_replicon(circular_record):
    path, seq = circular_record
    genome = open_genome(path)
    assert genome.topology["circ1.1"] == "circular"
    genes = {g.id: g for g in genes_from_annotation(load_annotation(path))[0]}
    size = len(seq)
    doubled = seq + seq
    w = gene_window(genome, genes["PLUS1"], 2000, circular=True)
    ws = (5700 + 5940) // 2 - 1000  # 4820; the window runs to 6820 = 820 past the origin
    assert w.wrapped and not w.clipped and len(w.wt) == 2000
    assert w.wt == doubled[ws:ws + 2000]
    assert w.start_codon == "ATG" and w.ko_offset == 5700 + 12 - ws
    m = gene_window(genome, genes["MINUS1"], 2000, circular=True)
    ws = (100 + 400) // 2 - 1000  # -750: the window starts before the origin
    plus = doubled[size + ws:size + ws + 2000]
    assert m.wrapped and m.wt == reverse_complement(plus) and m.start_codon == "ATG"
    ko_plus = reverse_complement(m.ko)
    a = (400 - 27) - ws
    assert ko_plus[a:a + 15] == reverse_complement(CASSETTE)
    assert ko_plus[:a] == plus[:a] and ko_plus[a + 15:] == plus[a + 15:]


@pytest.mark.parametrize("strand", [1, -1])
def test_cds_joined_across_the_origin_is_scored_on_its_true_span(circular_record, tmp_path, strand):
    """join(5951..6000,1..70): 120 bases from 5,950 on, through the origin; the cassette follows the start codon."""
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqFeature import CompoundLocation, FeatureLocation, SeqFeature

    _, seq = circular_record
    size = len(seq)
    if strand == 1:  # start codon at 5,950
        seq = seq[:5950] + "ATG" + seq[5953:]
        pieces = [FeatureLocation(5950, size, strand=1), FeatureLocation(0, 70, strand=1)]
    else:  # minus strand: the start codon is the reverse complement at 67..70, after the origin
        seq = seq[:67] + "CAT" + seq[70:]
        pieces = [FeatureLocation(0, 70, strand=-1), FeatureLocation(5950, size, strand=-1)]
    record = next(SeqIO.parse(circular_record[0], "genbank"))
    record.seq = Seq(seq)
    record.features = [SeqFeature(CompoundLocation(pieces), type="CDS", qualifiers={"locus_tag": ["ORI1"]})]
    path = tmp_path / "ori.gbk"
    SeqIO.write([record], path, "genbank")

    genes, spanning = genes_from_annotation(load_annotation(path))
    assert spanning == 1 and [(g.id, g.start, g.end, g.length) for g in genes] == [("ORI1", 5950, size + 70, 120)]
    w = gene_window(open_genome(path), genes[0], 1000, circular=True)
    doubled = seq + seq
    ws = (5950 + size + 70) // 2 - 500  # 5,510: the window runs 510 bases past the origin
    assert w.wrapped and w.start_codon == "ATG"
    if strand == 1:
        assert w.wt == doubled[ws:ws + 1000] and w.ko_offset == 5950 + 12 - ws
        assert w.ko[w.ko_offset:w.ko_offset + 15] == CASSETTE
    else:
        assert w.wt == reverse_complement(doubled[ws:ws + 1000])
        ko_plus = reverse_complement(w.ko)
        a = size + 70 - 27 - ws  # the cassette's last base is the 27th base before the CDS end
        assert ko_plus[a:a + 15] == reverse_complement(CASSETTE)


def test_span_across_origin_takes_the_complement_of_the_largest_gap():
    from dnahnet.zeroshot.essentiality import span_across_origin

    assert span_across_origin(np.array([0, 900]), np.array([30, 1000]), 1000) == (900, 1030)
    assert span_across_origin(np.array([100, 400]), np.array([200, 500]), 1000) == (100, 500)  # no wrap
    assert span_across_origin(np.array([0, 50, 950]), np.array([20, 80, 1000]), 1000) == (950, 1080)


def _tiny_checkpoint(folder: Path) -> Path:
    import torch

    from dnahnet.config import model_config_from_preset
    from dnahnet.nn.hnet import HNetLM
    from dnahnet.io.checkpoint import save_model

    torch.manual_seed(0)
    save_model(folder, HNetLM(model_config_from_preset("tiny")))
    return folder


def test_run_counts_missing_start_codons_and_unknown_labels(circular_record, tmp_path):
    from dnahnet.infer.model import load

    path, _ = circular_record
    model = load(_tiny_checkpoint(tmp_path / "ck"), device="cpu")
    labels = tmp_path / "labels.tsv"
    labels.write_text("gene\tessential\torganism\nPLUS1\t1\tcirc\nMINUS1\t0\tcirc\nNOSTART\t0\tcirc\nGHOST\t1\tcirc\n")
    summary = run_essentiality(model, path, path, tmp_path / "out", labels=labels, window=512)
    assert summary["genes"] == 3 and summary["scored"] == 3 and summary["no_start_codon"] == 1
    assert summary["no_start_examples"] == ["NOSTART"] and summary["labels_not_in_annotation"] == 1
    rows = [ln.split("\t") for ln in (tmp_path / "out" / "genes.tsv").read_text().splitlines()]
    assert rows[0][:3] == ["gene_id", "chrom", "start"] and len(rows) == 4
    scores = {r[0]: float(r[7]) for r in rows[1:]}
    assert all(np.isfinite(list(scores.values())))
    assert summary["auroc"] == auroc(np.array([1, 0, 0]), np.array([scores["PLUS1"], scores["MINUS1"], scores["NOSTART"]]))
    assert (tmp_path / "out" / "roc.png").stat().st_size > 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["wrapped"] >= 1
    dist = summary["score_bits"]  # the per-gene distribution, written with or without labels
    values = np.array(list(scores.values()))
    assert dist["quantiles"]["0.5"] == pytest.approx(np.median(values), rel=1e-5, abs=1e-6)
    assert dist["fraction_positive"] == pytest.approx((values > 0).mean())
    assert dist["min"] <= dist["quantiles"]["0.25"] <= dist["max"]
    assert (tmp_path / "out" / "scores.png").stat().st_size > 0
    skipped = run_essentiality(model, path, path, tmp_path / "out2", window=512, skip_no_start=True)
    assert skipped["scored"] == 2 and skipped["skipped_no_start"] == 1


def test_auroc_and_roc_equal_scikit_learn():
    from sklearn.metrics import roc_auc_score, roc_curve as sk_roc

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.normal(size=60) + y, 1)  # rounded: ties included
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = sk_roc(y, s, drop_intermediate=False)
    mine = roc_curve(y, s)
    assert np.allclose(mine[0], fpr) and np.allclose(mine[1], tpr)
    assert auroc([1, 0, 1, 0], [0.9, 0.1, 0.8, 0.3]) == 1.0


def test_proxy_labels_name_annotated_genes(lepto, tmp_path):
    from dnahnet_pipelines.proxy_essential_labels import main, proxy_labels

    _, genes = lepto
    rows = proxy_labels(LEPTO)
    ids = {g.id for g in genes}
    assert {r[0] for r in rows} <= ids  # every label names a gene the essentiality run scores
    positives = [r for r in rows if r[1] == 1]
    assert any("ribosomal protein" in r[2] for r in positives) and all("hypothetical" not in r[2] for r in positives)
    assert all(r[2] == "hypothetical protein" for r in rows if r[1] == 0)
    out = tmp_path / "labels.tsv"
    assert main([str(LEPTO), str(out), "--organism", "Lk"]) == 0
    assert len(out.read_text().splitlines()) == len(rows) + 1
    assert main([str(tmp_path / "missing.gbk"), str(out)]) == 2
