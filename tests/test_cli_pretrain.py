"""`dnahnet pretrain`: trains on real genomes into a checkpoint folder; bad input is one line and exit code 2."""

from __future__ import annotations

import gzip
import json

import pytest

from dnahnet.train import checkpoint as ckpt
from dnahnet_cli.main import main
from dnahnet.io.options import parse_count

TINY = ["pretrain", "--config", "tiny", "--device", "cpu"]


def metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / ckpt.METRICS).read_text().splitlines()]


def test_pretrain_on_the_bundled_genome_then_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--steps", "4", "--eval-every", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"checkpoint  {out / 'latest'}" in printed and str(out / "metrics.jsonl") in printed
    for name in (ckpt.CONFIG, ckpt.TRAIN, ckpt.WEIGHTS, ckpt.TRAINER, ckpt.METRICS, ckpt.COMPLETE):
        assert (out / "latest" / name).is_file()
    assert (out / "best" / ckpt.COMPLETE).is_file()
    info = json.loads((out / "latest" / ckpt.TRAIN).read_text())
    assert (info["step"], info["bases_seen"]) == (4, 4 * 2048)
    assert info["data"]["genome"][0].endswith("chr22_slice.fa.gz")  # the demo genome by default
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if "eval_bits_per_base" in r] == [2, 4]
    first = rows[0]
    assert set(first) >= {"step", "bases_seen", "loss", "ce", "bits_per_base", "ratio_loss", "compression", "lr",
                          "grad_norm", "bases_per_s"}
    assert first["bits_per_base"] == pytest.approx(first["ce"] / 0.6931471805599453)
    assert 7.0 < first["bits_per_base"] < 8.5  # an untrained byte model: about log2(256) bits
    assert len(first["compression"]) == len(first["ratio_loss"]) == 1

    # resume with a longer budget; everything else comes from the checkpoint
    assert main(["pretrain", "--out", str(out), "--resume", "--steps", "6"]) == 0
    assert [r["step"] for r in metrics(out)] == [1, 2, 3, 4, 5, 6]
    assert json.loads((out / "latest" / ckpt.TRAIN).read_text())["step"] == 6


def test_pretrain_on_a_shared_fungal_genome(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("DNAHNET_CACHE", str(tmp_path / "cache"))  # its folder is read-only: index goes here
    fasta = shared_data / "umaydis" / "umaydis.fa.gz"
    out = tmp_path / "umaydis"
    assert main([*TINY, "--genome", str(fasta), "--steps", "2", "--seq-len", "128", "--batch-size", "8", "--out", str(out)]) == 0
    info = json.loads((out / "latest" / ckpt.TRAIN).read_text())
    assert info["data"]["genome"] == [str(fasta.resolve())] and info["data"]["seq_len"] == 128
    assert info["accumulation"] == 2  # 2048 bases per step = 128 x 8 x 2
    assert metrics(out)[-1]["eval_bits_per_base"] > 0


def _plain_gzip(tmp_path):
    path = tmp_path / "plain.fa.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b">chr1\n" + b"ACGT" * 200 + b"\n")
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["--genome", "{tmp}/missing.fa"], "genome file, folder or manifest not found"),
        (["--genome", "{plain_gz}"], "bgzip"),
        (["--out", "{tmp}/a_file"], "cannot create output folder"),
        (["--seq-len", "10000000", "--batch-size", "1", "--tokens-per-step", "10M"], "longer than every"),
        (["--seq-len", "300", "--tokens-per-step", "2048"], "tokens_per_step 2048 must be a multiple"),
        (["--bases", "lots"], "--bases: expected a whole number"),
        (["--genome", "{tmp}/missing.fa", "--text", "{tmp}/missing.txt"], "not both"),
        (["--resume"], "nothing to resume"),
        (["--config", "no-such-preset"], "unknown preset"),
        (["--lr", "-1"], "lr: must be a positive number"),
    ],
    ids=["missing-genome", "plain-gzip", "out-is-a-file", "seq-len-too-long", "indivisible-batch", "bad-bases",
         "genome-and-text", "resume-nothing", "unknown-preset", "negative-lr"],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    (tmp_path / "a_file").write_text("x")
    fill = {"tmp": str(tmp_path), "plain_gz": str(_plain_gzip(tmp_path))}
    args = [a.format(**fill) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    assert main([*TINY, "--steps", "1", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dnahnet: error:") and message in err and "\n" not in err


def test_counts_accept_suffixes():
    assert [parse_count(s, "x") for s in ("2048", "2.5M", "1e9", "50k")] == [2048, 2_500_000, 1_000_000_000, 50_000]


def test_help_shows_an_example(capsys):
    assert main(["pretrain", "--help"]) == 0
    assert "Example: dnahnet pretrain --genome" in capsys.readouterr().out


def test_batch_size_and_seq_len_alone_set_the_step_when_the_presets_does_not_divide(tmp_path, capsys):
    # tiny trains 2048 bases per step; 200 x 3 does not divide it, so a step is one micro-batch (600 bases).
    out = tmp_path / "bs"
    assert main([*TINY, "--batch-size", "3", "--seq-len", "200", "--steps", "2", "--out", str(out)]) == 0
    assert "--tokens-per-step 600" in capsys.readouterr().err
    assert json.loads((out / "latest" / ckpt.TRAIN).read_text())["bases_seen"] == 2 * 600
    # When it divides, the preset's step stands (accumulating micro-batches), as before.
    out2 = tmp_path / "bs2"
    assert main([*TINY, "--batch-size", "2", "--seq-len", "256", "--steps", "1", "--out", str(out2)]) == 0
    assert json.loads((out2 / "latest" / ckpt.TRAIN).read_text())["bases_seen"] == 2048


def test_set_overrides_single_fields_of_the_preset(tmp_path, capsys):
    out = tmp_path / "set"
    assert main([*TINY, "--steps", "1", "--set", "train.lr=3e-4", "--set", "model.d_model=[16,32]",
                 "--set", "train.schedule=wsd", "--out", str(out)]) == 0
    info = json.loads((out / "latest" / ckpt.TRAIN).read_text())
    config = json.loads((out / "latest" / ckpt.CONFIG).read_text())
    assert info["train"]["lr"] == 3e-4 and info["train"]["schedule"] == "wsd" and config["d_model"] == [16, 32]
    capsys.readouterr()
    for bad in ("lr=1", "optimizer.lr=1", "train.nonsense=1", "model.d_model=wide"):
        assert main([*TINY, "--steps", "1", "--set", bad, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("dnahnet: error:"), err
    assert not (tmp_path / "bad").exists()
