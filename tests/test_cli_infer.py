"""The inference commands end to end: outputs on real sequence, and one-line exit-2 errors."""

from __future__ import annotations

import pytest

from dnahnet_cli.main import main
from infer_fixtures import CLEAN, GAPPY, chr22, checkpoints, small_genome  # noqa: F401


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(capsys, argv: list, *needles: str) -> None:
    code, _, err = run(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("dnahnet: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("command", ["score", "variants", "generate", "boundaries"])
def test_every_command_help_has_an_example(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and "Example: dnahnet " + command in " ".join(out.split()).replace(" │ ", " ")


def test_score_command_writes_tsv_and_per_base_track(capsys, checkpoints, write_fasta, tmp_path, chr22):
    fasta = write_fasta({"a": chr22(CLEAN[1], CLEAN[1] + 300), "b": chr22(GAPPY[1] + 800, GAPPY[1] + 1000)})
    out, track = tmp_path / "s.tsv", tmp_path / "s.bedGraph"
    code, _, err = run(capsys, "score", "--checkpoint", checkpoints["tiny"], "--fasta", fasta, "--out", out,
                       "--per-base", track, "--rc", "--reduce", "mean")
    assert code == 0 and "scored 2 of 2" in err
    rows = [line.split("\t") for line in open(out) if not line.startswith("#")]
    assert rows[0][:4] == ["name", "length", "n_count", "scored_bases"] and len(rows) == 3
    per_base = [line.split("\t") for line in open(track)]
    assert sum(float(r[3]) for r in per_base if r[0] == "a") == pytest.approx(-float(rows[1][5]) * int(rows[1][3]), rel=1e-6)


def test_score_to_stdout_and_text_mode(capsys, checkpoints, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello bytes " * 30)
    code, out, _ = run(capsys, "score", "--checkpoint", checkpoints["tiny"], "--text", text, "--out", "-")
    assert code == 0 and "bits_per_byte" in out and "t.txt\t360\t0\t359\t" in out


def test_boundaries_and_generate_commands(capsys, checkpoints, small_genome, tmp_path):
    out = tmp_path / "b.bed"
    code, _, err = run(capsys, "boundaries", "--checkpoint", checkpoints["tiny2"], "--genome", small_genome.path,
                       "--region", "chrC:1,001-2,000", "--out", out, "--probs", tmp_path / "p.bedGraph", "--track-line")
    assert code == 0 and "chunks stage1" in err
    rows = [line.split("\t") for line in open(out) if not line.startswith("track")]
    assert rows and all(r[0] == "chrC" and 1000 <= int(r[1]) < int(r[2]) <= 2000 for r in rows)
    assert (tmp_path / "p.stage2.bedGraph").exists()
    code, out_text, _ = run(capsys, "generate", "--checkpoint", checkpoints["tiny2"], "--prompt", "ACGTTGCA", "-n", "12",
                            "--temperature", "0", "--show-boundaries")
    lines = out_text.splitlines()
    assert code == 0 and len(lines[0]) == 20 and lines[1].startswith("stage1\t") and lines[2].startswith("stage2\t")
    assert lines[1].split("\t")[1].replace("|", "") == lines[0]


def test_bad_inputs_exit_2_with_one_line(capsys, checkpoints, write_fasta, small_genome, tmp_path):
    ck = checkpoints["tiny"]
    bad = write_fasta({"good": "ACGT", "weird": "ACGTACZ"}, "bad.fa")
    assert_one_line_error(capsys, ["score", "--checkpoint", ck, "--fasta", bad, "--out", tmp_path / "o.tsv"],
                          "record weird", "position 7")
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    assert_one_line_error(capsys, ["score", "--checkpoint", ck, "--fasta", empty, "--out", tmp_path / "o.tsv"], "no FASTA records")
    bed = tmp_path / "r.bed"
    bed.write_text("chrA\t0\t100\nchrA\t3990\t4100\n")
    assert_one_line_error(capsys, ["score", "--checkpoint", ck, "--genome", small_genome.path, "--bed", bed, "--out", "-"],
                          "line 2", "outside chrA")
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=chrQ>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nchrQ\t5\t.\tA\tG\t.\t.\t.\n")
    assert_one_line_error(capsys, ["variants", "--checkpoint", ck, "--genome", small_genome.path, "--vcf", vcf,
                                   "--out", tmp_path / "v.tsv"], "contig")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors"):
        (broken / name).write_bytes((ck / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    assert_one_line_error(capsys, ["score", "--checkpoint", broken, "--fasta", bad, "--out", "-"], "corrupted")
    assert_one_line_error(capsys, ["generate", "--checkpoint", tmp_path / "missing", "-n", "5"], "not found")
    assert_one_line_error(capsys, ["boundaries", "--checkpoint", checkpoints["iso"], "--genome", small_genome.path,
                                   "--out", tmp_path / "x.bed"], "no routing stages")
    assert_one_line_error(capsys, ["boundaries", "--checkpoint", ck, "--genome", small_genome.path, "--region", "chrA:10-99999",
                                   "--out", tmp_path / "x.bed"], "outside chrA")
    assert_one_line_error(capsys, ["score", "--checkpoint", ck, "--out", "-"], "exactly one input")
    assert not (tmp_path / "o.tsv").exists() and not (tmp_path / "x.bed").exists()
