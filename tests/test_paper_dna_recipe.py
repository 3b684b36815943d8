"""The paper-scale recipe end to end at tiny scale: labelled split BED, budget file, comparison report."""

import json

import pytest

from dnahnet_pipelines.paper_dna_recipe import PAPER_MODELS, main

SPLIT = [("train", 0, 3_500_000), ("valid", 3_500_000, 4_200_000), ("test", 4_200_000, 5_000_000)]


@pytest.fixture()
def split_bed(tmp_path):
    path = tmp_path / "split.bed"
    path.write_text("".join(f"chr22_slice\t{a}\t{b}\t{name}\n" for name, a, b in SPLIT))
    return path


def _genome():
    from dnahnet.data.demo import demo_genome_path

    return str(demo_genome_path())


def test_budget_of_the_paper_models_states_its_throughput_assumption(tmp_path, split_bed, capsys):
    out = tmp_path / "budget"
    assert main(["--genome", _genome(), "--split-bed", str(split_bed), "--out", str(out), "--budget-only",
                 "--gpu-tflops", "100"]) == 0
    text = (out / "budget.md").read_text()
    assert "ASSUMPTION: one GPU sustains 100 TFLOP/s" in text
    assert all(name in text for name in PAPER_MODELS)
    assert "GPU-hours" in capsys.readouterr().out
    assert not (out / "report.md").exists()


def test_budget_refuses_a_non_positive_throughput(tmp_path, split_bed, capsys):
    assert main(["--genome", _genome(), "--split-bed", str(split_bed), "--out", str(tmp_path), "--budget-only",
                 "--gpu-tflops", "0"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
def test_recipe_runs_end_to_end_on_a_bed_split_at_tiny_scale(tmp_path, split_bed):
    out = tmp_path / "run"
    argv = ["--genome", _genome(), "--split-bed", str(split_bed), "--out", str(out), "--models", "tiny,tiny-transformer",
            "--bases", str(10 * 2048), "--seeds", "2", "--eval-points", "3", "--dense-points", "2", "--eval-windows", "8",
            "--heldout-bases", "12000", "--seq-len", "256", "--device", "cpu"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["split"]["split_by"] == "bed"
    assert results["split"]["valid_intervals"] == [["chr22_slice", 3_500_000, 4_200_000]]
    report = (out / "report.md").read_text()
    assert "the valid split of the split BED" in report and "multiplier pre-decay" in report
    assert (out / "budget.md").exists() and results["seeds"] == [0, 1]
    curve = [json.loads(x) for x in (out / "models" / "tiny" / "seed0" / "curve.jsonl").read_text().splitlines()]
    assert {p["step"] for p in curve if p["set"] == "full"} == {results["decay_start"], results["total_steps"]}
