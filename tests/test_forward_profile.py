"""bench/forward_profile: a profiled forward pass split by H-Net part and operator."""

import json

from bench.forward_profile import main


def test_profiles_each_model_by_part_and_operator(tmp_path):
    assert main(["--configs", "bench-mamba2,bench-hnet-1stage-mamba2-m1", "--length", "2048", "--warmup", "1",
                 "--passes", "1", "--top", "4", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    isotropic, hnet = results["rows"]
    assert "stage0.routing" not in isotropic["labels"]
    for part in ("stage0.encoder", "stage0.routing", "stage0.chunk", "stage0.dechunk", "stage0.decoder", "stage1.main"):
        assert hnet["labels"][part]["host_ms"] > 0, part
    assert hnet["labels"]["stage0.main"]["host_ms"] >= hnet["labels"]["stage1.main"]["host_ms"]
    assert len(hnet["top_ops"]) == 4 and all(op["calls"] >= 1 for op in hnet["top_ops"])
    report = (tmp_path / "report.md").read_text()
    assert "python -m bench.forward_profile" in report and "| stage0.routing |" in report
    assert results["device"] == "cpu" and hnet["device_kernel_ms"] is None
