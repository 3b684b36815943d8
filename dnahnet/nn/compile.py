"""`--compile`: torch.compile per Mamba-2 / attention block, not of the whole model.

Compiling a whole H-Net breaks the graph at `ChunkLayer`'s `int(counts.max())` (the
chunk count sizes the next stage) and recompiles as chunk counts change; each block
(norm, mixer, MLP) traces without a break, and its sequence length becomes a dynamic
dimension after the first change. Only `forward` is compiled (`nn.Module.compile`):
generation's `step()` stays eager.
"""

from __future__ import annotations

from torch import nn

from dnahnet.nn.attention import CausalMHA
from dnahnet.nn.isotropic import Block
from dnahnet.nn.mamba2 import Mamba2


def compile_layers(model: nn.Module, backend: str = "inductor", fullgraph: bool = False) -> int:
    """Compile every Mamba-2 and attention block of `model` in place; returns how many were wrapped.

    Compilation itself happens lazily, on each block's first call (see `compile_seconds`).
    `fullgraph=True` raises on any graph break instead of falling back (tests).
    """
    n = 0
    for module in model.modules():
        if isinstance(module, Block) and isinstance(module.mixer, (Mamba2, CausalMHA)):
            module.compile(backend=backend, fullgraph=fullgraph)
            n += 1
    return n


def compile_seconds() -> float:
    """Seconds this process has spent compiling (Dynamo tracing + Inductor, forward and backward graphs)."""
    try:
        from torch._dynamo.utils import calculate_time_spent
    except ImportError:  # pragma: no cover - older/newer torch without the counter
        return float("nan")
    return float(calculate_time_spent().get("total_wall_time", 0.0))


def compile_summary(blocks: int, wall_s: float) -> str:
    """One line for a command's log: compile time apart from run time (wall_s: the whole command's work)."""
    spent = compile_seconds()
    return f"--compile: {blocks} blocks, {spent:.1f} s compiling, {wall_s - spent:.1f} s running ({wall_s:.1f} s in all)"
