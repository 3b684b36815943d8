"""Variant effects: ΔlogL(ALT − REF) over equal-length windows of real chr22 sequence."""

from __future__ import annotations

import math

import numpy as np
import pysam
import pytest

from dnahnet.errors import DnahnetInputError
from dnahnet.infer.variants import match_contig, score_variants, variant_windows
from infer_fixtures import CLEAN, chr22, checkpoints, tiny  # noqa: F401

FLANK = 40


@pytest.fixture
def genome(chr22, write_fasta, data_cache):
    """Real chr22 sequence as contig 'chr22' (1,200 bases, an N run at 900..919)."""
    from dnahnet.data.genome import Genome

    seq = chr22(CLEAN[1], CLEAN[1] + 1200)
    seq = seq[:900] + "N" * 20 + seq[920:]
    return Genome(write_fasta({"chr22": seq}, "g.fa"), cache_dir=data_cache)


def base(genome, pos1: int, n: int = 1) -> str:
    return genome.fetch("chr22", pos1 - 1, pos1 - 1 + n).decode().upper()


def write_vcf(path, rows: list[tuple], contigs=("22",)) -> str:
    header = ["##fileformat=VCFv4.2", *[f"##contig=<ID={c}>" for c in contigs],
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    body = ["\t".join(str(x) for x in (*row, ".", ".", ".")) for row in rows]
    path.write_text("\n".join(header + body) + "\n")
    return str(path)


def read_rows(path) -> list[dict]:
    lines = [line for line in open(path).read().splitlines() if not line.startswith("#")]
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in lines[1:]]


def other(b: str) -> str:
    return "C" if b != "C" else "G"


def test_indel_windows_have_equal_length_and_the_alleles_in_place(genome):
    pos0 = 500
    ref = base(genome, pos0 + 1, 3)
    for alt in [ref[0], ref[0] + "GATTACA", ref, other(ref[0]) + ref[1:]]:
        ref_w, alt_w = variant_windows(genome, "chr22", pos0, ref, alt, FLANK)
        assert len(ref_w) == len(alt_w) == 2 * FLANK + max(len(ref), len(alt))
        assert ref_w[:FLANK].tobytes() == alt_w[:FLANK].tobytes()
        assert alt_w[FLANK : FLANK + len(alt)].tobytes().decode() == alt
        assert ref_w.tobytes().decode() == base(genome, pos0 - FLANK + 1, len(ref_w))
    # deletion: the ALT window continues with the genome right after REF
    ref_w, alt_w = variant_windows(genome, "chr22", pos0, ref, ref[0], FLANK)
    assert alt_w[FLANK + 1 :].tobytes().decode() == base(genome, pos0 + 4, len(alt_w) - FLANK - 1)
    # near the contig end both windows are cut to the same length
    ref_w, alt_w = variant_windows(genome, "chr22", 1195, base(genome, 1196, 2), "A", FLANK)
    assert len(ref_w) == len(alt_w)


def test_variant_table(tiny, genome, tmp_path):
    snv, ins, dele = 301, 401, 601
    rows = [
        ("22", snv, "rs_snv", base(genome, snv), other(base(genome, snv))),
        ("22", snv, "same", base(genome, snv), base(genome, snv)),  # ALT == REF
        ("22", 350, "mismatch", other(base(genome, 350)), "A"),
        ("22", ins, "ins", base(genome, ins), base(genome, ins) + "TTAGG"),
        ("22", dele, "del", base(genome, dele, 4), base(genome, dele)),
        ("22", 700, "multi", base(genome, 700), ",".join(b for b in "ACGT" if b != base(genome, 700))),
        ("22", 890, "nearN", base(genome, 890), other(base(genome, 890))),
        ("22", 200, "sym", base(genome, 200), "<DEL>"),
        ("7", 100, "elsewhere", "A", "G"),
    ]
    vcf = write_vcf(tmp_path / "v.vcf", rows, contigs=("22", "7"))
    summary = score_variants(tiny, genome, vcf, tmp_path / "v.tsv", flank=FLANK)
    out = read_rows(tmp_path / "v.tsv")
    by_id: dict[str, list[dict]] = {}
    for r in out:
        by_id.setdefault(r["id"], []).append(r)
    assert float(by_id["same"][0]["delta_bits"]) == 0.0
    assert by_id["mismatch"][0]["ref_match"] == "0" and by_id["mismatch"][0]["delta_bits"] == "nan"
    assert by_id["mismatch"][0]["note"] == "ref_mismatch"
    assert len(by_id["multi"]) == 3  # multi-allelic split
    assert by_id["nearN"][0]["contains_N"] == "1" and by_id["rs_snv"][0]["contains_N"] == "0"
    assert by_id["sym"][0]["note"] == "unsupported_alt"
    assert "elsewhere" not in by_id and summary.missing_contigs == {"7": 1}
    assert summary.renamed_contigs == {"22": "chr22"} and summary.ref_mismatch == 1
    for r in out:
        assert r["chrom"] == "22" and r["pos"] == str(next(row[1] for row in rows if row[2] == r["id"]))
        if r["note"] == "ok":
            assert float(r["delta_bits"]) == pytest.approx(float(r["logL_alt"]) - float(r["logL_ref"]), abs=1e-4)
    # the SNV's delta is the difference of the two windows' log-likelihoods
    ref_w, alt_w = variant_windows(genome, "chr22", snv - 1, base(genome, snv), other(base(genome, snv)), FLANK)
    lr, la = (float(np.nansum(v.astype(np.float64))) for v in tiny.score([ref_w, alt_w]))
    assert float(by_id["rs_snv"][0]["delta_bits"]) == pytest.approx(la - lr, abs=1e-3)
    assert math.isfinite(float(by_id["ins"][0]["delta_bits"])) and math.isfinite(float(by_id["del"][0]["delta_bits"]))


def test_bgzip_vcf_and_rc_averaging(tiny, genome, tmp_path):
    snv = 301
    plain = write_vcf(tmp_path / "v.vcf", [("chr22", snv, "a", base(genome, snv), other(base(genome, snv))),
                                           ("chr22", snv, "b", base(genome, snv), base(genome, snv))], contigs=("chr22",))
    gz = str(tmp_path / "v.vcf.gz")
    pysam.tabix_compress(plain, gz)
    score_variants(tiny, genome, gz, tmp_path / "f.tsv", flank=FLANK)
    score_variants(tiny, genome, gz, tmp_path / "r.tsv", flank=FLANK, rc=True)
    fwd, both = read_rows(tmp_path / "f.tsv"), read_rows(tmp_path / "r.tsv")
    assert float(both[1]["delta_bits"]) == 0.0
    assert float(both[0]["delta_bits"]) != pytest.approx(float(fwd[0]["delta_bits"]), abs=1e-6)


def test_no_matching_contig_is_an_input_error(tiny, genome, tmp_path):
    vcf = write_vcf(tmp_path / "v.vcf", [("chrZZ", 10, ".", "A", "G")], contigs=("chrZZ",))
    with pytest.raises(DnahnetInputError, match="contig"):
        score_variants(tiny, genome, vcf, tmp_path / "o.tsv", flank=FLANK)
    assert not (tmp_path / "o.tsv").exists()
    headerless = write_vcf(tmp_path / "w.vcf", [("chrZZ", 10, ".", "A", "G")], contigs=())
    with pytest.raises(DnahnetInputError, match="no VCF record"):
        score_variants(tiny, genome, headerless, tmp_path / "o.tsv", flank=FLANK)


def test_contig_names_reconcile_chr_prefix_and_mitochondrion():
    names = {"chr1", "chrM", "2"}
    assert match_contig("1", names) == "chr1"
    assert match_contig("chr2", names) == "2"
    assert match_contig("MT", names) == "chrM"
    assert match_contig("3", names) is None
