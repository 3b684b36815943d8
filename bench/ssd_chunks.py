"""The SSD scan at each chunk size, per intra-chunk form: the measurement behind `compute_chunk_size`.

`dnahnet.nn.ssd.ssd_chunked` gives the same result for any chunk (the chunk only blocks the
computation), so eagerly on CPU it computes in chunks shorter than the model's where that is
faster: at most CPU_CHUNK_SIZES["per_head"] for the form with a (q x q) decay block per head and
CPU_CHUNK_SIZES["factored"] for the factored form that heads sharing B/C take. This times both
forms forward + backward (from fixed random output gradients) at every chunk in `--chunks`, the
chunks interleaved round by round on the same inputs, and reports each chunk's median time and
its paired time ratio to the chunk that `compute_chunk_size` picks for a model chunk of 256
(bootstrap 95% interval with 10 or more rounds). The process takes the CLI's allocator settings.

With `--models`, it also runs whole presets forward (no autograd, batch 1, random bases of
`--model-length`) with the CPU caps as shipped and with them lifted (every scan in the model's
own chunk), interleaved, and reports the paired speed-up and the largest logit difference.

    python bench/ssd_chunks.py [--chunks 32,64,128,256] [--repeats 10] [--threads 2] --out runs/ssd_chunks
    python bench/ssd_chunks.py --no-shapes --models paper-dna-mamba2,paper-dna-hnet-mamba2 --out runs/ssd_chunks_models
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from pathlib import Path

import torch

import dnahnet.nn.ssd as ssd
from dnahnet.perf.measure import (describe_ratio, interleaved_seconds, paired_ratio_summary, save_paired_bench,
                                  start_paired_bench)

# (batch, length, heads, head dim, state, B/C groups): per-head B/C (groups = heads) run the per-head
# form; one group runs the factored form (its decays stay within FACTORED_EXPONENT_LIMIT here).
SHAPES = [
    (1, 8192, 8, 64, 64, 8), (1, 65536, 8, 64, 64, 8), (8, 1024, 8, 32, 32, 8), (1, 8192, 16, 64, 128, 16),
    (1, 8192, 8, 64, 64, 1), (8, 1024, 8, 32, 32, 1), (1, 65536, 8, 64, 64, 1), (1, 8192, 32, 64, 128, 1),
]
MODEL_CHUNK = 256  # the chunk of the paper presets, whose CPU runs the cap shortens
UNCAPPED = {name: 1 << 30 for name in ssd.CPU_CHUNK_SIZES}  # every scan in exactly the chunk it is given


@contextlib.contextmanager
def chunk_caps(caps: dict[str, int]):
    """Run with `ssd.CPU_CHUNK_SIZES` set to `caps`, restoring the shipped ones after."""
    shipped = ssd.CPU_CHUNK_SIZES
    ssd.CPU_CHUNK_SIZES = caps
    try:
        yield
    finally:
        ssd.CPU_CHUNK_SIZES = shipped


def _inputs(shape: tuple[int, ...], seed: int = 0) -> tuple[list[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    b, l, h, p, n, g = shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, l, h, p, generator=gen)
    a = -torch.rand(b, l, h, generator=gen) * 0.2
    B, C = torch.randn(b, l, g, n, generator=gen), torch.randn(b, l, g, n, generator=gen)
    upstream = (torch.randn(b, l, h, p, generator=gen), torch.randn(b, h, p, n, generator=gen))
    return [t.requires_grad_() for t in (x, a, B, C)], upstream


def time_chunks(shape: tuple[int, ...], chunks: list[int], repeats: int) -> dict:
    """Median ms per chunk and paired ratios to the chunk `compute_chunk_size` picks for MODEL_CHUNK."""
    inputs, upstream = _inputs(shape)
    form = "per_head" if shape[5] == shape[2] else "factored"
    picked = ssd.compute_chunk_size(MODEL_CHUNK, inputs[0], form)

    def run(q: int):
        def step() -> None:
            with chunk_caps(UNCAPPED):
                y, state = ssd.ssd_chunked(*inputs, chunk_size=q)
                torch.autograd.backward((y, state), upstream)
            for t in inputs:
                t.grad = None
        return step

    seconds = interleaved_seconds({str(q): run(q) for q in chunks}, repeats)
    base = seconds.get(str(picked))
    rows = []
    for q in chunks:
        row = {"chunk": q, "median_ms": statistics.median(seconds[str(q)]) * 1e3}
        if base is not None:
            row["time_vs_picked"] = paired_ratio_summary([t / tb for t, tb in zip(seconds[str(q)], base)])
        rows.append(row)
    return {"shape": list(shape), "form": form, "picked_chunk": picked, "rows": rows}


def time_model(preset: str, length: int, repeats: int, seed: int = 0) -> dict:
    """One preset's forward with the CPU chunk caps as shipped against lifted, paired within rounds."""
    from dnahnet.config import model_config_from_preset
    from dnahnet.nn.hnet import HNetLM

    torch.manual_seed(seed)
    model = HNetLM(model_config_from_preset(preset)).eval()
    gen = torch.Generator().manual_seed(seed)
    ids = torch.as_tensor(list(b"ACGT"))[torch.randint(0, 4, (1, length), generator=gen)]
    shipped = ssd.CPU_CHUNK_SIZES

    def forward(caps: dict[str, int]) -> torch.Tensor:
        with chunk_caps(caps), torch.no_grad():
            return model(ids).logits

    diff = float((forward(shipped) - forward(UNCAPPED)).abs().max())
    seconds = interleaved_seconds({"capped": lambda: forward(shipped), "model chunk": lambda: forward(UNCAPPED)}, repeats)
    return {"preset": preset, "length": length, "params": sum(p.numel() for p in model.parameters()),
            "capped_median_s": statistics.median(seconds["capped"]),
            "model_chunk_median_s": statistics.median(seconds["model chunk"]), "max_abs_logit_diff": diff,
            "speedup": paired_ratio_summary([u / c for c, u in zip(seconds["capped"], seconds["model chunk"])])}


def report(results: dict) -> str:
    lines = ["# SSD scan by chunk size (forward + backward)", "", "Command:", "", f"    {results['command']}", "",
             f"Machine: {results['machine']}; fp32; {results['repeats']} interleaved rounds; the CLI's allocator settings. "
             f"'picked' is `compute_chunk_size({MODEL_CHUNK})` for the form; ratios are time at that chunk over "
             "time at the picked one, paired within rounds.", "",
             "| shape (b, L, h, p, n, groups) | form | chunk | median ms | time / picked chunk's |", "|---|---|---|---|---|"]
    for r in results["shapes"]:
        for row in r["rows"]:
            mark = " (picked)" if row["chunk"] == r["picked_chunk"] else ""
            ratio = describe_ratio(row["time_vs_picked"]) if "time_vs_picked" in row and not mark else "-"
            lines.append(f"| {tuple(r['shape'])} | {r['form']} | {row['chunk']}{mark} | {row['median_ms']:.1f} | {ratio} |")
    if results.get("models"):
        lines += ["", f"Whole presets forward, CPU caps as shipped vs every scan in the model's chunk:", "",
                  "| preset | parameters | bases | capped, median s | model's chunk, median s | speed-up (paired) | "
                  "max logit difference |", "|---|---|---|---|---|---|---|"]
        for m in results["models"]:
            lines.append(f"| {m['preset']} | {m['params'] / 1e6:.1f}M | {m['length']:,} | {m['capped_median_s']:.3f} | "
                         f"{m['model_chunk_median_s']:.3f} | {describe_ratio(m['speedup'])} | {m['max_abs_logit_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="32,64,128,256", help="comma-separated chunk sizes")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-shapes", action="store_true", help="skip the scan-alone shapes")
    parser.add_argument("--models", default="", help="comma-separated presets to run forward capped and uncapped")
    parser.add_argument("--model-length", type=int, default=8192)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    chunks = [int(c) for c in args.chunks.split(",")]
    results = start_paired_bench("bench/ssd_chunks.py", argv, args.threads, args.repeats)
    results["shapes"], results["models"] = [], []
    for shape in [] if args.no_shapes else SHAPES:
        results["shapes"].append(time_chunks(shape, chunks, args.repeats))
        print("\n".join(report(results).splitlines()[-len(chunks):]), flush=True)
    for preset in filter(None, args.models.split(",")):
        results["models"].append(time_model(preset, args.model_length, args.repeats))
        print(report(results).splitlines()[-1], flush=True)
    text = report(results)
    save_paired_bench(args.out, results, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
