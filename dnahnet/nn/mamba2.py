"""Mamba-2 mixer in pure PyTorch, parameter-compatible with mamba_ssm's `Mamba2`.

Parameter names and shapes follow `mamba_ssm.modules.mamba2.Mamba2` (in_proj,
conv1d, dt_bias, A_log, D, norm.weight, out_proj) so weights move freely between
this module and mamba_ssm's kernels. Training and prefill use the chunked SSD
scan (`dnahnet.nn.ssd`); `step()` is the recurrence with a conv cache and an SSM
state cache. On CUDA, when mamba_ssm is importable and `use_kernels` is on, the
scan runs through its fused Triton kernel instead. On CPU, unless turned off (DNAHNET_CPU_KERNEL=0,
or a layer's `cpu_kernel = False`), the conv with its SiLU, the scan's intra-chunk work and the
skip term with the gated norm run on fused C++ kernels where they build (`dnahnet.nn.cpu_kernel`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dnahnet.nn import cpu_kernel as fused_cpu
from dnahnet.nn import mamba_ssm_triton
from dnahnet.nn.conv_taps import conv_taps
from dnahnet.nn.norm import RMSNormGated
from dnahnet.nn.ssd import ssd_chunked

_ssd_combined = mamba_ssm_triton.load("ops.triton.ssd_combined")  # optional accelerator; None when absent
_kernel_scan = None if _ssd_combined is None else _ssd_combined.mamba_chunk_scan_combined

USE_KERNELS = True  # module-wide switch; `dnahnet.nn.mamba2.USE_KERNELS = False` forces the pure path


def kernels_available() -> bool:
    return _kernel_scan is not None


def causal_depthwise_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, history: torch.Tensor | None = None
) -> torch.Tensor:
    """Causal depthwise conv over time as K shifted multiply-adds: x (B, L, C), weight (C, 1, K).

    `history` (B, K-1, C): the inputs just before x (a carried cache); zeros when None.

    Same result as `nn.Conv1d(groups=C, padding=K-1)` cut to L, but its backward is
    elementwise work instead of the depthwise-convolution backward kernel, which
    is very slow on CPU. Fused multiply-adds (`addcmul`) make it K passes over the
    input instead of 2K (15.1 -> 10.8 ms at (1, 16384, 256), one timing). Without a
    history (training), `_CausalConv` gives it a backward of shifted multiply-adds too.
    """
    if history is None:
        return _CausalConv.apply(x, weight, bias)
    return _shifted_multiply_adds(torch.cat([history, x], dim=1), conv_taps(weight, x.dtype), bias.to(x.dtype))


def _shifted_multiply_adds(padded: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """out[t] = bias + sum_i taps[i] * padded[t + i]: padded (B, L+K-1, C), taps (K, C) -> (B, L, C)."""
    k = taps.shape[0]
    seqlen = padded.shape[1] - (k - 1)
    out = torch.addcmul(bias, padded[:, k - 1 : k - 1 + seqlen], taps[k - 1])
    for i in range(k - 1):
        out.addcmul_(padded[:, i : i + seqlen], taps[i])  # in place: autograd saves only the factors
    return out


class _CausalConv(torch.autograd.Function):
    """The zero-history causal conv with a hand-written backward.

    Autograd through the shifted `addcmul`s zero-fills and copies a padded-size
    gradient for every tap and adds them up; here the input gradient is K shifted
    multiply-adds of the output gradient (the conv with flipped taps) and each
    tap's gradient one product summed over batch and time.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        k = weight.shape[-1]
        padded = F.pad(x, (0, 0, k - 1, 0))
        w = conv_taps(weight, x.dtype)
        ctx.save_for_backward(padded, w)
        ctx.weight_dtype, ctx.bias_dtype = weight.dtype, bias.dtype
        return _shifted_multiply_adds(padded, w, bias.to(x.dtype))

    @staticmethod
    def backward(ctx, dy):
        padded, w = ctx.saved_tensors
        k = w.shape[0]
        seqlen = dy.shape[1]
        dx = dw = dbias = None
        if ctx.needs_input_grad[0]:  # dx[t] = sum_j w[k-1-j] * dy[t+j], dy zero past the end
            ahead = F.pad(dy, (0, 0, 0, k - 1))  # no branch on the length: it may be a traced chunk count
            dx = dy * w[k - 1]
            for j in range(1, k):
                dx.addcmul_(ahead[:, j : j + seqlen], w[k - 1 - j])
        if ctx.needs_input_grad[1]:
            dw = torch.stack([(dy * padded[:, i : i + seqlen]).sum((0, 1)) for i in range(k)], dim=-1)
            dw = dw.unsqueeze(1).to(ctx.weight_dtype)  # (C, 1, K)
        if ctx.needs_input_grad[2]:
            dbias = dy.sum((0, 1)).to(ctx.bias_dtype)
        return dx, dw, dbias


@dataclass
class Mamba2Cache:
    """conv_state: (B, conv_dim, d_conv) last inputs of the causal conv; ssm_state: (B, h, p, n)."""

    conv_state: torch.Tensor
    ssm_state: torch.Tensor


class Mamba2(nn.Module):
    def __init__(
        self,
        d_model: int,
        d_state: int = 128,
        d_conv: int = 4,
        expand: int = 2,
        headdim: int = 64,
        ngroups: int = 1,
        chunk_size: int = 256,
        A_init_range: tuple[float, float] = (1.0, 16.0),
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        use_kernels: bool = True,
        length_is_data_dependent: bool = False,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        # An inner H-Net stage's length is a chunk count, traced as data-dependent (`ssd_chunked`).
        self.length_is_data_dependent = length_is_data_dependent
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = expand * d_model
        if self.d_inner % headdim:
            raise ValueError(f"expand*d_model={self.d_inner} is not divisible by headdim={headdim}")
        self.headdim = headdim
        self.nheads = self.d_inner // headdim
        self.ngroups = ngroups
        self.chunk_size = chunk_size
        self.use_kernels = use_kernels
        # The pure path's scan: None calls this module's `ssd_chunked` (which bench/kernels_ab.py swaps);
        # bench/train_pairs.py's scan-free configs set an elementwise stand-in (`dnahnet.perf.scan_stand_in`).
        self.scan: Callable | None = None
        # The fused CPU kernels for the conv, the scan and the output norm: None follows DNAHNET_CPU_KERNEL (on
        # unless 0), True asks for them, False keeps all three in PyTorch (bench/train_pairs.py sets both).
        self.cpu_kernel: bool | None = None
        self.conv_dim = self.d_inner + 2 * ngroups * d_state
        d_in_proj = 2 * self.d_inner + 2 * ngroups * d_state + self.nheads

        self.in_proj = nn.Linear(d_model, d_in_proj, bias=False)
        self.conv1d = nn.Conv1d(
            self.conv_dim, self.conv_dim, kernel_size=d_conv, groups=self.conv_dim, padding=d_conv - 1, bias=True
        )
        # dt initialised log-uniformly in [dt_min, dt_max]; dt_bias is its softplus inverse.
        dt = torch.exp(torch.rand(self.nheads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        A = torch.empty(self.nheads).uniform_(*A_init_range)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.nheads))
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True
        self.norm = RMSNormGated(self.d_inner, group_size=self.d_inner // ngroups)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    # ------------------------------------------------------------------
    def _split(self, zxbcdt: torch.Tensor):
        return torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.nheads], dim=-1)

    def _split_xbc(self, xbc: torch.Tensor):
        n = self.ngroups * self.d_state
        return torch.split(xbc, [self.d_inner, n, n], dim=-1)

    def forward(
        self, u: torch.Tensor, cache: Mamba2Cache | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """u: (B, L, d_model) -> (B, L, d_model).

        With a `cache`, continues from its state and leaves the final state in it: a
        fresh (zero) cache is a prefill, a used one carries a long sequence across
        segments. `mask` (B, L) marks valid, left-aligned positions: padded positions
        leave the state untouched, so a batch of different lengths prefills exactly.
        """
        bsz, seqlen, _ = u.shape
        z, xbc, dt = self._split(self.in_proj(u))
        if cache is None and self._conv_on_kernel(xbc):  # the conv and its SiLU in one call, in float32
            xbc = fused_cpu.conv_silu(xbc, self.conv1d.weight, self.conv1d.bias)  # reads bf16 where it lies
            initial_state = None
        elif cache is None:
            xbc = F.silu(causal_depthwise_conv(xbc, self.conv1d.weight, self.conv1d.bias))
            initial_state = None
        else:
            earlier = cache.conv_state.transpose(1, 2).to(xbc.dtype)  # (B, d_conv, conv_dim); may view the cache
            convolved = causal_depthwise_conv(xbc, self.conv1d.weight, self.conv1d.bias, history=earlier[:, 1:])
            cache.conv_state.copy_(self._conv_tail(torch.cat([earlier, xbc], dim=1), mask))  # after reading it
            xbc = F.silu(convolved)
            initial_state = cache.ssm_state
        x, B, C = self._split_xbc(xbc)
        x = x.reshape(bsz, seqlen, self.nheads, self.headdim)
        B = B.reshape(bsz, seqlen, self.ngroups, self.d_state)
        C = C.reshape(bsz, seqlen, self.ngroups, self.d_state)
        compute = torch.float64 if u.dtype == torch.float64 else torch.float32
        A = -torch.exp(self.A_log.to(compute))

        end_on_kernel = False
        if self._scan_on_gpu_kernel(u, cache, mask):
            y, final = _kernel_scan(
                x, dt, A, B, C, chunk_size=self.chunk_size, D=self.D, z=None, dt_bias=self.dt_bias,
                initial_states=None if initial_state is None else initial_state.float(),
                dt_softplus=True, return_final_states=True,
            )
        else:
            dt = F.softplus(dt.to(compute) + self.dt_bias.to(compute))
            if mask is not None:
                dt = dt * mask[..., None].to(compute)
            xf, Bf, Cf = x.to(compute), B.to(compute), C.to(compute)
            if self.scan is not None:  # a stand-in takes x scaled by dt
                y, final = self.scan(xf * dt[..., None], dt * A, Bf, Cf, self.chunk_size, initial_state,
                                     length_is_data_dependent=self.length_is_data_dependent)
            else:  # the scan scales x by dt itself: inside the fused CPU kernel, with no dt * x tensor
                y, final = ssd_chunked(xf, dt * A, Bf, Cf, self.chunk_size, initial_state,
                                       length_is_data_dependent=self.length_is_data_dependent,
                                       cpu_kernel=self.cpu_kernel, dt=dt)
            end_on_kernel = self._norm_on_kernel(y)  # the skip term and the norm in one call
            if not end_on_kernel:
                y = y + xf * self.D.to(compute)[:, None]
        if cache is not None:
            cache.ssm_state.copy_(final.to(cache.ssm_state.dtype))
        if end_on_kernel:
            return self.out_proj(fused_cpu.gated_norm(
                y.reshape(bsz, seqlen, self.d_inner), xf.reshape(bsz, seqlen, self.d_inner), self.D.to(compute),
                z, self.norm.weight.to(compute), self.norm.group_size, self.norm.eps))
        y = y.reshape(bsz, seqlen, self.d_inner)
        return self.out_proj(self.norm(y, z))

    def _scan_on_gpu_kernel(self, u: torch.Tensor, cache: Mamba2Cache | None, mask: torch.Tensor | None) -> bool:
        """Whether mamba_ssm's Triton scan runs this call. A `mask` marks a left-aligned valid prefix of
        each row: the scan is causal, so valid positions come out the same whether or not the padding
        after them moves the state, and the kernel takes masked calls (an H-Net's main network) too.
        Only a ragged prefill into a cache needs the state to stop at each row's end; the fused kernel
        applies softplus to dt itself, so that call takes the pure path, which zeroes dt there."""
        usable = self.use_kernels and USE_KERNELS and _kernel_scan is not None and u.is_cuda
        return usable and (mask is None or cache is None)

    def _conv_on_kernel(self, xbc: torch.Tensor) -> bool:
        """Whether the causal conv and its SiLU run as one call of the fused CPU kernel."""
        return fused_cpu.conv_applies(xbc, self.conv1d.weight) and fused_cpu.in_use(self.cpu_kernel)

    def _norm_on_kernel(self, y: torch.Tensor) -> bool:
        """Whether the skip term and the output norm run as one call of the fused CPU kernel."""
        return (fused_cpu.norm_applies(y, self.d_inner, self.norm.group_size, self.headdim, self.norm.weight)
                and fused_cpu.in_use(self.cpu_kernel))

    def _conv_tail(self, xbc: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The last d_conv conv inputs of each row, (B, conv_dim, d_conv).

        `xbc` (B, d_conv + L, conv_dim) is the cached inputs followed by this call's;
        with a `mask`, a row ends at its last valid position.
        """
        bsz, total, _ = xbc.shape
        lengths = torch.full((bsz,), total - self.d_conv, device=xbc.device) if mask is None else mask.sum(-1)
        idx = lengths[:, None] + torch.arange(self.d_conv, device=xbc.device)[None, :]  # end-aligned
        return torch.gather(xbc.transpose(1, 2), 2, idx[:, None, :].expand(-1, xbc.shape[2], -1))

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int = 0, dtype: torch.dtype | None = None) -> Mamba2Cache:
        device = self.out_proj.weight.device
        dtype = dtype or self.out_proj.weight.dtype
        return Mamba2Cache(
            conv_state=torch.zeros(batch_size, self.conv_dim, self.d_conv, device=device, dtype=dtype),
            ssm_state=torch.zeros(batch_size, self.nheads, self.headdim, self.d_state, device=device, dtype=dtype),
        )

    def step(self, u: torch.Tensor, cache: Mamba2Cache, update: torch.Tensor | None = None) -> torch.Tensor:
        """One position: u (B, 1, d_model) -> (B, 1, d_model).

        `update` (B,) bool: rows whose caches advance (others keep their state;
        their output is computed but meaningless). Used by H-Net stages where only
        some batch elements emit a chunk at this step.
        """
        z, xbc, dt = self._split(self.in_proj(u.squeeze(1)))
        conv_state = torch.cat([cache.conv_state[..., 1:], xbc.unsqueeze(-1).to(cache.conv_state.dtype)], dim=-1)
        xbc = (conv_state * self.conv1d.weight.squeeze(1)).sum(-1) + self.conv1d.bias
        xbc = F.silu(xbc)
        x, B, C = self._split_xbc(xbc)
        bsz = x.shape[0]
        r = self.nheads // self.ngroups
        x = x.reshape(bsz, self.nheads, self.headdim)
        B = B.reshape(bsz, self.ngroups, self.d_state).repeat_interleave(r, dim=1)
        C = C.reshape(bsz, self.ngroups, self.d_state).repeat_interleave(r, dim=1)
        dt = F.softplus(dt + self.dt_bias)  # (B, h)
        A = -torch.exp(self.A_log)
        decay = torch.exp(dt * A)
        ssm_state = cache.ssm_state * decay[:, :, None, None] + (dt[:, :, None] * x)[..., None] * B[:, :, None, :]
        y = torch.einsum("bhpn,bhn->bhp", ssm_state.to(x.dtype), C) + self.D[:, None] * x
        out = self.out_proj(self.norm(y.reshape(bsz, self.d_inner), z))
        if update is None:
            cache.conv_state.copy_(conv_state)
            cache.ssm_state.copy_(ssm_state)
        else:
            m = update.view(-1, 1, 1)
            cache.conv_state.copy_(torch.where(m, conv_state, cache.conv_state))
            cache.ssm_state.copy_(torch.where(m.unsqueeze(-1), ssm_state.to(cache.ssm_state.dtype), cache.ssm_state))
        return out.unsqueeze(1)
