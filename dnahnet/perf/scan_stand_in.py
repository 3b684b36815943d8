"""An elementwise stand-in for the Mamba-2 SSD scan: what a training step costs without the scan.

Issue 18's per-FLOP and MFU goals for the H-Nets hinge on how fast a Mamba-2 layer trains. To
split its cost, `bench/train_pairs.py` (configs NAME:scan-free) times the same model with every
Mamba-2 layer's scan (`Mamba2.scan`, `dnahnet.nn.ssd.ssd_chunked`) replaced by `elementwise_scan`,
paired with the real model in the same rounds. The stand-in reads every input the scan reads (x,
the log-decays, B and C), so the projections, convolution, gates and norm around it still
compute all their gradients, but it costs a few elementwise passes instead of the chunked
matmuls: the step it gives is a bound on what any faster scan could reach. It computes nothing a
model should learn with.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from dnahnet.nn.mamba2 import Mamba2


def elementwise_scan(
    x: torch.Tensor,
    log_decay: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    initial_state: torch.Tensor | None = None,
    length_is_data_dependent: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`ssd_chunked`'s signature and shapes, y_t = x_t * exp(log_decay_t) * (B_t . C_t) per head, with no
    state carried between positions; the final state is zeros (a bound for training, not for generation)."""
    b, _, h, p = x.shape
    g, n = B.shape[-2:]
    overlap = (B * C).sum(-1).repeat_interleave(h // g, dim=-1)  # (b, l, h)
    y = x * (torch.exp(log_decay) * overlap)[..., None]
    return y, x.new_zeros(b, h, p, n)


def mamba2_layers(model: nn.Module) -> list[Mamba2]:
    """The Mamba-2 layers of `model`, whose scans `replace_scans` would replace."""
    return [m for m in model.modules() if isinstance(m, Mamba2)]


def replace_scans(model: nn.Module, scan: Callable = elementwise_scan) -> int:
    """Give every Mamba-2 layer of `model` `scan` (by default the stand-in); returns how many layers took it."""
    layers = mamba2_layers(model)
    for layer in layers:
        layer.scan = scan
    return len(layers)
