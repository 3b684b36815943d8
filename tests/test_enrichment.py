"""Boundary–feature statistics: the null is calibrated, planted signals are found, the report renders."""

from __future__ import annotations

import json

import numpy as np
import pysam
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from dnahnet.analysis import annotate
from dnahnet.analysis.annotations import FeatureTable
from dnahnet.analysis.enrichment import (
    BoundarySet,
    _period3_power_ratio,
    _ShiftCounter,
    _spaces,
    _runs,
    _feature_intervals,
    _ranking,
    analyse_boundaries,
    auroc_auprc,
    chunk_lengths,
    codon_periodicity,
    conditional_selection_rates,
    edge_auc,
    edge_enrichment,
    read_boundaries,
    selection_rates,
)
from dnahnet.errors import DnahnetInputError
from dnahnet.io.bed import BedGraph, write_bed6

CHROM_SIZE = 200_000
REGIONS = {"c1": (np.array([1_000, 120_000]), np.array([100_000, 199_000]))}  # two analysed stretches


def boundary_set(name: str, positions: dict[str, np.ndarray], regions=REGIONS) -> BoundarySet:
    """Chunks from boundary positions: each chunk runs to the next boundary or its region's end."""
    starts, ends = {}, {}
    for chrom, pos in positions.items():
        pos = np.unique(pos)
        rs, re_ = regions[chrom]
        region_end = re_[np.searchsorted(rs, pos, side="right") - 1]
        nxt = np.r_[pos[1:], np.iinfo(np.int64).max]
        starts[chrom], ends[chrom] = pos, np.minimum(nxt, region_end)
    return BoundarySet(name, starts, ends)


def random_positions(rng, rate=1 / 3, regions=REGIONS) -> dict[str, np.ndarray]:
    out = {}
    for chrom, (rs, re_) in regions.items():
        parts = [np.r_[s, s + np.flatnonzero(rng.random(e - s) < rate)] for s, e in zip(rs.tolist(), re_.tolist())]
        out[chrom] = np.unique(np.concatenate(parts))
    return out


def random_features(rng, n=400, ftype="gene") -> FeatureTable:
    starts = np.sort(rng.choice(np.arange(2_000, CHROM_SIZE - 2_000), n, replace=False))  # no lattice: a grid must not line up
    lengths = rng.integers(60, 400, n)
    strands = rng.choice(["+", "-"], n)
    return FeatureTable.from_rows([("c1", int(s), int(s + L), st, ftype, f"f{i}", "", "", -1)
                                   for i, (s, L, st) in enumerate(zip(starts, lengths, strands))])


def inside_regions(pos: np.ndarray, regions=REGIONS, chrom="c1") -> np.ndarray:
    rs, re_ = regions[chrom]
    j = np.searchsorted(rs, pos, side="right") - 1
    return pos[(j >= 0) & (pos < re_[np.maximum(j, 0)])]


def by_edge(rows, stage=None):
    return {(r["feature"], r["edge"]): r for r in rows if stage is None or r["stage"] == stage}


def test_circular_shift_counts_equal_brute_force():
    """Reference: shift every analysed position explicitly and count in a boolean genome mask."""
    rng = np.random.default_rng(3)
    regions = {"c1": (np.array([5, 60, 130]), np.array([40, 100, 190]))}
    bset = boundary_set("s", random_positions(rng, 0.3, regions), regions)
    features = FeatureTable.from_rows([("c1", 20, 70, "+", "x", "", "", "", -1), ("c1", 95, 140, "-", "x", "", "", "", -1),
                                       ("c1", 180, 200, "+", "x", "", "", "", -1)])
    spaces = _spaces(regions)
    offsets = {"c1": np.arange(spaces["c1"].size)}
    counter = _ShiftCounter(bset, spaces, offsets)
    analysed = np.concatenate([np.arange(s, e) for s, e in zip(*regions["c1"])])
    is_boundary = np.isin(analysed, bset.starts["c1"])
    for edge in ("start", "end", "body"):
        intervals = _feature_intervals(features, edge, 3)
        mask = np.zeros(220, dtype=bool)
        for s, e in zip(*intervals["c1"]):
            mask[s:e] = True
        runs = _runs(intervals, spaces)
        brute = [int(mask[analysed[(np.flatnonzero(is_boundary) + o) % analysed.size]].sum()) for o in offsets["c1"]]
        np.testing.assert_array_equal(counter.null(runs, analysed.size), brute)
        assert counter.observed(runs) == brute[0]


def test_random_boundaries_give_fold_near_one_and_no_significance():
    rng = np.random.default_rng(11)
    bset = boundary_set("stage1", random_positions(rng))
    rows = edge_enrichment([bset], random_features(rng), REGIONS, window=5, permutations=200, seed=0)
    assert len(rows) == 3
    for row in rows:
        assert 0.9 < row["fold"] < 1.1, row
        assert row["p_enriched"] > 0.05 and row["p_depleted"] > 0.05, row
        assert abs(row["z"]) < 2
        assert row["rate_in"] == pytest.approx(row["rate_out"], rel=0.1)


def test_planted_boundaries_at_feature_starts_are_detected_strand_aware():
    rng = np.random.default_rng(5)
    features = random_features(rng)
    five_prime = np.where(features.strand == "-", features.end, features.start)
    positions = random_positions(rng)
    positions["c1"] = np.r_[positions["c1"], inside_regions(five_prime)]
    bset = boundary_set("stage1", positions)
    exact = by_edge(edge_enrichment([bset], features, REGIONS, window=0, permutations=200, seed=1))
    start, end = exact[("gene", "start")], exact[("gene", "end")]
    assert start["fold"] == pytest.approx(3.0, rel=0.05)  # every start is a boundary; background rate 1/3
    assert start["z"] > 10 and start["p_enriched"] == pytest.approx(1 / 201)
    assert 0.8 < end["fold"] < 1.2 and end["p_enriched"] > 0.05
    # ±5 bp: one sure boundary among 11 positions at rate 1/3 gives (10/3 + 1) / (11/3) = 1.18
    wide = by_edge(edge_enrichment([bset], features, REGIONS, window=5, permutations=200, seed=1))
    assert wide[("gene", "start")]["fold"] == pytest.approx(13 / 11, abs=0.04)
    assert wide[("gene", "start")]["p_enriched"] == pytest.approx(1 / 201)
    minus_only = by_edge(edge_enrichment([bset], features.subset(features.strand == "-"), REGIONS, window=0))
    assert minus_only[("gene", "start")]["fold"] > 2.5 and minus_only[("gene", "end")]["fold"] < 1.3


def test_fixed_grid_control_sits_next_to_each_stage():
    rng = np.random.default_rng(8)
    features = random_features(rng)
    positions = random_positions(rng, 0.25)
    positions["c1"] = np.r_[positions["c1"], inside_regions(np.where(features.strand == "-", features.end, features.start))]
    result = analyse_boundaries([boundary_set("stage1", positions)], features, REGIONS, window=0, permutations=100)
    (stage,) = result["stages"]
    assert stage["grid_k"] == round(stage["compression"]) == 4 and stage["grid"] == "stage1_grid4"
    grid = by_edge(result["enrichment"], "stage1_grid4")
    learned = by_edge(result["enrichment"], "stage1")
    assert learned[("gene", "start")]["fold"] > 3
    # a grid hits a 1-bp edge in one phase out of k, so its fold at window 0 is noisy, but never significant
    assert 0.75 < grid[("gene", "start")]["fold"] < 1.25 and grid[("gene", "start")]["p_enriched"] > 0.05
    assert 0.98 < grid[("gene", "body")]["fold"] < 1.02
    assert set(result["codon"]) == set(result["selection"]) == {"stage1", "stage1_grid4"}


def _cds_pieces() -> FeatureTable:
    rows = []
    for i, s in enumerate(range(2_000, 95_000, 700)):
        strand, phase = ("+" if i % 2 else "-"), i % 3
        rows.append(("c1", s, s + 301 + i % 5, strand, "CDS", "", f"t{i}", f"g{i}", phase))
    return FeatureTable.from_rows(rows)


def test_codon_phase_finds_boundaries_planted_at_codon_position_one():
    pieces = _cds_pieces()
    planted = []
    for s, e, st, ph in zip(pieces.start.tolist(), pieces.end.tolist(), pieces.strand.tolist(), pieces.phase.tolist()):
        x = np.arange(s, e)
        t = x - s if st == "+" else e - 1 - x
        planted.append(x[(t - ph) % 3 == 0])
    rng = np.random.default_rng(2)
    bset = boundary_set("stage1", {"c1": np.concatenate(planted)})
    result = codon_periodicity(bset, pieces, REGIONS)
    counts = result["all"]["counts"]
    assert counts[1] == counts[2] == 0 and counts[0] == sum(len(p) for p in planted)
    assert result["+"]["rates"][0] == result["-"]["rates"][0] == 1.0
    assert result["rotation_p"] == 1 / (result["rotations"] + 1) and result["period3_power_ratio"] > 100
    noise = codon_periodicity(boundary_set("stage1", random_positions(rng)), pieces, REGIONS)
    assert all(0.3 < r < 0.37 for r in noise["all"]["rates"])
    assert noise["rotation_p"] > 0.01 and noise["period3_power_ratio"] < 10


def test_codon_test_does_not_call_a_fixed_grid_frame_biased():
    """A boundary every 3 bases sits in one codon position per gene, with the gene's frame
    random against the grid: pooled over boundaries a chi-square calls that significant;
    the per-CDS rotation null does not."""
    from scipy import stats

    pieces = _cds_pieces()
    grid = boundary_set("stage1_grid3", {"c1": np.arange(0, 100_000, 3)})
    result = codon_periodicity(grid, pieces, REGIONS)
    counts, bases = np.array(result["all"]["counts"]), np.array(result["all"]["bases"])
    pooled_chi2_p = stats.chisquare(counts, bases / bases.sum() * counts.sum()).pvalue
    assert pooled_chi2_p < 1e-6 and result["rotation_p"] > 0.05


def test_period3_power_ratio_equals_fft_reference():
    """Reference: join the in-frame pieces, take the full DFT, compare power at n/3 with the mean elsewhere."""
    rng = np.random.default_rng(6)
    length, phase = rng.integers(20, 90, 40), rng.integers(0, 3, 40)
    usable = (length - phase) // 3 * 3
    piece = np.repeat(np.arange(40), length)
    offset = np.concatenate([np.arange(L) for L in length])
    hit = rng.random(piece.size) < 0.2 + 0.2 * ((offset - phase[piece]) % 3 == 0)
    signal = np.concatenate([hit[piece == i][phase[i]: phase[i] + usable[i]] for i in range(40)]).astype(float)
    power = np.abs(np.fft.fft(signal - signal.mean())) ** 2
    n = signal.size
    reference = power[n // 3] / np.delete(power, [0, n // 3, 2 * n // 3]).mean()
    assert _period3_power_ratio(piece[hit], offset[hit], phase, length) == pytest.approx(reference, rel=1e-9)


def test_chunk_lengths_and_selection_rates_hand_counted():
    regions = {"c": (np.array([0]), np.array([100]))}
    starts = np.array([0, 10, 20, 30, 40, 50, 51, 52, 53, 54, 55, 60, 70, 80, 90])
    bset = boundary_set("stage1", {"c": starts}, regions)
    features = FeatureTable.from_rows([
        ("c", 20, 70, "+", "gene", "g1", "", "g1", -1),
        ("c", 30, 60, "+", "CDS", "", "t1", "g1", 0),
        ("c", 10, 20, "+", "promoter", "g1.promoter", "g1", "g1", -1),
        ("c", 0, 20, ".", "intergenic", "", "", "", -1),
        ("c", 70, 100, ".", "intergenic", "", "", "", -1),
    ])
    rates = selection_rates(bset, features, regions)
    assert {k: (v["boundaries"], v["bases"]) for k, v in rates.items()} == {
        "all": (15, 100), "promoter": (1, 10), "start_codon": (1, 3), "CDS": (8, 30), "stop_codon": (0, 3),
        "intergenic": (5, 50)}
    # stage 2 keeps a subset of the stage-1 starts: dnaHNet's stage-2 rates are shares of stage-1 boundaries
    upper = selection_rates(boundary_set("stage2", {"c": np.array([0, 20, 50, 52, 54, 80])}, regions), features, regions)
    kept = conditional_selection_rates(upper, rates)
    assert {k: (v["boundaries"], v["parents"]) for k, v in kept.items()} == {
        "all": (6, 15), "promoter": (0, 1), "start_codon": (0, 1), "CDS": (3, 8), "stop_codon": (0, 0), "intergenic": (2, 5)}
    assert kept["CDS"]["rate"] == 3 / 8 and np.isnan(kept["stop_codon"]["rate"])
    lengths = chunk_lengths(bset, features)
    assert sorted(lengths["CDS"].tolist()) == [1, 1, 1, 1, 1, 5, 10, 10]
    assert lengths["all"].sum() == 100 and sorted(lengths["promoter"].tolist()) == [10]


def test_auroc_and_auprc_equal_sklearn_with_ties():
    rng = np.random.default_rng(4)
    scores = np.round(rng.random(5_000), 2)  # many ties
    labels = rng.random(5_000) < 0.1 + 0.3 * scores
    roc, ap = auroc_auprc(*_ranking(scores), labels)
    assert roc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert ap == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_edge_auc_is_one_for_a_perfect_track():
    features = FeatureTable.from_rows([("c1", 100, 200, "+", "exon", "", "", "", -1),
                                       ("c1", 400, 450, "-", "exon", "", "", "", -1)])
    pos = np.arange(0, 600)
    value = np.isin(pos, np.r_[95:106, 445:456]).astype(float)
    rows = {(r["feature"], r["edge"]): r for r in edge_auc(BedGraph(np.full(600, "c1", object), pos, pos + 1, value), features, 5)}
    assert rows[("exon", "start")]["auroc"] == 1.0 and rows[("exon", "start")]["auprc"] == 1.0
    assert rows[("exon", "start")]["positives"] == 22 and rows[("exon", "end")]["auroc"] < 0.6


def test_read_boundaries_splits_stages_and_finds_analysed_regions(tmp_path):
    path = tmp_path / "b.bed"
    rows = [("c1", 0, 3, "stage1", 500, "+"), ("c1", 3, 10, "stage1", 900, "+"), ("c1", 0, 10, "stage2", 500, "+"),
            ("c1", 20, 25, "stage1", 700, "+"), ("c2", 5, 9, "stage1", 800, "+")]
    write_bed6(path, rows)
    sets, regions = read_boundaries(path)
    assert set(sets) == {"stage1", "stage2"}
    assert sets["stage1"].starts["c1"].tolist() == [0, 3, 20] and sets["stage1"].ends["c1"].tolist() == [3, 10, 25]
    assert {c: (s.tolist(), e.tolist()) for c, (s, e) in regions.items()} == {"c1": ([0, 20], [10, 25]), "c2": ([5], [9])}
    (tmp_path / "bed3.bed").write_text("c1\t0\t5\n")
    with pytest.raises(DnahnetInputError, match="stage in the name column"):
        read_boundaries(tmp_path / "bed3.bed")


# ---------------------------------------------------------------- annotate end to end


def _write_case(tmp_path, write_fasta, rng):
    """A 60 kb genome (one soft-masked stretch), a GFF3 with 30 two-exon genes, planted boundaries."""
    size = 60_000
    seq = "".join(rng.choice(list("ACGT"), size))
    seq = seq[:40_000] + seq[40_000:48_000].lower() + seq[48_000:]
    fasta = write_fasta({"chrZ": seq}, name="genome.fa")
    gff, starts = ["##gff-version 3"], []
    for i in range(30):
        s = 1_000 + i * 1_200
        strand = "+" if i % 2 else "-"
        exons = [(s, s + 200), (s + 500, s + 800)]
        gff.append(f"chrZ\tt\tgene\t{s + 1}\t{s + 800}\t.\t{strand}\t.\tID=g{i}")
        gff.append(f"chrZ\tt\tmRNA\t{s + 1}\t{s + 800}\t.\t{strand}\t.\tID=t{i};Parent=g{i}")
        gff += [f"chrZ\tt\texon\t{a + 1}\t{b}\t.\t{strand}\t.\tParent=t{i}" for a, b in exons]
        gff += [f"chrZ\tt\tCDS\t{a + 1}\t{b}\t.\t{strand}\t{ph}\tParent=t{i}" for (a, b), ph in zip(exons, (0, 1) if strand == "+" else (1, 0))]
        starts += [s + 800 if strand == "-" else s, s + 200, s + 500]
    (tmp_path / "genes.gff3").write_text("\n".join(gff) + "\n")
    b1 = np.unique(np.r_[0, np.flatnonzero(rng.random(size) < 0.3), starts])
    b2 = np.unique(np.r_[0, b1[::2]])
    rows = [("chrZ", int(s), int(e), name, 600, "+") for name, b in (("stage1", b1), ("stage2", b2))
            for s, e in zip(b, np.r_[b[1:], size])]
    write_bed6(tmp_path / "boundaries.bed", rows, chrom_order=["chrZ"])
    return fasta


def test_annotate_writes_tables_figures_and_a_report_built_from_the_numbers(tmp_path, write_fasta):
    fasta = _write_case(tmp_path, write_fasta, np.random.default_rng(9))
    out = tmp_path / "report"
    summary = annotate(tmp_path / "boundaries.bed", [tmp_path / "genes.gff3"], fasta, out, permutations=50)
    assert sorted(p.name for p in out.iterdir()) == [
        "boundary_profiles.png", "cds_phase.png", "chunk_lengths.png", "enrichment.tsv", "report.md", "summary.json"]
    for png in ("boundary_profiles.png", "cds_phase.png", "chunk_lengths.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header, *lines = (out / "enrichment.tsv").read_text().splitlines()
    assert header.split("\t")[:4] == ["stage", "feature", "edge", "window"]
    stages = {line.split("\t")[0] for line in lines}
    assert stages == {s["name"] for s in summary["stages"]} | {s["grid"] for s in summary["stages"]}
    assert [s["grid"] for s in summary["stages"]][0] == f"stage1_grid{round(summary['stages'][0]['compression'])}"
    assert {"repeat", "intron", "intergenic", "promoter", "exon", "CDS"} <= {line.split("\t")[1] for line in lines}
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["stages"][0]["name"] == "stage1" and on_disk["analysed_bases"] == 60_000
    report = (out / "report.md").read_text()
    assert "![profiles](boundary_profiles.png)" in report and "## Selection rate" in report
    for finding in summary["findings"]:
        assert finding["text"] in report
        assert "agrees" not in finding["text"]  # no unconditional agreement with published work
        if finding["verdict"] == "enriched":  # a claim needs the context-matched interval above 1
            assert finding["context_interval"][0] > 1 and "consistent with" in finding["text"]
        elif "context_interval" in finding and finding["verdict"] != "not testable":
            assert "consistent with" not in finding["text"]
    exon_start = [f for f in summary["findings"] if f["stage"] == "stage1" and "intron starts" in f["text"]]
    assert exon_start and exon_start[0]["verdict"] == "enriched"  # planted whatever the sequence
    stage1 = next(s for s in summary["stages"] if s["name"] == "stage1")
    assert 1 <= stage1["context_k"] <= stage1["context_k_supported"]
    assert "## Context predictability" in report and "k=8" in report and "sequence context" in report
    assert summary["tests"] == sum(np.isfinite(r.get(k, np.nan)) for r in summary["enrichment"] for k in ("shift_q", "grid_q", "context_q")) \
        + sum(r["p"] is not None and np.isfinite(r["p"]) for c in summary["start_codons"].values() for r in c["strands"].values())
    assert set(summary["start_codons"]) == {"stage1", "stage2"}
    repeats = next(r for r in summary["enrichment"] if r["stage"] == "stage1" and r["feature"] == "repeat" and r["edge"] == "body")
    assert repeats["bases"] == 8_000
    assert summary["selection_rates"]["stage1"]["start_codon"]["bases"] == 90


def test_annotate_stage_selection_and_unknown_stage(tmp_path, write_fasta):
    fasta = _write_case(tmp_path, write_fasta, np.random.default_rng(10))
    summary = annotate(tmp_path / "boundaries.bed", [tmp_path / "genes.gff3"], fasta, tmp_path / "s2", permutations=20, stage=2)
    assert [s["name"] for s in summary["stages"]] == ["stage2"]
    with pytest.raises(DnahnetInputError, match="no boundaries for stage3; the file has stage1, stage2"):
        annotate(tmp_path / "boundaries.bed", [tmp_path / "genes.gff3"], fasta, tmp_path / "s3", stage=3)


def test_annotate_real_chr22_slice_with_refseq_tracks(tmp_path, shared_data):
    """Boundaries over a real 300 kb stretch of hg19 chr22, planted at RefSeq exon edges."""
    folder = shared_data / "hg19-chr22"
    lo, hi = 20_000_000, 20_300_000
    rng = np.random.default_rng(0)
    edges = []
    for line in (folder / "RefSeqExon.chr22.bed").read_text().splitlines():
        _, s, e = line.split("\t")[:3]
        edges += [int(s), int(e)]
    edges = np.array([x for x in edges if lo < x < hi])
    b = np.unique(np.r_[lo, lo + np.flatnonzero(rng.random(hi - lo) < 0.3), edges])
    write_bed6(tmp_path / "b.bed", [("chr22", int(s), int(e), "stage1", 500, "+") for s, e in zip(b, np.r_[b[1:], hi])])
    tracks = [folder / f"{n}.chr22.bed" for n in ("RefSeqTSS", "RefSeqExon", "RefSeqGene", "CpGIsland")]
    summary = annotate(tmp_path / "b.bed", tracks, folder / "chr22.fa.gz", tmp_path / "out", permutations=100)
    rows = by_edge(summary["enrichment"], "stage1")
    # one planted boundary among 11 positions at rate 0.3: (10 * 0.3 + 1) / (11 * 0.3) = 1.21
    assert rows[("RefSeqExon", "start")]["fold"] > 1.15 and rows[("RefSeqExon", "start")]["p_enriched"] == pytest.approx(1 / 101)
    grid = by_edge(summary["enrichment"], summary["stages"][0]["grid"])
    assert 0.9 < grid[("RefSeqExon", "start")]["fold"] < 1.1
    with pysam.FastaFile(str(folder / "chr22.fa.gz")) as fasta:
        assert rows[("repeat", "body")]["bases"] == sum(c.islower() for c in fasta.fetch("chr22", lo, hi))
    assert {"RefSeqTSS", "RefSeqExon", "RefSeqGene", "CpGIsland", "repeat", "intergenic", "promoter"} <= set(summary["feature_types"])
    assert summary["chromosome_names"][str(tracks[0])]["matched"] == 1


def test_annotate_without_features_in_the_boundary_regions_exits_2_with_one_line(tmp_path, write_fasta, capsys):
    from dnahnet_cli.main import main

    fasta = _write_case(tmp_path, write_fasta, np.random.default_rng(11))
    far = tmp_path / "far.bed"
    far.write_text("chrZ\t70000\t71000\tx\t0\t+\n")  # beyond the 60 kb the boundaries cover
    out = tmp_path / "none"
    with pytest.raises(DnahnetInputError, match="no annotated feature lies inside the boundary regions"):
        annotate(tmp_path / "boundaries.bed", [far], fasta, out, permutations=5)
    code = main(["annotate", "--boundaries", str(tmp_path / "boundaries.bed"), "--annotation", str(far),
                 "--genome", str(fasta), "--out", str(out), "--permutations", "5"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "no annotated feature lies inside the boundary regions (chrZ:0-60000)" in err[0]
    assert not (out / "report.md").exists()


def test_annotate_context_order_beyond_the_data_is_lowered_with_a_note(tmp_path, write_fasta, capsys):
    from dnahnet_cli.main import main

    fasta = _write_case(tmp_path, write_fasta, np.random.default_rng(12))
    code = main(["annotate", "--boundaries", str(tmp_path / "boundaries.bed"), "--annotation", str(tmp_path / "genes.gff3"),
                 "--genome", str(fasta), "--out", str(tmp_path / "k8"), "--permutations", "10", "--bootstrap", "50",
                 "--context-k", "8", "--stage", "1"])
    err = capsys.readouterr().err
    assert code == 0 and "context order k=8 needs 20 positions per 8-mer" in err and "using k=5" in err  # 60 kb: k <= 5
    summary = json.loads((tmp_path / "k8" / "summary.json").read_text())
    assert summary["stages"][0]["context_k"] == 5 and summary["context"]["stage1"]["requested"] == 8
