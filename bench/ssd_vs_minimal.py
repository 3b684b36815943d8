"""SSD scan forward+backward: dnahnet's `ssd_chunked` against the minimal einsum formulation.

The minimal formulation is the textbook chunked SSD (Dao & Gu 2024, the form of
mamba_ssm's `ssd_minimal_discrete`): a masked-cumsum segment sum per chunk, four
einsums, every head with its own B/C. It is written out here from the maths so
the benchmark needs no CUDA package. Both run in this process, interleaved
(A B A B ...), and the script prints best and median times and the median of the
paired ratios, for per-head B/C (g = h) and for the shared B/C (g = 1) that
dnahnet's Mamba-2 uses.

Backward starts from fixed random gradients of the output and the final state, as
inside a model. `--upstream sum` backpropagates `y.sum() + state.sum()` instead, as
this script did before 2026-12-02: that gradient is one value broadcast with stride 0,
which CPU bmm handles one matrix at a time, so it timed a case no model produces.

On CPU `ssd_chunked` computes in chunks of at most 64 (per-head B/C) or 128 (shared B/C, its
factored form) whatever chunk it is given (`dnahnet.nn.ssd.compute_chunk_size`); the minimal formulation runs at `--chunk`, or at
`--reference-chunk` to compare both at the same chunk. The process takes the allocator settings
the CLI runs with (`dnahnet.perf.allocator`: freed memory kept, not page-faulted anew), unless
`--allocator default`. With 10 or more pairs the paired speed-up carries a bootstrap 95% interval.
`--against COMMIT` also times `ssd_chunked` as it was at that commit (`git show`) in the same rounds and
reports the working tree's speed-up over it: a before/after figure that the VM's drift between runs does not move.
`--compile` compiles every path with Inductor for the static shapes first (compile time printed apart): traced,
`ssd_chunked` keeps the chunk it is given and takes its per-head form for shared B/C too, as in a compiled model.
`ssd_chunked` runs on the fused CPU kernel where it builds (`dnahnet.nn.cpu_kernel`, per-head form for all B/C;
on by default since 2026-12-04, opt-in with DNAHNET_CPU_KERNEL=1 before); DNAHNET_CPU_KERNEL=0 times the PyTorch
scan. `--against` versions from before the kernel existed run without it.

    python bench/ssd_vs_minimal.py [--length 8192] [--heads 8] [--headdim 64] [--d-state 64] [--chunk 128] [--against HEAD] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

try:  # run as a script (bench/ on the path) or imported as bench.ssd_vs_minimal (tests)
    from kernels_ab import module_at
except ImportError:
    from bench.kernels_ab import module_at

from dnahnet.nn import cpu_kernel
from dnahnet.nn.ssd import compute_chunk_size, runs_on_fused_kernel, ssd_chunked
from dnahnet.perf.allocator import keep_freed_memory
from dnahnet.perf.measure import describe_ratio, interleaved_seconds, machine, paired_ratio_summary, run_bench_script


def _minimal_segsum(a: torch.Tensor) -> torch.Tensor:
    T = a.size(-1)
    a = a[..., None].expand(*a.shape, T)
    a = a.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool), -1), 0.0).cumsum(dim=-2)
    return a.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool), 0), float("-inf"))


def minimal_ssd(x: torch.Tensor, a: torch.Tensor, B: torch.Tensor, C: torch.Tensor, q: int):
    """x (b,l,h,p), a (b,l,h), B/C (b,l,h,n); l a multiple of q. Returns y and the final state."""
    b, l, h, p = x.shape
    c = l // q
    x, B, C = (t.reshape(b, c, q, *t.shape[2:]) for t in (x, B, C))
    a = a.reshape(b, c, q, h).permute(0, 3, 1, 2)  # (b, h, c, q)
    a_cum = a.cumsum(-1)
    L = torch.exp(_minimal_segsum(a))
    y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, L, x)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, torch.exp(a_cum[..., -1:] - a_cum), x)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    decay_chunk = torch.exp(_minimal_segsum(F.pad(a_cum[..., -1], (1, 0))))
    new = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    states, final = new[:, :-1], new[:, -1]
    y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states, torch.exp(a_cum))
    return (y_diag + y_off).reshape(b, l, h, p), final


def _inputs(length: int, h: int, p: int, n: int, g: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, length, h, p, generator=gen).requires_grad_()
    a = (-torch.rand(1, length, h, generator=gen) * 0.2).requires_grad_()
    B = torch.randn(1, length, g, n, generator=gen).requires_grad_()
    C = torch.randn(1, length, g, n, generator=gen).requires_grad_()
    return x, a, B, C


def _backward(y: torch.Tensor, state: torch.Tensor, upstream: tuple[torch.Tensor, torch.Tensor] | None) -> None:
    if upstream is None:
        (y.sum() + state.sum()).backward()
    else:
        torch.autograd.backward((y, state), upstream)


def compare(length: int, h: int, p: int, n: int, g: int, q: int, repeats: int, upstream: str = "dense",
            reference_q: int | None = None, against: str | None = None, compiled: bool = False) -> dict:
    """Interleaved timings of both paths on the same inputs (the minimal one at `reference_q`, default q),
    and of `ssd_chunked` at commit `against` when given; checks they agree first. `compiled`: every path
    compiled by Inductor for these static shapes, each compiled (and timed apart) before the rounds."""
    reference_q = reference_q or q
    x, a, B, C = _inputs(length, h, p, n, g)
    fused = runs_on_fused_kernel(None, x, B, compute_chunk_size(q, x, "per_head"))
    scan, reference_scan = ssd_chunked, minimal_ssd
    if compiled:
        scan, reference_scan = (torch.compile(f, dynamic=False) for f in (ssd_chunked, minimal_ssd))
    Bh, Ch = (t.repeat_interleave(h // g, dim=2) for t in (B, C))
    gen = torch.Generator().manual_seed(1)
    grads = None if upstream == "sum" else (torch.randn(x.shape, generator=gen), torch.randn(1, h, p, n, generator=gen))

    def ours():
        _backward(*scan(x, a, B, C, q), grads)

    def reference():
        _backward(*reference_scan(x, a, Bh, Ch, reference_q), grads)

    paths = {"ours": ours, "reference": reference}
    if against:
        earlier_scan = module_at(against, "dnahnet/nn/ssd.py").ssd_chunked
        if compiled:
            earlier_scan = torch.compile(earlier_scan, dynamic=False)

        def earlier():
            _backward(*earlier_scan(x, a, B, C, q), grads)

        paths["earlier"] = earlier
    compile_s = {}
    for name, fn in paths.items() if compiled else ():
        start = time.perf_counter()
        fn()
        compile_s[name] = time.perf_counter() - start
    with torch.no_grad():
        y1, s1 = scan(x, a, B, C, q)
        y2, s2 = reference_scan(x, a, Bh, Ch, reference_q)
        rel = float((y1 - y2).abs().max() / y2.abs().max())
    seconds = interleaved_seconds(paths, repeats)
    t_ours, t_ref = seconds["ours"], seconds["reference"]
    ratios = [r / o for o, r in zip(t_ours, t_ref)]
    result = {"g": g, "ours_best": min(t_ours), "ours_median": statistics.median(t_ours),
              "ref_best": min(t_ref), "ref_median": statistics.median(t_ref),
              "paired_speedup_median": statistics.median(ratios), "paired_speedup": paired_ratio_summary(ratios),
              "max_rel_diff": rel, "reference_chunk": reference_q, "compiled": compiled, "compile_s": compile_s,
              # Traced, the scan keeps the chunk it is given and takes the per-head form whatever g is, as does
              # the fused CPU kernel.
              "ours_chunk": q if compiled else compute_chunk_size(q, x, "factored" if g < h and not fused else "per_head"),
              "cpu_kernel": fused}
    if against:
        result.update(against=against, earlier_best=min(seconds["earlier"]),
                      speedup_over_earlier=paired_ratio_summary([e / o for o, e in zip(t_ours, seconds["earlier"])]))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=8192)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--headdim", type=int, default=64)
    ap.add_argument("--d-state", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--upstream", choices=["dense", "sum"], default="dense",
                    help="gradient backward starts from: fixed random tensors (default) or that of a sum()")
    ap.add_argument("--reference-chunk", type=int, default=None, help="chunk of the minimal formulation (default --chunk)")
    ap.add_argument("--against", default=None, help="also time ssd_chunked as it was at this commit, in the same rounds")
    ap.add_argument("--allocator", choices=["cli", "default"], default="cli",
                    help="the CLI's allocator settings (default) or glibc's own")
    ap.add_argument("--compile", action="store_true",
                    help="compile every path with Inductor (static shapes), as a compiled model traces its scan")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    kept = args.allocator == "cli" and keep_freed_memory()
    print(f"machine: {machine()}; threads {args.threads}; fp32; forward+backward from a {args.upstream} upstream gradient; "
          f"allocator: {'freed memory kept (as the CLI)' if kept else 'glibc defaults'}; "
          f"{'every path compiled (Inductor, static shapes)' if args.compile else 'eager'}; fused CPU kernel "
          f"{'on unless it cannot be built' if cpu_kernel.requested() else 'off (' + cpu_kernel.ENV + '=0)'}")
    print(f"L={args.length} h={args.heads} p={args.headdim} n={args.d_state} chunk={args.chunk}, {args.repeats} interleaved pairs")
    for g in (args.heads, 1):
        r = compare(args.length, args.heads, args.headdim, args.d_state, g, args.chunk, args.repeats, args.upstream,
                    args.reference_chunk, args.against, args.compile)
        label = "per-head B/C" if g == args.heads else "shared B/C"
        print(f"{label:13s} ssd_chunked{' on the fused CPU kernel' if r['cpu_kernel'] else ''} (chunks of {r['ours_chunk']}) best {r['ours_best'] * 1e3:7.1f} ms median "
              f"{r['ours_median'] * 1e3:7.1f} ms | minimal (chunks of {r['reference_chunk']}) best {r['ref_best'] * 1e3:7.1f} "
              f"ms median {r['ref_median'] * 1e3:7.1f} ms | paired speed-up {describe_ratio(r['paired_speedup'])} | "
              f"max rel diff {r['max_rel_diff']:.1e}")
        if args.compile:
            print(f"{'':13s} compiling (first call, forward+backward): " +
                  ", ".join(f"{name} {s:.1f} s" for name, s in r["compile_s"].items()))
        if args.against:
            print(f"{'':13s} ssd_chunked at {args.against}: best {r['earlier_best'] * 1e3:7.1f} ms | the working tree's "
                  f"speed-up over it {describe_ratio(r['speedup_over_earlier'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_bench_script(main, "bench/ssd_vs_minimal.py"))
