"""H-Nets against a baseline in one process: interleaved batch-1 forward passes, paired speed ratios.

`dnahnet bench inference` measures each (config, length) in its own child process (for
peak memory), so a ratio between two configs compares runs minutes apart on a machine
whose speed drifts by ~20%. Here every repeat runs each model once on the same input,
back to back (A B C A B C ...), and each ratio is taken within a round: the report gives
the median of those paired ratios with a bootstrap 95% interval, not a ratio of bests.

H-Nets run with the weights `dnahnet.perf.inference.settled_weights` gives them (trained
on random DNA until their compression is within tolerance of the target), as in the
inference benchmark. Batch 1, `torch.inference_mode`, with the allocator settings of the
command line (`dnahnet.perf.allocator`). On the CPU in fp32; with `--device cuda` in bf16 weights
as `dnahnet bench inference --device cuda` runs them (routed on mamba_ssm's Triton scan where
it loads), timed with a synchronize around each pass, with each pass's peak memory.

    python bench/inference_pairs.py --configs bench-mamba2,bench-hnet-1stage-mamba2,bench-hnet-1stage-mamba2-m1 \
        --lengths 1024,4096,16384,65536,262144,1048576 --out bench/results/inference_pairs_cpu
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import dnahnet.nn.isotropic as isotropic
from dnahnet.config import model_config_from_preset
from dnahnet.devices import resolve_device
from dnahnet.io.atomic import check_writable_dir
from dnahnet.nn import cpu_kernel
from dnahnet.nn.chunking import realised_compression
from dnahnet.nn.compile import compile_layers, compile_seconds
from dnahnet.nn.hnet import HNetLM
from dnahnet.perf.inference import (bench_net, dtype_name, inference_dtype, parse_configs, parse_lengths, random_dna,
                                    settled_weights)
from dnahnet.perf.measure import (add_paired_bench_arguments, describe_ratio, machine, paired_ratio_summary,
                                   run_bench_script, save_paired_bench, start_paired_bench, synchronize)


WARMUP_BASES = 16384
PURE = "pure"  # the suffix of a config's twin with the fused CPU kernels off (--pure)


def build(name: str, scratch: Path, seed: int, device: torch.device) -> tuple[HNetLM, dict | None]:
    """The model `dnahnet bench inference` measures, on `device`: H-Nets with their routing settled
    first (on the CPU, so a GPU run measures the weights a CPU run does), bf16 weights on CUDA."""
    settled = settled_weights(name, torch.device("cpu"), seed, scratch) if model_config_from_preset(name).n_routed else None
    net = bench_net(name, seed, settled and settled["path"])
    return net.to(device=device, dtype=inference_dtype(device)), settled


def use_segment(positions: int) -> None:
    """Stream streamable models and stacks (Mamba-2, windowed attention) in segments of `positions` (0: never),
    on the CPU and on CUDA."""
    isotropic.STREAM_SEGMENT_POSITIONS = isotropic.GPU_STREAM_SEGMENT_POSITIONS = positions if positions > 0 else sys.maxsize


@contextlib.contextmanager
def segments_restored():
    """Within it `use_segment` may be called freely; afterwards the process streams as before."""
    defaults = isotropic.STREAM_SEGMENT_POSITIONS, isotropic.GPU_STREAM_SEGMENT_POSITIONS
    try:
        yield
    finally:
        isotropic.STREAM_SEGMENT_POSITIONS, isotropic.GPU_STREAM_SEGMENT_POSITIONS = defaults


def measure_length(nets: dict[str, tuple[HNetLM, int]], length: int, repeats: int, min_seconds: float,
                   seed: int, device: torch.device = torch.device("cpu"), warm_whole: bool = False) -> dict:
    """Seconds per forward of every (model, streaming segment), interleaved: at least `repeats`
    rounds and at least `min_seconds` in all. Each is warmed up once on the first 16,384 bases, and
    once on the whole input on CUDA or with `warm_whole` (a new length can compile kernels or graphs).
    On CUDA also the most memory any pass allocated beyond what was allocated before it."""
    ids = torch.as_tensor(random_dna(length, seed), device=device).long()[None]
    seconds: dict[str, list[float]] = {name: [] for name in nets}
    peak_over: dict[str, int] = {}
    compression: dict[str, list[float]] = {}
    started = time.perf_counter()
    with torch.inference_mode():
        for net, segment in nets.values():
            use_segment(segment)
            net(ids[:, :WARMUP_BASES])
            if device.type == "cuda" or warm_whole:
                net(ids)
        while len(seconds[next(iter(nets))]) < repeats or time.perf_counter() - started < min_seconds:
            for name, (net, segment) in nets.items():
                use_segment(segment)
                if device.type == "cuda":
                    before = torch.cuda.memory_allocated(device)
                    torch.cuda.reset_peak_memory_stats(device)
                synchronize(device)
                start = time.perf_counter()
                out = net(ids)
                synchronize(device)
                seconds[name].append(time.perf_counter() - start)
                if device.type == "cuda":
                    peak_over[name] = max(peak_over.get(name, 0), torch.cuda.max_memory_allocated(device) - before)
                if name not in compression:
                    compression[name] = realised_compression(out.routing)
                del out
    row = {"length": length, "seconds": seconds, "compression": compression}
    if peak_over:
        row["peak_memory_over_model_bytes"] = peak_over
    return row


def summarise(row: dict, baseline: str) -> dict:
    base = row["seconds"][baseline]
    out = {}
    for name, secs in row["seconds"].items():
        entry = {"best_bases_per_s": row["length"] / min(secs), "median_bases_per_s": row["length"] / statistics.median(secs)}
        if name in row.get("peak_memory_over_model_bytes", {}):
            entry["peak_memory_over_model_mib"] = row["peak_memory_over_model_bytes"][name] / 2**20
        if name != baseline:
            entry.update(paired_ratio_summary([b / s for b, s in zip(base, secs)]))
        kernels = row["seconds"].get(name.replace(f"+{PURE}", "", 1)) if f"+{PURE}" in name else None  # x+pure@64: x@64
        if kernels is not None:
            entry["cpu_kernel_gain"] = paired_ratio_summary([p / k for p, k in zip(secs, kernels)])
        out[name] = entry
    return out


def report(results: dict) -> str:
    names, baseline = results["configs"], results["configs"][0]
    lines = ["# H-Nets against a baseline, interleaved in one process", "", "Command:", "", f"    {results['command']}", "",
             f"Machine: {results['machine']}; {results['dtype']}, batch 1, "
             f"interleaved rounds per length (at least {results['repeats']} and at least {results['min_seconds']:g} s), "
             f"after one warm-up each on {WARMUP_BASES:,} bases; streaming segment "
             f"{', '.join(str(x) if x else 'off' for x in results['segments'])} (`name@segment` when several). Parameters: "
             + ", ".join(f"{n} {p / 1e6:.2f}M" for n, p in results["params"].items()) + ".", ""]
    if "compile_seconds" in results:
        lines += [f"`name+compiled`: the backbone compiled whole (`dnahnet.nn.compile.compile_layers`); compiling took "
                  f"{results['compile_seconds']:.1f} s in all, in the warm-ups (one on {WARMUP_BASES:,} bases and one on "
                  "the whole input per length), outside the timed rounds.", ""]
    lines += [f"Median bases/s (best in brackets"
             + ("; then the most memory a pass allocated beyond the weights and input" if results["device"] != "cpu" else "")
             + f"); for each other model the median of its paired speed ratios over {baseline} "
             "(one per round), a percentile-bootstrap 95% interval of that median, and the range:", "",
             "| length | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row in results["rows"]:
        s = row["summary"]
        cells = []
        for name in names:
            e = s[name]
            cell = f"{e['median_bases_per_s']:,.0f} ({e['best_bases_per_s']:,.0f})"
            if "peak_memory_over_model_mib" in e:
                cell += f", {e['peak_memory_over_model_mib']:,.0f} MiB"
            if name != baseline:
                cell += "; " + describe_ratio(e)
            cells.append(cell)
        lines.append(f"| {row['length']:,} | " + " | ".join(cells) + " |")
    gains = [(row["length"], name.replace(f"+{PURE}", "", 1), e["cpu_kernel_gain"])
             for row in results["rows"] for name, e in row["summary"].items() if "cpu_kernel_gain" in e]
    if gains:
        lines += ["", f"`name+{PURE}`: the same model with the fused CPU kernels off (`dnahnet.nn.cpu_kernel`, on by "
                  "default). The kernels' gain, each config's pure seconds over its own with the kernels in the same "
                  "round (median, bootstrap 95% interval): "
                  + "; ".join(f"{length:,} {name} {describe_ratio(g)}" for length, name, g in gains) + "."]
    lines += ["", "Realised compression (L/M per routed stage) at each length: "
              + "; ".join(f"{r['length']:,}: " + ", ".join(f"{n} {','.join(f'{c:.2f}' for c in v)}"
                                                         for n, v in r["compression"].items() if v)
                          for r in results["rows"]), ""]
    return "\n".join(lines)


def measure_and_write(nets: dict[str, tuple[HNetLM, int]], length: int, args: argparse.Namespace, results: dict,
                      out: Path) -> None:
    """One length: measure, print a line, and rewrite results.json and report.md."""
    row = measure_length(nets, length, args.repeats, args.min_seconds, args.seed, resolve_device(args.device),
                         warm_whole=args.compile)
    row["summary"] = summarise(row, next(iter(nets)))
    if args.compile:
        results["compile_seconds"] = compile_seconds()
    results["rows"].append(row)
    print(f"L={length:>9,d}  " + "  ".join(
        f"{n}: {e['median_bases_per_s']:,.0f}/s" + (f" ({e['ratio_median']:.2f}x [{e['ratio_ci_low']:.2f},{e['ratio_ci_high']:.2f}])"
                                                     if "ratio_median" in e else "")
        for n, e in row["summary"].items()), flush=True)
    save_paired_bench(out, results, report(results))  # kept current: a long run can be read as it goes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="bench-mamba2,bench-hnet-1stage-mamba2,bench-hnet-1stage-mamba2-m1",
                   help="comma-separated presets; the first is the baseline of every ratio")
    p.add_argument("--lengths", default="1024,4096,16384,65536,262144,1048576")
    add_paired_bench_arguments(p, repeats=5, repeats_help="at least this many interleaved rounds per length")
    p.add_argument("--min-seconds", type=float, default=30.0, help="and rounds until this much time has passed")
    p.add_argument("--segment", default=None,
                   help="positions per streamed segment of a Mamba-2 or windowed-attention stack (0: never stream; default: "
                        f"the device's, {isotropic.STREAM_SEGMENT_POSITIONS:,} on the CPU and "
                        f"{isotropic.GPU_STREAM_SEGMENT_POSITIONS:,} on CUDA); several, comma-separated, run every config "
                        "at each, interleaved")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (CUDA: bf16 weights, as `dnahnet bench inference`)")
    p.add_argument("--compile", action="store_true",
                   help="also run each config with its backbone compiled (`name+compiled`, as `dnahnet.load(compile=True)`), "
                        "interleaved with the eager ones; the warm-ups take the compiles, reported apart")
    p.add_argument("--compile-backend", default="inductor", help=argparse.SUPPRESS)  # tests: "eager"
    p.add_argument("--pure", action="store_true",
                   help="also run each config with the fused CPU kernels off (`name+pure`; they are on by default), "
                        "interleaved, and report the kernels' paired gain per config")
    args = p.parse_args(argv)
    out = check_writable_dir(args.out)
    device = resolve_device(args.device)
    results = start_paired_bench("bench/inference_pairs.py", argv, args.threads, args.repeats)
    results.update(device=str(device), dtype=dtype_name(inference_dtype(device)), machine=machine(device))
    segments = ([isotropic.stream_segment_positions(device)] if args.segment is None
                else [int(x) for x in args.segment.split(",") if x.strip()])
    names = list(parse_configs(args.configs))
    lengths = parse_lengths(args.lengths)
    nets, settled = {}, {}
    with tempfile.TemporaryDirectory(prefix="dnahnet-pairs-") as scratch:
        for name in names:
            net, s = build(name, Path(scratch), args.seed, device)
            variants = [(name, net)]
            if args.compile:
                twin = copy.deepcopy(net)
                compile_layers(twin, backend=args.compile_backend)
                variants.append((f"{name}+compiled", twin))
            if args.pure:
                twin = copy.deepcopy(net)
                cpu_kernel.switch(twin, on=False)
                variants.append((f"{name}+{PURE}", twin))
            for label, model in variants:
                for segment in segments:
                    nets[label if len(segments) == 1 else f"{label}@{segment or 'off'}"] = (model, segment)
            if s:
                settled[name] = {"steps": s["steps"], "compression": s["compression"], "ok": s["ok"]}
    results.update(min_seconds=args.min_seconds, segments=segments, configs=list(nets),
                   params={n: sum(p.numel() for p in net.parameters()) for n, (net, _) in nets.items()},
                   settled=settled, rows=[])
    with segments_restored():
        for length in lengths:
            measure_and_write(nets, length, args, results, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_bench_script(main, "bench/inference_pairs.py"))
