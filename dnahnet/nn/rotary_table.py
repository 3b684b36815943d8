"""Rotary cos/sin tables as an operator that `torch.compile` keeps whole.

In its own module, like `conv_taps`, so that re-executing `attention.py` from another
commit does not register the operator a second time.
"""

from __future__ import annotations

import torch


def _angles_cos_sin(positions: torch.Tensor, dim: int, base: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin (..., dim/2) of positions x inverse frequencies, computed in float64, returned in `dtype`."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, device=positions.device, dtype=torch.float64) / dim))
    angles = positions.to(torch.float64)[..., None] * inv_freq
    return torch.cos(angles).to(dtype), torch.sin(angles).to(dtype)


@torch.library.custom_op("dnahnet::rotary_table", mutates_args=())
def rotary_table(positions: torch.Tensor, dim: int, base: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The tables as one opaque operator.

    Left to itself, Inductor fuses the table into the rotation of q and k, so it evaluates
    pow, cos and sin in float64 once per batch row and head instead of once per position,
    in forward and again in backward: 27 ms of a 945 ms compiled cpu-hnet-transformer
    training step (one kernel profile). Opaque, the table is computed once, (L, dim/2).
    """
    return _angles_cos_sin(positions, dim, base, dtype)


@rotary_table.register_fake
def _(positions: torch.Tensor, dim: int, base: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (*positions.shape, dim // 2)
    return positions.new_empty(shape, dtype=dtype), positions.new_empty(shape, dtype=dtype)


def rotary_cos_sin(positions: torch.Tensor, dim: int, base: float = 10000.0, dtype=torch.float32):
    """cos/sin tables (..., dim/2) for integer positions (non-interleaved rotary), in `dtype`.

    Traced, through `rotary_table`; eager, directly (no operator dispatch).
    """
    if torch.compiler.is_compiling():
        return rotary_table(positions, dim, float(base), dtype)
    return _angles_cos_sin(positions, dim, base, dtype)
