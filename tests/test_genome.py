"""Genome: indexed FASTA access on the bundled real chr22 slice and on small real-derived files."""

from __future__ import annotations

import gzip
import os
import pickle
import stat

import numpy as np
import pysam
import pytest

from dnahnet.data import genome as genome_module
from dnahnet.data.genome import Genome
from dnahnet.errors import DnahnetInputError

SLICE = "chr22_slice"


def test_demo_slice_has_documented_size_and_real_bases(demo_genome):
    assert demo_genome.names == [SLICE]
    assert demo_genome.sizes == {SLICE: 5_000_000}
    assert demo_genome.acgt_bases(SLICE) == 3_262_868


def test_fetch_equals_a_slice_of_the_plain_sequence(demo_genome, demo_sequence):
    rng = np.random.default_rng(1)
    for start in rng.integers(0, 5_000_000 - 5000, size=50):
        end = int(start) + int(rng.integers(0, 5000))
        assert demo_genome.fetch(SLICE, int(start), end) == demo_sequence[start:end]
    assert demo_genome.fetch(SLICE, 4_999_990, 5_000_000) == demo_sequence[-10:]


def test_plain_and_bgzip_copies_agree(demo_genome, demo_sequence, write_fasta, data_cache):
    region = demo_sequence[3_000_000:3_200_000]
    plain = write_fasta({"piece": region}, "piece.fa")
    bgz = plain.with_suffix(".fa.gz")
    pysam.tabix_compress(str(plain), str(bgz))
    a, b = Genome(plain, cache_dir=data_cache), Genome(bgz, cache_dir=data_cache)
    assert (a.kind, b.kind) == ("plain", "bgzip")
    assert a.index_path == plain.parent / "piece.fa.fai"  # built next to a writable file
    assert b.gzi_path == plain.parent / "piece.fa.gz.gzi"
    for start, end in [(0, 1), (59, 61), (12_345, 23_456), (199_000, 200_000)]:
        assert a.fetch("piece", start, end) == b.fetch("piece", start, end) == region[start:end]


def test_fetch_normalized_uppercases_and_keeps_the_soft_mask(write_fasta, data_cache):
    g = Genome(write_fasta({"s": "ACgtNRyU"}), cache_dir=data_cache)
    ids, soft = g.fetch_normalized("s", 0, 8)
    assert ids.tobytes() == b"ACGTNNNT"
    assert soft.tolist() == [False, False, True, True, False, False, True, False]


def test_index_goes_to_the_cache_when_the_folder_is_read_only(demo_sequence, tmp_path, monkeypatch):
    ro = tmp_path / "readonly"
    ro.mkdir()
    plain = ro / "piece.fa"
    plain.write_bytes(b">piece\n" + b"\n".join(demo_sequence[i : i + 60] for i in range(4_000_000, 4_100_000, 60)) + b"\n")
    pysam.tabix_compress(str(plain), str(ro / "piece.fa.gz"))
    plain.unlink()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    if os.geteuid() == 0:  # root ignores permission bits: stand in for the read-only folder
        real = genome_module._dir_is_writable
        monkeypatch.setattr(genome_module, "_dir_is_writable", lambda f: False if f == ro else real(f))
    try:
        cache = tmp_path / "cache"
        g = Genome(ro / "piece.fa.gz", cache_dir=cache)
        assert sorted(os.listdir(ro)) == ["piece.fa.gz"]
        assert g.index_path.parent.parent.parent == cache and g.gzi_path.exists()
        assert g.fetch("piece", 0, 120) == demo_sequence[4_000_000:4_000_120]
        built = g.index_path.stat().st_mtime_ns
        again = Genome(ro / "piece.fa.gz", cache_dir=cache)  # reused, not rebuilt
        assert again.index_path == g.index_path and again.index_path.stat().st_mtime_ns == built
    finally:
        ro.chmod(0o755)


def test_n_runs_and_counts_match_the_sequence(demo_genome, demo_sequence):
    seq = np.frombuffer(demo_sequence, dtype=np.uint8)
    isn = ~np.isin(seq, np.frombuffer(b"ACGTacgt", dtype=np.uint8))
    starts, ends = demo_genome.n_runs(SLICE)
    rebuilt = np.zeros(len(seq), dtype=bool)
    for s, e in zip(starts, ends):
        rebuilt[s:e] = True
    assert np.array_equal(rebuilt, isn)
    assert demo_genome.n_fraction(SLICE) == pytest.approx(isn.mean())
    cs = np.concatenate([[0], np.cumsum(isn)])
    rng = np.random.default_rng(2)
    a = rng.integers(0, len(seq) - 3000, size=2000)
    b = a + rng.integers(0, 3000, size=2000)
    assert np.array_equal(demo_genome.n_counts(SLICE, a, b), cs[b] - cs[a])
    eff = demo_genome.effective_intervals(SLICE)
    assert sum(e - s for s, e in eff) == demo_genome.acgt_bases(SLICE)
    assert all(not isn[s:e].any() for s, e in eff[:50])


def test_an_all_n_chromosome_is_detectable(write_fasta, data_cache):
    g = Genome(write_fasta({"gap": "N" * 500, "real": "ACGT" * 100}), cache_dir=data_cache)
    assert g.n_fraction("gap") == 1.0 and g.effective_intervals("gap") == []
    assert g.n_fraction("real") == 0.0 and g.effective_intervals("real") == [(0, 400)]


def test_genome_survives_pickling_for_loader_workers(demo_genome, demo_sequence):
    clone = pickle.loads(pickle.dumps(demo_genome))
    assert clone.fetch(SLICE, 2_000_000, 2_000_100) == demo_sequence[2_000_000:2_000_100]


# ----- bad inputs: one clear line naming the file ------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(DnahnetInputError, match="not found") as err:
        Genome(tmp_path / "nope.fa")
    assert "nope.fa" in str(err.value)


def test_plain_gzip_is_refused_with_the_bgzip_command(write_fasta):
    plain = write_fasta({"s": "ACGT" * 50})
    gz = plain.with_name("s.fa.gz")
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    with pytest.raises(DnahnetInputError, match="bgzip") as err:
        Genome(gz)
    assert str(gz) in str(err.value) and "plain gzip" in str(err.value)


def test_not_fasta_is_refused(tmp_path, write_fasta):
    gbk = tmp_path / "x.gbk"
    gbk.write_text("LOCUS       NZ_AHMY02000001   1000 bp    DNA\n")
    with pytest.raises(DnahnetInputError, match="GenBank") as err:
        Genome(gbk)
    assert "x.gbk" in str(err.value)
    empty = tmp_path / "empty.fa"
    empty.write_bytes(b"")
    with pytest.raises(DnahnetInputError, match="empty"):
        Genome(empty)


def test_ragged_fasta_reports_the_htslib_reason(tmp_path):
    bad = tmp_path / "ragged.fa"
    bad.write_text(">x\nACGT\nACGTAA\nAC\n")
    with pytest.raises(DnahnetInputError, match="line length") as err:
        Genome(bad)
    assert "ragged.fa" in str(err.value)


def test_out_of_range_and_unknown_chromosome(demo_genome):
    with pytest.raises(DnahnetInputError, match=r"chr22_slice:4999990-5000010.*5,000,000 bases"):
        demo_genome.fetch(SLICE, 4_999_990, 5_000_010)
    with pytest.raises(DnahnetInputError, match="record chr1"):
        demo_genome.fetch("chr1", 0, 10)
    with pytest.raises(DnahnetInputError):
        demo_genome.fetch(SLICE, -1, 10)
