"""Training benchmark: step throughput, model FLOP utilisation and a profile by part.

Per config: forward + backward + AdamW on one micro-batch of random DNA (best of
`repeats` after a warm-up), bases/s, analytic training FLOPs per base at the
compression the model realised, and MFU against a matmul peak measured in the same
run (fp32 on CPU, bf16 autocast on CUDA). "Per-FLOP slowdown" = an isotropic
model's achieved FLOP/s divided by this model's: the H-Net paper's "about 2x
slower per FLOP" measured for this implementation.

H-Nets are first brought to their target compression (`dnahnet.perf.settle`),
then timed with the learning rate at zero so the timed steps keep it.

The profile runs one more step under `torch.profiler` and attributes forward time
to the `record_function` labels in `HNet.forward` / `HNetLM.forward` (embedding,
stageS.encoder, stageS.routing, stageS.chunk, stageS.main, stageS.dechunk,
stageS.decoder, lm_head, ratio_loss), exclusive of nested stages. Backward and the
optimiser step are reported as totals (autograd does not carry forward labels).

    dnahnet bench train --configs cpu-transformer,cpu-mamba2,cpu-hnet-transformer,cpu-hnet-mamba2 --out runs/bench-train
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

from dnahnet.config import load_preset
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, check_writable_dir
from dnahnet.nn.flops import ATTENTION_CONVENTIONS, count_flops
from dnahnet.perf.inference import check_lengths, parse_configs
from dnahnet.perf.measure import best_time, machine, matmul_peak_flops, resolve_device, synchronize
from dnahnet.perf.settle import TOLERANCE as SETTLE_TOLERANCE
from dnahnet.perf.settle import realised_ratios, settle_routing, within_target

if TYPE_CHECKING:  # dnahnet.nn.compile itself is imported only where a model is compiled
    from dnahnet.nn.compile import Scope

DEFAULT_CONFIGS = ["cpu-transformer", "cpu-mamba2", "cpu-hnet-transformer", "cpu-hnet-mamba2"]
PART_GROUPS = ["embedding", "encoder", "routing", "chunk", "main", "dechunk", "decoder", "lm_head", "ratio_loss"]
_LABEL = re.compile(r"^(embedding|lm_head|ratio_loss|stage(\d+)\.(encoder|routing|chunk|main|dechunk|decoder))$")
FLOP_TOLERANCE = 0.05


@dataclass
class TrainBench:
    """Options of one training benchmark run."""

    configs: list[str] = field(default_factory=lambda: list(DEFAULT_CONFIGS))
    out: str = "runs/bench-train"
    device: str = "auto"
    seq_len: int | None = None  # default: each preset's data.seq_len
    batch: int | None = None  # default: each preset's train.micro_batch_size
    repeats: int = 3
    profile: bool = True
    seed: int = 0
    compile: bool = False  # torch.compile as training does (per block) after settling; no profile then
    compile_backend: str = "inductor"  # tests trace with "aot_eager" (seconds, not minutes)


def exclusive_part_times(totals: dict[str, float]) -> dict[str, float]:
    """Label totals (inclusive) -> exclusive times: `stageS.main` of a routed stage minus stage S+1's labels."""
    out = dict(totals)
    for name, value in totals.items():
        m = _LABEL.match(name)
        if m and m.group(3) == "main":
            inner = int(m.group(2)) + 1
            nested = sum(v for k, v in totals.items() if k.startswith(f"stage{inner}."))
            out[name] = max(value - nested, 0.0)
    return out


def profile_step(step_fn, device: torch.device) -> dict[str, float]:
    """Seconds per label over one profiled call of `step_fn` (forward labels inclusive, as recorded)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step_fn()
        synchronize(device)
    totals: dict[str, float] = {}
    for ev in prof.key_averages():
        if _LABEL.match(ev.key) or ev.key in ("forward", "backward", "optimizer", "step"):
            us = ev.cpu_time_total
            if device.type == "cuda":  # GPU time of the range where the profiler has it
                us = max(us if ev.key == "step" else 0.0, getattr(ev, "device_time_total", 0.0) or getattr(ev, "cuda_time_total", 0.0)) or us
            totals[ev.key] = totals.get(ev.key, 0.0) + us / 1e6
    return totals


@dataclass
class TrainStep:
    """One config's timed unit: forward + backward + AdamW (learning rate 0) on a fixed micro-batch."""

    name: str
    cfg: object
    model: torch.nn.Module
    ids: torch.Tensor
    step: Callable[[], None]
    settle_steps: int

    @property
    def bases(self) -> int:
        return self.ids.numel()

    def flops_per_base(self) -> tuple[dict[str, float], list[float]]:
        """Analytic training FLOPs per base at the compression the model realises on this batch (one forward
        pass finds it), in each convention for global attention (`dnahnet.nn.flops`: "full", "causal")."""
        ratios = realised_ratios(self.model, self.ids)
        return {attention: count_flops(self.cfg, self.ids.shape[1], ratios or None, attention).per_base(training=True)
                for attention in ATTENTION_CONVENTIONS}, ratios


def prepare_train_step(name: str, device: torch.device, seq_len: int | None = None, batch: int | None = None,
                       seed: int = 0, precision: str = "fp32",
                       adapt: Callable[[torch.nn.Module], object] | None = None) -> TrainStep:
    """Build the model and batch, settle an H-Net's routing to its target compression, then set the
    learning rate to 0 so timed steps cost a full AdamW step but keep that compression. On CUDA the
    forward runs under bf16 autocast as the trainer's default; on CPU under bf16 autocast only with
    `precision="bf16"` (as `--set train.precision=bf16`). `adapt` changes the built model before it
    settles (bench/train_pairs.py's scan-free configs), so its routing settles as it will run."""
    from dnahnet.config import model_config_from_preset
    from dnahnet.nn.hnet import HNetLM

    preset = load_preset(name)
    cfg = model_config_from_preset(name)
    seq_len = seq_len or preset.get("data", {}).get("seq_len", 1024)
    batch = batch or preset.get("train", {}).get("micro_batch_size", 8)
    torch.manual_seed(seed)
    model = HNetLM(cfg).to(device)
    if adapt is not None:
        adapt(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.as_tensor(list(b"ACGT"))[torch.randint(0, 4, (batch, seq_len), generator=gen)].to(device)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"))

    def step() -> None:
        from torch.profiler import record_function

        with record_function("step"):
            with record_function("forward"), autocast:
                out = model(ids)
                loss = F.cross_entropy(out.logits[:, :-1].reshape(-1, 256).float(), ids[:, 1:].reshape(-1)) + out.ratio_loss
            with record_function("backward"):
                loss.backward()
            with record_function("optimizer"):
                opt.step()
                opt.zero_grad(set_to_none=True)

    settle_steps = settle_routing(model, cfg.stage_target_ratios(), ids, autocast) if cfg.n_routed else 0
    for group in opt.param_groups:
        group["lr"] = 0.0
    return TrainStep(name, cfg, model, ids, step, settle_steps)


def compile_train_step(prepared: TrainStep, backend: str = "inductor", scope: Scope | None = None) -> tuple[float, float]:
    """Compile the model in `scope` (default: as `pretrain --compile` does) and run one step, which compiles
    (lazily) the forward and backward graphs; returns (seconds compiling, seconds of that first step)."""
    from dnahnet.nn.compile import TRAINING_COMPILE_SCOPE, compile_layers, compile_seconds

    compile_layers(prepared.model, backend=backend, scope=scope or TRAINING_COMPILE_SCOPE)
    before = compile_seconds()
    started = time.perf_counter()
    prepared.step()
    return compile_seconds() - before, time.perf_counter() - started


def measure_train(name: str, device: torch.device, seq_len: int | None, batch: int | None, repeats: int,
                  profile: bool, seed: int = 0, compile: bool = False, backend: str = "inductor") -> dict:
    prepared = prepare_train_step(name, device, seq_len, batch, seed)
    cfg, model, ids, step = prepared.cfg, prepared.model, prepared.ids, prepared.step
    targets = cfg.stage_target_ratios()
    compile_s = None
    if compile:
        compile_s, first_step_s = compile_train_step(prepared, backend)
    seconds = best_time(step, repeats=repeats, warmup=1, device=device)
    flops_per_base, ratios = prepared.flops_per_base()
    batch, seq_len = ids.shape
    row = {"config": name, "params": sum(p.numel() for p in model.parameters()), "seq_len": seq_len, "batch": batch,
           "step_s": seconds, "bases_per_s": batch * seq_len / seconds, "train_flops_per_base": flops_per_base["full"],
           "train_flops_per_base_causal": flops_per_base["causal"],
           "target_flops_per_base": count_flops(cfg, seq_len).per_base(training=True), "compression": ratios,
           "routed": cfg.n_routed, "target_compression": targets if cfg.n_routed else [],
           "settle_steps": prepared.settle_steps,
           "settled": not cfg.n_routed or within_target(ratios, targets), "compiled": compile}
    if compile:
        row["compile_s"], row["first_step_s"] = compile_s, first_step_s
    if profile and not compile:  # record_function labels do not survive compilation
        totals = profile_step(step, device)
        row["profile_inclusive_s"] = totals
        row["profile_s"] = summarise_profile(totals)
    return row


def summarise_profile(totals: dict[str, float]) -> dict[str, float]:
    """Exclusive forward seconds by part (stages summed), forward other, backward and optimiser totals."""
    excl = exclusive_part_times({k: v for k, v in totals.items() if _LABEL.match(k)})
    parts = {g: 0.0 for g in PART_GROUPS}
    for key, value in excl.items():
        m = _LABEL.match(key)
        parts[m.group(3) or m.group(1)] += value
    parts = {k: v for k, v in parts.items() if v > 0}
    labelled = sum(parts.values())
    forward = totals.get("forward", labelled)
    parts["forward_other"] = max(forward - labelled, 0.0)
    parts["backward_total"] = totals.get("backward", 0.0)
    parts["optimizer_total"] = totals.get("optimizer", 0.0)
    return parts


def bench_train(opts: TrainBench, command: str | None = None, log=print) -> dict:
    """Measure every config; write results.json and report.md; return the results."""
    configs = parse_configs(opts.configs)
    if opts.seq_len is not None:
        check_lengths(configs, [opts.seq_len])
    if opts.batch is not None and opts.batch < 1:
        raise DnahnetInputError(f"--batch: must be positive, got {opts.batch}")
    out = check_writable_dir(opts.out)
    dev = resolve_device(opts.device)
    peak_dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    n = 4096 if dev.type == "cuda" else 1024
    peak_before = matmul_peak_flops(dev, peak_dtype, n=n)
    rows = []
    for name in configs:
        rows.append(measure_train(name, dev, opts.seq_len, opts.batch, opts.repeats, opts.profile, opts.seed, opts.compile,
                                  opts.compile_backend))
        log(f"{name:22s} measured: {rows[-1]['bases_per_s']:,.0f} bases/s")
    # Measured again afterwards and the higher kept: a shared machine's brief slowdown during
    # one short peak measurement would otherwise inflate every MFU of the run.
    peak_after = matmul_peak_flops(dev, peak_dtype, n=n)
    peak = max(peak_before, peak_after)
    for row in rows:
        row["achieved_flops_per_s"] = row["bases_per_s"] * row["train_flops_per_base"]
        row["mfu"] = row["achieved_flops_per_s"] / peak
        log(f"{row['config']:22s} {row['bases_per_s']:>10,.0f} bases/s  {row['train_flops_per_base'] / 1e6:7.2f} MFLOP/base  "
            f"MFU {row['mfu']:.1%}")
    iso = [r for r in rows if not r["routed"]]
    for suffix in ("", "_causal"):  # global attention counted as its full L x L block, and as its causal half
        def rate(r: dict) -> float:
            return r["bases_per_s"] * r[f"train_flops_per_base{suffix}"]

        best_iso = max(map(rate, iso), default=None)
        for r in rows:
            r[f"per_flop_slowdown_vs_best_isotropic{suffix}"] = best_iso / rate(r) if best_iso else None
    f = [r["train_flops_per_base"] for r in rows]
    spread = max(f) / min(f) - 1
    results = {"command": command, "machine": machine(dev), "device": str(dev),
               "precision": "bf16 autocast" if dev.type == "cuda" else "fp32", "matmul_peak_flops": peak,
               "compiled": opts.compile and opts.compile_backend,
               "matmul_peak_before_after_flops": [peak_before, peak_after],
               "peak_dtype": str(peak_dtype).replace("torch.", ""), "flops_spread": spread,
               "matched": spread <= FLOP_TOLERANCE, "date": time.strftime("%Y-%m-%d"), "rows": rows}
    with atomic_open(out / "results.json") as fh:
        json.dump(results, fh, indent=2)
    with atomic_open(out / "report.md") as fh:
        fh.write(report_markdown(results))
    return results


def report_markdown(results: dict) -> str:
    lines = ["# Training-step benchmark", ""]
    if results.get("command"):
        lines += ["Command:", "", f"    {results['command']}", ""]
    lines += [f"Machine: {results['machine']}. Device {results['device']}, {results['precision']}; "
              f"{results['peak_dtype']} matmul peak measured in this run (the higher of before and after the configs: "
              f"{' / '.join(f'{p / 1e9:,.1f}' for p in results.get('matmul_peak_before_after_flops', [results['matmul_peak_flops']]))}): "
              f"{results['matmul_peak_flops'] / 1e9:,.1f} GFLOP/s. "
              f"Training FLOPs per base are analytic (3 x forward) at the realised compression; spread across configs "
              f"{results['flops_spread']:.0%} ({'matched' if results['matched'] else 'NOT matched'} within {FLOP_TOLERANCE:.0%}).", "",
              f"H-Nets were first trained until each stage's compression was within {SETTLE_TOLERANCE:.0%} of its "
              f"target (settle steps), then timed at learning rate 0.", ""]
    if results.get("compiled"):
        lines += [f"Compiled: `torch.compile` ({results['compiled']}) of each Mamba-2 / attention block, as `pretrain --compile` does, after settling; the timed steps "
                  "exclude compilation, which the table after this one reports.", ""]
    lines += ["FLOPs count global attention's full L x L score block; the last column counts its causal half instead "
              "(torch's CPU SDPA executes between the two: `bench/sdpa_causal.py`).", "",
              "| config | params | L x batch | bases/s | train MFLOP/base | compression (target) | settle steps | achieved GFLOP/s | MFU "
              "| per-FLOP slowdown vs best isotropic | the same, causal-half attention FLOPs |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        comp = ",".join(f"{c:.2f}" for c in r["compression"]) or "-"
        if r.get("target_compression"):
            comp += " (" + ",".join(f"{c:g}" for c in r["target_compression"]) + ")"
            comp += "" if r.get("settled", True) else " NOT SETTLED"
        settle = str(r.get("settle_steps", "-")) if r["routed"] else "-"
        slow, causal = (f"{r[k]:.2f}x" if r.get(k) else "-" for k in ("per_flop_slowdown_vs_best_isotropic",
                                                                      "per_flop_slowdown_vs_best_isotropic_causal"))
        lines.append(f"| {r['config']} | {r['params'] / 1e6:.2f}M | {r['seq_len']} x {r['batch']} | {r['bases_per_s']:,.0f} | "
                     f"{r['train_flops_per_base'] / 1e6:.2f} | {comp} | {settle} | {r['achieved_flops_per_s'] / 1e9:.2f} | "
                     f"{r['mfu']:.1%} | {slow} | {causal} |")
    compiled = [r for r in results["rows"] if r.get("compiled")]
    if compiled:
        lines += ["", "| config | compile s | first step s (compiling) |", "|---|---|---|"]
        lines += [f"| {r['config']} | {r['compile_s']:.1f} | {r['first_step_s']:.1f} |" for r in compiled]
    profiled = [r for r in results["rows"] if r.get("profile_s")]
    if profiled:
        keys = PART_GROUPS + ["forward_other", "backward_total", "optimizer_total"]
        keys = [k for k in keys if any(k in r["profile_s"] for r in profiled)]
        lines += ["", "Profile of one step (torch.profiler), milliseconds. Forward parts are exclusive (an outer stage's "
                  "`main` excludes the inner stage's parts, summed over stages); backward and the optimiser step are "
                  "totals, not split by part.", "", "| config | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for r in profiled:
            lines.append(f"| {r['config']} | " + " | ".join(f"{r['profile_s'].get(k, 0.0) * 1e3:.1f}" for k in keys) + " |")
    lines.append("")
    return "\n".join(lines)
