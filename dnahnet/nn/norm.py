"""RMSNorm and the gated RMSNorm of Mamba-2, computed in fp32."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dnahnet.nn import cpu_kernel as fused_cpu


def in_weight_dtype(out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`out` in a 16-bit model's dtype: with weights cast to bf16 (inference as `.to(torch.bfloat16)`), the norm
    feeds a bf16 projection from the float32 residual stream, as mamba_ssm's blocks cast it; float32 weights
    (training, under autocast or not) keep the norm's float32 result."""
    return out.to(weight.dtype) if weight.dtype in (torch.float16, torch.bfloat16) else out


class RMSNorm(nn.Module):
    """x / rms(x) * weight, eps 1e-5; statistics in fp32 whatever the input dtype.

    Eager on CPU, with the fused kernel on (`cpu_kernel`, None: DNAHNET_CPU_KERNEL, on unless 0), one kernel pass per row
    forward and backward (`dnahnet.nn.cpu_kernel.rms_norm`). A norm whose only reader is a projection
    (`feeds_projection`: a block's norm before its mixer or MLP) then writes bf16 under bf16 autocast, the values
    the projection's own cast would give; the others (a stack's last norm, read by the routing and the head) keep
    float32.
    """

    def __init__(self, d: int, eps: float = 1e-5, feeds_projection: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.feeds_projection = feeds_projection
        self.cpu_kernel: bool | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fused_cpu.rms_norm_applies(x, self.weight) and fused_cpu.in_use(self.cpu_kernel):
            bf16_out = (self.feeds_projection and torch.is_autocast_enabled("cpu")
                        and torch.get_autocast_dtype("cpu") == torch.bfloat16)
            return fused_cpu.rms_norm(x, self.weight, self.eps, bf16_out)
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return in_weight_dtype(out * self.weight.to(out.dtype), self.weight)


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
        return in_weight_dtype((g.reshape(shape) * self.weight.to(g.dtype)).to(dtype), self.weight)
