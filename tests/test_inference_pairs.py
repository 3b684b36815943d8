"""bench/inference_pairs: interleaved rounds, paired ratios with an interval, streaming variants."""

import json

import numpy as np

import dnahnet.nn.isotropic as isotropic

from bench.inference_pairs import main, summarise
from dnahnet.perf.measure import MIN_PAIRS_FOR_INTERVAL, describe_ratio, paired_ratio_summary


def test_median_interval_holds_the_median_and_narrows_with_more_pairs():
    rng = np.random.default_rng(1)
    few, many = list(1.6 + 0.2 * rng.standard_normal(12)), list(1.6 + 0.2 * rng.standard_normal(400))
    width = {}
    for name, values in (("few", few), ("many", many)):
        s = paired_ratio_summary(values)
        assert s["ratio_ci_low"] <= float(np.median(values)) == s["ratio_median"] <= s["ratio_ci_high"]
        assert (s["ratio_min"], s["ratio_max"], s["pairs"]) == (min(values), max(values), len(values))
        width[name] = s["ratio_ci_high"] - s["ratio_ci_low"]
    assert width["many"] < width["few"]
    assert "95% CI" in describe_ratio(paired_ratio_summary(few))
    assert "too few pairs for an interval" in describe_ratio(paired_ratio_summary(few[: MIN_PAIRS_FOR_INTERVAL - 1]))


def test_ratios_are_paired_within_rounds():
    row = {"length": 100, "seconds": {"base": [1.0, 2.0, 1.0], "fast": [0.5, 1.0, 0.5]}}
    fast = summarise(row, "base")["fast"]
    assert fast["ratio_median"] == fast["ratio_min"] == fast["ratio_max"] == 2.0  # drift cancels within a round
    assert fast["pairs"] == 3 and summarise(row, "base")["base"]["best_bases_per_s"] == 100.0


def test_run_writes_a_report_with_every_variant(tmp_path):
    out = tmp_path / "pairs"
    defaults = isotropic.STREAM_SEGMENT_POSITIONS, isotropic.GPU_STREAM_SEGMENT_POSITIONS
    assert main(["--configs", "tiny-transformer,tiny", "--lengths", "256", "--repeats", str(MIN_PAIRS_FOR_INTERVAL),
                 "--min-seconds", "0", "--segment", "0,64", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["configs"] == ["tiny-transformer@off", "tiny-transformer@64", "tiny@off", "tiny@64"]
    summary = results["rows"][0]["summary"]
    assert summary["tiny@64"]["pairs"] == MIN_PAIRS_FOR_INTERVAL and summary["tiny@64"]["ratio_median"] > 0
    assert results["rows"][0]["compression"]["tiny@64"]  # an H-Net reports its realised compression
    report = (out / "report.md").read_text()
    assert "95% CI" in report and "python bench/inference_pairs.py" in report
    assert (isotropic.STREAM_SEGMENT_POSITIONS, isotropic.GPU_STREAM_SEGMENT_POSITIONS) == defaults  # streams as before


def test_the_default_segment_is_the_devices(tmp_path):
    out = tmp_path / "pairs"
    assert main(["--configs", "tiny", "--lengths", "128", "--repeats", "1", "--min-seconds", "0", "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["segments"] == [isotropic.STREAM_SEGMENT_POSITIONS]


def test_compiled_twins_run_interleaved_with_their_eager_models(tmp_path):
    out = tmp_path / "pairs"
    assert main(["--configs", "tiny-transformer,tiny", "--lengths", "96", "--repeats", "2", "--min-seconds", "0",
                 "--segment", "0", "--compile", "--compile-backend", "eager", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["configs"] == ["tiny-transformer", "tiny-transformer+compiled", "tiny", "tiny+compiled"]
    assert results["rows"][0]["summary"]["tiny+compiled"]["pairs"] == 2
    assert results["compile_seconds"] > 0
    assert "`name+compiled`" in (out / "report.md").read_text()


def test_pure_twins_run_without_the_kernels_and_report_their_gain(tmp_path, monkeypatch):
    """`--pure`: each config again with every kernel switch off, interleaved; the kernels' gain is paired per config."""
    from dnahnet.nn import cpu_kernel

    switched = []
    real = cpu_kernel.switch
    monkeypatch.setattr(cpu_kernel, "switch", lambda model, on: switched.append(on) or real(model, on))
    out = tmp_path / "pairs"
    assert main(["--configs", "tiny-transformer,tiny", "--lengths", "96", "--repeats", "3", "--min-seconds", "0",
                 "--segment", "0", "--pure", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["configs"] == ["tiny-transformer", "tiny-transformer+pure", "tiny", "tiny+pure"]
    assert switched == [False, False]
    row = results["rows"][0]
    gain = row["summary"]["tiny+pure"]["cpu_kernel_gain"]
    pure, kernels = row["seconds"]["tiny+pure"], row["seconds"]["tiny"]
    assert gain["ratio_median"] == float(np.median([p / k for p, k in zip(pure, kernels)])) and gain["pairs"] == 3
    assert "cpu_kernel_gain" not in row["summary"]["tiny"]
    assert "`name+pure`" in (out / "report.md").read_text()
    streamed = tmp_path / "streamed"  # with several segments each twin pairs with its own model at the same segment
    assert main(["--configs", "tiny", "--lengths", "96", "--repeats", "2", "--min-seconds", "0", "--segment", "0,64",
                 "--pure", "--out", str(streamed)]) == 0
    row = json.loads((streamed / "results.json").read_text())["rows"][0]
    for segment in ("off", "64"):
        pure, kernels = row["seconds"][f"tiny+pure@{segment}"], row["seconds"][f"tiny@{segment}"]
        assert row["summary"][f"tiny+pure@{segment}"]["cpu_kernel_gain"]["ratio_median"] == float(
            np.median([p / k for p, k in zip(pure, kernels)]))


def test_a_pure_twin_has_every_kernel_switch_off():
    from dnahnet.config import model_config_from_preset
    from dnahnet.nn import cpu_kernel
    from dnahnet.nn.hnet import HNetLM

    model = HNetLM(model_config_from_preset("tiny"))
    switches = [m for m in model.modules() if hasattr(m, "cpu_kernel")]
    assert cpu_kernel.switch(model, on=False) == len(switches) > 0
    assert all(m.cpu_kernel is False for m in switches)
    assert cpu_kernel.switch(model, on=True) == len(switches) and all(m.cpu_kernel is True for m in switches)
