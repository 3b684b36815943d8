"""GPU speed: the machine's ceilings, one Mamba-2 layer and whole training steps, each with mamba_ssm's
Triton scan and with dnahnet's pure-PyTorch scan, interleaved round by round.

    python -m bench.gpu_speed --out runs/bench-gpu/speed [--rounds 15] [--seq-len 4096 --batch-size 16]

1. Ceilings: a 8192^3 bf16 matmul (TFLOP/s) and a 2 GiB device-to-device copy (bytes read + written per s),
   each the median of 10 timings with CUDA events after 3 warm-ups.
2. One Mamba-2 layer, forward + backward under bf16 autocast: `dnahnet.nn.mamba2.Mamba2` with
   `use_kernels=True` (mamba_chunk_scan_combined) and False (the chunked SSD in PyTorch), and
   mamba_ssm's own `Mamba2` module (`use_mem_eff_path=False`), in the presets' shape and in the H-Net
   paper's (d_state 128, headdim 64, chunk 256). Paired ratios per round with a bootstrap interval.
3. Training steps (forward, backward, AdamW at learning rate 0, bf16 autocast: `prepare_train_step`,
   H-Nets settled to their target compression first) of each preset with the Triton scan and, for
   presets with Mamba-2 layers, with the pure scan ("NAME:pure-scan"); bases/s, MFU against the bf16
   matmul peak measured in the same run, per-FLOP time against the first preset, and what the Triton
   scan gains, all paired within rounds.

Results go to OUT/results.json and OUT/report.md, rewritten after every part, so a run cut short keeps
what it measured. `--device cpu` smoke-runs the same code with small sizes (no Triton, no ceilings).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from dnahnet.perf.measure import describe_ratio, interleaved_seconds, paired_ratio_summary, save_paired_bench

PURE_SCAN = "pure-scan"  # the config-name suffix of a training step whose Mamba-2 layers skip mamba_ssm's scan
# (name, layer shape, batch, length): the presets' Mamba-2 and the H-Net paper's (d_model 1024 there; 512 here)
LAYER_SHAPES = {
    "presets": (dict(d_model=128, d_state=32, headdim=32, chunk_size=64), 16, 4096),
    "paper": (dict(d_model=512, d_state=128, headdim=64, chunk_size=256), 8, 8192),
}


class Timer:
    """Seconds of `fn()`: CUDA events around it on a GPU, the host clock after a synchronize elsewhere."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __call__(self, fn: Callable[[], object]) -> float:
        if not self.cuda:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / 1e3


def ceilings(device: torch.device, timer: Timer) -> dict:
    """The bf16 matmul rate and the device-to-device copy bandwidth, measured now."""
    n = 8192
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    matmul = interleaved_seconds({"mm": lambda: a @ b}, 10, timer, warmups=3)["mm"]
    src = torch.randn(2**29, device=device)  # 2 GiB of float32
    dst = torch.empty_like(src)
    copy = interleaved_seconds({"copy": lambda: dst.copy_(src)}, 10, timer, warmups=3)["copy"]
    nbytes = 2 * src.numel() * src.element_size()
    return {"bf16_matmul_flops": 2 * n**3 / statistics.median(matmul), "matmul_n": n,
            "copy_bytes_per_s": nbytes / statistics.median(copy), "copy_bytes": nbytes}


def layer_speed(device: torch.device, timer: Timer, rounds: int, shapes: dict = LAYER_SHAPES) -> dict:
    """Forward + backward of one layer under bf16 autocast, per variant and shape, paired within rounds."""
    from bench.kernel_check import layer_variants

    out = {}
    for shape_name, (shape, batch, length) in shapes.items():
        variants = {k: v.to(device) for k, v in layer_variants(shape).items()}
        u = torch.randn(batch, length, shape["d_model"], device=device, requires_grad=True)

        def fwd_bwd(layer: nn.Module) -> Callable[[], None]:
            def run() -> None:
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    y = layer(u)
                y.float().square().mean().backward()
            return run

        runs, failed = {}, {}
        for name, layer in variants.items():  # a variant that cannot run here is reported, not fatal
            try:
                fwd_bwd(layer)()
                runs[name] = fwd_bwd(layer)
            except Exception as exc:  # noqa: BLE001
                failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        seconds = interleaved_seconds(runs, rounds, timer, warmups=2)
        base = "dnahnet + mamba_ssm scan"
        rows = {k: {"median_ms": 1e3 * statistics.median(s), "seconds": s,
                    "over_kernel_path": paired_ratio_summary([t / b for t, b in zip(s, seconds[base])])}
                for k, s in seconds.items()}
        out[shape_name] = {"shape": shape, "batch": batch, "length": length, "rows": rows, "failed": failed}
        del variants, u
    return out


def pure_scan(model: nn.Module) -> int:
    """Take every Mamba-2 layer of `model` off mamba_ssm's scan; returns how many layers."""
    from dnahnet.perf.scan_stand_in import mamba2_layers

    layers = mamba2_layers(model)
    for layer in layers:
        layer.use_kernels = False
    return len(layers)


def train_speed(configs: list[str], device: torch.device, timer: Timer, rounds: int, seq_len: int, batch: int,
                peak_flops: float | None) -> dict:
    """Training steps of every config, interleaved; per-FLOP time against the first config within rounds."""
    from bench.train_pairs import per_flop_ratios
    from dnahnet.perf.train_profile import prepare_train_step

    steps, settle_s = {}, {}
    for name in configs:
        preset, _, suffix = name.partition(":")
        started = time.perf_counter()
        steps[name] = prepare_train_step(preset, device, seq_len, batch, adapt=pure_scan if suffix == PURE_SCAN else None)
        settle_s[name] = time.perf_counter() - started
    seconds = interleaved_seconds({name: s.step for name, s in steps.items()}, rounds, timer, warmups=2)
    rows: dict[str, dict] = {}
    for name, s in steps.items():
        counts, ratios = s.flops_per_base()
        median_s = statistics.median(seconds[name])
        row = {"params": sum(p.numel() for p in s.model.parameters()), "seq_len": seq_len, "batch": batch,
               "compression": ratios, "settle_steps": s.settle_steps, "prepare_s": settle_s[name],
               "train_flops_per_base": counts["full"], "train_flops_per_base_causal": counts["causal"],
               "seconds": seconds[name], "median_step_ms": 1e3 * median_s, "median_bases_per_s": s.bases / median_s,
               "mfu": s.bases * counts["full"] / median_s / peak_flops if peak_flops else None}
        if rows:  # per FLOP against the first config, round by round
            row["per_flop"] = paired_ratio_summary(per_flop_ratios(row, rows[configs[0]]))
        preset = name.partition(":")[0]
        if name != preset and preset in seconds:  # the same preset with the Triton scan in the same rounds
            row["triton_scan_gain"] = paired_ratio_summary([p / k for p, k in zip(seconds[name], seconds[preset])])
        rows[name] = row
    return {"configs": configs, "rows": rows}


def report(results: dict) -> str:
    lines = ["# GPU speed: mamba_ssm's Triton scan against dnahnet's pure-PyTorch scan", "", "Command:", "",
             f"    {results['command']}", "", f"Machine: {results['machine']}; mamba_ssm imported "
             f"{results.get('mamba_ssm_import', '?')}; {results['rounds']} interleaved rounds after 2 warm-ups of each; "
             "times by CUDA events; ratios are medians of per-round ratios with a percentile-bootstrap 95% interval.", ""]
    ceil = results.get("ceilings")
    if ceil:
        lines += [f"Ceilings measured in this run: bf16 matmul {ceil['bf16_matmul_flops'] / 1e12:.0f} TFLOP/s "
                  f"({ceil['matmul_n']}^3, median of 10); device-to-device copy {ceil['copy_bytes_per_s'] / 1e12:.2f} TB/s "
                  "(bytes read + written, median of 10).", ""]
    for shape_name, part in results.get("layers", {}).items():
        shape = ", ".join(f"{k} {v}" for k, v in part["shape"].items())
        lines += [f"## One Mamba-2 layer, forward + backward, bf16 autocast: {shape_name} shape ({shape}; "
                  f"batch {part['batch']} x length {part['length']})", "",
                  "| variant | median ms | time over the dnahnet + mamba_ssm scan path |", "|---|---|---|"]
        for name, row in part["rows"].items():
            lines.append(f"| {name} | {row['median_ms']:.2f} | {describe_ratio(row['over_kernel_path'])} |")
        lines += [f"| {name} | failed: {error} | - |" for name, error in part.get("failed", {}).items()]
        lines.append("")
    train = results.get("train")
    if train:
        first = train["configs"][0]
        lines += ["## Training steps (forward, backward, AdamW), bf16 autocast", "",
                  "MFU: analytic training FLOPs (global attention counted as its full L x L block) at the realised "
                  "compression over the median step, against the bf16 matmul ceiling above. A `:pure-scan` config runs "
                  "the same model with its Mamba-2 scans in PyTorch.", "",
                  f"| config | params | L x batch | compression | train MFLOP/base | median step ms | bases/s | MFU "
                  f"| per-FLOP time vs {first} | Triton scan's gain |", "|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in train["rows"].items():
            comp = ", ".join(f"{c:.2f}" for c in r["compression"]) or "-"
            mfu = f"{100 * r['mfu']:.2f}%" if r["mfu"] is not None else "-"
            per_flop = describe_ratio(r["per_flop"]) if "per_flop" in r else "1.00x (baseline)"
            gain = describe_ratio(r["triton_scan_gain"]) if "triton_scan_gain" in r else "-"
            lines.append(f"| {name} | {r['params'] / 1e6:.2f}M | {r['seq_len']} x {r['batch']} | {comp} | "
                         f"{r['train_flops_per_base'] / 1e6:.2f} | {r['median_step_ms']:.1f} | {r['median_bases_per_s']:,.0f} | "
                         f"{mfu} | {per_flop} | {gain} |")
        lines.append("")
    for part, error in results.get("errors", {}).items():
        lines += [f"Part '{part}' failed: {error}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import sys
    import traceback

    from dnahnet.io.atomic import check_writable_dir
    from dnahnet.nn import mamba_ssm_triton
    from dnahnet.perf.measure import command_line, machine

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--configs", default="cpu-transformer,cpu-mamba2,cpu-mamba2:pure-scan,cpu-hnet-transformer,"
                    "cpu-hnet-transformer:pure-scan,cpu-hnet-mamba2,cpu-hnet-mamba2:pure-scan")
    ap.add_argument("--parts", default="ceilings,layers,train", help="which parts to run, in this order")
    args = ap.parse_args(argv)
    out = check_writable_dir(args.out)
    device = torch.device(args.device)
    timer = Timer(device)
    mamba_ssm_triton.load("ops.triton.ssd_combined")
    results: dict = {"command": command_line("-m bench.gpu_speed", argv if argv is not None else sys.argv[1:]),
                     "machine": machine(device), "rounds": args.rounds, "mamba_ssm_import": mamba_ssm_triton.import_route,
                     "date": time.strftime("%Y-%m-%d"), "errors": {}}
    small = device.type != "cuda"  # a smoke run: small shapes
    shapes = {k: (s, 2, 256) for k, (s, _, _) in LAYER_SHAPES.items()} if small else LAYER_SHAPES
    for part in [p.strip() for p in args.parts.split(",") if p.strip()]:
        started = time.perf_counter()
        try:
            if part == "ceilings" and device.type == "cuda":
                results["ceilings"] = ceilings(device, timer)
            elif part == "layers":
                results["layers"] = layer_speed(device, timer, args.rounds, shapes)
            elif part == "train":
                peak = results.get("ceilings", {}).get("bf16_matmul_flops")
                results["train"] = train_speed([c.strip() for c in args.configs.split(",") if c.strip()], device, timer,
                                               args.rounds, args.seq_len, args.batch_size, peak)
        except Exception as exc:  # noqa: BLE001 - a failed part is reported and the next one runs
            traceback.print_exc()
            results["errors"][part] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        results.setdefault("part_seconds", {})[part] = time.perf_counter() - started
        save_paired_bench(out, results, report(results))
        print(f"gpu_speed: part {part} done in {results['part_seconds'][part]:.0f} s", flush=True)
    print(report(results))
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
