"""`dnahnet bench train`: throughput, MFU and the profile by part on tiny configs."""

import json

import pytest

from dnahnet.errors import DnahnetInputError
from dnahnet.perf.train_profile import TrainBench, bench_train, exclusive_part_times


def test_bench_train_end_to_end_with_profile(tmp_path):
    from dnahnet_cli.main import main

    rc = main(["bench", "train", "--configs", "tiny,tiny-2stage,tiny-transformer", "--seq-len", "256", "--batch", "2",
               "--repeats", "1", "--device", "cpu", "--out", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["matmul_peak_flops"] > 0
    rows = {r["config"]: r for r in res["rows"]}
    for r in rows.values():
        assert r["bases_per_s"] > 0 and 0 < r["mfu"] < 1
    two = rows["tiny-2stage"]["profile_s"]
    for part in ["encoder", "routing", "chunk", "main", "dechunk", "decoder", "lm_head", "backward_total"]:
        assert two[part] > 0, part
    assert rows["tiny-transformer"]["per_flop_slowdown_vs_best_isotropic"] == pytest.approx(1.0)
    for r in rows.values():  # the causal-half count drops the isotropic Transformer's FLOPs most
        assert r["train_flops_per_base_causal"] < r["train_flops_per_base"]
        ratio = r["per_flop_slowdown_vs_best_isotropic_causal"] / r["per_flop_slowdown_vs_best_isotropic"]
        share = (r["train_flops_per_base_causal"] / r["train_flops_per_base"]) / (
            rows["tiny-transformer"]["train_flops_per_base_causal"] / rows["tiny-transformer"]["train_flops_per_base"])
        assert ratio == pytest.approx(1 / share)
    for name in ("tiny", "tiny-2stage"):  # H-Nets are timed at a compression near their target
        r = rows[name]
        assert r["settled"] and 1 <= r["settle_steps"] <= 150, (name, r["compression"], r["settle_steps"])
        assert all(abs(c / t - 1) <= 0.15 for c, t in zip(r["compression"], r["target_compression"]))
    assert rows["tiny-transformer"]["settle_steps"] == 0
    assert "backward and the optimiser step are totals" in (tmp_path / "report.md").read_text()


def test_outer_main_excludes_the_inner_stage():
    totals = {"stage0.main": 10.0, "stage1.encoder": 3.0, "stage1.main": 5.0, "stage2.main": 4.0, "stage0.encoder": 2.0}
    excl = exclusive_part_times(totals)
    assert excl["stage0.main"] == pytest.approx(2.0)  # 10 - (3 + 5)
    assert excl["stage1.main"] == pytest.approx(1.0)  # 5 - 4
    assert excl["stage2.main"] == 4.0 and excl["stage0.encoder"] == 2.0


def test_unknown_config_and_short_length_are_input_errors(tmp_path):
    with pytest.raises(DnahnetInputError, match="unknown preset"):
        bench_train(TrainBench(configs="tiny,nope", out=str(tmp_path)))
    with pytest.raises(DnahnetInputError, match="smallest chunk"):
        bench_train(TrainBench(configs="tiny", seq_len=8, out=str(tmp_path)))


@pytest.mark.slow
def test_bench_train_compiled_reports_compile_time_apart(tmp_path):
    res = bench_train(TrainBench(configs="tiny-2stage", seq_len=256, batch=2, repeats=1, device="cpu", out=str(tmp_path),
                                 compile=True, compile_backend="aot_eager"), log=lambda *_: None)
    (row,) = res["rows"]
    assert row["compiled"] and row["compile_s"] > 0 and row["first_step_s"] >= row["compile_s"]
    assert row["bases_per_s"] > 0 and "profile_s" not in row  # labels do not survive compilation
    assert "| tiny-2stage | " in (tmp_path / "report.md").read_text().split("compile s")[1]
