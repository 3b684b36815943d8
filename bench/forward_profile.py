"""Where a batch-1 forward pass spends its time: by H-Net part and by kernel, with how busy the device is.

`bench/inference_pairs.py` says how fast each model is; this says why. Each model (H-Nets settled as
there, bf16 weights on CUDA) runs `--warmup` passes, then `--passes` under torch.profiler. The report
gives the wall time per pass, the device's kernel time per pass (on CUDA: their ratio is how busy the
GPU was; a small one means the host, not the GPU, sets the pace), the time under each H-Net label
(`stage0.encoder`, `stage0.routing`, ...) and the operators that took most time.

    python -m bench.forward_profile --device cuda --configs bench-mamba2,bench-hnet-1stage-mamba2-m1 \
        --length 1048576 --out runs/forward_profile
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from dnahnet.devices import resolve_device
from dnahnet.nn import isotropic
from dnahnet.io.atomic import check_writable_dir
from dnahnet.perf.inference import dtype_name, inference_dtype, parse_configs, random_dna
from dnahnet.perf.measure import (add_paired_bench_arguments, machine, run_bench_script, save_paired_bench,
                                   start_paired_bench, synchronize)

from bench.inference_pairs import build, segments_restored, use_segment

LABEL_PREFIXES = ("stage", "embedding")


def device_us(event) -> float:
    """An averaged event's time on the device (CUDA kernels), or on the CPU when there is no device."""
    return getattr(event, "device_time_total", 0.0) or getattr(event, "cuda_time_total", 0.0)


def profile_config(name: str, length: int, device: torch.device, warmup: int, passes: int, seed: int,
                   scratch: Path, top: int) -> dict:
    net, _ = build(name, scratch, seed, device)
    ids = torch.as_tensor(random_dna(length, seed), device=device).long()[None]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.inference_mode():
        for _ in range(warmup):
            net(ids)
        synchronize(device)
        with profile(activities=activities) as prof:
            started = time.perf_counter()
            for _ in range(passes):
                net(ids)
            synchronize(device)
            wall_s = (time.perf_counter() - started) / passes
    events = prof.key_averages()
    on_device = device.type == "cuda"
    kernel_ms = sum(device_us(e) for e in events if not e.key.startswith(LABEL_PREFIXES)
                    and getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA) / 1e3 / passes
    labels: dict[str, dict] = {}
    for e in events:  # on CUDA each label comes twice: the host's range, and its span on the GPU's timeline
        if e.key.startswith(LABEL_PREFIXES):
            entry = labels.setdefault(e.key, {"host_ms": 0.0, "kernel_ms": 0.0, "gpu_span_ms": 0.0})
            if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA:
                entry["gpu_span_ms"] = device_us(e) / 1e3 / passes
            else:
                entry["host_ms"] = e.cpu_time_total / 1e3 / passes
                entry["kernel_ms"] = device_us(e) / 1e3 / passes
    ops = sorted((e for e in events if not e.key.startswith(LABEL_PREFIXES)),
                 key=lambda e: device_us(e) if on_device else e.self_cpu_time_total, reverse=True)[:top]
    return {"config": name, "length": length, "wall_ms": wall_s * 1e3,
            "device_kernel_ms": kernel_ms if on_device else None,
            "labels": dict(sorted(labels.items())),
            "top_ops": [{"op": e.key[:90], "calls": e.count // passes,
                         "ms": (device_us(e) if on_device else e.self_cpu_time_total) / 1e3 / passes} for e in ops]}


def report(results: dict) -> str:
    on_device = results["device"] != "cpu"
    lines = ["# Where a batch-1 forward pass spends its time", "", "Command:", "", f"    {results['command']}", "",
             f"Machine: {results['machine']}; {results['dtype']}, batch 1, {results['passes']} profiled passes after "
             f"{results['warmup']} warm-ups; times per pass; streamable stacks streamed in segments of "
             f"{results['segment']:,} positions where longer.", ""]
    for r in results["rows"]:
        head = f"## {r['config']}, {r['length']:,} bases: {r['wall_ms']:.1f} ms per pass"
        if on_device:
            busy = r["device_kernel_ms"] / r["wall_ms"]
            head += f", kernels {r['device_kernel_ms']:.1f} ms (GPU busy {busy:.0%} of the pass)"
        lines += [head, ""]
        if r["labels"] and on_device:
            lines += ["Per H-Net part: time on the host, its kernels' time, and its span on the GPU's timeline "
                      "(first kernel to last, idle gaps included); `stage0.main` holds `stage1.main`.", "",
                      "| part | host ms | kernels ms | GPU span ms |", "|---|---|---|---|"]
            lines += [f"| {k} | {v['host_ms']:.1f} | {v['kernel_ms']:.1f} | {v['gpu_span_ms']:.1f} |"
                      for k, v in r["labels"].items()]
            lines.append("")
        elif r["labels"]:
            lines += ["Per H-Net part (`stage0.main` holds `stage1.main`):", "", "| part | ms |", "|---|---|"]
            lines += [f"| {k} | {v['host_ms']:.1f} |" for k, v in r["labels"].items()]
            lines.append("")
        lines += [f"| operator ({'device' if on_device else 'self CPU'} time) | calls | ms |", "|---|---|---|"]
        lines += [f"| `{o['op']}` | {o['calls']} | {o['ms']:.2f} |" for o in r["top_ops"]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="bench-mamba2,bench-hnet-1stage-mamba2-m1")
    p.add_argument("--length", type=int, default=1048576)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (CUDA: bf16 weights, as bench/inference_pairs.py)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--top", type=int, default=15, help="operators listed per model")
    p.add_argument("--segment", type=int, default=None,
                   help="streaming segment of Mamba-2 and windowed stacks (0: never; default: the device's)")
    add_paired_bench_arguments(p, repeats=1)
    args = p.parse_args(argv)
    out = check_writable_dir(args.out)
    device = resolve_device(args.device)
    results = start_paired_bench("-m bench.forward_profile", argv, args.threads, args.repeats)
    results.update(device=str(device), dtype=dtype_name(inference_dtype(device)), machine=machine(device),
                   warmup=args.warmup, passes=args.passes, rows=[])
    with segments_restored(), tempfile.TemporaryDirectory(prefix="dnahnet-profile-") as scratch:
        if args.segment is not None:
            use_segment(args.segment)
        results["segment"] = isotropic.stream_segment_positions(device)
        for name in parse_configs(args.configs):
            results["rows"].append(profile_config(name, args.length, device, args.warmup, args.passes, args.seed,
                                                  Path(scratch), args.top))
            save_paired_bench(out, results, report(results))
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_bench_script(main, "-m bench.forward_profile"))
