"""Training steps of several models interleaved in one process: paired time-per-FLOP ratios.

`dnahnet bench train` times each config once, one after another, on a VM whose speed drifts
by ~20% between runs, so its per-FLOP slowdowns move by as much between two invocations.
Here every round runs one training step (forward, backward, AdamW at learning rate 0) of
each model back to back, and each model's time per FLOP is divided by the baseline's within
the round: the report gives the median of those paired ratios with a bootstrap 95% interval
of the median, and the MFU of each model's median step against the fp32 matmul peak
measured before and after the rounds (the higher of the two, each the best of 10 matmuls). Every
round also times three 2048 x 2048 matmuls, and each step's MFU against that round's peak (the best
of its three) is reported as well (median and bootstrap interval): the VM's speed drifts within and
between runs, and that figure moves less with it. It is not the MFU an issue's goal was set in.

Models are built and H-Nets settled to their target compression as in `dnahnet bench train`
(`dnahnet.perf.train_profile.prepare_train_step`); FLOPs are analytic at the realised compression.
Per-FLOP ratios come in two counts of global attention: its full L x L score block, and its causal
half. Torch's CPU SDPA executes something in between (`bench/sdpa_causal.py`), and attention is most
of a Transformer's FLOPs at these lengths, so the two counts can differ by a third.
A config written NAME:compiled trains compiled by Inductor as `pretrain --compile` does;
NAME:compiled-blocks compiles each Mamba-2/attention block alone and NAME:compiled-model the whole
backbone as one graph. Compile time is reported apart, so eager and compiled models (or two
compiled ones) pair up in the same rounds. A `bf16` suffix (NAME:bf16, NAME:compiled+bf16) trains
under CPU bf16 autocast as `--set train.precision=bf16` does, and is paired with the same config in
fp32 where that runs too; its MFU is still taken against the fp32 matmul peak. `--also-against cpu-mamba2`
compares every config per FLOP with that preset as well, run the same way (eager with eager, compiled with
compiled), so one run gives the H-Nets' slowdowns against both isotropic models.
A `scan-free` part (NAME:scan-free, NAME:compiled+scan-free) gives every Mamba-2 layer an elementwise
stand-in for its SSD scan (`dnahnet.perf.scan_stand_in`) before the routing settles, and pairs the step
with the same config's real one: the ratio is what the scan costs, and the stand-in's per-FLOP figure
(FLOPs still counted for the real scan) a bound on what any faster scan could reach. A `cpu-kernel` part
(NAME:cpu-kernel, NAME:compiled+cpu-kernel) runs every module with a kernel switch (`cpu_kernel.switches`) on
the fused CPU kernels (`dnahnet.nn.cpu_kernel`, built first; they compute in fp32, with bf16 too): each Mamba-2
layer's conv, scan and output norm, and eagerly the RMSNorms, attention's rotary embedding, the MLP's gate and the
routing's similarities. It pairs the step with the same config without them. A config with the part runs as
`dnahnet pretrain` does by default; a config without it runs pure PyTorch, whatever the environment says. A
Transformer config with the part takes its RMSNorm, rotary and gate kernels, so the H-Nets' per-FLOP figures can
be read against a Transformer on the same kernels.

    python bench/train_pairs.py --configs cpu-transformer,cpu-mamba2,cpu-hnet-transformer,cpu-hnet-mamba2 \
        --repeats 10 --out runs/train_pairs
"""

from __future__ import annotations

import argparse
import statistics

import torch

from dnahnet.devices import cpu_bf16_support
from dnahnet.errors import DnahnetInputError
from dnahnet.nn import cpu_kernel
from dnahnet.io.atomic import check_writable_dir
from dnahnet.nn.compile import TRAINING_COMPILE_SCOPE, Scope
from dnahnet.perf.inference import parse_configs
from dnahnet.perf.measure import (add_paired_bench_arguments, describe_ratio, interleaved_seconds, matmul_peak_flops, MatmulProbe,
                                  MIN_PAIRS_FOR_INTERVAL, paired_ratio_summary, run_bench_script, save_paired_bench,
                                  start_paired_bench)
from dnahnet.perf.scan_stand_in import mamba2_layers, replace_scans
from dnahnet.perf.train_profile import TrainStep, compile_train_step, prepare_train_step


# The interleaved callable that times the matmul peak in every round (not a config: a config name has no spaces).
PEAK_PROBE = "matmul peak probe"

# A config name's suffix -> the compile scope it trains with (":compiled": as `pretrain --compile` does).
COMPILE_SUFFIXES: dict[str, Scope] = {"compiled": TRAINING_COMPILE_SCOPE, "compiled-blocks": "blocks", "compiled-model": "model"}


# The suffix part that trains under CPU bf16 autocast (NAME:bf16, NAME:compiled+bf16).
BF16 = "bf16"

# The suffix part that replaces every Mamba-2 layer's scan by an elementwise stand-in (NAME:scan-free).
SCAN_FREE = "scan-free"

# The suffix part that runs every Mamba-2 layer's scan on the fused CPU kernel (NAME:cpu-kernel).
CPU_KERNEL = "cpu-kernel"


def split_config(name: str) -> tuple[str, str | None]:
    """'cpu-mamba2:compiled-model' -> ('cpu-mamba2', 'compiled-model'); no suffix -> (name, None)."""
    preset, _, suffix = name.partition(":")
    return preset, suffix or None


def _suffix_parts(name: str) -> list[str]:
    suffix = split_config(name)[1]
    return suffix.split("+") if suffix else []


def _scope_parts(name: str) -> list[str]:
    """The suffix parts other than bf16, scan-free and cpu-kernel: a valid name has at most one, its compile scope."""
    return [p for p in _suffix_parts(name) if p not in (BF16, SCAN_FREE, CPU_KERNEL)]


def _without(name: str, part: str) -> str:
    """The config name with one suffix part dropped: _without('x:compiled+bf16', 'bf16') -> 'x:compiled'."""
    parts = [p for p in _suffix_parts(name) if p != part]
    preset = split_config(name)[0]
    return f"{preset}:{'+'.join(parts)}" if parts else preset


def compile_scope(name: str) -> Scope | None:
    """The scope a config name trains compiled in, or None for eager."""
    parts = _scope_parts(name)
    return COMPILE_SUFFIXES[parts[0]] if parts else None


def precision(name: str) -> str:
    """'bf16' for a config with the bf16 suffix part, else 'fp32'."""
    return BF16 if BF16 in _suffix_parts(name) else "fp32"


def fp32_counterpart(name: str) -> str:
    """The same config without its bf16 part: 'x:compiled+bf16' -> 'x:compiled', 'x:bf16' -> 'x'."""
    return _without(name, BF16)


def scan_free(name: str) -> bool:
    """True for a config whose Mamba-2 layers take the stand-in scan."""
    return SCAN_FREE in _suffix_parts(name)


def with_scan_counterpart(name: str) -> str:
    """The same config with its real scan: 'x:compiled+scan-free' -> 'x:compiled'."""
    return _without(name, SCAN_FREE)


def fused_kernel(name: str) -> bool:
    """True for a config whose Mamba-2 layers run their scans on the fused CPU kernel."""
    return CPU_KERNEL in _suffix_parts(name)


def use_cpu_kernel(model: torch.nn.Module) -> int:
    """Put every part of `model` that has a fused CPU kernel on it (`cpu_kernel.switches`: Mamba-2 layers,
    RMSNorms, attention's rotary embedding, MLP gates, routing); returns how many Mamba-2 layers."""
    cpu_kernel.switch(model, on=True)
    return len(mamba2_layers(model))


def pure_pytorch(model: torch.nn.Module) -> int:
    """Every part of `model` in PyTorch: a config without the cpu-kernel part, although the kernels are on by default."""
    return cpu_kernel.switch(model, on=False)


def pure_with_stand_in(model: torch.nn.Module) -> int:
    """A scan-free config: PyTorch as its pair without the part, with every scan replaced by the stand-in."""
    pure_pytorch(model)
    return replace_scans(model)


def parse_train_configs(text: str) -> list[str]:
    """Preset names, each optionally with a compile suffix and/or bf16; unknown presets or suffixes raise with the list."""
    names = [c.strip() for c in text.split(",") if c.strip()]

    def valid(name: str) -> bool:
        scopes = _scope_parts(name)
        parts = _suffix_parts(name)
        return (len(scopes) <= 1 and parts.count(BF16) <= 1 and parts.count(SCAN_FREE) + parts.count(CPU_KERNEL) <= 1
                and all(p in COMPILE_SUFFIXES for p in scopes))

    bad = [n for n in names if not valid(n)]
    if bad:
        raise DnahnetInputError(f"--configs: {bad[0]!r}: a suffix is parts joined by +, at most one of "
                                + ", ".join(COMPILE_SUFFIXES) + f", {BF16} at most once, and one of {SCAN_FREE} and {CPU_KERNEL} at most once")
    models = parse_configs([split_config(n)[0] for n in names])
    for name in names:
        if scan_free(name) and not has_mamba2_layer(models[split_config(name)[0]]):
            raise DnahnetInputError(f"--configs: {name!r}: {split_config(name)[0]} has no Mamba-2 layer whose scan "
                                    "could be replaced")
    if any(fused_kernel(n) for n in names):
        cpu_kernel.available(require=True)  # built before any model is traced, or a one-line error
    return names


def has_mamba2_layer(config) -> bool:
    """Whether a model config builds a Mamba-2 layer (built on the meta device: no memory, no initialisation cost)."""
    from dnahnet.nn.hnet import HNetLM

    with torch.device("meta"):
        return bool(mamba2_layers(HNetLM(config)))


def prepare(name: str, device: torch.device, seq_len: int | None, batch: int | None, seed: int,
            backend: str = "inductor") -> tuple[TrainStep, float | None]:
    """A settled training step; for a name with a compile suffix, the model compiled in that scope and the
    seconds spent compiling (during one step: compilation is lazy)."""
    adapt = pure_with_stand_in if scan_free(name) else use_cpu_kernel if fused_kernel(name) else pure_pytorch
    prepared = prepare_train_step(split_config(name)[0], device, seq_len, batch, seed, precision(name), adapt=adapt)
    scope = compile_scope(name)
    if scope is None:
        return prepared, None
    return prepared, compile_train_step(prepared, backend, scope)[0]


def measure(configs: list[str], repeats: int, seq_len: int | None, batch: int | None, seed: int,
            backend: str = "inductor") -> dict:
    device = torch.device("cpu")
    # A block compiled in fp32 and again under bf16 autocast in one process recompiles, and Dynamo's automatic
    # dynamic shapes then made Inductor fail on the second graph (torch 2.13: "Exponent must be non-negative").
    # With a compiled bf16 config every graph is compiled for its static shapes, as in bench/kernels_ab.py.
    static = any(compile_scope(n) is not None and precision(n) == BF16 for n in configs)
    with torch._dynamo.config.patch(automatic_dynamic_shapes=not static):
        return _measure(configs, repeats, seq_len, batch, seed, backend, device)


def _measure(configs: list[str], repeats: int, seq_len: int | None, batch: int | None, seed: int, backend: str,
             device: torch.device) -> dict:
    prepared = {name: prepare(name, device, seq_len, batch, seed, backend) for name in configs}
    steps = {name: s for name, (s, _) in prepared.items()}
    flops = {name: s.flops_per_base() for name, s in steps.items()}
    peak_before = matmul_peak_flops(device)
    probe = MatmulProbe(device)
    seconds = interleaved_seconds({**{name: s.step for name, s in steps.items()}, PEAK_PROBE: probe}, repeats)
    del seconds[PEAK_PROBE]
    round_peaks = probe.peaks[1:]  # its first call was interleaved_seconds' warm-up
    peak = max(peak_before, matmul_peak_flops(device))
    baseline = configs[0]
    rows = {}
    for name, s in steps.items():
        counts, ratios = flops[name]
        per_base = counts["full"]
        median_s = statistics.median(seconds[name])
        row = {"params": sum(p.numel() for p in s.model.parameters()), "seq_len": s.ids.shape[1], "batch": s.ids.shape[0],
               "settle_steps": s.settle_steps, "compression": ratios, "train_flops_per_base": per_base,
               "train_flops_per_base_causal": counts["causal"],
               "seconds": seconds[name], "median_bases_per_s": s.bases / median_s, "best_bases_per_s": s.bases / min(seconds[name]),
               "median_mfu": s.bases * per_base / median_s / peak,
               "round_mfu": paired_ratio_summary([s.bases * per_base / t / p for t, p in zip(seconds[name], round_peaks)]),
               "compile_s": prepared[name][1],
               "compile_scope": compile_scope(name)}
        if name != baseline:  # (time / FLOPs of this model) / (time / FLOPs of the baseline), per round
            row.update(per_flop_summary(row, rows[baseline]))
        row["precision"] = precision(name)
        eager = split_config(name)[0]
        if compile_scope(name) is not None and precision(name) == "fp32" and eager in seconds:
            # the same preset eager in the same rounds: what compiling gains
            row["over_eager"] = paired_ratio_summary([e / c for e, c in zip(seconds[eager], seconds[name])])
        fp32 = fp32_counterpart(name)
        if fp32 != name and fp32 in seconds:  # the same config in fp32 in the same rounds: what bf16 gains
            row["over_fp32"] = paired_ratio_summary([f / b for f, b in zip(seconds[fp32], seconds[name])])
        row["scan"] = "stand-in" if scan_free(name) else "chunked, fused CPU kernel" if fused_kernel(name) else "chunked"
        plain = _without(name, CPU_KERNEL)
        if plain != name and plain in seconds:  # the same config without the kernel in the same rounds: what it gains
            row["cpu_kernel_gain"] = paired_ratio_summary([p / k for p, k in zip(seconds[plain], seconds[name])])
        real = with_scan_counterpart(name)
        if real != name and real in seconds:  # the same config with its scan in the same rounds: what the scan costs
            row["scan_cost"] = paired_ratio_summary([r / f for r, f in zip(seconds[real], seconds[name])])
        rows[name] = row
    return {"baseline": baseline, "matmul_peak_flops": [peak_before, peak], "round_peak_flops": round_peaks, "rows": rows}


def report(results: dict) -> str:
    base = results["baseline"]
    lines = ["# Training steps interleaved in one process: paired time per FLOP", "", "Command:", "",
             f"    {results['command']}", "", f"Machine: {results['machine']}; fp32 unless the config says bf16, {results['repeats']} interleaved rounds "
             f"after one warm-up step each; fp32 matmul peak {results['matmul_peak_flops'][1] / 1e9:.1f} GFLOP/s (the higher of "
             "before and after the rounds)" + round_peaks_sentence(results.get("round_peak_flops")) + ".", "",
             f"Per-FLOP slowdown: a model's step time per training FLOP divided by {base}'s in the same round; the median "
             "of those ratios, a percentile-bootstrap 95% interval of the median, and the range. FLOPs count global "
             "attention's full L x L score block; the last column counts its causal half instead. What SDPA executes lies "
             "between the two: its CPU kernel skips key blocks wholly above the diagonal, which removes part of the "
             "masked half at long lengths and none of it at short ones (`bench/sdpa_causal.py`).", "",
             "| config | params | L x batch | compression | train MFLOP/base | median bases/s (best) | MFU of the median step "
             "| MFU against each round's peak "
             f"| per-FLOP slowdown vs {base} | the same, causal-half attention FLOPs |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["rows"].items():
        comp = ", ".join(f"{c:.2f}" for c in r["compression"]) or "-"
        slow = "1.00x (baseline)" if name == base else describe_ratio(r)
        causal = "1.00x (baseline)" if name == base else (describe_ratio(r["causal_attention"]) if "causal_attention" in r else "-")
        label = name if r.get("compile_s") is None else f"{name} ({r['compile_scope']}, {r['compile_s']:.0f} s compiling)"
        lines.append(f"| {label} | {r['params'] / 1e6:.2f}M | {r['seq_len']} x {r['batch']} | {comp} | "
                     f"{r['train_flops_per_base'] / 1e6:.2f} | {r['median_bases_per_s']:,.0f} ({r['best_bases_per_s']:,.0f}) | "
                     f"{100 * r['median_mfu']:.1f}% | {describe_mfu(r.get('round_mfu'))} | {slow} | {causal} |")
    gains = [(name, r["over_eager"]) for name, r in results["rows"].items() if "over_eager" in r]
    if gains:
        lines += ["", "Compiled against the same preset eager, step time paired within rounds:", ""]
        lines += [f"- {name}: {describe_ratio(gain)} faster" for name, gain in gains]
    bf16 = [(name, r["over_fp32"]) for name, r in results["rows"].items() if "over_fp32" in r]
    if bf16:
        native = results.get("cpu_bf16", {})
        lines += ["", "bf16 autocast against the same config in fp32, step time paired within rounds"
                  + (f" (bf16 {'native' if native.get('native') else 'emulated'}: {native.get('reason')})" if native else "")
                  + ":", ""]
        lines += [f"- {name}: {describe_ratio(gain)} faster" for name, gain in bf16]
    costs = [(name, r["scan_cost"]) for name, r in results["rows"].items() if "scan_cost" in r]
    if costs:
        lines += ["", "What the Mamba-2 scan costs: each config's step with its chunked SSD scan against the same step with an "
                  "elementwise stand-in (`dnahnet.perf.scan_stand_in`), paired within rounds (the scan-free row's per-FLOP "
                  "figure still counts the real scan's FLOPs, so it bounds what a faster scan could reach; compare the "
                  "two rows' compression column, which each reached by settling its own routing):", ""]
        lines += [f"- {with_scan_counterpart(name)} over {name}: {describe_ratio(cost)}" for name, cost in costs]
    kernel = [(name, r["cpu_kernel_gain"]) for name, r in results["rows"].items() if "cpu_kernel_gain" in r]
    if kernel:
        lines += ["", "The fused CPU kernels (`dnahnet.nn.cpu_kernel`: in the Mamba-2 layers the conv with its SiLU, the "
                  "scan, the skip term with the gated norm; eagerly, the residual streams' RMSNorms, attention's rotary "
                  "embedding, the MLP's gate and the routing's similarities) against the same "
                  "config without them, step time paired within rounds:", ""]
        lines += [f"- {name}: {describe_ratio(gain)} faster" for name, gain in kernel]
    alike = like_for_like(results)
    if alike:
        lines += ["", "Per-FLOP slowdown against each reference model run the same way (same compile suffix, same "
                  "precision), paired within rounds:", ""]
        lines += [f"- {name} against {against}: {describe_ratio(ratio)}"
                  + (f"; causal-half attention FLOPs: {describe_ratio(ratio['causal_attention'])}" if "causal_attention" in ratio else "")
                  for name, pairs in alike.items() for against, ratio in pairs]
    return "\n".join(lines) + "\n"


def round_peaks_sentence(peaks: list[float] | None) -> str:
    """How the peak timed inside the rounds ranged (results recorded before it existed have none)."""
    if not peaks:
        return ""
    return (f"; timed inside each round (best of three matmuls), the peak ranged {min(peaks) / 1e9:.1f}-"
            f"{max(peaks) / 1e9:.1f} GFLOP/s (median {statistics.median(peaks) / 1e9:.1f}), and each step's MFU is also "
            "taken against its own round's")


def describe_mfu(summary: dict | None) -> str:
    """'41.2% (95% CI 40.1-42.0%)' from the per-round MFU summary; '-' for results recorded before it existed."""
    if not summary:
        return "-"
    median, low, high = (100 * summary[k] for k in ("ratio_median", "ratio_ci_low", "ratio_ci_high"))
    if summary["pairs"] < MIN_PAIRS_FOR_INTERVAL:
        return f"{median:.1f}% (range {100 * summary['ratio_min']:.1f}-{100 * summary['ratio_max']:.1f}%)"
    return f"{median:.1f}% (95% CI {low:.1f}-{high:.1f}%)"


def like_for_like(results: dict) -> dict[str, list[tuple[str, dict]]]:
    """Each config's per-FLOP slowdowns against the reference presets run with the same suffix: the baseline's
    preset for compiled or bf16 configs (cpu-hnet-mamba2:compiled against cpu-transformer:compiled), and every
    `--also-against` preset for all configs (cpu-hnet-mamba2 against cpu-mamba2, :compiled against :compiled).
    Computed from the recorded step times and FLOPs, so an older results.json yields them as well."""
    rows, baseline = results["rows"], results["baseline"]
    base_preset = split_config(baseline)[0]
    references = [base_preset, *results.get("also_against", [])]
    out: dict[str, list[tuple[str, dict]]] = {}
    for name in rows:
        preset, suffix = split_config(name)
        if preset == base_preset:  # its ratios to the other references are the inverses of theirs to it
            continue
        for reference in references:
            against = f"{reference}:{suffix}" if suffix else reference
            if preset != reference and against != baseline and against in rows:
                out.setdefault(name, []).append((against, per_flop_summary(rows[name], rows[against])))
    return out


def per_flop_summary(row: dict, baseline: dict) -> dict:
    """`paired_ratio_summary` of the per-FLOP ratios with attention counted in full, and under
    "causal_attention" the same with its causal half (where both rows carry that count: results.json
    files before 2026-12-02 lack it)."""
    summary = paired_ratio_summary(per_flop_ratios(row, baseline))
    if CAUSAL in row and CAUSAL in baseline:
        summary["causal_attention"] = paired_ratio_summary(per_flop_ratios(row, baseline, CAUSAL))
    return summary


# The row key of training FLOPs per base with global attention counted as its causal half.
CAUSAL = "train_flops_per_base_causal"


def per_flop_ratios(row: dict, baseline: dict, flops_key: str = "train_flops_per_base") -> list[float]:
    """Round by round, (step time / training FLOPs) of one row over the baseline row's; `flops_key` picks the
    attention convention (full L x L, the default, or `CAUSAL`)."""
    def per_flop(r: dict) -> list[float]:
        return [t / (r[flops_key] * (r["seq_len"] * r["batch"])) for t in r["seconds"]]

    return [m / b for m, b in zip(per_flop(row), per_flop(baseline))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="cpu-transformer,cpu-mamba2,cpu-hnet-transformer,cpu-hnet-mamba2",
                   help="comma-separated presets, each optionally NAME:compiled (compiled with Inductor as "
                        "`pretrain --compile` does), NAME:compiled-blocks (each block) or NAME:compiled-model (the "
                        "whole backbone), NAME:bf16 or NAME:compiled+bf16 for CPU bf16 autocast, and a +scan-free "
                        "part (NAME:scan-free, NAME:compiled+scan-free) for an elementwise stand-in in place of every "
                        "Mamba-2 scan, or a +cpu-kernel part (NAME:cpu-kernel, NAME:compiled+cpu-kernel) for the fused CPU "
                        "kernel of the scan; the first is the baseline of every ratio")
    p.add_argument("--seq-len", type=int, default=None, help="default: each preset's data.seq_len")
    p.add_argument("--batch-size", type=int, default=None, help="default: each preset's micro-batch")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend of compiled configs "
                   "(tests trace with aot_eager: seconds, not minutes)")
    p.add_argument("--also-against", default="",
                   help="comma-separated presets among --configs' to compare every other config with per FLOP as well, "
                        "each in the same compile suffix and precision (e.g. cpu-mamba2, the other isotropic model)")
    add_paired_bench_arguments(p)
    args = p.parse_args(argv)
    configs = parse_train_configs(args.configs)
    also_against = [c.strip() for c in args.also_against.split(",") if c.strip()]
    missing = [a for a in also_against if a not in {split_config(c)[0] for c in configs}]
    if missing:
        raise DnahnetInputError(f"--also-against: {missing[0]!r} is not among the presets of --configs")
    out = check_writable_dir(args.out)
    results = start_paired_bench("bench/train_pairs.py", argv, args.threads, args.repeats)
    native, reason = cpu_bf16_support()
    results["cpu_bf16"] = {"native": native, "reason": reason}
    results["also_against"] = also_against
    results.update(measure(configs, args.repeats, args.seq_len, args.batch_size, args.seed,
                           args.compile_backend))
    save_paired_bench(out, results, report(results))
    for name, r in results["rows"].items():
        print(f"{name:28s} {r['median_bases_per_s']:>9,.0f} bases/s  MFU {100 * r['median_mfu']:.1f}%"
              + (f"  per-FLOP {r['ratio_median']:.2f}x [{r['ratio_ci_low']:.2f},{r['ratio_ci_high']:.2f}]" if "ratio_median" in r else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_bench_script(main, "bench/train_pairs.py"))
