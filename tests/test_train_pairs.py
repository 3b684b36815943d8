"""bench/train_pairs: interleaved training steps, per-FLOP slowdowns paired within rounds."""

import json
import statistics

from bench.train_pairs import main


def test_per_flop_slowdowns_are_paired_within_rounds_and_reported(tmp_path):
    out = tmp_path / "pairs"
    assert main(["--configs", "tiny-transformer,tiny", "--repeats", "3", "--seq-len", "64", "--batch-size", "2",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    base, hnet = results["rows"]["tiny-transformer"], results["rows"]["tiny"]
    assert len(base["seconds"]) == len(hnet["seconds"]) == 3 and "ratio_median" not in base
    per_round = [(t / (hnet["train_flops_per_base"] * 128)) / (b / (base["train_flops_per_base"] * 128))
                 for t, b in zip(hnet["seconds"], base["seconds"])]
    assert hnet["ratio_median"] == statistics.median(per_round)
    assert hnet["ratio_min"] == min(per_round) and hnet["pairs"] == 3
    assert hnet["compression"] and 0 < hnet["median_mfu"] < 1
    # MFU against the peak timed in the same round, round by round
    peaks = results["round_peak_flops"]
    assert len(peaks) == 3 and all(p > 0 for p in peaks)
    round_mfu = [128 * hnet["train_flops_per_base"] / t / p for t, p in zip(hnet["seconds"], peaks)]
    assert hnet["round_mfu"]["ratio_median"] == statistics.median(round_mfu) and hnet["round_mfu"]["pairs"] == 3
    # Counting attention's causal half lowers the Transformer's FLOPs more than the H-Net's (whose attention
    # runs on fewer positions), so per FLOP the H-Net's slowdown is smaller in that convention, round by round.
    assert base["train_flops_per_base_causal"] < base["train_flops_per_base"]
    causal_round = [(t / (hnet["train_flops_per_base_causal"] * 128)) / (b / (base["train_flops_per_base_causal"] * 128))
                    for t, b in zip(hnet["seconds"], base["seconds"])]
    assert hnet["causal_attention"]["ratio_median"] == statistics.median(causal_round) < hnet["ratio_median"]
    text = (out / "report.md").read_text()
    assert "python bench/train_pairs.py --configs tiny-transformer,tiny" in text
    assert "too few pairs for an interval" in text and "| tiny | " in text
    assert "MFU against each round's peak" in text and f"{100 * statistics.median(round_mfu):.1f}% (range " in text


def test_a_compiled_config_pairs_with_its_eager_self(tmp_path):
    """NAME:compiled trains the same preset compiled as pretrain does, :compiled-model its whole backbone;
    compile time is reported apart."""
    from dnahnet.nn.compile import TRAINING_COMPILE_SCOPE

    out = tmp_path / "pairs"
    assert main(["--configs", "tiny,tiny:compiled,tiny:compiled-model", "--repeats", "2", "--seq-len", "64", "--batch-size", "2",
                 "--compile-backend", "aot_eager", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert rows["tiny"]["compile_s"] is None and rows["tiny:compiled"]["compile_s"] > 0
    assert rows["tiny:compiled"]["train_flops_per_base"] > 0 and rows["tiny:compiled"]["pairs"] == 2
    assert rows["tiny:compiled"]["compile_scope"] == TRAINING_COMPILE_SCOPE and rows["tiny"]["compile_scope"] is None
    assert rows["tiny:compiled-model"]["compile_scope"] == "model" and rows["tiny:compiled-model"]["compile_s"] > 0
    gain = rows["tiny:compiled"]["over_eager"]
    assert gain["ratio_median"] == statistics.median(
        [e / c for e, c in zip(rows["tiny"]["seconds"], rows["tiny:compiled"]["seconds"])])
    text = (out / "report.md").read_text()
    assert f"| tiny:compiled ({TRAINING_COMPILE_SCOPE}, " in text and "- tiny:compiled: **" in text
    assert "| tiny:compiled-model (model, " in text


def test_an_unknown_suffix_is_refused(tmp_path):
    import pytest

    from dnahnet.errors import DnahnetInputError

    with pytest.raises(DnahnetInputError, match="'tiny:fast'"):
        main(["--configs", "tiny:fast", "--out", str(tmp_path / "x")])


def test_compiled_configs_are_also_paired_with_the_baseline_compiled_the_same_way():
    """cpu-hnet:compiled is compared per FLOP with base:compiled round by round (not with the eager base);
    configs whose counterpart did not run, and the counterpart itself, get no such line."""
    from bench.train_pairs import like_for_like, report

    def row(seconds, flops):
        return {"seconds": seconds, "train_flops_per_base": flops, "seq_len": 4, "batch": 2, "params": 1, "compression": [],
                "median_bases_per_s": 1.0, "best_bases_per_s": 1.0, "median_mfu": 0.5, "compile_s": None, "compile_scope": None}

    rows = {"base": row([1.0, 2.0, 1.0], 10.0), "base:compiled": row([0.5, 1.0, 1.0], 10.0),
            "hnet:compiled": row([2.0, 2.0, 4.0], 20.0), "hnet:compiled-model": row([1.0, 1.0, 1.0], 20.0)}
    results = {"baseline": "base", "rows": rows}
    alike = like_for_like(results)
    assert set(alike) == {"hnet:compiled"}
    [(against, ratio)] = alike["hnet:compiled"]
    assert against == "base:compiled"
    assert ratio["ratio_median"] == statistics.median([(2.0 / 20) / (0.5 / 10), (2.0 / 20) / (1.0 / 10), (4.0 / 20) / (1.0 / 10)])
    for name in ("base:compiled", "hnet:compiled", "hnet:compiled-model"):
        rows[name].update(ratio)
    assert "causal_attention" not in ratio  # rows recorded before the causal count existed
    for name, flops in (("base:compiled", 5.0), ("hnet:compiled", 18.0)):
        rows[name]["train_flops_per_base_causal"] = flops
    causal = like_for_like(results)["hnet:compiled"][0][1]["causal_attention"]
    assert causal["ratio_median"] == statistics.median([(2.0 / 18) / (0.5 / 5), (2.0 / 18) / (1.0 / 5), (4.0 / 18) / (1.0 / 5)])
    results.update(command="python bench/train_pairs.py", machine="m", repeats=3, matmul_peak_flops=[1.0, 1.0])
    assert "- hnet:compiled against base:compiled: **" in report(results)


def test_every_config_is_also_paired_with_the_other_isotropic_model_run_the_same_way():
    """--also-against mamba: each config against mamba with its own suffix (eager against eager, compiled
    against compiled), round by round; mamba itself still against the baseline, never against itself."""
    from bench.train_pairs import like_for_like, report

    def row(seconds, flops):
        return {"seconds": seconds, "train_flops_per_base": flops, "seq_len": 4, "batch": 2, "params": 1, "compression": [],
                "median_bases_per_s": 1.0, "best_bases_per_s": 1.0, "median_mfu": 0.5, "compile_s": None, "compile_scope": None}

    rows = {"base": row([1.0, 1.0, 1.0], 10.0), "mamba": row([2.0, 3.0, 2.0], 10.0), "hnet": row([4.0, 3.0, 2.0], 20.0),
            "base:compiled": row([1.0, 1.0, 1.0], 10.0), "mamba:compiled": row([1.0, 2.0, 4.0], 10.0),
            "hnet:compiled": row([2.0, 2.0, 2.0], 10.0)}
    results = {"baseline": "base", "also_against": ["mamba"], "rows": rows}
    alike = like_for_like(results)
    assert [a for a, _ in alike["hnet"]] == ["mamba"]
    assert [a for a, _ in alike["hnet:compiled"]] == ["base:compiled", "mamba:compiled"]
    assert [a for a, _ in alike["mamba:compiled"]] == ["base:compiled"] and "mamba" not in alike
    assert "base" not in alike and "base:compiled" not in alike  # the inverses of mamba's lines
    assert alike["hnet"][0][1]["ratio_median"] == statistics.median([(4 / 20) / (2 / 10), (3 / 20) / (3 / 10), (2 / 20) / (2 / 10)])
    assert alike["hnet:compiled"][1][1]["ratio_median"] == statistics.median([2.0, 1.0, 0.5])
    results.update(command="python bench/train_pairs.py", machine="m", repeats=3, matmul_peak_flops=[1.0, 1.0])
    for name in rows:
        rows[name].update(alike.get(name, [(None, {"ratio_median": 1.0, "ratio_min": 1.0, "ratio_max": 1.0, "pairs": 3})])[0][1])
    text = report(results)
    assert "- hnet against mamba: " in text and "- hnet:compiled against mamba:compiled: " in text


def test_also_against_must_name_a_preset_that_runs(tmp_path):
    import pytest

    from dnahnet.errors import DnahnetInputError

    with pytest.raises(DnahnetInputError, match="--also-against: 'cpu-mamba2'"):
        main(["--configs", "tiny", "--also-against", "cpu-mamba2", "--out", str(tmp_path / "x")])


def test_a_bf16_config_trains_under_autocast_and_pairs_with_its_fp32_self(tmp_path, monkeypatch):
    """NAME:bf16 runs the step under CPU bf16 autocast (forced here, so any CPU) and reports its gain over NAME
    in the same rounds; the suffix combines with a compile scope."""
    import torch

    from bench.train_pairs import fp32_counterpart, parse_train_configs, precision

    assert (precision("tiny:compiled+bf16"), fp32_counterpart("tiny:compiled+bf16"), fp32_counterpart("tiny:bf16")) == \
        ("bf16", "tiny:compiled", "tiny")
    assert parse_train_configs("tiny:bf16,tiny:compiled+bf16") == ["tiny:bf16", "tiny:compiled+bf16"]
    monkeypatch.setenv("DNAHNET_CPU_BF16", "1")
    seen = []
    original = torch.nn.functional.linear
    monkeypatch.setattr(torch.nn.functional, "linear", lambda x, *a, **k: seen.append(torch.is_autocast_enabled("cpu")) or original(x, *a, **k))
    out = tmp_path / "pairs"
    assert main(["--configs", "tiny,tiny:bf16", "--repeats", "2", "--seq-len", "64", "--batch-size", "2", "--out", str(out)]) == 0
    assert True in seen and False in seen  # one config under autocast, the other not
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert rows["tiny:bf16"]["precision"] == "bf16" and rows["tiny"]["precision"] == "fp32"
    assert rows["tiny:bf16"]["over_fp32"]["ratio_median"] == statistics.median(
        [f / b for f, b in zip(rows["tiny"]["seconds"], rows["tiny:bf16"]["seconds"])])
    assert "over_eager" not in rows["tiny:bf16"] and results["cpu_bf16"]["native"] is True
    assert "- tiny:bf16: **" in (out / "report.md").read_text()


def test_a_doubled_bf16_or_two_scopes_are_refused(tmp_path):
    import pytest

    from dnahnet.errors import DnahnetInputError

    for bad in ("tiny:bf16+bf16", "tiny:compiled+compiled-model"):
        with pytest.raises(DnahnetInputError, match="--configs"):
            main(["--configs", bad, "--out", str(tmp_path / "x")])


def test_a_user_mistake_run_as_a_script_is_one_line_and_exit_2(tmp_path):
    """Run as a script, a bad flag value prints one line naming it, exits 2, and shows no traceback."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(repo / "bench" / "train_pairs.py"), "--configs", "tiny", "--also-against",
                           "cpu-mamba2", "--out", str(tmp_path / "x")], capture_output=True, text=True, cwd=repo)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert errors == ["bench/train_pairs.py: error: --also-against: 'cpu-mamba2' is not among the presets of --configs"]


def test_a_scan_free_config_swaps_every_scan_and_pairs_with_the_real_step(tmp_path):
    """NAME:scan-free gives each Mamba-2 layer the stand-in scan before the routing settles, and reports
    the real step's time over its own in the same rounds; the real config keeps the chunked scan."""
    from bench.train_pairs import parse_train_configs, scan_free, with_scan_counterpart

    assert (scan_free("tiny:compiled+scan-free"), with_scan_counterpart("tiny:compiled+scan-free+bf16")) == \
        (True, "tiny:compiled+bf16")
    assert parse_train_configs("tiny:scan-free+bf16") == ["tiny:scan-free+bf16"]
    out = tmp_path / "pairs"
    assert main(["--configs", "tiny-transformer,tiny,tiny:scan-free", "--repeats", "3", "--seq-len", "64",
                 "--batch-size", "2", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    real, free = rows["tiny"], rows["tiny:scan-free"]
    assert (real["scan"], free["scan"], rows["tiny-transformer"]["scan"]) == ("chunked", "stand-in", "chunked")
    assert "scan_cost" not in real and free["compression"]
    assert free["scan_cost"]["ratio_median"] == statistics.median(
        [r / f for r, f in zip(real["seconds"], free["seconds"])])
    assert "- tiny over tiny:scan-free: **" in (out / "report.md").read_text()


def test_a_scan_free_config_needs_a_mamba2_layer(tmp_path):
    import pytest

    from dnahnet.errors import DnahnetInputError

    with pytest.raises(DnahnetInputError, match="tiny-transformer has no Mamba-2 layer"):
        main(["--configs", "tiny,tiny-transformer:scan-free", "--out", str(tmp_path / "x")])
    with pytest.raises(DnahnetInputError, match="--configs: 'tiny:scan-free\\+scan-free'"):
        main(["--configs", "tiny:scan-free+scan-free", "--out", str(tmp_path / "x")])
