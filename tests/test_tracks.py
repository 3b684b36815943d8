"""Browser formats: bgzip + tabix BED/bedGraph and bigWig read back (pysam, pyBigWig) equal the plain text."""

from __future__ import annotations

import gzip

import numpy as np
import pysam
import pytest

from dnahnet.data.genome import is_bgzip_header
from dnahnet.infer.boundaries import export_boundaries, probs_paths
from dnahnet.infer.scoring import score_regions
from dnahnet.infer.sharding import select_regions
from dnahnet.io.bed import read_bedgraph
from dnahnet.io.bigwig import read_bigwig
from dnahnet.io.tracks import open_text_track, track_format
from infer_fixtures import checkpoints, chr22, small_genome, tiny, tiny2  # noqa: F401

pytest.importorskip("pyBigWig")
KW = dict(window=512, context=128, shard_bases=1000)


def plain_lines(path) -> list[str]:
    return [line.rstrip("\n") for line in open(path) if not line.startswith("track")]


def tabix_lines(path) -> list[str]:
    """Every record through the tabix index, contig by contig (the way a browser asks)."""
    with pysam.TabixFile(str(path)) as tbx:
        return [line for contig in tbx.contigs for line in tbx.fetch(contig)]


def assert_bigwig_equals_bedgraph(bw, bedgraph, chroms) -> None:
    text = read_bedgraph(bedgraph)
    for chrom in chroms:
        pos, val = read_bigwig(bw, chrom)
        mine = text.chrom == chrom
        assert np.array_equal(pos, text.start[mine])
        # bigWig stores float32; the text has 6 (p_t) or 9 (log2 P) significant digits
        np.testing.assert_allclose(val, text.value[mine], rtol=2e-6, atol=1e-7)


def test_track_format_follows_the_name():
    assert [track_format(n) for n in ("a.bw", "a.bigWig", "a.bed.gz", "a.bedGraph", "a.BED")] == \
        ["bigwig", "bigwig", "bgzip", "text", "text"]


def test_boundary_chunks_as_tabix_and_p_as_bigwig_equal_the_plain_files(tiny2, small_genome, tmp_path):
    plain = export_boundaries(tiny2, small_genome, None, tmp_path / "c.bed", tmp_path / "p.bedGraph", **KW)
    export_boundaries(tiny2, small_genome, None, tmp_path / "c.bed.gz", tmp_path / "p.bedGraph.gz", **KW)
    export_boundaries(tiny2, small_genome, None, tmp_path / "x.bed", tmp_path / "p.bw", **KW)
    assert open(tmp_path / "c.bed").readline().startswith('track name="dnahnet_chunks"')
    gz = tmp_path / "c.bed.gz"
    assert is_bgzip_header(gz.read_bytes()[:18]) and (tmp_path / "c.bed.gz.tbi").exists()
    assert tabix_lines(gz) == plain_lines(tmp_path / "c.bed")
    assert tabix_lines(tmp_path / "p.bedGraph.gz") == plain_lines(tmp_path / "p.bedGraph")
    with pysam.TabixFile(str(gz)) as tbx:  # a region query answers from the index
        hits = [line.split("\t") for line in tbx.fetch("chrC", 1000, 1010)]
    assert hits and all(int(f[1]) < 1010 and int(f[2]) > 1000 for f in hits)
    for k, (bw, bg) in enumerate(zip(probs_paths(tmp_path / "p.bw", 2), plain.probs)):
        assert bw.exists(), k
        assert_bigwig_equals_bedgraph(bw, bg, ["chrA", "chrC"])
    assert read_bigwig(tmp_path / "p.bw", "chrB")[0].size == 0  # all N: no p_t


def test_per_base_scores_as_bigwig_and_tabix_equal_the_bedgraph(tiny, small_genome, tmp_path):
    regions = select_regions(small_genome)
    score_regions(tiny, small_genome, regions, tmp_path / "s.tsv", tmp_path / "s.bedGraph", **KW)
    score_regions(tiny, small_genome, regions, tmp_path / "s.tsv.gz", tmp_path / "s.bw", **KW)
    score_regions(tiny, small_genome, regions, tmp_path / "t.tsv", tmp_path / "s.bedGraph.gz", **KW)
    assert_bigwig_equals_bedgraph(tmp_path / "s.bw", tmp_path / "s.bedGraph", ["chrA", "chrB", "chrC"])
    assert tabix_lines(tmp_path / "s.bedGraph.gz") == plain_lines(tmp_path / "s.bedGraph")
    with gzip.open(tmp_path / "s.tsv.gz", "rt") as fh:  # a table is bgzip-compressed, not indexed (no coordinates)
        assert fh.read() == open(tmp_path / "s.tsv").read()
    assert not (tmp_path / "s.tsv.gz.tbi").exists()


def test_a_failed_write_leaves_nothing_at_the_final_path(tmp_path):
    with pytest.raises(RuntimeError):
        with open_text_track(tmp_path / "a.bed.gz") as fh:
            fh.write(b"c\t0\t5\n")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
