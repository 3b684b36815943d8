"""BED/bedGraph I/O: values read back exactly, bad lines are located, output is what bedtools expects."""

from __future__ import annotations

import gzip
import shutil
import subprocess

import numpy as np
import pytest

from dnahnet.errors import DnahnetInputError
from dnahnet.io.bed import (
    BedColumns,
    BedGraph,
    BedRecord,
    read_bed,
    read_bed_columns,
    read_bedgraph,
    sort_key,
    write_bed6,
    write_bedgraph,
)

needs_bedtools = pytest.mark.skipif(shutil.which("bedtools") is None, reason="bedtools is not installed (apt-get install bedtools)")

FAI_ORDER = ["chr2", "chr10", "chrM"]  # deliberately not lexicographic


def _write(path, text: str, gz: bool = False):
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_read_bed3_to_bed12_with_headers(tmp_path):
    text = (
        "browser position chr2:1-100\n"
        'track name="genes"\n'
        "# a comment\n"
        "chr2\t10\t100\ttx1\t960\t+\t20\t90\t0,0,0\t2\t30,40,\t0,50,\n"
        "chr10\t0\t5\ttx2\t0\t-\t0\t0\t255,0,0\t1\t5\t0\n"
    )
    records = read_bed(_write(tmp_path / "a.bed.gz", text, gz=True))
    assert records[0] == BedRecord("chr2", 10, 100, "tx1", 960.0, "+", 20, 90, "0,0,0", ((10, 40), (60, 100)), 12)
    assert records[1].blocks == ((0, 5),) and records[1].strand == "-"
    bed3 = read_bed(_write(tmp_path / "b.bed", "chrM\t0\t1\nchrM\t5\t5\n"))
    assert [(r.chrom, r.start, r.end, r.name, r.strand, r.n_columns) for r in bed3] == [
        ("chrM", 0, 1, ".", ".", 3), ("chrM", 5, 5, ".", ".", 3)]


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("chr2\tten\t20\tn\t0\t+", "start 'ten' is not an integer"),
        ("chr2\t30\t20\tn\t0\t+", "end 20 < start 30"),
        ("chr2\t30", "expected at least 3 columns, found 2"),
        ("chr2\t1\t2\tn\t0\t*", "strand '*'"),
        ("chr2\t1\t2\tn\t0", "found 5 columns but the first data line has 6"),
    ],
)
def test_malformed_line_is_reported_with_file_and_line(tmp_path, bad_line, message):
    path = _write(tmp_path / "bad.bed", f"track name=x\nchr2\t0\t5\tn\t0\t+\nchr2\t5\t9\tn\t0\t-\n{bad_line}\n")
    for reader in (read_bed, read_bed_columns):
        with pytest.raises(DnahnetInputError) as err:
            reader(path)
        assert str(path) in str(err.value) and "line 4" in str(err.value) and message in str(err.value)


def test_bed12_blocks_are_checked(tmp_path):
    path = _write(tmp_path / "b12.bed", "chr2\t10\t100\ttx\t0\t+\t10\t100\t0\t2\t30,40\t0,70\n")
    with pytest.raises(DnahnetInputError, match=r"line 1: .*blocks overlap|blocks must start"):
        read_bed(path)


def test_bedgraph_errors_name_the_line(tmp_path):
    path = _write(tmp_path / "p.bedGraph", "track type=bedGraph\nchr2\t0\t1\t0.5\nchr2\t1\t2\thigh\n")
    with pytest.raises(DnahnetInputError, match=r"p\.bedGraph, record line 3: value 'high' is not a number"):
        read_bedgraph(path)


def test_fast_column_reader_equals_record_reader(tmp_path):
    text = "chr2\t0\t5\tstage1\t12\t+\n# mid-file comment\nchr10\t3\t9\tstage2\t.\t-\nchr2\t5\t7\tstage1\t7.5\t.\n"
    path = _write(tmp_path / "c.bed", text)
    cols, recs = read_bed_columns(path), read_bed(path)
    assert cols.chrom.tolist() == [r.chrom for r in recs] == ["chr2", "chr10", "chr2"]
    assert cols.start.tolist() == [0, 3, 5] and cols.end.tolist() == [5, 9, 7]
    np.testing.assert_array_equal(cols.score, [12.0, np.nan, 7.5])
    assert cols.strand.tolist() == ["+", "-", "."] and cols.n_columns == 6
    four = read_bed_columns(path, max_columns=4)
    assert four.name.tolist() == ["stage1", "stage2", "stage1"] and four.score is None


def test_sort_key_follows_fai_order_then_start():
    rows = [("chr10", 5, 9), ("chr2", 7, 8), ("chrUn", 0, 1), ("chr2", 1, 3), ("chrM", 0, 2), ("chrA", 4, 5)]
    assert sorted(rows, key=sort_key(FAI_ORDER)) == [
        ("chr2", 1, 3), ("chr2", 7, 8), ("chr10", 5, 9), ("chrM", 0, 2), ("chrA", 4, 5), ("chrUn", 0, 1)]
    assert sorted(rows, key=sort_key())[0] == ("chr10", 5, 9)  # plain name order, like `bedtools sort`


def _boundary_rows(seed: int = 0) -> list[tuple]:
    """Chunks of two stages on three chromosomes, shuffled; stage-2 chunks share starts with stage-1 ones."""
    rng = np.random.default_rng(seed)
    rows = []
    for chrom, size in (("chr2", 900), ("chr10", 700), ("chrM", 300)):
        b1 = np.unique(np.r_[0, rng.choice(np.arange(1, size), size // 3, replace=False)])
        b2 = b1[::2]
        for name, b in (("stage1", b1), ("stage2", b2)):
            ends = np.r_[b[1:], size]
            rows += [(chrom, int(s), int(e), name, int(rng.integers(0, 1001)), "+") for s, e in zip(b, ends)]
    rng.shuffle(rows)
    return rows


def test_write_bed6_sorts_and_round_trips(tmp_path):
    rows = _boundary_rows()
    out = tmp_path / "chunks.bed"
    assert write_bed6(out, rows, track_line='name="dnahnet chunks"', chrom_order=FAI_ORDER) == len(rows)
    lines = out.read_text().splitlines()
    assert lines[0] == 'track name="dnahnet chunks"'
    back = [(r.chrom, r.start, r.end, r.name, int(r.score), r.strand) for r in read_bed(out)]
    assert back == sorted(rows, key=sort_key(FAI_ORDER))
    columns = read_bed_columns(out)
    write_bed6(tmp_path / "again.bed", columns, track_line='name="dnahnet chunks"', chrom_order=FAI_ORDER)
    assert (tmp_path / "again.bed").read_text() == out.read_text()


def test_write_bedgraph_round_trips_values(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.random(50)
    track = BedGraph(np.array(["chr10"] * 25 + ["chr2"] * 25, dtype=object), np.r_[np.arange(25), np.arange(25)],
                     np.r_[np.arange(25), np.arange(25)] + 1, values)
    out = tmp_path / "p.bedGraph"
    write_bedgraph(out, track, track_line="name=p_t", chrom_order=FAI_ORDER)
    assert out.read_text().splitlines()[0] == "track name=p_t type=bedGraph"
    back = read_bedgraph(out)
    assert back.chrom.tolist()[:25] == ["chr2"] * 25
    np.testing.assert_allclose(back.value[:25], values[25:], rtol=1e-5)
    np.testing.assert_allclose(back.value[25:], values[:25], rtol=1e-5)


def test_writers_refuse_invalid_intervals(tmp_path):
    with pytest.raises(ValueError, match="invalid interval chr2:5-4"):
        write_bed6(tmp_path / "x.bed", [("chr2", 5, 4, "n", 0, "+")])
    with pytest.raises(ValueError, match="strand"):
        write_bed6(tmp_path / "x.bed", [("chr2", 1, 4, "n", 0, "x")])
    assert not (tmp_path / "x.bed").exists()


def _fai(tmp_path):
    fai = tmp_path / "genome.fa.fai"
    fai.write_text("chr2\t900\t6\t60\t61\nchr10\t700\t928\t60\t61\nchrM\t300\t1650\t60\t61\n")
    return fai


def _bedtools(*args: str) -> str:
    return subprocess.run(["bedtools", *args], check=True, capture_output=True, text=True).stdout


@needs_bedtools
def test_bed6_output_passes_bedtools_sort_faidx_unchanged(tmp_path):
    one_stage = tmp_path / "stage1.bed"
    write_bed6(one_stage, [r for r in _boundary_rows(2) if r[3] == "stage1"], track_line="name=chunks",
               chrom_order=FAI_ORDER)
    assert _bedtools("sort", "-header", "-faidx", str(_fai(tmp_path)), "-i", str(one_stage)) == one_stage.read_text()
    # Two stages share chunk starts; bedtools orders such ties arbitrarily (std::sort), so compare the sort keys.
    both = tmp_path / "both.bed"
    write_bed6(both, _boundary_rows(2), chrom_order=FAI_ORDER)
    resorted = _bedtools("sort", "-faidx", str(_fai(tmp_path)), "-i", str(both)).splitlines()
    ours = both.read_text().splitlines()
    assert [line.split("\t")[:2] for line in resorted] == [line.split("\t")[:2] for line in ours]
    assert sorted(resorted) == sorted(ours)


@needs_bedtools
def test_bedtools_sorted_sweep_accepts_our_order(tmp_path):
    out = tmp_path / "chunks.bed"
    write_bed6(out, _boundary_rows(4), chrom_order=FAI_ORDER)
    genome = tmp_path / "genome.txt"
    genome.write_text("chr2\t900\nchr10\t700\nchrM\t300\n")
    genes = tmp_path / "genes.bed"
    write_bed6(genes, [("chr10", 0, 40, "g2", 0, "-"), ("chr2", 100, 250, "g1", 0, "+")], chrom_order=FAI_ORDER)
    swept = _bedtools("intersect", "-sorted", "-g", str(genome), "-u", "-a", str(out), "-b", str(genes))
    assert swept == _bedtools("intersect", "-u", "-a", str(out), "-b", str(genes)) and swept


@needs_bedtools
def test_bedgraph_output_passes_bedtools_sort_faidx_unchanged(tmp_path):
    out = tmp_path / "p.bedGraph"
    rows = [(c, i, i + 1, v) for c in ("chrM", "chr2") for i, v in enumerate(np.linspace(0, 1, 40).tolist())]
    write_bedgraph(out, rows[::-1], chrom_order=FAI_ORDER)
    assert _bedtools("sort", "-faidx", str(_fai(tmp_path)), "-i", str(out)) == out.read_text()


@needs_bedtools
def test_bedtools_intersect_reads_our_bed(tmp_path):
    out = tmp_path / "chunks.bed"
    rows = _boundary_rows(3)
    write_bed6(out, rows, chrom_order=FAI_ORDER)
    genes = [("chr2", 100, 250, "g1", 0, "+"), ("chr10", 0, 40, "g2", 0, "-"), ("chrM", 290, 300, "g3", 0, "+")]
    ann = tmp_path / "genes.bed"
    write_bed6(ann, genes, chrom_order=FAI_ORDER)
    hits = _bedtools("intersect", "-u", "-a", str(out), "-b", str(ann)).splitlines()
    expected = {r for r in rows if any(r[0] == g[0] and r[1] < g[2] and g[1] < r[2] for g in genes)}
    got = {(c, int(s), int(e), n, int(sc), st) for c, s, e, n, sc, st in (h.split("\t") for h in hits)}
    assert got == expected and len(got) > 20
    assert isinstance(read_bed_columns(out), BedColumns)
