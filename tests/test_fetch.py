"""fetch_genome against local file:// URLs, the bundled manifests, and the demo slice's provenance."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import pysam
import pytest

from dnahnet.data.demo import demo_annotation_paths, demo_genome_path, demo_manifest
from dnahnet.data.fetch import fetch_genome, load_manifest
from dnahnet.data.genome import Genome
from dnahnet.errors import DnahnetInputError


@pytest.fixture
def gzip_fasta(tmp_path, demo_sequence):
    """A small real FASTA (two pieces of the chr22 slice) compressed with plain gzip, as UCSC serves genomes."""
    pieces = {"p1": demo_sequence[4_100_000:4_130_000], "p2": demo_sequence[4_200_000:4_210_017]}
    text = b"".join(b">" + k.encode() + b"\n" + b"\n".join(v[i : i + 50] for i in range(0, len(v), 50)) + b"\n"
                    for k, v in pieces.items())
    src = tmp_path / "src" / "mini.fa.gz"
    src.parent.mkdir()
    src.write_bytes(gzip.compress(text))
    bed = tmp_path / "src" / "splits.bed"
    bed.write_text("p1\t0\t20000\ttrain\np1\t20000\t30000\tvalid\np2\t0\t10017\ttest\n")
    return src, bed, pieces


def manifest_for(src, bed, **extra) -> dict:
    data = src.read_bytes()
    return {
        "name": "mini", "url": src.as_uri(), "filename": "mini.fa.gz",
        "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "total_bases": 40_017,
        "splits": {"bed_url": bed.as_uri(), "bed_filename": "mini-splits.bed"}, **extra,
    }


def test_fetch_converts_gzip_to_indexed_bgzip(gzip_fasta, tmp_path):
    src, bed, pieces = gzip_fasta
    manifest = manifest_for(src, bed)
    out = fetch_genome(manifest, tmp_path / "genomes")
    assert out == tmp_path / "genomes" / "mini.fa.gz"
    assert sorted(os.listdir(out.parent)) == ["mini-splits.bed", "mini.fa.gz", "mini.fa.gz.fai", "mini.fa.gz.gzi"]
    g = Genome(out)
    assert g.kind == "bgzip" and g.sizes == {"p1": 30_000, "p2": 10_017}
    assert g.fetch("p2", 9_000, 10_017) == pieces["p2"][9_000:]
    assert (out.parent / "mini-splits.bed").read_bytes() == bed.read_bytes()
    src.unlink()  # a finished fetch is not downloaded again
    assert fetch_genome(manifest, tmp_path / "genomes") == out


def test_plain_and_bgzip_downloads(tmp_path, gzip_fasta):
    src, bed, _ = gzip_fasta
    plain = src.with_name("mini.fa")
    plain.write_bytes(gzip.decompress(src.read_bytes()))
    bgz = src.with_name("mini.bgz.fa.gz")
    pysam.tabix_compress(str(plain), str(bgz))
    for i, path in enumerate([plain, bgz]):
        out = fetch_genome(manifest_for(path, bed), tmp_path / f"out{i}")
        assert Genome(out).fetch("p1", 0, 30_000) == Genome(plain).fetch("p1", 0, 30_000)


def test_checksum_and_size_mismatch_leave_nothing_behind(gzip_fasta, tmp_path):
    src, bed, _ = gzip_fasta
    dest = tmp_path / "genomes"
    with pytest.raises(DnahnetInputError, match="sha256"):
        fetch_genome(manifest_for(src, bed, sha256="0" * 64), dest)
    with pytest.raises(DnahnetInputError, match="expects 12"):
        fetch_genome(manifest_for(src, bed, size_bytes=12), dest)
    with pytest.raises(DnahnetInputError, match="expects 40,000"):
        fetch_genome(manifest_for(src, bed, total_bases=40_000), tmp_path / "other")
    assert os.listdir(dest) == []


def test_not_fasta_or_unreachable_url(tmp_path):
    page = tmp_path / "error.html"
    page.write_text("<html>404 Not Found</html>")
    manifest = {"name": "bad", "url": page.as_uri()}
    with pytest.raises(DnahnetInputError, match="not a FASTA"):
        fetch_genome(manifest, tmp_path / "out")
    assert os.listdir(tmp_path / "out") == []
    with pytest.raises(DnahnetInputError, match="cannot download"):
        fetch_genome({"name": "gone", "url": (tmp_path / "missing.fa.gz").as_uri()}, tmp_path / "out")


def test_hg38_manifest_names_ucsc_and_the_hyenadna_splits():
    m = load_manifest("hg38")
    assert m["url"] == "https://hgdownload.soe.ucsc.edu/goldenPath/hg38/bigZips/hg38.fa.gz"
    assert m["splits"]["bed_url"].endswith("basenji_barnyard2/sequences_human.bed")
    assert m["total_bases"] == 3_209_286_105
    with pytest.raises(DnahnetInputError, match="hg38"):
        load_manifest("hg99")


def test_demo_manifest_points_at_bundled_files():
    m = demo_manifest()
    assert demo_genome_path().exists() and demo_genome_path().name == "chr22_slice.fa.gz"
    tracks = demo_annotation_paths()
    assert set(tracks) == {"RefSeqGene", "RefSeqExon", "RefSeqTSS", "RefSeqTES", "CpGIsland"}
    exons = tracks["RefSeqExon"].read_text().splitlines()
    assert len(exons) == m["annotation_records"]["RefSeqExon"] == 1086
    assert all(line.split("\t")[0] == "chr22_slice" and 0 <= int(line.split("\t")[1]) < 5_000_000 for line in exons)
    assert json.loads(json.dumps(m))["sequence"]["offset"] == 37_400_000


def test_demo_slice_is_chr22_at_its_offset(shared_data, demo_genome):
    chr22 = Genome(shared_data / "hg19-chr22" / "chr22.fa.gz")
    offset = demo_manifest()["sequence"]["offset"]
    for start in (0, 1_234_567, 4_999_000):
        assert demo_genome.fetch("chr22_slice", start, start + 1000) == chr22.fetch("chr22", offset + start, offset + start + 1000)
    original = {tuple(line.split("\t")[:3]) for line in (shared_data / "hg19-chr22" / "RefSeqExon.chr22.bed").read_text().splitlines()}
    inner = 0
    for line in demo_annotation_paths()["RefSeqExon"].read_text().splitlines():
        _, a, b = line.split("\t")[:3]
        if int(a) > 0 and int(b) < 5_000_000:  # not clipped at the slice ends
            assert ("chr22", str(int(a) + offset), str(int(b) + offset)) in original
            inner += 1
    assert inner >= 1080
