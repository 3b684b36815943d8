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
    args = argparse.Namespace(seeds=[0, 1, 2], out=tmp_path, config="tiny", steps=3, set=[])
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
