"""Mamba-2 forward+backward at L = 8192: chunked SSD against a naive sequential scan.

Prints wall-clock per pass, the speed-up, and model FLOP utilisation (analytic
forward+backward FLOPs / time) against a fp32 matmul peak measured in the same run.

    python bench/mamba2_scan.py [--length 8192] [--d-model 256] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch

from dnahnet.perf.measure import best_time, machine, matmul_peak_flops
from dnahnet.config import ModelConfig
from dnahnet.nn import mamba2 as mamba2_module
from dnahnet.nn.flops import mamba2_flops
from dnahnet.nn.mamba2 import Mamba2
from dnahnet.nn.ssd import ssd_sequential


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=8192)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--d-state", type=int, default=64)
    ap.add_argument("--headdim", type=int, default=64)
    ap.add_argument("--chunk-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--naive-length", type=int, default=2048, help="length for the sequential scan (scaled linearly)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    layer = Mamba2(args.d_model, d_state=args.d_state, headdim=args.headdim, chunk_size=args.chunk_size)
    u = torch.randn(1, args.length, args.d_model, requires_grad=True)

    def fwd_bwd():
        layer(u).sum().backward()

    chunked = best_time(fwd_bwd)

    # The naive path: same layer, scan replaced by the step-by-step recurrence.
    original = mamba2_module.ssd_chunked
    mamba2_module.ssd_chunked = lambda x, a, B, C, chunk, initial_state=None, dt=None, **_: ssd_sequential(
        x if dt is None else x * dt[..., None], a, B, C, initial_state)
    try:
        short = torch.randn(1, args.naive_length, args.d_model, requires_grad=True)
        naive_short = best_time(lambda: layer(short).sum().backward(), repeats=1, warmup=0)
    finally:
        mamba2_module.ssd_chunked = original
    naive = naive_short * args.length / args.naive_length

    cfg = ModelConfig(arch_layout=["m1"], d_model=[args.d_model], d_intermediate=[0],
                      ssm_cfg={"d_state": args.d_state, "headdim": args.headdim, "chunk_size": args.chunk_size})
    flops = 3 * mamba2_flops(args.d_model, args.length, cfg)
    peak = matmul_peak_flops()
    print(f"machine: {machine()}")
    print(f"Mamba-2 d_model={args.d_model} d_state={args.d_state} headdim={args.headdim} chunk={args.chunk_size}, L={args.length}, batch 1, fp32")
    print(f"chunked SSD fwd+bwd:     {chunked * 1e3:9.1f} ms  ({args.length / chunked:,.0f} positions/s)")
    print(f"sequential scan fwd+bwd: {naive * 1e3:9.1f} ms  (measured at L={args.naive_length}, scaled linearly)")
    print(f"speed-up:                {naive / chunked:9.1f}x")
    print(f"matmul peak (fp32 2048^3): {peak / 1e9:7.1f} GFLOP/s")
    print(f"model FLOPs fwd+bwd:     {flops / 1e9:9.2f} GFLOP -> {flops / chunked / 1e9:.1f} GFLOP/s, MFU {flops / chunked / peak:.1%}")


if __name__ == "__main__":
    main()
