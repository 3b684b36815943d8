"""`--compile`: torch.compile of the whole H-Net backbone, or of each Mamba-2 / attention block.

The forward pass has no graph break: the one data-dependent size, the chunk count that
`ChunkLayer` hands to the next stage, is captured as an unbacked size (Dynamo's
`capture_scalar_outputs`) and bounded to 1..L, and the SSD scan takes no Python branch or
loop on a length when traced. So the backbone compiles to one graph that does not
recompile as chunk counts change; the sequence length becomes a dynamic dimension after
its first change. The count itself is still read on the host once per routed stage (a
CUDA sync): it sizes the next stage, and the only static bound on it is L. Only `forward` is compiled (`nn.Module.compile`):
generation's `step()` stays eager. `scope="blocks"` compiles each Mamba-2 / attention
block alone (embedding taps stage outputs with forward hooks, which a whole graph would
have to re-trace on every call).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch._functorch.config
from torch import nn

from dnahnet.nn import cpu_kernel as fused_cpu
from dnahnet.nn.attention import CausalMHA
from dnahnet.nn.isotropic import Block
from dnahnet.nn.mamba2 import Mamba2

Scope = Literal["model", "blocks"]

# Training compiles per block. The whole backbone also trains compiled by Inductor, forward and
# backward, equal to eager (tests/test_compile.py, DNAHNET_TEST_INDUCTOR=1), since the views it saved
# for backward are recomputed there (`enable_unbacked_chunk_counts`) and the dense chunk-state pass
# builds its operands in the layout its matmul takes. But on the cpu presets a whole-backbone step is
# no faster than a per-block one (over eager: 1.11x either way for cpu-hnet-transformer, 1.05x against
# 1.16x for cpu-hnet-mamba2; bench/RESULTS.md) and took 127-343 s to compile cold, against 23-26 s for
# the blocks warm; FSDP2 also wants blocks compiled one by one. Inference (forward only) compiles the whole backbone.
TRAINING_COMPILE_SCOPE: Scope = "blocks"

# Graphs Dynamo may keep per code object once a model is compiled (its default, 8, is for one function).
BLOCK_RECOMPILE_LIMIT = 64


def enable_unbacked_chunk_counts() -> None:
    """Let Dynamo trace `.item()` (the chunk count) into the graph instead of breaking there, and
    save no views for backward: a view whose size involves the unbacked chunk count is
    materialised compactly by Inductor's forward while its backward asserts the view's strides
    (torch 2.13), so views are recomputed in backward from their compact bases instead."""
    torch._dynamo.config.capture_scalar_outputs = True
    torch._functorch.config.recompute_views = True


def compile_layers(model: nn.Module, backend: str = "inductor", fullgraph: bool = False, scope: Scope = "model") -> int:
    """Compile `model` (an HNetLM) in place; returns how many modules were wrapped.

    scope "model": its backbone (every stage, routing, chunking, EMA; not the byte
    embedding lookup or the LM head) as one module; "blocks": every Mamba-2 and attention
    block. Compilation itself happens lazily, on the first call (see `compile_seconds`).
    `fullgraph=True` raises on any graph break instead of falling back (tests).
    """
    # Dynamo keeps at most `recompile_limit` graphs per code object, and every block of every model in the
    # process shares `Block.forward`'s: each block shape, grad mode and chunk-count regime is an entry of
    # its own. Past the limit the rest ran eager, silently, e.g. in a benchmark of seven compiled configs.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, BLOCK_RECOMPILE_LIMIT)
    build_cpu_kernels_for(model)
    if scope == "model":
        enable_unbacked_chunk_counts()
        model.backbone.compile(backend=backend, fullgraph=fullgraph)
        return 1
    n = 0
    for module in model.modules():
        if isinstance(module, Block) and isinstance(module.mixer, (Mamba2, CausalMHA)):
            module.compile(backend=backend, fullgraph=fullgraph)
            n += 1
    return n


def build_cpu_kernels_for(model: nn.Module) -> None:
    """Build the fused CPU kernels now if `model` sits on the CPU and any of its modules would take them: traced,
    a module takes them only if already built (`cpu_kernel.in_use`); a model on a GPU never builds them."""
    first = next(model.parameters(), None)
    if first is None or first.device.type != "cpu":
        return
    asked = [module.cpu_kernel for module in fused_cpu.switches(model)]
    if any(fused_cpu.requested() if value is None else value for value in asked):
        fused_cpu.available()


def compile_seconds() -> float:
    """Seconds this process has spent compiling (Dynamo tracing + Inductor, forward and backward graphs)."""
    try:
        from torch._dynamo.utils import calculate_time_spent
    except ImportError:  # pragma: no cover - older/newer torch without the counter
        return float("nan")
    return float(calculate_time_spent().get("total_wall_time", 0.0))


def describe(scope: Scope, modules: int) -> str:
    """What `compile_layers` wrapped, for logs."""
    return "the whole backbone" if scope == "model" else f"{modules} blocks"


def compile_summary(what: str, wall_s: float) -> str:
    """One line for a command's log: compile time apart from run time (wall_s: the whole command's work)."""
    spent = compile_seconds()
    return f"--compile: {what}, {spent:.1f} s compiling, {wall_s - spent:.1f} s running ({wall_s:.1f} s in all)"
