"""`dnahnet baseline markov` and `dnahnet data fetch` from the command line."""

import gzip
import json

from dnahnet_cli.main import main


def test_markov_baseline_on_the_demo_genome_reports_every_order(tmp_path, capsys):
    out = tmp_path / "markov.json"
    assert main(["baseline", "markov", "--max-order", "4", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "order  4" in text and "<- best" in text
    result = json.loads(out.read_text())
    assert set(result["by_order"]) == {"1", "2", "3", "4"}
    assert 1.8 < result["bits_per_base"] < 1.95  # real human DNA: a little under 2 bits


def test_data_fetch_from_a_local_mirror(tmp_path):
    src = tmp_path / "toy.fa.gz"
    with gzip.open(src, "wt") as fh:
        fh.write(">chrA\n" + "ACGT" * 50 + "\n>chrB\n" + "GGCC" * 30 + "\n")
    manifest = tmp_path / "toy.json"
    manifest.write_text(json.dumps({"name": "toy", "url": src.as_uri(), "filename": "toy.fa.gz"}))
    assert main(["data", "fetch", str(manifest), "--dest", str(tmp_path / "genomes")]) == 0
    assert (tmp_path / "genomes" / "toy.fa.gz.fai").exists()


def test_unknown_manifest_is_a_one_line_error(tmp_path, capsys):
    assert main(["data", "fetch", "no-such-genome", "--dest", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnahnet: error:") and err.count("\n") == 1
