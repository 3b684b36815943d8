"""Shared benchmark helpers: a measured matmul peak, timing, machine description."""

from __future__ import annotations

import datetime
import os
import platform
import time

import torch


def matmul_peak_flops(n: int = 2048, repeats: int = 10, dtype=torch.float32) -> float:
    """Best-of FLOP/s of an n x n matmul on this machine, now (the denominator of MFU)."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    a @ b  # warm up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def best_time(fn, repeats: int = 3, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.node()} {cpu}, {os.cpu_count()} cores visible, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {datetime.date.today().isoformat()}"
    )
