"""Training steps with another commit's Mamba-2 and attention kernels, interleaved with the working tree's.

A faster scan in isolation need not make training faster (a benchmark's `y.sum()` gradient,
for one, is a stride-0 tensor that no model produces and that CPU bmm handles a matrix at a
time). This judges a change to the SSD scan, the causal conv or the rotary tables where it
counts: it loads `dnahnet/nn/ssd.py`, `dnahnet/nn/mamba2.py` and `dnahnet/nn/attention.py` as they
were at `--against` (`git show`) into private modules, and every round runs one training step of
each preset with that commit's `ssd_chunked`, `causal_depthwise_conv` and `rotary_cos_sin` and one
with the working tree's (all in PyTorch: every model's fused CPU kernels are switched off), in alternating
order (forward, backward, AdamW at learning rate 0, the settled H-Nets and batch of `dnahnet
bench train`). Reported: median step times and the median of the per-round old/new ratios
with a percentile-bootstrap 95% interval. One Mamba-2 block at the first preset's width is
timed the same way (forward and backward from a fixed random output gradient).

With `--compile` the block and the presets' blocks run compiled by Inductor, as `pretrain
--compile` runs them. Both versions' graphs are compiled in the warm-up round and each model keeps
both (Dynamo guards on which kernel functions the module holds). Every graph is compiled for its
static shapes: blocks of all lengths share `Block.forward`, and with Dynamo's automatic dynamic
shapes the version compiled second would get length-generic graphs while the first got
specialised ones. (In `pretrain --compile` the full-length blocks compile first, specialised;
inner stages, whose length changes from batch to batch, get length-generic graphs. Here every
batch is the same.)

    python bench/kernels_ab.py --against c0be8c6 --configs cpu-mamba2,cpu-hnet-transformer,cpu-hnet-mamba2 \\
        --repeats 20 --out runs/kernels_ab
"""

from __future__ import annotations

import argparse
import functools
import inspect
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Callable

import torch

import dnahnet.nn.attention as attention_module
import dnahnet.nn.mamba2 as mamba2_module
from dnahnet.config import model_config_from_preset
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import check_writable_dir
from dnahnet.nn import cpu_kernel as fused_cpu
from dnahnet.nn.compile import TRAINING_COMPILE_SCOPE, compile_layers
from dnahnet.nn.isotropic import build_mixer
from dnahnet.perf.inference import parse_configs
from dnahnet.perf.measure import (add_paired_bench_arguments, describe_ratio, paired_ratio_summary, run_bench_script,
                                   save_paired_bench, start_paired_bench)
from dnahnet.perf.train_profile import prepare_train_step

REPO = Path(__file__).resolve().parent.parent
# (module whose global the models call, name, file the old version is read from)
SWAPPED = ((mamba2_module, "ssd_chunked", "dnahnet/nn/ssd.py"),
           (mamba2_module, "causal_depthwise_conv", "dnahnet/nn/mamba2.py"),
           (attention_module, "rotary_cos_sin", "dnahnet/nn/attention.py"))


def module_at(commit: str, path: str) -> types.ModuleType:
    """The file `path` as it was at `commit`, imported as a private module."""
    shown = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True)
    if shown.returncode:
        raise DnahnetInputError(f"--against {commit}: git cannot show {path} at that commit "
                                f"({shown.stderr.strip().splitlines()[-1] if shown.stderr.strip() else 'no message'})")
    source = shown.stdout
    module = types.ModuleType(f"at_{commit}_{Path(path).stem}")
    sys.modules[module.__name__] = module  # importable by name, as torch.compile's tracer looks globals up
    exec(compile(source, f"{commit}:{path}", "exec"), module.__dict__)
    return module


def kernels_at(commit: str) -> dict[str, Callable]:
    modules = {path: module_at(commit, path) for path in {path for _, _, path in SWAPPED}}
    return {name: _dropping_newer_options(getattr(modules[path], name)) for _, name, path in SWAPPED}


def _dropping_newer_options(kernel: Callable) -> Callable:
    """An older commit's kernel, called by the working tree's models with keyword options added since
    (`length_is_data_dependent` of `ssd_chunked`): those it does not take are dropped. Such options
    choose between ways of computing the same result, so the old kernel still computes what it did. The one
    that changes an input, `dt` of `ssd_chunked` (x unscaled, the scan scales it), is applied here for a kernel
    that takes x scaled."""
    params = inspect.signature(kernel).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kernel

    @functools.wraps(kernel)
    def call(*args, **options):
        dt = None if "dt" in params else options.pop("dt", None)
        if dt is not None:
            args = (args[0] * dt[..., None], *args[1:])
        return kernel(*args, **{k: v for k, v in options.items() if k in params})

    return call


def use(kernels: dict[str, Callable]) -> None:
    for module, name, _ in SWAPPED:
        setattr(module, name, kernels[name])


def block_step(config: str, backend: str | None = None) -> Callable[[], None]:
    """Forward and backward of one Mamba-2 block at `config`'s width on 8 x 1,024 positions."""
    cfg = model_config_from_preset(config)
    torch.manual_seed(0)
    block = build_mixer("m", cfg.d_model[0], cfg, stage=0)
    fused_cpu.switch(block, on=False)  # the swapped functions are PyTorch paths, which the kernels would bypass
    if backend:
        block.compile(backend=backend)
    u = torch.randn(8, 1024, cfg.d_model[0], requires_grad=True)
    upstream = torch.randn(8, 1024, cfg.d_model[0])
    return lambda: block(u).backward(upstream)


def measure(against: str, configs: list[str], repeats: int, seed: int, backend: str | None = None) -> dict:
    """Paired old/new step times; `backend` compiles every block with that torch.compile backend."""
    current = {name: getattr(module, name) for module, name, _ in SWAPPED}
    versions = {"old": kernels_at(against), "new": current}
    steps = {f"Mamba-2 block ({configs[0]} width)": block_step(configs[0], backend)}
    for name in configs:
        prepared = prepare_train_step(name, torch.device("cpu"), seed=seed,
                                      adapt=functools.partial(fused_cpu.switch, on=False))
        if backend:
            compile_layers(prepared.model, backend=backend, scope=TRAINING_COMPILE_SCOPE)
        steps[name] = prepared.step
    seconds = {(name, v): [] for name in steps for v in versions}
    with torch._dynamo.config.patch(automatic_dynamic_shapes=False):
        _alternate(steps, versions, seconds, repeats)
    rows = {}
    for name in steps:
        old, new = seconds[(name, "old")], seconds[(name, "new")]
        rows[name] = {"old_seconds": old, "new_seconds": new, "old_median_s": statistics.median(old),
                      "new_median_s": statistics.median(new), **paired_ratio_summary([o / n for o, n in zip(old, new)])}
    return {"against": against, "compile_backend": backend, "rows": rows}


def _alternate(steps: dict[str, Callable[[], None]], versions: dict[str, dict[str, Callable]],
               seconds: dict[tuple[str, str], list[float]], repeats: int) -> None:
    """One warm-up call of every step with each version, then `repeats` rounds in alternating order;
    the working tree's kernels ("new") are in place again afterwards."""
    try:
        for step in steps.values():
            for kernels in versions.values():
                use(kernels)
                step()
        for r in range(repeats):
            for name, step in steps.items():
                for v in (("old", "new") if r % 2 == 0 else ("new", "old")):
                    use(versions[v])
                    start = time.perf_counter()
                    step()
                    seconds[(name, v)].append(time.perf_counter() - start)
    finally:
        use(versions["new"])


def report(results: dict) -> str:
    lines = ["# Training steps: another commit's Mamba-2 and attention kernels against the working tree's", "", "Command:", "",
             f"    {results['command']}", "", f"Machine: {results['machine']}; fp32, {results['repeats']} rounds, old and new "
             f"alternating in one process. Old = `ssd_chunked`, `causal_depthwise_conv` and `rotary_cos_sin` at {results['against']}."
              + (f" Every Mamba-2/attention block compiled ({results['compile_backend']}, as `pretrain --compile` does)."
                if results.get("compile_backend") else ""), "",
             "| step | old median | new median | speed-up (old / new, paired) |", "|---|---|---|---|"]
    for name, r in results["rows"].items():
        lines.append(f"| {name} | {r['old_median_s'] * 1e3:.1f} ms | {r['new_median_s'] * 1e3:.1f} ms | {describe_ratio(r)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", required=True, help="commit whose ssd_chunked / causal_depthwise_conv / rotary_cos_sin are the 'old' kernels")
    p.add_argument("--configs", default="cpu-mamba2,cpu-hnet-transformer,cpu-hnet-mamba2", help="comma-separated presets")
    p.add_argument("--compile", action="store_true", help="run every block compiled, as `pretrain --compile` does")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend with --compile "
                   "(tests trace with aot_eager: seconds, not minutes)")
    add_paired_bench_arguments(p, repeats_help="rounds")
    args = p.parse_args(argv)
    out = check_writable_dir(args.out)
    results = start_paired_bench("bench/kernels_ab.py", argv, args.threads, args.repeats)
    results.update(measure(args.against, list(parse_configs(args.configs)), args.repeats, args.seed,
                           args.compile_backend if args.compile else None))
    save_paired_bench(out, results, report(results))
    for name, r in results["rows"].items():
        print(f"{name:36s} old {r['old_median_s'] * 1e3:8.1f} ms  new {r['new_median_s'] * 1e3:8.1f} ms  "
              f"old/new {r['ratio_median']:.3f} [{r['ratio_ci_low']:.3f},{r['ratio_ci_high']:.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_bench_script(main, "bench/kernels_ab.py"))
