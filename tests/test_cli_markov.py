"""`dnahnet baseline markov`: the cross-genome mode end to end, and bad options as one-line errors (issue 17)."""

from __future__ import annotations

import hashlib
import json

import pytest

from dnahnet_cli.main import main


@pytest.fixture(scope="module")
def genomes(tmp_path_factory, demo_sequence):
    """A fitting genome (two sequences) and an eval genome with an N run, cut from the bundled chr22 slice."""
    folder = tmp_path_factory.mktemp("markov-cli")
    acgt = demo_sequence.upper().replace(b"N", b"")

    def write(name: str, records: dict[str, bytes]):
        path = folder / name
        path.write_bytes(b"".join(b">" + k.encode() + b"\n" + b"\n".join(v[i : i + 60] for i in range(0, len(v), 60)) + b"\n"
                                  for k, v in records.items()))
        return path

    fit = write("fit.fa", {"a": acgt[:120_000], "b": acgt[120_000:240_000]})
    ev = write("eval.fa", {"e": acgt[300_000:320_000] + b"N" * 40 + acgt[320_000:330_000], "f": acgt[340_000:350_000]})
    bed = folder / "regions.bed"
    bed.write_text("e\t0\t5000\nf\t1000\t3000\n")
    (folder / "no-windows.json").write_text('{"data": {"eval_windows": 0}}')
    return fit, ev, bed


def test_cross_genome_markov_from_the_command_line(genomes, tmp_path, capsys):
    from dnahnet.data.baseline import cross_genome_markov

    fit, ev, bed = genomes
    out = tmp_path / "m.json"
    args = ["baseline", "markov", "--fit", str(fit), "--eval", str(ev), "--max-order", "5", "--json", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    result = json.loads(out.read_text())
    lib = cross_genome_markov(str(fit), str(ev), max_order=5)
    assert result["order"] == lib.order and result["bits_per_base"] == pytest.approx(lib.bits_per_base)
    assert result["positions_scored"] == 40_000 - 2 and result["n_bases"] == 40  # first base of each sequence not scored
    assert f"order {lib.order:2d}: {lib.by_order[lib.order]:.4f} bits/base  <- chosen" in text
    assert "orders compared on the last 10% of each" in text and f"{lib.bits_per_base:.4f} bits/base" in text
    assert result["command"] == "dnahnet " + " ".join(args) and f"command: dnahnet baseline markov --fit {fit}" in text
    # a BED of eval regions, both strands
    assert main(["baseline", "markov", "--fit", str(fit), "--eval", str(ev), "--order", "3", "--bed", str(bed),
                 "--both-strands", "--json", str(out)]) == 0
    both = json.loads(out.read_text())
    assert both["order"] == 3 and both["regions"] == 2 and both["both_strands"] is True
    assert both["positions_scored"] == 2 * (5000 + 2000 - 2) and list(both["by_order"]) == ["3"]
    # --region uses samtools coordinates (1-based inclusive)
    assert main(["baseline", "markov", "--fit", str(fit), "--eval", str(ev), "--order", "3", "--region", "f:1001-3000",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["region_bases"] == 2000


BAD = [
    (["--max-order", "0"], "--max-order: expected a whole number in 1..12, got 0"),
    (["--max-order", "-2"], "--max-order"),
    (["--order", "13"], "--order"),
    (["--order", "2", "--max-order", "4"], "not both"),
    (["--split", "xyz"], "choose valid or test"),
    (["--split", "train"], "in-sample"),
    (["--seq-len", "0"], "--seq-len"),
    (["--config", "{cfgdir}/no-windows.json"], "data.eval_windows is 0"),
    (["--region", "chr22_slice"], "--region: for --fit/--eval mode only"),
    (["--fit", "{fit}"], "needs both --fit GENOME and --eval GENOME"),
    (["--fit", "{fit}", "--eval", "{ev}", "--split", "test"], "--split: for --genome mode only"),
    (["--fit", "{fit}", "--eval", "{ev}", "--max-order", "0"], "--max-order"),
    (["--fit", "{fit}", "--eval", "{ev}", "--holdout-fraction", "1.5"], "--holdout-fraction"),
    (["--fit", "{fit}", "--eval", "{ev}", "--region", "zz:1-10"], "'zz'"),
    (["--fit", "{fit}", "--eval", "{ev}", "--region", "e:1-10", "--bed", "{bed}"], "not both"),
    (["--fit", "{fit}", "--eval", "{ev}", "--json", "{ev}"], "same file as the input --eval"),
    (["--fit", "{fit}", "--eval", "{ev}", "--json", "{folder}"], "existing folder"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_markov_options_are_one_line_errors(args, message, genomes, tmp_path, capsys):
    fit, ev, bed = genomes
    out = tmp_path / "m.json"
    args = [a.format(fit=fit, ev=ev, bed=bed, folder=tmp_path, cfgdir=fit.parent) for a in args]
    json_args = [] if "--json" in args else ["--json", str(out)]
    config = [] if "--fit" in args or "--config" in args else ["--config", "tiny"]
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (fit, ev, bed)}
    assert main(["baseline", "markov", *config, *args, *json_args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnahnet: error:") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert not out.exists() and {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in before} == before
