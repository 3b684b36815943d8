"""The chunk-to-chunk state pass of the SSD scan and the dechunk EMA: stepwise against decay matmuls.

`dnahnet.nn.ssd.linear_recurrence` passes chunk states either step by step
(`_StepwiseRecurrence`: one multiply-add over a chunk's state per step) or as decay
matmuls, dense up to 64 states and in two levels of blocks beyond (`_matmul_recurrence`). Which
is faster depends on the size of one chunk's state: a Python step costs ~10 us whatever
it does. This times both on the same inputs, interleaved (A B A B ...), forward +
backward from a fixed random gradient and forward without autograd, and prints medians
and the median paired ratio. Shapes are (batch, T chunk states, groups, heads, headdim,
d_state): Mamba-2 layers of the cpu presets in training (8 x 17 x 8 heads of 32 x 32),
the benchmark scan (8 heads of 64 x 64) and the EMA (one head, D channels, state 1).

    python bench/state_pass.py [--repeats 9] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from dnahnet.nn.ssd import STEPWISE_MIN_STATE, _matmul_recurrence, _StepwiseRecurrence
from dnahnet.perf.measure import interleaved_seconds, machine

SHAPES = [
    (8, 3, 1, 8, 32, 32), (8, 17, 1, 8, 32, 32), (1, 17, 1, 8, 64, 64), (1, 65, 1, 8, 64, 64),
    (1, 129, 1, 8, 64, 64), (1, 1025, 1, 8, 64, 64),
    (8, 12, 1, 1, 128, 1), (1, 1000, 1, 1, 256, 1), (1, 1000, 1, 1, 4096, 1), (1, 1000, 1, 1, 8192, 1),
]


def _time_pair(shape: tuple[int, ...], grad: bool, repeats: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(*shape, generator=gen).requires_grad_(grad)
    a = (-torch.rand(shape[0], shape[2], shape[3], shape[1], generator=gen)).requires_grad_(grad)
    upstream = torch.randn(shape, generator=gen)

    def run(form) -> None:
        if grad:
            torch.autograd.backward(form(u, a), upstream)
        else:
            with torch.no_grad():
                form(u, a)

    times = interleaved_seconds({"stepwise": lambda: run(_StepwiseRecurrence.apply),
                                 "matmul": lambda: run(_matmul_recurrence)}, repeats)
    ratios = [m / s for m, s in zip(times["matmul"], times["stepwise"])]
    return {"stepwise_ms": statistics.median(times["stepwise"]) * 1e3,
            "matmul_ms": statistics.median(times["matmul"]) * 1e3, "ratio": statistics.median(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; threads {args.threads}; fp32; {args.repeats} interleaved pairs; "
          f"linear_recurrence steps from {STEPWISE_MIN_STATE} values per chunk state")
    print("| shape (b, T, g, r, p, n) | values per state | mode | stepwise | matmul | matmul / stepwise |")
    print("|---|---|---|---|---|---|")
    for shape in SHAPES:
        values = shape[0] * shape[2] * shape[3] * shape[4] * shape[5]
        for grad in (True, False):
            r = _time_pair(shape, grad, args.repeats)
            mode = "fwd+bwd" if grad else "fwd, no grad"
            print(f"| {shape} | {values:,} | {mode} | {r['stepwise_ms']:.2f} ms | {r['matmul_ms']:.2f} ms | "
                  f"{r['ratio']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
