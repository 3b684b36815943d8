"""bench/step_ops.py (a step's time by operator class) and bench/sdpa_causal.py (causal against full SDPA)."""

import json

import pytest


def test_matmul_flops_read_from_recorded_shapes():
    from bench.step_ops import matmul_flops, op_class

    assert matmul_flops("aten::mm", [[8, 4], [4, 3]]) == 2 * 8 * 4 * 3
    assert matmul_flops("aten::bmm", [[5, 8, 4], [5, 4, 3]]) == 2 * 5 * 8 * 4 * 3
    assert matmul_flops("aten::addmm", [[3], [8, 4], [4, 3], [], []]) == 2 * 8 * 4 * 3  # the bias is not an operand
    assert matmul_flops("aten::mm", []) is None
    assert op_class("aten::bmm") == "batched matmul (bmm)" and op_class("aten::addmm") == op_class("aten::mm")
    assert op_class("## Call CompiledFxGraph abc ##") == "Inductor kernels"
    assert op_class("aten::_scaled_dot_product_flash_attention_for_cpu_backward") == "attention (SDPA)"
    assert op_class("dnahnet_cpu::chunk_output_backward") == "fused SSD kernel (DNAHNET_CPU_KERNEL)"  # not dropped
    assert op_class("dnahnet_cpu::conv_silu_backward") == "fused conv and norm kernels (DNAHNET_CPU_KERNEL)"
    assert op_class("dnahnet_cpu::gated_norm") == "fused conv and norm kernels (DNAHNET_CPU_KERNEL)"
    for op in ("dnahnet_cpu::rms_norm", "GeneratedBackwardFor_dnahnet_cpu_rotary_qkv_default", "dnahnet_cpu::swiglu",
               "dnahnet_cpu::adjacent_cosine_backward"):
        assert op_class(op).startswith("other fused kernels")
    # Eager, a kernel's forward computes inside its autograd wrapper, whose self time it is.
    assert op_class("GeneratedBackwardFor_dnahnet_cpu_chunk_output_default") == "fused SSD kernel (DNAHNET_CPU_KERNEL)"
    assert op_class("GeneratedBackwardFor_dnahnet_cpu_conv_silu_default") == "fused conv and norm kernels (DNAHNET_CPU_KERNEL)"
    assert op_class("Optimizer.step#AdamW.step") is None  # a wrapper: its operators are counted themselves


def test_step_ops_splits_an_eager_step_and_reports_every_matmul_shape(tmp_path):
    from bench.step_ops import main

    out = tmp_path / "ops"
    assert main(["--config", "tiny", "--steps", "1", "--threads", "1", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["compiled"] is False and result["median_step_ms"] > 0
    assert result["classes_ms"]["GEMM (mm, addmm)"] > 0 and "Inductor kernels" not in result["classes_ms"]
    mms = [row for row in result["matmul_shapes"] if row["class"] == "GEMM (mm, addmm)"]
    assert mms and all(row["gflop"] > 0 and row["calls"] >= 1 for row in mms)
    text = (out / "report.md").read_text()
    assert "python bench/step_ops.py --config tiny --steps 1" in text and "| GEMM (mm, addmm) |" in text
    gemm_gflop = sum(row["gflop"] for row in mms)
    assert f"- GEMM (mm, addmm): {gemm_gflop:.2f} GFLOP in {result['classes_ms']['GEMM (mm, addmm)']:.1f} ms" in text


def test_sdpa_causal_times_both_on_one_input_and_refuses_bad_shapes(capsys):
    from bench.sdpa_causal import causal_over_full, main, parse_shapes

    assert parse_shapes("2x3x64x8,1x1x16x4") == [(2, 3, 64, 8), (1, 1, 16, 4)]
    with pytest.raises(SystemExit, match="'2x3x64'"):
        parse_shapes("2x3x64")
    r = causal_over_full((1, 2, 32, 8), backward=True, repeats=2)
    assert r["causal_ms"] > 0 and r["full_ms"] > 0 and r["ratio"] > 0
    assert main(["--shapes", "1x2x32x8", "--repeats", "1", "--threads", "1"]) == 0
    assert "| 1x2x32x8 | fwd+bwd |" in capsys.readouterr().out
