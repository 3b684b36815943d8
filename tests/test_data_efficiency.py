"""The data-efficiency pipeline: evaluation plan, bad inputs, and a tiny end-to-end comparison with seeds."""

import json

import pytest

from dnahnet.errors import DnahnetInputError
from dnahnet.train.schedule import lr_factor
from dnahnet_cli.main import main
from dnahnet_pipelines.data_efficiency import (
    DEFAULT_MODELS,
    CompareConfig,
    curve_steps,
    decay_start_step,
    make_plan,
    matching,
    run,
)


def test_pre_decay_readout_is_the_last_step_at_full_learning_rate():
    for total in (10, 90, 1000):
        d = decay_start_step(total, 0.2)
        assert lr_factor(d - 1, total, schedule="wsd", decay_fraction=0.2) == 1.0
        assert lr_factor(d, total, schedule="wsd", decay_fraction=0.2) < 1.0


def test_curve_points_are_dense_before_the_end_of_the_stable_phase():
    total, d = 1000, decay_start_step(1000, 0.2)
    steps = curve_steps(total, d, points=8, dense=6)
    assert steps == sorted(set(steps)) and steps[-1] == total and d in steps
    late = [s for s in steps if d / 2 <= s <= d]
    early = [s for s in steps if d / 4 <= s < d / 2]
    assert len(late) >= 7 > len(early)
    assert any(d < s < total for s in steps)  # a point inside the decay


def test_fixed_chunk_control_is_in_the_default_models():
    assert "cpu-every-k" in DEFAULT_MODELS and len(DEFAULT_MODELS) == 5


def test_pairs_are_labelled_by_what_they_share():
    h = {"params": 1.83e6, "train_flops_per_base": 7.56e6}
    assert matching(h, {"params": 1.80e6, "train_flops_per_base": 7.50e6}) == "FLOP- and parameter-matched"
    assert matching(h, {"params": 0.48e6, "train_flops_per_base": 7.42e6}) == "FLOP-matched"
    assert matching(h, {"params": 1.0e6, "train_flops_per_base": 3e6}) == "neither"


@pytest.mark.parametrize("args, message", [
    (["--models", ""], "--models: no model named"),
    (["--seq-len", "0"], "--seq-len must be at least 2"),
    (["--eval-points", "0"], "--eval-points must be at least 2"),
    (["--seeds", "0"], "--seeds must be at least 1"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    from dnahnet.data.demo import demo_genome_path

    argv = ["compare", "--genome", str(demo_genome_path()), "--bases", "100000", "--out", str(tmp_path / "out"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_budget_without_a_stable_phase_is_refused(tmp_path):
    from dnahnet.data.demo import demo_genome_path

    cfg = CompareConfig(genome=str(demo_genome_path()), models=["tiny"], bases=3 * 2048, out=str(tmp_path))
    with pytest.raises(DnahnetInputError, match="too few for a stable phase"):
        make_plan(cfg)


def test_unmatched_models_are_refused_with_the_gap(tmp_path):
    from dnahnet.data.demo import demo_genome_path

    cfg = CompareConfig(genome=str(demo_genome_path()), models=["tiny", "tiny-transformer"], bases=10**6, out=str(tmp_path))
    with pytest.raises(DnahnetInputError, match="not matched in FLOPs"):
        run(cfg)


def test_a_held_out_set_larger_than_the_valid_split_is_refused(tmp_path):
    from dnahnet.data.demo import demo_genome_path

    cfg = CompareConfig(genome=str(demo_genome_path()), models=["tiny", "tiny-transformer"], bases=20 * 2048,
                        out=str(tmp_path), seq_len=256, heldout_bases=10**6, allow_unmatched=True)
    with pytest.raises(DnahnetInputError, match="too few non-overlapping"):
        run(cfg)


def _tiny(out, seeds=2):
    from dnahnet.data.demo import demo_genome_path

    return CompareConfig(genome=str(demo_genome_path()), models=["tiny", "tiny-transformer"], bases=10 * 2048,
                         out=str(out), seeds=seeds, eval_points=3, dense_points=2, eval_windows=8, heldout_bases=12_000,
                         seq_len=256, bootstrap=200, allow_unmatched=True)


@pytest.fixture(scope="module")
def tiny_comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    return out, run(_tiny(out))


@pytest.mark.slow
def test_seeds_share_the_data_order_across_models_and_differ_between_seeds(tiny_comparison):
    out, results = tiny_comparison
    info = {(m, s): json.loads((out / "models" / m / f"seed{s}" / "latest" / "train.json").read_text())
            for m in ("tiny", "tiny-transformer") for s in (0, 1)}
    for s in (0, 1):
        assert info[("tiny", s)]["data"] == info[("tiny-transformer", s)]["data"]
        assert info[("tiny", s)]["data"]["seed"] == info[("tiny", s)]["train"]["seed"] == s
    assert results["seeds"] == [0, 1]
    by_seed = results["models"]["tiny"]["curve_subset_by_seed"]
    assert by_seed[0] != by_seed[1]


@pytest.mark.slow
def test_readouts_use_the_full_held_out_set_and_the_rest_the_subset(tiny_comparison):
    out, results = tiny_comparison
    curve = [json.loads(x) for x in (out / "models" / "tiny" / "seed0" / "curve.jsonl").read_text().splitlines()]
    assert [p["step"] for p in curve] == results["steps"]
    full = {p["step"] for p in curve if p["set"] == "full"}
    assert full == {results["decay_start"], results["total_steps"]} == {8, 10}
    assert {len(p["bits"]) for p in curve if p["set"] == "full"} == {results["heldout"]["windows"]}
    assert {len(p["bits"]) for p in curve if p["set"] == "subset"} == {8}
    assert results["heldout"]["scored_bases"] >= 12_000
    # the report's figure is the full set's seed mean at the pre-decay readout
    pre = results["models"]["tiny"]["pre_decay"]
    seeds = [json.loads(x) for s in (0, 1) for x in (out / "models" / "tiny" / f"seed{s}" / "curve.jsonl").read_text().splitlines()]
    per_seed = [sum(p["bits"]) / results["heldout"]["scored_bases"] for p in seeds if p["step"] == 8]
    assert pre["value"] == pytest.approx(sum(per_seed) / 2, rel=1e-6)
    assert pre["low"] < pre["value"] < pre["high"]


@pytest.mark.slow
def test_report_names_the_valid_split_and_both_readouts(tiny_comparison):
    out, results = tiny_comparison
    report = (out / "report.md").read_text()
    assert "from the valid split" in report and "the test split, never used here" in report
    assert "last 5% of each chromosome" not in report
    assert "multiplier pre-decay" in report and "multiplier post-decay" in report
    assert "Markov order" in report and "95% interval" in report
    pair = results["pairs"][0]
    assert (pair["hnet"], pair["baseline"]) == ("tiny", "tiny-transformer")
    for key in ("multiplier_pre_decay", "multiplier_post_decay"):
        est = pair[key]
        assert est["seeds"] == 2 and est["low"] <= est["value"] <= est["high"]
    for name in ("results.json", "curves.tsv", "curves.png", "report.md"):
        assert (out / name).stat().st_size > 0
    # the training precision each run recorded is stated; the readout is fp32 whatever it was
    ran = json.loads((out / "models" / "tiny" / "seed0" / "latest" / "train.json").read_text())["precision_note"]
    assert results["models"]["tiny"]["train_precision"] == [ran]
    assert f"Training precision: {ran}" in report and "held-out windows are scored in fp32" in report


@pytest.mark.slow
def test_one_seed_reads_a_multiplier_without_an_interval_and_a_rerun_retrains_nothing(tiny_comparison):
    out, _ = tiny_comparison
    before = (out / "models" / "tiny" / "seed0" / "curve.jsonl").stat().st_mtime_ns
    one = run(_tiny(out, seeds=1))  # seed 0 is finished: reused, not retrained
    assert (out / "models" / "tiny" / "seed0" / "curve.jsonl").stat().st_mtime_ns == before
    assert one["seeds"] == [0]
    pair = one["pairs"][0]["multiplier_pre_decay"]
    assert pair["value"] > 0 and pair["low"] is None and pair["interval"] == "one seed: none"
    report = (out / "report.md").read_text()
    assert "one seed: none" in report and "95% interval" not in report
