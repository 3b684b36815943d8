"""Inference benchmark: batch-1 forward passes and windowed scoring at increasing lengths.

For each (config, length, mode) one measurement: wall-clock latency (best of a few
runs after a first pass, which is reported apart), throughput in bases/s, peak memory (CPU: the peak RSS of a
fresh child process capped at `memory_limit_gb`; CUDA: `max_memory_allocated`),
and analytic forward FLOPs per base at the compression the model realised. Modes:

- `forward`: one forward pass over the whole sequence (what prefill costs);
- `score`: `DnaModel.score` of one sequence through overlapping windows of
  `window` bases (context `window // 2`), memory bounded by the window.

H-Nets are measured at their target compression: each is first trained briefly
on random DNA (`dnahnet.perf.settle`) and its children load those weights.

fp32 on CPU, bf16 on CUDA. A length that does not fit (MemoryError, allocator
error, a killed child, CUDA OOM) is reported as "did not fit", never crashed on.

    dnahnet bench inference --configs bench-transformer,bench-mamba2,bench-hnet-1stage,bench-hnet-2stage \
        --lengths 1024,4096,16384,65536,131072 --out runs/bench-inference
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dnahnet.config import ModelConfig, model_config_from_preset
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, check_writable_dir, save_png
from dnahnet.nn.chunking import realised_compression
from dnahnet.nn.flops import count_flops
from dnahnet.perf.measure import (
    FAILED_TO_FIT,
    best_time,
    machine,
    peak_rss_bytes,
    resolve_device,
    run_isolated,
    synchronize,
    total_memory_bytes,
)
from dnahnet.perf.settle import TOLERANCE as SETTLE_TOLERANCE
from dnahnet.perf.settle import realised_ratios, settle_routing, within_target

MODES = ("forward", "score")
DEFAULT_CONFIGS = ["bench-transformer", "bench-mamba2", "bench-hnet-1stage", "bench-hnet-2stage",
                   "bench-hnet-1stage-swa", "bench-hnet-1stage-mamba2", "bench-hnet-1stage-mamba2-m1"]
DEFAULT_LENGTHS = [1024, 4096, 16384, 65536, 131072]
MILLION = 1_000_000


def min_length(config: ModelConfig) -> int:
    """Shortest length a benchmark accepts: one SSD chunk, and at least one position per innermost chunk."""
    product = math.prod(config.expected_compression()) if config.n_routed else 1.0
    return max(config.ssm().chunk_size, math.ceil(product))


def parse_configs(text: str | list[str]) -> dict[str, ModelConfig]:
    names = [c.strip() for c in text.split(",") if c.strip()] if isinstance(text, str) else list(text)
    if not names:
        raise DnahnetInputError("--configs: no config names given")
    return {name: model_config_from_preset(name) for name in names}  # unknown names raise with the list


def parse_lengths(text: str | list[int]) -> list[int]:
    if isinstance(text, str):
        try:
            lengths = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise DnahnetInputError(f"--lengths: expected integers separated by commas, got {text!r}") from None
    else:
        lengths = [int(x) for x in text]
    if not lengths:
        raise DnahnetInputError("--lengths: no lengths given")
    return sorted(set(lengths))


def check_lengths(configs: dict[str, ModelConfig], lengths: list[int]) -> None:
    for name, cfg in configs.items():
        need = min_length(cfg)
        short = [n for n in lengths if n < need]
        if short:
            raise DnahnetInputError(
                f"--lengths: {short[0]} is shorter than the smallest chunk {name} works with ({need} bases: "
                "one SSD chunk and one position per innermost chunk)"
            )


def random_dna(length: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size=length)]


def inference_dtype(device: torch.device) -> torch.dtype:
    """The weights' type the inference benchmarks run in: bf16 on CUDA, float32 on the CPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """"bfloat16" for torch.bfloat16: how results and reports name a type."""
    return str(dtype).removeprefix("torch.")


def bench_net(config: str, seed: int, weights: str | None = None):
    """The benchmarked model: `config` built from `seed` (as `settled_weights` builds it), with the
    settled `weights` when given, in eval mode on the CPU."""
    from dnahnet.nn.hnet import HNetLM

    torch.manual_seed(seed)
    net = HNetLM(model_config_from_preset(config))
    if weights:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()


def measure_one(config: str, length: int, mode: str = "forward", window: int = 4096, device: str = "cpu",
                repeats: int = 3, budget_s: float = 30.0, seed: int = 0, weights: str | None = None) -> dict:
    """One measurement in this process (the child on CPU). Returns timings, memory and FLOPs.

    `weights`: a state dict saved by `settled_weights` (an H-Net at its target compression).
    With `repeats=0` the first pass alone is timed and reported as the latency.
    """
    from dnahnet.infer.model import DnaModel
    from dnahnet.infer.model import plan_windows

    dev = torch.device(device)
    dtype = inference_dtype(dev)
    cfg = model_config_from_preset(config)
    net = bench_net(config, seed, weights).to(device=dev, dtype=dtype)
    seq = random_dna(length, seed)
    ratios: list[float] = []
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    rss_before = peak_rss_bytes()
    base_alloc = torch.cuda.memory_allocated(dev) if dev.type == "cuda" else 0

    if mode == "forward":
        ids = torch.as_tensor(seq, device=dev).long()[None]

        def run() -> None:
            with torch.inference_mode():
                out = net(ids)
            ratios[:] = realised_compression(out.routing)
    elif mode == "score":
        model = DnaModel(net, name=config)

        def run() -> None:
            model.score([seq], batch_size=1, window=window, context=window // 2)
    else:
        raise DnahnetInputError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")

    started = time.perf_counter()
    run()  # the first pass, timed apart: page faults and first-call costs
    synchronize(dev)
    first_pass_s = time.perf_counter() - started
    # repeats 0: the first pass is the measurement (a pass of many minutes, e.g. attention at 2^20 on a CPU).
    seconds = first_pass_s if repeats < 1 else best_time(run, repeats=repeats, warmup=0, device=dev, budget_s=budget_s)
    synchronize(dev)
    if mode == "forward":
        flops = count_flops(cfg, length, ratios or None).forward
    else:  # every window is one forward pass at its own length (target compression)
        flops = sum(count_flops(cfg, w.end - w.start).forward for w in plan_windows(length, window, window // 2))
    result = {"config": config, "length": length, "mode": mode, "device": str(dev), "dtype": dtype_name(dtype),
              "latency_s": seconds, "first_pass_s": first_pass_s, "bases_per_s": length / seconds, "flops_per_base": flops / length,
              "compression": ratios, "params": sum(p.numel() for p in net.parameters()),
              "rss_before_bytes": rss_before}
    if dev.type == "cuda":
        result["peak_memory_bytes"] = torch.cuda.max_memory_allocated(dev)
        result["peak_memory_over_model_bytes"] = result["peak_memory_bytes"] - base_alloc
    return result


@dataclass
class InferenceBench:
    """Options of one inference benchmark run."""

    configs: list[str] = field(default_factory=lambda: list(DEFAULT_CONFIGS))
    lengths: list[int] = field(default_factory=lambda: list(DEFAULT_LENGTHS))
    out: str = "runs/bench-inference"
    device: str = "auto"
    modes: list[str] = field(default_factory=lambda: list(MODES))
    window: int = 4096
    repeats: int = 3
    memory_limit_gb: float | None = None  # CPU child cap; default half of physical memory
    timeout_s: float = 900.0
    threads: int | None = None
    seed: int = 0


def bench_inference(opts: InferenceBench, command: str | None = None, log=print) -> dict:
    """Measure every (config, length, mode); write results.json, results.tsv, report.md and throughput.png."""
    configs = parse_configs(opts.configs)
    lengths = parse_lengths(opts.lengths)
    check_lengths(configs, lengths)
    bad = [m for m in opts.modes if m not in MODES]
    if bad or not opts.modes:
        raise DnahnetInputError(f"--modes: expected some of {', '.join(MODES)}, got {','.join(opts.modes)!r}")
    if opts.window < 2:
        raise DnahnetInputError(f"--window: must be at least 2, got {opts.window}")
    if opts.repeats < 0:
        raise DnahnetInputError(f"--repeats: must be 0 (the first pass alone) or more, got {opts.repeats}")
    out = check_writable_dir(opts.out)
    dev = resolve_device(opts.device)
    limit = int((opts.memory_limit_gb or total_memory_bytes() / 2**30 / 2) * 2**30)
    rows: list[dict] = []
    settled: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="dnahnet-settled-") as scratch:
        for name in configs:
            if configs[name].n_routed:
                settled[name] = settled_weights(name, dev, opts.seed, Path(scratch))
                log(f"{name:20s} settled to compression {','.join(f'{r:.2f}' for r in settled[name]['compression'])} "
                    f"(target {','.join(f'{t:g}' for t in configs[name].stage_target_ratios())}) "
                    f"in {settled[name]['steps']} training steps")
            for mode in opts.modes:
                too_big = False
                for length in lengths:
                    row = {"config": name, "length": length, "mode": mode, "device": str(dev),
                           "routed_stages": configs[name].n_routed}
                    if too_big:  # a longer length than one that did not fit cannot fit either
                        row.update(status=FAILED_TO_FIT, error="a shorter length did not fit")
                    else:
                        row.update(_measure(name, length, mode, dev, opts, limit, settled.get(name, {}).get("path")))
                        too_big = row["status"] == FAILED_TO_FIT
                    rows.append(row)
                    log(_row_line(row))
    analytic = {name: million_base_flops(cfg) for name, cfg in configs.items()}
    results = {"command": command, "machine": machine(dev), "device": str(dev),
               "dtype": dtype_name(inference_dtype(dev)), "memory_limit_bytes": limit if dev.type == "cpu" else None,
               "window": opts.window, "repeats": opts.repeats, "date": time.strftime("%Y-%m-%d"), "rows": rows,
               "flops_at_1M": analytic,
               "params": {r["config"]: r["params"] for r in rows if r.get("params")}, "speed_ratios": speed_ratios(rows),
               "settled": {k: {"steps": v["steps"], "compression": v["compression"], "ok": v["ok"]} for k, v in settled.items()}}
    write_outputs(out, results)
    return results


def settled_weights(name: str, dev: torch.device, seed: int, folder: Path, seq_len: int = 1024, batch: int = 8) -> dict:
    """Build `name` as `measure_one` does (same seed), settle its routing, save the weights in `folder`.

    Returns {"path", "steps", "compression", "ok"}; ok is False when the compression never came
    within tolerance of the target (the report says so).
    """
    from dnahnet.nn.hnet import HNetLM

    cfg = model_config_from_preset(name)
    torch.manual_seed(seed)
    net = HNetLM(cfg).to(dev)
    ids = torch.as_tensor(np.stack([random_dna(seq_len, seed + 1 + i) for i in range(batch)]), device=dev).long()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else None
    targets = cfg.stage_target_ratios()
    steps = settle_routing(net, targets, ids, autocast)
    ratios = realised_ratios(net, ids)
    path = folder / f"{name}.pt"
    torch.save(net.state_dict(), path)
    return {"path": str(path), "steps": steps, "compression": ratios, "ok": within_target(ratios, targets)}


def _measure(name: str, length: int, mode: str, dev: torch.device, opts: InferenceBench, limit: int,
             weights: str | None) -> dict:
    kwargs = dict(config=name, length=length, mode=mode, window=opts.window, device=str(dev), repeats=opts.repeats,
                  seed=opts.seed, weights=weights)
    if dev.type == "cuda":
        try:
            res = measure_one(**kwargs)
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            return {"status": FAILED_TO_FIT, "error": f"{FAILED_TO_FIT}: CUDA out of memory ({str(exc).splitlines()[0][:120]})"}
        return {"status": "ok", **res}
    iso = run_isolated("dnahnet.perf.inference:measure_one", kwargs, limit, opts.timeout_s, opts.threads)
    if not iso.ok:
        status = "timeout" if iso.error and iso.error.startswith("timed out") else FAILED_TO_FIT
        return {"status": status, "error": iso.error}
    res = dict(iso.result)
    res["peak_memory_bytes"] = iso.peak_rss_bytes
    res["peak_memory_over_model_bytes"] = max(iso.peak_rss_bytes - res.pop("rss_before_bytes"), 0)
    return {"status": "ok", **res}


def million_base_flops(config: ModelConfig) -> dict:
    """Analytic forward FLOPs of one 1,000,000-base sequence (target compression), by part."""
    report = count_flops(config, MILLION)
    return {"forward_flops": report.forward, "per_base": report.per_base(training=False), "parts": report.parts}


def _row_line(row: dict) -> str:
    head = f"{row['config']:20s} {row['mode']:7s} L={row['length']:>8,d}"
    if row["status"] != "ok":
        return f"{head}  {row['status']}: {row.get('error', '')}"
    return (f"{head}  {row['bases_per_s']:>12,.0f} bases/s  latency {row['latency_s']:.3g} s  "
            f"(first pass {row['first_pass_s']:.3g} s)  "
            f"peak {row['peak_memory_bytes'] / 2**20:,.0f} MiB  {row['flops_per_base'] / 1e6:.2f} MFLOP/base")


COLUMNS = ["config", "mode", "length", "status", "bases_per_s", "latency_s", "first_pass_s", "peak_memory_mib",
           "peak_over_model_mib", "mflop_per_base", "compression", "device", "error"]


def _cells(row: dict) -> list[str]:
    ok = row["status"] == "ok"
    f = (lambda key, scale=1.0, fmt="{:.4g}": fmt.format(row[key] / scale) if ok and row.get(key) is not None else "-")
    return [row["config"], row["mode"], str(row["length"]), row["status"], f("bases_per_s", fmt="{:.0f}"), f("latency_s"),
            f("first_pass_s"), f("peak_memory_bytes", 2**20, "{:.1f}"), f("peak_memory_over_model_bytes", 2**20, "{:.1f}"),
            f("flops_per_base", 1e6, "{:.3f}"), ",".join(f"{c:.2f}" for c in row.get("compression") or []) or "-",
            row["device"], row.get("error") or "-"]


def write_outputs(out: Path, results: dict) -> None:
    with atomic_open(out / "results.json") as fh:
        json.dump(results, fh, indent=2)
    with atomic_open(out / "results.tsv") as fh:
        fh.write("\t".join(COLUMNS) + "\n")
        for row in results["rows"]:
            fh.write("\t".join(_cells(row)) + "\n")
    plot(out / "throughput.png", results)
    with atomic_open(out / "report.md") as fh:
        fh.write(report_markdown(results))


def plot(path: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    series: dict[tuple[str, str], list[dict]] = {}
    for row in results["rows"]:
        if row["status"] == "ok":
            series.setdefault((row["config"], row["mode"]), []).append(row)
    for (name, mode), rows in series.items():
        ls = "-" if mode == "forward" else "--"
        x = [r["length"] for r in rows]
        axes[0].plot(x, [r["bases_per_s"] for r in rows], ls, marker="o", ms=3, label=f"{name} ({mode})")
        axes[1].plot(x, [max(r["peak_memory_bytes"], 1) / 2**20 for r in rows], ls, marker="o", ms=3, label=f"{name} ({mode})")
    for ax, ylabel in zip(axes, ["throughput (bases/s)", "peak memory (MiB)"]):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (bases)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Batch-1 inference, {results['device']} {results['dtype']}", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def speed_ratios(rows: list[dict]) -> list[dict]:
    """Per (mode, length): each H-Net's bases/s over each isotropic model's (>1 = H-Net faster per base).

    H-Nets are the configs with routed stages (in every mode: windowed scoring reports no
    compression); a pair missing either side (timed out, did not fit) gets no ratio but is
    listed with its status.
    """
    ok = {(r["config"], r["mode"], r["length"]): r for r in rows}
    hnets = list(dict.fromkeys(r["config"] for r in rows if r["routed_stages"] > 0))
    isotropic = list(dict.fromkeys(r["config"] for r in rows if r["routed_stages"] == 0))
    out = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        for length in sorted({r["length"] for r in rows if r["mode"] == mode}):
            for h in hnets:
                for b in isotropic:
                    rh, rb = ok.get((h, mode, length)), ok.get((b, mode, length))
                    if rh is None or rb is None:
                        continue
                    both = rh["status"] == "ok" and rb["status"] == "ok"
                    out.append({"mode": mode, "length": length, "hnet": h, "baseline": b,
                                "ratio": rh["bases_per_s"] / rb["bases_per_s"] if both else None,
                                "status": "ok" if both else f"{h}: {rh['status']}, {b}: {rb['status']}"})
    return out


def report_markdown(results: dict) -> str:
    lines = ["# Inference benchmark", ""]
    if results.get("command"):
        lines += ["Command:", "", f"    {results['command']}", ""]
    if results["device"] == "cpu":
        memory = "peak RSS of a fresh child process per measurement"
        if results.get("memory_limit_bytes"):
            memory += f" (address space capped at {results['memory_limit_bytes'] / 2**30:.1f} GiB)"
    else:
        memory = "CUDA max_memory_allocated"
    timing = ("bases_per_s and latency_s: the first pass alone (--repeats 0), page faults and first-call costs "
              "included. " if results.get("repeats") == 0 else
              "bases_per_s and latency_s: the best timed pass after a first pass, which is timed apart "
              "(first_pass_s: it also pays page faults and first-call costs). ")
    lines += [f"Machine: {results['machine']}. Device {results['device']}, {results['dtype']}, batch 1. " + timing +
              f"Peak memory: {memory}; `score` = windows of {results['window']} bases with "
              f"{results['window'] // 2} of context.", ""]
    if results.get("settled"):
        parts = [f"{name} {','.join(f'{r:.2f}' for r in v['compression'])} after {v['steps']} steps"
                 + ("" if v["ok"] else " (NOT within tolerance of the target)") for name, v in results["settled"].items()]
        lines += ["H-Nets were trained on random DNA until each stage's compression on 8 x 1,024 bases was within "
                  f"{SETTLE_TOLERANCE:.0%} of its target, and measured with those weights: " + "; ".join(parts) + ".", ""]
    lines += ["| " + " | ".join(COLUMNS[:-2]) + " |", "|" + "---|" * (len(COLUMNS) - 2)]
    for row in results["rows"]:
        lines.append("| " + " | ".join(_cells(row)[:-2]) + " |")
    ratios = results["speed_ratios"]
    if ratios:
        lines += ["", "Per-base speed of each H-Net over each isotropic model (bases/s ratio; > 1 = H-Net faster):", "",
                  "| mode | length | H-Net | baseline | speed ratio |", "|---|---|---|---|---|"]
        for r in ratios:
            cell = f"{r['ratio']:.2f}x" if r["ratio"] is not None else r["status"]
            lines.append(f"| {r['mode']} | {r['length']} | {r['hnet']} | {r['baseline']} | {cell} |")
    lines += ["", "Analytic forward FLOPs of one 1,000,000-base sequence (target compression; full attention is quadratic):", "",
              "| config | params | GFLOP per sequence | MFLOP per base |", "|---|---|---|---|"]
    for name, a in results["flops_at_1M"].items():
        params = results["params"].get(name)
        lines.append(f"| {name} | {params / 1e6:.2f}M | {a['forward_flops'] / 1e9:,.1f} | {a['per_base'] / 1e6:.3f} |"
                     if params else f"| {name} | - | {a['forward_flops'] / 1e9:,.1f} | {a['per_base'] / 1e6:.3f} |")
    lines += ["", "![throughput and memory](throughput.png)", ""]
    return "\n".join(lines)
