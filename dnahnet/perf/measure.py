"""Shared measurement helpers: isolated runs with a memory cap, peak memory, matmul peak, timing.

CPU peak memory is the high-water resident set (`ru_maxrss`) of a fresh child
process that runs one measurement, so one measurement never inherits another's
peak; the child's address space is capped (`RLIMIT_AS`) so a length that does
not fit fails there, cleanly, instead of taking the machine down.

    python -m dnahnet.perf.measure '{"target": "dnahnet.perf.measure:allocate", "kwargs": {"nbytes": 100000000}}'
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from dnahnet.devices import resolve_device  # noqa: F401  (re-exported for perf.inference and perf.train_profile)
from dnahnet.perf.allocator import keep_freed_memory

RESULT_PREFIX = "DNAHNET_PERF_RESULT "
FAILED_TO_FIT = "did not fit"


def total_memory_bytes() -> int:
    """Physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def peak_rss_bytes() -> int:
    """High-water resident set of this process so far.

    Linux: VmHWM of /proc/self/status, the peak of this process's own address
    space. Not `ru_maxrss`: Linux carries the pre-exec address space's peak into
    it, so a child started by a 500 MiB parent reports at least 500 MiB.
    Elsewhere `ru_maxrss` (macOS reports bytes, others kB).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss_bytes() -> int:
    """Resident set of this process now (0 where /proc is absent)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def current_vm_bytes() -> int:
    """Current virtual address-space size of this process (0 where /proc is absent)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def cap_address_space(extra_bytes: int) -> None:
    """Allow this process `extra_bytes` of address space beyond what it has mapped now."""
    limit = current_vm_bytes() + int(extra_bytes)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def allocate(nbytes: int) -> dict:
    """Touch `nbytes` of fresh memory (the deliberate allocation the memory tests look for)."""
    before, resident = peak_rss_bytes(), current_rss_bytes()
    block = torch.ones(int(nbytes) // 4, dtype=torch.float32)
    total = float(block.sum())
    del block
    return {"allocated_bytes": int(nbytes), "checksum": total, "peak_before_bytes": before, "rss_before_bytes": resident}


@dataclass
class IsolatedResult:
    """What a child measurement returned, or why it did not."""

    ok: bool
    result: dict
    peak_rss_bytes: int | None
    error: str | None = None


def run_isolated(target: str, kwargs: dict, memory_limit_bytes: int | None, timeout_s: float | None = None,
                 threads: int | None = None) -> IsolatedResult:
    """Run `module:function(**kwargs)` in a fresh Python with a capped address space.

    Returns its JSON-able dict and the child's peak RSS; a MemoryError, an allocator
    RuntimeError, a crash or a kill under the cap becomes `ok=False` with the reason.
    """
    spec = {"target": target, "kwargs": kwargs, "memory_limit_bytes": memory_limit_bytes, "threads": threads}
    env = dict(os.environ)
    try:
        proc = subprocess.run([sys.executable, "-m", "dnahnet.perf.measure", json.dumps(spec)], capture_output=True,
                              text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return IsolatedResult(False, {}, None, f"timed out after {timeout_s:.0f} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            payload = json.loads(line[len(RESULT_PREFIX):])
            return IsolatedResult(payload["ok"], payload.get("result", {}), payload.get("peak_rss_bytes"),
                                  payload.get("error"))
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return IsolatedResult(False, {}, None, f"{FAILED_TO_FIT}: child exited with code {proc.returncode} ({tail[:200]})")


def _child(spec: dict) -> dict:
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    module, func = spec["target"].split(":")
    fn = getattr(importlib.import_module(module), func)
    if spec.get("memory_limit_bytes"):
        cap_address_space(spec["memory_limit_bytes"])
    try:
        result = fn(**spec["kwargs"])
    except MemoryError as exc:
        return {"ok": False, "error": f"{FAILED_TO_FIT}: MemoryError {exc}".strip(), "peak_rss_bytes": peak_rss_bytes()}
    except RuntimeError as exc:  # torch's allocator reports failures as RuntimeError
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if "alloc" in msg.lower() or "memory" in msg.lower():
            return {"ok": False, "error": f"{FAILED_TO_FIT}: {msg}", "peak_rss_bytes": peak_rss_bytes()}
        raise
    return {"ok": True, "result": result, "peak_rss_bytes": peak_rss_bytes()}


def matmul_peak_flops(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, n: int = 2048,
                      repeats: int = 10) -> float:
    """Best-of FLOP/s of an n x n matmul on this device and dtype, now (the denominator of MFU)."""
    probe = MatmulProbe(device, dtype, n)
    probe.best_rate(1)  # warms up
    return probe.best_rate(repeats)


class MatmulProbe:
    """Times n x n matmuls. Each call keeps the best rate of `calls` timed matmuls in `peaks`: put among the
    callables of an interleaved benchmark, it gives the peak the machine had in every round. On a VM whose
    speed drifts within and between runs, MFU against the same round's peak moves less with the drift than
    MFU against one peak per run (`matmul_peak_flops`, the best of its own timed matmuls)."""

    def __init__(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, n: int = 2048,
                 calls: int = 3) -> None:
        self.device = torch.device(device)
        self.a = torch.randn(n, n, device=self.device, dtype=dtype)
        self.b = torch.randn(n, n, device=self.device, dtype=dtype)
        self.inner = 10 if self.device.type == "cuda" else 1  # matmuls per timing: a CUDA launch is short
        self.flops, self.calls = 2.0 * n**3, calls
        self.peaks: list[float] = []  # FLOP/s, one per call of the probe

    def best_rate(self, timings: int) -> float:
        """FLOP/s of the fastest of `timings` timings."""
        best = float("inf")
        for _ in range(timings):
            synchronize(self.device)
            start = time.perf_counter()
            for _ in range(self.inner):
                self.a @ self.b
            synchronize(self.device)
            best = min(best, (time.perf_counter() - start) / self.inner)
        return self.flops / best

    def __call__(self) -> None:
        self.peaks.append(self.best_rate(self.calls))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn, repeats: int = 3, warmup: int = 1, device: torch.device | None = None,
              budget_s: float | None = None) -> float:
    """Best wall time of `fn()` over `repeats` runs after `warmup` discarded ones; once `budget_s` is
    spent no further repeat starts, but at least one timed run always follows the warm-up (a first
    pass pays page faults and first-call costs that later ones do not, and models pay them unequally)."""
    device = device or torch.device("cpu")
    for _ in range(warmup):
        fn()
        synchronize(device)
    times, start = [], time.perf_counter()
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
        if budget_s is not None and time.perf_counter() - start > budget_s:
            break
    return min(times)


def interleaved_seconds(fns: dict[str, Callable[[], object]], repeats: int,
                        timer: Callable[[Callable[[], object]], float] | None = None,
                        warmups: int = 1) -> dict[str, list[float]]:
    """Wall times of each callable over `repeats` rounds that run them all in turn (A B A B ...), after `warmups`
    discarded calls of each: a machine's drift then hits every callable alike, and ratios taken within a
    round cancel it. `timer(fn)` times one call (default: the host clock; bench/gpu_speed.py passes CUDA events)."""
    timer = timer or _host_seconds
    for fn in fns.values():
        for _ in range(warmups):
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            seconds[name].append(timer(fn))
    return seconds


def _host_seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine(device: str | torch.device = "cpu") -> str:
    """One line naming the machine (and GPU), torch version, threads and date."""
    device = torch.device(device)
    cpu = platform.processor() or platform.machine()
    what = f"{platform.node()} {cpu}, {os.cpu_count()} cores visible"
    if device.type == "cuda":
        what += f", GPU {torch.cuda.get_device_name(device)}"
    return f"{what}, torch {torch.__version__}, {torch.get_num_threads()} threads, {datetime.date.today().isoformat()}"


MIN_PAIRS_FOR_INTERVAL = 10  # a bootstrap of fewer paired ratios is reported as a range only


def paired_ratio_summary(ratios: list[float], seed: int = 0, resamples: int = 2000) -> dict:
    """Median of per-round paired ratios, a percentile-bootstrap 95% interval of the median (rounds
    resampled; meaningful from MIN_PAIRS_FOR_INTERVAL rounds) and the range."""
    import numpy as np

    v = np.sort(np.asarray(ratios, dtype=float))
    rng = np.random.default_rng(seed)
    medians = np.median(v[rng.integers(0, len(v), size=(resamples, len(v)))], axis=1)
    return {"pairs": len(v), "ratio_median": float(np.median(v)), "ratio_ci_low": float(np.percentile(medians, 2.5)),
            "ratio_ci_high": float(np.percentile(medians, 97.5)), "ratio_min": float(v[0]), "ratio_max": float(v[-1])}


# Environment variables that change what a benchmark runs: a recorded command that omits them would not
# reproduce its figures.
COMMAND_ENVIRONMENT = ("DNAHNET_CPU_KERNEL", "DNAHNET_CPU_BF16", "DNAHNET_KEEP_FREED_MEMORY")


def command_line(script: str, argv: list[str] | None = None) -> str:
    """The command that reproduces this run: the settings of COMMAND_ENVIRONMENT in force, then the script."""
    settings = [f"{name}={os.environ[name]}" for name in COMMAND_ENVIRONMENT if name in os.environ]
    return " ".join([*settings, "python", script, *(argv if argv is not None else sys.argv[1:])])


def start_paired_bench(script: str, argv: list[str] | None, threads: int, repeats: int) -> dict:
    """Set this process up as the CLI runs (`threads`, its allocator settings) and return the header
    every paired benchmark's results carry: the command, machine, torch, threads, repeats and date."""
    torch.set_num_threads(threads)
    keep_freed_memory()
    return {"command": command_line(script, argv),
            "machine": machine(torch.device("cpu")), "torch": torch.__version__, "threads": threads,
            "repeats": repeats, "date": time.strftime("%Y-%m-%d")}


def add_paired_bench_arguments(parser, repeats: int = 10, repeats_help: str = "interleaved rounds") -> None:
    """The options every paired benchmark script takes: --repeats, --threads, --seed and --out."""
    parser.add_argument("--repeats", type=int, default=repeats, help=repeats_help)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)


def run_bench_script(main: Callable[[], int], script: str) -> int:
    """A paired benchmark script's exit code: what `main` returns, or 2 with one line on stderr for a
    `DnahnetInputError` (an unknown preset or flag value, an unwritable --out), as the CLI reports them."""
    from dnahnet.errors import DnahnetInputError, report_input_error

    try:
        return main()
    except DnahnetInputError as exc:
        return report_input_error(exc, script)


def save_paired_bench(out: Path, results: dict, report: str) -> None:
    """Write a paired benchmark's results.json and report.md into `out`, each atomically."""
    from dnahnet.io.atomic import atomic_open

    with atomic_open(out / "results.json") as fh:
        json.dump(results, fh, indent=2)
    with atomic_open(out / "report.md") as fh:
        fh.write(report)


def describe_ratio(entry: dict) -> str:
    """'**1.23x** (95% CI 1.1-1.3, range ..., n pairs)' for a `paired_ratio_summary`."""
    interval = (f"95% CI {entry['ratio_ci_low']:.2f}-{entry['ratio_ci_high']:.2f}, " if entry["pairs"] >= MIN_PAIRS_FOR_INTERVAL
                else "too few pairs for an interval, ")
    return (f"**{entry['ratio_median']:.2f}x** ({interval}range {entry['ratio_min']:.2f}-{entry['ratio_max']:.2f}, "
            f"{entry['pairs']} pairs)")


if __name__ == "__main__":
    keep_freed_memory()  # measure what the CLI runs: the same allocator settings
    out = _child(json.loads(sys.argv[1]))
    print(RESULT_PREFIX + json.dumps(out), flush=True)
