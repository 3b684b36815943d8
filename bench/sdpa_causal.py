"""How much of the masked half causal SDPA skips on this machine: causal against full attention, timed.

`dnahnet.nn.flops` can count global attention's score block in full (L x L, the default) or
as its causal half. What torch's CPU flash-attention kernel executes lies between: with
`is_causal=True` it skips key blocks that lie wholly above the diagonal, so the saving
depends on the length against its block sizes. This times `scaled_dot_product_attention`
with and without `is_causal` on the same inputs, interleaved, forward and forward +
backward, and prints the median causal / full time ratio: about 0.5 means the kernel
executes the causal half, about 1.0 the full block. The default shapes are the attention
layers of the cpu presets at training length: cpu-transformer (batch 8, 1,024 positions,
4 heads of 32) and the main network of cpu-hnet-transformer (about 341 positions after
3x compression).

    python bench/sdpa_causal.py [--shapes 8x4x1024x32,8x4x341x32] [--repeats 9] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from dnahnet.perf.measure import interleaved_seconds, machine


def parse_shapes(text: str) -> list[tuple[int, int, int, int]]:
    """'8x4x1024x32,...' -> [(batch, heads, length, head dim), ...]."""
    shapes = []
    for item in text.split(","):
        parts = [int(v) for v in item.lower().split("x")]
        if len(parts) != 4:
            raise SystemExit(f"--shapes: {item!r} is not BATCHxHEADSxLENGTHxHEADDIM")
        shapes.append(tuple(parts))
    return shapes


def causal_over_full(shape: tuple[int, int, int, int], backward: bool, repeats: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(*shape, generator=gen).requires_grad_(backward) for _ in range(3))
    upstream = torch.randn(*shape, generator=gen)

    def run(causal: bool) -> None:
        if backward:
            F.scaled_dot_product_attention(q, k, v, is_causal=causal).backward(upstream)
        else:
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    times = interleaved_seconds({"causal": lambda: run(True), "full": lambda: run(False)}, repeats)
    return {"causal_ms": statistics.median(times["causal"]) * 1e3, "full_ms": statistics.median(times["full"]) * 1e3,
            "ratio": statistics.median([c / f for c, f in zip(times["causal"], times["full"])])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="8x4x1024x32,8x4x341x32", help="BATCHxHEADSxLENGTHxHEADDIM, comma-separated")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; threads {args.threads}; fp32; {args.repeats} interleaved pairs; median causal / full ratio")
    print("| batch x heads x length x head dim | pass | causal | full | causal / full |")
    print("|---|---|---|---|---|")
    for shape in parse_shapes(args.shapes):
        for backward in (False, True):
            r = causal_over_full(shape, backward, args.repeats)
            print(f"| {'x'.join(map(str, shape))} | {'fwd+bwd' if backward else 'fwd'} | {r['causal_ms']:.1f} ms | "
                  f"{r['full_ms']:.1f} ms | {r['ratio']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
