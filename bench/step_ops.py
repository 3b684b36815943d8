"""Where a training step's time goes, by operator class and by matmul shape, eager or compiled.

`dnahnet bench train --profile` splits an eager step by model part (encoder, main, ...);
a compiled step has no part labels left (Inductor fuses across them), so this splits it by
what runs: GEMMs (mm/addmm), batched matmuls (bmm, mostly the SSD scan's small blocks),
attention (SDPA), Inductor's fused kernels, the fused SSD, conv and norm kernels where
they run (on by default; DNAHNET_CPU_KERNEL=0 turns them off), and the rest. For the GEMMs and the batched matmuls it gives
the FLOPs per step and the rate reached, against the matmul peak measured in the same run,
and it lists every matmul shape with its calls and FLOPs. Times come from torch.profiler
without shape recording (its own overhead still makes the profiled step slower than the timed
one; both are printed); shapes come from a second profile that records them, whose times are
not used, because recording shapes inflates them several-fold.

    python bench/step_ops.py --config cpu-hnet-transformer [--compiled] [--precision bf16] [--steps 3] [--out runs/step_ops]
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
    # The kernels' operators, called from the compiled graphs (so outside their self time), and eager through
    # their autograd wrappers, which hold the forward's compute as self time: "GeneratedBackwardFor_dnahnet_cpu_<op>_default".
    kernel_op = key.removeprefix("dnahnet_cpu::").removeprefix("GeneratedBackwardFor_dnahnet_cpu_")
    if kernel_op != key:
        if kernel_op.startswith(("conv_silu", "gated_norm")):
            return "fused conv and norm kernels (DNAHNET_CPU_KERNEL)"
        if kernel_op.startswith(("scan", "chunk_states", "chunk_output")):
            return "fused SSD kernel (DNAHNET_CPU_KERNEL)"
        return "other fused kernels: RMSNorm, rotary, MLP gate, routing (DNAHNET_CPU_KERNEL)"
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


def profile_steps(config: str, compiled: bool, steps: int, precision: str = "fp32") -> dict:
    prepared = prepare_train_step(config, torch.device("cpu"), precision=precision)
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
    # Shapes, call counts and FLOPs from a second run that records shapes. Its times are not used: on
    # this project's VM recording shapes made an eager Mamba-2 block's profile 6.7x its timed run.
    shapes: list[dict] = []
    for ev in profiled(record_shapes=True):
        if ev.key in MATMULS:
            flops = matmul_flops(ev.key, ev.input_shapes)
            calls = ev.count / steps
            shapes.append({"op": ev.key, "class": op_class(ev.key), "shapes": [s for s in ev.input_shapes if s],
                           "calls": calls, "gflop": flops * calls / 1e9 if flops else None})
    shapes.sort(key=lambda r: -(r["gflop"] or 0.0))
    return {"config": config, "compiled": compiled, "precision": precision, "compile_s": compile_s,
            "median_step_ms": statistics.median(times) * 1e3, "classes_ms": classes, "matmul_shapes": shapes,
            "peak_gflops": matmul_peak_flops(torch.device("cpu"), torch.bfloat16 if precision == "bf16" else torch.float32) / 1e9, "steps": steps}


def precision_words(r: dict) -> str:
    """fp32, or bf16 autocast (the trainer's CPU default where the CPU has native bf16)."""
    return "bf16 autocast" if r.get("precision") == "bf16" else "fp32"


def report(r: dict) -> str:
    total = sum(r["classes_ms"].values())
    mode = f"compiled as `pretrain --compile` ({r['compile_s']:.0f} s compiling)" if r["compiled"] else "eager"
    lines = [f"# Training step by operator: {r['config']}, {mode}", "", "Command:", "", f"    {r['command']}", "",
             f"Machine: {r['machine']}; {precision_words(r)}; timed step (median of 5) {r['median_step_ms']:.1f} ms; profiled "
             f"(mean of {r['steps']}, profiler overhead included) {total:.1f} ms of operator self time; "
             f"{r.get('precision', 'fp32')} matmul peak {r['peak_gflops']:.1f} GFLOP/s.", "",
             "| class | ms per step | share |", "|---|---|---|"]
    for name, ms in sorted(r["classes_ms"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {ms:.1f} | {ms / total:.0%} |")
    lines += ["", "Matmul FLOPs per step by class (shapes from a second profile that records them) over the class's time "
              "in the table above:", ""]
    for name in ("GEMM (mm, addmm)", "batched matmul (bmm)"):
        gflop = sum(m["gflop"] or 0.0 for m in r["matmul_shapes"] if m["class"] == name)
        ms = r["classes_ms"].get(name)
        if gflop and ms:
            lines.append(f"- {name}: {gflop:.2f} GFLOP in {ms:.1f} ms = {gflop / ms * 1e3:.1f} GFLOP/s "
                         f"({gflop / ms * 1e3 / r['peak_gflops']:.0%} of the peak)")
    lines += ["", "Matmuls by shape (at least 0.01 GFLOP per step):", "",
              "| op | input shapes | calls per step | GFLOP per step |", "|---|---|---|---|"]
    for m in r["matmul_shapes"]:
        if (m["gflop"] or 0.0) >= 0.01:
            lines.append(f"| {m['op']} | {m['shapes']} | {m['calls']:g} | {m['gflop']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="cpu-hnet-transformer")
    p.add_argument("--compiled", action="store_true", help="compile the blocks as `pretrain --compile` does")
    p.add_argument("--steps", type=int, default=3, help="profiled steps")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: the forward under bf16 autocast, as `pretrain` runs by default on a CPU with native bf16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("runs/step_ops"))
    args = p.parse_args(argv)
    header = start_paired_bench("bench/step_ops.py", argv, args.threads, args.steps)
    result = header | profile_steps(args.config, args.compiled, args.steps, args.precision)
    text = report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    save_paired_bench(args.out, result, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
