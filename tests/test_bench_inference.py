"""`dnahnet bench inference`: end to end on tiny configs, memory measurement, bad input."""

import json

import pytest

from dnahnet.errors import DnahnetInputError
from dnahnet.perf.inference import InferenceBench, bench_inference, min_length
from dnahnet.perf.measure import FAILED_TO_FIT, run_isolated


def test_memory_measurement_sees_a_deliberate_allocation():
    big = run_isolated("dnahnet.perf.measure:allocate", {"nbytes": 400 * 2**20}, 2**30, 120, 1)
    assert big.ok
    # The high-water mark of the child rises by the allocation above what was resident just before it
    # (imports leave a transient peak behind, so peaks of two children are not compared directly).
    grown = big.peak_rss_bytes - big.result["rss_before_bytes"]
    # Lower bound above the ~200 MiB import transient, so an unseen allocation fails; allocator noise allowed above.
    assert 0.75 * 400 * 2**20 <= grown <= 400 * 2**20 + 256 * 2**20


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_child_peak_does_not_inherit_the_parents_resident_set():
    """Linux carries a pre-exec peak into ru_maxrss; a child's own peak must not include its parent's."""
    import numpy as np

    from dnahnet.perf.measure import current_rss_bytes

    ballast = np.ones(700 * 2**20, dtype=np.uint8)  # resident in this (parent) process while the child starts
    parent = current_rss_bytes()
    small = run_isolated("dnahnet.perf.measure:allocate", {"nbytes": 2**20}, 2**31, 120, 1)
    assert small.ok and parent > 700 * 2**20
    assert small.peak_rss_bytes < parent - 400 * 2**20, (small.peak_rss_bytes, parent)
    del ballast


def test_allocation_over_the_cap_is_reported_not_fatal():
    res = run_isolated("dnahnet.perf.measure:allocate", {"nbytes": 2 * 2**30}, 256 * 2**20, 120, 1)
    assert not res.ok and res.error.startswith(FAILED_TO_FIT)


def test_bench_inference_end_to_end_with_a_length_that_does_not_fit(tmp_path):
    from dnahnet_cli.main import main

    rc = main(["bench", "inference", "--configs", "tiny,tiny-transformer", "--lengths", "256,262144", "--modes", "forward",
               "--repeats", "1", "--memory-limit-gb", "0.05", "--threads", "1", "--out", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    rows = {(r["config"], r["length"]): r for r in res["rows"]}
    ok = rows[("tiny", 256)]
    assert ok["status"] == "ok" and ok["bases_per_s"] > 0 and ok["peak_memory_bytes"] > 0 and ok["flops_per_base"] > 0
    assert len(ok["compression"]) == 1 and ok["compression"][0] > 1
    assert ok["first_pass_s"] > 0 and ok["latency_s"] > 0  # the first pass is timed apart from the measured one
    tsv = (tmp_path / "results.tsv").read_text().splitlines()
    assert tsv[0].split("\t")[6] == "first_pass_s" and all(len(line.split("\t")) == len(tsv[0].split("\t")) for line in tsv)
    assert res["settled"]["tiny"]["ok"] and "tiny-transformer" not in res["settled"]  # H-Nets only, at their target
    assert "H-Nets were trained on random DNA" in (tmp_path / "report.md").read_text()
    assert rows[("tiny", 262144)]["status"] == FAILED_TO_FIT
    assert res["flops_at_1M"]["tiny"]["per_base"] > 0
    assert (tmp_path / "throughput.png").stat().st_size > 0 and "| tiny |" in (tmp_path / "report.md").read_text()
    ratio = {(r["length"], r["hnet"], r["baseline"]): r for r in res["speed_ratios"]}
    r256 = ratio[(256, "tiny", "tiny-transformer")]
    assert r256["ratio"] == pytest.approx(ok["bases_per_s"] / rows[("tiny-transformer", 256)]["bases_per_s"])
    assert ratio[(262144, "tiny", "tiny-transformer")]["ratio"] is None  # a length that did not fit has no ratio
    assert "speed ratio" in (tmp_path / "report.md").read_text()


def test_unknown_config_is_an_input_error(tmp_path):
    with pytest.raises(DnahnetInputError, match="unknown preset 'nope'"):
        bench_inference(InferenceBench(configs="tiny,nope", lengths=[256], out=str(tmp_path)))


def test_length_below_the_smallest_chunk_is_an_input_error(tmp_path, capsys):
    from dnahnet.config import model_config_from_preset
    from dnahnet_cli.main import main

    assert min_length(model_config_from_preset("tiny")) == 32
    assert main(["bench", "inference", "--configs", "tiny", "--lengths", "16,256", "--out", str(tmp_path)]) == 2
    assert "shorter than the smallest chunk" in capsys.readouterr().err


def test_bench_presets_are_matched_in_parameters():
    import torch

    from dnahnet.config import model_config_from_preset
    from dnahnet.nn.hnet import HNetLM

    counts = []
    for name in ["bench-transformer", "bench-mamba2", "bench-hnet-1stage", "bench-hnet-2stage",
                 "bench-hnet-1stage-swa", "bench-hnet-1stage-mamba2", "bench-hnet-1stage-mamba2-m1"]:
        with torch.device("meta"):
            counts.append(sum(p.numel() for p in HNetLM(model_config_from_preset(name)).parameters()))
    assert max(counts) / min(counts) < 1.10


def test_best_time_discards_the_warmup_and_always_times_one_run_after_it():
    import time

    from dnahnet.perf.measure import best_time

    calls = []
    assert best_time(lambda: calls.append(1), repeats=3, warmup=1) >= 0
    assert len(calls) == 4  # one warm-up, three timed
    durations = iter([0.2, 0.01, 0.01, 0.01])  # a slow first pass, then fast ones

    def run():
        time.sleep(next(durations))

    assert best_time(run, repeats=3, warmup=1, budget_s=0.005) < 0.1  # the slow warm-up is never the measurement
    assert next(durations) == 0.01  # warm-up plus exactly one timed run: the budget was spent after it


def test_speed_ratios_compare_hnets_with_isotropic_models_only_in_every_mode():
    from dnahnet.perf.inference import speed_ratios

    def row(config, mode, routed, speed, status="ok"):
        return {"config": config, "mode": mode, "length": 4096, "routed_stages": routed, "status": status,
                "bases_per_s": speed, "compression": [3.0] if routed and mode == "forward" else None}

    rows = [row("h1", mode, 1, 30.0) for mode in ("forward", "score")] + \
           [row("h2", mode, 2, 20.0) for mode in ("forward", "score")] + \
           [row("iso", mode, 0, 10.0) for mode in ("forward", "score")] + [row("slow", "score", 0, None, "timeout")]
    pairs = {(r["mode"], r["hnet"], r["baseline"]): r["ratio"] for r in speed_ratios(rows)}
    # windowed scoring reports no compression: H-Nets must still not be taken for baselines
    assert set(pairs) == {(m, h, b) for m in ("forward", "score") for h in ("h1", "h2") for b in ("iso",)} | {
        ("score", "h1", "slow"), ("score", "h2", "slow")}
    assert pairs[("score", "h1", "iso")] == 3.0 and pairs[("score", "h2", "slow")] is None


def test_repeats_zero_reports_the_first_pass_alone(monkeypatch):
    """For passes of many minutes (attention at 2^20 on a CPU): one pass, reported as the latency."""
    import dnahnet.perf.inference as inference

    passes = []
    original = inference.realised_compression
    monkeypatch.setattr(inference, "realised_compression", lambda routing: passes.append(1) or original(routing))
    res = inference.measure_one("tiny", 256, repeats=0)
    assert len(passes) == 1 and res["latency_s"] == res["first_pass_s"] > 0
    inference.measure_one("tiny", 256, repeats=2, budget_s=None)
    assert len(passes) == 1 + 3  # otherwise a first pass, then the timed ones


def test_negative_repeats_is_an_input_error(tmp_path):
    with pytest.raises(DnahnetInputError, match="--repeats: must be 0"):
        bench_inference(InferenceBench(configs="tiny", lengths=[256], repeats=-1, out=str(tmp_path)))
