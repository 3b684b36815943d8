"""Where a training step's time goes, by operator class and by matmul shape, eager or compiled.

`dnahnet bench train --profile` splits an eager step by model part (encoder, main, ...);
a compiled step has no part labels left (Inductor fuses across them), so this splits it by
what runs: GEMMs (mm/addmm), batched matmuls (bmm, mostly the SSD scan's small blocks),
attention (SDPA), Inductor's fused kernels, and the rest. For every matmul shape it gives
the time per step and the GFLOP/s reached, which shows how far each one is from the
matmul peak measured in the same run. Profiled with torch.profiler (record_shapes), whose
own overhead makes the profiled step slower than the timed one; both are printed. The split by class
comes from a profile without shape recording, the matmul table from one with it.

    python bench/step_ops.py --config cpu-hnet-transformer [--compiled] [--steps 3] [--out runs/step_ops]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from dnahnet.perf.measure import matmul_peak_flops, save_paired_bench, start_paired_bench
from dnahnet.perf.train_profile import compile_train_step, prepare_train_step

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def op_class(key: str) -> str | None:
    """The class a profiler event counts towards; None for events that only wrap others."""
    if key in ("aten::mm", "aten::addmm"):
        return "GEMM (mm, addmm)"
    if key == "aten::bmm":
        return "batched matmul (bmm)"
    if key.startswith("aten::_scaled_dot_product"):
        return "attention (SDPA)"
    if key.startswith("## Call CompiledFxGraph"):
        return "Inductor kernels"
    if key.startswith("aten::") or key.startswith("dnahnet::"):
        return "other operators"
    return None


def matmul_flops(key: str, shapes: list) -> float | None:
    """FLOPs of one call from its recorded input shapes (addmm: bias first)."""
    operands = [s for s in shapes if isinstance(s, list) and len(s) >= 2]
    if key == "aten::addmm":
        operands = operands[-2:]
    if len(operands) < 2:
        return None
    a, b = operands[0], operands[1]
    batch = a[0] if key == "aten::bmm" else 1
    return 2.0 * batch * a[-2] * a[-1] * b[-1]


def profile_steps(config: str, compiled: bool, steps: int) -> dict:
    prepared = prepare_train_step(config, torch.device("cpu"))
    compile_s = compile_train_step(prepared)[0] if compiled else None
    for _ in range(3):
        prepared.step()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        prepared.step()
        times.append(time.perf_counter() - start)
    from torch.profiler import ProfilerActivity, profile

    def profiled(record_shapes: bool):
        with profile(activities=[ProfilerActivity.CPU], record_shapes=record_shapes) as prof:
            for _ in range(steps):
                prepared.step()
        return prof.key_averages(group_by_input_shape=record_shapes)

    # Classes from a run without shape recording: recording shapes adds its overhead to the self time of
    # the compiled graphs' wrappers, where Inductor's kernels are counted.
    classes: dict[str, float] = {}
    for ev in profiled(record_shapes=False):
        name = op_class(ev.key)
        if name:
            classes[name] = classes.get(name, 0.0) + ev.self_cpu_time_total / 1e3 / steps
    shapes: list[dict] = []
    for ev in profiled(record_shapes=True):
        if ev.key in MATMULS:
            ms = ev.self_cpu_time_total / 1e3 / steps
            flops = matmul_flops(ev.key, ev.input_shapes)
            calls = ev.count / steps
            shapes.append({"op": ev.key, "shapes": [s for s in ev.input_shapes if s], "calls": calls, "ms": ms,
                           "gflops_per_s": flops * calls / ms / 1e6 if flops and ms else None})
    shapes.sort(key=lambda r: -r["ms"])
    return {"config": config, "compiled": compiled, "compile_s": compile_s,
            "median_step_ms": statistics.median(times) * 1e3, "classes_ms": classes, "matmul_shapes": shapes,
            "peak_gflops": matmul_peak_flops(torch.device("cpu")) / 1e9, "steps": steps}


def report(r: dict) -> str:
    total = sum(r["classes_ms"].values())
    mode = f"compiled as `pretrain --compile` ({r['compile_s']:.0f} s compiling)" if r["compiled"] else "eager"
    lines = [f"# Training step by operator: {r['config']}, {mode}", "", "Command:", "", f"    {r['command']}", "",
             f"Machine: {r['machine']}; fp32; timed step (median of 5) {r['median_step_ms']:.1f} ms; profiled "
             f"(mean of {r['steps']}, profiler overhead included) {total:.1f} ms of operator self time; "
             f"fp32 matmul peak {r['peak_gflops']:.1f} GFLOP/s.", "",
             "| class | ms per step | share |", "|---|---|---|"]
    for name, ms in sorted(r["classes_ms"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {ms:.1f} | {ms / total:.0%} |")
    recorded = sum(m["ms"] for m in r["matmul_shapes"])
    unrecorded = sum(ms for name, ms in r["classes_ms"].items() if "matmul" in name or "GEMM" in name)
    lines += ["", "Matmuls by shape (at least 1 ms per step), from a second profile that records shapes. Recording adds "
              f"its overhead to every call: there all matmuls sum to {recorded:.1f} ms per step against {unrecorded:.1f} ms "
              "in the table above, so the rates below are lower bounds, the more so for short calls.", "",
              "| op | input shapes | calls per step | ms per step | GFLOP/s |", "|---|---|---|---|---|"]
    for s in r["matmul_shapes"]:
        if s["ms"] >= 1.0:
            rate = f"{s['gflops_per_s']:.1f}" if s["gflops_per_s"] else "-"
            lines.append(f"| {s['op']} | {s['shapes']} | {s['calls']:g} | {s['ms']:.1f} | {rate} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="cpu-hnet-transformer")
    p.add_argument("--compiled", action="store_true", help="compile the blocks as `pretrain --compile` does")
    p.add_argument("--steps", type=int, default=3, help="profiled steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("runs/step_ops"))
    args = p.parse_args(argv)
    header = start_paired_bench("bench/step_ops.py", argv, args.threads, args.steps)
    result = header | profile_steps(args.config, args.compiled, args.steps)
    text = report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    save_paired_bench(args.out, result, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
