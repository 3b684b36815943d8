"""bench/kernel_quality.py: the paired kernel-vs-pure training runs, their interval and their report."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench import kernel_quality


def test_the_mean_difference_carries_a_t_interval():
    mean, low, high = kernel_quality.mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert high - mean == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2) * sd / sqrt(n)
    assert mean - low == pytest.approx(high - mean)
    assert kernel_quality.mean_interval([0.5]) is None
    assert kernel_quality.verdict((0.001, -0.002, 0.004)) == "no detectable difference"
    assert kernel_quality.verdict((0.01, 0.002, 0.02)) == "kernel higher"
    assert kernel_quality.verdict(None) == "one seed: no interval"


def test_each_seed_runs_once_with_the_kernels_and_once_without_and_the_report_pairs_them(monkeypatch, tmp_path):
    calls = []

    def fake_run(out: Path, config, steps, seed, sets, env, label):
        side = env["DNAHNET_CPU_KERNEL"]
        calls.append((seed, side, out.name))
        bits = 2.0 + seed / 10 + (0.01 if side == "1" else 0.0)
        compression = [3.0 - (0.2 + 0.01 * seed if side == "1" else 0.0)]  # lower with the kernels, by 0.20-0.22
        return {"command": f"pretrain {config} {seed}", "eval_bits_per_base": bits, "eval_compression": compression,
                "s_per_step_median": 0.5 if side == "1" else 0.6}

    monkeypatch.setattr(kernel_quality, "pretrain_run", fake_run)
    args = argparse.Namespace(seeds=[0, 1, 2], out=tmp_path, config="tiny", steps=3, set=[], arms=[])
    results = kernel_quality.measure(args)
    assert sorted(calls) == [(s, side, f"seed{s}-{name}") for s in (0, 1, 2)
                             for side, name in (("0", "pure"), ("1", "kernel"))]
    assert results["differences"] == pytest.approx([0.01, 0.01, 0.01])
    assert results["speed_ratios"] == pytest.approx([1.2, 1.2, 1.2])
    results.update(command="python bench/kernel_quality.py", machine="test", config="tiny", steps=3)
    text = kernel_quality.report(results)
    assert "| 1 | 2.1000 | 2.1100 | +0.0100 | 3.00 / 2.79 | 0.600 / 0.500 |" in text
    assert "Mean difference +0.0100" in text and "kernel higher" in text  # a constant difference: zero width
    assert "DNAHNET_CPU_KERNEL=0 pretrain tiny 2" in text
    assert "Compression of the first routed stage, kernels - pure: mean -0.210" in text and "kernel lower" in text
    assert "in the trainer's default precision" in text
    results["overrides"] = ["train.precision=fp32"]  # what the runs were told is what the report says
    assert "each run with `--set train.precision=fp32`" in kernel_quality.report(results)


def test_each_arm_runs_every_seed_with_its_setting_and_is_compared_with_both_sides(monkeypatch, tmp_path):
    calls = []

    def fake_run(out: Path, config, steps, seed, sets, env, label, launcher=("-m", "dnahnet_cli")):
        calls.append((seed, out.name, env["DNAHNET_CPU_KERNEL"], launcher))
        compression = {"kernel": 2.8, "pure": 3.0, "pure-fp32-scan": 3.0 + seed / 100, "mamba2-kernels": 2.8}
        side = out.name.split("-", 1)[1]
        return {"command": f"pretrain {side} {seed}", "eval_bits_per_base": 2.0 + seed / 100,
                "eval_compression": [compression[side] + seed / 10], "s_per_step_median": 0.5}

    monkeypatch.setattr(kernel_quality, "pretrain_run", fake_run)
    args = argparse.Namespace(seeds=[0, 1, 2], out=tmp_path, config="tiny", steps=3, set=[],
                              arms=["pure-fp32-scan", "mamba2-kernels"])
    results = kernel_quality.measure(args)
    arm_calls = [c for c in calls if c[1].endswith(("fp32-scan", "mamba2-kernels"))]
    assert sorted(arm_calls) == sorted(
        [(s, f"seed{s}-pure-fp32-scan", "0", ("-m", "bench.kernel_arms", "pure-fp32-scan")) for s in (0, 1, 2)]
        + [(s, f"seed{s}-mamba2-kernels", "1", ("-m", "bench.kernel_arms", "mamba2-kernels")) for s in (0, 1, 2)])
    results.update(command="python bench/kernel_quality.py", machine="test", config="tiny", steps=3)
    text = kernel_quality.report(results)
    assert "| 1 | 2.0100, 3.11 | 2.0100, 2.90 |" in text
    # the arm moves with the seed against pure (an interval), and is constantly 0.2 above the kernels
    assert "- pure-fp32-scan - pure: bits/base +0.0000" in text
    assert "compression +0.210 (t interval +0.185 to +0.235: pure-fp32-scan higher)" in text
    assert "- mamba2-kernels - kernel: bits/base +0.0000" in text and "mamba2-kernels lower" in text
    assert "DNAHNET_CPU_KERNEL=1 pretrain mamba2-kernels 2" in text


def test_arms_left_out_keep_the_report_as_it_was(monkeypatch, tmp_path):
    monkeypatch.setattr(kernel_quality, "pretrain_run", lambda out, *a, **k: {
        "command": "pretrain", "eval_bits_per_base": 2.0, "eval_compression": [3.0], "s_per_step_median": None})
    args = argparse.Namespace(seeds=[0], out=tmp_path, config="tiny", steps=3, set=[], arms=[])
    results = kernel_quality.measure(args)
    results.update(command="python bench/kernel_quality.py", machine="test", config="tiny", steps=3)
    text = kernel_quality.report(results)
    assert "Diagnostic arms" not in text
    assert "| 0 | 2.0000 | 2.0000 | +0.0000 | 3.00 / 3.00 | - / - |" in text  # a run too short for a step time


def test_an_unknown_arm_is_refused_with_the_list():
    with pytest.raises(SystemExit):
        kernel_quality.main(["--arms", "pure-fp64"])
