"""bench/gpu_speed runs its parts on the CPU (no Triton there: both layer paths are the pure one) and writes a
report whose rows pair what they say they pair."""

import json

from bench.gpu_speed import main


def test_gpu_speed_smoke_runs_on_cpu_and_pairs_the_pure_scan_rows(tmp_path):
    out = tmp_path / "speed"
    rc = main(["--device", "cpu", "--out", str(out), "--rounds", "2", "--seq-len", "128", "--batch-size", "1",
               "--configs", "cpu-transformer,cpu-mamba2,cpu-mamba2:pure-scan", "--parts", "ceilings,layers,train"])
    results = json.loads((out / "results.json").read_text())
    assert rc == 0 and results["errors"] == {}
    assert "ceilings" not in results  # measured on CUDA only
    for part in results["layers"].values():
        assert set(part["rows"]) == {"dnahnet + mamba_ssm scan", "dnahnet pure"} and part["failed"] == {}
        assert all(len(r["seconds"]) == 2 for r in part["rows"].values())
    rows = results["train"]["rows"]
    assert "per_flop" not in rows["cpu-transformer"] and rows["cpu-mamba2"]["per_flop"]["pairs"] == 2
    assert "triton_scan_gain" in rows["cpu-mamba2:pure-scan"] and "triton_scan_gain" not in rows["cpu-mamba2"]
    assert rows["cpu-mamba2"]["mfu"] is None  # no ceiling measured on the CPU
    report = (out / "report.md").read_text()
    assert "cpu-mamba2:pure-scan" in report and "Triton scan's gain" in report
