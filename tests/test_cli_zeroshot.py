"""`dnahnet zeroshot essentiality` and `fitness` from the command line, on the bundled L. kirschneri genome."""

import csv

import pytest
import torch

from dnahnet.config import model_config_from_preset
from dnahnet.io.checkpoint import save_model
from dnahnet.nn.hnet import HNetLM
from dnahnet_cli.main import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("zs") / "ck"
    save_model(path, HNetLM(model_config_from_preset("tiny")))
    return path


def test_essentiality_scores_genes_and_writes_a_table(checkpoint, shared_data, tmp_path):
    gbk = shared_data / "leptospira" / "leptospira_kirschneri_H1.gbk.gz"
    out = tmp_path / "ess"
    code = main(["zeroshot", "essentiality", "--checkpoint", str(checkpoint), "--genome", str(gbk), "--annotation", str(gbk),
                 "--window", "512", "--limit", "6", "--out", str(out), "--device", "cpu"])
    assert code == 0
    with open(out / "genes.tsv") as fh:
        rows = [r for r in csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")]
    assert len(rows) == 6
    assert all(r["strand"] in "+-" for r in rows)
    assert all(r["score_bits"] not in ("", "nan") for r in rows)


def test_fitness_scores_hgvs_variants_and_lists_unsupported(checkpoint, tmp_path):
    ref = tmp_path / "cds.fa"
    ref.write_text(">geneA\nATGAAACGTTTGCTGGCCGATTAA\n")
    variants = tmp_path / "v.tsv"
    variants.write_text("hgvs\tfitness\nc.4A>G\t0.5\nc.7_9del\t-1.0\nc.=\t1.0\nc.10+1G>A\t0.0\n")
    out = tmp_path / "fit"
    code = main(["zeroshot", "fitness", "--checkpoint", str(checkpoint), "--fasta", str(ref), "--variants", str(variants),
                 "--out", str(out), "--device", "cpu"])
    assert code == 0
    scored = (out / "variants.tsv").read_text()
    assert "c.4A>G" in scored and "c.7_9del" in scored
    assert "c.10+1G>A" in (out / "unsupported.tsv").read_text()


def test_missing_annotation_is_a_one_line_error(checkpoint, shared_data, tmp_path, capsys):
    gbk = shared_data / "leptospira" / "leptospira_kirschneri_H1.gbk.gz"
    code = main(["zeroshot", "essentiality", "--checkpoint", str(checkpoint), "--genome", str(gbk),
                 "--annotation", str(tmp_path / "none.gff3"), "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_boundaries_and_selection_rates_on_a_genbank_genome(shared_data, tmp_path):
    """dnaHNet's selection-rate table straight from a GenBank genome: both commands read it."""
    import json

    torch.manual_seed(0)
    ck = tmp_path / "ck2"
    save_model(ck, HNetLM(model_config_from_preset("tiny-2stage")))
    gbk = shared_data / "leptospira" / "leptospira_kirschneri_H1.gbk.gz"
    bed = tmp_path / "b.bed"
    assert main(["boundaries", "--checkpoint", str(ck), "--genome", str(gbk), "--region", "NZ_AHMY02000074.1:1-6000",
                 "--out", str(bed), "--device", "cpu"]) == 0
    from dnahnet.io.bed import read_bed

    names = {record.name for record in read_bed(bed)}
    assert names == {"stage1", "stage2"}
    out = tmp_path / "ann"
    assert main(["annotate", "--boundaries", str(bed), "--annotation", str(gbk), "--genome", str(gbk), "--out", str(out),
                 "--permutations", "5"]) == 0
    rates = json.loads((out / "summary.json").read_text())["selection_rates"]
    kept = rates["stage2 of stage1"]
    assert {"all", "CDS", "start_codon", "intergenic", "promoter"} <= set(kept)
    assert kept["all"]["parents"] == rates["stage1"]["all"]["boundaries"]
    assert kept["all"]["boundaries"] == rates["stage2"]["all"]["boundaries"] <= kept["all"]["parents"]
    report = (out / "report.md").read_text()
    assert "## Against dnaHNet" in report and "| start_codon |" in report and "CDS codon position 3" in report
    # The report names the command line that made it, not the test runner's argv.
    assert f"Command: `dnahnet annotate --boundaries {bed} " in report and "--permutations 5`" in report
