"""RMSNorm and the gated RMSNorm of Mamba-2, computed in fp32."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """x / rms(x) * weight, eps 1e-5; statistics in fp32 whatever the input dtype."""

    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return out * self.weight.to(out.dtype)


class RMSNormGated(nn.Module):
    """mamba_ssm's default gated norm (norm_before_gate=False): rmsnorm(y * silu(z)) * weight.

    The RMS statistic is taken per group of `group_size` channels.
    """

    def __init__(self, d: int, group_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.group_size = group_size
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        dtype = y.dtype
        yf, zf = y.float(), z.float()
        if dtype == torch.float64:
            yf, zf = y, z
        g = yf * F.silu(zf)
        shape = g.shape
        g = g.reshape(*shape[:-1], shape[-1] // self.group_size, self.group_size)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)
        return (g.reshape(shape) * self.weight.to(g.dtype)).to(dtype)
