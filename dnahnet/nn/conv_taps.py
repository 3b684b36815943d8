"""The causal conv's taps as an operator that `torch.compile` keeps whole.

In its own module so that re-executing `dnahnet/nn/mamba2.py` from another commit
(`bench/kernels_ab.py`) does not register the operator a second time.
"""

from __future__ import annotations

import torch


@torch.library.custom_op("dnahnet::contiguous_taps", mutates_args=())
def contiguous_taps(weight: torch.Tensor) -> torch.Tensor:
    """(C, 1, K) -> a (K, C) copy, as an operator Inductor does not fuse into its readers.

    Each shifted multiply-add reads one tap per channel. Read as a column of the
    (C, K) weight, that is a stride-K load, and Inductor then emits the compiled
    conv + SiLU (and its recomputation in backward) as scalar loops. A plain
    transpose-and-copy does not help: Inductor fuses the copy away and reads the
    strided weight again. As an opaque operator the copy stays, and the loops
    vectorise (conv + SiLU forward and backward of (8, 1024, 320), one timing: 46 -> 33 ms).
    """
    return _rows_of_taps(weight)


def _rows_of_taps(weight: torch.Tensor) -> torch.Tensor:
    """(C, 1, K) -> (K, C), always a fresh contiguous copy (an operator's output must not alias its input)."""
    return weight.squeeze(1).t().clone(memory_format=torch.contiguous_format)


@contiguous_taps.register_fake
def _(weight: torch.Tensor) -> torch.Tensor:
    return weight.new_empty(weight.shape[-1], weight.shape[0])


def _contiguous_taps_backward(ctx, grad: torch.Tensor) -> torch.Tensor:
    return grad.t().unsqueeze(1)


contiguous_taps.register_autograd(_contiguous_taps_backward)


def conv_taps(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The conv weight (C, 1, K) as K contiguous rows of C taps, (K, C), in `dtype`.

    Traced, through `contiguous_taps`, which the compiler keeps; eager, the same copy
    directly, skipping the operator's Python dispatch (its first call imports sympy, ~2 s).
    """
    if torch.compiler.is_compiling():
        return contiguous_taps(weight.to(dtype))
    return _rows_of_taps(weight.to(dtype))
